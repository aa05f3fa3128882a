//! Entities as they appear on the wire: stored comments, reactions, feedback.
//! Optional fields are sent as `null`, as the product's serializers do.

use serde::{Deserialize, Serialize};

use crate::{CommentId, FeedbackId, ProjectId, Seq, UserId};

/// A stored comment. `created` is RFC 3339 in UTC.
///
/// The fields after `prev_id` came with threads, edits, deletion, resolution,
/// ranges and reaction counts. They are left out when they hold nothing (no
/// parent, never edited, …), so a plain comment is the same bytes as before
/// and older clients read every comment as they always did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The root comment this one answers. Threads are one level deep: a
    /// reply to a reply is attached to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<CommentId>,
    /// The end of the range of the cut the comment covers, in seconds
    /// (`timestamp` is its start; end ≥ start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_end: Option<f64>,
    /// When its author last edited it (RFC 3339); earlier versions are
    /// readable over REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// When it was withdrawn (RFC 3339). A deleted comment is a tombstone:
    /// its text is empty, its title, section and security are `null`, its
    /// replies stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// When it was resolved (RFC 3339); absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Who resolved it; absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<UserId>,
    /// Replies to this comment (roots only), as of when it was read. Sent in
    /// history and `initial_state`; absent when zero and on live events.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reply_count: u32,
    /// Reactions to this comment by emoji, as of when it was read, in emoji
    /// order. Sent in history and `initial_state`; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many members reacted to a comment with one emoji.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: u32,
}

/// Where a durable event stands in its project's event log. Every durable
/// change to a project (a comment added, edited, deleted, resolved or
/// reopened; a reaction added or removed; a feedback item created or its
/// status or priority changed) is one event, numbered per project 1, 2, 3,
/// … with no hole, in commit order. Live events carry it as `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// This event's number in its project's log.
    pub seq: Seq,
    /// The number of the project's event before it (`0` for the first).
    /// A client that holds `prev_seq` holds everything before this event.
    pub prev_seq: Seq,
    /// Who made the change.
    pub actor_id: UserId,
    /// When it was committed (RFC 3339, UTC).
    pub at: String,
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
    /// `open`, `in_progress`, `resolved` or `closed`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: String,
    /// Position in the video, in seconds.
    pub timestamp: Option<f64>,
    pub video_url: Option<String>,
    pub created_by: UserId,
    pub created: String,
}
