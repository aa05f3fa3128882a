//! Presence and socket counts, behind one type with a local and a Redis
//! engine, so rooms and sessions never ask which broker runs.
//!
//! A room tells [`Presence`] when a user's first socket in the project opens
//! on this node, when their last one closes (after the leave grace), when a
//! typist's last socket closes and when the room retires. With one node
//! (`Local`) the room itself is the whole truth: it is told to announce
//! joins and leaves to its own members. Across nodes (`Redis`) the room only
//! reports, never waiting, to the node agent ([`super::node`]), which
//! announces a join on a user's first socket anywhere and a leave on their
//! last. Online lists and per-user socket slots are this node's alone, or
//! Redis's merged with this node's (falling back to this node's view while
//! Redis cannot answer).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use fred::prelude::{HashesInterface, LuaInterface};
use tokio::sync::mpsc;
use vridge_protocol::{ProjectId, UserId};

use super::link::Link;
use super::{BrokerError, scripts};

/// A change in a room that matters beyond this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// The room retired (its last member left): the node may stop listening
    /// to the project, unless a new room has been spawned since.
    Retired(ProjectId),
    /// A user's first socket in the project opened on this node.
    UserOnline { project: ProjectId, user: UserId },
    /// A user's last socket in the project on this node closed and the
    /// leave grace ended without a new one (or they were evicted).
    UserOffline { project: ProjectId, user: UserId },
    /// A typist's last socket here closed: this node's members were told
    /// they stopped typing; other nodes must be too, at once (not after
    /// the leave grace).
    TypingStopped { project: ProjectId, user: UserId },
}

/// Who tells a room's members that a user came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Announce {
    /// The room: its members are everyone there is.
    ByRoom,
    /// The presence engine, once it knows the user's state on every node.
    ByPresence,
}

/// The presence engine. Cheap to clone; every room holds one.
#[derive(Debug, Clone)]
pub enum Presence {
    /// One node: rooms announce to their own members.
    Local,
    /// Several nodes sharing a Redis.
    Redis(RedisPresence),
}

/// A user's socket slot beyond this node's own count, if one is kept.
#[derive(Debug)]
pub enum SocketSlot {
    /// Only this node's limiter counts (one node, or Redis unreachable).
    Local,
    /// Counted in Redis across nodes; given back on drop.
    Cluster(RemoteSocketSlot),
}

impl Presence {
    /// A user's first socket in `project` opened on this node.
    pub fn user_online(&self, project: ProjectId, user: UserId) -> Announce {
        self.report(PresenceEvent::UserOnline { project, user })
    }

    /// A user's last socket in `project` on this node is gone for good.
    pub fn user_offline(&self, project: ProjectId, user: UserId) -> Announce {
        self.report(PresenceEvent::UserOffline { project, user })
    }

    /// A typist's last socket here closed; this node's members were told.
    pub fn typing_stopped(&self, project: ProjectId, user: UserId) {
        let _ = self.report(PresenceEvent::TypingStopped { project, user });
    }

    /// The project's room on this node retired.
    pub fn room_retired(&self, project: ProjectId) {
        let _ = self.report(PresenceEvent::Retired(project));
    }

    fn report(&self, event: PresenceEvent) -> Announce {
        match self {
            Presence::Local => Announce::ByRoom,
            Presence::Redis(redis) => {
                redis.report(event);
                Announce::ByPresence
            }
        }
    }

    /// Users online in `project` on any node; `local` is this node's room
    /// view (all there is with one node, or while Redis cannot answer).
    pub async fn online_users(&self, project: ProjectId, local: Vec<UserId>) -> Vec<UserId> {
        match self {
            Presence::Local => local,
            Presence::Redis(redis) => redis.online_users(project, local).await,
        }
    }

    /// Takes one of `user`'s socket slots across nodes; `None` when they
    /// hold `max` already. Callers check this node's limiter first (the fast
    /// path). When Redis cannot answer, only the local limit applies.
    pub async fn acquire_socket(&self, user: UserId, max: usize) -> Option<SocketSlot> {
        match self {
            Presence::Local => Some(SocketSlot::Local),
            Presence::Redis(redis) => match redis.acquire_socket(user, max).await {
                Ok(Some(slot)) => Some(SocketSlot::Cluster(slot)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster socket count unavailable; local limit only");
                    Some(SocketSlot::Local)
                }
            },
        }
    }
}

