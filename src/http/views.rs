//! What the REST surface sends: response bodies with their OpenAPI schemas.
//! They are built from store rows and wire types, so the documented schema
//! is the serialized type itself.

use serde::Serialize;
use utoipa::ToSchema;
use vridge_protocol::{Comment, Feedback};

use crate::store::{FeedbackStats, Member, ProjectSummary, User};
use crate::time::rfc3339;

/// A user's public account fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub username: String,
    /// RFC 3339, UTC.
    pub created: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            created: rfc3339(u.created_at),
        }
    }
}

/// A project as its member sees it, with its counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `active` or `archived`.
    pub status: String,
    pub owner_id: i64,
    /// The caller's role: `owner`, `admin`, `editor` or `viewer`.
    pub role: String,
    pub member_count: i64,
    /// Feedback items with status `open`.
    pub feedback_open: i64,
    pub feedback_total: i64,
    pub created: String,
    pub updated: String,
}

impl From<ProjectSummary> for ProjectView {
    fn from(p: ProjectSummary) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            status: p.status,
            owner_id: p.owner_id,
            role: p.role,
            member_count: p.member_count,
            feedback_open: p.feedback_open,
            feedback_total: p.feedback_total,
            created: rfc3339(p.created_at),
            updated: rfc3339(p.updated_at),
        }
    }
}

/// A project member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: i64,
    pub email: String,
    pub username: String,
    /// `owner`, `admin`, `editor` or `viewer`.
    pub role: String,
    pub joined: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            username: m.username,
            role: m.role,
            joined: rfc3339(m.joined_at),
        }
    }
}

/// A project with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectDetail {
    #[serde(flatten)]
    pub project: ProjectView,
    pub members: Vec<MemberView>,
}

/// One page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    /// Projects in all pages.
    pub count: i64,
    /// The next page's path and query, or null on the last page.
    pub next: Option<String>,
    /// The previous page's path and query, or null on the first page.
    pub previous: Option<String>,
    pub results: Vec<ProjectView>,
}

/// A feedback item.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackView {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    /// `open`, `in_progress`, `resolved` or `closed`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: String,
    /// Position in the video, in seconds.
    pub timestamp: Option<f64>,
    pub video_url: Option<String>,
    pub created_by: i64,
    pub created: String,
}

impl From<Feedback> for FeedbackView {
    fn from(f: Feedback) -> Self {
        Self {
            id: f.id,
            project_id: f.project_id,
            title: f.title,
            status: f.status,
            priority: f.priority,
            timestamp: f.timestamp,
            video_url: f.video_url,
            created_by: f.created_by,
            created: f.created,
        }
    }
}

/// Counts of a project's feedback items by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub total: i64,
    pub open: i64,
    pub in_progress: i64,
    pub resolved: i64,
    pub closed: i64,
}

impl From<FeedbackStats> for StatsView {
    fn from(s: FeedbackStats) -> Self {
        Self {
            total: s.total,
            open: s.open,
            in_progress: s.in_progress,
            resolved: s.resolved,
            closed: s.closed,
        }
    }
}

/// A project's feedback items (filtered) and its counts (unfiltered).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackList {
    pub results: Vec<FeedbackView>,
    pub stats: StatsView,
}

/// A stored comment.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentView {
    pub id: i64,
    pub project_id: i64,
    pub feedback_id: i64,
    pub user_id: i64,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub security: Option<String>,
    /// Position in the video, in seconds (the start of a range).
    pub timestamp: Option<f64>,
    pub created: String,
    /// The root comment this one answers; `null` for a root.
    pub parent_id: Option<i64>,
    /// The end of the range the comment covers, in seconds.
    pub timestamp_end: Option<f64>,
    /// When its author last edited it.
    pub edited_at: Option<String>,
    /// When it was withdrawn; its text is then empty.
    pub deleted_at: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<i64>,
    /// Replies to this comment (in history and threads; 0 elsewhere).
    pub reply_count: u32,
    /// Reactions by emoji (in history and threads; empty elsewhere).
    pub reactions: Vec<ReactionCountView>,
}

/// How many members reacted to a comment with one emoji.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReactionCountView {
    pub emoji: String,
    pub count: u32,
}

impl From<Comment> for CommentView {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id,
            project_id: c.project_id,
            feedback_id: c.feedback_id,
            user_id: c.user_id,
            text: c.text,
            title: c.title,
            section: c.section,
            security: c.security,
            timestamp: c.timestamp,
            created: c.created,
            parent_id: c.parent_id,
            timestamp_end: c.timestamp_end,
            edited_at: c.edited_at,
            deleted_at: c.deleted_at,
            resolved_at: c.resolved_at,
            resolved_by: c.resolved_by,
            reply_count: c.reply_count,
            reactions: c
                .reactions
                .into_iter()
                .map(|r| ReactionCountView {
                    emoji: r.emoji,
                    count: r.count,
                })
                .collect(),
        }
    }
}

/// A page of a project's event log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventFeed {
    /// Each event exactly as the project's sockets received it (a `comment`,
    /// `comment_edited`, `reaction`, `status_changed`, … message with its
    /// `event` object: `seq`, `prev_seq`, `actor_id`, `at`), showing
    /// comments and feedback items as they are now.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<vridge_protocol::ServerMessage>,
    /// The `seq` of the last event returned (pass it as `since_seq` to
    /// continue), or the `since_seq` given when nothing is newer.
    pub last_seq: i64,
    /// True when no event follows `last_seq` (yet).
    pub complete: bool,
}

/// A comment's thread: its root and every reply, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadView {
    pub root: CommentView,
    pub replies: Vec<CommentView>,
}

/// An earlier version of an edited comment.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// 1 is the text as first posted.
    pub version: i64,
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    /// When this version was written.
    pub written_at: String,
}

/// A comment's earlier versions, oldest first (its current text is the
/// comment itself; a deleted comment keeps none).
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionView>,
}

/// One page of a feedback item's comments, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentPage {
    pub results: Vec<CommentView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A project's comments after a given id, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentFeed {
    pub results: Vec<CommentView>,
    /// The id of the last comment returned (pass it as `since` to continue),
    /// or the `since` given when nothing is newer.
    pub last_comment_id: i64,
    /// Whether more comments follow.
    pub has_more: bool,
}
