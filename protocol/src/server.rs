//! Server → client messages.

use serde::{Deserialize, Serialize};

use crate::model::{Comment, EventMeta, Feedback, Reaction};
use crate::{CommentId, FeedbackId, ProjectId, Seq, UserId};

/// Every message the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every socket.
    InitialState(InitialState),
    /// A stored comment, sent to every member including its author.
    Comment {
        comment: Comment,
        user_id: UserId,
        /// Its place in the project's event log (see [`EventMeta`]); every
        /// durable event carries one. Absent only from servers before the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// To the author only, once the comment is committed.
    CommentAck(CommentAck),
    /// To the sender only: a `comment_edit`, `comment_delete`,
    /// `comment_resolve`, `comment_reopen`, `reaction_add` or
    /// `reaction_remove` was committed (or changed nothing).
    Ack(Ack),
    /// Someone started or stopped typing; never echoed to its sender.
    Typing { user_id: UserId, is_typing: bool },
    /// A stored reaction.
    Reaction {
        reaction: Reaction,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A reaction was taken back by the member who made it.
    ReactionRemoved {
        reaction: Reaction,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A comment's text (title, section) changed: `comment` is the new
    /// version, with `edited_at` set.
    CommentEdited {
        comment: Comment,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A comment was withdrawn: `comment` is its tombstone.
    CommentDeleted {
        comment: Comment,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A comment was resolved: `comment` has `resolved_at` and `resolved_by`.
    CommentResolved {
        comment: Comment,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A resolved comment was opened again.
    CommentReopened {
        comment: Comment,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A feedback item was created (by a REST client).
    FeedbackCreated {
        feedback: Feedback,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
    },
    /// A feedback item's status or priority changed.
    StatusChanged {
        feedback_id: FeedbackId,
        status: String,
        priority: String,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventMeta>,
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
    /// with `?since_seq=<the newest event seq it holds>` (or, not tracking
    /// events, `?since=<the newest comment id it holds>`).
    Resync { reason: String },
    /// Several events in one frame, in order.
    Batch { messages: Vec<ServerMessage> },
}

impl ServerMessage {
    /// The event-log position of a durable event; `None` for everything
    /// else (typing, presence, acknowledgements, errors, batches).
    pub fn event(&self) -> Option<&EventMeta> {
        match self {
            ServerMessage::Comment { event, .. }
            | ServerMessage::Reaction { event, .. }
            | ServerMessage::ReactionRemoved { event, .. }
            | ServerMessage::CommentEdited { event, .. }
            | ServerMessage::CommentDeleted { event, .. }
            | ServerMessage::CommentResolved { event, .. }
            | ServerMessage::CommentReopened { event, .. }
            | ServerMessage::FeedbackCreated { event, .. }
            | ServerMessage::StatusChanged { event, .. } => event.as_ref(),
            _ => None,
        }
    }

    /// The event's number in its project's log (see [`Self::event`]).
    pub fn seq(&self) -> Option<Seq> {
        self.event().map(|e| e.seq)
    }
}

/// The state a client needs to render a project on (re)connect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The number of the project's newest event this state reflects (`0`:
    /// none yet), read in one snapshot with `comments` and their counts.
    /// After a resume by event number every live event that follows has a
    /// larger `seq`. After a plain join or a resume by comment id, live
    /// events committed while the socket joined may still arrive with a
    /// `seq` up to `last_seq` (already reflected in `comments`; clients
    /// tracking the log skip them). Resume from the newest `seq` held with
    /// `?since_seq=`; a client paging through history by comment id
    /// resumes from the lowest `last_seq` of its pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<Seq>,
    /// The `since_seq` the client resumed from, if it asked for a resume by
    /// event number (clamped to the project's newest event). Then `events`
    /// holds the project's events after it, oldest first, `comments` is
    /// empty, and `resume_complete` says whether that is all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_seq: Option<Seq>,
    /// For a resume by event number: the events after `resumed_from_seq`,
    /// in order, each exactly as it went out live. Entities are shown as
    /// they are now (an edited comment's `comment` event carries its
    /// current text; a deleted one's, its tombstone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ServerMessage>,
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

/// Acknowledges a command other than `comment_add` once committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The `type` of the command acknowledged (`comment_edit`, …).
    pub command: String,
    pub client_msg_id: Option<String>,
    /// The event the command made; `null` when it changed nothing (a
    /// reaction that was already there, a comment already resolved).
    pub seq: Option<Seq>,
    /// True when this was a retry of a command committed earlier (same
    /// `client_msg_id`): `seq` is the event the first attempt made.
    pub duplicate: bool,
}
