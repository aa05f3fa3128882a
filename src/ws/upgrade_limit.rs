//! The per-address quota on WebSocket upgrade attempts
//! (`--limit-upgrades-per-ip`), checked before the handshake: an address
//! retrying upgrades with bad tokens, or reconnecting in a tight loop, gets
//! HTTP 429 with `Retry-After` instead of a 101 and a session to set up.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};

use super::SessionContext;
use crate::http::error::ApiError;

/// `Some(429)` when the upgrade's address is over its quota.
pub fn refuse_upgrade(ctx: &SessionContext, req: &Request) -> Option<Response> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0;
    let wait = ctx.limits.check_upgrade(peer.ip()).err()?;
    ctx.metrics.http.rate_limited.fetch_add(1, Relaxed);
    tracing::debug!(ip = %peer.ip(), "upgrade refused: over the address's quota");
    Some(ApiError::rate_limited(wait).into_response())
}
