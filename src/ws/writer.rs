//! The writer task of one connection: the only code that writes to its
//! socket. It sends the `initial_state` first, then wakes on the first queued
//! event, drains whatever else is already queued (up to the batch cap) into
//! one frame, and flushes once — no timer, so nothing waits at low load and
//! batches grow on their own under load. It also sends keepalive pings and
//! the close frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::batch_frame;
use vridge_protocol::{CommentId, Encoding, close};

use super::outbox::{Closer, Inbox, OutFrame};
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

/// Milliseconds since `epoch` of the last frame received from the peer,
/// updated by the reader, and of the last ping written (0: none yet), so the
/// reader can time the pong that answers it.
#[derive(Debug)]
pub struct LastSeen {
    epoch: Instant,
    ms: AtomicU64,
    ping_ms: AtomicU64,
}

impl LastSeen {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            ms: AtomicU64::new(0),
            ping_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn touch(&self) {
        self.ms.store(self.now_ms(), Relaxed);
    }

    fn ping_sent(&self) {
        // +1 keeps a ping sent in the epoch's first millisecond distinct from "none".
        self.ping_ms.store(self.now_ms() + 1, Relaxed);
    }

    /// How long ago the last ping went out, once per ping (a second pong
    /// for the same ping is not timed again).
    pub fn pong_received(&self) -> Option<Duration> {
        let sent = self.ping_ms.swap(0, Relaxed);
        (sent != 0).then(|| Duration::from_millis(self.now_ms().saturating_sub(sent - 1)))
    }

    fn silent_for(&self) -> Duration {
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.ms.load(Relaxed)))
    }
}

impl Default for LastSeen {
    fn default() -> Self {
        Self::new()
    }
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
        let start = Instant::now() + self.settings.ping_interval;
        let mut ping = interval_at(start, self.settings.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while alive {
            tokio::select! {
                biased;
                () = self.closer.closed() => break,
                _ = ping.tick() => {
                    if self.last_seen.silent_for() > self.settings.pong_timeout {
                        self.settings.metrics.keepalive_closes.fetch_add(1, Relaxed);
                        self.closer.close(close::KEEPALIVE_TIMEOUT);
                        break;
                    }
                    let ping = Message::Ping(Bytes::new());
                    alive = send_or_close(&mut self.sink, ping, &self.closer).await;
                    if alive {
                        self.last_seen.ping_sent();
                        self.settings.metrics.pings_sent.fetch_add(1, Relaxed);
                    }
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

    /// Sends the close frame, first what is queued on a graceful close.
    async fn finish(&mut self, alive: bool) {
        let code = self.closer.code().unwrap_or(1000);
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
