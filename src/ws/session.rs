//! One feedback socket from handshake to close: authenticate, authorize,
//! join the room, send `initial_state`, then read client messages until the
//! socket closes, is closed (slow consumer, eviction, keepalive), or the
//! server shuts down. The writer task does all writing.

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
    ClientMessage, Comment, CommentId, DecodeError, Encoding, InitialState, NewComment,
    NewReaction, ProjectId, ServerMessage, UserId, close,
};

use super::clock::LastSeen;
use super::connection_limit::ConnectionGuard;
use super::outbox::{Closer, Inbox, Outbox};
use super::writer::{self, WriterSettings};
use crate::app::AppState;
use crate::auth::{AccessGrant, AuthError};
use crate::broker::SocketSlot;
use crate::domain::{Emoji, IdempotencyKey, Role, ValidComment};
use crate::limits::LimitedKind;
use crate::room::{ConnId, RoomHandle};
use crate::store::CommentRequest;
use crate::store::persister::{PersistJob, Reply};

/// Comments sent in `initial_state`.
pub const INITIAL_COMMENTS: u32 = 20;

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
}

/// Opens a socket: admits it (authentication, membership, socket slots),
/// joins its room, encodes `initial_state` and starts the writer, which sends
/// that first. `None` when the socket was refused (and closed).
///
/// Callers box this future and await it apart from [`Live::run`]: a task's
/// future is allocated once, sized for its largest await point, and opening
/// awaits store and broker queries whose futures are many times the size of
/// the read loop. Boxed, that memory is freed once the socket is open instead
/// of being held by every idle socket for its whole life.
pub async fn open<S>(app: AppState, ws: S, handshake: Handshake) -> Option<Live<S>>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let Admitted {
        session,
        room,
        conn,
        rx,
        preamble,
        watermark,
        slots,
        grant,
    } = admit(&app, &mut sink, &mut stream, handshake).await?;
    let last_seen = Arc::new(LastSeen::new());
    last_seen.set_token(&grant);
    let settings = WriterSettings {
        encoding: session.outbox.encoding(),
        max_batch: app.config.max_batch.max(1),
        ping_interval: app.config.ping_interval(),
        pong_timeout: app.config.pong_timeout(),
        watermark,
        metrics: app.metrics.clone(),
    };
    let writer = writer::spawn(
        sink,
        rx,
        session.closer.clone(),
        preamble,
        last_seen.clone(),
        settings,
    );
    Some(Live {
        session,
        stream,
        last_seen,
        writer,
        room,
        conn,
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
    room: RoomHandle,
    conn: ConnId,
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
        self.room.leave(self.conn).await;
        self.session.closer.close(1000);
        let _ = (&mut self.writer).await;
        if !peer_closed {
            drain(&mut self.stream).await;
        }
        self.session.app.metrics.sockets_open.fetch_sub(1, Relaxed);
    }
}

/// A socket that passed admission and joined its room, with its
/// `initial_state` encoded for the writer to send first.
struct Admitted {
    session: Session,
    room: RoomHandle,
    conn: ConnId,
    rx: Inbox,
    preamble: Bytes,
    watermark: Option<CommentId>,
    /// This node's and the cluster's socket slots, held until the socket ends.
    slots: (ConnectionGuard, SocketSlot),
    /// The token the socket opened with: it closes when that expires,
    /// unless the client refreshes it.
    grant: AccessGrant,
}

