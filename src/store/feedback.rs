//! Feedback listings with their status counts, feedback updates, and the
//! newest-first comment history of one feedback item.

use vridge_protocol::{Comment, CommentId, EventMeta, Feedback, FeedbackId, ProjectId, UserId};

use super::engine::append_events;
use super::events::{EventKind, NewEvent, status_detail};
use super::rows::{CommentRow, FeedbackRow, comment_columns, feedback_columns};
use super::{Store, StoreError, on_pool};
use crate::time::now_ms;

/// How many of a project's feedback items are in each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct FeedbackStats {
    pub total: i64,
    pub open: i64,
    pub in_progress: i64,
    pub resolved: i64,
    pub closed: i64,
}

impl Store {
    /// A project's feedback items, newest first, optionally only those with
    /// `status` and/or `priority`.
    pub async fn list_feedback(
        &self,
        project: ProjectId,
        status: Option<&str>,
        priority: Option<&str>,
    ) -> Result<Vec<Feedback>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, FeedbackRow>(concat!(
            "SELECT ", feedback_columns!(), " FROM feedback \
             WHERE project_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(project)
        .bind(status)
        .bind(priority)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(FeedbackRow::into_wire).collect())
    }

    /// Counts of a project's feedback items by status (unfiltered).
    pub async fn feedback_stats(&self, project: ProjectId) -> Result<FeedbackStats, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, FeedbackStats>(
            "SELECT COUNT(*) AS total, \
             COALESCE(SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END), 0) AS open, \
             COALESCE(SUM(CASE WHEN status = 'in_progress' THEN 1 ELSE 0 END), 0) AS in_progress, \
             COALESCE(SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END), 0) AS resolved, \
             COALESCE(SUM(CASE WHEN status = 'closed' THEN 1 ELSE 0 END), 0) AS closed \
             FROM feedback WHERE project_id = $1",
        )
        .bind(project)
        .fetch_one(pool)
        .await)?)
    }

    pub async fn feedback_by_id(&self, id: FeedbackId) -> Result<Option<Feedback>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, FeedbackRow>(concat!(
            "SELECT ", feedback_columns!(), " FROM feedback WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(FeedbackRow::into_wire))
    }

    /// Changes a feedback item's status and/or priority (`None` keeps it)
    /// and appends the `status_changed` event, in one transaction; `None`
    /// when the item does not exist.
    pub async fn update_feedback(
        &self,
        id: FeedbackId,
        actor: UserId,
        status: Option<&str>,
        priority: Option<&str>,
    ) -> Result<Option<(Feedback, EventMeta)>, StoreError> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            let row: Option<FeedbackRow> = sqlx::query_as(concat!(
                "UPDATE feedback SET status = COALESCE($2, status), priority = COALESCE($3, priority), \
                 updated_at = $4 WHERE id = $1 RETURNING ", feedback_columns!()
            ))
            .bind(id)
            .bind(status)
            .bind(priority)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let detail = status_detail(&row.status, &row.priority);
            let events = [NewEvent {
                project: row.project_id,
                kind: EventKind::StatusChanged,
                actor,
                comment: None,
                feedback: Some(row.id),
                detail: Some(&detail),
                key: None,
            }];
            let meta = append_events!(tx, &events, now)
                .pop()
                .ok_or_else(|| StoreError::Corrupt("no event appended".into()))?;
            tx.commit().await?;
            Ok(Some((row.into_wire(), meta)))
        })
    }

    /// Up to `limit` root comments of a feedback item with ids below
    /// `before` (all, when `None`), newest first, with their reply and
    /// reaction counts; only unresolved ones when `open_only`. Replies are
    /// read with their thread ([`Store::thread`]).
    pub async fn feedback_comments(
        &self,
        feedback: FeedbackId,
        before: Option<CommentId>,
        limit: u32,
        open_only: bool,
    ) -> Result<Vec<Comment>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, CommentRow>(concat!(
            "SELECT ", comment_columns!(), " FROM comments WHERE feedback_id = $1 AND id < $2 \
             AND parent_id IS NULL AND ($4 = 0 OR resolved_at IS NULL) ORDER BY id DESC LIMIT $3"
        ))
        .bind(feedback)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .bind(i64::from(open_only))
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(CommentRow::into_wire).collect())
    }
}
