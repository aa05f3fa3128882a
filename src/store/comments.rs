//! Comments and reactions: the batched, idempotent comment insert the
//! hub's persister uses, and the history reads.

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{Comment, CommentId, EventMeta, ProjectId, Seq, UserId};

use super::events::{EventKind, NewEvent, append_events};
use super::rows::{CommentRow, comment_columns};
use super::{MAX_BATCHED_KEYS, Store, StoreError, on_pool};
use crate::domain::{IdempotencyKey, ValidComment};
use crate::time::now_ms;

/// The newest comments of a project and the log position they reflect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Newest {
    pub comments: Vec<Comment>,
    pub last_seq: Seq,
}

/// Sets the reply counts (of roots) and reaction counts of `$comments` (a
/// `&mut [Comment]`) with one grouped read (replies and reactions joined by
/// `UNION ALL`: one round trip) per [`MAX_BATCHED_KEYS`](super::MAX_BATCHED_KEYS)
/// comments, on the connection `$conn` — a transaction, when the counts
/// must match a snapshot. A macro for the same reason as [`append_events!`].
macro_rules! add_counts {
    ($conn:expr, $comments:expr) => {{
        let comments: &mut [vridge_protocol::Comment] = $comments;
        let ids: Vec<i64> = comments.iter().map(|c| c.id).collect();
        let mut replies: HashMap<i64, u32> = HashMap::new();
        let mut reactions: HashMap<i64, Vec<vridge_protocol::ReactionCount>> = HashMap::new();
        for chunk in ids.chunks($crate::store::MAX_BATCHED_KEYS) {
            // A reply count comes back with a NULL emoji.
            let mut query = QueryBuilder::new(
                "SELECT parent_id, NULL AS emoji, COUNT(*) FROM comments WHERE parent_id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(
                ") GROUP BY parent_id UNION ALL \
                 SELECT comment_id, emoji, COUNT(*) FROM reactions WHERE comment_id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(") GROUP BY comment_id, emoji");
            let rows: Vec<(i64, Option<String>, i64)> =
                query.build_query_as().fetch_all(&mut *$conn).await?;
            for (id, emoji, count) in rows {
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                match emoji {
                    None => {
                        replies.insert(id, count);
                    }
                    Some(emoji) => reactions
                        .entry(id)
                        .or_default()
                        .push(vridge_protocol::ReactionCount { emoji, count }),
                }
            }
        }
        for comment in comments.iter_mut() {
            comment.reply_count = replies.get(&comment.id).copied().unwrap_or(0);
            let mut counts = reactions.remove(&comment.id).unwrap_or_default();
            counts.sort_unstable_by(|a, b| a.emoji.cmp(&b.emoji));
            comment.reactions = counts;
        }
    }};
}

/// One comment to store. The feedback item's project has been checked, and
/// `parent` (for a reply) is a root comment of the same feedback item.
#[derive(Debug, Clone)]
pub struct CommentRequest {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub comment: ValidComment,
    pub key: IdempotencyKey,
    pub parent: Option<CommentId>,
}

/// The outcome of one [`CommentRequest`]: the stored comment, and whether it
/// had been stored before (a retry) rather than by this call.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredComment {
    pub comment: Comment,
    pub duplicate: bool,
    /// The event that added it; `None` for a duplicate.
    pub event: Option<EventMeta>,
}

