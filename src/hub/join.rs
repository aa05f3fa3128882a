//! Joining a project's room and leaving it: the member is added to the
//! room, the node listens to the project across nodes, and only then is
//! history read — the order that makes the switch-over from history to live
//! events gapless. The member holds an opaque [`Membership`] until it leaves
//! through [`Hub::leave`].

use vridge_protocol::{Comment, CommentId, InitialState, ProjectId, Seq, ServerMessage, UserId};

use super::Hub;
use crate::outbound::Outbox;
use crate::room::{ConnId, RoomHandle};
use crate::store::StoreError;

/// Comments sent in `initial_state`.
pub const INITIAL_COMMENTS: u32 = 20;

/// Fixed cost of one comment on the wire besides its strings (ids, keys,
/// timestamps), a generous estimate for either encoding.
const COMMENT_OVERHEAD_BYTES: usize = 200;

/// How much one resume may carry.
#[derive(Debug, Clone, Copy)]
pub struct ResumeLimits {
    pub max_comments: u32,
    pub max_bytes: usize,
}

/// A socket asking to join a project's room.
#[derive(Debug)]
pub struct JoinRequest {
    pub project: ProjectId,
    pub user: UserId,
    /// Where the room sends this member's events.
    pub outbox: Outbox,
    /// `?since=`: the newest comment id the client holds (a resume).
    pub since: Option<CommentId>,
    /// `?since_seq=`: the newest event the client holds (a resume by event
    /// number; wins over `since`).
    pub since_seq: Option<Seq>,
}

/// One socket's place in its project's room, from [`Hub::join`] until
/// [`Hub::leave`]. Opaque: callers hold it and hand it back, and never deal
/// with rooms or connection ids themselves. Dropping it does not leave the
/// room; only [`Hub::leave`] does.
#[derive(Debug)]
pub struct Membership {
    room: RoomHandle,
    /// Identifies the socket in its room, unique on this node for its life.
    conn: ConnId,
}

/// A member of a room, with what it must be sent first.
#[derive(Debug)]
pub struct Joined {
    /// What the member hands back to [`Hub::leave`] when its socket ends.
    pub membership: Membership,
    pub state: InitialState,
    /// The newest comment id the client holds once it has read `state`:
    /// live comments up to it are already in the state.
    pub watermark: Option<CommentId>,
    /// For a resume by event number, the newest event it replayed: live
    /// events up to it are already in the state and are not sent again.
    pub seq_watermark: Option<Seq>,
}

