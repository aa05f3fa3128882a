//! The feedback WebSocket endpoint: `GET /ws/feedback/{project_id}` (with or
//! without a trailing slash). The upgrade is taken from hyper and the socket
//! driven by tokio-tungstenite with our own buffer sizes and limits; auth
//! failures are reported after the upgrade, as close codes, because browsers
//! cannot read an HTTP error on a WebSocket handshake.

pub mod clock;
pub mod connection_limit;
mod context;
mod keepalive;
mod preamble;
pub mod session;
mod upgrade_limit;
pub mod writer;

pub use context::{SessionContext, SocketSettings};

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::Instrument;
use vridge_protocol::Encoding;

use crate::config::SocketConfig;

/// The socket endpoint's routes, with their context applied.
pub fn router(ctx: Arc<SessionContext>) -> Router {
    Router::new()
        .route("/ws/feedback/{project_id}", get(upgrade))
        .route("/ws/feedback/{project_id}/", get(upgrade))
        .with_state(ctx)
}

/// Bytes of a socket's read buffer, and the most one read takes in.
const READ_BUFFER: usize = 256;

/// tungstenite's settings for our sockets. The read buffer is allocated
/// when the socket opens and lives as long as it: the default's 128 KiB would
/// cost 1.25 GiB per 10k idle sockets, and even 1 KiB was an eighth of what
/// an idle socket cost. Ours is [`READ_BUFFER`]: client messages are small
/// (a typing indicator is ~40 bytes, a comment a few hundred), a larger one
/// grows the buffer as its frame header announces it, and the price is only
/// more reads for it (tungstenite reads at most this much per call: 256 for
/// a 64 KiB frame). Message and frame sizes are capped at the configured
/// limit.
pub fn socket_config(config: &SocketConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(16 * 1024 * 1024)
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes))
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a browser page of the upgrade's `Origin` may open a socket: its
/// own origin (the `Origin`'s host and port are the request's `Host`), or one
/// listed in `--ws-allowed-origins` (`*` for any). Browsers attach cookies
/// and credentials to cross-site upgrades and apply no same-origin policy to
/// WebSockets, so this check is what stops cross-site WebSocket hijacking.
/// Clients that send no `Origin` are not browsers and are allowed.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h.trim()))
}

/// The token from `?token=` or `Authorization: Bearer`. Never logged.
fn token_of(req: &Request) -> Option<String> {
    let from_query = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    from_query.or_else(|| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
    })
}

/// A number from the query string (`?since=<comment id>`, `?since_seq=<event
/// number>`: the client resumes after the newest it holds). Anything that is
/// not a number is ignored (a plain join).
fn query_number(req: &Request, name: &str) -> Option<i64> {
    req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    })
}

async fn upgrade(
    State(ctx): State<Arc<SessionContext>>,
    Path(project): Path<String>,
    mut req: Request,
) -> Response {
    if let Some(refused) = upgrade_limit::refuse_upgrade(&ctx, &req) {
        return refused;
    }
    let Ok(project) = project.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "unknown project").into_response();
    };
    let headers = req.headers();
    if !origin_allowed(headers, &ctx.settings.allowed_origins) {
        tracing::info!(project_id = project, "upgrade refused: foreign Origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade").into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::SEC_WEBSOCKET_VERSION, "13")],
            "unsupported WebSocket version",
        )
            .into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let offer = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let (encoding, echo) = Encoding::negotiate(offer);
    let handshake = session::Handshake {
        project,
        token: token_of(&req),
        encoding,
        since: query_number(&req, "since"),
        since_seq: query_number(&req, "since_seq"),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let socket_config = ctx.settings.ws_config;
    let span = tracing::info_span!(
        "ws",
        project_id = project,
        user_id = tracing::field::Empty,
        ?encoding
    );
    // Only the box is the task's until the socket is open (see `session::open`).
    let opening = Box::pin(open(ctx.clone(), on_upgrade, socket_config, handshake));
    ctx.sessions.spawn(serve(opening).instrument(span));

    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(proto) = echo {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(proto),
        );
    }
    response
}

/// The socket as tungstenite drives it.
type Socket = WebSocketStream<preamble::PreambleIo<TokioIo<Upgraded>>>;

/// Takes the upgraded connection from hyper and opens the session on it.
async fn open(
    ctx: Arc<SessionContext>,
    on_upgrade: OnUpgrade,
    socket_config: WebSocketConfig,
    handshake: session::Handshake,
) -> Option<session::Live<Socket>> {
    match on_upgrade.await {
        Ok(upgraded) => {
            let ws = WebSocketStream::from_raw_socket(
                preamble::PreambleIo::new(TokioIo::new(upgraded)),
                Role::Server,
                Some(socket_config),
            )
            .await;
            session::open(ctx, ws, handshake).await
        }
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            None
        }
    }
}

/// One socket's task, from the end of the HTTP exchange to close. `opening`
/// is dropped (its memory freed) before the long read loop starts.
async fn serve<F>(opening: Pin<Box<F>>)
where
    F: Future<Output = Option<session::Live<Socket>>>,
{
    let mut live = {
        let opening = opening;
        opening.await
    };
    // By reference: moving it out of the `Option` would store it twice.
    if let Some(live) = &mut live {
        live.run().await;
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream::SplitSink;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_the_own_origin_and_listed_ones_may_open_sockets() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(&headers(None, "127.0.0.1:8080"), &none));
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &none
        ));
        assert!(origin_allowed(
            &headers(Some("https://Review.example"), "review.example"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "127.0.0.1:8080"),
            &none
        ));
        // Another port is another origin.
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:8080"),
            &none
        ));
        let listed = vec!["https://app.vridge.example".to_owned()];
        assert!(origin_allowed(
            &headers(Some("https://app.vridge.example"), "api.vridge.example"),
            &listed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "api.vridge.example"),
            &listed
        ));
        let any = vec!["*".to_owned()];
        assert!(origin_allowed(
            &headers(Some("https://evil.example"), "127.0.0.1:8080"),
            &any
        ));
    }
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, A, R>(_: &F) -> usize
    where
        F: FnOnce(A) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// An idle socket holds its two tasks' futures for its whole life, and a
    /// future is sized for its largest await point. Opening a socket (store
    /// and broker queries: ~7 KiB of future), handling a frame and closing
    /// are boxed so they do not size these; this fails when such an await
    /// finds its way back inline.
    #[test]
    fn the_futures_an_idle_socket_holds_stay_small() {
        type Opening = std::future::Ready<Option<session::Live<Socket>>>;
        let reader = future_size(&serve::<Opening>);
        let writer = std::mem::size_of::<writer::Writer<SplitSink<Socket, Message>>>()
            + future_size(&|w: &mut writer::Writer<SplitSink<Socket, Message>>| w.run());
        assert!(reader <= 1024, "reader task future: {reader} bytes");
        assert!(writer <= 1024, "writer task state: {writer} bytes");
    }
}
