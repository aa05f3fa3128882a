//! Wiring only: builds the store, the broker (the one place its engines are
//! chosen), the coordinator and the two narrow contexts from a [`Config`],
//! serves until a shutdown signal, then shuts down in order — stop
//! accepting, flush the persister, close sockets with 1001, leave the
//! cluster, close the store — within the configured deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::JwtKeys;
use crate::auth::hash_pool::HashPool;
use crate::auth::keys::{self, KeyError};
use crate::broker::{Broker, BrokerError, MemoryBroker, RedisBroker, RedisSettings};
use crate::config::Config;
use crate::http::{ApiContext, ApiState, PageCache};
use crate::hub::persister::Persister;
use crate::hub::{Hub, HubParts, INITIAL_COMMENTS, ResumeLimits};
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::periodic::spawn_periodic;
use crate::store::{BatchedReads, Store, StoreError};
use crate::ws::connection_limit::ConnectionLimiter;
use crate::ws::{SessionContext, SocketSettings};

/// How often idle rate-limiter keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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

/// The wired parts of a built server, for the binary (the demo) and tests
/// to reach. Sockets and handlers hold their narrow contexts instead
/// ([`SessionContext`], [`ApiContext`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub broker: Broker,
    pub hub: Hub,
    pub persister: Persister,
    pub jwt: Arc<JwtKeys>,
    pub hashes: HashPool,
    pub metrics: Arc<Metrics>,
    pub connections: ConnectionLimiter,
}

/// A built, bound server, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    api: ApiState,
    sockets: Arc<SessionContext>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(StartupError::DataDir)?;
        let store = Store::connect(&config.database_url(), config.store.db_max_connections).await?;
        let access_ttl = Duration::from_secs(config.auth.access_token_ttl_secs);
        let jwt: JwtKeys = keys::load(&config.auth, &config.data_dir, access_ttl)?;
        let jwt = Arc::new(jwt);
        let metrics = Arc::new(Metrics::default());
        let broker = match &config.redis.redis_url {
            None => Broker::Memory(MemoryBroker::default()),
            Some(url) => {
                let settings = RedisSettings {
                    url: url.clone(),
                    receive_buffer: config.redis.redis_receive_buffer,
                    node_ttl: config.redis.node_ttl(),
                };
                Broker::Redis(RedisBroker::connect(settings, metrics.clone()).await?)
            }
        };
        let reads = BatchedReads::spawn(store.clone(), INITIAL_COMMENTS);
        let hub = Hub::build(HubParts {
            store: store.clone(),
            reads: reads.clone(),
            broker: broker.clone(),
            metrics: metrics.clone(),
            typing_timeout: config.sockets.typing_timeout(),
            typing_batch: config.sockets.typing_batch(),
            presence_leave_grace: config.sockets.presence_leave_grace(),
            persist_batch: config.store.persist_batch,
            resume: ResumeLimits {
                max_comments: config.sockets.resume_max_comments,
                max_bytes: config.sockets.resume_max_bytes,
            },
        });
        let listener = bind_listener(config.bind).map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
        let config = Arc::new(config);
        let limits = Arc::new(RateLimits::from_config(&config.limits));
        let hashes = HashPool::new(
            config.auth.password_hash_slots(),
            config.auth.password_hash_wait(),
        );
        let connections = ConnectionLimiter::default();
        let shutdown = CancellationToken::new();
        let sockets = Arc::new(SessionContext {
            hub: hub.clone(),
            jwt: jwt.clone(),
            limits: limits.clone(),
            connections: connections.clone(),
            metrics: metrics.clone(),
            settings: SocketSettings {
                max_sockets_per_user: config.sockets.max_sockets_per_user,
                outbound_queue: config.sockets.outbound_queue,
                max_batch: config.sockets.max_batch,
                ping_interval: config.sockets.ping_interval(),
                pong_timeout: config.sockets.pong_timeout(),
                allowed_origins: config.sockets.ws_allowed_origins.clone(),
                ws_config: crate::ws::socket_config(&config.sockets),
            },
            shutdown: shutdown.clone(),
            close_sockets: CancellationToken::new(),
            sessions: TaskTracker::new(),
        });
        let api = Arc::new(ApiContext {
            config: config.clone(),
            store: store.clone(),
            reads,
            pages: PageCache::new(config.http.history_cache_bytes),
            hub: hub.clone(),
            jwt: jwt.clone(),
            hashes: hashes.clone(),
            limits,
            metrics: metrics.clone(),
            shutdown,
        });
        let state = AppState {
            config,
            store,
            broker,
            persister: hub.persister().clone(),
            hub,
            jwt,
            hashes,
            metrics,
            connections,
        };
        Ok(Self {
            listener,
            state,
            api,
            sockets,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then shuts down gracefully: stop
    /// accepting and taking client messages, store and acknowledge what was
    /// taken, close sockets with 1001, leave the cluster, close the store.
    pub async fn run_until_stopped<F>(self, signal: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            listener,
            state,
            api,
            sockets,
        } = self;
        let shutdown = sockets.shutdown.clone();
        let limits = api.limits.clone();
        let prune = spawn_periodic(PRUNE_EVERY, shutdown.clone(), move || limits.prune());
        let router = crate::http::router(api.clone(), crate::ws::router(sockets.clone()));
        // The accept loop runs as its own task: the shutdown sequence below
        // (flush, then close sockets) must never wait behind it draining its
        // connections.
        let settings = crate::http::serve::ServeSettings {
            header_read_timeout: state.config.http.header_read_timeout(),
            max_connections_per_ip: state.config.http.max_connections_per_ip,
        };
        let mut server = tokio::spawn(crate::http::serve::serve(
            listener,
            router,
            settings,
            state.metrics.clone(),
            shutdown.clone(),
        ));
        let mut result = Ok(());
        tokio::select! {
            () = signal => {}
            () = shutdown.cancelled() => {}
            ended = &mut server => {
                result = ended.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
        }
        shutdown.cancel();
        tracing::info!("shutting down: flushing comments, then closing sockets");
        let deadline = state.config.shutdown_timeout();
        // No write is admitted any more; those admitted reach the persister,
        // which stores them, so their acknowledgements are queued to their
        // sockets before they close.
        state.hub.flush_writes(deadline).await;
        sockets.close_sockets.cancel();
        sockets.sessions.close();
        if tokio::time::timeout(deadline, sockets.sessions.wait())
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
        state.hub.leave_cluster().await;
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
