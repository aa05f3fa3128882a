//! The realtime core end to end: a real server on a random port, real
//! WebSocket clients, SQLite in a fresh directory per test.

mod common;

use std::time::Duration;

use common::*;
use vridge_protocol::{ClientMessage, Encoding, NewReaction, ServerMessage, close};

#[tokio::test]
async fn two_members_see_each_others_comments_in_the_same_order() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    for i in 0..5 {
        a.send(&comment_add(f.feedback[0], &format!("a{i}"), None))
            .await;
        b.send(&comment_add(f.feedback[1], &format!("b{i}"), None))
            .await;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..10 {
        if let ServerMessage::Comment { comment, .. } = a.expect(is_comment).await {
            seen_a.push((comment.id, comment.text));
        }
        if let ServerMessage::Comment { comment, .. } = b.expect(is_comment).await {
            seen_b.push((comment.id, comment.text));
        }
    }
    assert_eq!(
        seen_a, seen_b,
        "both members see the same comments in the same order"
    );
    let ids: Vec<i64> = seen_a.iter().map(|(id, _)| *id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "delivery follows id order");
}

#[tokio::test]
async fn sender_gets_an_ack_with_its_client_msg_id_and_the_stored_id() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "looks great", Some("m-1")))
        .await;
    let ServerMessage::CommentAck(ack) = a.expect(is_ack).await else {
        unreachable!()
    };
    assert_eq!(ack.client_msg_id.as_deref(), Some("m-1"));
    assert!(!ack.duplicate);
    assert_eq!(ack.comment.text, "looks great");
    assert_eq!(ack.comment.user_id, f.editor.id);
    let stored = server.stored_comments(f.project.id).await;
    assert_eq!(
        stored.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ack.comment_id]
    );
}

#[tokio::test]
async fn a_retried_client_msg_id_is_stored_once_and_answered_with_the_original() {
    retry_is_stored_once(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn typing_is_not_echoed_and_lapses_without_refresh() {
    let server = TestServer::spawn_with(&["--typing-timeout-ms", "300"]).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    a.send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    let got = b
        .expect(|m| matches!(m, ServerMessage::Typing { .. }))
        .await;
    assert_eq!(
        got,
        ServerMessage::Typing {
            user_id: f.editor.id,
            is_typing: true
        }
    );
    let lapsed = b
        .expect(|m| matches!(m, ServerMessage::Typing { .. }))
        .await;
    assert_eq!(
        lapsed,
        ServerMessage::Typing {
            user_id: f.editor.id,
            is_typing: false
        }
    );
    a.expect_none(Duration::from_millis(200), |m| {
        matches!(m, ServerMessage::Typing { .. })
    })
    .await;
}

/// In a quiet room a typing event goes out at once; those that follow
/// within the window reach each member in one frame when it closes, in the
/// order they were sent, never their own typist's.
#[tokio::test]
async fn typing_within_a_window_reaches_members_in_one_frame_in_order() {
    let server = TestServer::spawn_with(&["--typing-batch-ms", "1000"]).await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.viewer.id).await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    let typing = |user_id, is_typing| ServerMessage::Typing { user_id, is_typing };
    let is_typing = |m: &ServerMessage| matches!(m, ServerMessage::Typing { .. });
    let sent = std::time::Instant::now();
    a.send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    assert_eq!(watcher.expect(is_typing).await, typing(f.editor.id, true));
    assert!(sent.elapsed() < Duration::from_millis(900), "not held");
    b.send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    a.send(&ClientMessage::TypingIndicator { is_typing: false })
        .await;
    let first = watcher.expect(is_typing).await;
    // Held until the window the first opened closed.
    assert!(
        sent.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        sent.elapsed()
    );
    // (The test's server runs on this test's one-thread runtime, so the
    // room queues both before the watcher's writer runs.)
    assert_eq!(watcher.buffered(), 1, "the two came in one frame");
    assert_eq!(
        [first, watcher.next().await],
        [typing(f.editor2.id, true), typing(f.editor.id, false)]
    );
    // Each typist gets the other's events only.
    assert_eq!(a.expect(is_typing).await, typing(f.editor2.id, true));
    assert_eq!(b.expect(is_typing).await, typing(f.editor.id, true));
    assert_eq!(b.expect(is_typing).await, typing(f.editor.id, false));
    a.expect_none(Duration::from_millis(200), is_typing).await;
}

#[tokio::test]
async fn initial_state_lists_online_members_and_presence_changes_are_announced() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, first) = server.join(f.project.id, f.editor.id).await;
    assert_eq!(first.online_users, vec![f.editor.id]);
    let (b, second) = server.join(f.project.id, f.viewer.id).await;
    let mut expected = vec![f.editor.id, f.viewer.id];
    expected.sort();
    assert_eq!(second.online_users, expected);
    assert_eq!(
        a.expect(|m| matches!(m, ServerMessage::PresenceJoin { .. }))
            .await,
        ServerMessage::PresenceJoin {
            user_id: f.viewer.id
        }
    );
    drop(b);
    assert_eq!(
        a.expect(|m| matches!(m, ServerMessage::PresenceLeave { .. }))
            .await,
        ServerMessage::PresenceLeave {
            user_id: f.viewer.id
        }
    );
}

