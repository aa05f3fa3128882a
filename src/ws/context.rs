//! What every socket shares: the coordinator and the few parts a socket's
//! IO needs (token checks, rate limits, slot counts, its settings and the
//! shutdown signals). One `Arc` of it lives in each socket.

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection_limit::ConnectionLimiter;
use crate::auth::JwtKeys;
use crate::hub::Hub;
use crate::limits::RateLimits;
use crate::metrics::Metrics;

/// The settings of sockets, from configuration.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    pub max_sockets_per_user: usize,
    /// Events queued per socket before it counts as a slow consumer.
    pub outbound_queue: usize,
    /// Most events the writer packs into one frame.
    pub max_batch: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Origins whose pages may open sockets besides the server's own.
    pub allowed_origins: Vec<String>,
    /// tungstenite's buffer sizes and message limits.
    pub ws_config: WebSocketConfig,
}

/// Shared by every socket of this node; lives as long as the server.
#[derive(Debug)]
pub struct SessionContext {
    pub hub: Hub,
    pub jwt: Arc<JwtKeys>,
    pub limits: Arc<RateLimits>,
    /// This node's count of sockets per user.
    pub connections: ConnectionLimiter,
    pub metrics: Arc<Metrics>,
    pub settings: SocketSettings,
    /// Fires when the server starts shutting down: sessions stop taking
    /// client messages (those already read are still stored and acknowledged).
    pub shutdown: CancellationToken,
    /// Fires once the persister has flushed: sessions send what is queued,
    /// then close with 1001.
    pub close_sockets: CancellationToken,
    /// Every socket's task, so shutdown can wait for them.
    pub sessions: TaskTracker,
}