impl Store {
    /// Stores a batch of comments in one transaction with one multi-row
    /// INSERT, and returns one outcome per request, in request order. A
    /// request whose (user, idempotency key) is already stored — earlier, or
    /// earlier in the same batch — gets the original comment back, marked
    /// duplicate, and nothing new is written for it.
    ///
    /// Each new comment's `prev_id` is the project's comment before it
    /// (`None` for the first): after the INSERT, still in the transaction,
    /// the newest id of the project below the batch's first new id is read,
    /// the project's new rows are chained from it in id order, and one
    /// UPDATE writes the links. The read follows the write so that, on
    /// SQLite, it runs under the write lock (a read before the first write
    /// would see a snapshot another writer may since have moved past).
    /// Duplicates are not new rows, so they never become links. Rooms use
    /// the chain to deliver a project's comments in commit order on every
    /// node.
    ///
    /// Ids of one project become visible in id order, on both engines, which
    /// is what lets a reader treat "the newest id I read" as a watermark
    /// (gapless resume, `initial_state`) and makes `prev_id` exact. SQLite
    /// has one writer at a time.
    /// PostgreSQL hands identity ids out at INSERT time, so two nodes'
    /// transactions could commit a lower id after a higher one; this takes a
    /// transaction-scoped advisory lock per project of the batch (keyed by
    /// the project id, in ascending order so two batches never deadlock)
    /// before inserting, so within a project the next ids are only handed
    /// out once the previous holder committed. Different projects never wait
    /// for each other.
    pub async fn insert_comments(
        &self,
        requests: &[CommentRequest],
    ) -> Result<Vec<StoredComment>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let postgres = matches!(self, Store::Postgres(_));
        let mut projects: Vec<ProjectId> = requests.iter().map(|r| r.project_id).collect();
        projects.sort_unstable();
        projects.dedup();
        let mut metas_of: HashMap<CommentId, EventMeta> = HashMap::new();
        let (inserted, existing) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                for project in &projects {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(*project)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let mut insert = QueryBuilder::new(
                "INSERT INTO comments (project_id, feedback_id, user_id, text, title, section, security, \
                 video_timestamp, idempotency_key, created_at, parent_id, timestamp_end) ",
            );
            insert.push_values(requests, |mut row, r| {
                let c = r.comment.inner();
                row.push_bind(r.project_id)
                    .push_bind(c.feedback_id)
                    .push_bind(r.user_id)
                    .push_bind(c.text.as_str())
                    .push_bind(c.title.as_deref())
                    .push_bind(c.section.as_deref())
                    .push_bind(c.security.as_deref())
                    .push_bind(c.timestamp)
                    .push_bind(r.key.as_str())
                    .push_bind(now)
                    .push_bind(r.parent)
                    .push_bind(c.timestamp_end);
            });
            insert.push(" ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING ");
            insert.push(comment_columns!());
            let mut inserted: Vec<CommentRow> = insert
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            if !inserted.is_empty() {
                let mut newest_before: HashMap<ProjectId, Option<CommentId>> = HashMap::new();
                for (project, first_new) in first_new_ids(&inserted) {
                    let newest: Option<CommentId> = sqlx::query_scalar(
                        "SELECT MAX(id) FROM comments WHERE project_id = $1 AND id < $2",
                    )
                    .bind(project)
                    .bind(first_new)
                    .fetch_one(&mut *tx)
                    .await?;
                    newest_before.insert(project, newest);
                }
                link_to_predecessors(&mut inserted, &newest_before);
                let mut link = QueryBuilder::new("UPDATE comments SET prev_id = CASE id");
                for row in &inserted {
                    link.push(" WHEN ");
                    link.push_bind(row.id);
                    link.push(" THEN ");
                    link.push_bind(row.prev_id);
                }
                link.push(" END WHERE id IN (");
                let mut ids = link.separated(", ");
                for row in &inserted {
                    ids.push_bind(row.id);
                }
                link.push(")");
                link.build().execute(&mut *tx).await?;
                // One event per new comment, numbered in id order within
                // each project (ids and numbers then agree on the order).
                let mut rows: Vec<&CommentRow> = inserted.iter().collect();
                rows.sort_unstable_by_key(|r| r.id);
                let events: Vec<NewEvent<'_>> = rows
                    .iter()
                    .map(|r| NewEvent {
                        project: r.project_id,
                        kind: EventKind::CommentAdded,
                        actor: r.user_id,
                        comment: Some(r.id),
                        feedback: Some(r.feedback_id),
                        detail: None,
                        key: None,
                    })
                    .collect();
                let metas = append_events!(tx, &events, now);
                metas_of.extend(rows.iter().map(|r| r.id).zip(metas));
            }

            let mut existing: Vec<CommentRow> = Vec::new();
            if inserted.len() < requests.len() {
                let mut select = QueryBuilder::new(concat!("SELECT ", comment_columns!(), " FROM comments WHERE "));
                let mut ors = select.separated(" OR ");
                for r in requests {
                    ors.push("(user_id = ");
                    ors.push_bind_unseparated(r.user_id);
                    ors.push_unseparated(" AND idempotency_key = ");
                    ors.push_bind_unseparated(r.key.as_str());
                    ors.push_unseparated(")");
                }
                existing = select.build_query_as().fetch_all(&mut *tx).await?;
            }
            tx.commit().await?;
            (inserted, existing)
        });
        match_outcomes(requests, inserted, existing, metas_of)
    }

    /// The `limit` newest comments of a project, oldest first.
    pub async fn latest_comments(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<Comment>, StoreError> {
        let mut rows = on_pool!(self, pool => sqlx::query_as::<_, CommentRow>(concat!("SELECT ", comment_columns!(), " FROM comments WHERE project_id = $1 ORDER BY id DESC LIMIT $2"))
        .bind(project)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
        rows.reverse();
        Ok(rows.into_iter().map(CommentRow::into_wire).collect())
    }

    /// The `limit` newest comments of each project, oldest first, with
    /// their reply and reaction counts, and the number of each project's
    /// newest event: what a connecting socket's `initial_state` shows.
    /// One query per [`MAX_BATCHED_KEYS`] projects (one index range each,
    /// joined by `UNION ALL`), for the batched reads of concurrent connects.
    ///
    /// Everything is read in one snapshot (a repeatable-read transaction on
    /// PostgreSQL; SQLite's read transaction is one), so `last_seq` is
    /// exactly the log position the comments and counts reflect: live events
    /// after it are news to the client, and none before it is.
    pub async fn latest_comments_of(
        &self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<HashMap<ProjectId, Newest>, StoreError> {
        let mut by_project: HashMap<ProjectId, Newest> =
            projects.iter().map(|p| (*p, Newest::default())).collect();
        if projects.is_empty() {
            return Ok(by_project);
        }
        let postgres = matches!(self, Store::Postgres(_));
        for chunk in projects.chunks(MAX_BATCHED_KEYS) {
            let (mut comments, seqs) = on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                if postgres {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                }
                let mut query = QueryBuilder::new("");
                for (i, project) in chunk.iter().enumerate() {
                    if i > 0 {
                        query.push(" UNION ALL ");
                    }
                    query.push(concat!("SELECT * FROM (SELECT ", comment_columns!(), " FROM comments WHERE project_id = "));
                    query.push_bind(*project);
                    query.push(" ORDER BY id DESC LIMIT ");
                    query.push_bind(i64::from(limit));
                    query.push(format_args!(") AS newest_{i}"));
                }
                let rows: Vec<CommentRow> = query.build_query_as().fetch_all(&mut *tx).await?;
                let mut seqs = QueryBuilder::new("SELECT id, last_seq FROM projects WHERE id IN (");
                let mut list = seqs.separated(", ");
                for project in chunk {
                    list.push_bind(*project);
                }
                seqs.push(")");
                let seqs: Vec<(i64, i64)> = seqs.build_query_as().fetch_all(&mut *tx).await?;
                let mut comments: Vec<Comment> = rows.into_iter().map(CommentRow::into_wire).collect();
                add_counts!(tx, &mut comments);
                tx.commit().await?;
                (comments, seqs)
            });
            for (project, last_seq) in seqs {
                if let Some(newest) = by_project.get_mut(&project) {
                    newest.last_seq = last_seq;
                }
            }
            comments.sort_unstable_by_key(|c| c.id);
            for comment in comments {
                if let Some(newest) = by_project.get_mut(&comment.project_id) {
                    newest.comments.push(comment);
                }
            }
        }
        Ok(by_project)
    }

    /// Sets the reply and reaction counts of `comments` (see
    /// [`Comment::reply_count`], [`Comment::reactions`]).
    pub async fn with_counts(
        &self,
        mut comments: Vec<Comment>,
    ) -> Result<Vec<Comment>, StoreError> {
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            add_counts!(conn, &mut comments);
        });
        Ok(comments)
    }

    /// The id of the project's newest comment, if it has any.
    pub async fn newest_comment_id(
        &self,
        project: ProjectId,
    ) -> Result<Option<CommentId>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(id) FROM comments WHERE project_id = $1",
        )
        .bind(project)
        .fetch_one(pool)
        .await)?)
    }

    /// Up to `limit` comments of a project with id greater than `since`,
    /// oldest first: the feed a reconnecting client fills its gap from.
    pub async fn comments_since(
        &self,
        project: ProjectId,
        since: CommentId,
        limit: u32,
    ) -> Result<Vec<Comment>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, CommentRow>(concat!("SELECT ", comment_columns!(), " FROM comments WHERE project_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"))
        .bind(project)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(CommentRow::into_wire).collect())
    }
}

