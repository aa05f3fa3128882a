//! Wiring: builds the store, broker, rooms, persister and router from a
//! [`Config`], serves until a shutdown signal, then shuts down in order —
//! stop accepting, close sockets with 1001, flush the persister, close the
//! store — within the configured deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};
use vridge_protocol::{FeedbackId, ProjectId};

use crate::auth::JwtKeys;
use crate::auth::hash_pool::HashPool;
use crate::auth::keys::{self, KeyError};
use crate::broker::{Broker, BrokerError, RedisBroker, RedisSettings};
use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::room::{ConnId, Registry, RoomSettings};
use crate::store::persister::Persister;
use crate::store::{BatchedReads, Store, StoreError};
use crate::ws::connection_limit::ConnectionLimiter;

/// How often idle rate-limiter keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Room events (retirements, presence changes) queued for the Redis broker.
const ROOM_EVENTS_QUEUE: usize = 65_536;
/// Feedback→project entries cached before the cache is cleared.
const FEEDBACK_CACHE_MAX: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("JWT keys: {0}")]
    Keys(#[from] KeyError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("creating the data directory: {0}")]
    DataDir(std::io::Error),
}

/// Everything request handlers and sessions share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// Membership and newest-comment reads, batched across concurrent
    /// connects and requests.
    pub reads: BatchedReads,
    pub broker: Broker,
    pub registry: Registry,
    pub persister: Persister,
    pub jwt: Arc<JwtKeys>,
    /// Password hashing for sign-up and sign-in: bounded slots, reused memory.
    pub hashes: HashPool,
    pub limits: Arc<RateLimits>,
    pub connections: ConnectionLimiter,
    pub metrics: Arc<Metrics>,
    /// Fires when the server starts shutting down: sessions stop taking
    /// client messages (those already read are still stored and acknowledged).
    pub shutdown: CancellationToken,
    /// Fires once the persister has flushed: sessions send what is queued,
    /// then close with 1001.
    pub close_sockets: CancellationToken,
    /// Every socket's task, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// Client writes (socket frames, REST comment posts) taken and not yet
    /// handed to the persister; shutdown waits for them before it stops the
    /// persister, so a write the server took is stored and acknowledged.
    in_flight: TaskTracker,
    pub ws_config: WebSocketConfig,
    next_conn: Arc<AtomicU64>,
    /// Feedback items never move between projects, so this never goes stale.
    feedback_projects: Arc<DashMap<FeedbackId, ProjectId>>,
}

impl AppState {
    /// Admits one client write, or refuses it once shutdown has begun. Hold
    /// the guard until the write is handed to the persister (or refused).
    pub fn admit(&self) -> Option<TaskTrackerToken> {
        // Register first, then check: shutdown cancels before it waits, so a
        // write either sees the cancellation or is waited for.
        let token = self.in_flight.token();
        (!self.shutdown.is_cancelled()).then_some(token)
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Relaxed)
    }

    /// The project of a feedback item, cached.
    pub async fn feedback_project(
        &self,
        feedback: FeedbackId,
    ) -> Result<Option<ProjectId>, StoreError> {
        if let Some(p) = self.feedback_projects.get(&feedback) {
            return Ok(Some(*p));
        }
        let project = self.store.feedback_project(feedback).await?;
        if let Some(p) = project {
            if self.feedback_projects.len() >= FEEDBACK_CACHE_MAX {
                self.feedback_projects.clear();
            }
            self.feedback_projects.insert(feedback, p);
        }
        Ok(project)
    }
}

