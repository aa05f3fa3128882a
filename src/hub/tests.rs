//! The coordinator's commands without a socket: a hub on a fresh SQLite
//! store and the single-node broker, members as bare outbound queues.

use std::time::Duration;

use vridge_protocol::{NewComment, NewReaction, ServerMessage};

use super::test_support::{World, member, next, next_event, world};
use super::*;
use crate::domain::Role;

fn author(w: &World, user: UserId, role: Role) -> Author {
    Author {
        project: w.project,
        user,
        role,
    }
}

fn comment(feedback: FeedbackId, text: &str) -> NewComment {
    NewComment {
        feedback_id: feedback,
        text: text.into(),
        title: None,
        section: None,
        security: None,
        timestamp: Some(1.5),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_comment_is_acknowledged_to_its_author_then_broadcast_and_in_the_next_state() {
    let w = world().await;
    let (_v, mut watcher, _) = member(&w, w.viewer).await;
    let (outbox, mut inbox, _) = member(&w, w.editor).await;
    let editor = author(&w, w.editor, Role::Editor);
    w.hub
        .comment_add(editor, comment(w.feedback, "hello"), Some("m1"), &outbox)
        .await
        .unwrap();
    let ServerMessage::CommentAck(ack) = next(&mut inbox).await else {
        panic!("the author's first event is its ack")
    };
    assert_eq!(ack.client_msg_id.as_deref(), Some("m1"));
    assert!(!ack.duplicate);
    assert!(
        matches!(next(&mut inbox).await, ServerMessage::Comment { comment, .. } if comment.id == ack.comment_id)
    );
    assert!(
        matches!(next_event(&mut watcher).await, ServerMessage::Comment { comment, .. } if comment.text == "hello")
    );
    // A retry with the same id is acknowledged as a duplicate, not stored again.
    w.hub
        .comment_add(editor, comment(w.feedback, "hello"), Some("m1"), &outbox)
        .await
        .unwrap();
    let ServerMessage::CommentAck(again) = next(&mut inbox).await else {
        panic!("an ack")
    };
    assert_eq!((again.comment_id, again.duplicate), (ack.comment_id, true));
    let (_o, _i, joined) = member(&w, w.viewer).await;
    let ids: Vec<_> = joined.state.comments.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![ack.comment_id]);
    assert_eq!(joined.watermark, Some(ack.comment_id));
}

#[tokio::test]
async fn commands_are_refused_by_role_input_and_ownership_before_anything_is_stored() {
    let w = world().await;
    let (outbox, _inbox, _) = member(&w, w.viewer).await;
    let viewer = author(&w, w.viewer, Role::Viewer);
    let editor = author(&w, w.editor, Role::Editor);
    let ok = comment(w.feedback, "x");
    assert_eq!(
        w.hub.comment_add(viewer, ok.clone(), None, &outbox).await,
        Err(CommandError::PermissionDenied)
    );
    assert_eq!(
        w.hub.typing(viewer, true).await,
        Err(CommandError::PermissionDenied)
    );
    let reaction = NewReaction {
        comment_id: 1,
        emoji: "👍".into(),
    };
    assert_eq!(
        w.hub.reaction_add(viewer, reaction, &outbox).await,
        Err(CommandError::PermissionDenied)
    );
    let invalid = CommandError::Invalid(vridge_protocol::DecodeError::InvalidComment);
    assert_eq!(
        w.hub
            .comment_add(editor, comment(w.feedback, ""), None, &outbox)
            .await,
        Err(invalid.clone())
    );
    // A feedback item of another project is not this project's to comment on.
    assert_eq!(
        w.hub
            .comment_add(editor, comment(w.foreign_feedback, "x"), None, &outbox)
            .await,
        Err(invalid)
    );
    assert_eq!(
        CommandError::Invalid(vridge_protocol::DecodeError::InvalidComment).to_string(),
        "Invalid comment data"
    );
    let store = &w.hub.inner.store;
    assert_eq!(store.newest_comment_id(w.project).await.unwrap(), None);
    assert_eq!(
        store.newest_comment_id(w.other_project).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_reaction_is_queued_then_broadcast_and_one_to_a_foreign_comment_answered_with_an_error() {
    let w = world().await;
    let (outbox, mut inbox, _) = member(&w, w.editor).await;
    let editor = author(&w, w.editor, Role::Editor);
    w.hub
        .comment_add(editor, comment(w.feedback, "c"), Some("m"), &outbox)
        .await
        .unwrap();
    let ServerMessage::CommentAck(ack) = next(&mut inbox).await else {
        panic!("an ack")
    };
    next(&mut inbox).await;
    let react = |comment_id| NewReaction {
        comment_id,
        emoji: "👍".into(),
    };
    w.hub
        .reaction_add(editor, react(ack.comment_id), &outbox)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut inbox).await,
        ServerMessage::Reaction { reaction, user_id, .. } if reaction.comment_id == ack.comment_id && user_id == w.editor
    ));
    // No such comment in this project: the queued reaction is answered.
    w.hub
        .reaction_add(editor, react(ack.comment_id + 1000), &outbox)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut inbox).await,
        ServerMessage::Error { message, .. } if message == vridge_protocol::DecodeError::InvalidReaction.to_string()
    ));
}

#[tokio::test]
async fn typing_reaches_every_other_member_but_not_its_sender() {
    let w = world().await;
    let (_e, mut typist, _) = member(&w, w.editor).await;
    let (_v, mut watcher, _) = member(&w, w.viewer).await;
    // The viewer's own join was announced to the editor.
    assert!(matches!(
        next(&mut typist).await,
        ServerMessage::PresenceJoin { user_id } if user_id == w.viewer
    ));
    w.hub
        .typing(author(&w, w.editor, Role::Editor), true)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut watcher).await,
        ServerMessage::Typing { user_id, is_typing: true } if user_id == w.editor
    ));
    assert!(typist.try_recv().is_none(), "typing is never echoed");
}

#[tokio::test]
async fn no_write_is_admitted_once_writes_are_flushed_for_shutdown() {
    let w = world().await;
    assert!(w.hub.admit().is_some());
    w.hub.flush_writes(Duration::from_secs(5)).await;
    assert!(w.hub.admit().is_none());
}
