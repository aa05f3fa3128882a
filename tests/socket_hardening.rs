//! Hostile and long-lived sockets (issue: hardening): one client's bad rows
//! never fail another's comments, sockets do not outlive their tokens,
//! foreign origins cannot open sockets, the close handshake and protocol
//! errors follow RFC 6455, and resumes at the edges neither hide live
//! comments nor make frames the socket cannot write.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::raw::{RawPeer, close_frame, frame};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vridge_protocol::{ClientMessage, Encoding, NewReaction, ServerMessage, close};
use vridge_realtime::auth::TokenKind;
use vridge_realtime::domain::{IdempotencyKey, ValidComment};
use vridge_realtime::store::{CommentRequest, Store};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error_for(message: &str, id: &str) -> ServerMessage {
    ServerMessage::Error {
        message: message.into(),
        client_msg_id: Some(id.into()),
    }
}

// ---- one client's bad input never fails another's -------------------------

/// The reported attack: on PostgreSQL, comments holding U+0000 made whole
/// persister batches fail. The rule now sits in the parse constructors, so
/// the bad comment is refused (naming its `client_msg_id`) before it reaches
/// the store, on the socket as on REST, and the victim's comments all land.
#[tokio::test]
async fn nul_in_a_socket_comment_is_refused_and_never_fails_another_users_comments() {
    let server = TestServer::spawn_postgres_with(&["--no-rate-limits"]).await;
    let f = server.fixture().await;
    let (mut attacker, _) = server.join(f.project.id, f.editor.id).await;
    let (mut victim, _) = server.join(f.project.id, f.editor2.id).await;
    const VICTIM: usize = 120;
    for i in 0..VICTIM {
        victim
            .send(&comment_add(
                f.feedback[0],
                &format!("v{i}"),
                Some(&format!("v{i}")),
            ))
            .await;
        if i % 12 == 0 {
            let id = format!("nul{i}");
            attacker
                .send(&comment_add(f.feedback[0], "bad\0text", Some(&id)))
                .await;
        }
    }
    let mut acks = 0;
    while acks < VICTIM {
        match victim.next().await {
            ServerMessage::CommentAck(_) => acks += 1,
            ServerMessage::Error { message, .. } => panic!("victim's comment failed: {message}"),
            _ => {}
        }
    }
    for i in (0..VICTIM).step_by(12) {
        let id = format!("nul{i}");
        assert_eq!(
            attacker.expect(is_error).await,
            error_for("Invalid comment data", &id)
        );
    }
    // A NUL in a reaction's emoji is refused too.
    let some_comment = server.stored_comments(f.project.id).await[0].id;
    attacker
        .send(&ClientMessage::ReactionAdd {
            reaction: NewReaction {
                comment_id: some_comment,
                emoji: "\0".into(),
            },
            client_msg_id: None,
        })
        .await;
    assert_eq!(
        attacker.expect(is_error).await,
        ServerMessage::Error {
            message: "Invalid reaction data".into(),
            client_msg_id: None,
        }
    );
    let stored = server
        .state
        .store
        .comments_since(f.project.id, 0, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), VICTIM);
}

