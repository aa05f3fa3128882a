//! One feedback socket's admission and its client frames: authenticate,
//! authorize, take the socket slots, join through the hub and encode
//! `initial_state` ([`open`]); then decode each client frame and hand it to
//! the hub, whose refusals are answered here ([`Session`]). The socket's one
//! task, which reads, writes and keeps the socket alive, is [`super::live`];
//! the commands' checks and effects are the hub's.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
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
/// joins its room, encodes `initial_state` and presets it as the socket's
/// first frame (around the codec: see [`super::preamble`]), for the first
/// flush to send. `None` when the socket was refused (and closed).
///
/// Callers box this future and await it apart from the socket's life
/// ([`super::live::Live::run`]): a task's future is allocated once, sized
/// for its largest await point, and opening awaits store and broker queries
/// whose futures are many times the size of the socket's loop. Boxed, that
/// memory is freed once the socket is open instead of being held by every
/// idle socket for its whole life.
pub async fn open<S>(ctx: Arc<SessionContext>, mut ws: S, handshake: Handshake) -> Option<Opened<S>>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Preamble + Unpin,
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
    rx.set_watermark(watermark);
    rx.set_seq_watermark(seq_watermark);
    let clock = Arc::new(LastSeen::new());
    clock.set_token(&grant);
    Some(Opened {
        ws,
        session: Arc::new(session),
        rx,
        clock,
        membership,
        slots,
    })
}

/// An open socket, joined, its `initial_state` preset: what its task
/// ([`super::live::Live`]) runs on.
pub struct Opened<S> {
    pub ws: S,
    pub session: Arc<Session>,
    /// The socket's queue, for its writer.
    pub rx: Inbox,
    pub clock: Arc<LastSeen>,
    /// The socket's place in its room, handed back to the hub on close.
    pub membership: Membership,
    /// This node's and the cluster's socket slots, held until the socket
    /// ends (given back on drop).
    pub slots: (ConnectionGuard, SocketSlot),
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
pub(super) async fn drain<R>(stream: &mut R)
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

/// A joined socket's identity and its way back to the client. Shared (in an
/// `Arc`) by the socket's task and the handling of the frame it last read,
/// which runs beside the socket's writes.
pub struct Session {
    ctx: Arc<SessionContext>,
    /// The member behind the socket, as the hub's commands take it.
    author: Author,
    outbox: Outbox,
    closer: Closer,
}

/// What one read from the socket means ([`Session::on_read`]).
#[derive(Debug)]
pub(super) enum Read {
    /// Nothing to do (a pong, a ping tungstenite answers itself): read on.
    Next,
    /// A client message, JSON (text) or MessagePack (binary), to handle.
    Frame(Encoding, Bytes),
    /// The peer closed the socket or went away: nothing left to read.
    PeerGone,
    /// The peer broke the protocol or a limit; the socket closes with the
    /// code its closer now holds.
    Closing,
}

impl Session {
    /// The socket's close signal and code.
    pub(super) fn closer(&self) -> &Closer {
        &self.closer
    }

    pub(super) fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// The encoding the socket negotiated.
    pub(super) fn encoding(&self) -> Encoding {
        self.outbox.encoding()
    }