#[tokio::test]
async fn bad_missing_and_wrong_type_tokens_close_with_4001() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let base = format!("ws://{}/ws/feedback/{}", server.addr, f.project.id);
    let refresh = server
        .state
        .jwt
        .mint(
            f.editor.id,
            vridge_realtime::auth::TokenKind::Refresh,
            Duration::from_secs(60),
        )
        .unwrap();
    for url in [
        base.clone(),
        format!("{base}?token=garbage"),
        format!("{base}?token={refresh}"),
    ] {
        let mut c = Client::connect(&url, Encoding::Json).await;
        assert_eq!(
            c.ended().await,
            Ended::Closed(close::UNAUTHENTICATED),
            "{url}"
        );
    }
}

/// Connects arriving together share batched store reads: each socket must
/// still get its own project's comments, and a non-member in the same batch
/// must still be refused.
#[tokio::test]
async fn sockets_connecting_together_each_get_their_own_project_and_outsiders_are_refused() {
    let server = TestServer::spawn().await;
    let (a, b) = (server.fixture().await, server.fixture().await);
    for (f, prefix) in [(&a, "a"), (&b, "b")] {
        let (mut owner, _) = server.join(f.project.id, f.owner.id).await;
        for i in 0..3 {
            owner
                .send(&comment_add(f.feedback[0], &format!("{prefix}{i}"), None))
                .await;
            owner.expect(is_ack).await;
        }
    }
    let mut joins = Vec::new();
    for f in [&a, &b] {
        for user in [&f.owner, &f.editor, &f.editor2, &f.viewer] {
            for _ in 0..3 {
                let url = server.ws_url(f.project.id, &server.token(user.id));
                joins.push(tokio::spawn(async move {
                    let mut c = Client::connect(&url, Encoding::Json).await;
                    match c.next().await {
                        ServerMessage::InitialState(state) => state
                            .comments
                            .into_iter()
                            .map(|c| c.text)
                            .collect::<Vec<_>>(),
                        other => panic!("expected initial_state, got {other:?}"),
                    }
                }));
            }
        }
    }
    let strangers = [(a.project.id, b.owner.id), (b.project.id, a.editor.id)]
        .into_iter()
        .chain([(a.project.id, a.outsider.id), (b.project.id, b.outsider.id)])
        .map(|(project, user)| {
            let url = server.ws_url(project, &server.token(user));
            tokio::spawn(async move { Client::connect(&url, Encoding::Json).await.ended().await })
        })
        .collect::<Vec<_>>();
    for (i, join) in joins.into_iter().enumerate() {
        let expected = if i < 12 {
            ["a0", "a1", "a2"]
        } else {
            ["b0", "b1", "b2"]
        };
        assert_eq!(join.await.unwrap(), expected, "socket {i}");
    }
    for stranger in strangers {
        assert_eq!(
            stranger.await.unwrap(),
            Ended::Closed(close::PERMISSION_DENIED)
        );
    }
}

#[tokio::test]
async fn bearer_header_is_accepted_and_trailing_slash_too() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let mut req = format!("ws://{}/ws/feedback/{}/", server.addr, f.project.id)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", server.token(f.editor.id))
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(
        first
            .to_text()
            .unwrap()
            .contains("\"type\":\"initial_state\"")
    );
}

#[tokio::test]
async fn expired_token_closes_with_4002() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = server
        .state
        .jwt
        .mint_at(
            f.editor.id,
            vridge_realtime::auth::TokenKind::Access,
            now - 3600,
            now - 120,
        )
        .unwrap();
    let mut c = Client::connect(&server.ws_url(f.project.id, &expired), Encoding::Json).await;
    assert_eq!(c.ended().await, Ended::Closed(close::TOKEN_EXPIRED));
}