/// Whatever row the database itself refuses fails alone: a batch whose data
/// was refused is split and written again, so the other rows of the same
/// flush are stored and acknowledged, in order, and only the refused rows
/// get "Invalid comment data" with their `client_msg_id`.
#[tokio::test]
async fn a_row_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let server = TestServer::spawn_postgres_with(&["--no-rate-limits"]).await;
    let f = server.fixture().await;
    let Store::Postgres(pool) = &server.state.store else {
        panic!("this test runs on PostgreSQL")
    };
    sqlx::query("ALTER TABLE comments ADD CONSTRAINT refuse_poison CHECK (text <> 'poison')")
        .execute(pool)
        .await
        .unwrap();
    // Queue the whole batch before the persister sees any of it: submit
    // straight to the persister, as sockets and REST do.
    let mut waits = Vec::new();
    for i in 0..40 {
        let text = if i % 10 == 3 {
            "poison".to_owned()
        } else {
            format!("ok {i}")
        };
        let request = CommentRequest {
            project_id: f.project.id,
            user_id: f.editor.id,
            comment: ValidComment::parse(vridge_protocol::NewComment {
                feedback_id: f.feedback[0],
                text,
                title: None,
                section: None,
                security: None,
                timestamp: None,
                ..Default::default()
            })
            .unwrap(),
            key: IdempotencyKey::from_client(Some(&format!("k{i}"))).unwrap(),
            parent: None,
        };
        let persister = server.state.persister.clone();
        waits.push(tokio::spawn(async move { persister.store(request).await }));
    }
    let mut stored_ids = Vec::new();
    let mut refused = 0;
    for (i, wait) in waits.into_iter().enumerate() {
        match wait.await.unwrap() {
            Ok(stored) => {
                assert_ne!(i % 10, 3, "a poison row was stored");
                stored_ids.push(stored.comment.id);
            }
            Err(e) => {
                assert_eq!(i % 10, 3, "comment {i} failed: {e}");
                assert_eq!(e.to_string(), "Invalid comment data");
                refused += 1;
            }
        }
    }
    assert_eq!((stored_ids.len(), refused), (36, 4));
    let mut sorted = stored_ids.clone();
    sorted.sort_unstable();
    assert_eq!(stored_ids, sorted, "ids follow the queue's order");
    let rendered = server.state.metrics.render();
    assert!(
        rendered.contains("vridge_persister_failures_total 4"),
        "{rendered}"
    );
}

// ---- sessions do not outlive their token ----------------------------------

/// The reported case: a socket opened with a 5-second token still posted
/// comments 14 s later. Now it is warned with `token_expiring`, and without
/// a refresh it closes with 4002 at expiry (plus the 5 s clock-skew
/// leeway every token check allows); nothing it sends after is taken.
#[tokio::test]
async fn a_socket_is_warned_before_its_token_expires_and_closed_with_4002_without_a_refresh() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let now = now_secs();
    let token = server
        .state
        .jwt
        .mint_at(f.editor.id, TokenKind::Access, now, now + 2)
        .unwrap();
    let mut c = Client::connect(&server.ws_url(f.project.id, &token), Encoding::Json).await;
    let warned = c
        .expect(|m| matches!(m, ServerMessage::TokenExpiring { .. }))
        .await;
    assert_eq!(
        warned,
        ServerMessage::TokenExpiring {
            expires_at: (now + 2) as i64
        }
    );
    let ended = tokio::time::timeout(Duration::from_secs(12), c.ended())
        .await
        .expect("closed at expiry");
    assert_eq!(ended, Ended::Closed(close::TOKEN_EXPIRED));
    assert!(
        now_secs() <= now + 2 + 5 + 2,
        "closed within the leeway of expiry"
    );
}

/// `refresh_token` with a fresh access token of the same user keeps the
/// socket open past the first token's expiry; the socket keeps working.
#[tokio::test]
async fn a_refreshed_socket_outlives_its_first_token_and_keeps_posting() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let now = now_secs();
    let short = server
        .state
        .jwt
        .mint_at(f.editor.id, TokenKind::Access, now, now + 2)
        .unwrap();
    let mut c = Client::connect(&server.ws_url(f.project.id, &short), Encoding::Json).await;
    c.expect(|m| matches!(m, ServerMessage::TokenExpiring { .. }))
        .await;
    // Another user's token, or a refresh token, is refused.
    for wrong in [
        server.token(f.editor2.id),
        server
            .state
            .jwt
            .mint(f.editor.id, TokenKind::Refresh, Duration::from_secs(600))
            .unwrap(),
    ] {
        c.send(&ClientMessage::RefreshToken { token: wrong }).await;
        assert_eq!(
            c.expect(is_error).await,
            ServerMessage::Error {
                message: "Invalid token".into(),
                client_msg_id: None,
            }
        );
    }
    c.send(&ClientMessage::RefreshToken {
        token: server.token(f.editor.id),
    })
    .await;
    let refreshed = c
        .expect(|m| matches!(m, ServerMessage::TokenRefreshed { .. }))
        .await;
    let ServerMessage::TokenRefreshed { expires_at } = refreshed else {
        unreachable!()
    };
    assert!(expires_at as u64 > now + 60);
    // Past the first token's expiry and its leeway.
    tokio::time::sleep(Duration::from_secs(8)).await;
    c.send(&comment_add(f.feedback[0], "still allowed", Some("late")))
        .await;
    c.expect(is_ack).await;
}

