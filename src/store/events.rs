//! The project event log: every durable change to a project is one event,
//! numbered per project 1, 2, 3, … with no hole, written in the transaction
//! that makes the change ([`append_events!`](super::engine::append_events)), and read back in order for a
//! resume, a REST client or a room closing a gap ([`Store::events_since`]).
//!
//! Numbers come from `projects.last_seq`, bumped by an UPDATE in the
//! writing transaction: on PostgreSQL the row lock queues a project's
//! writers until the holder commits, on SQLite there is one writer at a time,
//! so a project's events become visible in number order on both engines.
//! That is what lets a reader treat "the newest seq I read" as a watermark.
//!
//! The log names what changed, not a copy of it: a replay shows comments
//! and feedback items as they are now (an edited comment with its new text,
//! a deleted one as a tombstone), so withdrawn text is gone from every read.

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{
    Comment, CommentId, EventMeta, Feedback, FeedbackId, ProjectId, Reaction, Seq, ServerMessage,
    UserId,
};

use super::rows::{CommentRow, FeedbackRow, comment_columns, feedback_columns};
use super::{MAX_BATCHED_KEYS, Store, StoreError, on_pool};
use crate::time::rfc3339;

/// The kinds of event, named as the live message that announces each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    CommentAdded,
    CommentEdited,
    CommentDeleted,
    CommentResolved,
    CommentReopened,
    ReactionAdded,
    ReactionRemoved,
    FeedbackCreated,
    StatusChanged,
}

impl EventKind {
    const ALL: [EventKind; 9] = [
        EventKind::CommentAdded,
        EventKind::CommentEdited,
        EventKind::CommentDeleted,
        EventKind::CommentResolved,
        EventKind::CommentReopened,
        EventKind::ReactionAdded,
        EventKind::ReactionRemoved,
        EventKind::FeedbackCreated,
        EventKind::StatusChanged,
    ];

    /// The stored name: the `type` of the live message.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CommentAdded => "comment",
            EventKind::CommentEdited => "comment_edited",
            EventKind::CommentDeleted => "comment_deleted",
            EventKind::CommentResolved => "comment_resolved",
            EventKind::CommentReopened => "comment_reopened",
            EventKind::ReactionAdded => "reaction",
            EventKind::ReactionRemoved => "reaction_removed",
            EventKind::FeedbackCreated => "feedback_created",
            EventKind::StatusChanged => "status_changed",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub project: ProjectId,
    pub kind: EventKind,
    pub actor: UserId,
    pub comment: Option<CommentId>,
    pub feedback: Option<FeedbackId>,
    /// The emoji of a reaction event; `"<status> <priority>"` of a status
    /// change.
    pub detail: Option<&'a str>,
    /// The client's key, for commands that are retried by it.
    pub key: Option<&'a str>,
}

