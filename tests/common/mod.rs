//! Integration-test helpers: a real server on a random port with its own
//! database, seeded fixtures, and real WebSocket clients.
#![allow(dead_code)]

pub mod cluster;
pub mod raw;
pub mod rest;
pub mod services;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vridge_protocol::codec::{decode_server, encode};
use vridge_protocol::{ClientMessage, Encoding, ServerMessage};
use vridge_realtime::domain::Role;
use vridge_realtime::store::{NewFeedback, NewUser, Project, User};
use vridge_realtime::{AppState, Application, Config};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
pub const JWT_SECRET: &str = "integration-test-secret-of-at-least-32-bytes";

/// Tracing output only when `TEST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
}

/// A running server. Dropping it leaves the task to die with the runtime;
/// call [`TestServer::stop`] to shut it down gracefully.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    _tmp: Option<tempfile::TempDir>,
    /// The PostgreSQL database this server owns, dropped with it.
    _db: Option<std::sync::Arc<services::TestDatabase>>,
}

impl TestServer {
    /// A server on SQLite in a fresh temporary directory.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A fresh temporary directory plus extra command-line style settings.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::spawn_in(dir, extra).await;
        server._tmp = Some(tmp);
        server
    }

    /// A server whose data lives in `data_dir` (reused across restarts).
    pub async fn spawn_in(data_dir: PathBuf, extra: &[&str]) -> Self {
        init_tracing();
        let dir = data_dir.to_string_lossy().into_owned();
        let mut args = vec![
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
            "--jwt-secret",
            JWT_SECRET,
        ];
        args.extend_from_slice(extra);
        let config = Config::from_args(args).expect("valid test config");
        let app = Application::build(config).await.expect("server builds");
        let addr = app.local_addr().expect("bound");
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            data_dir,
            stop: Some(stop),
            task,
            _tmp: None,
            _db: None,
        }
    }

    /// A server on a fresh PostgreSQL database (on the server at
    /// `TEST_DATABASE_URL`), dropped with the server.
    pub async fn spawn_postgres() -> Self {
        Self::spawn_postgres_with(&[]).await
    }

    pub async fn spawn_postgres_with(extra: &[&str]) -> Self {
        let db = std::sync::Arc::new(services::TestDatabase::create().await);
        let mut args = vec!["--database-url", db.url.as_str()];
        args.extend_from_slice(extra);
        let mut server = Self::spawn_with(&args).await;
        server._db = Some(db);
        server
    }

    /// Keeps `db` alive as long as this server.
    pub fn hold_database(&mut self, db: std::sync::Arc<services::TestDatabase>) {
        self._db = Some(db);
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result");
    }

    /// Keeps the temp dir alive beyond this server (for restarts).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The value `/metrics` shows for the unlabelled metric `name`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(self.http("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    pub fn ws_url(&self, project: i64, token: &str) -> String {
        format!("ws://{}/ws/feedback/{}?token={}", self.addr, project, token)
    }

    /// The project's 20 newest stored comments, oldest first.
    pub async fn stored_comments(&self, project: i64) -> Vec<vridge_protocol::Comment> {
        self.state
            .store
            .latest_comments(project, 20)
            .await
            .expect("store reads")
    }

    pub fn token(&self, user: i64) -> String {
        self.state.jwt.mint_access(user).expect("token")
    }

    /// Connects `user` to `project` with a JSON socket and reads `initial_state`.
    pub async fn join(&self, project: i64, user: i64) -> (Client, vridge_protocol::InitialState) {
        self.join_with(project, user, Encoding::Json).await
    }

    pub async fn join_with(
        &self,
        project: i64,
        user: i64,
        enc: Encoding,
    ) -> (Client, vridge_protocol::InitialState) {
        let mut client = Client::connect(&self.ws_url(project, &self.token(user)), enc).await;
        match client.next().await {
            ServerMessage::InitialState(state) => (client, state),
            other => panic!("expected initial_state, got {other:?}"),
        }
    }

    /// Seeds users of every role, a project and two feedback items.
    pub async fn fixture(&self) -> Fixture {
        let store = &self.state.store;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let mut users = Vec::new();
        for name in ["owner", "editor", "editor2", "viewer", "outsider"] {
            let email = format!("{name}-{unique}@test.local");
            users.push(
                store
                    .create_user(&NewUser {
                        email: &email,
                        username: name,
                        password_hash: None,
                    })
                    .await
                    .expect("user"),
            );
        }
        let project = store
            .create_project(users[0].id, "Cut 3", "")
            .await
            .expect("project");
        store
            .add_member(project.id, users[1].id, Role::Editor)
            .await
            .expect("member");
        store
            .add_member(project.id, users[2].id, Role::Editor)
            .await
            .expect("member");
        store
            .add_member(project.id, users[3].id, Role::Viewer)
            .await
            .expect("member");
        let mut feedback = Vec::new();
        for title in ["Intro", "Outro"] {
            feedback.push(
                store
                    .create_feedback(&NewFeedback {
                        project_id: project.id,
                        created_by: users[0].id,
                        title,
                        priority: "medium",
                        timestamp: Some(1.5),
                        video_url: None,
                    })
                    .await
                    .expect("feedback")
                    .0
                    .id,
            );
        }
        let mut it = users.into_iter();
        Fixture {
            owner: it.next().unwrap(),
            editor: it.next().unwrap(),
            editor2: it.next().unwrap(),
            viewer: it.next().unwrap(),
            outsider: it.next().unwrap(),
            project,
            feedback,
        }
    }
}

