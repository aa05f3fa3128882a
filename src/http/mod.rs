//! The HTTP surface: health, metrics, the WebSocket endpoint, the review
//! page (`/` and `/assets/…`, see [`page`]) and the REST API. Each resource
//! module exposes its own router and they are merged
//! here; the REST routes share CORS, a body-size limit, a request timeout,
//! gzip for responses over 1 KiB, and JSON errors ([`error::ApiError`]).
//! Every route closes a connection whose request body it left unread
//! ([`early_close`]); [`serve`] is the accept loop under all of it.

mod access;
mod auth;
mod comments;
mod context;
mod early_close;
pub mod error;
mod etag;
mod events;
mod extract;
mod feedback;
mod health;
mod input;
mod login_limit;
mod me;
mod members;
pub mod openapi;
mod page;
mod page_cache;
mod per_ip;
mod projects;
pub mod serve;
mod views;

pub use context::{ApiContext, ApiState};
pub use page_cache::PageCache;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::config::HttpConfig;
use error::ApiError;
use login_limit::LoginLimits;

/// The REST cursor codec, exposed for the fuzz targets in `fuzz/`.
pub use comments::{decode_cursor, encode_cursor};

/// Responses smaller than this are sent uncompressed.
const COMPRESS_ABOVE_BYTES: u16 = 1024;
/// How often idle sign-in throttling keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Every route the server answers: the REST API, health and metrics, the
/// page, and `sockets` (the WebSocket endpoint, wired by the app so that
/// this layer need not know it).
pub fn router(state: ApiState, sockets: Router) -> Router {
    let limits = Arc::new(LoginLimits::from_config(&state.config.auth));
    let pruned = limits.clone();
    crate::periodic::spawn_periodic(PRUNE_EVERY, state.shutdown.clone(), move || pruned.prune());
    Router::new()
        .merge(health::router())
        .merge(page::router())
        .merge(rest(&state.config.http, limits))
        .fallback(|| async { ApiError::NotFound("no such route") })
        .with_state(state)
        .merge(sockets)
        .layer(middleware::from_fn(early_close::close_if_body_unread))
}

/// The REST routes with their shared layers.
fn rest(config: &HttpConfig, limits: Arc<LoginLimits>) -> Router<ApiState> {
    let compress = SizeAbove::new(COMPRESS_ABOVE_BYTES)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    Router::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(projects::router())
        .merge(members::router())
        .merge(feedback::router())
        .merge(events::router())
        .merge(comments::router())
        .merge(openapi::router())
        .layer(Extension(limits))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CompressionLayer::new().compress_when(compress))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(cors(config))
        .layer(middleware::from_fn(trace_request))
}

/// One span per REST request, named by its route template (never the URI:
/// query strings may carry tokens), and one debug event with its outcome.
async fn trace_request(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let route = matched
        .as_ref()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let span = tracing::info_span!("request", method = %req.method(), route = %route);
    let started = std::time::Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "served"
        );
    });
    response
}

/// CORS for the configured origins only; none configured allows none.
fn cors(config: &HttpConfig) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static(comments::IDEMPOTENCY_KEY),
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}
