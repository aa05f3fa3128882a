//! A connection's outbound side as the rest of the server sees it: a bounded
//! queue of pre-encoded frames and a one-shot close signal. Rooms and the
//! persister `offer` into it and never wait; a full queue closes the
//! connection as a slow consumer instead of holding anyone back.

use std::sync::Arc;
use std::sync::OnceLock;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vridge_protocol::{CommentId, Encoding, close};

use crate::metrics::Metrics;

/// One encoded event. `comment_id` lets the writer drop live comments that
/// the `initial_state` it sent first already contained.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub bytes: Bytes,
    pub comment_id: Option<CommentId>,
}

/// Asks a connection to close with a code; the first code asked for wins.
#[derive(Debug, Clone, Default)]
pub struct Closer {
    token: CancellationToken,
    code: Arc<OnceLock<u16>>,
}

impl Closer {
    pub fn close(&self, code: u16) {
        let _ = self.code.set(code);
        self.token.cancel();
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

/// The sending half of a connection's queue, cloned into its room and into
/// persister jobs.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<OutFrame>,
    closer: Closer,
    encoding: Encoding,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Creates the queue; the receiver goes to the connection's writer.
    pub fn channel(
        capacity: usize,
        encoding: Encoding,
        metrics: Arc<Metrics>,
    ) -> (Outbox, mpsc::Receiver<OutFrame>, Closer) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closer = Closer::default();
        (
            Outbox {
                tx,
                closer: closer.clone(),
                encoding,
                metrics,
            },
            rx,
            closer,
        )
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Queues a frame without waiting. Returns false when the connection is
    /// gone or was just closed as a slow consumer.
    pub fn offer(&self, frame: OutFrame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.closer.is_closed() {
                    self.metrics
                        .slow_consumer_closes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.closer.close(close::SLOW_CONSUMER);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Encodes `msg` for this connection and queues it.
    pub fn offer_message(&self, msg: &vridge_protocol::ServerMessage) -> bool {
        match vridge_protocol::codec::encode(self.encoding, msg) {
            Ok(bytes) => self.offer(OutFrame {
                bytes,
                comment_id: None,
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

    #[test]
    fn first_close_code_wins() {
        let closer = Closer::default();
        closer.close(close::SLOW_CONSUMER);
        closer.close(close::GOING_AWAY);
        assert_eq!(closer.code(), Some(close::SLOW_CONSUMER));
    }
}
