//! The writer task of one connection: the only code that writes to its
//! socket. It sends the `initial_state` first, then wakes on the first queued
//! event, drains whatever else is already queued (up to the batch cap) into
//! one frame, and flushes once — no timer, so nothing waits at low load and
//! batches grow on their own under load. It also sends keepalive pings,
//! the token's `token_expiring` warning, and the close frame — one timer
//! per socket serves the pings and the token deadline alike.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::{batch_frame, encode};
use vridge_protocol::{CommentId, Encoding, ServerMessage, close};

use super::clock::LastSeen;
use super::outbox::{Closer, Inbox, OutFrame, PEER_CLOSED};
use crate::metrics::Metrics;

/// How long the close frame may take to go out to a peer that may not read.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the writer needs besides the socket and the queue.
pub struct WriterSettings {
    pub encoding: Encoding,
    pub max_batch: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Comments with an id up to this were in `initial_state`: skip them live.
    pub watermark: Option<CommentId>,
    pub metrics: Arc<Metrics>,
}

fn to_message(encoding: Encoding, bytes: Bytes) -> Option<Message> {
    if encoding.is_binary() {
        Some(Message::Binary(bytes))
    } else {
        Utf8Bytes::try_from(bytes).ok().map(Message::Text)
    }
}

/// Starts a connection's writer task; it sends `preamble` (the encoded
/// `initial_state`) first.
pub fn spawn<S>(
    sink: S,
    rx: Inbox,
    closer: Closer,
    preamble: Bytes,
    last_seen: Arc<LastSeen>,
    settings: WriterSettings,
) -> JoinHandle<()>
where
    S: Sink<Message> + Unpin + Send + 'static,
{
    let mut writer = Writer {
        sink,
        rx,
        closer,
        preamble,
        last_seen,
        settings,
        queued: Vec::new(),
    };
    tokio::spawn(async move { writer.run().await })
}

/// A writer's state. Its task keeps it and runs it by reference: an async
/// fn's by-value arguments are stored twice in its future, and that future
/// lives as long as the socket.
pub struct Writer<S> {
    sink: S,
    rx: Inbox,
    closer: Closer,
    /// Sent first (then left empty).
    preamble: Bytes,
    last_seen: Arc<LastSeen>,
    settings: WriterSettings,
    /// Empty until the first event: `recv_many` grows it as needed, so an
    /// idle socket does not hold a batch's worth (64 × 48 bytes) it never uses.
    queued: Vec<OutFrame>,
}