#[tokio::test]
async fn non_members_and_unknown_projects_close_with_4003() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let token = server.token(f.outsider.id);
    let mut c = Client::connect(&server.ws_url(f.project.id, &token), Encoding::Json).await;
    assert_eq!(c.ended().await, Ended::Closed(close::PERMISSION_DENIED));
    let mut c = Client::connect(
        &server.ws_url(999_999, &server.token(f.owner.id)),
        Encoding::Json,
    )
    .await;
    assert_eq!(c.ended().await, Ended::Closed(close::PERMISSION_DENIED));
}

#[tokio::test]
async fn a_sixth_socket_of_one_user_closes_with_4029_and_a_slot_frees_on_close() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(server.join(f.project.id, f.editor.id).await.0);
    }
    let token = server.token(f.editor.id);
    let mut sixth = Client::connect(&server.ws_url(f.project.id, &token), Encoding::Json).await;
    assert_eq!(
        sixth.ended().await,
        Ended::Closed(close::TOO_MANY_CONNECTIONS)
    );
    let mut one = open.pop().unwrap();
    one.ws.close(None).await.unwrap();
    let _ = one.ended().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.connections.held(f.editor.id) > 4 {
        assert!(tokio::time::Instant::now() < deadline, "slot released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_again, _) = server.join(f.project.id, f.editor.id).await;
}

#[tokio::test]
async fn invalid_json_is_reported_and_the_socket_stays_usable() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send_text("{this is not json").await;
    assert_eq!(
        a.expect(is_error).await,
        ServerMessage::Error {
            message: "Invalid JSON".into(),
            client_msg_id: None,
        }
    );
    a.send_json(serde_json::json!({"type": "moonwalk"})).await;
    assert_eq!(
        a.expect(is_error).await,
        ServerMessage::Error {
            message: "Unknown message type: moonwalk".into(),
            client_msg_id: None,
        }
    );
    a.send(&comment_add(
        f.feedback[0],
        "still here",
        Some("after-errors"),
    ))
    .await;
    a.expect(is_ack).await;
}

#[tokio::test]
async fn invalid_comments_are_refused_with_the_products_wording() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let other = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let invalid = ServerMessage::Error {
        message: "Invalid comment data".into(),
        client_msg_id: None,
    };
    a.send(&comment_add(f.feedback[0], "", None)).await;
    assert_eq!(a.expect(is_error).await, invalid);
    a.send(&comment_add(f.feedback[0], &"x".repeat(10_001), None))
        .await;
    assert_eq!(a.expect(is_error).await, invalid);
    a.send(&comment_add(other.feedback[0], "wrong project", None))
        .await;
    assert_eq!(a.expect(is_error).await, invalid);
    a.send_json(serde_json::json!({"type": "comment_add", "comment": {"text": "no feedback id"}}))
        .await;
    assert_eq!(a.expect(is_error).await, invalid);
    a.send(&comment_add(f.feedback[0], &"y".repeat(10_000), None))
        .await;
    a.expect(is_ack).await;
    assert_eq!(server.stored_comments(f.project.id).await.len(), 1);
}

#[tokio::test]
async fn viewers_may_read_but_not_write() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut viewer, _) = server.join(f.project.id, f.viewer.id).await;
    let denied = ServerMessage::Error {
        message: "Permission denied".into(),
        client_msg_id: None,
    };
    viewer
        .send(&comment_add(f.feedback[0], "may I?", None))
        .await;
    assert_eq!(viewer.expect(is_error).await, denied);
    viewer
        .send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    assert_eq!(viewer.expect(is_error).await, denied);
    let (mut editor, _) = server.join(f.project.id, f.editor.id).await;
    editor
        .send(&comment_add(f.feedback[0], "viewers see this", None))
        .await;
    viewer.expect(is_comment).await;
}

#[tokio::test]
async fn reactions_are_stored_once_and_broadcast() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    a.send(&comment_add(f.feedback[0], "react to me", None))
        .await;
    let ServerMessage::CommentAck(ack) = a.expect(is_ack).await else {
        unreachable!()
    };
    let react = ClientMessage::ReactionAdd {
        reaction: NewReaction {
            comment_id: ack.comment_id,
            emoji: "👍".into(),
        },
        client_msg_id: None,
    };
    b.send(&react).await;
    let got = a
        .expect(|m| matches!(m, ServerMessage::Reaction { .. }))
        .await;
    let ServerMessage::Reaction {
        reaction, user_id, ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!(
        (reaction.comment_id, reaction.emoji.as_str(), user_id),
        (ack.comment_id, "👍", f.editor2.id)
    );
    b.send(&react).await;
    a.expect_none(Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::Reaction { .. })
    })
    .await;
    b.send(&ClientMessage::ReactionAdd {
        reaction: NewReaction {
            comment_id: 987_654,
            emoji: "👍".into(),
        },
        client_msg_id: None,
    })
    .await;
    assert_eq!(
        b.expect(is_error).await,
        ServerMessage::Error {
            message: "Invalid reaction data".into(),
            client_msg_id: None,
        }
    );
}

