//! The room task: owns the members of one project on this node and fans
//! events out to them, encoding each event once per wire encoding in use.
//! Durable events go out in the project's commit order ([`CommentChain`]); when
//! one is missing for longer than [`GAP_WAIT`], the room reads it from the
//! store in a task of its own, never blocking on the store itself.
//!
//! Presence leaves are held for the configured grace (see [`super`]): a
//! browser reconnecting (a reload, a network blip, a slow consumer dropped)
//! would otherwise send every member a leave and a join each time. A
//! typist's stop is not held for that grace: their last socket closing
//! stops their indicator at once.
//!
//! Typing events are the busiest a room sends and the least urgent, so a
//! busy room sends them in windows (`typing_batch`): a typing event in a
//! quiet room goes out at once and opens a window; those that come while it
//! is open are held and go out together when it closes, which opens the
//! next. A member's writer drains them at once, into one frame up to its
//! batch cap, so a busy room costs each member about one wake-up and one
//! write per window, not one per event, and a quiet one adds no delay. Windows open with each
//! room's own typing, so rooms flush at scattered instants instead of in
//! one burst; their ends are rounded up to a tenth of the window on the
//! process-wide [`crate::grid`], so rooms closing within the same tenth
//! share one wake-up. Any other event the room sends flushes the held ones
//! first, so members see every event in the order the room took it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use vridge_protocol::codec::encode;
use vridge_protocol::{CommentId, Encoding, ProjectId, Seq, ServerMessage, UserId};

use super::chain::{CommentChain, Offered};
use super::rooms::Rooms;
use super::{ConnId, Joined, RoomCmd};
use crate::broker::Announce;
use crate::outbound::{OutFrame, Outbox};
use crate::store::EventPage;

/// How long a room holds events back waiting for a missing predecessor
/// before it reads the store. Another node's event normally arrives within
/// one Redis publish latency (about a millisecond); this only bounds how
/// late an event the broker lost reaches members.
pub(super) const GAP_WAIT: Duration = Duration::from_millis(300);

/// Typing events a window holds at most: a burst beyond it goes out at
/// once, so one flush never fills a member's queue (`--outbound-queue`,
/// 512 by default) and closes it as a slow consumer.
const HELD_TYPING_CAP: usize = 32;

/// Comments one store read fetches to close a gap.
const FILL_LIMIT: u32 = 1024;

/// Why a socket left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// It closed (or was dropped): the user may well come back.
    Closed,
    /// Its user was removed from the project: announce the leave at once.
    Evicted,
}

struct Member {
    user: UserId,
    outbox: Outbox,
}

/// State of one room. Lives as long as the room task; only the task touches it.
pub(super) struct Room {
    pub(super) project: ProjectId,
    pub(super) instance: u64,
    /// The node's rooms: settings, metrics, and the map this room leaves.
    pub(super) rooms: Arc<Rooms>,
    /// Sockets in the room, by connection.
    members: HashMap<ConnId, Member>,
    /// Sockets per user, for presence; a user is online while their count is > 0.
    sockets_per_user: BTreeMap<UserId, usize>,
    /// Users whose last socket closed, with when their `presence_leave` goes
    /// out unless a socket of theirs joins first. Until then they count as
    /// online (`Joined::online_users`, and in the cluster's counts).
    leaving: HashMap<UserId, Instant>,
    /// The same deadlines in the order they fall due (every leave is held
    /// for the same grace, so that is the order they were added), so the
    /// room finds the next one without a scan. Entries whose user came back
    /// (no longer in `leaving` with that deadline) are skipped when due.
    leave_queue: VecDeque<(Instant, UserId)>,
    /// When each typing user's indicator lapses unless refreshed.
    typing: HashMap<UserId, Instant>,
    /// Typing events waiting for [`Self::typing_window_end`], oldest first.
    held_typing: Vec<Arc<ServerMessage>>,
    /// The end of the open typing window, when the held typing events go
    /// out; `None` while no window is open (a typing event goes out at once).
    typing_window_end: Option<Instant>,
    /// The order durable events go out in, and those held back.
    chain: CommentChain,
    /// When held comments stop waiting and the store is read; `None` while
    /// nothing is held or a read is under way.
    gap_deadline: Option<Instant>,
    /// A store read is under way; its answer comes back as [`RoomCmd::Fill`].
    filling: bool,
    /// The room's own queue, for that answer; weak, so it never keeps the
    /// room alive.
    own_queue: mpsc::WeakSender<RoomCmd>,
}

