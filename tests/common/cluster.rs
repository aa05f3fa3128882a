//! Several server nodes sharing one PostgreSQL database and one Redis, as
//! behind a load balancer; and nodes in a process of their own, which a
//! test can kill without goodbye (an in-process node's background tasks
//! would outlive an aborted server task, so only a process dies for real).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::services::{TestDatabase, TestRedis, free_port};
use super::{JWT_SECRET, TestServer};

pub struct Cluster {
    pub nodes: Vec<TestServer>,
    pub redis: TestRedis,
    pub db: Arc<TestDatabase>,
}

impl Cluster {
    /// `n` nodes on a fresh database and a private redis-server.
    pub async fn start(n: usize, extra: &[&str]) -> Self {
        let db = Arc::new(TestDatabase::create().await);
        let redis = TestRedis::start().await;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Self::node(&db, &redis.url(), extra).await);
        }
        Self { nodes, redis, db }
    }

    /// One more node on `db` and the Redis at `redis_url`.
    pub async fn node(db: &Arc<TestDatabase>, redis_url: &str, extra: &[&str]) -> TestServer {
        let mut args = vec!["--database-url", db.url.as_str(), "--redis-url", redis_url];
        args.extend_from_slice(extra);
        let mut node = TestServer::spawn_with(&args).await;
        node.hold_database(db.clone());
        node
    }
}

/// A node running the real binary in its own process; killed (SIGKILL) by
/// [`ChildNode::kill`] or on drop. Tokens minted by any [`TestServer`]
/// work here: every node shares [`JWT_SECRET`].
pub struct ChildNode {
    pub addr: SocketAddr,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl ChildNode {
    /// Starts a node on `db` and the Redis at `redis_url`, and waits until
    /// it answers `/health/ready` with 200.
    pub async fn spawn(db: &TestDatabase, redis_url: &str, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vridge-realtime"))
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                &tmp.path().to_string_lossy(),
                "--jwt-secret",
                JWT_SECRET,
                "--database-url",
                &db.url,
                "--redis-url",
                redis_url,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a node process");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let node = Self {
            addr,
            child: Some(child),
            _tmp: tmp,
        };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("http://{addr}/health/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if ready {
                return node;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node process did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn ws_url(&self, project: i64, token: &str) -> String {
        format!("ws://{}/ws/feedback/{}?token={}", self.addr, project, token)
    }

    /// SIGKILL: no goodbye, no presence dropped, sockets cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}
