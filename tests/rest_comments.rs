//! Comments over REST: adding through the persister (sockets see it, a retry
//! with the same Idempotency-Key returns the same comment), the newest-first
//! history with cursors, the since-feed for reconnecting clients, ETags and
//! gzip.

mod common;

use std::io::Read;
use std::time::Duration;

use common::rest::{Api, Reply};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vridge_protocol::ServerMessage;

async fn add(api: &Api, feedback: i64, text: &str, key: Option<&str>) -> Reply {
    let mut req = api
        .request(Method::POST, &format!("/feedback/item/{feedback}/comments"))
        .json(&json!({"text": text, "timestamp": 12.5}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    Api::send(req).await
}

#[tokio::test]
async fn a_rest_comment_reaches_the_sockets_and_a_retry_returns_the_same_comment() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.viewer.id).await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));

    let first = add(&editor, f.feedback[0], "from REST", Some("rest-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["text"], "from REST");
    assert_eq!(first.body["user_id"], f.editor.id);
    assert_eq!(first.body["timestamp"], 12.5);
    let ServerMessage::Comment {
        comment, user_id, ..
    } = watcher.expect(is_comment).await
    else {
        unreachable!()
    };
    assert_eq!(comment.id, first.body["id"].as_i64().unwrap());
    assert_eq!(user_id, f.editor.id);

    let retry = add(&editor, f.feedback[0], "from REST", Some("rest-1")).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    watcher
        .expect_none(Duration::from_millis(300), is_comment)
        .await;
    let stored = server
        .state
        .store
        .latest_comments(f.project.id, 20)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);

    // The same key over a socket is the same comment too (one key space per user).
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    socket
        .send(&comment_add(f.feedback[0], "from REST", Some("rest-1")))
        .await;
    let ServerMessage::CommentAck(ack) = socket.expect(is_ack).await else {
        unreachable!()
    };
    assert!(ack.duplicate);
    assert_eq!(ack.comment_id, comment.id);

    // Without a key: a new comment each time.
    let a = add(&editor, f.feedback[0], "no key", None).await;
    let b = add(&editor, f.feedback[0], "no key", None).await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_ne!(a.body["id"], b.body["id"]);
}