impl Room {
    pub(super) fn new(
        project: ProjectId,
        instance: u64,
        rooms: Arc<Rooms>,
        own_queue: mpsc::WeakSender<RoomCmd>,
    ) -> Self {
        Self {
            project,
            instance,
            rooms,
            members: HashMap::new(),
            sockets_per_user: BTreeMap::new(),
            leaving: HashMap::new(),
            leave_queue: VecDeque::new(),
            typing: HashMap::new(),
            held_typing: Vec::new(),
            typing_window_end: None,
            chain: CommentChain::unstarted(),
            gap_deadline: None,
            filling: false,
            own_queue,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        let metrics = self.rooms.metrics.clone();
        metrics.rooms_active.fetch_add(1, Relaxed);
        self.start_chain().await;
        loop {
            let next_lapse = self.typing.values().min().copied();
            let gap_deadline = self.gap_deadline;
            let next_leave = self.leave_queue.front().map(|(at, _)| *at);
            let typing_window_end = self.typing_window_end;
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                () = sleep_until(next_lapse.unwrap_or_else(Instant::now)), if next_lapse.is_some() => {
                    self.expire_typing();
                }
                () = sleep_until(gap_deadline.unwrap_or_else(Instant::now)), if gap_deadline.is_some() => {
                    self.gap_deadline = None;
                    self.start_fill();
                }
                () = sleep_until(next_leave.unwrap_or_else(Instant::now)), if next_leave.is_some() => {
                    self.announce_leaves(Some(Instant::now()));
                }
                () = sleep_until(typing_window_end.unwrap_or_else(Instant::now)), if typing_window_end.is_some() => {
                    self.close_typing_window();
                }
            }
            // A room of held leaves only stays until they are announced.
            if self.members.is_empty() && self.leaving.is_empty() {
                break;
            }
        }
        // Only reached with leaves held when the queue closed: never leave
        // a user online.
        self.announce_leaves(None);
        self.retire(rx).await;
        metrics.rooms_active.fetch_sub(1, Relaxed);
    }

    /// Continues the event chain from the project's newest event, read
    /// before the room serves its first join: every member reads its state
    /// after joining, so it holds everything up to there, and every later
    /// event reaches this room (locally, through the broker, or from the
    /// store when the broker missed it). If the read fails, the first event
    /// the room sees starts the chain.
    async fn start_chain(&mut self) {
        match self.rooms.settings.store.last_seq(self.project).await {
            Ok(newest) => {
                self.chain = CommentChain::after(newest.filter(|seq| *seq > 0));
            }
            Err(e) => tracing::warn!(error = %e, "reading the newest event number failed"),
        }
    }

    /// Offers a durable event to the chain and sends out whatever may go now.
    fn offer_event(&mut self, msg: Arc<ServerMessage>) {
        match self.chain.offer(msg) {
            Offered::Deliver(ready) => {
                self.send_all(ready);
                if !self.chain.is_waiting() {
                    self.gap_deadline = None;
                }
            }
            Offered::Stale => {}
            Offered::Held => {
                if self.gap_deadline.is_none() && !self.filling {
                    self.gap_deadline = Some(Instant::now() + GAP_WAIT);
                }
            }
            Offered::Full => {
                tracing::warn!(
                    project = self.project,
                    "too many events held back; members resync"
                );
                self.give_up_waiting();
            }
        }
    }

