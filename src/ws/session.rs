//! One feedback socket from handshake to close: authenticate, authorize,
//! take the socket slots, join through the hub, send `initial_state`, then
//! read and decode client frames — each handed to the hub, whose refusals
//! are answered here — until the socket closes, is closed (slow consumer,
//! eviction, keepalive), or the server shuts down. Only IO lives here: the
//! commands' checks and effects are the hub's, and the writer task does
//! all writing.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;

use futures_util::stream::SplitStream;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use vridge_protocol::codec::{client_msg_id_of, decode_client, encode};
use vridge_protocol::{
    ClientMessage, CommentId, DecodeError, Encoding, NewComment, ProjectId, Seq, ServerMessage,
    close,
};

use super::SessionContext;
use super::clock::LastSeen;
use super::connection_limit::ConnectionGuard;
use super::preamble::{Preamble, server_frame};
use super::writer::{self, WriterSettings};
use crate::auth::{AccessGrant, AuthError};
use crate::hub::{Author, Command, CommandError, JoinRequest, Joined, Membership, SocketSlot};
use crate::limits::LimitedKind;
use crate::outbound::{Closer, Inbox, Outbox};

/// How long a closing socket waits for the peer's side of the close
/// handshake. Dropping TCP with the peer's frames still unread makes the
/// kernel send a reset, and a reset can make the peer discard our close frame
/// (it would see 1006 instead of our code), so we read until the peer closes.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// What the handshake learned, before the socket is upgraded.
pub struct Handshake {
    pub project: ProjectId,
    pub token: Option<String>,
    pub encoding: Encoding,
    /// `?since=`: the newest comment id the client holds (a resume).
    pub since: Option<CommentId>,
    /// `?since_seq=`: the newest event the client holds (a resume by event).
    pub since_seq: Option<Seq>,
}

/// Opens a socket: admits it (authentication, membership, socket slots),
/// joins its room, encodes `initial_state`, presets it as the socket's first
/// frame (around the codec: see [`super::preamble`]) and starts the writer,
/// whose first flush sends it. `None` when the socket was refused (and closed).
///
/// Callers box this future and await it apart from [`Live::run`]: a task's
/// future is allocated once, sized for its largest await point, and opening
/// awaits store and broker queries whose futures are many times the size of
/// the read loop. Boxed, that memory is freed once the socket is open instead
/// of being held by every idle socket for its whole life.
pub async fn open<S>(ctx: Arc<SessionContext>, mut ws: S, handshake: Handshake) -> Option<Live<S>>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Preamble + Unpin + Send + 'static,
{
    let Admitted {
        session,
        membership,
        mut rx,
        preamble,
        watermark,
        seq_watermark,
        slots,
        grant,
    } = admit(&ctx, &mut ws, handshake).await?;
    ws.preset(server_frame(session.outbox.encoding(), &preamble));
    drop(preamble);
    let (sink, stream) = ws.split();
    rx.set_watermark(watermark);
    rx.set_seq_watermark(seq_watermark);
    let last_seen = Arc::new(LastSeen::new());
    last_seen.set_token(&grant);
    let settings = WriterSettings {
        encoding: session.outbox.encoding(),
        max_batch: ctx.settings.max_batch.max(1),
        ping_interval: ctx.settings.ping_interval,
        pong_timeout: ctx.settings.pong_timeout,
        metrics: ctx.metrics.clone(),
    };
    let writer = writer::spawn(
        sink,
        rx,
        session.closer.clone(),
        last_seen.clone(),
        settings,
    );
    Some(Live {
        session,
        stream,
        last_seen,
        writer,
        membership,
        _slots: slots,
    })
}

/// An open socket: joined, its writer running. What it holds lives as long
/// as the socket, so it is kept to what the read loop and the close need.
pub struct Live<S> {
    session: Session,
    stream: SplitStream<S>,
    last_seen: Arc<LastSeen>,
    writer: JoinHandle<()>,
    /// The socket's place in its room, handed back to the hub on close.
    membership: Membership,
    /// This node's and the cluster's socket slots, held until the socket
    /// ends (given back on drop).
    _slots: (ConnectionGuard, SocketSlot),
}

