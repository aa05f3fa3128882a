//! Comments: the batched, idempotent insert the hub's persister uses (each
//! new comment one event of its project's log), the reads of the newest
//! comments, the gap feed, threads and earlier versions, and the reply and
//! reaction counts history shows. Changes to stored comments are in
//! [`changes`](super::changes).

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{Comment, CommentId, EventMeta, ProjectId, Seq, UserId};

use super::comment_batch::{CommentRequest, InsertNewComments as _};
use super::engine::{BatchStatements as _, NewestRead as _, SeqCommentRow};
use super::events::meta;
use super::rows::{CommentRow, comment_columns};
use super::{MAX_BATCHED_KEYS, Store, StoreError, on_pool};
use crate::time::{now_ms, rfc3339};

/// The newest comments of a project and the log position they reflect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Newest {
    pub comments: Vec<Comment>,
    pub last_seq: Seq,
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
    /// Stores a batch of comments in one transaction, and returns one
    /// outcome per request, in request order. A request whose (user,
    /// idempotency key) is already stored — earlier, or earlier in the same
    /// batch — gets the original comment back, marked duplicate, and nothing
    /// new is written for it.
    ///
    /// Each new comment's `prev_id` is the project's comment before it
    /// (`None` for the first), its reply counts on its thread's root, and it
    /// is one `comment` event of its project's log; what statements write
    /// that differs by engine
    /// ([`InsertNewComments`](super::comment_batch::InsertNewComments)).
    /// Duplicates are not new rows, so they never become links. Rooms
    /// deliver a project's events in commit order on every node by the
    /// events' numbers; the `prev_id` chain serves clients of the comment-id
    /// resume.
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
        let mut projects: Vec<ProjectId> = requests.iter().map(|r| r.project_id).collect();
        projects.sort_unstable();
        projects.dedup();
        let (inserted, existing) = on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            // Within a project the next ids are only handed out once the
            // previous holder committed (see above).
            tx.lock_projects(&projects).await?;
            let inserted = tx.insert_new_comments(requests, now).await?;
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
        let at = rfc3339(now);
        let mut metas_of: HashMap<CommentId, EventMeta> = HashMap::with_capacity(inserted.len());
        let inserted: Vec<CommentRow> = inserted
            .into_iter()
            .map(|row| {
                let event = meta(row.seq, row.comment.user_id, at.clone());
                metas_of.insert(row.comment.id, event);
                row.comment
            })
            .collect();
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
    /// newest event: what a connecting socket's `initial_state` shows. One
    /// query per [`MAX_BATCHED_KEYS`] projects (one index range each, joined
    /// by `UNION ALL`), for the batched reads of concurrent connects.
    ///
    /// Each project's comments come joined with its `last_seq` in the same
    /// statement (one snapshot on both engines), so the number is exactly
    /// the log position the comments and counts reflect. A project without
    /// comments yields no row there; its number is read afterwards together
    /// with whether it has comments now, and if one was committed in
    /// between, the project is read again.
    pub async fn latest_comments_of(
        &self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<HashMap<ProjectId, Newest>, StoreError> {
        let mut by_project: HashMap<ProjectId, Newest> =
            projects.iter().map(|p| (*p, Newest::default())).collect();
        let mut pending: Vec<ProjectId> = projects.to_vec();
        // A project only comes round again when a comment was committed
        // between its two reads; a few rounds settle it.
        for _ in 0..4 {
            if pending.is_empty() {
                break;
            }
            let mut empty = Vec::new();
            for chunk in pending.chunks(MAX_BATCHED_KEYS) {
                let rows = self.newest_with_seq(chunk, limit).await?;
                let mut seen = std::collections::HashSet::new();
                for row in rows {
                    seen.insert(row.comment.project_id);
                    if let Some(newest) = by_project.get_mut(&row.comment.project_id) {
                        newest.last_seq = row.project_seq;
                        newest.comments.push(row.comment.into_wire());
                    }
                }
                empty.extend(chunk.iter().copied().filter(|p| !seen.contains(p)));
            }
            pending.clear();
            for (project, last_seq, has_comments) in self.last_seqs(&empty).await? {
                if has_comments {
                    pending.push(project);
                } else if let Some(newest) = by_project.get_mut(&project) {
                    newest.last_seq = last_seq;
                }
            }
        }
        for newest in by_project.values_mut() {
            newest.comments.sort_unstable_by_key(|c| c.id);
        }
        Ok(by_project)
    }

    /// The newest comments of each of `projects`, each row with its
    /// project's `last_seq`, in one statement (see `engine::NewestRead`).
    async fn newest_with_seq(
        &self,
        projects: &[ProjectId],
        limit: u32,
    ) -> Result<Vec<SeqCommentRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            conn.newest_with_seq(projects, limit).await
        })?)
    }

    /// The newest event number of each project, and whether it has any
    /// comment, read together (missing projects left out). Also what REST
    /// pages' batched reads of `last_seq` run (`BatchedReads::last_seq`).
    pub(super) async fn last_seqs(
        &self,
        projects: &[ProjectId],
    ) -> Result<Vec<(ProjectId, Seq, bool)>, StoreError> {
        let mut out = Vec::with_capacity(projects.len());
        for chunk in projects.chunks(MAX_BATCHED_KEYS) {
            let rows: Vec<(i64, i64, bool)> = on_pool!(self, pool => {
                let mut query = QueryBuilder::new(
                    "SELECT id, last_seq, EXISTS (SELECT 1 FROM comments WHERE comments.project_id = projects.id) \
                     FROM projects WHERE id IN (",
                );
                let mut list = query.separated(", ");
                for project in chunk {
                    list.push_bind(*project);
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// As [`comments_since`](Self::comments_since), with the comments'
    /// reply and reaction counts and the number of the project's newest
    /// event they reflect (read as [`latest_comments_of`](Self::latest_comments_of)
    /// reads it): what a resume by comment id shows.
    pub async fn comments_since_with_seq(
        &self,
        project: ProjectId,
        since: CommentId,
        limit: u32,
    ) -> Result<(Vec<Comment>, Seq), StoreError> {
        let before = self.last_seq(project).await?.unwrap_or(0);
        let rows: Vec<SeqCommentRow> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", comment_columns!(),
            ", (SELECT last_seq FROM projects WHERE projects.id = comments.project_id) AS project_seq \
             FROM comments WHERE project_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"
        ))
        .bind(project)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
        let last_seq = rows.first().map_or(before, |r| r.project_seq);
        Ok((
            rows.into_iter().map(|r| r.comment.into_wire()).collect(),
            last_seq,
        ))
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
        .map(|row| ((row.user_id, row.idempotency_key.clone()), row.into_event()))
        .collect();
    requests
        .iter()
        .map(|r| {
            let key = (r.user_id, r.key.as_str().to_owned());
            if let Some(row) = fresh.remove(&key) {
                let comment = row.into_event();
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
        let mut comments = rows.into_iter().map(CommentRow::into_wire);
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