    /// Reads the events after the last one delivered, in a task, and
    /// hands them back to the room as [`RoomCmd::Fill`].
    fn start_fill(&mut self) {
        self.filling = true;
        let store = self.rooms.settings.store.clone();
        let project = self.project;
        let since = self.chain.last().unwrap_or(0);
        let own_queue = self.own_queue.clone();
        tokio::spawn(async move {
            let read = match store.events_since(project, since, FILL_LIMIT).await {
                Ok(page) => Some(page),
                Err(e) => {
                    tracing::warn!(error = %e, project, "reading missing events failed");
                    None
                }
            };
            if let Some(queue) = own_queue.upgrade() {
                let _ = queue.send(RoomCmd::Fill(read)).await;
            }
        });
    }

    /// The store's answer to a gap: its events go out in order, then the
    /// held ones they freed. Held events are committed (they were
    /// published after their commit), so a complete read leaves none that
    /// still miss a predecessor unless it was deleted since; those go out
    /// too. A read cut at [`FILL_LIMIT`] reads on.
    fn fill(&mut self, read: Option<EventPage>) {
        self.filling = false;
        let Some(page) = read else {
            self.give_up_waiting();
            return;
        };
        let complete = !page.more;
        let from_store = page.events.into_iter().map(Arc::new).collect();
        let ready = self.chain.fill(from_store);
        self.send_all(ready);
        if !self.chain.is_waiting() {
            return;
        }
        if complete {
            let rest = self.chain.release_held();
            self.send_all(rest);
        } else {
            self.start_fill();
        }
    }

    /// A gap the room cannot close: drops the held comments and tells the
    /// members to resync. They resume from the newest comment they hold,
    /// which precedes the gap, so the resume brings the missing comment and
    /// those held, in order. (Sending the held ones first would move the
    /// clients' resume point past the gap.)
    fn give_up_waiting(&mut self) {
        self.chain.skip_held();
        self.gap_deadline = None;
        self.rooms.metrics.broker_lost.fetch_add(1, Relaxed);
        self.broadcast(
            &ServerMessage::Resync {
                reason: "events were delayed between servers".into(),
            },
            None,
        );
    }

    fn send_all(&mut self, messages: Vec<Arc<ServerMessage>>) {
        for msg in messages {
            self.broadcast(&msg, None);
        }
    }

