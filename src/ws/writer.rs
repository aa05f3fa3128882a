//! The writer task of one connection: the only code that writes to its
//! socket. Its first flush sends the `initial_state` (preset on the
//! connection, around the codec: see [`super::preamble`]); then it wakes on the first queued
//! event, drains whatever else is already queued (up to the batch cap) into
//! one frame, and flushes once — no timer, so nothing waits at low load and
//! batches grow on their own under load. It also sends keepalive pings,
//! the token's `token_expiring` warning, and the close frame — one timer
//! per socket serves the pings and the token deadline alike, on the
//! schedule [`Keepalive`] keeps. Live comments the client already holds
//! are dropped by the queue ([`Inbox`]), not here.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::{batch_frame, encode};
use vridge_protocol::{Encoding, ServerMessage, close};

use super::clock::LastSeen;
use super::keepalive::Keepalive;
use crate::metrics::Metrics;
use crate::outbound::{Closer, Inbox, OutFrame, PEER_CLOSED};

/// How long the close frame may take to go out to a peer that may not read.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the writer needs besides the socket and the queue.
pub struct WriterSettings {
    pub encoding: Encoding,
    pub max_batch: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

fn to_message(encoding: Encoding, bytes: Bytes) -> Option<Message> {
    if encoding.is_binary() {
        Some(Message::Binary(bytes))
    } else {
        Utf8Bytes::try_from(bytes).ok().map(Message::Text)
    }
}

/// Starts a connection's writer task. Its first act is a flush, which
/// sends the `initial_state` preset on the connection (see
/// [`super::preamble`]).
pub fn spawn<S>(
    sink: S,
    rx: Inbox,
    closer: Closer,
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
        let mut alive = flush_or_close(&mut self.sink, &self.closer).await;
        let mut schedule = Keepalive::new(self.settings.ping_interval, self.settings.pong_timeout);
        // Boxed, as tokio's `Interval` boxes its own: the timer's entry is
        // not part of the future every idle socket holds.
        let mut timer = Box::pin(sleep_until(schedule.next_wake(&self.last_seen)));
        while alive {
            tokio::select! {
                biased;
                () = self.closer.closed() => break,
                () = &mut timer => {
                    let due = schedule.due(&self.last_seen);
                    if let Some(code) = due.close {
                        if code == close::KEEPALIVE_TIMEOUT {
                            self.settings.metrics.keepalive_closes.fetch_add(1, Relaxed);
                        }
                        self.closer.close(code);
                        break;
                    }
                    if let Some(expires_at) = due.warn {
                        alive = self.warn_token(expires_at).await;
                    }
                    if alive && due.ping {
                        alive = self.ping().await;
                    }
                    timer.as_mut().reset(schedule.next_wake(&self.last_seen));
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

    async fn ping(&mut self) -> bool {
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

/// Flushes (sending the preset `initial_state`) unless the connection is
/// asked to close first.
async fn flush_or_close<S>(sink: &mut S, closer: &Closer) -> bool
where
    S: Sink<Message> + Unpin,
{
    tokio::select! {
        biased;
        () = closer.closed() => false,
        flushed = sink.flush() => flushed.is_ok(),
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;
    use vridge_protocol::CommentId;

    use super::*;
    use crate::outbound::Outbox;

    /// A socket's sending half that hands every message to the test.
    struct Recorder(mpsc::UnboundedSender<Message>);

    impl Sink<Message> for Recorder {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), ()> {
            self.0.send(msg).map_err(|_| ())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A peer that never reads: nothing is ever written or flushed.
    struct Stuck;

    impl Sink<Message> for Stuck {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Pending
        }
        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), ()> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Pending
        }
    }

    fn settings(metrics: &Arc<Metrics>) -> WriterSettings {
        WriterSettings {
            encoding: Encoding::Json,
            max_batch: 64,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            metrics: metrics.clone(),
        }
    }

    fn event(text: &str, comment_id: Option<CommentId>) -> OutFrame {
        OutFrame {
            bytes: Bytes::from(format!(r#"{{"type":"x","n":"{text}"}}"#)),
            comment_id,
            ..Default::default()
        }
    }

    /// A writer over a recording sink; returns the queue's sending side,
    /// its closer, what the sink receives, and the task.
    fn recorded(
        prepare: impl FnOnce(&Outbox, &mut Inbox),
    ) -> (
        Outbox,
        Closer,
        mpsc::UnboundedReceiver<Message>,
        JoinHandle<()>,
        Arc<Metrics>,
    ) {
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut inbox, closer) = Outbox::channel(64, Encoding::Json, metrics.clone());
        prepare(&outbox, &mut inbox);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = spawn(
            Recorder(tx),
            inbox,
            closer.clone(),
            Arc::new(LastSeen::new()),
            settings(&metrics),
        );
        (outbox, closer, rx, task, metrics)
    }

    fn text(msg: &Message) -> &str {
        match msg {
            Message::Text(t) => t.as_str(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_queued_together_go_out_as_one_batch_frame() {
        let (outbox, _closer, mut rx, task, metrics) = recorded(|outbox, _| {
            for n in 0..5 {
                assert!(outbox.offer(event(&n.to_string(), None)));
            }
        });
        let batch = rx.recv().await.unwrap();
        let expected: Vec<String> = (0..5)
            .map(|n| format!(r#"{{"type":"x","n":"{n}"}}"#))
            .collect();
        assert_eq!(
            text(&batch),
            format!(r#"{{"type":"batch","messages":[{}]}}"#, expected.join(","))
        );
        // A lone event later goes out as itself, not as a batch of one.
        assert!(outbox.offer(event("alone", None)));
        assert_eq!(
            text(&rx.recv().await.unwrap()),
            r#"{"type":"x","n":"alone"}"#
        );
        // The last sender gone: the writer closes with 1000 and ends.
        drop(outbox);
        let closing = rx.recv().await.unwrap();
        assert!(
            matches!(&closing, Message::Close(Some(f)) if u16::from(f.code) == 1000),
            "{closing:?}"
        );
        task.await.unwrap();
        assert_eq!(metrics.frame_events.count(), 2);
    }

    #[tokio::test]
    async fn comments_the_initial_state_held_are_not_sent_live() {
        let (outbox, _closer, mut rx, task, _) = recorded(|outbox, inbox| {
            inbox.set_watermark(Some(5));
            for id in [4, 5, 6] {
                assert!(outbox.offer(event(&id.to_string(), Some(id))));
            }
        });
        assert_eq!(text(&rx.recv().await.unwrap()), r#"{"type":"x","n":"6"}"#);
        drop(outbox);
        assert!(matches!(rx.recv().await, Some(Message::Close(_))));
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed_with_4009() {
        let (_outbox, closer, mut rx, task, metrics) = recorded(|_, _| {});
        let started = tokio::time::Instant::now();
        let mut pings = 0;
        let closing = loop {
            match rx.recv().await.unwrap() {
                Message::Ping(_) => pings += 1,
                other => break other,
            }
        };
        assert!(
            matches!(&closing, Message::Close(Some(f)) if u16::from(f.code) == close::KEEPALIVE_TIMEOUT),
            "{closing:?}"
        );
        // Pinged every 20 s on the keepalive grid; closed at the first ping
        // due after 60 s of silence (the 60 s mark itself or the next).
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(60) && elapsed <= Duration::from_secs(81),
            "{elapsed:?}"
        );
        assert!((2..=3).contains(&pings), "{pings}");
        assert_eq!(closer.code(), Some(close::KEEPALIVE_TIMEOUT));
        task.await.unwrap();
        assert_eq!(metrics.keepalive_closes.load(Relaxed), 1);
        assert_eq!(metrics.pings_sent.load(Relaxed), pings);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_is_cut_when_its_socket_is_closed() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, inbox, closer) = Outbox::channel(4, Encoding::Json, metrics.clone());
        let task = spawn(
            Stuck,
            inbox,
            closer.clone(),
            Arc::new(LastSeen::new()),
            settings(&metrics),
        );
        // Its queue fills: the room's next offer closes it as a slow consumer.
        let mut offered = 0;
        while outbox.offer(event("x", None)) {
            offered += 1;
        }
        assert_eq!(offered, 4);
        assert_eq!(closer.code(), Some(close::SLOW_CONSUMER));
        // The writer, stuck in its first flush, gives up within its grace.
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the writer ended")
            .unwrap();
        assert!(started.elapsed() <= CLOSE_GRACE, "{:?}", started.elapsed());
    }
}
