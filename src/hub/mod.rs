//! The coordinator: one road for every client command. It owns this node's
//! rooms (the registry), the broker, the presence engine, the batched
//! connect reads and the persister, and offers what sockets and REST
//! handlers need:
//!
//! - lookups: [`Hub::member_role`] (a socket's membership, batched across
//!   concurrent connects) and [`Hub::feedback_project`] (cached);
//! - [`Hub::acquire_socket`]: one of a user's socket slots across nodes,
//!   held as a [`SocketSlot`] for the socket's life;
//! - [`Hub::join`] (the gapless `initial_state`, or a resume) and
//!   [`Hub::leave`], through an opaque [`Membership`]: no caller names a
//!   room or a connection id;
//! - [`Hub::comment_add`] (a socket's comment) and [`Hub::store_comment`]
//!   (a REST comment, waited for), replies placed by [`Hub::thread_root`];
//! - [`Hub::change`], the road of every [`Command`] on a stored comment —
//!   edit, delete, resolve, reopen — and of reactions, added or removed
//!   ([`Hub::reaction_add`] is its shorthand);
//! - [`Hub::typing`];
//! - the REST writes that announce themselves, [`Hub::create_feedback`]
//!   and [`Hub::update_feedback`], and [`Hub::evict`] (a member's sockets
//!   closed on every node when their membership goes);
//! - [`Hub::admit`], which every client write holds until it reaches the
//!   persister, so that shutdown ([`Hub::flush_writes`]) stores and
//!   acknowledges each write it took; [`Hub::broker_ready`] for readiness
//!   and [`Hub::leave_cluster`] as shutdown's last step.
//!
//! So every command takes the same way: session → hub → (persister → store)
//! → broker → room → outbound queue. The broker delivers to this node's
//! rooms itself (into the sink it defines, which the registry fills) as well
//! as to other nodes', so nothing here publishes twice or branches on the
//! engine. Roles and ownership are checked here; nothing here knows of
//! sockets or HTTP, so each command is testable with a bare outbound queue.

mod commands;
mod join;
pub mod persister;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod writes;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};
use vridge_protocol::{FeedbackId, ProjectId, UserId};

pub use commands::{Author, Command, CommandError};
pub use join::{INITIAL_COMMENTS, JoinError, JoinRequest, Joined, Membership, ResumeLimits};
use persister::{PersistError, Persister};

/// A socket slot held across nodes (see [`Hub::acquire_socket`]); given
/// back when dropped.
pub use crate::broker::SocketSlot;

use crate::broker::{Broker, Presence};
use crate::domain::Role;
use crate::metrics::Metrics;
use crate::room::{ConnId, Registry, RoomSettings};
use crate::store::{BatchedReads, CommentRequest, Store, StoreError, StoredComment};

/// Feedback→project entries cached before the cache is cleared.
const FEEDBACK_CACHE_MAX: usize = 100_000;

/// What the hub is built from (see [`Hub::build`]).
pub struct HubParts {
    pub store: Store,
    pub reads: BatchedReads,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
    pub typing_timeout: Duration,
    /// A room's typing window (zero: every typing event at once).
    pub typing_batch: Duration,
    pub presence_leave_grace: Duration,
    /// Most comments written in one persister flush.
    pub persist_batch: usize,
    pub resume: ResumeLimits,
}

/// The coordinator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    broker: Broker,
    presence: Presence,
    persister: Persister,
    store: Store,
    reads: BatchedReads,
    metrics: Arc<Metrics>,
    resume: ResumeLimits,
    next_conn: AtomicU64,
    /// Feedback items never move between projects, so this never goes stale.
    feedback_projects: DashMap<FeedbackId, ProjectId>,
    /// Fires when the server starts shutting down: no client write is
    /// admitted any more.
    writes_closed: CancellationToken,
    /// Client writes (socket frames, REST comment posts) taken and not yet
    /// handed to the persister; shutdown waits for them before it stops the
    /// persister, so a write the server took is stored and acknowledged.
    in_flight: TaskTracker,
    /// Stops the persister once every admitted write reached it.
    persister_stop: CancellationToken,
    /// The persister task, awaited once at shutdown.
    persister_task: Mutex<Option<JoinHandle<()>>>,
}

