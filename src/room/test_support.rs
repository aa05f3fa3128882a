//! Helpers shared by the room's unit tests.

use std::sync::Arc;

use vridge_protocol::{Comment, CommentId, EventMeta, ServerMessage};

/// A `comment` event with the given id and predecessor, in project 1; its
/// event number is its id, so the chain of ids is the chain of events.
pub(crate) fn comment(id: CommentId, prev_id: Option<CommentId>) -> Arc<ServerMessage> {
    Arc::new(ServerMessage::Comment {
        comment: Comment {
            id,
            project_id: 1,
            feedback_id: 1,
            user_id: 1,
            text: format!("c{id}"),
            title: None,
            section: None,
            security: None,
            timestamp: None,
            created: "2026-11-22T10:00:00Z".into(),
            prev_id,
            ..Comment::default()
        },
        user_id: 1,
        event: Some(EventMeta {
            seq: id,
            prev_seq: prev_id.unwrap_or(0),
            actor_id: 1,
            at: "2026-11-22T10:00:00Z".into(),
        }),
    })
}
