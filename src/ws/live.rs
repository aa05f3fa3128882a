//! An open socket's one task: it reads client frames, writes what the
//! socket's queue holds, and keeps the socket alive, until the socket ends
//! or is closed (slow consumer, eviction, keepalive, token, shutdown).
//!
//! One task, not a reader and a writer: every idle socket held two task
//! cells, a lock around the split socket and its two halves, and each ping
//! woke both (the writer to send it, the reader for the pong). Reads and
//! writes still do not wait on each other's work: the handling of the frame
//! last read (which may await the store, or a full persister queue) runs
//! beside the writes as its own future, and the next frame is read once it
//! is done, so a client's frames are still handled in order.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;

use futures_util::{Sink, Stream, StreamExt};
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vridge_protocol::close;

use super::clock::LastSeen;
use super::connection_limit::ConnectionGuard;
use super::session::{Opened, Read, Session, drain};
use super::writer::{CLOSE_GRACE, Timed, Writer, WriterSettings};
use crate::hub::{Membership, SocketSlot};

/// The handling of one client frame, running beside the socket's writes.
type Handling = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open socket: joined, its `initial_state` preset. What it holds lives
/// as long as the socket, so it is kept to what the loop and the close need.
pub struct Live<S> {
    ws: S,
    session: Arc<Session>,
    clock: Arc<LastSeen>,
    writer: Writer,
    /// The socket's place in its room, handed back to the hub on close.
    membership: Membership,
    /// This node's and the cluster's socket slots, held until the socket
    /// ends (given back on drop).
    _slots: (ConnectionGuard, SocketSlot),
}

/// How the socket's loop ended.
struct Ended {
    /// The peer closed or went away: nothing left to drain.
    peer_gone: bool,
    /// The socket can still be written to (the close frame, say).
    writable: bool,
    /// The frame being handled when it ended, if any.
    handling: Option<Handling>,
}

impl<S> Live<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Unpin,
{
    pub fn new(opened: Opened<S>) -> Self {
        let Opened {
            ws,
            session,
            rx,
            clock,
            membership,
            slots,
        } = opened;
        let ctx = session.ctx();
        let settings = WriterSettings {
            encoding: session.encoding(),
            max_batch: ctx.settings.max_batch.max(1),
            ping_interval: ctx.settings.ping_interval,
            pong_timeout: ctx.settings.pong_timeout,
            metrics: ctx.metrics.clone(),
        };
        let writer = Writer::new(rx, session.closer().clone(), settings);
        Self {
            ws,
            session,
            clock,
            writer,
            membership,
            _slots: slots,
        }
    }

    /// Serves the socket until it ends or is closed, then closes it.
    /// By reference: a future owning `self` would hold it twice (the
    /// argument and its moved-in copy), so the caller keeps it instead.
    pub async fn run(&mut self) {
        let ended = self.serve().await;
        // Boxed: the close runs once, and its timers would otherwise size
        // this task's state (held by every idle socket) for its whole life.
        Box::pin(self.close(ended)).await;
    }

    /// Sends the `initial_state`, then reads, writes and pings until the
    /// socket ends or is closed. Its close and shutdown signals are waited
    /// on by futures registered once, not once per wake-up.
    async fn serve(&mut self) -> Ended {
        let Self {
            ws,
            session,
            clock,
            writer,
            ..
        } = self;
        let (session, clock) = (&*session, &*clock);
        let mut writable = writer.flush_preamble(ws).await;
        let mut peer_gone = false;
        let ctx = session.ctx();
        let mut closed = pin!(session.closer().closed());
        let mut shutdown = pin!(ctx.shutdown.cancelled());
        let mut close_sockets = pin!(ctx.close_sockets.cancelled());
        let mut shutting_down = false;
        // Boxed, as tokio's `Interval` boxes its own: the timer's entry is
        // not part of the future every idle socket holds.
        let mut timer = Box::pin(sleep_until(writer.next_wake(clock)));
        let mut handling: Option<Handling> = None;
        while writable {
            // In order: closing first, then the timer, then writes before
            // reads. Writes cannot starve reads: a write takes up to a batch,
            // so a read waits at most for the queue's backlog (bounded by its
            // capacity; a socket that far behind is a slow consumer anyway).
            tokio::select! {
                biased;
                () = &mut closed => break,
                // Take nothing more; close once what was taken is stored.
                () = &mut shutdown, if !shutting_down => shutting_down = true,
                () = &mut close_sockets, if shutting_down => {
                    session.closer().close(close::GOING_AWAY);
                    break;
                }
                // Boxed: a ping's future is the largest this loop awaits,
                // and it runs once an interval, not once a delivery.
                () = &mut timer => {
                    match Box::pin(writer.on_timer(ws, clock)).await {
                        Timed::Alive => timer.as_mut().reset(writer.next_wake(clock)),
                        Timed::Lost => writable = false,
                        Timed::Closing => break,
                    }
                }
                taken = writer.take() => {
                    if taken == 0 {
                        break;
                    }
                    writable = writer.write_taken(ws, closed.as_mut()).await;
                }
                () = in_flight(&mut handling) => handling = None,
                next = ws.next(), if handling.is_none() && !shutting_down => {
                    clock.touch();
                    match session.on_read(next, clock) {
                        Read::Next => {}
                        Read::Frame(encoding, frame) => {
                            let session = session.clone();
                            handling = Some(Box::pin(session.handle(encoding, frame, clock.clone())));
                        }
                        Read::PeerGone => {
                            peer_gone = true;
                            break;
                        }
                        Read::Closing => break,
                    }
                }
            }
        }
        Ended {
            peer_gone,
            writable,
            handling,
        }
    }