#[tokio::test]
async fn the_eleventh_comment_in_a_minute_is_rate_limited() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    for i in 0..11 {
        a.send(&comment_add(f.feedback[0], &format!("c{i}"), None))
            .await;
    }
    let (mut acks, mut errors) = (0, Vec::new());
    while acks < 10 || errors.is_empty() {
        match a.next().await {
            ServerMessage::CommentAck(_) => acks += 1,
            ServerMessage::Error { message, .. } => errors.push(message),
            _ => {}
        }
    }
    assert_eq!(errors, vec!["Rate limit exceeded".to_owned()]);
    assert_eq!(server.stored_comments(f.project.id).await.len(), 10);
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send_text(&"x".repeat(64 * 1024 + 1)).await;
    assert_eq!(a.ended().await, Ended::Closed(close::MESSAGE_TOO_BIG));
}

/// The read buffer is small (an idle socket keeps it), so a large frame is
/// read in many pieces: one of 40 KB, the longest comment in 4-byte
/// characters, arrives whole and is stored as sent.
#[tokio::test]
async fn a_frame_far_larger_than_the_read_buffer_is_read_whole() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let text = "\u{1F600}".repeat(10_000);
    a.send(&comment_add(f.feedback[0], &text, None)).await;
    a.expect(is_ack).await;
    let stored = server.stored_comments(f.project.id).await;
    assert_eq!(stored.last().map(|c| c.text.as_str()), Some(text.as_str()));
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_4008_while_others_keep_receiving() {
    let server = TestServer::spawn_with(&["--no-rate-limits", "--outbound-queue", "64"]).await;
    let f = server.fixture().await;
    let (mut slow, _) = server.join(f.project.id, f.viewer.id).await;
    let (mut sender, _) = server.join(f.project.id, f.editor.id).await;
    let (mut reader, _) = server.join(f.project.id, f.editor2.id).await;
    let text = "z".repeat(10_000);
    let total = 1200;
    // The sender reads its own comments back in windows, so it is never slow.
    let send = async {
        // A window (its comments plus their acks) fits the 64-frame queue.
        for window in 0..total / 20 {
            for i in 0..20 {
                sender
                    .send(&comment_add(
                        f.feedback[0],
                        &text,
                        Some(&format!("s{window}-{i}")),
                    ))
                    .await;
            }
            let mut back = 0;
            while back < 20 {
                if is_comment(&sender.next().await) {
                    back += 1;
                }
            }
        }
        sender
    };
    let read = async {
        let mut got = 0;
        while got < total {
            if is_comment(&reader.next().await) {
                got += 1;
            }
        }
        got
    };
    let (_sender, got) = tokio::join!(send, read);
    assert_eq!(got, total, "a reading member received every comment");
    // The slow member never read: it was dropped with 4008.
    let mut saw_close = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(5), slow.ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))))) => {
                saw_close = Some(u16::from(frame.code));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    let closes = server
        .state
        .metrics
        .slow_consumer_closes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(closes, 1, "exactly the slow member was dropped");
    // The close frame may be lost behind the unread backlog; when it arrives it says 4008.
    if let Some(code) = saw_close {
        assert_eq!(code, close::SLOW_CONSUMER);
    }
}

#[tokio::test]
async fn json_and_msgpack_members_in_one_room_both_receive_every_event() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut json, _) = server
        .join_with(f.project.id, f.editor.id, Encoding::Json)
        .await;
    let (mut packed, state) = server
        .join_with(f.project.id, f.editor2.id, Encoding::MsgPack)
        .await;
    assert_eq!(state.project_id, f.project.id);
    json.send(&comment_add(f.feedback[0], "from json", None))
        .await;
    packed
        .send(&comment_add(f.feedback[0], "from msgpack", None))
        .await;
    for client in [&mut json, &mut packed] {
        let mut texts = Vec::new();
        for _ in 0..2 {
            if let ServerMessage::Comment { comment, .. } = client.expect(is_comment).await {
                texts.push(comment.text);
            }
        }
        texts.sort();
        assert_eq!(
            texts,
            vec!["from json", "from msgpack"],
            "{:?}",
            client.encoding
        );
    }
}

