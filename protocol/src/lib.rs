//! Wire protocol v1 of the vridge realtime feedback server.
//!
//! This crate owns every message that crosses a feedback socket, the two wire
//! encodings (JSON text frames, MessagePack binary frames), the batch frame the
//! server assembles from pre-encoded events, and the close codes. The server and
//! the load generator both depend on it, so a change here is a protocol change:
//! `asyncapi.json` next to this crate documents it and its examples are checked
//! against these types by `tests/asyncapi_examples.rs`.

pub mod client;
pub mod close;
pub mod codec;
pub mod model;
pub mod server;
#[cfg(any(test, feature = "proptest"))]
pub mod strategy;

#[cfg(test)]
mod properties;

pub use client::{ClientMessage, CommentEdit, NewComment, NewReaction};
pub use codec::{DecodeError, Encoding};
pub use model::{Comment, EventMeta, Feedback, Reaction, ReactionCount};
pub use server::{Ack, CommentAck, InitialState, ServerMessage};

/// Ids are the store's 64-bit integer keys, the same numbers the product's REST
/// API has always used.
pub type UserId = i64;
/// See [`UserId`].
pub type ProjectId = i64;
/// See [`UserId`].
pub type FeedbackId = i64;
/// Comment ids increase strictly with insertion order within one store, which is
/// what lets a reconnecting client ask for "everything after id N".
pub type CommentId = i64;
/// A project's event number (see [`EventMeta`]): 1, 2, 3, … per project,
/// with no hole, in commit order; `0` stands for "before the first event".
pub type Seq = i64;
