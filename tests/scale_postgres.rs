//! Realtime scenarios on PostgreSQL (a fresh database per test): what runs
//! on SQLite by default must hold on the production engine too.

mod common;

use common::*;
use vridge_protocol::{ClientMessage, ServerMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_each_others_comments_in_id_order_and_authors_get_acks() {
    let server = TestServer::spawn_postgres_with(&["--no-rate-limits"]).await;
    assert_eq!(server.state.store.engine(), "postgres");
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    for i in 0..10 {
        a.send(&comment_add(
            f.feedback[0],
            &format!("a{i}"),
            Some(&format!("a-{i}")),
        ))
        .await;
        b.send(&comment_add(f.feedback[1], &format!("b{i}"), None))
            .await;
    }
    let (mut on_a, mut acks) = (Vec::new(), Vec::new());
    while on_a.len() < 20 || acks.len() < 10 {
        match a.next().await {
            ServerMessage::Comment { comment, .. } => on_a.push(comment.id),
            ServerMessage::CommentAck(ack) => acks.push(ack.client_msg_id),
            _ => {}
        }
    }
    let mut on_b = Vec::new();
    while on_b.len() < 20 {
        if let ServerMessage::Comment { comment, .. } = b.expect(is_comment).await {
            on_b.push(comment.id);
        }
    }
    assert_eq!(on_a, on_b, "both members see the same order");
    assert!(on_a.windows(2).all(|w| w[0] < w[1]), "{on_a:?}");
    let expected: Vec<Option<String>> = (0..10).map(|i| Some(format!("a-{i}"))).collect();
    assert_eq!(acks, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_stored_once_on_postgres() {
    retry_is_stored_once(&TestServer::spawn_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_state_presence_typing_and_resume_on_postgres() {
    let server = TestServer::spawn_postgres().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "first", None)).await;
    let ServerMessage::CommentAck(first) = a.expect(is_ack).await else {
        unreachable!()
    };
    let (mut b, state) = server.join(f.project.id, f.editor2.id).await;
    assert_eq!(state.last_comment_id, Some(first.comment_id));
    assert_eq!(state.comments.len(), 1);
    assert_eq!(state.resumed_from, None);
    a.expect(|m| matches!(m, ServerMessage::PresenceJoin { .. }))
        .await;
    b.send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    assert_eq!(
        a.expect(|m| matches!(m, ServerMessage::Typing { .. }))
            .await,
        ServerMessage::Typing {
            user_id: f.editor2.id,
            is_typing: true
        }
    );
    // Resuming from the newest comment: nothing to add, and complete.
    let url = format!(
        "{}&since={}",
        server.ws_url(f.project.id, &server.token(f.viewer.id)),
        first.comment_id
    );
    let mut c = Client::connect(&url, vridge_protocol::Encoding::Json).await;
    let ServerMessage::InitialState(resumed) = c.next().await else {
        panic!("expected initial_state")
    };
    assert!(resumed.comments.is_empty());
    assert_eq!(resumed.resume_complete, Some(true));
    assert_eq!(resumed.last_comment_id, Some(first.comment_id));
}
