//! Feedback listings with their status counts, feedback updates, and the
//! newest-first comment history of one feedback item.

use vridge_protocol::{Comment, CommentId, Feedback, FeedbackId, ProjectId};

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
             COALESCE(SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END), 0) AS resolved \
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

    /// Changes a feedback item's status and/or priority (`None` keeps it);
    /// `None` when the item does not exist.
    pub async fn update_feedback(
        &self,
        id: FeedbackId,
        status: Option<&str>,
        priority: Option<&str>,
    ) -> Result<Option<Feedback>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, FeedbackRow>(concat!(
            "UPDATE feedback SET status = COALESCE($2, status), priority = COALESCE($3, priority), \
             updated_at = $4 WHERE id = $1 RETURNING ", feedback_columns!()
        ))
        .bind(id)
        .bind(status)
        .bind(priority)
        .bind(now_ms())
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(FeedbackRow::into_wire))
    }

    /// Up to `limit` comments of a feedback item with ids below `before`
    /// (all, when `None`), newest first.
    pub async fn feedback_comments(
        &self,
        feedback: FeedbackId,
        before: Option<CommentId>,
        limit: u32,
    ) -> Result<Vec<Comment>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, CommentRow>(concat!(
            "SELECT ", comment_columns!(), " FROM comments WHERE feedback_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(feedback)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(CommentRow::into_wire).collect())
    }
}
