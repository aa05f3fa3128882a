//! Our own accept loop, in place of `axum::serve`, so that hostile or broken
//! clients cannot hold the server's files:
//!
//! - a connection must send a complete request head within
//!   `--header-read-timeout-ms`: its first request (covering the HTTP/1 vs
//!   HTTP/2 sniffing, which hyper does not time) and each next one on a
//!   kept-alive HTTP/1 connection (hyper's header read timeout);
//! - an address holds at most `--max-connections-per-ip` connections (sockets
//!   upgraded from them included, see [`super::per_ip`]); one over is closed
//!   at once and counted;
//! - running out of files on accept (`EMFILE`, `ENFILE`) is logged (at most
//!   once a second) and backed off from, 10 ms doubling to 1 s, instead of
//!   spinning or stalling; other accept errors are logged too.
//!
//! Handlers still see `ConnectInfo<SocketAddr>`, WebSocket upgrades work as
//! before (`serve_connection_with_upgrades`), and shutdown is axum's: stop
//! accepting when `shutdown` fires, let every open connection finish its
//! request (hyper's graceful shutdown), and return once they are all gone.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::per_ip::{Counted, PerIp};
use crate::metrics::Metrics;

/// Linux (and BSD) errno values: the process, or the system, is out of files.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
/// Out of kernel memory for sockets: as transient as running out of files.
const ENOBUFS: i32 = 105;
const ENOMEM: i32 = 12;

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Repeated warnings of one kind are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// What the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    pub header_read_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: usize,
}

/// Serves `router` on `listener` until `shutdown` fires and every
/// connection has ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let per_ip = PerIp::new(metrics.clone());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    // CONNECT protocol, for WebSockets over HTTP/2 (as axum::serve does).
    builder.http2().enable_connect_protocol();
    let mut backoff = BACKOFF_MIN;
    let mut fd_log = Throttled::default();
    let mut error_log = Throttled::default();
    let mut cap_log = Throttled::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "accept: connection gone before it was accepted");
                continue;
            }
            Err(e) => {
                if is_out_of_files(&e) {
                    metrics.http.accept_fd_exhausted.fetch_add(1, Relaxed);
                    fd_log.warn(|suppressed| {
                        tracing::warn!(error = %e, suppressed, pause_ms = backoff.as_millis() as u64,
                            "accept: out of files (raise the open-file limit, or fewer connections per address); pausing accepts");
                    });
                } else {
                    error_log.warn(|suppressed| {
                        tracing::warn!(error = %e, suppressed, pause_ms = backoff.as_millis() as u64, "accept failed");
                    });
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let Some(slot) = per_ip.try_acquire(peer.ip(), settings.max_connections_per_ip) else {
            metrics.http.connections_refused.fetch_add(1, Relaxed);
            cap_log.warn(|suppressed| {
                tracing::warn!(ip = %peer.ip(), suppressed, max = settings.max_connections_per_ip,
                    "connection refused: the address holds its connection cap");
            });
            drop(stream);
            continue;
        };
        let io = TokioIo::new(Counted::new(stream, slot));
        let requested = Arc::new(AtomicBool::new(false));
        let service = ConnectionService {
            router: router.clone(),
            peer,
            requested: requested.clone(),
        };
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = graceful.watch(conn);
        let timeout = settings.header_read_timeout;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let first_head = tokio::time::sleep(timeout);
            tokio::pin!(first_head);
            let mut waiting_first = true;
            loop {
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            let timed_out = e
                                .downcast_ref::<hyper::Error>()
                                .is_some_and(hyper::Error::is_timeout);
                            if timed_out {
                                metrics.http.header_timeouts.fetch_add(1, Relaxed);
                            }
                            tracing::debug!(error = %e, timed_out, "connection ended with an error");
                        }
                        return;
                    }
                    () = first_head.as_mut(), if waiting_first => {
                        if requested.load(Relaxed) {
                            // From here on hyper times each next head.
                            waiting_first = false;
                        } else {
                            metrics.http.header_timeouts.fetch_add(1, Relaxed);
                            tracing::debug!("connection closed: no request head in time");
                            // Dropping the connection closes the socket.
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The router, as one connection's hyper service: marks that a request head
/// arrived and hands handlers the peer address.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    requested: Arc<AtomicBool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.requested.store(true, Relaxed);
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // A Router is always ready; `call` on a clone is what axum::serve does.
        self.router.clone().call(req)
    }
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// At most one warning per [`LOG_EVERY`], with the count of those skipped.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        self.last = Some(now);
        log(std::mem::take(&mut self.suppressed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_exhaustion_is_told_apart_from_vanished_peers() {
        assert!(is_out_of_files(&io::Error::from_raw_os_error(EMFILE)));
        assert!(is_out_of_files(&io::Error::from_raw_os_error(ENFILE)));
        assert!(!is_out_of_files(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }

    #[test]
    fn repeated_warnings_are_throttled_and_counted() {
        let mut t = Throttled::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            t.warn(|s| logged.push(s));
        }
        assert_eq!(logged, vec![0]);
        assert_eq!(t.suppressed, 4);
        t.last = Some(Instant::now() - LOG_EVERY);
        t.warn(|s| logged.push(s));
        assert_eq!(logged, vec![0, 4]);
    }
}