/// A built, bound server, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    persister_task: JoinHandle<()>,
    persister_stop: CancellationToken,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(StartupError::DataDir)?;
        let store = Store::connect(&config.database_url(), config.db_max_connections).await?;
        let jwt: JwtKeys = keys::load(&config, Duration::from_secs(config.access_token_ttl_secs))?;
        let metrics = Arc::new(Metrics::default());
        let room_settings = RoomSettings {
            typing_timeout: config.typing_timeout(),
            presence_leave_grace: config.presence_leave_grace(),
            store: store.clone(),
        };
        let (registry, broker) = match &config.redis_url {
            None => {
                let registry = Registry::new(room_settings, metrics.clone());
                (registry.clone(), Broker::Memory(registry))
            }
            Some(url) => {
                let (events_tx, events_rx) = tokio::sync::mpsc::channel(ROOM_EVENTS_QUEUE);
                let hooks = crate::room::RoomHooks { events: events_tx };
                let registry = Registry::with_hooks(room_settings, metrics.clone(), hooks);
                let settings = RedisSettings {
                    url: url.clone(),
                    receive_buffer: config.redis_receive_buffer,
                    node_ttl: config.node_ttl(),
                };
                let redis =
                    RedisBroker::connect(settings, registry.clone(), events_rx, metrics.clone())
                        .await?;
                (registry, Broker::Redis(redis))
            }
        };
        let persister_stop = CancellationToken::new();
        let (persister, persister_task) = Persister::spawn(
            store.clone(),
            broker.clone(),
            metrics.clone(),
            config.persist_batch,
            persister_stop.clone(),
        );
        let listener = bind_listener(config.bind).map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
        let (config_hash_slots, config_hash_wait) =
            (config.password_hash_slots(), config.password_hash_wait());
        let state = AppState {
            ws_config: crate::ws::socket_config(&config),
            limits: Arc::new(RateLimits::from_config(&config)),
            config: Arc::new(config),
            reads: BatchedReads::spawn(store.clone(), crate::ws::session::INITIAL_COMMENTS),
            store,
            broker,
            registry,
            persister,
            jwt: Arc::new(jwt),
            hashes: HashPool::new(config_hash_slots, config_hash_wait),
            connections: ConnectionLimiter::default(),
            metrics,
            shutdown: CancellationToken::new(),
            close_sockets: CancellationToken::new(),
            sessions: TaskTracker::new(),
            in_flight: TaskTracker::new(),
            next_conn: Arc::new(AtomicU64::new(1)),
            feedback_projects: Arc::new(DashMap::new()),
        };
        Ok(Self {
            listener,
            state,
            persister_task,
            persister_stop,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until_stopped<F>(self, signal: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let state = self.state;
        let limits = state.limits.clone();
        let prune = spawn_periodic(PRUNE_EVERY, state.shutdown.clone(), move || limits.prune());
        let router = crate::http::router(state.clone());
        // The accept loop runs as its own task: the shutdown sequence below
        // (flush, then close sockets) must never wait behind it draining its
        // connections.
        let settings = crate::http::serve::ServeSettings {
            header_read_timeout: state.config.header_read_timeout(),
            max_connections_per_ip: state.config.max_connections_per_ip,
        };
        let mut server = tokio::spawn(crate::http::serve::serve(
            self.listener,
            router,
            settings,
            state.metrics.clone(),
            state.shutdown.clone(),
        ));
        let mut result = Ok(());
        tokio::select! {
            () = signal => {}
            () = state.shutdown.cancelled() => {}
            ended = &mut server => {
                result = ended.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
        }
        state.shutdown.cancel();
        tracing::info!("shutting down: flushing comments, then closing sockets");
        let deadline = state.config.shutdown_timeout();
        // No write is admitted any more; wait for those already admitted to
        // reach the persister's queue, then flush it, so their
        // acknowledgements are queued to their sockets before they close.
        state.in_flight.close();
        if tokio::time::timeout(deadline, state.in_flight.wait())
            .await
            .is_err()
        {
            tracing::error!("writes in flight did not reach the persister before the deadline");
        }
        self.persister_stop.cancel();
        if tokio::time::timeout(deadline, self.persister_task)
            .await
            .is_err()
        {
            tracing::error!("the persister did not flush before the deadline");
        }
        state.close_sockets.cancel();
        state.sessions.close();
        if tokio::time::timeout(deadline, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close before the deadline");
        }
        prune.abort();
        if !server.is_finished() {
            match tokio::time::timeout(deadline, &mut server).await {
                Ok(ended) => result = ended.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                Err(_) => server.abort(),
            }
        }
        state.broker.shutdown().await;
        state.store.close().await;
        result
    }
}

/// Pending connections the kernel queues before accept; the kernel caps it at
/// `net.core.somaxconn`. tokio's default (1,024) overflows when thousands of
/// clients reconnect at once (after a deploy): the dropped SYNs are retried
/// by clients only after 1 s, then 3 s.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds the listening socket with [`LISTEN_BACKLOG`] and `SO_REUSEADDR`.
fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs `work` every `every` until `shutdown` fires. Keyed rate-limit state
/// (socket messages, sign-in attempts) is pruned this way so it does not
/// grow with every key ever seen.
pub fn spawn_periodic<F>(every: Duration, shutdown: CancellationToken, work: F) -> JoinHandle<()>
where
    F: Fn() + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => work(),
            }
        }
    })
}