#[tokio::test]
async fn an_acknowledged_comment_survives_a_restart() {
    let mut server = TestServer::spawn().await;
    let tmp = server.take_tmp();
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "keep me", Some("durable")))
        .await;
    let ServerMessage::CommentAck(ack) = a.expect(is_ack).await else {
        unreachable!()
    };
    let dir = server.data_dir.clone();
    server.stop().await;
    assert_eq!(a.ended().await, Ended::Closed(close::GOING_AWAY));
    let server = TestServer::spawn_in(dir, &[]).await;
    let (_b, state) = server.join(f.project.id, f.editor.id).await;
    assert_eq!(state.comments.last().map(|c| c.id), Some(ack.comment_id));
    assert_eq!(state.last_comment_id, Some(ack.comment_id));
    drop(tmp);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let server =
        TestServer::spawn_with(&["--ping-interval-ms", "100", "--pong-timeout-ms", "400"]).await;
    let f = server.fixture().await;
    let (mut alive, _) = server.join(f.project.id, f.editor.id).await;
    let (mut silent, _) = server.join(f.project.id, f.editor2.id).await;
    // `alive` keeps reading (and so answers pings); `silent` reads nothing for a while.
    alive
        .expect_none(Duration::from_millis(1200), |_| false)
        .await;
    assert_eq!(
        silent.ended().await,
        Ended::Closed(close::KEEPALIVE_TIMEOUT)
    );
    alive
        .send(&comment_add(f.feedback[0], "still connected", None))
        .await;
    alive.expect(is_ack).await;
    // The metrics tell a silent peer from a late one: one close for
    // silence, and the pongs of the peer that answered, timed.
    let text = reqwest::get(server.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("vridge_keepalive_closes_total 1\n"), "{text}");
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    assert!(value("vridge_pongs_received_total") >= 5, "{text}");
    assert!(value("vridge_pong_seconds_count") >= 5, "{text}");
    assert!(
        value("vridge_pings_sent_total") >= value("vridge_pongs_received_total"),
        "{text}"
    );
}

#[tokio::test]
async fn health_and_metrics_reflect_the_server() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.http("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(server.http("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "count me", None)).await;
    a.expect(is_ack).await;
    let text = http
        .get(server.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("vridge_sockets_open 1"), "{text}");
    assert!(text.contains("vridge_rooms_active 1"), "{text}");
    assert!(
        text.contains("vridge_messages_in_total{type=\"comment_add\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vridge_persister_batch_rows_count 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_plain_http_request_to_the_socket_path_is_refused() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let resp = reqwest::get(server.http(&format!("/ws/feedback/{}", f.project.id)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::get(server.http("/ws/feedback/not-a-number"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_comment_taken_before_shutdown_is_acknowledged_before_the_1001_close() {
    let mut server = TestServer::spawn().await;
    let _tmp = server.take_tmp();
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "last words", Some("last")))
        .await;
    // Wait until the server has read the frame, then shut down at once.
    let metrics = server.state.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !metrics
        .render()
        .contains("vridge_messages_in_total{type=\"comment_add\"} 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server read the comment"
        );
        tokio::task::yield_now().await;
    }
    let stop = tokio::spawn(server.stop());
    let ack = a.expect(is_ack).await;
    let ServerMessage::CommentAck(ack) = ack else {
        unreachable!()
    };
    assert_eq!(ack.client_msg_id.as_deref(), Some("last"));
    assert_eq!(a.ended().await, Ended::Closed(close::GOING_AWAY));
    stop.await.unwrap();
}

#[tokio::test]
async fn a_failed_write_is_reported_and_never_acknowledged() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    // A real database failure: the store refuses this one text.
    let vridge_realtime::store::Store::Sqlite(pool) = &server.state.store else {
        panic!("this test runs on SQLite")
    };
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON comments WHEN NEW.text = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(pool)
    .await
    .unwrap();
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    a.send(&comment_add(f.feedback[0], "poison", Some("p1")))
        .await;
    let failed = a.expect(|m| is_error(m) || is_ack(m)).await;
    assert_eq!(
        failed,
        ServerMessage::Error {
            message: "Comment could not be stored, please retry".into(),
            client_msg_id: Some("p1".into()),
        }
    );
    b.expect_none(Duration::from_millis(300), is_comment).await;
    assert!(server.stored_comments(f.project.id).await.is_empty());
    let rendered = server.state.metrics.render();
    assert!(
        rendered.contains("vridge_persister_failures_total 1"),
        "{rendered}"
    );
    // The socket and the store carry on.
    a.send(&comment_add(f.feedback[0], "fine", Some("p2")))
        .await;
    a.expect(is_ack).await;
    b.expect(is_comment).await;
}