/// How many of `events` each project gets, in ascending project order.
pub fn per_project(events: &[NewEvent<'_>]) -> Vec<(ProjectId, i64)> {
    let mut counts: std::collections::BTreeMap<ProjectId, i64> = Default::default();
    for e in events {
        *counts.entry(e.project).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Numbers `events` given each project's newest number after the bump
/// (`last`): a project's events get the numbers up to it, in slice order.
pub fn number(
    events: &[NewEvent<'_>],
    counts: &[(ProjectId, i64)],
    last: &HashMap<ProjectId, i64>,
) -> Result<Vec<i64>, StoreError> {
    let mut next: HashMap<ProjectId, i64> = HashMap::with_capacity(counts.len());
    for (project, n) in counts {
        let newest = last.get(project).ok_or(StoreError::NotFound)?;
        next.insert(*project, newest - n + 1);
    }
    Ok(events
        .iter()
        .map(|e| {
            let seq = next.entry(e.project).or_default();
            *seq += 1;
            *seq - 1
        })
        .collect())
}

/// Looks up the event a keyed command made earlier, inside `$tx`:
/// `Some(seq)` when `$actor` already sent `$key`.
macro_rules! event_of_key {
    ($tx:expr, $actor:expr, $key:expr) => {{
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM project_events WHERE actor_id = $1 AND idempotency_key = $2",
        )
        .bind($actor)
        .bind($key)
        .fetch_optional(&mut *$tx)
        .await?;
        seq
    }};
}
pub(crate) use event_of_key;

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    seq: i64,
    kind: String,
    actor_id: i64,
    created_at: i64,
    comment_id: Option<i64>,
    feedback_id: Option<i64>,
    detail: Option<String>,
}

/// One page of a project's log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// Live messages, oldest first, each with its `event`.
    pub events: Vec<ServerMessage>,
    /// Whether the log holds more after the last of `events`.
    pub more: bool,
}

impl Store {
    /// The number of the project's newest event (0: none yet); `None` when
    /// the project does not exist.
    pub async fn last_seq(&self, project: ProjectId) -> Result<Option<Seq>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT last_seq FROM projects WHERE id = $1",
        )
        .bind(project)
        .fetch_optional(pool)
        .await)?)
    }

    /// Up to `limit` events of the project after `since`, oldest first, as
    /// the live messages that announced them, showing each entity as it is
    /// now.
    pub async fn events_since(
        &self,
        project: ProjectId,
        since: Seq,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let limit = limit.max(1);
        let mut rows: Vec<EventRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT seq, kind, actor_id, created_at, comment_id, feedback_id, detail \
             FROM project_events WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(project)
        .bind(since)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let comment_ids: Vec<CommentId> = rows
            .iter()
            .filter(|r| r.kind.starts_with("comment"))
            .filter_map(|r| r.comment_id)
            .collect();
        let feedback_ids: Vec<FeedbackId> = rows
            .iter()
            .filter(|r| r.kind == EventKind::FeedbackCreated.as_str())
            .filter_map(|r| r.feedback_id)
            .collect();
        let comments = self.comments_by_id(&comment_ids).await?;
        let feedback = self.feedback_by_ids(&feedback_ids).await?;
        let events = rows
            .into_iter()
            .filter_map(|row| materialize(row, &comments, &feedback))
            .collect();
        Ok(EventPage { events, more })
    }

    /// Comments by id as events carry them (missing ids are left out).
    pub(super) async fn comments_by_id(
        &self,
        ids: &[CommentId],
    ) -> Result<HashMap<CommentId, Comment>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(MAX_BATCHED_KEYS) {
            let rows: Vec<CommentRow> = on_pool!(self, pool => {
                let mut query = QueryBuilder::new(concat!("SELECT ", comment_columns!(), " FROM comments WHERE id IN ("));
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await
            })?;
            out.extend(rows.into_iter().map(|r| (r.id, r.into_event())));
        }
        Ok(out)
    }

    async fn feedback_by_ids(
        &self,
        ids: &[FeedbackId],
    ) -> Result<HashMap<FeedbackId, Feedback>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BATCHED_KEYS) {
            let rows: Vec<FeedbackRow> = on_pool!(self, pool => {
                let mut query = QueryBuilder::new(concat!("SELECT ", feedback_columns!(), " FROM feedback WHERE id IN ("));
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await
            })?;
            out.extend(rows.into_iter().map(|r| (r.id, r.into_wire())));
        }
        Ok(out)
    }
}

/// What a live or replayed event carries of its place in the log: its
/// number, and its predecessor's, which is the number before it (the log
/// has no holes); `at` is its time as the wire writes it.
pub(super) fn meta(seq: Seq, actor: UserId, at: String) -> EventMeta {
    EventMeta {
        seq,
        prev_seq: seq - 1,
        actor_id: actor,
        at,
    }
}

