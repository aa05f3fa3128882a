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
    /// Something was refused; the socket stays open.
    Error { message: String },
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
    /// The id of the newest comment stored when this state was taken; live
    /// `comment` events that follow all have larger ids.
    pub last_comment_id: Option<CommentId>,
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
