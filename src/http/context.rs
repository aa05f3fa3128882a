//! What the REST handlers share: the store for reads, the coordinator for
//! writes that reach sockets, and the parts of sign-in and quotas. Held
//! behind one `Arc` as the router's state.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::page_cache::PageCache;
use crate::auth::JwtKeys;
use crate::auth::hash_pool::HashPool;
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::store::{BatchedReads, Store};

/// The router's state: one `Arc`, cloned per request.
pub type ApiState = Arc<ApiContext>;

/// Lives as long as the server.
#[derive(Debug)]
pub struct ApiContext {
    pub config: Arc<Config>,
    /// Reads, and writes no socket needs to hear of.
    pub store: Store,
    /// Access checks, batched across concurrent requests.
    pub reads: BatchedReads,
    /// History pages, served again while their project has not changed.
    pub pages: PageCache,
    /// Writes that members must hear of (comments, feedback, evictions).
    pub hub: Hub,
    pub jwt: Arc<JwtKeys>,
    /// Password hashing for sign-up and sign-in: bounded slots, reused memory.
    pub hashes: HashPool,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    /// Fires when the server starts shutting down (periodic pruning stops).
    pub shutdown: CancellationToken,
}
