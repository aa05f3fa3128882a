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
    ReactionAdd {
        reaction: NewReaction,
    },
    /// A fresh access token for this socket (answer to `token_expiring`):
    /// the socket stays open past the old token's expiry.
    RefreshToken {
        token: String,
    },
}

impl ClientMessage {
    /// The `type` tag, as used for rate-limit keys and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::CommentAdd { .. } => "comment_add",
            ClientMessage::TypingIndicator { .. } => "typing_indicator",
            ClientMessage::ReactionAdd { .. } => "reaction_add",
            ClientMessage::RefreshToken { .. } => "refresh_token",
        }
    }
}

/// The body of `comment_add`. Lengths are checked by the server, not here,
/// so that an over-long text is reported as "Invalid comment data".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Position in the video, in seconds.
    #[serde(default)]
    pub timestamp: Option<f64>,
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