impl<S> Live<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Unpin,
{
    /// Reads client frames until the socket ends or is closed, then closes it.
    /// By reference: a future owning `self` would hold it twice (the
    /// argument and its moved-in copy), so the caller keeps it instead.
    pub async fn run(&mut self) {
        let peer_closed = self.session.read(&mut self.stream, &self.last_seen).await;
        // Boxed for the same reason as `open`: the close is short, its timers
        // are not.
        Box::pin(self.close(peer_closed)).await;
    }

    /// Leaves the room, lets the writer send the close frame and waits for
    /// the peer's side of the close handshake.
    async fn close(&mut self, peer_closed: bool) {
        self.session.ctx.hub.leave(&self.membership).await;
        self.session.closer.close(1000);
        let _ = (&mut self.writer).await;
        if !peer_closed {
            drain(&mut self.stream).await;
        }
        self.session.ctx.metrics.sockets_open.fetch_sub(1, Relaxed);
    }
}

/// A socket that passed admission and joined its room, with its
/// `initial_state` encoded for the writer to send first.
struct Admitted {
    session: Session,
    membership: Membership,
    rx: Inbox,
    preamble: Bytes,
    watermark: Option<CommentId>,
    seq_watermark: Option<Seq>,
    /// This node's and the cluster's socket slots, held until the socket ends.
    slots: (ConnectionGuard, SocketSlot),
    /// The token the socket opened with: it closes when that expires,
    /// unless the client refreshes it.
    grant: AccessGrant,
}

/// Authenticates and authorizes the socket, takes its slots, joins its room
/// and encodes `initial_state`. A refused socket is closed here (with the
/// reason's code) and `None` returned.
async fn admit<S>(ctx: &Arc<SessionContext>, ws: &mut S, handshake: Handshake) -> Option<Admitted>
where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin,
{
    let grant = match handshake.token.as_deref().ok_or(AuthError::Missing) {
        Ok(token) => ctx.jwt.verify_access_grant(token),
        Err(e) => Err(e),
    };
    let grant = match grant {
        Ok(grant) => grant,
        Err(AuthError::Expired) => {
            refuse(ws, close::TOKEN_EXPIRED).await;
            return None;
        }
        Err(_) => {
            refuse(ws, close::UNAUTHENTICATED).await;
            return None;
        }
    };
    let user = grant.user;
    tracing::Span::current().record("user_id", user);
    let role = match ctx.hub.member_role(handshake.project, user).await {
        Ok(Some(role)) => role,
        Ok(None) => {
            refuse(ws, close::PERMISSION_DENIED).await;
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "membership lookup failed");
            refuse(ws, close::INTERNAL_ERROR).await;
            return None;
        }
    };
    let max_sockets = ctx.settings.max_sockets_per_user;
    let Some(slot) = ctx.connections.try_acquire(user, max_sockets) else {
        refuse(ws, close::TOO_MANY_CONNECTIONS).await;
        return None;
    };
    // The local count is the fast path; the cluster count (Redis) holds the
    // limit across nodes.
    let Some(cluster_slot) = ctx.hub.acquire_socket(user, max_sockets).await else {
        refuse(ws, close::TOO_MANY_CONNECTIONS).await;
        return None;
    };

    ctx.metrics.sockets_open.fetch_add(1, Relaxed);
    let (outbox, rx, closer) = Outbox::channel(
        ctx.settings.outbound_queue,
        handshake.encoding,
        ctx.metrics.clone(),
    );
    let joined = ctx
        .hub
        .join(JoinRequest {
            project: handshake.project,
            user,
            outbox: outbox.clone(),
            since: handshake.since,
            since_seq: handshake.since_seq,
        })
        .await;
    let preamble = match joined {
        Ok(Joined {
            membership,
            state,
            watermark,
            seq_watermark,
        }) => encode(handshake.encoding, &ServerMessage::InitialState(state))
            .map(|bytes| (membership, bytes, watermark, seq_watermark))
            .map_err(|e| tracing::error!(error = %e, "encoding initial_state failed")),
        Err(e) => {
            tracing::error!(error = %e, "joining failed");
            Err(())
        }
    };
    let Ok((membership, preamble, watermark, seq_watermark)) = preamble else {
        refuse(ws, close::INTERNAL_ERROR).await;
        ctx.metrics.sockets_open.fetch_sub(1, Relaxed);
        return None;
    };
    let session = Session {
        ctx: ctx.clone(),
        author: Author {
            project: handshake.project,
            user,
            role,
        },
        outbox,
        closer,
    };
    Some(Admitted {
        session,
        membership,
        rx,
        preamble,
        watermark,
        seq_watermark,
        slots: (slot, cluster_slot),
        grant,
    })
}