pub struct Fixture {
    pub owner: User,
    pub editor: User,
    pub editor2: User,
    pub viewer: User,
    pub outsider: User,
    pub project: Project,
    pub feedback: Vec<i64>,
}

/// A real WebSocket client that flattens `batch` frames into single events.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub encoding: Encoding,
    pending: VecDeque<ServerMessage>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    ClosedWithoutCode,
    Dropped,
}

impl Client {
    pub async fn connect(url: &str, encoding: Encoding) -> Self {
        let mut request = url.into_client_request().expect("request");
        if encoding == Encoding::MsgPack {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(Encoding::MSGPACK_SUBPROTOCOL),
            );
        }
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("handshake");
        if encoding == Encoding::MsgPack {
            assert_eq!(
                response
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.as_bytes()),
                Some(Encoding::MSGPACK_SUBPROTOCOL.as_bytes()),
                "server echoes the msgpack subprotocol"
            );
        }
        Self {
            ws,
            encoding,
            pending: VecDeque::new(),
        }
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        let bytes = encode(self.encoding, msg).expect("encode");
        let frame = match self.encoding {
            Encoding::Json => Message::Text(Utf8Bytes::try_from(bytes).expect("utf8")),
            Encoding::MsgPack => Message::Binary(bytes),
        };
        self.ws.send(frame).await.expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(&value.to_string()).await;
    }

    /// The next event (batches are flattened), or a panic after [`WAIT`].
    pub async fn next(&mut self) -> ServerMessage {
        match tokio::time::timeout(WAIT, self.try_next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => panic!("socket ended while waiting for a message"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next event, or `None` when the socket ends.
    pub async fn try_next(&mut self) -> Option<ServerMessage> {
        loop {
            if let Some(msg) = self.pending.pop_front() {
                return Some(msg);
            }
            let frame = self.ws.next().await?.ok()?;
            let bytes = match frame {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Close(_) => return None,
                _ => continue,
            };
            let enc = self.encoding;
            match decode_server(enc, &bytes).expect("server frame decodes") {
                ServerMessage::Batch { messages } => self.pending.extend(messages),
                msg => self.pending.push_back(msg),
            }
        }
    }

    /// Events of frames already read that [`Self::next`] has not returned
    /// yet: after a batch frame's first event, the rest of that frame.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Skips events until one matches, or panics after [`WAIT`].
    pub async fn expect<F: FnMut(&ServerMessage) -> bool>(&mut self, mut pred: F) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.try_next()).await {
                Ok(Some(msg)) if pred(&msg) => return msg,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("socket ended before the expected message"),
                Err(_) => panic!("expected message did not arrive within {WAIT:?}"),
            }
        }
    }

    /// Asserts that no event matching `pred` arrives within `window`.
    pub async fn expect_none<F: FnMut(&ServerMessage) -> bool>(
        &mut self,
        window: Duration,
        mut pred: F,
    ) {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.try_next()).await {
                Ok(Some(msg)) if pred(&msg) => panic!("unexpected message: {msg:?}"),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Reads until the socket ends and reports how.
    pub async fn ended(&mut self) -> Ended {
        let result = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        return Ended::Closed(frame.code.into());
                    }
                    Some(Ok(Message::Close(None))) => return Ended::ClosedWithoutCode,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Ended::Dropped,
                }
            }
        })
        .await;
        result.expect("socket ended in time")
    }
}

/// A `comment_add` for `feedback` with `text` and an optional client id.
pub fn comment_add(feedback: i64, text: &str, client_msg_id: Option<&str>) -> ClientMessage {
    ClientMessage::CommentAdd {
        comment: vridge_protocol::NewComment {
            feedback_id: feedback,
            text: text.into(),
            title: None,
            section: None,
            security: None,
            timestamp: Some(3.25),
            ..Default::default()
        },
        client_msg_id: client_msg_id.map(str::to_owned),
    }
}

pub fn is_comment(msg: &ServerMessage) -> bool {
    matches!(msg, ServerMessage::Comment { .. })
}

pub fn is_ack(msg: &ServerMessage) -> bool {
    matches!(msg, ServerMessage::CommentAck(_))
}

pub fn is_error(msg: &ServerMessage) -> bool {
    matches!(msg, ServerMessage::Error { .. })
}

/// A comment retried with the same `client_msg_id` is stored once, answered
/// with the original, and seen once by the other members. Run on each engine.
pub async fn retry_is_stored_once(server: &TestServer) {
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.owner.id).await;
    a.send(&comment_add(f.feedback[0], "once", Some("retry-me")))
        .await;
    let ServerMessage::CommentAck(first) = a.expect(is_ack).await else {
        unreachable!()
    };
    a.send(&comment_add(f.feedback[0], "once", Some("retry-me")))
        .await;
    let ServerMessage::CommentAck(second) = a.expect(is_ack).await else {
        unreachable!()
    };
    assert!(second.duplicate);
    assert_eq!(second.comment_id, first.comment_id);
    assert_eq!(server.stored_comments(f.project.id).await.len(), 1);
    b.expect(is_comment).await;
    b.expect_none(Duration::from_millis(300), is_comment).await;
}