    /// Leaves the room, sends the close frame (after what is queued, on a
    /// graceful close) and waits for the peer's side of the close handshake.
    async fn close(&mut self, ended: Ended) {
        // A frame being handled is finished (its comment handed to the
        // persister, say) unless that takes longer than the close's grace.
        if let Some(frame) = ended.handling {
            let _ = timeout(CLOSE_GRACE, frame).await;
        }
        let ctx = self.session.ctx();
        ctx.hub.leave(&self.membership).await;
        self.session.closer().close(1000);
        self.writer.finish(&mut self.ws, ended.writable).await;
        if !ended.peer_gone {
            drain(&mut self.ws).await;
        }
        ctx.metrics.sockets_open.fetch_sub(1, Relaxed);
    }
}

/// Completes when the frame being handled is done; pending while none is.
fn in_flight(handling: &mut Option<Handling>) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| match handling {
        Some(frame) => frame.as_mut().poll(cx),
        None => Poll::Pending,
    })
}

#[cfg(test)]
mod tests {
    //! The socket's loop over a peer made of two channels: what it reads
    //! and what it is sent, with a real hub behind it.

    use std::task::Context;

    use tokio::sync::mpsc;
    use vridge_protocol::ServerMessage;

    use super::*;
    use crate::domain::Role;
    use crate::hub::test_support::{World, world};
    use crate::ws::session::tests::opened;

    /// The client's end: frames it sends, and what the server wrote.
    struct Peer {
        incoming: mpsc::UnboundedReceiver<Result<Message, WsError>>,
        sent: mpsc::UnboundedSender<Message>,
        closed: bool,
    }

    impl Stream for Peer {
        type Item = Result<Message, WsError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx)
        }
    }

    impl Sink<Message> for Peer {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), ()> {
            self.sent.send(msg).map_err(|_| ())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.closed = true;
            Poll::Ready(Ok(()))
        }
    }

    type Client = (
        mpsc::UnboundedSender<Result<Message, WsError>>,
        mpsc::UnboundedReceiver<Message>,
    );

    async fn live(w: &World, user: vridge_protocol::UserId, role: Role) -> (Live<Peer>, Client) {
        let (to_server, incoming) = mpsc::unbounded_channel();
        let (sent, from_server) = mpsc::unbounded_channel();
        let peer = Peer {
            incoming,
            sent,
            closed: false,
        };
        let live = Live::new(opened(w, peer, user, role).await);
        (live, (to_server, from_server))
    }

    fn text(frame: &str) -> Result<Message, WsError> {
        Ok(Message::Text(frame.into()))
    }

    /// The next data message the server wrote, decoded (batches unpacked
    /// by the caller's order of reads: each test here sends one at a time).
    async fn next_message(from_server: &mut mpsc::UnboundedReceiver<Message>) -> ServerMessage {
        loop {
            match from_server.recv().await.expect("the server wrote") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    fn error_text(msg: ServerMessage) -> String {
        match msg {
            ServerMessage::Error { message, .. } => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_are_answered_in_order_and_a_peers_close_is_echoed_and_ends_the_socket() {
        let w = world().await;
        let (mut socket, (to_server, mut from_server)) = live(&w, w.editor, Role::Editor).await;
        let task = tokio::spawn(async move {
            socket.run().await;
            socket
        });
        to_server.send(text("not json")).unwrap();
        to_server.send(text(r#"{"type":"nope"}"#)).unwrap();
        assert_eq!(
            error_text(next_message(&mut from_server).await),
            "Invalid JSON"
        );
        assert_eq!(
            error_text(next_message(&mut from_server).await),
            "Unknown message type: nope"
        );
        // The peer closes: the socket ends, answering with tungstenite's echo
        // (a close of the sink), not a close frame of its own.
        to_server.send(Ok(Message::Close(None))).unwrap();
        let socket = timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the socket ended")
            .unwrap();
        assert!(socket.ws.closed);
        assert_eq!(
            socket.session.closer().code(),
            Some(crate::outbound::PEER_CLOSED)
        );
        assert_eq!(socket.session.ctx().metrics.sockets_open.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn once_shutdown_begins_nothing_more_is_read_and_the_socket_closes_with_1001() {
        let w = world().await;
        let (mut socket, (to_server, mut from_server)) = live(&w, w.editor, Role::Editor).await;
        let ctx = socket.session.clone();
        ctx.ctx().shutdown.cancel();
        let task = tokio::spawn(async move {
            socket.run().await;
            socket
        });
        // Sent after shutdown began: never read, never answered.
        to_server.send(text("not json")).unwrap();
        tokio::task::yield_now().await;
        ctx.ctx().close_sockets.cancel();
        // Gone once the close frame is out: the close's drain ends there.
        drop(to_server);
        let socket = timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the socket ended")
            .unwrap();
        assert_eq!(socket.session.closer().code(), Some(close::GOING_AWAY));
        match from_server.recv().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), close::GOING_AWAY)
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
    }
}