    /// Leaves the map first, so no new join can find this room, then
    /// closes the queue; a join that slipped in before the close has its reply
    /// dropped, and the joiner retries on a fresh room.
    async fn retire(&self, mut rx: mpsc::Receiver<RoomCmd>) {
        self.rooms.forget(self.project, self.instance);
        self.rooms.settings.presence.room_retired(self.project);
        rx.close();
        while let Some(cmd) = rx.recv().await {
            drop(cmd);
        }
    }

    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join {
                conn,
                user,
                outbox,
                reply,
            } => {
                let mut online_users: Vec<UserId> = self
                    .sockets_per_user
                    .keys()
                    .chain(self.leaving.keys())
                    .copied()
                    .chain(std::iter::once(user))
                    .collect();
                online_users.sort_unstable();
                online_users.dedup();
                if reply.send(Joined { online_users }).is_err() {
                    // The joiner gave up (its socket closed) before it
                    // joined: nothing changed.
                    return;
                }
                // Back within the grace: nobody was told they left, so
                // nobody is told they joined.
                let returning = self.leaving.remove(&user).is_some();
                if self.add(conn, user, outbox) && !returning {
                    self.announce_online(user);
                }
                if !self.typing.is_empty() {
                    self.replay_typing(conn);
                }
            }
            RoomCmd::Leave { conn } => self.remove(conn, Departure::Closed),
            RoomCmd::Publish(msg) => {
                let except = match &*msg {
                    ServerMessage::Typing { user_id, is_typing } => {
                        if *is_typing {
                            self.typing.insert(
                                *user_id,
                                Instant::now() + self.rooms.settings.typing_timeout,
                            );
                        } else {
                            self.typing.remove(user_id);
                        }
                        if self.typing_window_end.is_some() {
                            self.held_typing.push(msg);
                            if self.held_typing.len() >= HELD_TYPING_CAP {
                                let dropped = self.flush_typing();
                                self.remove_all(dropped);
                            }
                            return;
                        }
                        self.open_typing_window();
                        Some(*user_id)
                    }
                    // Nobody is told they joined themselves.
                    ServerMessage::PresenceJoin { user_id } => Some(*user_id),
                    durable if durable.event().is_some() => {
                        self.offer_event(msg);
                        return;
                    }
                    _ => None,
                };
                self.broadcast(&msg, except);
            }
            RoomCmd::Evict { user, code } => {
                let conns: Vec<ConnId> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.user == user)
                    .map(|(c, _)| *c)
                    .collect();
                for conn in conns {
                    if let Some(m) = self.members.get(&conn) {
                        m.outbox.close(code);
                    }
                    self.remove(conn, Departure::Evicted);
                }
                // Evicted during their grace: they cannot come back.
                if self.leaving.remove(&user).is_some() {
                    let dropped = self.announce_offline(user);
                    self.remove_all(dropped);
                }
            }
            RoomCmd::Fill(read) => self.fill(read),
        }
    }

    /// Adds a member; true when it is the user's first socket here.
    fn add(&mut self, conn: ConnId, user: UserId, outbox: Outbox) -> bool {
        self.members.insert(conn, Member { user, outbox });
        let count = self.sockets_per_user.entry(user).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Tells a newcomer who is typing right now. (The room's state already
    /// counts the typing events held in an open window; when it closes the
    /// newcomer gets those too, which repeat what this told it.)
    fn replay_typing(&mut self, conn: ConnId) {
        let Some(member) = self.members.get(&conn) else {
            return;
        };
        let typing: Vec<UserId> = self
            .typing
            .keys()
            .copied()
            .filter(|u| *u != member.user)
            .collect();
        for user_id in typing {
            member.outbox.offer_message(&ServerMessage::Typing {
                user_id,
                is_typing: true,
            });
        }
    }

    /// Removes a connection. When it was its user's last, their typing
    /// indicator stops at once (here and, through the broker, everywhere)
    /// and their leave is held for the grace — or announced at once for an
    /// eviction, or with no grace. Members dropped while announcing are
    /// removed the same way (as closed sockets: they may reconnect).
    fn remove(&mut self, conn: ConnId, departure: Departure) {
        let grace = self.rooms.settings.presence_leave_grace;
        let mut pending = vec![(conn, departure)];
        while let Some((conn, departure)) = pending.pop() {
            let Some(member) = self.members.remove(&conn) else {
                continue;
            };
            let user = member.user;
            let Some(count) = self.sockets_per_user.get_mut(&user) else {
                continue;
            };
            *count -= 1;
            if *count > 0 {
                continue;
            }
            self.sockets_per_user.remove(&user);
            let mut dropped = Vec::new();
            if self.typing.remove(&user).is_some() {
                let stop = ServerMessage::Typing {
                    user_id: user,
                    is_typing: false,
                };
                dropped.extend(self.fan_out(&stop, Some(user)));
                self.rooms
                    .settings
                    .presence
                    .typing_stopped(self.project, user);
            }
            if departure == Departure::Evicted || grace.is_zero() {
                dropped.extend(self.announce_offline(user));
            } else {
                let at = Instant::now() + grace;
                self.leaving.insert(user, at);
                self.leave_queue.push_back((at, user));
            }
            pending.extend(dropped.into_iter().map(|c| (c, Departure::Closed)));
        }
    }

    fn remove_all(&mut self, conns: Vec<ConnId>) {
        for conn in conns {
            self.remove(conn, Departure::Closed);
        }
    }

    /// Announces the held leaves due by `due` (all of them: `None`).
    fn announce_leaves(&mut self, due: Option<Instant>) {
        let mut users = Vec::new();
        while let Some(&(at, user)) = self.leave_queue.front() {
            if due.is_some_and(|due| at > due) {
                break;
            }
            self.leave_queue.pop_front();
            if self.leaving.get(&user) == Some(&at) {
                users.push(user);
            }
        }
        for user in users {
            // Two queue entries can share one instant (a coarse clock, or a
            // paused one): a user is announced once, whatever their entries.
            if self.leaving.remove(&user).is_none() {
                continue;
            }
            let dropped = self.announce_offline(user);
            self.remove_all(dropped);
        }
    }

    /// A user is gone from this node's room: presence decides who tells
    /// the members (across nodes, only once they are gone from every node).
    /// Returns the members that could not take the announcement.
    fn announce_offline(&mut self, user: UserId) -> Vec<ConnId> {
        match self
            .rooms
            .settings
            .presence
            .user_offline(self.project, user)
        {
            Announce::ByRoom => self.fan_out(&ServerMessage::PresenceLeave { user_id: user }, None),
            Announce::ByPresence => Vec::new(),
        }
    }

    /// A user's first socket here opened: presence decides who tells the
    /// members (across nodes, only on the user's first socket anywhere).
    fn announce_online(&mut self, user: UserId) {
        match self.rooms.settings.presence.user_online(self.project, user) {
            Announce::ByRoom => {
                self.broadcast(&ServerMessage::PresenceJoin { user_id: user }, Some(user));
            }
            Announce::ByPresence => {}
        }
    }

    /// Opens a typing window: typing events until its end are held.
    fn open_typing_window(&mut self) {
        let window = self.rooms.settings.typing_batch;
        if !window.is_zero() {
            let end = crate::grid::on_tick(Instant::now() + window, window / 10);
            self.typing_window_end = Some(end);
        }
    }

    /// The typing window ends: what it held goes out and opens the next
    /// window; a window that held nothing leaves the room quiet.
    fn close_typing_window(&mut self) {
        self.typing_window_end = None;
        if self.held_typing.is_empty() {
            return;
        }
        let dropped = self.flush_typing();
        self.open_typing_window();
        self.remove_all(dropped);
    }

    /// Sends the held typing events, each to every member but its typist's
    /// sockets. Returns the members that could not take them.
    fn flush_typing(&mut self) -> Vec<ConnId> {
        self.deliver_after_held(None)
    }

    fn expire_typing(&mut self) {
        let now = Instant::now();
        let lapsed: Vec<UserId> = self
            .typing
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(u, _)| *u)
            .collect();
        for user_id in lapsed {
            self.typing.remove(&user_id);
            self.broadcast(
                &ServerMessage::Typing {
                    user_id,
                    is_typing: false,
                },
                Some(user_id),
            );
        }
    }

    /// Sends `msg` to every member except `except`'s sockets, then removes
    /// the members whose queues were full.
    fn broadcast(&mut self, msg: &ServerMessage, except: Option<UserId>) {
        let dropped = self.fan_out(msg, except);
        self.remove_all(dropped);
    }

    /// Queues `msg` to members, after the typing events held before it;
    /// returns the connections that could not take them.
    fn fan_out(&mut self, msg: &ServerMessage, except: Option<UserId>) -> Vec<ConnId> {
        self.deliver_after_held(Some((msg, except)))
    }

    /// Queues the held typing events, then `next` if any, in one pass (so a
    /// member that cannot take one gets none of the rest).
    fn deliver_after_held(
        &mut self,
        next: Option<(&ServerMessage, Option<UserId>)>,
    ) -> Vec<ConnId> {
        if self.held_typing.is_empty() {
            // The common case (nothing held): no list to build.
            return next.map_or_else(Vec::new, |event| self.deliver(&[event]));
        }
        let held = std::mem::take(&mut self.held_typing);
        let events: Vec<(&ServerMessage, Option<UserId>)> = held
            .iter()
            .map(|msg| (&**msg, typist(msg)))
            .chain(next)
            .collect();
        self.deliver(&events)
    }

    /// Queues each event to every member but its `except` user's sockets,
    /// member by member, so that a member's events are queued together and
    /// its writer drains them at once (into one frame, up to its batch cap).
    /// Each event is encoded once per wire encoding in use; one that cannot
    /// be encoded is skipped. Returns the connections that could not take one.
    fn deliver(&self, events: &[(&ServerMessage, Option<UserId>)]) -> Vec<ConnId> {
        let mut outgoing: Vec<Outgoing<'_>> = events
            .iter()
            .map(|&(msg, except)| Outgoing::new(msg, except))
            .collect();
        let mut dropped = Vec::new();
        'members: for (conn, member) in &self.members {
            let enc = member.outbox.encoding();
            for event in &mut outgoing {
                if Some(member.user) == event.except {
                    continue;
                }
                let Some(frame) = event.frame(enc) else {
                    continue;
                };
                if !member.outbox.offer(frame) {
                    dropped.push(*conn);
                    continue 'members;
                }
                event.delivered += 1;
            }
        }
        for event in &outgoing {
            self.rooms
                .metrics
                .messages_out(out_kind(event.msg), event.delivered);
        }
        dropped
    }
}

