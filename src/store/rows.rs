//! Rows as the database returns them, and their conversion to wire types.

use vridge_protocol::{Comment, Feedback, Reaction, ReactionCount};

use crate::time::rfc3339;

/// Column list matching [`CommentRow`], shared by every comment query. A
/// macro, not a const, so queries stay `&'static str` literals (`concat!`):
/// sqlx refuses SQL built at run time unless it is audited.
macro_rules! comment_columns {
    () => {
        "id, project_id, feedback_id, user_id, text, title, section, security, video_timestamp, idempotency_key, created_at, prev_id, \
         parent_id, timestamp_end, edited_at, deleted_at, resolved_at, resolved_by, reply_count, reaction_counts"
    };
}
pub(crate) use comment_columns;

#[derive(Debug, sqlx::FromRow)]
pub struct CommentRow {
    pub id: i64,
    pub project_id: i64,
    pub feedback_id: i64,
    pub user_id: i64,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub security: Option<String>,
    pub video_timestamp: Option<f64>,
    pub idempotency_key: String,
    pub created_at: i64,
    /// The previous comment of the project; NULL for the first.
    pub prev_id: Option<i64>,
    pub parent_id: Option<i64>,
    pub timestamp_end: Option<f64>,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<i64>,
    pub reply_count: i64,
    /// Reactions by emoji, as JSON (see the migration); NULL when none.
    pub reaction_counts: Option<String>,
}

impl CommentRow {
    /// The comment as history and `initial_state` show it: with its reply
    /// and reaction counts.
    pub fn into_wire(self) -> Comment {
        let reply_count = u32::try_from(self.reply_count).unwrap_or(u32::MAX);
        let reactions = self
            .reaction_counts
            .as_deref()
            .and_then(|json| serde_json::from_str::<Vec<ReactionCount>>(json).ok())
            .unwrap_or_default();
        Comment {
            reply_count,
            reactions,
            ..self.into_event()
        }
    }

    /// The comment as an event carries it: without counts, which a client
    /// keeps from the events themselves (a replayed event never counts a
    /// reaction twice).
    pub fn into_event(self) -> Comment {
        Comment {
            id: self.id,
            project_id: self.project_id,
            feedback_id: self.feedback_id,
            user_id: self.user_id,
            text: self.text,
            title: self.title,
            section: self.section,
            security: self.security,
            timestamp: self.video_timestamp,
            created: rfc3339(self.created_at),
            prev_id: self.prev_id,
            parent_id: self.parent_id,
            timestamp_end: self.timestamp_end,
            edited_at: self.edited_at.map(rfc3339),
            deleted_at: self.deleted_at.map(rfc3339),
            resolved_at: self.resolved_at.map(rfc3339),
            resolved_by: self.resolved_by,
            reply_count: 0,
            reactions: Vec::new(),
        }
    }
}

/// Column list matching [`FeedbackRow`] (see [`comment_columns`]).
macro_rules! feedback_columns {
    () => {
        "id, project_id, title, status, priority, video_timestamp, video_url, created_by, created_at"
    };
}
pub(crate) use feedback_columns;

#[derive(Debug, sqlx::FromRow)]
pub struct FeedbackRow {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub video_timestamp: Option<f64>,
    pub video_url: Option<String>,
    pub created_by: i64,
    pub created_at: i64,
}

impl FeedbackRow {
    pub fn into_wire(self) -> Feedback {
        Feedback {
            id: self.id,
            project_id: self.project_id,
            title: self.title,
            status: self.status,
            priority: self.priority,
            timestamp: self.video_timestamp,
            video_url: self.video_url,
            created_by: self.created_by,
            created: rfc3339(self.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct ReactionRow {
    pub comment_id: i64,
    pub user_id: i64,
    pub emoji: String,
    pub created_at: i64,
}

impl ReactionRow {
    pub fn into_wire(self) -> Reaction {
        Reaction {
            comment_id: self.comment_id,
            user_id: self.user_id,
            emoji: self.emoji,
            created: rfc3339(self.created_at),
        }
    }
}
