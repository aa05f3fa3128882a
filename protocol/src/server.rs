//! Server → client messages.

use serde::{Deserialize, Serialize};

use crate::model::{Comment, Feedback, Reaction};
use crate::{CommentId, FeedbackId, ProjectId, UserId};

/// Every message the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every socket.
    InitialState(InitialState),
    /// A stored comment, sent to every member including its author.
    Comment { comment: Comment, user_id: UserId },
    /// To the author only, once the comment is committed.
    CommentAck(CommentAck),
    /// Someone started or stopped typing; never echoed to its sender.
    Typing { user_id: UserId, is_typing: bool },
    /// A stored reaction.
    Reaction { reaction: Reaction, user_id: UserId },
    /// A feedback item was created (by a REST client).
    FeedbackCreated { feedback: Feedback },
    /// A feedback item's status or priority changed.
    StatusChanged {
        feedback_id: FeedbackId,
        status: String,
        priority: String,
        user_id: UserId,
    },
    /// A user's first socket to the project opened.
    PresenceJoin { user_id: UserId },
    /// A user's last socket to the project closed.
    PresenceLeave { user_id: UserId },
    /// Something was refused; the socket stays open. A refused or unstored
    /// `comment_add` names the `client_msg_id` it answers, so a client with
    /// several comments in flight knows which one failed.
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// The socket's access token expires at `expires_at` (Unix seconds).
    /// Send `refresh_token` with a fresh access token before then, or the
    /// socket is closed with 4002 at expiry.
    TokenExpiring { expires_at: i64 },
    /// A `refresh_token` was accepted: the socket now lives until
    /// `expires_at` (Unix seconds), the new token's expiry.
    TokenRefreshed { expires_at: i64 },
    /// Events of this project may have been lost on their way to this
    /// server (the cross-node broker lagged or reconnected). The socket stays
    /// open and live events go on; to fill the gap the client reconnects
    /// with `?since=<the newest comment id it holds>`.
    Resync { reason: String },
    /// Several events in one frame, in order.
    Batch { messages: Vec<ServerMessage> },
}

/// The state a client needs to render a project on (re)connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitialState {
    pub project_id: ProjectId,
    /// The newest comments of the project, oldest first.
    pub comments: Vec<Comment>,
    /// Users with at least one socket open to this project, in id order.
    pub online_users: Vec<UserId>,
    /// The id of the newest comment in `comments` (or, when `comments` is
    /// empty, the newest comment the client already holds); live `comment`
    /// events that follow all have larger ids.
    pub last_comment_id: Option<CommentId>,
    /// The `since` the client resumed from (`?since=<comment id>`), if it
    /// asked for a resume. Then `comments` holds every comment of the project
    /// after that id, oldest first, instead of the newest ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<CommentId>,
    /// For a resume: true when `comments` holds *every* comment after
    /// `resumed_from`; false when the server capped the answer, in which case
    /// the client resumes again from `last_comment_id` to get the rest.
    /// Absent when the client did not ask for a resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_complete: Option<bool>,
}

/// Acknowledges a `comment_add` once it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentAck {
    pub client_msg_id: Option<String>,
    pub comment_id: CommentId,
    /// True when this was a retry of a comment stored earlier.
    pub duplicate: bool,
    pub comment: Comment,
}