#[tokio::test]
async fn adding_a_comment_is_validated_and_needs_the_create_permission() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    assert_eq!(
        add(&viewer, f.feedback[0], "hi", None).await.status,
        StatusCode::FORBIDDEN
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    let hidden = add(&outsider, f.feedback[0], "hi", None).await;
    let missing = add(&outsider, 999_999, "hi", None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.body, missing.body);
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    assert_eq!(
        add(&editor, f.feedback[0], "   ", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        add(&editor, f.feedback[0], &"x".repeat(10_001), None)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        add(&editor, f.feedback[0], "ok", Some(&"k".repeat(129)))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        Api::new(&server)
            .post(
                &format!("/feedback/item/{}/comments", f.feedback[0]),
                json!({"text": "anonymous"})
            )
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        server
            .state
            .store
            .latest_comments(f.project.id, 20)
            .await
            .unwrap()
            .is_empty()
    );
}

fn ids(reply: &Reply) -> Vec<i64> {
    reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn feedback_history_is_newest_first_and_pages_with_a_cursor() {
    // 30 comments by one editor: past the default comment quota.
    let server = TestServer::spawn_with(&["--limit-comment-add", "1000"]).await;
    let f = server.fixture().await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let mut written = Vec::new();
    for i in 0..25 {
        let r = add(&editor, f.feedback[0], &format!("c{i}"), None).await;
        written.push(r.body["id"].as_i64().unwrap());
        // Comments on the other item must not show up.
        if i % 5 == 0 {
            add(&editor, f.feedback[1], "elsewhere", None).await;
        }
    }
    written.reverse();
    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    let base = format!("/feedback/item/{}/comments", f.feedback[0]);
    let mut seen = Vec::new();
    let mut url = format!("{base}?limit=10");
    let mut pages = 0;
    loop {
        let page = viewer.get(&url).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(ids(&page));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("{base}?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, written, "every comment once, newest first");
    let default = viewer.get(&base).await;
    assert_eq!(ids(&default).len(), 20);
    assert_eq!(
        viewer.get(&format!("{base}?cursor=garbage")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        viewer.get(&format!("{base}?limit=0")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(outsider.get(&base).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_since_feed_fills_a_reconnecting_clients_gap_oldest_first() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    for i in 0..3 {
        socket
            .send(&comment_add(
                f.feedback[i % 2],
                &format!("before {i}"),
                None,
            ))
            .await;
        socket.expect(is_ack).await;
    }
    // The client drops; others keep writing.
    drop(socket);
    let editor2 = Api::new(&server).as_token(&server.token(f.editor2.id));
    let seen_last = server
        .state
        .store
        .latest_comments(f.project.id, 1)
        .await
        .unwrap()[0]
        .id;
    let mut missed = Vec::new();
    for i in 0..7 {
        let r = add(&editor2, f.feedback[i % 2], &format!("missed {i}"), None).await;
        missed.push(r.body["id"].as_i64().unwrap());
    }
    let api = Api::new(&server).as_token(&server.token(f.editor.id));
    let path = format!("/projects/{}/comments", f.project.id);
    let first = api.get(&format!("{path}?since={seen_last}&limit=5")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(ids(&first), missed[..5].to_vec());
    assert_eq!(first.body["has_more"], true);
    let cont = first.body["last_comment_id"].as_i64().unwrap();
    let rest = api.get(&format!("{path}?since={cont}&limit=5")).await;
    assert_eq!(ids(&rest), missed[5..].to_vec());
    assert_eq!(rest.body["has_more"], false);
    let nothing = api.get(&format!("{path}?since={}", missed[6])).await;
    assert!(ids(&nothing).is_empty());
    assert_eq!(nothing.body["last_comment_id"], missed[6]);
    let all = api.get(&path).await;
    assert_eq!(ids(&all).len(), 10);
    assert_eq!(
        api.get(&format!("{path}?since=abc")).await.status,
        StatusCode::BAD_REQUEST
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(outsider.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn history_carries_an_etag_and_answers_304() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    add(&editor, f.feedback[0], "one", None).await;
    for path in [
        format!("/feedback/item/{}/comments", f.feedback[0]),
        format!("/projects/{}/comments", f.project.id),
    ] {
        let first = editor.get(&path).await;
        let etag = first.header("etag").expect("etag").to_owned();
        assert!(etag.starts_with("W/\""), "{etag}");
        let cached = Api::send(
            editor
                .request(Method::GET, &path)
                .header("If-None-Match", &etag),
        )
        .await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(cached.header("etag"), Some(etag.as_str()));
        let other = Api::send(
            editor
                .request(Method::GET, &path)
                .header("If-None-Match", "W/\"stale\""),
        )
        .await;
        assert_eq!(other.status, StatusCode::OK);
    }
    // A new comment changes the tag of both pages; so does another limit.
    let paths = [
        format!("/feedback/item/{}/comments", f.feedback[0]),
        format!("/projects/{}/comments", f.project.id),
    ];
    let mut before = Vec::new();
    for path in &paths {
        before.push(editor.get(path).await.header("etag").unwrap().to_owned());
        let narrower = editor.get(&format!("{path}?limit=1")).await;
        assert_ne!(narrower.header("etag"), before.last().map(String::as_str));
    }
    add(&editor, f.feedback[0], "two", None).await;
    for (path, before) in paths.iter().zip(&before) {
        let after = Api::send(
            editor
                .request(Method::GET, path)
                .header("If-None-Match", before),
        )
        .await;
        assert_eq!(after.status, StatusCode::OK, "{path}");
        assert_ne!(after.header("etag"), Some(before.as_str()), "{path}");
    }
}

#[tokio::test]
async fn large_history_is_gzipped_when_accepted_and_small_responses_are_not() {
    let server = TestServer::spawn_with(&["--limit-comment-add", "1000"]).await;
    let f = server.fixture().await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    for i in 0..20 {
        add(
            &editor,
            f.feedback[0],
            &format!("a long enough comment number {i}"),
            None,
        )
        .await;
    }
    let path = format!("/projects/{}/comments", f.project.id);
    let resp = editor
        .request(Method::GET, &path)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let compressed = resp.bytes().await.unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut json)
        .unwrap();
    let body: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 20);
    assert!(compressed.len() < json.len());

    // Not accepted: plain.
    let plain = editor.request(Method::GET, &path).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    // Under 1 KiB: plain even when accepted.
    let small = editor
        .request(Method::GET, "/me")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn rest_and_socket_comments_share_one_quota_and_past_it_rest_gets_429() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    // Five over the socket, five over REST: the default quota of ten a minute.
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    for i in 0..5 {
        socket
            .send(&comment_add(f.feedback[0], &format!("ws {i}"), None))
            .await;
        socket.expect(is_ack).await;
    }
    for i in 0..5 {
        let r = add(&editor, f.feedback[0], &format!("rest {i}"), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let over = add(&editor, f.feedback[0], "one too many", None).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.error(), "rate_limited");
    let wait: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The socket is over the same quota.
    socket
        .send(&comment_add(f.feedback[0], "over on the socket", None))
        .await;
    match socket.expect(|m| is_error(m) || is_ack(m)).await {
        ServerMessage::Error { message, .. } => assert_eq!(message, "Rate limit exceeded"),
        other => panic!("expected the rate-limit error, got {other:?}"),
    }
    // Nothing over the quota was stored; another user has their own quota.
    assert_eq!(server.stored_comments(f.project.id).await.len(), 10);
    let other = Api::new(&server).as_token(&server.token(f.editor2.id));
    assert_eq!(
        add(&other, f.feedback[0], "mine", None).await.status,
        StatusCode::CREATED
    );
}
