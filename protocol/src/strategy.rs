//! proptest strategies over every wire message, for property tests: this
//! crate's codec properties and, behind the `proptest` feature, those of the
//! crates that carry these messages (the server's Redis envelope).
//!
//! Values are what the server can really send or receive: any text, any id,
//! any optional field present or absent, and timestamps that are finite
//! (the server refuses NaN and infinities before a comment exists, and JSON
//! cannot carry them). Batches nest to a small depth so that cases stay cheap.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::client::{ClientMessage, NewComment, NewReaction};
use crate::model::{Comment, Feedback, Reaction};
use crate::server::{CommentAck, InitialState, ServerMessage};

/// Any text, with a bias towards the short and the awkward (quotes,
/// backslashes, control characters, non-ASCII).
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\\u{0}\u{1f}\u{7f}é👍a-z ]{0,12}",
        Just(String::new()),
    ]
}

/// A finite number of seconds, including zero, negatives and subnormals.
pub fn seconds() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).prop_filter("finite", |t| t.is_finite())
}

pub fn new_comment() -> impl Strategy<Value = NewComment> {
    (
        any::<i64>(),
        text(),
        option::of(text()),
        option::of(text()),
        option::of(text()),
        option::of(seconds()),
    )
        .prop_map(
            |(feedback_id, text, title, section, security, timestamp)| NewComment {
                feedback_id,
                text,
                title,
                section,
                security,
                timestamp,
            },
        )
}

pub fn new_reaction() -> impl Strategy<Value = NewReaction> {
    (any::<i64>(), text()).prop_map(|(comment_id, emoji)| NewReaction { comment_id, emoji })
}

/// Every client → server message.
pub fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (new_comment(), option::of(text())).prop_map(|(comment, client_msg_id)| {
            ClientMessage::CommentAdd {
                comment,
                client_msg_id,
            }
        }),
        any::<bool>().prop_map(|is_typing| ClientMessage::TypingIndicator { is_typing }),
        new_reaction().prop_map(|reaction| ClientMessage::ReactionAdd { reaction }),
        text().prop_map(|token| ClientMessage::RefreshToken { token }),
    ]
}

pub fn comment() -> impl Strategy<Value = Comment> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (text(), option::of(text()), option::of(text())),
        (option::of(text()), option::of(seconds())),
        (text(), option::of(any::<i64>())),
    )
        .prop_map(
            |(
                (id, project_id, feedback_id, user_id),
                (text, title, section),
                (security, timestamp),
                (created, prev_id),
            )| Comment {
                id,
                project_id,
                feedback_id,
                user_id,
                text,
                title,
                section,
                security,
                timestamp,
                created,
                prev_id,
            },
        )
}

pub fn reaction() -> impl Strategy<Value = Reaction> {
    (any::<i64>(), any::<i64>(), text(), text()).prop_map(
        |(comment_id, user_id, emoji, created)| Reaction {
            comment_id,
            user_id,
            emoji,
            created,
        },
    )
}

pub fn feedback() -> impl Strategy<Value = Feedback> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>()),
        (text(), text(), text()),
        (option::of(seconds()), option::of(text()), text()),
    )
        .prop_map(
            |(
                (id, project_id, created_by),
                (title, status, priority),
                (timestamp, video_url, created),
            )| Feedback {
                id,
                project_id,
                title,
                status,
                priority,
                timestamp,
                video_url,
                created_by,
                created,
            },
        )
}

pub fn initial_state() -> impl Strategy<Value = InitialState> {
    (
        any::<i64>(),
        vec(comment(), 0..4),
        vec(any::<i64>(), 0..4),
        option::of(any::<i64>()),
        option::of(any::<i64>()),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(
                project_id,
                comments,
                online_users,
                last_comment_id,
                resumed_from,
                resume_complete,
            )| {
                InitialState {
                    project_id,
                    comments,
                    online_users,
                    last_comment_id,
                    resumed_from,
                    resume_complete,
                }
            },
        )
}

pub fn comment_ack() -> impl Strategy<Value = CommentAck> {
    (option::of(text()), any::<i64>(), any::<bool>(), comment()).prop_map(
        |(client_msg_id, comment_id, duplicate, comment)| CommentAck {
            client_msg_id,
            comment_id,
            duplicate,
            comment,
        },
    )
}

/// Every server → client event except `batch`.
pub fn event() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        initial_state().prop_map(ServerMessage::InitialState),
        (comment(), any::<i64>())
            .prop_map(|(comment, user_id)| ServerMessage::Comment { comment, user_id }),
        comment_ack().prop_map(ServerMessage::CommentAck),
        (any::<i64>(), any::<bool>())
            .prop_map(|(user_id, is_typing)| ServerMessage::Typing { user_id, is_typing }),
        (reaction(), any::<i64>())
            .prop_map(|(reaction, user_id)| ServerMessage::Reaction { reaction, user_id }),
        feedback().prop_map(|feedback| ServerMessage::FeedbackCreated { feedback }),
        (any::<i64>(), text(), text(), any::<i64>()).prop_map(
            |(feedback_id, status, priority, user_id)| ServerMessage::StatusChanged {
                feedback_id,
                status,
                priority,
                user_id,
            }
        ),
        any::<i64>().prop_map(|user_id| ServerMessage::PresenceJoin { user_id }),
        any::<i64>().prop_map(|user_id| ServerMessage::PresenceLeave { user_id }),
        (text(), option::of(text())).prop_map(|(message, client_msg_id)| {
            ServerMessage::Error {
                message,
                client_msg_id,
            }
        }),
        text().prop_map(|reason| ServerMessage::Resync { reason }),
        any::<i64>().prop_map(|expires_at| ServerMessage::TokenExpiring { expires_at }),
        any::<i64>().prop_map(|expires_at| ServerMessage::TokenRefreshed { expires_at }),
    ]
}

/// Every server → client message: an event, or a `batch` of messages
/// (batches inside batches too, which the type allows though the server
/// never builds them).
pub fn server_message() -> impl Strategy<Value = ServerMessage> {
    event().prop_recursive(2, 12, 6, |inner| {
        vec(inner, 0..6).prop_map(|messages| ServerMessage::Batch { messages })
    })
}