/// Why a join did not complete; the member was taken out of the room again.
#[derive(Debug, thiserror::Error)]
#[error("loading the initial state failed: {0}")]
pub struct JoinError(#[from] StoreError);

impl Hub {
    /// Joins the project's room and reads `initial_state`.
    ///
    /// Gapless switch-over: the member joined its room (and the broker
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
    /// up to the [`ResumeLimits`]; when capped, `resume_complete` is false
    /// and the client resumes again from `last_comment_id`. A `since` ahead
    /// of the project's newest comment (a client that outlived a restored
    /// store, or a made-up id) is clamped to that newest id, and
    /// `resumed_from` says so: taken at face value it would hide every live
    /// comment up to it behind the watermark.
    pub async fn join(&self, request: JoinRequest) -> Result<Joined, JoinError> {
        let JoinRequest {
            project,
            user,
            outbox,
            since,
            since_seq,
        } = request;
        let inner = &self.inner;
        let conn = self.next_conn_id();
        let (room, joined) = inner.registry.join(project, conn, user, outbox).await;
        // Events of other nodes must flow before history is read.
        inner.broker.listen(project).await;
        let online_users = inner
            .presence
            .online_users(project, joined.online_users)
            .await;
        let read = match (since_seq, since) {
            (Some(since_seq), _) => self.replay(project, since_seq).await,
            (None, None) => inner.reads.newest_comments(project).await.map(|newest| {
                let last_comment_id = newest.comments.last().map(|c| c.id);
                Read {
                    comments: newest.comments,
                    last_comment_id,
                    seq: Some(newest.last_seq),
                    ..Read::default()
                }
            }),
            (None, Some(since)) => self.resume(project, since).await,
        };
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                room.leave(conn).await;
                return Err(e.into());
            }
        };
        inner.metrics.messages_out("initial_state", 1);
        // Only a resume by event number holds the whole log up to its
        // `last_seq`, so only then are live events up to it held back. A
        // plain join or a resume by comment id reflects its comments (and
        // their counts) up to `last_seq`, not every entity of the project:
        // live events in the window between joining and reading still go
        // out (as they always did), and a client that tracks the log skips
        // those numbered up to `last_seq` itself.
        let seq_watermark = since_seq.and(read.seq);
        Ok(Joined {
            membership: Membership { room, conn },
            watermark: read.last_comment_id,
            seq_watermark,
            state: InitialState {
                project_id: project,
                comments: read.comments,
                online_users,
                last_comment_id: read.last_comment_id,
                resumed_from: read.resumed_from,
                resume_complete: read.complete,
                last_seq: read.seq,
                resumed_from_seq: read.resumed_from_seq,
                events: read.events,
            },
        })
    }

    /// Takes the member's socket out of its room. A room that already
    /// dropped the socket (slow consumer, eviction) may have retired: that
    /// is fine.
    pub async fn leave(&self, membership: &Membership) {
        membership.room.leave(membership.conn).await;
    }

    /// The events after `since_seq` for a resume by event number, up to the
    /// [`ResumeLimits`]. A `since_seq` ahead of the project's newest event
    /// is clamped to it (as a comment id is, see [`Self::join`]).
    async fn replay(&self, project: ProjectId, since_seq: Seq) -> Result<Read, StoreError> {
        let store = &self.inner.store;
        let limits = self.inner.resume;
        let mut since = since_seq.max(0);
        let mut page = store
            .events_since(project, since, limits.max_comments)
            .await?;
        if page.events.is_empty() {
            let newest = store.last_seq(project).await?.unwrap_or(0);
            if newest < since {
                tracing::info!(since, newest, "resume by seq ahead of the log; clamped");
                since = newest;
                page = store
                    .events_since(project, since, limits.max_comments)
                    .await?;
            }
        }
        let mut events = page.events;
        let mut complete = !page.more;
        let within = within_bytes_of(&events, limits.max_bytes, |msg| match msg {
            ServerMessage::Comment { comment, .. }
            | ServerMessage::CommentEdited { comment, .. }
            | ServerMessage::CommentDeleted { comment, .. }
            | ServerMessage::CommentResolved { comment, .. }
            | ServerMessage::CommentReopened { comment, .. } => comment_bytes(comment),
            _ => COMMENT_OVERHEAD_BYTES,
        });
        if within < events.len() {
            events.truncate(within);
            complete = false;
        }
        let last_seq = events.last().and_then(ServerMessage::seq).unwrap_or(since);
        let last_comment_id = events
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Comment { comment, .. } => Some(comment.id),
                _ => None,
            })
            .max();
        Ok(Read {
            comments: Vec::new(),
            // Comments are chained by event here; the comment watermark
            // only holds back comments this replay carried.
            last_comment_id,
            seq: Some(last_seq),
            resumed_from: None,
            resumed_from_seq: Some(since),
            complete: Some(complete),
            events,
        })
    }

    /// The comments after `since` for a resume, with their counts and the
    /// log position they reflect (one snapshot), whether that is all of
    /// them, and the `since` actually used (clamped to the newest comment).
    async fn resume(&self, project: ProjectId, since: CommentId) -> Result<Read, StoreError> {
        let store = &self.inner.store;
        let limits = self.inner.resume;
        let max = limits.max_comments.max(1);
        let mut since = since;
        let (mut comments, mut last_seq) = store
            .comments_since_with_seq(project, since, max + 1)
            .await?;
        if comments.is_empty() {
            let newest = store.newest_comment_id(project).await?.unwrap_or(0);
            if newest < since {
                tracing::info!(since, newest, "resume ahead of the store; clamped");
                since = newest;
                // Read again from the clamped id: whatever committed in
                // between is then in this state, not below its watermark.
                (comments, last_seq) = store
                    .comments_since_with_seq(project, since, max + 1)
                    .await?;
            }
        }
        let mut complete = comments.len() <= max as usize;
        comments.truncate(max as usize);
        let within = within_bytes_of(&comments, limits.max_bytes, comment_bytes);
        if within < comments.len() {
            comments.truncate(within);
            complete = false;
        }
        // Capped or not, the comments and counts sent are as of the
        // snapshot's `last_seq`; a client paging through history resumes by
        // event from the lowest `last_seq` of its pages.
        let seq = Some(last_seq);
        Ok(Read {
            last_comment_id: comments.last().map(|c| c.id).or(Some(since)),
            comments,
            seq,
            resumed_from: Some(since),
            resumed_from_seq: None,
            complete: Some(complete),
            events: Vec::new(),
        })
    }
}

/// What a join read for its `initial_state`.
#[derive(Debug, Default)]
struct Read {
    comments: Vec<Comment>,
    last_comment_id: Option<CommentId>,
    /// The log position the state reflects, when known.
    seq: Option<Seq>,
    resumed_from: Option<CommentId>,
    resumed_from_seq: Option<Seq>,
    complete: Option<bool>,
    events: Vec<ServerMessage>,
}

/// How many of `items` (a prefix, at least one) fit in `max_bytes` on the
/// wire, each costing `bytes`: a resume is capped in bytes as well as in
/// count, so that 1,000 long comments never make one frame the socket
/// cannot write.
fn within_bytes_of<T>(items: &[T], max_bytes: usize, bytes: impl Fn(&T) -> usize) -> usize {
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        total += bytes(item);
        if total > max_bytes && i > 0 {
            return i;
        }
    }
    items.len()
}

/// A generous estimate of one comment's size on the wire. Twice the strings
/// covers ordinary text in JSON; even text that escapes every byte (six for
/// one) stays far below the socket's 16 MiB write buffer at the default cap.
fn comment_bytes(c: &Comment) -> usize {
    let strings = [&c.title, &c.section, &c.security]
        .iter()
        .filter_map(|s| s.as_deref())
        .map(str::len)
        .sum::<usize>();
    COMMENT_OVERHEAD_BYTES + (c.text.len() + strings) * 2 + c.created.len()
}
