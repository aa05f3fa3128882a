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

use crate::client::{ClientMessage, CommentEdit, NewComment, NewReaction};
use crate::model::{Comment, EventMeta, Feedback, Reaction, ReactionCount};
use crate::server::{Ack, CommentAck, InitialState, ServerMessage};

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
        (option::of(seconds()), option::of(any::<i64>())),
    )
        .prop_map(
            |(
                feedback_id,
                text,
                title,
                section,
                security,
                timestamp,
                (timestamp_end, parent_id),
            )| {
                NewComment {
                    feedback_id,
                    text,
                    title,
                    section,
                    security,
                    timestamp,
                    timestamp_end,
                    parent_id,
                }
            },
        )
}

pub fn comment_edit() -> impl Strategy<Value = CommentEdit> {
    (any::<i64>(), text(), option::of(text()), option::of(text())).prop_map(
        |(comment_id, text, title, section)| CommentEdit {
            comment_id,
            text,
            title,
            section,
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
        (new_reaction(), option::of(text())).prop_map(|(reaction, client_msg_id)| {
            ClientMessage::ReactionAdd {
                reaction,
                client_msg_id,
            }
        }),
        (new_reaction(), option::of(text())).prop_map(|(reaction, client_msg_id)| {
            ClientMessage::ReactionRemove {
                reaction,
                client_msg_id,
            }
        }),
        (comment_edit(), option::of(text())).prop_map(|(edit, client_msg_id)| {
            ClientMessage::CommentEdit {
                edit,
                client_msg_id,
            }
        }),
        (any::<i64>(), option::of(text()), 0..3u8).prop_map(|(comment_id, client_msg_id, kind)| {
            match kind {
                0 => ClientMessage::CommentDelete {
                    comment_id,
                    client_msg_id,
                },
                1 => ClientMessage::CommentResolve {
                    comment_id,
                    client_msg_id,
                },
                _ => ClientMessage::CommentReopen {
                    comment_id,
                    client_msg_id,
                },
            }
        }),
        text().prop_map(|token| ClientMessage::RefreshToken { token }),
    ]
}

pub fn comment() -> impl Strategy<Value = Comment> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (text(), option::of(text()), option::of(text())),
        (option::of(text()), option::of(seconds())),
        (text(), option::of(any::<i64>())),
        comment_extras(),
    )
        .prop_map(
            |(
                (id, project_id, feedback_id, user_id),
                (text, title, section),
                (security, timestamp),
                (created, prev_id),
                extras,
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
                ..extras
            },
        )
}

/// The fields threads, edits, deletion, resolution, ranges and reaction
/// counts added to a comment, each present or absent.
fn comment_extras() -> impl Strategy<Value = Comment> {
    (
        (option::of(any::<i64>()), option::of(seconds())),
        (option::of(text()), option::of(text()), option::of(text())),
        (option::of(any::<i64>()), any::<u32>()),
        vec(
            (text(), any::<u32>()).prop_map(|(emoji, count)| ReactionCount { emoji, count }),
            0..3,
        ),
    )
        .prop_map(
            |(
                (parent_id, timestamp_end),
                (edited_at, deleted_at, resolved_at),
                (resolved_by, reply_count),
                reactions,
            )| Comment {
                parent_id,
                timestamp_end,
                edited_at,
                deleted_at,
                resolved_at,
                resolved_by,
                reply_count,
                reactions,
                ..Comment::default()
            },
        )
}

pub fn event_meta() -> impl Strategy<Value = EventMeta> {
    (any::<i64>(), any::<i64>(), any::<i64>(), text()).prop_map(|(seq, prev_seq, actor_id, at)| {
        EventMeta {
            seq,
            prev_seq,
            actor_id,
            at,
        }
    })
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
        (any::<i64>(), vec(comment(), 0..4), vec(any::<i64>(), 0..4)),
        (
            option::of(any::<i64>()),
            option::of(any::<i64>()),
            option::of(any::<bool>()),
        ),
        (
            option::of(any::<i64>()),
            option::of(any::<i64>()),
            vec(durable_event(), 0..3),
        ),
    )
        .prop_map(
            |(
                (project_id, comments, online_users),
                (last_comment_id, resumed_from, resume_complete),
                (last_seq, resumed_from_seq, events),
            )| {
                InitialState {
                    project_id,
                    comments,
                    online_users,
                    last_comment_id,
                    resumed_from,
                    resume_complete,
                    last_seq,
                    resumed_from_seq,
                    events,
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

pub fn ack() -> impl Strategy<Value = Ack> {
    (
        text(),
        option::of(text()),
        option::of(any::<i64>()),
        any::<bool>(),
    )
        .prop_map(|(command, client_msg_id, seq, duplicate)| Ack {
            command,
            client_msg_id,
            seq,
            duplicate,
        })
}

/// Every event of the project event log, with or without its position.
pub fn durable_event() -> impl Strategy<Value = ServerMessage> {
    let meta = || option::of(event_meta());
    prop_oneof![
        (comment(), any::<i64>(), meta(), 0..5u8).prop_map(|(comment, user_id, event, kind)| {
            match kind {
                0 => ServerMessage::Comment {
                    comment,
                    user_id,
                    event,
                },
                1 => ServerMessage::CommentEdited {
                    comment,
                    user_id,
                    event,
                },
                2 => ServerMessage::CommentDeleted {
                    comment,
                    user_id,
                    event,
                },
                3 => ServerMessage::CommentResolved {
                    comment,
                    user_id,
                    event,
                },
                _ => ServerMessage::CommentReopened {
                    comment,
                    user_id,
                    event,
                },
            }
        }),
        (reaction(), any::<i64>(), meta(), any::<bool>()).prop_map(
            |(reaction, user_id, event, removed)| if removed {
                ServerMessage::ReactionRemoved {
                    reaction,
                    user_id,
                    event,
                }
            } else {
                ServerMessage::Reaction {
                    reaction,
                    user_id,
                    event,
                }
            }
        ),
        (feedback(), meta())
            .prop_map(|(feedback, event)| ServerMessage::FeedbackCreated { feedback, event }),
        (any::<i64>(), text(), text(), any::<i64>(), meta()).prop_map(
            |(feedback_id, status, priority, user_id, event)| ServerMessage::StatusChanged {
                feedback_id,
                status,
                priority,
                user_id,
                event,
            }
        ),
    ]
}

/// Every server → client event except `batch`.
pub fn event() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        initial_state().prop_map(ServerMessage::InitialState),
        durable_event(),
        comment_ack().prop_map(ServerMessage::CommentAck),
        ack().prop_map(ServerMessage::Ack),
        (any::<i64>(), any::<bool>())
            .prop_map(|(user_id, is_typing)| ServerMessage::Typing { user_id, is_typing }),
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
