//! Several server nodes sharing one PostgreSQL database and one Redis, as
//! behind a load balancer.

use std::sync::Arc;

use super::TestServer;
use super::services::{TestDatabase, TestRedis};

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
