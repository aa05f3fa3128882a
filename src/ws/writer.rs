//! The writing half of a socket, run by the socket's one task
//! ([`super::live`]): the only code that writes to the socket. Its first
//! flush sends the `initial_state` (preset on the connection, around the
//! codec: see [`super::preamble`]); then each wake-up on queued events
//! drains whatever else is already queued (up to the batch cap) into one
//! frame and flushes once — no timer, so nothing waits at low load and
//! batches grow on their own under load. It also sends keepalive pings, the
//! token's `token_expiring` warning, and the close frame — one timer per
//! socket serves the pings and the token deadline alike, on the schedule
//! [`Keepalive`] keeps. Live comments the client already holds are dropped
//! by the queue ([`Inbox`]), not here.
//!
//! It holds no socket and runs no task of its own: the socket's task hands
//! it the socket for each write. A task per writer cost every idle socket a
//! second task cell, a lock around the split socket, and two wake-ups where
//! one does (see BENCHMARKS.md, round 4).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::{batch_frame, encode};
use vridge_protocol::{Encoding, ServerMessage, close};

use super::clock::LastSeen;
use super::keepalive::Keepalive;
use crate::metrics::Metrics;
use crate::outbound::{Closer, Inbox, OutFrame, PEER_CLOSED};

/// How long the close frame may take to go out to a peer that may not read.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

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

/// A socket's writing state: its queue, its keepalive schedule and its
/// settings. Lives in the socket's task for the socket's whole life.
pub struct Writer {
    rx: Inbox,
    closer: Closer,
    settings: WriterSettings,
    schedule: Keepalive,
    /// Empty until the first event: `recv_many` grows it as needed, so an
    /// idle socket does not hold a batch's worth (64 × 48 bytes) it never uses.
    queued: Vec<OutFrame>,
}

/// What the socket's timer found and did.
pub enum Timed {
    /// Nothing closed the socket: reset the timer to [`Writer::next_wake`].
    Alive,
    /// A write failed: the socket is gone.
    Lost,
    /// The socket is to close (its closer now holds the code).
    Closing,
}

impl Writer {
    pub fn new(rx: Inbox, closer: Closer, settings: WriterSettings) -> Self {
        let schedule = Keepalive::new(settings.ping_interval, settings.pong_timeout);
        Self {
            rx,
            closer,
            settings,
            schedule,
            queued: Vec::new(),
        }
    }

    /// When the timer next has work (a ping, the token's warning or deadline).
    pub fn next_wake(&self, clock: &LastSeen) -> Instant {
        self.schedule.next_wake(clock)
    }

    /// Waits for queued events and takes up to a batch of them. 0 when every
    /// sender is gone. Cancel safe (see [`Inbox::recv_many`]).
    pub async fn take(&mut self) -> usize {
        self.rx
            .recv_many(&mut self.queued, self.settings.max_batch)
            .await
    }

    /// Writes what [`Writer::take`] took as one frame; false when the socket
    /// is gone or closing. `closing` is the socket's close signal, which
    /// its task registered once ([`Closer::closed`]): a write does not
    /// register one of its own.
    pub async fn write_taken<S, C>(&mut self, sink: &mut S, closing: Pin<&mut C>) -> bool
    where
        S: Sink<Message> + Unpin,
        C: Future<Output = ()>,
    {
        write_batch(sink, &mut self.queued, closing, &self.settings).await
    }

    /// Flushes (sending the preset `initial_state`) unless the connection is
    /// asked to close first.
    pub async fn flush_preamble<S>(&self, sink: &mut S) -> bool
    where
        S: Sink<Message> + Unpin,
    {
        tokio::select! {
            biased;
            () = self.closer.closed() => false,
            flushed = sink.flush() => flushed.is_ok(),
        }
    }

    /// Does what the timer found due: closes at the token's deadline or
    /// after the peer's silence, warns of the token's expiry, pings.
    pub async fn on_timer<S>(&mut self, sink: &mut S, clock: &LastSeen) -> Timed
    where
        S: Sink<Message> + Unpin,
    {
        let due = self.schedule.due(clock);
        if let Some(code) = due.close {
            if code == close::KEEPALIVE_TIMEOUT {
                self.settings.metrics.keepalive_closes.fetch_add(1, Relaxed);
            }
            self.closer.close(code);
            return Timed::Closing;
        }
        if let Some(expires_at) = due.warn
            && !self.warn_token(sink, expires_at).await
        {
            return Timed::Lost;
        }
        if due.ping && !self.ping(sink, clock).await {
            return Timed::Lost;
        }
        Timed::Alive
    }

    async fn ping<S>(&mut self, sink: &mut S, clock: &LastSeen) -> bool
    where
        S: Sink<Message> + Unpin,
    {
        let ping = Message::Ping(Bytes::new());
        let alive = send_or_close(sink, ping, self.closer.closed()).await;
        if alive {
            clock.ping_sent();
            self.settings.metrics.pings_sent.fetch_add(1, Relaxed);
        }
        alive
    }

    /// Tells the client its token expires soon (it answers `refresh_token`).
    async fn warn_token<S>(&mut self, sink: &mut S, expires_at: u64) -> bool
    where
        S: Sink<Message> + Unpin,
    {
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
        send_or_close(sink, frame, self.closer.closed()).await
    }

