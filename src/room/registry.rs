//! Finds the room of a project, spawning it on first join.
//!
//! The race that matters: a join arriving while the project's room is
//! retiring. The room removes itself from the map *before* closing its
//! queue, and a join whose command is refused (queue closed) or whose reply
//! is dropped (room retired with the command still queued) removes that
//! exact instance, if still mapped, and retries — so a join always lands in a
//! live room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::actor::Room;
use super::rooms::Rooms;
use super::{ConnId, Joined, RoomCmd, RoomHandle, RoomSettings};
use crate::broker::Deliveries;
use crate::metrics::Metrics;
use crate::outbound::Outbox;

/// Commands queued per room before senders wait.
const ROOM_QUEUE: usize = 4096;

/// The rooms of this node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Rooms>,
}

impl Registry {
    pub fn new(settings: RoomSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Rooms {
                map: DashMap::new(),
                next_instance: AtomicU64::new(1),
                settings,
                metrics,
            }),
        }
    }

    /// Whether the project has a room on this node right now.
    pub fn has_room(&self, project: ProjectId) -> bool {
        self.inner.map.contains_key(&project)
    }

    /// Adds a connection to the project's room and returns the room and what
    /// the joiner needs to know. Never lost to a retiring room.
    pub async fn join(
        &self,
        project: ProjectId,
        conn: ConnId,
        user: UserId,
        outbox: Outbox,
    ) -> (RoomHandle, Joined) {
        loop {
            let handle = self.get_or_spawn(project);
            let (reply, joined) = oneshot::channel();
            let cmd = RoomCmd::Join {
                conn,
                user,
                outbox: outbox.clone(),
                reply,
            };
            if handle.tx.send(cmd).await.is_ok()
                && let Ok(joined) = joined.await
            {
                return (handle, joined);
            }
            self.forget(project, handle.instance);
        }
    }

    fn get_or_spawn(&self, project: ProjectId) -> RoomHandle {
        self.inner
            .map
            .entry(project)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(ROOM_QUEUE);
                let instance = self.inner.next_instance.fetch_add(1, Relaxed);
                let room = Room::new(project, instance, self.inner.clone(), tx.downgrade());
                tokio::spawn(room.run(rx));
                RoomHandle { tx, instance }
            })
            .clone()
    }

    fn forget(&self, project: ProjectId, instance: u64) {
        self.inner.forget(project, instance);
    }

    /// Delivers an event to this node's members of the project, if any.
    pub async fn deliver(&self, project: ProjectId, msg: Arc<ServerMessage>) {
        let handle = self.inner.map.get(&project).map(|h| h.clone());
        if let Some(handle) = handle {
            let _ = handle.tx.send(RoomCmd::Publish(msg)).await;
        }
    }

    /// Closes every socket of `user` in the project's room on this node.
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        let handle = self.inner.map.get(&project).map(|h| h.clone());
        if let Some(handle) = handle {
            let _ = handle.tx.send(RoomCmd::Evict { user, code }).await;
        }
    }

    /// Projects with a room on this node.
    pub fn active_projects(&self) -> Vec<ProjectId> {
        self.inner.map.iter().map(|e| *e.key()).collect()
    }
}

