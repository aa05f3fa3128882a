//! A connection's outbound queue, a leaf that imports nothing of the core: a
//! bounded queue of pre-encoded frames and a one-shot close signal. Rooms
//! and the persister `offer` into it and never wait; a full queue closes the
//! connection as a slow consumer instead of holding anyone back. The
//! receiving half ([`Inbox`]) belongs to the connection's writer and drops
//! live comments its `initial_state` already held (the watermark).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vridge_protocol::{CommentId, Encoding, Seq, close};

use crate::metrics::Metrics;

/// One encoded event. `comment_id` and `seq` let the [`Inbox`] drop live
/// events that the `initial_state` sent first already reflected.
#[derive(Debug, Clone, Default)]
pub struct OutFrame {
    pub bytes: Bytes,
    pub comment_id: Option<CommentId>,
    /// The event's number in its project's log, for durable events.
    pub seq: Option<Seq>,
}

/// Asks a connection to close with a code; the first code asked for wins.
#[derive(Debug, Clone, Default)]
pub struct Closer {
    token: CancellationToken,
    code: Arc<OnceLock<u16>>,
}

/// The code a [`Closer`] holds when the peer closed first: the writer then
/// sends no close frame of its own but flushes tungstenite's echo of the
/// peer's (RFC 6455 §5.5.1), so the client sees its own code back.
pub const PEER_CLOSED: u16 = 0;

impl Closer {
    pub fn close(&self, code: u16) {
        let _ = self.code.set(code);
        self.token.cancel();
    }

    /// The peer sent its close frame: answer it with the echo.
    pub fn peer_closed(&self) {
        self.close(PEER_CLOSED);
    }

    pub fn code(&self) -> Option<u16> {
        self.code.get().copied()
    }

    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn closed(&self) {
        self.token.cancelled().await
    }
}

/// A connection's queue, shared by its senders ([`Outbox`]) and its writer
/// ([`Inbox`]).
///
/// Not tokio's mpsc: a bounded tokio channel allocates its first block of 32
/// slots (32 × 48 bytes) and its cache-padded state, about 2 KiB, when it is
/// created — a fifth of what an idle socket cost. This queue holds no buffer
/// until a frame is queued and gives it back once the writer drained it.
#[derive(Debug)]
struct Queue {
    state: Mutex<QueueState>,
    /// Wakes the writer. A notification sent while it is not waiting is
    /// kept, so a frame queued between its check and its wait is not missed.
    ready: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct QueueState {
    frames: VecDeque<OutFrame>,
    /// Live [`Outbox`] handles: when none is left and the queue is empty,
    /// the writer sees the end.
    senders: usize,
    /// The [`Inbox`] was dropped: nothing will be read any more.
    closed: bool,
}

impl QueueState {
    fn pop(&mut self) -> Option<OutFrame> {
        let frame = self.frames.pop_front();
        self.release_if_empty();
        frame
    }

    /// A drained queue gives its buffer back: an idle connection holds none.
    fn release_if_empty(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing panics while holding the lock; if something did, the
        // queue is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why [`Outbox::offer`] did not queue a frame.
enum Refused {
    Full,
    Closed,
}

/// The sending half of a connection's queue, cloned into its room and into
/// persister jobs.
#[derive(Debug)]
pub struct Outbox {
    queue: Arc<Queue>,
    closer: Closer,
    encoding: Encoding,
    metrics: Arc<Metrics>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        Self {
            queue: self.queue.clone(),
            closer: self.closer.clone(),
            encoding: self.encoding,
            metrics: self.metrics.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.queue.ready.notify_one();
        }
    }
}

impl Outbox {
    /// Creates the queue; the receiver goes to the connection's writer.
    pub fn channel(
        capacity: usize,
        encoding: Encoding,
        metrics: Arc<Metrics>,
    ) -> (Outbox, Inbox, Closer) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                frames: VecDeque::new(),
                senders: 1,
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        });
        let closer = Closer::default();
        (
            Outbox {
                queue: queue.clone(),
                closer: closer.clone(),
                encoding,
                metrics,
            },
            Inbox {
                queue,
                watermark: None,
                seq_watermark: None,
            },
            closer,
        )
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn try_push(&self, frame: OutFrame) -> Result<(), Refused> {
        {
            let mut state = self.queue.lock();
            if state.closed {
                return Err(Refused::Closed);
            }
            if state.frames.len() >= self.queue.capacity {
                return Err(Refused::Full);
            }
            state.frames.push_back(frame);
        }
        self.queue.ready.notify_one();
        Ok(())
    }