// ---- cross-site WebSocket hijacking ----------------------------------------

async fn upgrade_with_origin(url: &str, origin: Option<&str>) -> Result<(), u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_before_the_handshake() {
    let server =
        TestServer::spawn_with(&["--ws-allowed-origins", "https://app.vridge.example"]).await;
    let f = server.fixture().await;
    let url = server.ws_url(f.project.id, &server.token(f.editor.id));
    assert_eq!(
        upgrade_with_origin(&url, Some("https://evil.example")).await,
        Err(403)
    );
    assert_eq!(upgrade_with_origin(&url, Some("null")).await, Err(403));
    let own = format!("http://{}", server.addr);
    assert_eq!(upgrade_with_origin(&url, Some(&own)).await, Ok(()));
    assert_eq!(
        upgrade_with_origin(&url, Some("https://app.vridge.example")).await,
        Ok(())
    );
    // Not a browser: no Origin, allowed.
    assert_eq!(upgrade_with_origin(&url, None).await, Ok(()));
}

// ---- the close handshake and protocol errors --------------------------------

/// A client's close is answered with a close frame echoing its code, not a
/// dropped connection (which clients report as 1006).
#[tokio::test]
async fn a_clients_close_is_answered_with_its_own_code() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut c, _) = server.join(f.project.id, f.editor.id).await;
    c.ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4321),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("ended without a close frame".into()),
            }
        }
    })
    .await
    .expect("an answer in time");
    assert_eq!(answer, Ok(Some(4321)));
    // The raw view: the echo, then the server closes TCP.
    let mut raw = RawPeer::connect(server.addr, &ws_path(&server, &f)).await;
    raw.write(&close_frame(1000)).await;
    assert_eq!(raw.close_code().await, Some(1000));
    assert!(raw.tcp_closed_within(WAIT).await);
}

fn ws_path(server: &TestServer, f: &Fixture) -> String {
    format!(
        "/ws/feedback/{}?token={}",
        f.project.id,
        server.token(f.editor.id)
    )
}

/// Each framing violation closes with 1002 and invalid UTF-8 with 1007
/// (RFC 6455 §7.4.1), and another member's socket is untouched.
#[tokio::test]
async fn protocol_violations_close_with_1002_and_invalid_utf8_with_1007() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut bystander, _) = server.join(f.project.id, f.owner.id).await;
    let ping = frame(0x89, b"", true);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked text frame", frame(0x81, b"{}", false), 1002),
        ("reserved bit RSV1", frame(0x81 | 0x40, b"{}", true), 1002),
        ("reserved data opcode 0x3", frame(0x83, b"x", true), 1002),
        ("reserved control opcode 0xB", frame(0x8B, b"", true), 1002),
        ("fragmented ping", frame(0x09, b"", true), 1002),
        (
            "control frame over 125 bytes",
            frame(0x89, &[b'p'; 126], true),
            1002,
        ),
        (
            "continuation with nothing to continue",
            frame(0x80, b"x", true),
            1002,
        ),
        (
            "new data frame inside a fragmented message",
            [frame(0x01, b"{", true), frame(0x81, b"}", true)].concat(),
            1002,
        ),
        ("close payload of one byte", frame(0x88, &[3], true), 1002),
        ("close code that may not be sent", close_frame(1005), 1002),
        (
            "text that is not UTF-8",
            frame(0x81, &[0xc3, 0x28], true),
            1007,
        ),
        (
            "close reason that is not UTF-8",
            frame(0x88, &[0x03, 0xe8, 0xff, 0xfe], true),
            1007,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut raw = RawPeer::connect(server.addr, &ws_path(&server, &f)).await;
        // A valid ping first: the socket is open and answering.
        raw.write(&ping).await;
        raw.write(&bytes).await;
        assert_eq!(raw.close_code().await, Some(code), "{what}");
    }
    bystander
        .send(&comment_add(f.feedback[0], "unaffected", Some("b1")))
        .await;
    bystander.expect(is_ack).await;
}

