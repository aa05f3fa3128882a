//! Hostile clients on the HTTP side (issue 10): connections that never
//! speak or trickle, too many connections from one address, HTTP/1.1
//! keep-alive after a request refused before its body was read, per-address
//! and per-user quotas on sign-up, REST writes and upgrades, saturated
//! password hashing, and the memory a sign-up or sign-in flood may cost.
//! Real servers on random ports; raw `TcpStream`s where the wire matters.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

/// Slack on top of a deadline before a test calls it missed.
const MARGIN: Duration = Duration::from_secs(3);

/// Reads until the peer closes; how long it took, or `None` past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response (head, then a Content-Length body) from `stream`,
/// keeping bytes past it in `pending`. `None` if the connection ends first.
async fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<RawResponse> {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no response within {WAIT:?}"),
        }
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("content-length"));
    while pending.len() < head_end + length {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no body within {WAIT:?}"),
        }
    }
    let body = pending[head_end..head_end + length].to_vec();
    pending.drain(..head_end + length);
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn health_request() -> &'static [u8] {
    b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
}

/// `GET /health/live` on a fresh connection answers 200.
async fn still_serves(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(health_request()).await.unwrap();
    let r = read_response(&mut s, &mut Vec::new())
        .await
        .expect("answered");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_the_header_deadline() {
    let server = TestServer::spawn_with(&["--header-read-timeout-ms", "500"]).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_millis(500) + MARGIN)
        .await
        .expect("the server closes a silent connection");
    assert!(
        took >= Duration::from_millis(400),
        "closed too early: {took:?}"
    );
    still_serves(server.addr).await;
    let metrics = reqwest::get(server.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vridge_header_timeouts_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_trickled_request_head_is_closed_within_the_header_deadline() {
    let server = TestServer::spawn_with(&["--header-read-timeout-ms", "800"]).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: ";
    let mut closed = false;
    // One byte every 100 ms, never finishing the head.
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                // hyper may answer 408 before closing; never a 200.
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(!text.contains(" 200 "), "{text}");
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_millis(800) + MARGIN {
            break;
        }
    }
    assert!(
        closed,
        "a trickled head was still open after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() <= Duration::from_millis(800) + MARGIN);
    still_serves(server.addr).await;
}

#[tokio::test]
async fn a_kept_alive_connection_serves_several_requests_and_idles_out() {
    let server = TestServer::spawn_with(&["--header-read-timeout-ms", "700"]).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        s.write_all(health_request()).await.unwrap();
        let r = read_response(&mut s, &mut pending).await.expect("answered");
        assert_eq!(r.status, 200);
        assert!(!r.closes());
        assert_eq!(r.body, b"ok");
    }
    // Idle after its last answer: closed once the next head is overdue.
    closed_within(&mut s, Duration::from_millis(700) + MARGIN)
        .await
        .expect("an idle kept-alive connection is closed");
}

#[tokio::test]
async fn past_the_per_address_cap_a_connection_is_closed_at_once_and_sockets_count() {
    let server = TestServer::spawn_with(&["--max-connections-per-ip", "3"]).await;
    let f = server.fixture().await;
    // A WebSocket holds its connection's slot for its whole life.
    let (_socket, _) = server.join(f.project.id, f.editor.id).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server accept them before the next one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let _ = over.write_all(health_request()).await;
    let mut buf = [0u8; 64];
    let answer = tokio::time::timeout(WAIT, over.read(&mut buf)).await;
    assert!(
        matches!(answer, Ok(Ok(0)) | Ok(Err(_))),
        "the connection over the cap is closed unanswered: {answer:?}"
    );
    // The connections within the cap still work.
    let mut ok = held.pop().unwrap();
    ok.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut ok, &mut Vec::new())
        .await
        .expect("answered");
    assert_eq!(r.status, 200);
    let metrics = String::from_utf8(r.body).unwrap();
    assert!(
        metrics.contains("vridge_connections_refused_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("vridge_connections_open 3"), "{metrics}");
    // Closing one frees its slot.
    drop(ok);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    still_serves(server.addr).await;
}

/// Sends `first` (refused before its body is read) and then a
/// `GET /health/live` on the same connection. Either the refusal said
/// `Connection: close` and the server closed, or the follow-up is answered.
async fn follow_up_after(addr: SocketAddr, first: &[u8], expected_status: u16) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(first).await.unwrap();
    s.write_all(health_request()).await.unwrap();
    let mut pending = Vec::new();
    let refused = read_response(&mut s, &mut pending)
        .await
        .expect("the refusal is answered");
    assert_eq!(
        refused.status,
        expected_status,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    if refused.closes() {
        assert!(
            read_response(&mut s, &mut pending).await.is_none(),
            "said Connection: close but answered again"
        );
        still_serves(addr).await;
    } else {
        let next = read_response(&mut s, &mut pending)
            .await
            .expect("the follow-up is answered on the kept-alive connection");
        assert_eq!(
            next.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&next.body)
        );
        assert_eq!(next.body, b"ok");
    }
}

fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[tokio::test]
async fn after_a_request_refused_before_its_body_the_connection_stays_correct() {
    let server = TestServer::spawn_with(&[
        "--max-body-bytes",
        "1024",
        "--register-attempts-per-ip",
        "1",
        "--limit-rest-write",
        "3",
    ])
    .await;
    let f = server.fixture().await;
    let token = server.token(f.owner.id);
    let json_ct = "Content-Type: application/json\r\n";
    let auth = format!("Authorization: Bearer {token}\r\n{json_ct}");
    // 413: the announced length is over the limit.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(4000));
    follow_up_after(server.addr, &post("/projects", &auth, big.as_bytes()), 413).await;
    // The same with a body far over what fits in one read: the server
    // cannot have drained it by the time it answers.
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(1024 * 1024));
    follow_up_after(server.addr, &post("/projects", &auth, huge.as_bytes()), 413).await;
    follow_up_after(
        server.addr,
        &post("/projects", json_ct, huge.as_bytes()),
        401,
    )
    .await;
    // 401: no token, with a body.
    follow_up_after(
        server.addr,
        &post("/projects", json_ct, br#"{"name":"no token"}"#),
        401,
    )
    .await;
    // 415: not JSON.
    follow_up_after(
        server.addr,
        &post(
            "/projects",
            &format!("Authorization: Bearer {token}\r\nContent-Type: text/plain\r\n"),
            b"name=plain",
        ),
        415,
    )
    .await;
    // 429 before the body: the owner's three writes are spent (two 413s
    // and the 415 counted).
    follow_up_after(server.addr, &post("/projects", &auth, huge.as_bytes()), 429).await;
    // 429 after the body (sign-up reads it first): the address's one
    // sign-up a minute is spent.
    let signup = br#"{"email":"first@example.com","password":"long enough","username":"first"}"#;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&post("/auth/register", json_ct, signup))
        .await
        .unwrap();
    let created = read_response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(created.status, 201);
    assert!(
        !created.closes(),
        "a request whose body was read keeps the connection"
    );
    let again = br#"{"email":"second@example.com","password":"long enough","username":"second"}"#;
    follow_up_after(server.addr, &post("/auth/register", json_ct, again), 429).await;
}

#[tokio::test]
async fn sign_ups_from_one_address_past_the_quota_get_429() {
    let server = TestServer::spawn_with(&["--register-attempts-per-ip", "2"]).await;
    let api = Api::new(&server);
    api.register("one@example.com").await;
    api.register("two@example.com").await;
    let third = api
        .post(
            "/auth/register",
            json!({"email": "three@example.com", "password": "long enough", "username": "three"}),
        )
        .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error(), "rate_limited");
    assert!(third.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        server
            .state
            .store
            .user_credentials("three@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn rest_writes_past_the_per_user_quota_get_429_and_reads_still_work() {
    let server = TestServer::spawn_with(&["--limit-rest-write", "3"]).await;
    let f = server.fixture().await;
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));
    for i in 0..3 {
        let r = owner
            .post("/projects", json!({"name": format!("P{i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Every write route shares the quota: a PATCH is refused as well.
    let patch = owner
        .patch(
            &format!("/projects/{}", f.project.id),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(patch.error(), "rate_limited");
    assert!(patch.header("retry-after").is_some());
    let post = owner.post("/projects", json!({"name": "P3"})).await;
    assert_eq!(post.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(owner.get("/projects").await.status, StatusCode::OK);
    let detail = owner.get(&format!("/projects/{}", f.project.id)).await;
    assert_eq!(
        detail.body["name"], "Cut 3",
        "the refused PATCH changed nothing"
    );
    // Another user has their own quota.
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    assert_eq!(
        editor
            .post("/projects", json!({"name": "mine"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn upgrades_from_one_address_past_the_quota_get_429_before_the_handshake() {
    let server = TestServer::spawn_with(&["--limit-upgrades-per-ip", "3"]).await;
    let url = server.ws_url(1, "not-a-token");
    for _ in 0..3 {
        // A bad token is refused after the handshake, with 4001.
        let mut client = Client::connect(&url, vridge_protocol::Encoding::Json).await;
        assert_eq!(client.ended().await, Ended::Closed(4001));
    }
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let wait: u64 = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("Retry-After");
            assert!((1..=60).contains(&wait));
        }
        other => panic!(
            "expected HTTP 429, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    // REST from the same address is not affected.
    still_serves(server.addr).await;
}

#[tokio::test]
async fn lifted_rate_limits_lift_the_upgrade_quota() {
    let server =
        TestServer::spawn_with(&["--limit-upgrades-per-ip", "1", "--no-rate-limits"]).await;
    let f = server.fixture().await;
    let mut sockets = Vec::new();
    for user in [f.owner.id, f.editor.id, f.viewer.id] {
        sockets.push(server.join(f.project.id, user).await);
    }
    assert_eq!(sockets.len(), 3);
}

#[tokio::test]
async fn saturated_password_hashing_answers_503_with_retry_after() {
    let server = TestServer::spawn_with(&[
        "--password-hash-concurrency",
        "1",
        "--password-hash-wait-ms",
        "1",
        "--login-attempts-per-ip",
        "100000",
        "--login-attempts-per-email",
        "100000",
    ])
    .await;
    let api = Api::new(&server);
    let attempts = (0..24).map(|i| {
        let api = api.clone();
        async move {
            api.post(
                "/auth/login",
                json!({"email": format!("nobody{i}@example.com"), "password": "wrong password"}),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(attempts).await;
    let busy: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "one slot and a 1 ms wait: some must be refused"
    );
    for r in &busy {
        assert_eq!(r.error(), "unavailable");
        assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    }
    assert!(
        replies.iter().all(|r| matches!(
            r.status,
            StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
        )),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Once the flood is over, sign-ins are served again.
    api.register("after@example.com").await;
    api.login("after@example.com").await;
}

/// The server binary as a child process, so that its RSS is its own.
struct Binary {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A free port (bound and released; nothing else here takes it).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_vridge-realtime"))
            .arg("--bind")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--jwt-secret", JWT_SECRET])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let binary = Self {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = reqwest::get(format!("http://{addr}/health/live")).await;
            if up.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "the server binary did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        binary
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// Accounts [`register_known`] creates before a flood, so that the flood's
/// sign-ins for them can succeed whichever of its sign-ups win a slot.
const KNOWN_ACCOUNTS: usize = 8;

fn known_email(i: usize) -> String {
    format!("known{}@example.com", i % KNOWN_ACCOUNTS)
}

/// Creates the [`KNOWN_ACCOUNTS`] one after another, before any flood.
async fn register_known(addr: SocketAddr) {
    let client = reqwest::Client::new();
    for i in 0..KNOWN_ACCOUNTS {
        let status = client
            .post(format!("http://{addr}/auth/register"))
            .json(&json!({"email": known_email(i),
                "password": "a long enough password", "username": format!("known{i}")}))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 201, "registering {}", known_email(i));
    }
}

/// `n` concurrent sign-ups and `n` concurrent sign-ins (half of them for the
/// accounts [`register_known`] makes, half for nobody); the statuses seen,
/// with their counts.
async fn flood(addr: SocketAddr, wave: usize, n: usize) -> std::collections::BTreeMap<u16, usize> {
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let registers = (0..n).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/auth/register"))
                .json(&json!({"email": format!("w{wave}u{i}@example.com"),
                    "password": "a long enough password", "username": format!("w{wave}u{i}")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let logins = (0..n).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let email = if i % 2 == 0 {
                known_email(i / 2)
            } else {
                format!("nobody{i}@example.com")
            };
            client
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": email, "password": "a long enough password"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let (a, b) = tokio::join!(
        futures_util::future::join_all(registers),
        futures_util::future::join_all(logins)
    );
    let mut seen = std::collections::BTreeMap::new();
    for s in a.into_iter().chain(b) {
        *seen.entry(s).or_insert(0) += 1;
    }
    seen
}

/// The goal of issue 10: RSS ≤ base + 64 MiB under any sign-up or sign-in
/// flood. Two hashing slots (19 MiB of argon2 memory each, kept for reuse).
const RSS_BUDGET_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_and_sign_in_flood_that_reaches_hashing_keeps_rss_within_64_mib() {
    let server = Binary::start(&[
        "--password-hash-concurrency",
        "2",
        "--password-hash-wait-ms",
        "60000",
        "--register-attempts-per-ip",
        "1000000",
        "--login-attempts-per-ip",
        "1000000",
        "--login-attempts-per-email",
        "1000000",
    ])
    .await;
    register_known(server.addr).await;
    let before = server.rss_kib();
    let mut totals = std::collections::BTreeMap::new();
    for wave in 0..3 {
        for (status, n) in flood(server.addr, wave, 100).await {
            *totals.entry(status).or_insert(0) += n;
        }
    }
    let after = server.rss_kib();
    eprintln!(
        "RSS before {before} KiB, after {after} KiB (+{} KiB); statuses {totals:?}",
        after.saturating_sub(before)
    );
    // The flood reached hashing: accounts were created and sign-ins checked,
    // at least a full queue's worth (2 slots × 32 waiters) of them. Which
    // requests win a place depends on arrival order, so only the sum is bound.
    let count = |s: u16| totals.get(&s).copied().unwrap_or(0);
    assert!(
        count(201) >= 1 && count(200) >= 1 && count(401) >= 1,
        "{totals:?}"
    );
    assert!(count(201) + count(200) + count(401) >= 64, "{totals:?}");
    assert!(
        totals
            .keys()
            .all(|s| matches!(s, 200 | 201 | 401 | 409 | 503)),
        "{totals:?}"
    );
    assert!(
        after <= before + RSS_BUDGET_KIB,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_limits_a_flood_from_one_address_is_refused_and_rss_stays_bounded() {
    let server = Binary::start(&["--password-hash-concurrency", "2"]).await;
    let before = server.rss_kib();
    let seen = flood(server.addr, 0, 125).await;
    let after = server.rss_kib();
    eprintln!(
        "defaults: RSS before {before} KiB, after {after} KiB (+{} KiB); statuses {seen:?}",
        after.saturating_sub(before)
    );
    // Ten sign-ups a minute per address; twenty sign-ins.
    assert!(seen.get(&201).copied().unwrap_or(0) <= 10, "{seen:?}");
    assert!(
        seen.get(&429).copied().unwrap_or(0) >= 125 + 125 - 10 - 20,
        "{seen:?}"
    );
    assert!(
        seen.keys()
            .all(|s| matches!(s, 200 | 201 | 401 | 429 | 503)),
        "{seen:?}"
    );
    assert!(
        after <= before + RSS_BUDGET_KIB,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
