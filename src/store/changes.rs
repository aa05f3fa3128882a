//! Changes to a stored comment — edit, delete, resolve, reopen, react,
//! take a reaction back — each in one transaction with the event it makes.
//!
//! Every change first takes its project's write order (a no-op UPDATE of
//! the project row: PostgreSQL's row lock, SQLite's write lock), then reads
//! the comment, decides, writes, and appends the event. So a change and its
//! event commit together, in the project's event order, and two changes to
//! one comment never both act on the state before the other.

use vridge_protocol::{CommentId, ProjectId, Reaction, Seq, ServerMessage, UserId};

use super::engine::append_events;
use super::events::{EventKind, NewEvent, event_of_key};
use super::rows::{CommentRow, ReactionRow, comment_columns};
use super::{Store, StoreError, on_pool};
use crate::domain::{Emoji, IdempotencyKey, Role, ValidEdit};
use crate::time::now_ms;

/// What to do to a comment.
#[derive(Debug, Clone)]
pub enum CommentChange {
    /// New text (and title, section where given); the author only.
    Edit(ValidEdit),
    /// Withdraw it; its author, or an admin or owner.
    Delete,
    Resolve,
    Reopen,
    /// Add the actor's reaction.
    React(Emoji),
    /// Take the actor's reaction back.
    Unreact(Emoji),
}

impl CommentChange {
    fn kind(&self) -> EventKind {
        match self {
            CommentChange::Edit(_) => EventKind::CommentEdited,
            CommentChange::Delete => EventKind::CommentDeleted,
            CommentChange::Resolve => EventKind::CommentResolved,
            CommentChange::Reopen => EventKind::CommentReopened,
            CommentChange::React(_) => EventKind::ReactionAdded,
            CommentChange::Unreact(_) => EventKind::ReactionRemoved,
        }
    }
}

/// One change, by a member of `project` with `role`.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub project: ProjectId,
    pub actor: UserId,
    pub role: Role,
    pub comment: CommentId,
    pub change: CommentChange,
    /// The client's key: a retry finds the event its first attempt made.
    pub key: Option<IdempotencyKey>,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOutcome {
    /// Committed: the live message announcing it, with its event.
    Applied(Box<ServerMessage>),
    /// Nothing to do (already resolved, reaction already there, …).
    Unchanged,
    /// A retry of a change committed earlier, which made event `seq`.
    Duplicate(Seq),
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such comment in this project, or it is deleted (only a delete
    /// may name a deleted comment, and changes nothing).
    #[error("no such comment")]
    NotFound,
    /// The actor may not make this change to this comment.
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        ChangeError::Store(e.into())
    }
}

/// Rewrites the reaction counts kept on comment `$comment`'s row from its
/// reactions, inside `$tx` (see the `reaction_counts` column).
macro_rules! recount_reactions {
    ($tx:expr, $comment:expr) => {{
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT emoji, COUNT(*) FROM reactions WHERE comment_id = $1 GROUP BY emoji ORDER BY emoji",
        )
        .bind($comment)
        .fetch_all(&mut *$tx)
        .await?;
        let counts: Vec<vridge_protocol::ReactionCount> = counts
            .into_iter()
            .map(|(emoji, count)| vridge_protocol::ReactionCount {
                emoji,
                count: u32::try_from(count).unwrap_or(u32::MAX),
            })
            .collect();
        let json = if counts.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&counts).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        };
        sqlx::query("UPDATE comments SET reaction_counts = $2 WHERE id = $1")
            .bind($comment)
            .bind(json)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// The decision taken on the comment as read.
enum Plan {
    Unchanged,
    Write,
}