/// One event on its way to a room's members: its frames, encoded on first
/// use per wire encoding, and how many members took it.
struct Outgoing<'a> {
    msg: &'a ServerMessage,
    /// Whose sockets never get it.
    except: Option<UserId>,
    encoded: [Option<Bytes>; 2],
    /// Encoding failed once (logged then): nobody gets it.
    failed: bool,
    comment_id: Option<CommentId>,
    seq: Option<Seq>,
    delivered: u64,
}

impl<'a> Outgoing<'a> {
    fn new(msg: &'a ServerMessage, except: Option<UserId>) -> Self {
        Self {
            msg,
            except,
            encoded: [None, None],
            failed: false,
            comment_id: comment_id(msg),
            seq: msg.seq(),
            delivered: 0,
        }
    }

    /// The event's frame in `enc`, encoding it the first time.
    fn frame(&mut self, enc: Encoding) -> Option<OutFrame> {
        if self.failed {
            return None;
        }
        let bytes = match &self.encoded[enc.index()] {
            Some(bytes) => bytes.clone(),
            None => match encode(enc, self.msg) {
                Ok(bytes) => self.encoded[enc.index()].insert(bytes).clone(),
                Err(e) => {
                    tracing::error!(error = %e, kind = out_kind(self.msg), "encoding an event failed");
                    self.failed = true;
                    return None;
                }
            },
        };
        Some(OutFrame {
            bytes,
            comment_id: self.comment_id,
            seq: self.seq,
        })
    }
}