/// Closes a socket that never joined, with `code`.
async fn refuse<S>(ws: &mut S, code: u16)
where
    S: Sink<Message> + Stream<Item = Result<Message, WsError>> + Unpin,
{
    tracing::info!(code, reason = close::reason(code), "refusing socket");
    let frame = CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(close::reason(code)),
    };
    let _ = ws.send(Message::Close(Some(frame))).await;
    drain(ws).await;
}

/// Reads and discards until the peer finishes closing (or [`CLOSE_DRAIN`]).
async fn drain<R>(stream: &mut R)
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
}

/// A joined socket's identity and its way back to the client.
struct Session {
    ctx: Arc<SessionContext>,
    /// The member behind the socket, as the hub's commands take it.
    author: Author,
    outbox: Outbox,
    closer: Closer,
}

impl Session {
    /// Reads client frames until the socket ends or is closed; true when the
    /// peer itself closed (nothing left to drain).
    async fn read<R>(&self, stream: &mut R, last_seen: &LastSeen) -> bool
    where
        R: Stream<Item = Result<Message, WsError>> + Unpin,
    {
        loop {
            let next = tokio::select! {
                biased;
                () = self.closer.closed() => return false,
                () = self.ctx.shutdown.cancelled() => {
                    // Take nothing more; close once what was taken is stored.
                    tokio::select! {
                        () = self.closer.closed() => {}
                        () = self.ctx.close_sockets.cancelled() => self.closer.close(close::GOING_AWAY),
                    }
                    return false;
                }
                next = stream.next() => next,
            };
            last_seen.touch();
            match next {
                None => return true,
                Some(Err(WsError::Capacity(_))) => {
                    self.closer.close(close::MESSAGE_TOO_BIG);
                    return false;
                }
                // RFC 6455 §7.4.1: 1007 for a text message that is not
                // UTF-8, 1002 for any other violation of the framing.
                Some(Err(WsError::Utf8(e))) => {
                    tracing::info!(error = %e, "invalid UTF-8 from the peer");
                    self.closer.close(close::INVALID_PAYLOAD);
                    return false;
                }
                Some(Err(WsError::Protocol(e))) => {
                    tracing::info!(error = %e, "WebSocket protocol violation");
                    self.closer.close(close::PROTOCOL_ERROR);
                    return false;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "socket read failed");
                    return true;
                }
                // Boxed: handling a frame awaits store lookups and the
                // persister, whose futures would otherwise size this loop's
                // state (and so every idle socket) for their whole life.
                Some(Ok(Message::Text(text))) => {
                    Box::pin(self.on_frame(Encoding::Json, text.as_bytes(), last_seen)).await
                }
                Some(Ok(Message::Binary(bin))) => {
                    Box::pin(self.on_frame(Encoding::MsgPack, &bin, last_seen)).await
                }
                Some(Ok(Message::Close(_))) => {
                    self.closer.peer_closed();
                    return true;
                }
                Some(Ok(Message::Pong(_))) => {
                    let metrics = &self.ctx.metrics;
                    metrics.pongs_received.fetch_add(1, Relaxed);
                    if let Some(rtt) = last_seen.pong_received() {
                        metrics.pong_seconds.observe(rtt.as_secs_f64());
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    fn error(&self, message: impl Into<String>) {
        self.error_for(message, None);
    }

    /// An error that answers one `comment_add`, naming its `client_msg_id`.
    fn error_for(&self, message: impl Into<String>, client_msg_id: Option<String>) {
        self.ctx.metrics.messages_out("error", 1);
        self.outbox.offer_message(&ServerMessage::Error {
            message: message.into(),
            client_msg_id,
        });
    }

    /// One client frame. Text frames are JSON and binary frames MessagePack,
    /// whatever was negotiated; replies use the negotiated encoding.
    async fn on_frame(&self, encoding: Encoding, frame: &[u8], clock: &LastSeen) {
        // The writer closes the socket at its token's deadline; a frame read
        // in between is not taken either.
        if clock.token_expired() {
            self.closer.close(close::TOKEN_EXPIRED);
            return;
        }
        // A frame read as shutdown began is dropped unanswered: the client
        // sees 1001 without an ack and resends after reconnecting.
        let Some(_admitted) = self.ctx.hub.admit() else {
            return;
        };
        let msg = decode_client(encoding, frame);
        let kind = match &msg {
            Ok(m) => m.kind(),
            Err(DecodeError::UnknownType(_)) => "unknown",
            Err(_) => "invalid",
        };
        self.ctx.metrics.message_in(kind);
        if !self
            .ctx
            .limits
            .allow(self.author.user, LimitedKind::of(kind))
        {
            self.ctx.metrics.rate_limited.fetch_add(1, Relaxed);
            let id = match &msg {
                Ok(m) => m.client_msg_id().map(str::to_owned),
                _ => None,
            };
            return self.error_for("Rate limit exceeded", id);
        }
        match msg {
            // A comment whose body did not decode still names its
            // `client_msg_id` when it has a readable one.
            // A command whose body did not decode still names its
            // `client_msg_id` when it has a readable one.
            Err(e @ (DecodeError::InvalidComment | DecodeError::InvalidReaction)) => {
                self.error_for(e.to_string(), client_msg_id_of(encoding, frame))
            }
            Err(e) => self.error(e.to_string()),
            Ok(ClientMessage::CommentAdd {
                comment,
                client_msg_id,
            }) => self.comment_add(comment, client_msg_id).await,
            Ok(ClientMessage::TypingIndicator { is_typing }) => self.typing(is_typing).await,
            Ok(ClientMessage::RefreshToken { token }) => self.refresh_token(&token, clock),
            Ok(ClientMessage::ReactionAdd {
                reaction,
                client_msg_id,
            }) => self.change(Command::React(reaction), client_msg_id).await,
            Ok(ClientMessage::ReactionRemove {
                reaction,
                client_msg_id,
            }) => self.change(Command::Unreact(reaction), client_msg_id).await,
            Ok(ClientMessage::CommentEdit {
                edit,
                client_msg_id,
            }) => self.change(Command::Edit(edit), client_msg_id).await,
            Ok(ClientMessage::CommentDelete {
                comment_id,
                client_msg_id,
            }) => {
                self.change(Command::Delete(comment_id), client_msg_id)
                    .await
            }
            Ok(ClientMessage::CommentResolve {
                comment_id,
                client_msg_id,
            }) => {
                self.change(Command::Resolve(comment_id), client_msg_id)
                    .await
            }
            Ok(ClientMessage::CommentReopen {
                comment_id,
                client_msg_id,
            }) => {
                self.change(Command::Reopen(comment_id), client_msg_id)
                    .await
            }
        }
    }

    /// A fresh access token for this socket: the same user's, valid. The
    /// socket then lives until the new token expires; a refused token
    /// leaves the old deadline in place.
    fn refresh_token(&self, token: &str, clock: &LastSeen) {
        match self.ctx.jwt.verify_access_grant(token) {
            Ok(grant) if grant.user == self.author.user => {
                clock.set_token(&grant);
                self.ctx.metrics.messages_out("token_refreshed", 1);
                self.outbox.offer_message(&ServerMessage::TokenRefreshed {
                    expires_at: grant.expires_at as i64,
                });
            }
            Ok(_) | Err(_) => self.error(DecodeError::InvalidToken.to_string()),
        }
    }

    async fn comment_add(&self, comment: NewComment, client_msg_id: Option<String>) {
        let hub = &self.ctx.hub;
        if let Err(e) = hub
            .comment_add(self.author, comment, client_msg_id.as_deref(), &self.outbox)
            .await
        {
            self.error_for(e.to_string(), client_msg_id);
        }
    }

    async fn typing(&self, is_typing: bool) {
        if let Err(e) = self.ctx.hub.typing(self.author, is_typing).await {
            self.refused(e);
        }
    }

    /// A change to a stored comment; refused ones are answered with the
    /// reason, naming the command's `client_msg_id`.
    async fn change(&self, command: Command, client_msg_id: Option<String>) {
        let hub = &self.ctx.hub;
        if let Err(e) = hub
            .change(self.author, command, client_msg_id.as_deref(), &self.outbox)
            .await
        {
            self.error_for(e.to_string(), client_msg_id);
        }
    }

    /// A command the hub refused, answered with its reason.
    fn refused(&self, e: CommandError) {
        self.error(e.to_string());
    }
}

#[cfg(test)]
mod tests {
    //! The read loop over a stream of frames, with no socket: what a client
    //! sends reaches the hub, and what it is answered lands in its queue.

    use futures_util::stream;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;
    use vridge_protocol::UserId;

    use super::*;
    use crate::auth::JwtKeys;
    use crate::config::Config;
    use crate::domain::Role;
    use crate::hub::test_support::{World, next, world};
    use crate::limits::RateLimits;
    use crate::ws::SocketSettings;
    use crate::ws::connection_limit::ConnectionLimiter;

    /// A joined-looking session of `user` on `w`'s project, with its queue.
    fn session(w: &World, user: UserId, role: Role, limits: &[&str]) -> (Session, Inbox) {
        let config = Config::from_args(limits.iter().copied()).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let ctx = Arc::new(SessionContext {
            hub: w.hub.clone(),
            jwt: Arc::new(JwtKeys::hs256(
                b"session-tests-secret-of-32-bytes!!",
                Duration::from_secs(900),
            )),
            limits: Arc::new(RateLimits::from_config(&config.limits)),
            connections: ConnectionLimiter::default(),
            metrics: metrics.clone(),
            settings: SocketSettings {
                max_sockets_per_user: 5,
                outbound_queue: 64,
                max_batch: 64,
                ping_interval: Duration::from_secs(20),
                pong_timeout: Duration::from_secs(60),
                allowed_origins: Vec::new(),
                ws_config: WebSocketConfig::default(),
            },
            shutdown: CancellationToken::new(),
            close_sockets: CancellationToken::new(),
            sessions: TaskTracker::new(),
        });
        let (outbox, inbox, closer) = Outbox::channel(64, Encoding::Json, metrics);
        let author = Author {
            project: w.project,
            user,
            role,
        };
        let session = Session {
            ctx,
            author,
            outbox,
            closer,
        };
        (session, inbox)
    }

    fn text(frame: &str) -> Result<Message, WsError> {
        Ok(Message::Text(frame.into()))
    }

    /// Reads `frames` to their end; true when the loop saw the peer go.
    async fn read(session: &Session, frames: Vec<Result<Message, WsError>>) -> bool {
        session
            .read(&mut stream::iter(frames), &LastSeen::new())
            .await
    }

    fn error_of(msg: ServerMessage) -> (String, Option<String>) {
        match msg {
            ServerMessage::Error {
                message,
                client_msg_id,
            } => (message, client_msg_id),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_frames_are_answered_in_the_products_wording_and_the_socket_stays_open() {
        let w = world().await;
        let (s, mut inbox) = session(&w, w.editor, Role::Editor, &[]);
        let frames = vec![
            text("not json"),
            text(r#"{"type":"nope"}"#),
            text(r#"{"type":"comment_add","comment":{},"client_msg_id":"k1"}"#),
            text(r#"{"type":"reaction_add","reaction":{"comment_id":1,"emoji":""}}"#),
        ];
        assert!(read(&s, frames).await, "the stream's end is the peer going");
        let invalid_reaction = DecodeError::InvalidReaction.to_string();
        let answers = [
            ("Invalid JSON", None),
            ("Unknown message type: nope", None),
            ("Invalid comment data", Some("k1")),
            (invalid_reaction.as_str(), None),
        ];
        for (message, id) in answers {
            let got = error_of(next(&mut inbox).await);
            assert_eq!((got.0.as_str(), got.1.as_deref()), (message, id));
        }
        assert!(!s.closer.is_closed());
    }

    #[tokio::test]
    async fn a_viewer_is_refused_and_an_editors_comment_is_acknowledged() {
        let w = world().await;
        let (viewer, mut viewer_inbox) = session(&w, w.viewer, Role::Viewer, &[]);
        read(
            &viewer,
            vec![text(r#"{"type":"typing_indicator","is_typing":true}"#)],
        )
        .await;
        assert_eq!(
            error_of(next(&mut viewer_inbox).await),
            ("Permission denied".to_owned(), None)
        );
        let (editor, mut editor_inbox) = session(&w, w.editor, Role::Editor, &[]);
        let add = format!(
            r#"{{"type":"comment_add","comment":{{"feedback_id":{},"text":"hi"}},"client_msg_id":"c1"}}"#,
            w.feedback
        );
        read(&editor, vec![text(&add)]).await;
        match next(&mut editor_inbox).await {
            ServerMessage::CommentAck(ack) => {
                assert_eq!(ack.client_msg_id.as_deref(), Some("c1"));
                assert_eq!(ack.comment.text, "hi");
            }
            other => panic!("expected the ack, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn over_its_quota_a_client_is_told_rate_limit_exceeded() {
        let w = world().await;
        let (s, mut inbox) = session(&w, w.editor, Role::Editor, &["--limit-other", "2"]);
        let unknown = || text(r#"{"type":"nope"}"#);
        read(&s, vec![unknown(), unknown(), unknown()]).await;
        let messages: Vec<String> = [
            next(&mut inbox).await,
            next(&mut inbox).await,
            next(&mut inbox).await,
        ]
        .into_iter()
        .map(|m| error_of(m).0)
        .collect();
        assert_eq!(
            messages,
            [
                "Unknown message type: nope",
                "Unknown message type: nope",
                "Rate limit exceeded"
            ]
        );
    }

    #[tokio::test]
    async fn an_oversized_message_closes_with_1009_and_a_close_frame_ends_the_read() {
        let w = world().await;
        let (s, _inbox) = session(&w, w.editor, Role::Editor, &[]);
        let too_big = Err(WsError::Capacity(CapacityError::MessageTooLong {
            size: 1 << 20,
            max_size: 1 << 16,
        }));
        // Frames after the cut are never read.
        assert!(!read(&s, vec![too_big, text("not json")]).await);
        assert_eq!(s.closer.code(), Some(close::MESSAGE_TOO_BIG));

        let (s, mut inbox) = session(&w, w.editor, Role::Editor, &[]);
        assert!(read(&s, vec![Ok(Message::Close(None)), text("not json")]).await);
        assert_eq!(s.closer.code(), Some(crate::outbound::PEER_CLOSED));
        assert!(inbox.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_frame_read_once_the_token_expired_closes_with_4002_unanswered() {
        let w = world().await;
        let (s, mut inbox) = session(&w, w.editor, Role::Editor, &[]);
        let clock = LastSeen::new();
        let now = crate::ws::clock::unix_secs();
        clock.set_token(&AccessGrant {
            user: w.editor,
            expires_at: now.saturating_sub(1),
            valid_until: now.saturating_sub(1),
        });
        let mut frames = stream::iter(vec![text(r#"{"type":"nope"}"#)]);
        s.read(&mut frames, &clock).await;
        assert_eq!(s.closer.code(), Some(close::TOKEN_EXPIRED));
        assert!(inbox.try_recv().is_none());
    }

    #[tokio::test]
    async fn once_shutdown_begins_nothing_more_is_read_and_the_socket_closes_with_1001() {
        let w = world().await;
        let (s, _inbox) = session(&w, w.editor, Role::Editor, &[]);
        s.ctx.shutdown.cancel();
        let ctx = s.ctx.clone();
        let closing = tokio::spawn(async move {
            tokio::task::yield_now().await;
            ctx.close_sockets.cancel();
        });
        let mut never = stream::pending();
        assert!(!s.read(&mut never, &LastSeen::new()).await);
        closing.await.unwrap();
        assert_eq!(s.closer.code(), Some(close::GOING_AWAY));
    }
}