/// The smallest freshly inserted id of each project, in project order.
fn first_new_ids(inserted: &[CommentRow]) -> Vec<(ProjectId, CommentId)> {
    let mut first: HashMap<ProjectId, CommentId> = HashMap::new();
    for row in inserted {
        let id = first.entry(row.project_id).or_insert(row.id);
        *id = (*id).min(row.id);
    }
    let mut first: Vec<_> = first.into_iter().collect();
    first.sort_unstable();
    first
}

/// Sets `prev_id` of freshly inserted rows: each project's new rows chain,
/// in id order, from the project's newest id before the insert. Duplicates
/// are not among `inserted`, so they never become links.
fn link_to_predecessors(
    inserted: &mut [CommentRow],
    newest_before: &HashMap<ProjectId, Option<CommentId>>,
) {
    let mut order: Vec<usize> = (0..inserted.len()).collect();
    order.sort_unstable_by_key(|i| inserted[*i].id);
    let mut previous = newest_before.clone();
    for i in order {
        let row = &mut inserted[i];
        let prev = previous.entry(row.project_id).or_insert(None);
        row.prev_id = *prev;
        *prev = Some(row.id);
    }
}

/// Pairs each request with its row: the first request of a key takes the
/// freshly inserted row; any other request of that key is a duplicate of it
/// (or of the row stored before this batch).
fn match_outcomes(
    requests: &[CommentRequest],
    inserted: Vec<CommentRow>,
    existing: Vec<CommentRow>,
    mut metas_of: HashMap<CommentId, EventMeta>,
) -> Result<Vec<StoredComment>, StoreError> {
    let mut fresh: HashMap<(UserId, String), CommentRow> = inserted
        .into_iter()
        .map(|row| ((row.user_id, row.idempotency_key.clone()), row))
        .collect();
    let mut known: HashMap<(UserId, String), Comment> = existing
        .into_iter()
        .map(|row| ((row.user_id, row.idempotency_key.clone()), row.into_wire()))
        .collect();
    requests
        .iter()
        .map(|r| {
            let key = (r.user_id, r.key.as_str().to_owned());
            if let Some(row) = fresh.remove(&key) {
                let comment = row.into_wire();
                known.insert(key, comment.clone());
                return Ok(StoredComment {
                    event: metas_of.remove(&comment.id),
                    comment,
                    duplicate: false,
                });
            }
            known
                .get(&key)
                .map(|c| StoredComment {
                    comment: c.clone(),
                    duplicate: true,
                    event: None,
                })
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("no row for idempotency key of user {}", r.user_id))
                })
        })
        .collect()
}

