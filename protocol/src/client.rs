//! Client → server messages.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{CommentId, FeedbackId};

/// Every message a client may send, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    CommentAdd {
        comment: NewComment,
        /// Chosen by the client; a retry with the same id is answered with the
        /// original comment instead of storing it twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    TypingIndicator {
        is_typing: bool,
    },
    /// Adding the same emoji again changes nothing (and is acknowledged).
    ReactionAdd {
        reaction: NewReaction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// Removes one's own reaction; removing one that is not there changes
    /// nothing.
    ReactionRemove {
        reaction: NewReaction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// The author changes a comment's text (and title, section).
    CommentEdit {
        edit: CommentEdit,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// The author, or an admin or owner, withdraws a comment.
    CommentDelete {
        comment_id: CommentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// An editor (or above) marks a comment resolved.
    CommentResolve {
        comment_id: CommentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// An editor (or above) opens a resolved comment again.
    CommentReopen {
        comment_id: CommentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// A fresh access token for this socket (answer to `token_expiring`):
    /// the socket stays open past the old token's expiry.
    RefreshToken {
        token: String,
    },
}

impl ClientMessage {
    /// The `client_msg_id` a command carries, if any.
    pub fn client_msg_id(&self) -> Option<&str> {
        match self {
            ClientMessage::CommentAdd { client_msg_id, .. }
            | ClientMessage::ReactionAdd { client_msg_id, .. }
            | ClientMessage::ReactionRemove { client_msg_id, .. }
            | ClientMessage::CommentEdit { client_msg_id, .. }
            | ClientMessage::CommentDelete { client_msg_id, .. }
            | ClientMessage::CommentResolve { client_msg_id, .. }
            | ClientMessage::CommentReopen { client_msg_id, .. } => client_msg_id.as_deref(),
            ClientMessage::TypingIndicator { .. } | ClientMessage::RefreshToken { .. } => None,
        }
    }

    /// The `type` tag, as used for rate-limit keys and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::CommentAdd { .. } => "comment_add",
            ClientMessage::TypingIndicator { .. } => "typing_indicator",
            ClientMessage::ReactionAdd { .. } => "reaction_add",
            ClientMessage::ReactionRemove { .. } => "reaction_remove",
            ClientMessage::CommentEdit { .. } => "comment_edit",
            ClientMessage::CommentDelete { .. } => "comment_delete",
            ClientMessage::CommentResolve { .. } => "comment_resolve",
            ClientMessage::CommentReopen { .. } => "comment_reopen",
            ClientMessage::RefreshToken { .. } => "refresh_token",
        }
    }
}

/// The body of `comment_add`. Lengths are checked by the server, not here,
/// so that an over-long text is reported as "Invalid comment data".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewComment {
    pub feedback_id: FeedbackId,
    pub text: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub section: Option<String>,
    /// The product's clients send this either as a string or as a boolean;
    /// both are accepted and kept as text.
    #[serde(default, deserialize_with = "string_or_bool")]
    pub security: Option<String>,
    /// Position in the video, in seconds (the start of a range).
    #[serde(default)]
    pub timestamp: Option<f64>,
    /// The end of the range the comment covers, in seconds; needs
    /// `timestamp`, and end ≥ start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_end: Option<f64>,
    /// The comment this one answers, of the same feedback item. A reply to
    /// a reply is attached to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<CommentId>,
}

/// The body of `comment_edit`: the new text, and the new title and section
/// where given (absent: unchanged). Checked like a new comment's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentEdit {
    pub comment_id: CommentId,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

/// The body of `reaction_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReaction {
    pub comment_id: CommentId,
    pub emoji: String,
}

fn string_or_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Flag(bool),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|v| match v {
        Either::Text(s) => s,
        Either::Flag(b) => b.to_string(),
    }))
}