impl<S> Writer<S>
where
    S: Sink<Message> + Unpin,
{
    pub async fn run(&mut self) {
        let preamble = std::mem::take(&mut self.preamble);
        let mut alive = match to_message(self.settings.encoding, preamble) {
            Some(msg) => send_or_close(&mut self.sink, msg, &self.closer).await,
            None => false,
        };
        let mut next_ping = Instant::now() + self.settings.ping_interval;
        // The token expiry the client was last warned about (0: none yet).
        let mut warned = 0;
        // Boxed, as tokio's `Interval` boxes its own: the timer's entry is
        // not part of the future every idle socket holds.
        let mut timer = Box::pin(sleep_until(self.next_wake(next_ping, warned)));
        while alive {
            tokio::select! {
                biased;
                () = self.closer.closed() => break,
                () = &mut timer => {
                    if self.last_seen.token_expired() {
                        self.closer.close(close::TOKEN_EXPIRED);
                        break;
                    }
                    let expires_at = self.last_seen.token_expires_at();
                    if warned != expires_at
                        && self.last_seen.token_warn_at().is_some_and(|at| Instant::now() >= at)
                    {
                        warned = expires_at;
                        alive = self.warn_token(expires_at).await;
                    }
                    if alive && Instant::now() >= next_ping {
                        next_ping = Instant::now() + self.settings.ping_interval;
                        alive = self.keepalive().await;
                    }
                    timer.as_mut().reset(self.next_wake(next_ping, warned));
                }
                n = self.rx.recv_many(&mut self.queued, self.settings.max_batch) => {
                    if n == 0 {
                        break;
                    }
                    alive = write_batch(
                        &mut self.sink,
                        &mut self.queued,
                        &self.closer,
                        &self.settings,
                    )
                    .await;
                }
            }
        }
        // Boxed: the close runs once, and its timers would otherwise size this
        // task's state (held by every idle socket) for the socket's whole life.
        Box::pin(self.finish(alive)).await;
    }

    /// The next moment the timer has work: a ping, the token's warning (if
    /// not yet given for this expiry), or the token's deadline.
    fn next_wake(&self, next_ping: Instant, warned: u64) -> Instant {
        let mut wake = next_ping;
        if let Some(deadline) = self.last_seen.token_deadline() {
            wake = wake.min(deadline);
        }
        if warned != self.last_seen.token_expires_at()
            && let Some(warn) = self.last_seen.token_warn_at()
        {
            wake = wake.min(warn);
        }
        wake
    }

    /// Closes a peer silent past the pong timeout, or sends a ping.
    async fn keepalive(&mut self) -> bool {
        if self.last_seen.silent_for() > self.settings.pong_timeout {
            self.settings.metrics.keepalive_closes.fetch_add(1, Relaxed);
            self.closer.close(close::KEEPALIVE_TIMEOUT);
            return false;
        }
        let ping = Message::Ping(Bytes::new());
        let alive = send_or_close(&mut self.sink, ping, &self.closer).await;
        if alive {
            self.last_seen.ping_sent();
            self.settings.metrics.pings_sent.fetch_add(1, Relaxed);
        }
        alive
    }

    /// Tells the client its token expires soon (it answers `refresh_token`).
    async fn warn_token(&mut self, expires_at: u64) -> bool {
        let msg = ServerMessage::TokenExpiring {
            expires_at: expires_at as i64,
        };
        let Some(frame) = encode(self.settings.encoding, &msg)
            .ok()
            .and_then(|bytes| to_message(self.settings.encoding, bytes))
        else {
            return true;
        };
        self.settings.metrics.messages_out("token_expiring", 1);
        send_or_close(&mut self.sink, frame, &self.closer).await
    }

    /// Sends the close frame, first what is queued on a graceful close. When
    /// the peer closed first, flushes tungstenite's echo of its close frame
    /// instead (a second close frame of ours would be refused).
    async fn finish(&mut self, alive: bool) {
        let code = self.closer.code().unwrap_or(1000);
        if code == PEER_CLOSED {
            tracing::debug!("peer closed the socket");
            let _ = timeout(CLOSE_GRACE, self.sink.close()).await;
            return;
        }
        log_close(code);
        if alive && code == close::GOING_AWAY {
            let _ = timeout(
                CLOSE_GRACE,
                send_what_is_queued(
                    &mut self.sink,
                    &mut self.rx,
                    &mut self.queued,
                    &self.settings,
                ),
            )
            .await;
        }
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(close::reason(code)),
        };
        let _ = timeout(CLOSE_GRACE, self.sink.send(Message::Close(Some(frame)))).await;
    }
}

/// Every close the server decides is logged with its reason: the ordinary
/// ones (a normal end, shutdown) at debug, the rest at info.
fn log_close(code: u16) {
    let reason = close::reason(code);
    if code == 1000 || code == close::GOING_AWAY {
        tracing::debug!(code, reason, "closing socket");
    } else {
        tracing::info!(code, reason, "closing socket");
    }
}

/// On a graceful close, sends what is already queued (the acknowledgements
/// of the last comments, say) before the close frame.
async fn send_what_is_queued<S>(
    sink: &mut S,
    rx: &mut Inbox,
    queued: &mut Vec<OutFrame>,
    settings: &WriterSettings,
) where
    S: Sink<Message> + Unpin,
{
    // The close signal that got us here must not cut this last write short.
    let not_closing = Closer::default();
    loop {
        while queued.len() < settings.max_batch {
            match rx.try_recv() {
                Some(frame) => queued.push(frame),
                None => break,
            }
        }
        if queued.is_empty() || !write_batch(sink, queued, &not_closing, settings).await {
            return;
        }
    }
}

/// Writes the drained events as one frame (a single event, or a batch).
async fn write_batch<S>(
    sink: &mut S,
    queued: &mut Vec<OutFrame>,
    closer: &Closer,
    settings: &WriterSettings,
) -> bool
where
    S: Sink<Message> + Unpin,
{
    if let Some(mark) = settings.watermark {
        queued.retain(|f| f.comment_id.is_none_or(|id| id > mark));
    }
    let count = queued.len();
    let bytes = match count {
        0 => return true,
        1 => queued.pop().map(|f| f.bytes).unwrap_or_default(),
        _ => {
            let parts: Vec<Bytes> = queued.drain(..).map(|f| f.bytes).collect();
            batch_frame(settings.encoding, &parts)
        }
    };
    settings.metrics.frame_events.observe(count as f64);
    queued.clear();
    match to_message(settings.encoding, bytes) {
        Some(msg) => send_or_close(sink, msg, closer).await,
        None => true,
    }
}

/// Sends and flushes one message unless the connection is asked to close
/// first (a peer that stopped reading would otherwise hold the writer forever).
async fn send_or_close<S>(sink: &mut S, msg: Message, closer: &Closer) -> bool
where
    S: Sink<Message> + Unpin,
{
    tokio::select! {
        biased;
        () = closer.closed() => false,
        sent = sink.send(msg) => sent.is_ok(),
    }
}
