//! Crash safety: a server process killed with SIGKILL in the middle of a
//! comment flood loses no comment it acknowledged, and a client that retries
//! everything it sent (acknowledged or not, with the same `client_msg_id`)
//! gets each comment stored exactly once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::services::free_port;
use common::*;
use vridge_protocol::{Encoding, ServerMessage};

const FLOOD: usize = 400;
/// Acknowledgements seen before the process is killed.
const KILL_AFTER_ACKS: usize = 120;

fn start_node(db_url: &str, data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vridge-realtime"))
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data_dir.to_string_lossy(),
            "--jwt-secret",
            JWT_SECRET,
            "--database-url",
            db_url,
            "--no-rate-limits",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server process")
}

async fn wait_live(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ok = reqwest::get(format!("http://{addr}/health/ready"))
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "server never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a socket at `url` and sends [`FLOOD`] comments to `feedback`, the
/// `i`th with text `flood i` and `client_msg_id` `fi` (the same on a retry).
async fn flood(url: &str, feedback: i64) -> Client {
    let mut c = Client::connect(url, Encoding::Json).await;
    assert!(matches!(c.next().await, ServerMessage::InitialState(_)));
    for i in 0..FLOOD {
        c.send(&comment_add(
            feedback,
            &format!("flood {i}"),
            Some(&format!("f{i}")),
        ))
        .await;
    }
    c
}

/// Every stored comment of `project`, oldest first.
async fn all_comments(server: &TestServer, project: i64) -> Vec<vridge_protocol::Comment> {
    server
        .state
        .store
        .comments_since(project, 0, 10_000)
        .await
        .unwrap()
}

/// RSS of a process in KiB (from /proc), to record memory around the run.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_sigkill_mid_flood_loses_no_acknowledged_comment_and_retries_store_each_once() {
    sigkill_mid_flood(TestServer::spawn_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_sigkill_mid_flood_loses_no_acknowledged_comment_and_retries_store_each_once() {
    sigkill_mid_flood(TestServer::spawn().await).await;
}

/// `seeder`, an in-process server on the database under test, seeds the
/// fixture and mints tokens with the shared secret; the process that is
/// killed is the real binary on the same database.
async fn sigkill_mid_flood(seeder: TestServer) {
    let f = seeder.fixture().await;
    let db_url = seeder.state.config.database_url();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = start_node(&db_url, tmp.path(), port);
    wait_live(addr).await;
    let rss_before = rss_kib(child.id());

    let url = format!(
        "ws://{addr}/ws/feedback/{}?token={}",
        f.project.id,
        seeder.token(f.editor.id)
    );
    let mut c = flood(&url, f.feedback[0]).await;
    // Acknowledged before the kill: client_msg_id → stored id.
    let mut acked: HashMap<String, i64> = HashMap::new();
    while acked.len() < KILL_AFTER_ACKS {
        if let ServerMessage::CommentAck(ack) = c.next().await {
            acked.insert(ack.client_msg_id.clone().unwrap(), ack.comment_id);
        }
    }
    eprintln!(
        "server RSS before the flood {rss_before:?} KiB, at the kill {:?} KiB",
        rss_kib(child.id())
    );
    child.kill().unwrap();
    let _ = child.wait();
    // Whatever was still in flight on the socket: count the acks that made it.
    while let Some(msg) = c.try_next().await {
        if let ServerMessage::CommentAck(ack) = msg {
            acked.insert(ack.client_msg_id.clone().unwrap(), ack.comment_id);
        }
    }

    let stored = all_comments(&seeder, f.project.id).await;
    let stored_ids: std::collections::HashSet<i64> = stored.iter().map(|c| c.id).collect();
    for (key, id) in &acked {
        assert!(
            stored_ids.contains(id),
            "acknowledged {key} (id {id}) was lost"
        );
    }
    eprintln!(
        "killed with {} of {FLOOD} acknowledged and {} stored",
        acked.len(),
        stored.len()
    );

    // Restart on the same database and retry every comment.
    let mut child = start_node(&db_url, tmp.path(), port);
    wait_live(addr).await;
    let mut c = flood(&url, f.feedback[0]).await;
    let mut answered = 0;
    while answered < FLOOD {
        match c.next().await {
            ServerMessage::CommentAck(ack) => {
                answered += 1;
                let key = ack.client_msg_id.clone().unwrap();
                if let Some(first) = acked.get(&key) {
                    assert!(ack.duplicate, "{key} was stored twice");
                    assert_eq!(
                        ack.comment_id, *first,
                        "{key} answered with another comment"
                    );
                }
            }
            ServerMessage::Error { message, .. } => panic!("a retry failed: {message}"),
            _ => {}
        }
    }
    let stored = all_comments(&seeder, f.project.id).await;
    assert_eq!(stored.len(), FLOOD, "each comment stored exactly once");
    let mut texts: Vec<&str> = stored.iter().map(|c| c.text.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), FLOOD);
    eprintln!("server RSS after the retries {:?} KiB", rss_kib(child.id()));
    child.kill().unwrap();
    let _ = child.wait();
}