/// The live message of one stored event, or `None` when what it names is
/// gone (its project's rows are deleted together, so only a corrupt store
/// gets here) or its kind is unknown to this version.
fn materialize(
    row: EventRow,
    comments: &HashMap<CommentId, Comment>,
    feedback: &HashMap<FeedbackId, Feedback>,
) -> Option<ServerMessage> {
    let kind = EventKind::parse(&row.kind)?;
    let at = rfc3339(row.created_at);
    let event = Some(meta(row.seq, row.actor_id, at.clone()));
    let user_id = row.actor_id;
    let comment = || row.comment_id.and_then(|id| comments.get(&id)).cloned();
    let reaction = || {
        Some(Reaction {
            comment_id: row.comment_id?,
            user_id,
            emoji: row.detail.clone()?,
            created: at.clone(),
        })
    };
    Some(match kind {
        EventKind::CommentAdded => ServerMessage::Comment {
            comment: comment()?,
            user_id,
            event,
        },
        EventKind::CommentEdited => ServerMessage::CommentEdited {
            comment: comment()?,
            user_id,
            event,
        },
        EventKind::CommentDeleted => ServerMessage::CommentDeleted {
            comment: comment()?,
            user_id,
            event,
        },
        EventKind::CommentResolved => ServerMessage::CommentResolved {
            comment: comment()?,
            user_id,
            event,
        },
        EventKind::CommentReopened => ServerMessage::CommentReopened {
            comment: comment()?,
            user_id,
            event,
        },
        EventKind::ReactionAdded => ServerMessage::Reaction {
            reaction: reaction()?,
            user_id,
            event,
        },
        EventKind::ReactionRemoved => ServerMessage::ReactionRemoved {
            reaction: reaction()?,
            user_id,
            event,
        },
        EventKind::FeedbackCreated => ServerMessage::FeedbackCreated {
            feedback: row.feedback_id.and_then(|id| feedback.get(&id)).cloned()?,
            event,
        },
        EventKind::StatusChanged => {
            let detail = row.detail?;
            let (status, priority) = detail.split_once(' ')?;
            ServerMessage::StatusChanged {
                feedback_id: row.feedback_id?,
                status: status.to_owned(),
                priority: priority.to_owned(),
                user_id,
                event,
            }
        }
    })
}

/// The `detail` of a status change event.
pub fn status_detail(status: &str, priority: &str) -> String {
    format!("{status} {priority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(project: ProjectId) -> NewEvent<'static> {
        NewEvent {
            project,
            kind: EventKind::CommentAdded,
            actor: 1,
            comment: None,
            feedback: None,
            detail: None,
            key: None,
        }
    }

    #[test]
    fn events_of_several_projects_are_numbered_per_project_in_order() {
        let events = [event(7), event(3), event(7), event(7), event(3)];
        let counts = per_project(&events);
        assert_eq!(counts, vec![(3, 2), (7, 3)]);
        // After the bump project 3's newest is 12 and project 7's is 3.
        let last = HashMap::from([(3, 12), (7, 3)]);
        assert_eq!(
            number(&events, &counts, &last).unwrap(),
            vec![1, 11, 2, 3, 12]
        );
        assert!(matches!(
            number(&events, &counts, &HashMap::from([(3, 12)])),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn every_kind_reads_back_by_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("comment_exploded"), None);
    }

    #[test]
    fn a_status_change_keeps_the_values_it_was_made_with() {
        let row = EventRow {
            seq: 7,
            kind: "status_changed".into(),
            actor_id: 3,
            created_at: 0,
            comment_id: None,
            feedback_id: Some(9),
            detail: Some(status_detail("closed", "high")),
        };
        let msg = materialize(row, &HashMap::new(), &HashMap::new());
        let Some(ServerMessage::StatusChanged {
            feedback_id,
            status,
            priority,
            user_id,
            event: Some(event),
        }) = msg
        else {
            panic!("expected a status change, got {msg:?}");
        };
        assert_eq!(
            (feedback_id, status.as_str(), priority.as_str()),
            (9, "closed", "high")
        );
        assert_eq!((user_id, event.seq, event.prev_seq), (3, 7, 6));
    }
}
