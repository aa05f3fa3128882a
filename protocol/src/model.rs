//! Entities as they appear on the wire: stored comments, reactions, feedback.
//! Optional fields are sent as `null`, as the product's serializers do.

use serde::{Deserialize, Serialize};

use crate::{CommentId, FeedbackId, ProjectId, UserId};

/// A stored comment. `created` is RFC 3339 in UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: CommentId,
    pub project_id: ProjectId,
    pub feedback_id: FeedbackId,
    pub user_id: UserId,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub security: Option<String>,
    /// Position in the video, in seconds.
    pub timestamp: Option<f64>,
    pub created: String,
    /// The id of the project's previous comment (`null` for its first).
    /// Every comment a socket receives chains to the one before it, so a
    /// client may use `prev_id` to detect a gap. Absent in older payloads.
    #[serde(default)]
    pub prev_id: Option<CommentId>,
}

/// A stored reaction: one per (comment, user, emoji).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub comment_id: CommentId,
    pub user_id: UserId,
    pub emoji: String,
    pub created: String,
}

/// A feedback item: a point in the cut that reviewers discuss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub id: FeedbackId,
    pub project_id: ProjectId,
    pub title: String,
    /// `open`, `in_progress` or `resolved`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: String,
    /// Position in the video, in seconds.
    pub timestamp: Option<f64>,
    pub video_url: Option<String>,
    pub created_by: UserId,
    pub created: String,
}