/// Authenticates and authorizes the socket, takes its slots, joins its room
/// and encodes `initial_state`. A refused socket is closed here (with the
/// reason's code) and `None` returned.
async fn admit<Si, St>(
    app: &AppState,
    sink: &mut Si,
    stream: &mut St,
    handshake: Handshake,
) -> Option<Admitted>
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let grant = match handshake.token.as_deref().ok_or(AuthError::Missing) {
        Ok(token) => app.jwt.verify_access_grant(token),
        Err(e) => Err(e),
    };
    let grant = match grant {
        Ok(grant) => grant,
        Err(AuthError::Expired) => {
            refuse(sink, stream, close::TOKEN_EXPIRED).await;
            return None;
        }
        Err(_) => {
            refuse(sink, stream, close::UNAUTHENTICATED).await;
            return None;
        }
    };
    let user = grant.user;
    tracing::Span::current().record("user_id", user);
    let role = match app.reads.member_role(handshake.project, user).await {
        Ok(Some(role)) => role,
        Ok(None) => {
            refuse(sink, stream, close::PERMISSION_DENIED).await;
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "membership lookup failed");
            refuse(sink, stream, close::INTERNAL_ERROR).await;
            return None;
        }
    };
    let Some(slot) = app
        .connections
        .try_acquire(user, app.config.max_sockets_per_user)
    else {
        refuse(sink, stream, close::TOO_MANY_CONNECTIONS).await;
        return None;
    };
    // The local count is the fast path; the cluster count (Redis) holds the
    // limit across nodes.
    let Some(cluster_slot) = app
        .broker
        .acquire_socket(user, app.config.max_sockets_per_user)
        .await
    else {
        refuse(sink, stream, close::TOO_MANY_CONNECTIONS).await;
        return None;
    };

    app.metrics.sockets_open.fetch_add(1, Relaxed);
    let conn = app.next_conn_id();
    let (outbox, rx, closer) = Outbox::channel(
        app.config.outbound_queue,
        handshake.encoding,
        app.metrics.clone(),
    );
    let (room, joined) = app
        .registry
        .join(handshake.project, conn, user, outbox.clone())
        .await;
    // Events of other nodes must flow before history is read (see
    // `Session::initial_state`).
    app.broker.listen(handshake.project).await;
    let session = Session {
        app: app.clone(),
        project: handshake.project,
        user,
        role,
        outbox,
        closer,
    };
    let online = app
        .broker
        .online_users(handshake.project, joined.online_users)
        .await;
    match session.initial_state(online, handshake.since).await {
        Some((preamble, watermark)) => Some(Admitted {
            session,
            room,
            conn,
            rx,
            preamble,
            watermark,
            slots: (slot, cluster_slot),
            grant,
        }),
        None => {
            room.leave(conn).await;
            refuse(sink, stream, close::INTERNAL_ERROR).await;
            app.metrics.sockets_open.fetch_sub(1, Relaxed);
            None
        }
    }
}

/// Closes a socket that never joined, with `code`.
async fn refuse<S, R>(sink: &mut S, stream: &mut R, code: u16)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    tracing::info!(code, reason = close::reason(code), "refusing socket");
    let frame = CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(close::reason(code)),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    drain(stream).await;
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

/// Fixed cost of one comment on the wire besides its strings (ids, keys,
/// timestamps), a generous estimate for either encoding.
const COMMENT_OVERHEAD_BYTES: usize = 200;

/// How many of `comments` (a prefix, at least one) fit in `max_bytes` on the
/// wire: a resume is capped in bytes as well as in count, so that 1,000
/// long comments never make one frame the socket cannot write.
fn within_bytes(comments: &[Comment], max_bytes: usize) -> usize {
    let mut total = 0;
    for (i, c) in comments.iter().enumerate() {
        let strings = [&c.title, &c.section, &c.security]
            .iter()
            .filter_map(|s| s.as_deref())
            .map(str::len)
            .sum::<usize>();
        // Twice the strings covers ordinary text in JSON; even text that
        // escapes every byte (six for one) stays far below the socket's
        // 16 MiB write buffer at the default cap.
        total += COMMENT_OVERHEAD_BYTES + (c.text.len() + strings) * 2 + c.created.len();
        if total > max_bytes && i > 0 {
            return i;
        }
    }
    comments.len()
}

/// A joined socket's identity and its way back to the client.
struct Session {
    app: AppState,
    project: ProjectId,
    user: UserId,
    role: Role,
    outbox: Outbox,
    closer: Closer,
}