    /// Queues a frame without waiting. Returns false when the connection is
    /// gone or was just closed as a slow consumer.
    pub fn offer(&self, frame: OutFrame) -> bool {
        match self.try_push(frame) {
            Ok(()) => true,
            Err(Refused::Full) => {
                if !self.closer.is_closed() {
                    self.metrics
                        .slow_consumer_closes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.closer.close(close::SLOW_CONSUMER);
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Encodes `msg` for this connection and queues it.
    pub fn offer_message(&self, msg: &vridge_protocol::ServerMessage) -> bool {
        match vridge_protocol::codec::encode(self.encoding, msg) {
            Ok(bytes) => self.offer(OutFrame {
                bytes,
                comment_id: None,
                seq: None,
            }),
            Err(e) => {
                tracing::error!(error = %e, "encoding a server message failed");
                false
            }
        }
    }

    /// Asks the connection to close.
    pub fn close(&self, code: u16) {
        self.closer.close(code);
    }
}

/// The receiving half of a connection's queue: its writer's.
#[derive(Debug)]
pub struct Inbox {
    queue: Arc<Queue>,
    /// Comments with an id up to this were in the `initial_state` the
    /// connection was sent first: queued live, they are skipped. Set once,
    /// before the writer starts; comments queued by the room before the
    /// state was read are what it filters.
    watermark: Option<CommentId>,
    /// Events numbered up to this were reflected in that `initial_state`
    /// (set the same way).
    seq_watermark: Option<Seq>,
}

impl Inbox {
    /// Skips live comments with an id up to `mark` from now on.
    pub fn set_watermark(&mut self, mark: Option<CommentId>) {
        self.watermark = mark;
    }

    /// Skips live events numbered up to `mark` from now on.
    pub fn set_seq_watermark(&mut self, mark: Option<Seq>) {
        self.seq_watermark = mark;
    }

    /// Whether a frame is still news to the client.
    fn wanted(&self, frame: &OutFrame) -> bool {
        let old_comment =
            matches!((self.watermark, frame.comment_id), (Some(mark), Some(id)) if id <= mark);
        let old_event =
            matches!((self.seq_watermark, frame.seq), (Some(mark), Some(seq)) if seq <= mark);
        !(old_comment || old_event)
    }

    /// Waits for queued frames and moves up to `limit` of them into `buf`.
    /// Returns how many; 0 only when every [`Outbox`] is gone and nothing is
    /// left. Cancel safe: frames are only taken once it completes.
    pub async fn recv_many(&mut self, buf: &mut Vec<OutFrame>, limit: usize) -> usize {
        loop {
            {
                let mut state = self.queue.lock();
                let n = state.frames.len().min(limit.max(1));
                if n > 0 {
                    let before = buf.len();
                    buf.extend(state.frames.drain(..n).filter(|f| self.wanted(f)));
                    state.release_if_empty();
                    // Everything drained was below the watermark: wait on.
                    if buf.len() > before {
                        return buf.len() - before;
                    }
                    continue;
                }
                if state.senders == 0 {
                    return 0;
                }
            }
            self.queue.ready.notified().await;
        }
    }

    /// Waits for the next frame; `None` when every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<OutFrame> {
        loop {
            {
                let mut state = self.queue.lock();
                if let Some(frame) = state.pop() {
                    if self.wanted(&frame) {
                        return Some(frame);
                    }
                    continue;
                }
                if state.senders == 0 {
                    return None;
                }
            }
            self.queue.ready.notified().await;
        }
    }

    /// The next wanted frame if one is queued.
    pub fn try_recv(&mut self) -> Option<OutFrame> {
        let mut state = self.queue.lock();
        while let Some(frame) = state.pop() {
            if self.wanted(&frame) {
                return Some(frame);
            }
        }
        None
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let frames = {
            let mut state = self.queue.lock();
            state.closed = true;
            std::mem::take(&mut state.frames)
        };
        // Senders may live on (in a room, a persister job); what was queued
        // for a writer that is gone is freed now, outside the lock.
        drop(frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow_consumer() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, _rx, closer) = Outbox::channel(2, Encoding::Json, metrics.clone());
        let frame = || OutFrame {
            bytes: Bytes::from_static(b"{}"),
            comment_id: None,
            ..Default::default()
        };
        assert!(outbox.offer(frame()));
        assert!(outbox.offer(frame()));
        assert!(!closer.is_closed());
        assert!(!outbox.offer(frame()));
        assert_eq!(closer.code(), Some(close::SLOW_CONSUMER));
        assert!(!outbox.offer(frame()));
        assert_eq!(
            metrics
                .slow_consumer_closes
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    fn frame(id: i64) -> OutFrame {
        OutFrame {
            bytes: Bytes::from_static(b"{}"),
            comment_id: Some(id),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_drained_queue_holds_no_buffer() {
        let (outbox, mut inbox, _) = Outbox::channel(8, Encoding::Json, Arc::default());
        for id in 1..=3 {
            assert!(outbox.offer(frame(id)));
        }
        let mut got = Vec::new();
        assert_eq!(inbox.recv_many(&mut got, 2).await, 2);
        assert_eq!(inbox.recv_many(&mut got, 2).await, 1);
        let ids: Vec<_> = got.iter().filter_map(|f| f.comment_id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(inbox.queue.lock().frames.capacity(), 0);
    }

    #[tokio::test]
    async fn the_writer_wakes_for_a_frame_queued_while_it_waits() {
        let (outbox, mut inbox, _) = Outbox::channel(8, Encoding::Json, Arc::default());
        let reader = tokio::spawn(async move { inbox.recv().await });
        tokio::task::yield_now().await;
        assert!(outbox.offer(frame(7)));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        assert!(matches!(got, Ok(Ok(Some(f))) if f.comment_id == Some(7)));
    }

    #[tokio::test]
    async fn the_writer_sees_the_end_once_every_sender_is_gone() {
        let (outbox, mut inbox, _) = Outbox::channel(8, Encoding::Json, Arc::default());
        let other = outbox.clone();
        assert!(outbox.offer(frame(1)));
        drop(outbox);
        let mut got = Vec::new();
        assert_eq!(inbox.recv_many(&mut got, 8).await, 1);
        assert!(other.offer(frame(2)));
        drop(other);
        assert_eq!(inbox.recv().await.and_then(|f| f.comment_id), Some(2));
        assert_eq!(inbox.recv_many(&mut got, 8).await, 0);
    }

    #[test]
    fn offers_to_a_connection_whose_writer_is_gone_fail_without_closing_it() {
        let (outbox, inbox, closer) = Outbox::channel(8, Encoding::Json, Arc::default());
        drop(inbox);
        assert!(!outbox.offer(frame(1)));
        assert!(!closer.is_closed());
    }

    #[tokio::test]
    async fn comments_up_to_the_watermark_are_skipped_and_the_rest_kept_in_order() {
        let (outbox, mut inbox, _) = Outbox::channel(16, Encoding::Json, Arc::default());
        inbox.set_watermark(Some(5));
        for id in [4, 5, 6, 3, 7] {
            assert!(outbox.offer(frame(id)));
        }
        assert!(outbox.offer(OutFrame {
            bytes: Bytes::from_static(b"{}"),
            comment_id: None,
            ..Default::default()
        }));
        let mut got = Vec::new();
        assert_eq!(inbox.recv_many(&mut got, 2).await, 1);
        assert_eq!(inbox.recv_many(&mut got, 16).await, 2);
        let ids: Vec<_> = got.iter().map(|f| f.comment_id).collect();
        assert_eq!(ids, vec![Some(6), Some(7), None]);
        // Only skipped frames queued: the writer keeps waiting, not woken empty.
        assert!(outbox.offer(frame(2)));
        assert!(inbox.try_recv().is_none());
        assert!(outbox.offer(frame(8)));
        assert_eq!(inbox.recv().await.and_then(|f| f.comment_id), Some(8));
    }

    #[test]
    fn first_close_code_wins() {
        let closer = Closer::default();
        closer.close(close::SLOW_CONSUMER);
        closer.close(close::GOING_AWAY);
        assert_eq!(closer.code(), Some(close::SLOW_CONSUMER));
    }
}