/// Other nodes' events reach this node's rooms through the broker.
impl Deliveries for Registry {
    fn deliver(&self, project: ProjectId, msg: Arc<ServerMessage>) -> BoxFuture<'_, ()> {
        Box::pin(Registry::deliver(self, project, msg))
    }

    fn evict(&self, project: ProjectId, user: UserId, code: u16) -> BoxFuture<'_, ()> {
        Box::pin(Registry::evict(self, project, user, code))
    }

    fn has_room(&self, project: ProjectId) -> bool {
        Registry::has_room(self, project)
    }

    fn active_projects(&self) -> Vec<ProjectId> {
        Registry::active_projects(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::broker::{Presence, PresenceEvent};
    use crate::room::actor::GAP_WAIT;
    use crate::room::test_support::comment;
    use crate::store::Store;
    use vridge_protocol::Encoding;

    /// A registry on a fresh SQLite store; keep the directory alive.
    async fn registry() -> (Registry, Store, tempfile::TempDir) {
        registry_with(Duration::ZERO, Presence::Local, Duration::ZERO).await
    }

    /// A registry with a leave grace, the given presence engine, and typing
    /// windows of `typing_batch`.
    async fn registry_with(
        grace: Duration,
        presence: Presence,
        typing_batch: Duration,
    ) -> (Registry, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rooms.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let settings = RoomSettings {
            typing_timeout: Duration::from_secs(10),
            typing_batch,
            presence_leave_grace: grace,
            store: store.clone(),
            presence,
        };
        let reg = Registry::new(settings, Arc::new(Metrics::default()));
        (reg, store, dir)
    }

    /// Every frame queued for a member right now, as text.
    fn drain(rx: &mut crate::outbound::Inbox) -> Vec<String> {
        let mut frames = Vec::new();
        while let Some(frame) = rx.try_recv() {
            frames.push(String::from_utf8_lossy(&frame.bytes).into_owned());
        }
        frames
    }

    /// Lets the room task catch up (the room answers a join only after
    /// every command queued before it), with a second socket of `user`, who
    /// is in the room already, so nothing is announced.
    async fn settle(reg: &Registry, project: ProjectId, user: UserId) {
        let metrics = Arc::new(Metrics::default());
        let (probe, _rx, _) = Outbox::channel(8, Encoding::Json, metrics);
        let (room, _) = reg.join(project, u64::MAX, user, probe).await;
        room.leave(u64::MAX).await;
    }

    const GRACE: Duration = Duration::from_millis(600);

    /// Ten reconnects within the grace reach nobody; leaving for good is one
    /// `presence_leave`, and not before the grace is over. The reconnecting
    /// user is listed as online meanwhile.
    #[tokio::test]
    async fn reconnects_within_the_grace_are_silent_and_a_real_leave_is_announced_once() {
        let (reg, _store, _dir) = registry_with(GRACE, Presence::Local, Duration::ZERO).await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (_room, _) = reg.join(1, 1, 10, watch_box).await;
        // The room has read the store; from here on only its clock matters.
        tokio::time::pause();
        let (churn_box, _churn_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (mut room, _) = reg.join(1, 2, 20, churn_box).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [r#"{"type":"presence_join","user_id":20}"#]
        );

        for conn in 3..13 {
            room.leave(conn - 1).await;
            let (outbox, _rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
            let (again, joined) = reg.join(1, conn, 20, outbox).await;
            assert_eq!(joined.online_users, vec![10, 20]);
            room = again;
        }
        room.leave(12).await;
        let left = tokio::time::Instant::now();
        let (outbox, _rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (late, joined) = reg.join(1, 100, 30, outbox).await;
        assert_eq!(
            joined.online_users,
            vec![10, 20, 30],
            "online during the grace"
        );
        late.leave(100).await;
        let frames = drain(&mut watch_rx);
        assert!(
            frames.iter().all(|f| !f.contains(r#""user_id":20"#)),
            "{frames:?}"
        );

        let leave = tokio::time::timeout(GRACE * 4, async {
            loop {
                let frame = watch_rx.recv().await.expect("queue open");
                let text = String::from_utf8_lossy(&frame.bytes).into_owned();
                if text.contains(r#""user_id":20"#) {
                    return text;
                }
            }
        })
        .await
        .expect("the leave came");
        assert!(left.elapsed() >= GRACE, "the leave waited for the grace");
        assert_eq!(leave, r#"{"type":"presence_leave","user_id":20}"#);
        tokio::time::sleep(GRACE).await;
        let rest = drain(&mut watch_rx);
        assert!(
            rest.iter().all(|f| !f.contains(r#""user_id":20"#)),
            "one leave only: {rest:?}"
        );
    }

    /// Under a cross-node broker the room reports, instead of announcing:
    /// a typist's last socket stops their typing at once (here and, by the
    /// report, elsewhere), a return within the grace reports nothing, and a
    /// leave for good is reported once, after the grace. A room left with
    /// only a held leave retires once it is reported, not before.
    #[tokio::test]
    async fn under_a_broker_typing_stops_at_once_and_the_leave_waits_for_the_grace() {
        let (events_tx, mut events) = mpsc::channel(64);
        let presence = crate::broker::RedisPresence::reporting_to(events_tx);
        let (reg, _store, _dir) = registry_with(GRACE, presence, Duration::ZERO).await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (watch_room, _) = reg.join(1, 1, 10, watch_box).await;
        // The room has read the store, and this presence engine has no Redis
        // behind it (it only reports): from here on only the clock matters.
        tokio::time::pause();
        let (typist_box, _typist_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (room, _) = reg.join(1, 2, 20, typist_box).await;
        reg.deliver(
            1,
            Arc::new(ServerMessage::Typing {
                user_id: 20,
                is_typing: true,
            }),
        )
        .await;
        room.leave(2).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [
                r#"{"type":"typing","user_id":20,"is_typing":true}"#,
                r#"{"type":"typing","user_id":20,"is_typing":false}"#,
            ]
        );
        let mut reported = Vec::new();
        while let Ok(event) = events.try_recv() {
            reported.push(event);
        }
        let expected_so_far = [
            PresenceEvent::UserOnline {
                project: 1,
                user: 10,
            },
            PresenceEvent::UserOnline {
                project: 1,
                user: 20,
            },
            PresenceEvent::TypingStopped {
                project: 1,
                user: 20,
            },
        ];
        assert_eq!(reported, expected_so_far);

        let (back_box, _back_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (room, _) = reg.join(1, 3, 20, back_box).await;
        room.leave(3).await;
        watch_room.leave(1).await;
        let left = tokio::time::Instant::now();
        let mut after = Vec::new();
        tokio::time::timeout(GRACE * 4, async {
            while !after.contains(&PresenceEvent::Retired(1)) {
                after.push(events.recv().await.expect("reports open"));
            }
        })
        .await
        .expect("the room retired");
        assert!(left.elapsed() >= GRACE, "the held leaves kept the room");
        let offline_20 = PresenceEvent::UserOffline {
            project: 1,
            user: 20,
        };
        let offline_10 = PresenceEvent::UserOffline {
            project: 1,
            user: 10,
        };
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(
            after.contains(&offline_10) && after.contains(&offline_20),
            "{after:?}"
        );
        assert_eq!(after[2], PresenceEvent::Retired(1));
        assert!(reg.active_projects().is_empty());
    }

    /// An evicted user cannot come back: their leave is not held.
    #[tokio::test]
    async fn an_eviction_announces_the_leave_at_once() {
        let (reg, _store, _dir) =
            registry_with(Duration::from_secs(3600), Presence::Local, Duration::ZERO).await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (_room, _) = reg.join(1, 1, 10, watch_box).await;
        let (gone_box, _gone_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (_gone, _) = reg.join(1, 2, 20, gone_box).await;
        reg.evict(1, 20, 4003).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [
                r#"{"type":"presence_join","user_id":20}"#,
                r#"{"type":"presence_leave","user_id":20}"#,
            ]
        );
    }

    /// A join racing the retirement of the previous room must land in a live
    /// room: after the churn, an event published to the project reaches it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn join_racing_a_retiring_room_is_never_lost() {
        let (reg, _store, _dir) = registry().await;
        let metrics = Arc::new(Metrics::default());
        for round in 0..500u64 {
            let (churn_box, _churn_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
            let (stay_box, mut stay_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
            let (room, _) = reg.join(1, round * 2, 10, churn_box).await;
            let leaver = tokio::spawn(async move { room.leave(round * 2).await });
            let joiner = {
                let reg = reg.clone();
                tokio::spawn(async move { reg.join(1, round * 2 + 1, 20, stay_box).await })
            };
            leaver.await.unwrap();
            let (room, joined) = joiner.await.unwrap();
            assert!(joined.online_users.contains(&20));
            reg.deliver(1, Arc::new(ServerMessage::PresenceJoin { user_id: 99 }))
                .await;
            let got = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let frame = stay_rx.recv().await.expect("queue open");
                    if frame.bytes.as_ref() == br#"{"type":"presence_join","user_id":99}"# {
                        break;
                    }
                }
            })
            .await;
            assert!(got.is_ok(), "round {round}: the joiner missed an event");
            room.leave(round * 2 + 1).await;
        }
    }

    #[tokio::test]
    async fn room_retires_when_its_last_member_leaves() {
        let (reg, _store, _dir) = registry().await;
        let metrics = Arc::new(Metrics::default());
        let (outbox, _rx, _) = Outbox::channel(8, Encoding::Json, metrics);
        let (room, _) = reg.join(7, 1, 1, outbox).await;
        assert_eq!(reg.active_projects(), vec![7]);
        room.leave(1).await;
        tokio::time::timeout(Duration::from_secs(2), async {
            while !reg.active_projects().is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("room retired");
    }

    /// The comment ids a member's queue receives, in order, until `count`
    /// arrived (other events are skipped).
    async fn received_ids(rx: &mut crate::outbound::Inbox, count: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            while ids.len() < count {
                let frame = rx.recv().await.expect("queue open");
                if let Some(id) = frame.comment_id {
                    ids.push(id);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {ids:?} arrived"));
        ids
    }

    /// Another node's comment 9 arriving after this node's comment 10 still
    /// reaches members before it, and a repeat of either is dropped.
    #[tokio::test]
    async fn a_comment_waits_for_its_predecessor_from_another_node() {
        let (reg, _store, _dir) = registry().await;
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut rx, _) = Outbox::channel(64, Encoding::Json, metrics);
        let (_room, _) = reg.join(1, 1, 1, outbox).await;
        tokio::time::pause();
        reg.deliver(1, comment(8, None)).await;
        assert_eq!(received_ids(&mut rx, 1).await, vec![8]);
        reg.deliver(1, comment(10, Some(9))).await;
        // Held for most of the wait: nothing goes out, the store is not read.
        tokio::time::advance(GAP_WAIT - Duration::from_millis(1)).await;
        settle(&reg, 1, 1).await;
        assert!(rx.try_recv().is_none(), "10 waits for 9");
        reg.deliver(1, comment(9, Some(8))).await;
        reg.deliver(1, comment(10, Some(9))).await;
        reg.deliver(1, comment(11, Some(10))).await;
        assert_eq!(received_ids(&mut rx, 3).await, vec![9, 10, 11]);
        tokio::time::advance(GAP_WAIT * 2).await;
        settle(&reg, 1, 1).await;
        assert!(rx.try_recv().is_none(), "nothing is delivered twice");
    }

    /// A typing indicator nobody refreshes lapses after the typing timeout:
    /// the others are told the typist stopped, once, and not before.
    #[tokio::test]
    async fn an_unrefreshed_typing_indicator_lapses_after_the_timeout() {
        let (reg, _store, _dir) = registry().await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (_watcher, _) = reg.join(1, 1, 10, watch_box).await;
        let (typist_box, _typist_rx, _) = Outbox::channel(64, Encoding::Json, metrics);
        let (_typist, _) = reg.join(1, 2, 20, typist_box).await;
        tokio::time::pause();
        let typing = |is_typing| {
            Arc::new(ServerMessage::Typing {
                user_id: 20,
                is_typing,
            })
        };
        reg.deliver(1, typing(true)).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [
                r#"{"type":"presence_join","user_id":20}"#,
                r#"{"type":"typing","user_id":20,"is_typing":true}"#
            ]
        );
        // A refresh halfway restarts the timeout.
        tokio::time::advance(Duration::from_secs(5)).await;
        reg.deliver(1, typing(true)).await;
        settle(&reg, 1, 10).await;
        tokio::time::advance(Duration::from_secs(9)).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [r#"{"type":"typing","user_id":20,"is_typing":true}"#],
            "not lapsed 9 s after the refresh"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let lapse = tokio::time::timeout(Duration::from_millis(1), watch_rx.recv())
            .await
            .expect("lapsed 10 s after the refresh")
            .expect("queue open");
        assert_eq!(
            String::from_utf8_lossy(&lapse.bytes),
            r#"{"type":"typing","user_id":20,"is_typing":false}"#
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        settle(&reg, 1, 10).await;
        assert!(drain(&mut watch_rx).is_empty(), "lapsed once");
    }

    /// A typing event in a quiet room goes out at once and opens a window;
    /// those within it are held, then queued to each member together (so
    /// its writer sends one frame), in order, never to their own typist. Any
    /// other event the room sends flushes the held ones first; a window that
    /// held nothing leaves the room quiet again.
    #[tokio::test]
    async fn typing_in_a_busy_room_is_held_for_its_window_and_never_reordered() {
        const WINDOW: Duration = Duration::from_millis(250);
        let (reg, _store, _dir) = registry_with(Duration::ZERO, Presence::Local, WINDOW).await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics.clone());
        let (_watcher, _) = reg.join(1, 1, 10, watch_box).await;
        let (typist_box, mut typist_rx, _) = Outbox::channel(64, Encoding::Json, metrics);
        let (typist_room, _) = reg.join(1, 2, 20, typist_box).await;
        tokio::time::pause();
        settle(&reg, 1, 10).await;
        drain(&mut watch_rx);
        drain(&mut typist_rx);
        let typing = |user_id, is_typing| Arc::new(ServerMessage::Typing { user_id, is_typing });
        let text = |user_id, is_typing| {
            format!(r#"{{"type":"typing","user_id":{user_id},"is_typing":{is_typing}}}"#)
        };
        // A quiet room: the first goes out at once. (Paused time: the clock
        // only moves when every task waits.)
        let opened = tokio::time::Instant::now();
        reg.deliver(1, typing(20, true)).await;
        settle(&reg, 1, 10).await;
        assert_eq!(drain(&mut watch_rx), [text(20, true)]);
        // Within its window (user 30 types on another node): held.
        reg.deliver(1, typing(30, true)).await;
        reg.deliver(1, typing(20, false)).await;
        settle(&reg, 1, 10).await;
        assert!(drain(&mut watch_rx).is_empty(), "held for the window");
        let first = tokio::time::timeout(WINDOW * 2, watch_rx.recv())
            .await
            .expect("sent when the window closed")
            .expect("queue open");
        let held = opened.elapsed();
        assert!(held >= WINDOW && held <= WINDOW + WINDOW / 10, "{held:?}");
        // Both were queued by then, in the order the room took them.
        let mut got = vec![String::from_utf8_lossy(&first.bytes).into_owned()];
        got.extend(drain(&mut watch_rx));
        assert_eq!(got, [text(30, true), text(20, false)]);
        assert_eq!(drain(&mut typist_rx), [text(30, true)]);
        // That flush opened the next window. A presence change right after
        // a typing event held in it: both go out at once, the typing first.
        reg.deliver(1, typing(30, false)).await;
        reg.deliver(1, Arc::new(ServerMessage::PresenceJoin { user_id: 40 }))
            .await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [
                text(30, false),
                r#"{"type":"presence_join","user_id":40}"#.to_string()
            ]
        );
        // Once a window passes with nothing held, the room is quiet again.
        tokio::time::advance(WINDOW * 2).await;
        reg.deliver(1, typing(20, true)).await;
        settle(&reg, 1, 10).await;
        assert_eq!(drain(&mut watch_rx), [text(20, true)]);
        // A typist's last socket closing while typing is held: the held
        // typing, then their stop, at once (and, with no grace, their leave).
        reg.deliver(1, typing(30, true)).await;
        typist_room.leave(2).await;
        settle(&reg, 1, 10).await;
        assert_eq!(
            drain(&mut watch_rx),
            [
                text(30, true),
                text(20, false),
                r#"{"type":"presence_leave","user_id":20}"#.to_string()
            ]
        );
    }

    /// A burst of typing within one window goes out once the cap is held,
    /// without waiting for the window: one flush never fills a member's queue.
    #[tokio::test]
    async fn a_burst_of_typing_beyond_the_cap_goes_out_without_waiting() {
        let (reg, _store, _dir) =
            registry_with(Duration::ZERO, Presence::Local, Duration::from_secs(1)).await;
        let metrics = Arc::new(Metrics::default());
        let (watch_box, mut watch_rx, _) = Outbox::channel(64, Encoding::Json, metrics);
        let (_watcher, _) = reg.join(1, 1, 10, watch_box).await;
        tokio::time::pause();
        let typing = |user_id| {
            Arc::new(ServerMessage::Typing {
                user_id,
                is_typing: true,
            })
        };
        // The first opens the window; 32 more (typists on other nodes) fill it.
        for user in 100..133 {
            reg.deliver(1, typing(user)).await;
        }
        settle(&reg, 1, 10).await;
        assert_eq!(drain(&mut watch_rx).len(), 33);
    }

    /// A predecessor the broker never brings is read from the store once the
    /// wait is over, and goes out before the comment that waited for it.
    #[tokio::test]
    async fn a_predecessor_the_broker_lost_is_read_from_the_store() {
        let (reg, store, _dir) = registry().await;
        let owner = store
            .create_user(&crate::store::NewUser {
                email: "o@rooms.test",
                username: "o",
                password_hash: None,
            })
            .await
            .unwrap()
            .id;
        let project = store.create_project(owner, "P", "").await.unwrap().id;
        let feedback = store
            .create_feedback(&crate::store::NewFeedback {
                project_id: project,
                created_by: owner,
                title: "F",
                priority: "low",
                timestamp: None,
                video_url: None,
            })
            .await
            .unwrap()
            .0
            .id;
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut rx, _) = Outbox::channel(64, Encoding::Json, metrics);
        let (_room, _) = reg.join(project, 1, owner, outbox).await;

        let mut stored = Vec::new();
        for text in ["first", "lost", "third"] {
            let request = crate::store::CommentRequest {
                project_id: project,
                user_id: owner,
                comment: crate::domain::ValidComment::parse(vridge_protocol::NewComment {
                    feedback_id: feedback,
                    text: text.into(),
                    title: None,
                    section: None,
                    security: None,
                    timestamp: None,
                    ..Default::default()
                })
                .unwrap(),
                key: crate::domain::IdempotencyKey::from_client(None).unwrap(),
                parent: None,
            };
            let out = store.insert_comments(&[request]).await.unwrap();
            stored.push(out[0].clone());
        }
        let publish = |c: &crate::store::StoredComment| {
            Arc::new(ServerMessage::Comment {
                user_id: c.comment.user_id,
                comment: c.comment.clone(),
                event: c.event.clone(),
            })
        };
        let ids: Vec<i64> = stored.iter().map(|c| c.comment.id).collect();
        reg.deliver(project, publish(&stored[0])).await;
        assert_eq!(received_ids(&mut rx, 1).await, ids[..1]);
        // The wait is the room's clock, so it runs paused; the store read
        // that ends it is real IO, so the clock runs again before it: a
        // paused clock would jump to the next timer (a timeout here, or the
        // pool's) while the query is in flight.
        tokio::time::pause();
        reg.deliver(project, publish(&stored[2])).await;
        // The room took the third (and began its wait) before the clock moves.
        settle(&reg, project, owner).await;
        let started = tokio::time::Instant::now();
        // Held for all but the end of the wait: the store is not read yet.
        tokio::time::advance(GAP_WAIT - Duration::from_millis(1)).await;
        settle(&reg, project, owner).await;
        assert!(rx.try_recv().is_none(), "the third waits for the second");
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::time::resume();
        assert_eq!(received_ids(&mut rx, 2).await, ids[1..]);
        assert!(
            started.elapsed() >= GAP_WAIT,
            "the third waited for the second"
        );
        reg.deliver(project, publish(&stored[1])).await;
        settle(&reg, project, owner).await;
        assert!(rx.try_recv().is_none(), "the late original is a duplicate");
    }
}