/// The comment a live event carries, which a member's `initial_state` may
/// already have held (see [`crate::outbound::Inbox`]).
fn comment_id(msg: &ServerMessage) -> Option<CommentId> {
    match msg {
        ServerMessage::Comment { comment, .. } => Some(comment.id),
        _ => None,
    }
}

/// The user a typing event is about, whose own sockets never get it.
fn typist(msg: &ServerMessage) -> Option<UserId> {
    match msg {
        ServerMessage::Typing { user_id, .. } => Some(*user_id),
        _ => None,
    }
}

/// The metric label of an event.
pub(crate) fn out_kind(msg: &ServerMessage) -> &'static str {
    match msg {
        ServerMessage::InitialState(_) => "initial_state",
        ServerMessage::Comment { .. } => "comment",
        ServerMessage::CommentAck(_) => "comment_ack",
        ServerMessage::Ack(_) => "ack",
        ServerMessage::CommentEdited { .. } => "comment_edited",
        ServerMessage::CommentDeleted { .. } => "comment_deleted",
        ServerMessage::CommentResolved { .. } => "comment_resolved",
        ServerMessage::CommentReopened { .. } => "comment_reopened",
        ServerMessage::ReactionRemoved { .. } => "reaction_removed",
        ServerMessage::Typing { .. } => "typing",
        ServerMessage::Reaction { .. } => "reaction",
        ServerMessage::FeedbackCreated { .. } => "feedback_created",
        ServerMessage::StatusChanged { .. } => "status_changed",
        ServerMessage::PresenceJoin { .. } | ServerMessage::PresenceLeave { .. } => "presence",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Resync { .. } => "resync",
        ServerMessage::TokenExpiring { .. } => "token_expiring",
        ServerMessage::TokenRefreshed { .. } => "token_refreshed",
        ServerMessage::Batch { .. } => "batch",
    }
}
