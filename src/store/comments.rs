//! Comments and reactions: the batched, idempotent comment insert the
//! hub's persister uses, and the history reads.

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{Comment, CommentId, ProjectId, Reaction, UserId};

use super::rows::{CommentRow, ReactionRow, comment_columns};
use super::{MAX_BATCHED_KEYS, Store, StoreError, on_pool};
use crate::domain::{Emoji, IdempotencyKey, ValidComment};
use crate::time::now_ms;

/// One comment to store. The feedback item's project has been checked.
#[derive(Debug, Clone)]
pub struct CommentRequest {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub comment: ValidComment,
    pub key: IdempotencyKey,
}

/// The outcome of one [`CommentRequest`]: the stored comment, and whether it
/// had been stored before (a retry) rather than by this call.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredComment {
    pub comment: Comment,
    pub duplicate: bool,
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
                 video_timestamp, idempotency_key, created_at) ",
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
                    .push_bind(now);
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
        match_outcomes(requests, inserted, existing)
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

    /// The `limit` newest comments of each project, oldest first: what
    /// [`latest_comments`](Self::latest_comments) answers for each, in one
    /// query (one index range per project, joined by `UNION ALL`), for the
    /// batched reads of concurrent connects. A project without comments maps
    /// to an empty list. One query per [`MAX_BATCHED_KEYS`] projects.
    pub async fn latest_comments_of(
        &self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<HashMap<ProjectId, Vec<Comment>>, StoreError> {
        let mut by_project: HashMap<ProjectId, Vec<Comment>> =
            projects.iter().map(|p| (*p, Vec::new())).collect();
        if projects.is_empty() {
            return Ok(by_project);
        }
        for chunk in projects.chunks(MAX_BATCHED_KEYS) {
            let rows: Vec<CommentRow> = on_pool!(self, pool => {
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
                query.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                if let Some(comments) = by_project.get_mut(&row.project_id) {
                    comments.push(row.into_wire());
                }
            }
        }
        for comments in by_project.values_mut() {
            comments.sort_unstable_by_key(|c| c.id);
        }
        Ok(by_project)
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

    /// The project a comment belongs to.
    pub async fn comment_project(
        &self,
        comment: CommentId,
    ) -> Result<Option<ProjectId>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT project_id FROM comments WHERE id = $1",
        )
        .bind(comment)
        .fetch_optional(pool)
        .await)?)
    }

    /// Stores a reaction; `None` when this user already reacted to this
    /// comment with this emoji (nothing is written twice).
    pub async fn add_reaction(
        &self,
        comment: CommentId,
        user: UserId,
        emoji: &Emoji,
    ) -> Result<Option<Reaction>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ReactionRow>(
            "INSERT INTO reactions (comment_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (comment_id, user_id, emoji) DO NOTHING RETURNING comment_id, user_id, emoji, created_at",
        )
        .bind(comment)
        .bind(user)
        .bind(emoji.as_str())
        .bind(now_ms())
        .fetch_optional(pool)
        .await)
        .map_err(StoreError::from_write)?;
        Ok(row.map(ReactionRow::into_wire))
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
                    comment,
                    duplicate: false,
                });
            }
            known
                .get(&key)
                .map(|c| StoredComment {
                    comment: c.clone(),
                    duplicate: true,
                })
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("no row for idempotency key of user {}", r.user_id))
                })
        })
        .collect()
}