// ---- resume at the edges ----------------------------------------------------

/// A `since` ahead of the store is clamped to the project's newest comment
/// (and `resumed_from` says so); taken at face value it hid every live
/// comment up to that id.
#[tokio::test]
async fn a_since_ahead_of_the_store_is_clamped_and_live_comments_still_arrive() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    a.send(&comment_add(f.feedback[0], "first", Some("c1")))
        .await;
    let ServerMessage::CommentAck(first) = a.expect(is_ack).await else {
        unreachable!()
    };
    let url = format!(
        "{}&since=999999",
        server.ws_url(f.project.id, &server.token(f.editor2.id))
    );
    let mut b = Client::connect(&url, Encoding::Json).await;
    let ServerMessage::InitialState(state) = b.next().await else {
        panic!("expected initial_state")
    };
    assert_eq!(state.resumed_from, Some(first.comment_id));
    assert_eq!(state.last_comment_id, Some(first.comment_id));
    assert!(state.comments.is_empty());
    assert_eq!(state.resume_complete, Some(true));
    a.send(&comment_add(f.feedback[0], "second", Some("c2")))
        .await;
    let ServerMessage::Comment { comment, .. } = b.expect(is_comment).await else {
        unreachable!()
    };
    assert_eq!(comment.text, "second");
}

/// A resume whose backlog is large in bytes is capped like one large in
/// count (`resume_complete: false`), never closed; resuming again from
/// `last_comment_id` until complete yields every comment exactly once.
#[tokio::test]
async fn a_resume_large_in_bytes_is_capped_and_completes_in_steps() {
    let server = TestServer::spawn_with(&["--resume-max-bytes", "200000"]).await;
    let f = server.fixture().await;
    let long = "é".repeat(9_990);
    let requests: Vec<CommentRequest> = (0..60)
        .map(|i| CommentRequest {
            project_id: f.project.id,
            user_id: f.editor.id,
            comment: ValidComment::parse(vridge_protocol::NewComment {
                feedback_id: f.feedback[0],
                text: format!("{i} {long}"),
                title: None,
                section: None,
                security: None,
                timestamp: None,
                ..Default::default()
            })
            .unwrap(),
            key: IdempotencyKey::from_client(Some(&format!("big{i}"))).unwrap(),
            parent: None,
        })
        .collect();
    server.state.store.insert_comments(&requests).await.unwrap();
    let mut since = 0;
    let mut seen = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let url = format!(
            "{}&since={since}",
            server.ws_url(f.project.id, &server.token(f.editor2.id))
        );
        let mut c = Client::connect(&url, Encoding::Json).await;
        let ServerMessage::InitialState(state) = c.next().await else {
            panic!("expected initial_state")
        };
        assert!(!state.comments.is_empty(), "each round makes progress");
        seen.extend(state.comments.iter().map(|c| c.id));
        since = state.last_comment_id.unwrap();
        if state.resume_complete == Some(true) {
            break;
        }
        assert!(rounds < 60);
    }
    assert!(
        rounds > 2,
        "the byte cap split the backlog ({rounds} rounds)"
    );
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 60);
    assert_eq!(seen, unique, "no comment twice, in order");
}