impl Store {
    /// Applies one change and appends its event, in one transaction.
    pub async fn change_comment(&self, req: &ChangeRequest) -> Result<ChangeOutcome, ChangeError> {
        let now = now_ms();
        let key = req.key.as_ref().map(IdempotencyKey::as_str);
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            let locked = sqlx::query("UPDATE projects SET last_seq = last_seq WHERE id = $1")
                .bind(req.project)
                .execute(&mut *tx)
                .await?;
            if locked.rows_affected() == 0 {
                return Err(ChangeError::NotFound);
            }
            if let Some(key) = key
                && let Some(seq) = event_of_key!(tx, req.actor, key)
            {
                return Ok(ChangeOutcome::Duplicate(seq));
            }
            let row: Option<CommentRow> = sqlx::query_as(concat!(
                "SELECT ", comment_columns!(), " FROM comments WHERE id = $1 AND project_id = $2"
            ))
            .bind(req.comment)
            .bind(req.project)
            .fetch_optional(&mut *tx)
            .await?;
            let row = row.ok_or(ChangeError::NotFound)?;
            let plan = plan(req, &row)?;
            if matches!(plan, Plan::Unchanged) {
                return Ok(ChangeOutcome::Unchanged);
            }
            let mut reaction: Option<Reaction> = None;
            match &req.change {
                CommentChange::Edit(edit) => {
                    let edit = edit.inner();
                    sqlx::query(
                        "INSERT INTO comment_versions (comment_id, version, text, title, section, written_at) \
                         SELECT id, (SELECT COALESCE(MAX(version), 0) + 1 FROM comment_versions WHERE comment_id = $1), \
                         text, title, section, COALESCE(edited_at, created_at) FROM comments WHERE id = $1",
                    )
                    .bind(req.comment)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                    sqlx::query(
                        "UPDATE comments SET text = $2, title = COALESCE($3, title), \
                         section = COALESCE($4, section), edited_at = $5 WHERE id = $1",
                    )
                    .bind(req.comment)
                    .bind(edit.text.as_str())
                    .bind(edit.title.as_deref())
                    .bind(edit.section.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                }
                CommentChange::Delete => {
                    sqlx::query(
                        "UPDATE comments SET text = '', title = NULL, section = NULL, security = NULL, \
                         deleted_at = $2 WHERE id = $1",
                    )
                    .bind(req.comment)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM comment_versions WHERE comment_id = $1")
                        .bind(req.comment)
                        .execute(&mut *tx)
                        .await?;
                }
                CommentChange::Resolve => {
                    sqlx::query("UPDATE comments SET resolved_at = $2, resolved_by = $3 WHERE id = $1")
                        .bind(req.comment)
                        .bind(now)
                        .bind(req.actor)
                        .execute(&mut *tx)
                        .await?;
                }
                CommentChange::Reopen => {
                    sqlx::query("UPDATE comments SET resolved_at = NULL, resolved_by = NULL WHERE id = $1")
                        .bind(req.comment)
                        .execute(&mut *tx)
                        .await?;
                }
                CommentChange::React(emoji) => {
                    let added: Option<ReactionRow> = sqlx::query_as(
                        "INSERT INTO reactions (comment_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (comment_id, user_id, emoji) DO NOTHING \
                         RETURNING comment_id, user_id, emoji, created_at",
                    )
                    .bind(req.comment)
                    .bind(req.actor)
                    .bind(emoji.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                    let Some(added) = added else {
                        return Ok(ChangeOutcome::Unchanged);
                    };
                    reaction = Some(added.into_wire());
                    recount_reactions!(tx, req.comment);
                }
                CommentChange::Unreact(emoji) => {
                    let removed: Option<ReactionRow> = sqlx::query_as(
                        "DELETE FROM reactions WHERE comment_id = $1 AND user_id = $2 AND emoji = $3 \
                         RETURNING comment_id, user_id, emoji, created_at",
                    )
                    .bind(req.comment)
                    .bind(req.actor)
                    .bind(emoji.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(removed) = removed else {
                        return Ok(ChangeOutcome::Unchanged);
                    };
                    let mut removed = removed.into_wire();
                    removed.created = crate::time::rfc3339(now);
                    reaction = Some(removed);
                    recount_reactions!(tx, req.comment);
                }
            }
            let kind = req.change.kind();
            let emoji = match &req.change {
                CommentChange::React(e) | CommentChange::Unreact(e) => Some(e.as_str()),
                _ => None,
            };
            let events = [NewEvent {
                project: req.project,
                kind,
                actor: req.actor,
                comment: Some(req.comment),
                feedback: Some(row.feedback_id),
                detail: emoji,
                key,
            }];
            let meta = append_events!(tx, &events, now).pop();
            let current: CommentRow = sqlx::query_as(concat!(
                "SELECT ", comment_columns!(), " FROM comments WHERE id = $1"
            ))
            .bind(req.comment)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ChangeOutcome::Applied(Box::new(announce(
                kind,
                current,
                reaction,
                req.actor,
                meta,
            ))))
        })
    }
}

/// Decides what a change does to the comment as read: refuses it, finds
/// nothing to do, or writes.
fn plan(req: &ChangeRequest, row: &CommentRow) -> Result<Plan, ChangeError> {
    let deleted = row.deleted_at.is_some();
    let own = row.user_id == req.actor;
    match &req.change {
        CommentChange::Delete if deleted => Ok(Plan::Unchanged),
        CommentChange::Delete if own || req.role.can_delete_others() => Ok(Plan::Write),
        CommentChange::Delete => Err(ChangeError::Forbidden),
        _ if deleted => Err(ChangeError::NotFound),
        CommentChange::Edit(_) if !own => Err(ChangeError::Forbidden),
        CommentChange::Edit(edit) => {
            let edit = edit.inner();
            let same = edit.text == row.text
                && edit
                    .title
                    .as_ref()
                    .is_none_or(|t| Some(t) == row.title.as_ref())
                && edit
                    .section
                    .as_ref()
                    .is_none_or(|s| Some(s) == row.section.as_ref());
            Ok(if same { Plan::Unchanged } else { Plan::Write })
        }
        CommentChange::Resolve | CommentChange::Reopen if !req.role.can_update() => {
            Err(ChangeError::Forbidden)
        }
        CommentChange::Resolve if row.resolved_at.is_some() => Ok(Plan::Unchanged),
        CommentChange::Reopen if row.resolved_at.is_none() => Ok(Plan::Unchanged),
        CommentChange::React(_) | CommentChange::Unreact(_) if !req.role.can_create() => {
            Err(ChangeError::Forbidden)
        }
        _ => Ok(Plan::Write),
    }
}

/// The live message of a committed change.
fn announce(
    kind: EventKind,
    current: CommentRow,
    reaction: Option<Reaction>,
    actor: UserId,
    event: Option<vridge_protocol::EventMeta>,
) -> ServerMessage {
    let comment = current.into_event();
    let user_id = actor;
    match (kind, reaction) {
        (EventKind::ReactionAdded, Some(reaction)) => ServerMessage::Reaction {
            reaction,
            user_id,
            event,
        },
        (EventKind::ReactionRemoved, Some(reaction)) => ServerMessage::ReactionRemoved {
            reaction,
            user_id,
            event,
        },
        (EventKind::CommentDeleted, _) => ServerMessage::CommentDeleted {
            comment,
            user_id,
            event,
        },
        (EventKind::CommentResolved, _) => ServerMessage::CommentResolved {
            comment,
            user_id,
            event,
        },
        (EventKind::CommentReopened, _) => ServerMessage::CommentReopened {
            comment,
            user_id,
            event,
        },
        _ => ServerMessage::CommentEdited {
            comment,
            user_id,
            event,
        },
    }
}