impl Session {
    /// Encodes `initial_state`; returns it and its watermark: the newest
    /// comment id the client holds once it has read it. The writer drops live
    /// comments at or below the watermark — they are in `initial_state`.
    ///
    /// Gapless switch-over: the socket joined its room (and the broker
    /// listens to the project) *before* this reads the store, so every
    /// comment committed after the read is queued live behind this state,
    /// and every comment committed before it is in the read. That holds only
    /// if a project's comment ids become visible in id order — a lower id
    /// committing after a higher one would fall below the watermark and be
    /// dropped. PostgreSQL identity ids are handed out at INSERT and may
    /// commit out of order across nodes, so the store takes a per-project
    /// advisory lock around each comment insert
    /// ([`Store::insert_comments`](crate::store::Store::insert_comments)):
    /// within one project, ids commit in id order on every engine, and the
    /// watermark never hides a comment. (The alternative — keeping a window
    /// of recent ids below the watermark and re-checking the store for them —
    /// would cost a query per live comment; the lock costs one statement per
    /// project per flush and makes every store read a prefix.)
    ///
    /// Live delivery keeps that order across nodes: every comment names its
    /// project's previous one (`prev_id`), and a room passes a comment on
    /// only after the one before it (held back until the predecessor
    /// arrives through the broker, or is read from the store after a short
    /// wait). So a socket receives the project's comments in commit order,
    /// and the newest id a client holds is always a safe `since`.
    ///
    /// The newest comments come through [`BatchedReads`](crate::store::BatchedReads),
    /// whose query starts after this request is queued — after the join — so
    /// batching keeps the switch-over gapless.
    ///
    /// A resume (`since`) returns every comment after `since`, oldest first,
    /// up to `resume_max_comments` and `resume_max_bytes`; when capped,
    /// `resume_complete` is false and the client resumes again from
    /// `last_comment_id`. A `since` ahead of the project's newest comment
    /// (a client that outlived a restored store, or a made-up id) is clamped
    /// to that newest id, and `resumed_from` says so: taken at face value it
    /// would hide every live comment up to it behind the watermark.
    async fn initial_state(
        &self,
        online_users: Vec<UserId>,
        since: Option<CommentId>,
    ) -> Option<(bytes::Bytes, Option<i64>)> {
        let (comments, resume_complete, since) = match since {
            None => (
                self.app.reads.newest_comments(self.project).await,
                None,
                None,
            ),
            Some(since) => match self.resume(since).await {
                Ok((comments, complete, since)) => (Ok(comments), Some(complete), Some(since)),
                Err(e) => (Err(e), None, Some(since)),
            },
        };
        let comments = match comments {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "loading initial comments failed");
                return None;
            }
        };
        let last_comment_id = comments.last().map(|c| c.id).or(since);
        let msg = ServerMessage::InitialState(InitialState {
            project_id: self.project,
            comments,
            online_users,
            last_comment_id,
            resumed_from: since,
            resume_complete,
        });
        self.app.metrics.messages_out("initial_state", 1);
        encode(self.outbox.encoding(), &msg)
            .ok()
            .map(|b| (b, last_comment_id))
    }

    /// The comments after `since` for a resume, whether that is all of
    /// them, and the `since` actually used (clamped to the newest comment).
    async fn resume(
        &self,
        since: CommentId,
    ) -> Result<(Vec<Comment>, bool, CommentId), crate::store::StoreError> {
        let store = &self.app.store;
        let max = self.app.config.resume_max_comments.max(1);
        let mut since = since;
        let mut comments = store.comments_since(self.project, since, max + 1).await?;
        if comments.is_empty() {
            let newest = store.newest_comment_id(self.project).await?.unwrap_or(0);
            if newest < since {
                tracing::info!(since, newest, "resume ahead of the store; clamped");
                since = newest;
                // Read again from the clamped id: whatever committed in
                // between is then in this state, not below its watermark.
                comments = store.comments_since(self.project, since, max + 1).await?;
            }
        }
        let mut complete = comments.len() <= max as usize;
        comments.truncate(max as usize);
        let within = within_bytes(&comments, self.app.config.resume_max_bytes);
        if within < comments.len() {
            comments.truncate(within);
            complete = false;
        }
        Ok((comments, complete, since))
    }

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
                () = self.app.shutdown.cancelled() => {
                    // Take nothing more; close once what was taken is stored.
                    tokio::select! {
                        () = self.closer.closed() => {}
                        () = self.app.close_sockets.cancelled() => self.closer.close(close::GOING_AWAY),
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
                    let metrics = &self.app.metrics;
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
        self.app.metrics.messages_out("error", 1);
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
        let Some(_admitted) = self.app.admit() else {
            return;
        };
        let msg = decode_client(encoding, frame);
        let kind = match &msg {
            Ok(m) => m.kind(),
            Err(DecodeError::UnknownType(_)) => "unknown",
            Err(_) => "invalid",
        };
        self.app.metrics.message_in(kind);
        if !self.app.limits.allow(self.user, LimitedKind::of(kind)) {
            self.app.metrics.rate_limited.fetch_add(1, Relaxed);
            let id = match &msg {
                Ok(ClientMessage::CommentAdd { client_msg_id, .. }) => client_msg_id.clone(),
                _ => None,
            };
            return self.error_for("Rate limit exceeded", id);
        }
        match msg {
            // A comment whose body did not decode still names its
            // `client_msg_id` when it has a readable one.
            Err(e @ DecodeError::InvalidComment) => {
                self.error_for(e.to_string(), client_msg_id_of(encoding, frame))
            }
            Err(e) => self.error(e.to_string()),
            Ok(ClientMessage::CommentAdd {
                comment,
                client_msg_id,
            }) => self.comment_add(comment, client_msg_id).await,
            Ok(ClientMessage::TypingIndicator { is_typing }) => self.typing(is_typing).await,
            Ok(ClientMessage::ReactionAdd { reaction }) => self.reaction_add(reaction).await,
            Ok(ClientMessage::RefreshToken { token }) => self.refresh_token(&token, clock),
        }
    }

    /// A fresh access token for this socket: the same user's, valid. The
    /// socket then lives until the new token expires; a refused token
    /// leaves the old deadline in place.
    fn refresh_token(&self, token: &str, clock: &LastSeen) {
        match self.app.jwt.verify_access_grant(token) {
            Ok(grant) if grant.user == self.user => {
                clock.set_token(&grant);
                self.app.metrics.messages_out("token_refreshed", 1);
                self.outbox.offer_message(&ServerMessage::TokenRefreshed {
                    expires_at: grant.expires_at as i64,
                });
            }
            Ok(_) | Err(_) => self.error(DecodeError::InvalidToken.to_string()),
        }
    }

    async fn comment_add(&self, comment: NewComment, client_msg_id: Option<String>) {
        if !self.role.can_create() {
            return self.error_for("Permission denied", client_msg_id);
        }
        let (Ok(comment), Ok(key)) = (
            ValidComment::parse(comment),
            IdempotencyKey::from_client(client_msg_id.as_deref()),
        ) else {
            return self.error_for(DecodeError::InvalidComment.to_string(), client_msg_id);
        };
        match self.app.feedback_project(comment.inner().feedback_id).await {
            Ok(Some(p)) if p == self.project => {}
            Ok(_) => {
                return self.error_for(DecodeError::InvalidComment.to_string(), client_msg_id);
            }
            Err(e) => {
                tracing::error!(error = %e, "feedback lookup failed");
                return self.error_for(crate::store::persister::STORE_FAILED, client_msg_id);
            }
        }
        let job = PersistJob {
            request: CommentRequest {
                project_id: self.project,
                user_id: self.user,
                comment,
                key,
            },
            reply: Reply::Socket {
                outbox: self.outbox.clone(),
                client_msg_id: client_msg_id.clone(),
            },
        };
        if self.app.persister.submit(job).await.is_err() {
            self.error_for(crate::store::persister::STORE_FAILED, client_msg_id);
        }
    }

    async fn typing(&self, is_typing: bool) {
        if !self.role.can_create() {
            return self.error("Permission denied");
        }
        let msg = ServerMessage::Typing {
            user_id: self.user,
            is_typing,
        };
        self.app.broker.publish(self.project, msg).await;
    }

    async fn reaction_add(&self, reaction: NewReaction) {
        if !self.role.can_create() {
            return self.error("Permission denied");
        }
        let Ok(emoji) = Emoji::parse(&reaction.emoji) else {
            return self.error(DecodeError::InvalidReaction.to_string());
        };
        match self.app.store.comment_project(reaction.comment_id).await {
            Ok(Some(p)) if p == self.project => {}
            Ok(_) => return self.error(DecodeError::InvalidReaction.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "comment lookup failed");
                return self.error("Reaction could not be stored, please retry");
            }
        }
        match self
            .app
            .store
            .add_reaction(reaction.comment_id, self.user, &emoji)
            .await
        {
            Ok(Some(stored)) => {
                let msg = ServerMessage::Reaction {
                    reaction: stored,
                    user_id: self.user,
                };
                self.app.broker.publish(self.project, msg).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "storing a reaction failed");
                self.error("Reaction could not be stored, please retry");
            }
        }
    }
}