    /// What one read from the socket means: a client frame to handle, the
    /// peer's end, or a violation that closes the socket (its closer then
    /// holds the code). Pongs are counted here.
    pub(super) fn on_read(&self, next: Option<Result<Message, WsError>>, clock: &LastSeen) -> Read {
        match next {
            None => Read::PeerGone,
            Some(Err(WsError::Capacity(_))) => {
                self.closer.close(close::MESSAGE_TOO_BIG);
                Read::Closing
            }
            // RFC 6455 §7.4.1: 1007 for a text message that is not
            // UTF-8, 1002 for any other violation of the framing.
            Some(Err(WsError::Utf8(e))) => {
                tracing::info!(error = %e, "invalid UTF-8 from the peer");
                self.closer.close(close::INVALID_PAYLOAD);
                Read::Closing
            }
            Some(Err(WsError::Protocol(e))) => {
                tracing::info!(error = %e, "WebSocket protocol violation");
                self.closer.close(close::PROTOCOL_ERROR);
                Read::Closing
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "socket read failed");
                Read::PeerGone
            }
            Some(Ok(Message::Text(text))) => Read::Frame(Encoding::Json, text.into()),
            Some(Ok(Message::Binary(bin))) => Read::Frame(Encoding::MsgPack, bin),
            Some(Ok(Message::Close(_))) => {
                self.closer.peer_closed();
                Read::PeerGone
            }
            Some(Ok(Message::Pong(_))) => {
                let metrics = &self.ctx.metrics;
                metrics.pongs_received.fetch_add(1, Relaxed);
                if let Some(rtt) = clock.pong_received() {
                    metrics.pong_seconds.observe(rtt.as_secs_f64());
                }
                Read::Next
            }
            Some(Ok(_)) => Read::Next,
        }
    }

    /// Handles one client frame ([`Read::Frame`]). Owns what it uses: it
    /// runs beside the socket's writes, and may await the store (a reply's
    /// thread, say) or a full persister queue.
    pub(super) async fn handle(
        self: Arc<Self>,
        encoding: Encoding,
        frame: Bytes,
        clock: Arc<LastSeen>,
    ) {
        self.on_frame(encoding, &frame, &clock).await;
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
pub(super) mod tests {
    //! A client's frames, read and handled in order, with no socket: what a client
    //! sends reaches the hub, and what it is answered lands in its queue.

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
    pub(in crate::ws) fn session(
        w: &World,
        user: UserId,
        role: Role,
        limits: &[&str],
    ) -> (Session, Inbox) {
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

    /// `user`'s socket on `ws`, opened as [`open`] opens one after its
    /// admission: joined to `w`'s project, holding its slots.
    pub(in crate::ws) async fn opened<S>(w: &World, ws: S, user: UserId, role: Role) -> Opened<S> {
        let (session, rx) = session(w, user, role, &[]);
        let ctx = session.ctx.clone();
        let joined = ctx
            .hub
            .join(JoinRequest {
                project: w.project,
                user,
                outbox: session.outbox.clone(),
                since: None,
                since_seq: None,
            })
            .await
            .unwrap();
        let slot = ctx.connections.try_acquire(user, 5).unwrap();
        let cluster_slot = ctx.hub.acquire_socket(user, 5).await.unwrap();
        ctx.metrics.sockets_open.fetch_add(1, Relaxed);
        Opened {
            ws,
            session: Arc::new(session),
            rx,
            clock: Arc::new(LastSeen::new()),
            membership: joined.membership,
            slots: (slot, cluster_slot),
        }
    }

    fn text(frame: &str) -> Result<Message, WsError> {
        Ok(Message::Text(frame.into()))
    }

    /// Reads `frames` in order as the socket's task does, each frame
    /// handled before the next is read, until the peer goes (true), the
    /// socket closes (false) or the frames run out (the peer's end: true).
    async fn read_with(
        session: &Session,
        frames: Vec<Result<Message, WsError>>,
        clock: &LastSeen,
    ) -> bool {
        let mut frames = frames.into_iter();
        loop {
            match session.on_read(frames.next(), clock) {
                Read::Next => {}
                Read::Frame(encoding, frame) => session.on_frame(encoding, &frame, clock).await,
                Read::PeerGone => return true,
                Read::Closing => return false,
            }
        }
    }

    async fn read(session: &Session, frames: Vec<Result<Message, WsError>>) -> bool {
        read_with(session, frames, &LastSeen::new()).await
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
        read_with(&s, vec![text(r#"{"type":"nope"}"#)], &clock).await;
        assert_eq!(s.closer.code(), Some(close::TOKEN_EXPIRED));
        assert!(inbox.try_recv().is_none());
    }
}