    /// Sends the close frame, first what is queued on a graceful close. When
    /// the peer closed first, flushes tungstenite's echo of its close frame
    /// instead (a second close frame of ours would be refused). `alive`:
    /// whether the socket can still be written to.
    pub async fn finish<S>(&mut self, sink: &mut S, alive: bool)
    where
        S: Sink<Message> + Unpin,
    {
        let code = self.closer.code().unwrap_or(1000);
        if code == PEER_CLOSED {
            tracing::debug!("peer closed the socket");
            let _ = timeout(CLOSE_GRACE, sink.close()).await;
            return;
        }
        log_close(code);
        if alive && code == close::GOING_AWAY {
            let _ = timeout(
                CLOSE_GRACE,
                send_what_is_queued(sink, &mut self.rx, &mut self.queued, &self.settings),
            )
            .await;
        }
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(close::reason(code)),
        };
        let _ = timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
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
        if queued.is_empty() || !write_batch(sink, queued, not_closing.closed(), settings).await {
            return;
        }
    }
}

/// Writes the drained events as one frame (a single event, or a batch).
async fn write_batch<S>(
    sink: &mut S,
    queued: &mut Vec<OutFrame>,
    closing: impl Future<Output = ()>,
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
        Some(msg) => send_or_close(sink, msg, closing).await,
        None => true,
    }
}

/// Sends and flushes one message unless the connection is asked to close
/// first (a peer that stopped reading would otherwise hold the writer forever).
async fn send_or_close<S>(sink: &mut S, msg: Message, closing: impl Future<Output = ()>) -> bool
where
    S: Sink<Message> + Unpin,
{
    tokio::select! {
        biased;
        () = closing => false,
        sent = sink.send(msg) => sent.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::{Pin, pin};
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

    /// A writer with a queue of `capacity`; returns the queue's sending
    /// side and its closer too.
    fn writer(capacity: usize) -> (Writer, Outbox, Closer, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let (outbox, inbox, closer) = Outbox::channel(capacity, Encoding::Json, metrics.clone());
        let writer = Writer::new(inbox, closer.clone(), settings(&metrics));
        (writer, outbox, closer, metrics)
    }

    fn text(msg: &Message) -> &str {
        match msg {
            Message::Text(t) => t.as_str(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_queued_together_go_out_as_one_batch_frame() {
        let (mut w, outbox, closer, metrics) = writer(64);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sink = Recorder(tx);
        for n in 0..5 {
            assert!(outbox.offer(event(&n.to_string(), None)));
        }
        assert_eq!(w.take().await, 5);
        assert!(w.write_taken(&mut sink, pin!(closer.closed())).await);
        let expected: Vec<String> = (0..5)
            .map(|n| format!(r#"{{"type":"x","n":"{n}"}}"#))
            .collect();
        assert_eq!(
            text(&rx.recv().await.unwrap()),
            format!(r#"{{"type":"batch","messages":[{}]}}"#, expected.join(","))
        );
        // A lone event later goes out as itself, not as a batch of one.
        assert!(outbox.offer(event("alone", None)));
        assert_eq!(w.take().await, 1);
        assert!(w.write_taken(&mut sink, pin!(closer.closed())).await);
        assert_eq!(
            text(&rx.recv().await.unwrap()),
            r#"{"type":"x","n":"alone"}"#
        );
        // The last sender gone: nothing more to take, and the close is 1000.
        drop(outbox);
        assert_eq!(w.take().await, 0);
        w.finish(&mut sink, true).await;
        let closing = rx.recv().await.unwrap();
        assert!(
            matches!(&closing, Message::Close(Some(f)) if u16::from(f.code) == 1000),
            "{closing:?}"
        );
        assert_eq!(metrics.frame_events.count(), 2);
    }

    #[tokio::test]
    async fn comments_the_initial_state_held_are_not_sent_live() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut inbox, closer) = Outbox::channel(64, Encoding::Json, metrics.clone());
        inbox.set_watermark(Some(5));
        let mut w = Writer::new(inbox, closer.clone(), settings(&metrics));
        for id in [4, 5, 6] {
            assert!(outbox.offer(event(&id.to_string(), Some(id))));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert_eq!(w.take().await, 1);
        assert!(
            w.write_taken(&mut Recorder(tx), pin!(closer.closed()))
                .await
        );
        assert_eq!(text(&rx.recv().await.unwrap()), r#"{"type":"x","n":"6"}"#);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed_with_4009() {
        let (mut w, _outbox, closer, metrics) = writer(64);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sink = Recorder(tx);
        let clock = LastSeen::new();
        let started = tokio::time::Instant::now();
        // The socket's timer, as its task runs it.
        loop {
            tokio::time::sleep_until(w.next_wake(&clock)).await;
            match w.on_timer(&mut sink, &clock).await {
                Timed::Alive => continue,
                Timed::Lost => panic!("the recorder never fails"),
                Timed::Closing => break,
            }
        }
        w.finish(&mut sink, true).await;
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
        assert_eq!(metrics.keepalive_closes.load(Relaxed), 1);
        assert_eq!(metrics.pings_sent.load(Relaxed), pings);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_is_cut_when_its_socket_is_closed() {
        let (mut w, outbox, closer, _) = writer(4);
        // Its first write never completes; meanwhile its queue fills: the
        // room's next offer closes it as a slow consumer.
        assert!(outbox.offer(event("first", None)));
        assert_eq!(w.take().await, 1);
        let started = tokio::time::Instant::now();
        let mut stuck = Stuck;
        let closing = pin!(closer.closed());
        let write = w.write_taken(&mut stuck, closing);
        let fill = async {
            let mut offered = 0;
            while outbox.offer(event("x", None)) {
                offered += 1;
            }
            offered
        };
        let (written, offered) = tokio::join!(write, fill);
        assert_eq!(offered, 4);
        assert!(!written, "the stuck write gave up once the socket closed");
        assert_eq!(closer.code(), Some(close::SLOW_CONSUMER));
        // The close frame to a peer that never reads takes at most its grace.
        w.finish(&mut stuck, false).await;
        assert!(started.elapsed() <= CLOSE_GRACE, "{:?}", started.elapsed());
    }
}