/// The Redis engine: reports go to the node agent, reads to Redis.
#[derive(Clone)]
pub struct RedisPresence {
    /// The broker's connections; `None` only for a room test that checks
    /// what rooms report (it then reads as Redis unreachable).
    link: Option<Arc<Link>>,
    /// The node agent's queue of room reports.
    reports: mpsc::Sender<PresenceEvent>,
}

impl fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPresence").finish_non_exhaustive()
    }
}

impl RedisPresence {
    pub(super) fn new(link: Option<Arc<Link>>, reports: mpsc::Sender<PresenceEvent>) -> Self {
        Self { link, reports }
    }

    /// A Redis engine with no Redis behind it whose reports go to `reports`:
    /// for tests of what rooms report.
    #[cfg(test)]
    pub(crate) fn reporting_to(reports: mpsc::Sender<PresenceEvent>) -> Presence {
        Presence::Redis(Self::new(None, reports))
    }

    /// Queues a report for the node agent without waiting: the agent also
    /// feeds rooms, and two bounded queues waiting on each other could
    /// deadlock. A full queue counts as a broker loss.
    fn report(&self, event: PresenceEvent) {
        match self.reports.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(link) = &self.link {
                    link.metrics.broker_lost.fetch_add(1, Relaxed);
                }
                tracing::warn!("presence report dropped: the node agent's queue is full");
            }
            // The node left the cluster (shutdown) and dropped its presence
            // itself; nothing is lost.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The connected link, if Redis can be asked right now.
    fn connected(&self) -> Option<&Arc<Link>> {
        self.link.as_ref().filter(|l| l.connected())
    }

    async fn online_users(&self, project: ProjectId, local: Vec<UserId>) -> Vec<UserId> {
        let mut users = local;
        let Some(link) = self.connected() else {
            return users;
        };
        let remote = link
            .client
            .hkeys::<Vec<String>, _>(scripts::presence_key(project))
            .await;
        match remote {
            Ok(ids) => users.extend(ids.iter().filter_map(|s| s.parse::<UserId>().ok())),
            Err(e) => tracing::warn!(error = %e, "reading presence failed; local view only"),
        }
        users.sort_unstable();
        users.dedup();
        link.note_online(project, &users);
        users
    }

    /// `Ok(None)`: the user already holds `max`. `Err`: Redis cannot answer.
    async fn acquire_socket(
        &self,
        user: UserId,
        max: usize,
    ) -> Result<Option<RemoteSocketSlot>, BrokerError> {
        let Some(link) = self.connected() else {
            return Err(BrokerError::Disconnected);
        };
        let taken: i64 = link
            .client
            .eval(
                scripts::SOCKET_ACQUIRE,
                vec![scripts::sockets_key(user)],
                vec![
                    link.node.to_string(),
                    max.to_string(),
                    scripts::NODE_PREFIX.to_owned(),
                ],
            )
            .await?;
        Ok((taken == 1).then(|| RemoteSocketSlot {
            link: link.clone(),
            user,
        }))
    }
}

/// One socket slot counted in Redis; given back when dropped.
pub struct RemoteSocketSlot {
    pub(super) link: Arc<Link>,
    pub(super) user: UserId,
}

impl fmt::Debug for RemoteSocketSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSocketSlot")
            .field("user", &self.user)
            .finish()
    }
}

impl Drop for RemoteSocketSlot {
    fn drop(&mut self) {
        let link = self.link.clone();
        let user = self.user;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let released: Result<i64, _> = link
                    .client
                    .eval(
                        scripts::SOCKET_RELEASE,
                        vec![scripts::sockets_key(user)],
                        vec![link.node.to_string()],
                    )
                    .await;
                if let Err(e) = released {
                    // The slot lapses with this node's heartbeat if it was
                    // never given back (see SOCKET_ACQUIRE).
                    tracing::warn!(error = %e, "releasing a socket slot failed");
                }
            });
        }
    }
}