/// An earlier version of an edited comment.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CommentVersion {
    /// 1 is the text as first posted.
    pub version: i64,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    /// When this version was written (Unix ms).
    pub written_at: i64,
}

/// What a reply needs to know of the comment it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct CommentRef {
    pub project_id: ProjectId,
    pub feedback_id: i64,
    /// Its own parent: a reply to a reply is attached to this root.
    pub parent_id: Option<CommentId>,
}

impl Store {
    /// Where a comment sits (for replies and changes); `None` when there is
    /// no such comment.
    pub async fn comment_ref(&self, id: CommentId) -> Result<Option<CommentRef>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT project_id, feedback_id, parent_id FROM comments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?)
    }

    /// The thread a comment belongs to: its root (with counts) and every
    /// reply to it, oldest first; `None` when there is no such comment.
    pub async fn thread(
        &self,
        id: CommentId,
    ) -> Result<Option<(Comment, Vec<Comment>)>, StoreError> {
        let Some(at) = self.comment_ref(id).await? else {
            return Ok(None);
        };
        let root = at.parent_id.unwrap_or(id);
        let rows: Vec<CommentRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", comment_columns!(), " FROM comments WHERE id = $1 OR parent_id = $1 ORDER BY id"
        ))
        .bind(root)
        .fetch_all(pool)
        .await)?;
        let mut comments = self
            .with_counts(rows.into_iter().map(CommentRow::into_wire).collect())
            .await?
            .into_iter();
        let Some(first) = comments.next().filter(|c| c.id == root) else {
            return Err(StoreError::Corrupt(format!("thread {root} has no root")));
        };
        Ok(Some((first, comments.collect())))
    }

    /// A comment's earlier versions, oldest first (none when it was never
    /// edited, or was deleted).
    pub async fn comment_versions(&self, id: CommentId) -> Result<Vec<CommentVersion>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT version, text, title, section, written_at FROM comment_versions \
             WHERE comment_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(pool)
        .await)?)
    }
}