impl Hub {
    /// Builds the registry on the broker's presence engine, names it to the
    /// broker as this node's rooms, and starts the persister.
    pub fn build(parts: HubParts) -> Self {
        let presence = parts.broker.presence();
        let settings = RoomSettings {
            typing_timeout: parts.typing_timeout,
            typing_batch: parts.typing_batch,
            presence_leave_grace: parts.presence_leave_grace,
            store: parts.store.clone(),
            presence: presence.clone(),
        };
        let registry = Registry::new(settings, parts.metrics.clone());
        parts.broker.attach(Arc::new(registry.clone()));
        let persister_stop = CancellationToken::new();
        let (persister, persister_task) = Persister::spawn(
            parts.store.clone(),
            parts.broker.clone(),
            parts.metrics.clone(),
            parts.persist_batch,
            persister_stop.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                broker: parts.broker,
                presence,
                persister,
                store: parts.store,
                reads: parts.reads,
                metrics: parts.metrics,
                resume: parts.resume,
                next_conn: AtomicU64::new(1),
                feedback_projects: DashMap::new(),
                writes_closed: CancellationToken::new(),
                in_flight: TaskTracker::new(),
                persister_stop,
                persister_task: Mutex::new(Some(persister_task)),
            }),
        }
    }

    /// The persister, for callers that store a comment and wait (REST).
    pub fn persister(&self) -> &Persister {
        &self.inner.persister
    }

    /// A new connection id, unique on this node for its life.
    fn next_conn_id(&self) -> ConnId {
        self.inner.next_conn.fetch_add(1, Relaxed)
    }

    /// Admits one client write, or refuses it once shutdown has begun. Hold
    /// the guard until the write is handed to the persister (or refused).
    pub fn admit(&self) -> Option<TaskTrackerToken> {
        // Register first, then check: shutdown cancels before it waits, so a
        // write either sees the cancellation or is waited for.
        let token = self.inner.in_flight.token();
        (!self.inner.writes_closed.is_cancelled()).then_some(token)
    }

    /// `user`'s role in `project`, `None` when not a member: the socket's
    /// admission. Batched across concurrent connects.
    pub async fn member_role(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        self.inner.reads.member_role(project, user).await
    }

    /// Takes one of `user`'s socket slots across nodes (see
    /// [`Presence::acquire_socket`]).
    pub async fn acquire_socket(&self, user: UserId, max: usize) -> Option<SocketSlot> {
        self.inner.presence.acquire_socket(user, max).await
    }

    /// Stores one comment and waits for the outcome (REST); broadcast and
    /// ordered like a socket's.
    pub async fn store_comment(
        &self,
        request: CommentRequest,
    ) -> Result<StoredComment, PersistError> {
        self.inner.persister.store(request).await
    }

    /// Closes every socket `user` holds to `project`, on every node.
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        self.inner.broker.evict(project, user, code).await;
    }

    /// Whether the broker can reach its backend.
    pub async fn broker_ready(&self) -> bool {
        self.inner.broker.ready().await
    }

    /// The project of a feedback item, cached.
    pub async fn feedback_project(
        &self,
        feedback: FeedbackId,
    ) -> Result<Option<ProjectId>, StoreError> {
        let cache = &self.inner.feedback_projects;
        if let Some(p) = cache.get(&feedback) {
            return Ok(Some(*p));
        }
        let project = self.inner.store.feedback_project(feedback).await?;
        if let Some(p) = project {
            if cache.len() >= FEEDBACK_CACHE_MAX {
                cache.clear();
            }
            cache.insert(feedback, p);
        }
        Ok(project)
    }

    /// Shutdown, first step: admits no more writes, waits (up to `deadline`)
    /// for those admitted to reach the persister, then lets it write all it
    /// holds — acknowledgements included — and stop.
    pub async fn flush_writes(&self, deadline: Duration) {
        let inner = &self.inner;
        inner.writes_closed.cancel();
        inner.in_flight.close();
        if tokio::time::timeout(deadline, inner.in_flight.wait())
            .await
            .is_err()
        {
            tracing::error!("writes in flight did not reach the persister before the deadline");
        }
        inner.persister_stop.cancel();
        let task = inner
            .persister_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && tokio::time::timeout(deadline, task).await.is_err()
        {
            tracing::error!("the persister did not flush before the deadline");
        }
    }

    /// Shutdown, last step (after sockets closed): leaves the cluster.
    pub async fn leave_cluster(&self) {
        self.inner.broker.shutdown().await;
    }
}
