//! The Redis broker: fans events out across nodes with Redis pub/sub (fred),
//! and keeps cross-node presence and per-user socket counts in Redis.
//!
//! - Publishing delivers to this node's room at once, then queues a
//!   MessagePack [`Envelope`] for the publisher task, which writes queued
//!   envelopes in one pipeline per wake (order kept). A node ignores its own
//!   echo by the envelope's origin.
//! - The subscriber's receive buffer (fred's broadcast channel, 32 by
//!   default) is sized by configuration; a `Lagged` receive means envelopes
//!   were dropped: they are counted in `vridge_broker_lost_total` and every
//!   room on this node tells its clients to `resync`. A reconnect does the
//!   same once the node has resubscribed, since anything published while it
//!   was away is gone.
//! - fred reconnects by itself (a [`ReconnectPolicy`] is set) and
//!   `manage_subscriptions()` resubscribes its tracked channels; the node
//!   agent ([`super::node`]) also resubscribes the projects it wants, because
//!   fred tracks only subscriptions that succeeded.
//! - Either connection reconnecting makes the node agent heartbeat at once,
//!   so a node is registered again as soon as Redis is back.
//! - Each node remembers which users its members were told are online
//!   (presence events it delivered, and the lists joiners got), so that
//!   after Redis lost its data it can announce the users no node
//!   registered again (see [`super::node`]).
//! - While Redis is down, local rooms keep working: publishing still
//!   delivers locally, socket limits fall back to this node's count, and
//!   presence falls back to this node's view.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, EventInterface, HashesInterface,
    LuaInterface, PubsubInterface, ReconnectPolicy, Value,
};
use fred::types::ClientState;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::envelope::{Envelope, NodeId, Payload, channel};
use super::node::{AgentCmd, NodeAgent};
use super::scripts;
use crate::metrics::Metrics;
use crate::room::{Registry, RoomEvent};

/// Envelopes queued for publishing before new ones count as lost.
const OUTGOING_QUEUE: usize = 65_536;
/// Most envelopes written in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// No Redis command waits longer than this; then the caller degrades.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a joining socket waits for its project's subscription.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of the Redis broker, from configuration.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Capacity of the subscriber's receive buffer (fred's broadcast channel).
    pub receive_buffer: usize,
    /// A node whose heartbeat is older than this is dropped from presence.
    pub node_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    Disconnected,
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

/// Handle to the Redis broker. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    /// This process, for its whole life.
    pub(super) node: NodeId,
    pub(super) registry: Registry,
    /// Commands, scripts and publishing.
    pub(super) client: Client,
    /// Receives the channels of projects this node has rooms for.
    pub(super) subscriber: SubscriberClient,
    pub(super) metrics: Arc<Metrics>,
    pub(super) node_ttl: Duration,
    /// Encoded envelopes for the publisher task, with their project.
    outgoing: mpsc::Sender<(ProjectId, Bytes)>,
    /// Commands for the node agent.
    agent: mpsc::Sender<AgentCmd>,
    /// Stops the receiver and publisher tasks.
    stop: CancellationToken,
    /// The background tasks, awaited at shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// fred's resubscribing task; it runs until aborted at shutdown.
    resubscriber: Mutex<Option<JoinHandle<()>>>,
    /// Per project with a room here: the users this node's members were
    /// told are online (by `presence_join`, or in `initial_state`), less
    /// those since announced gone. Dropped when the project stops being
    /// listened to; a std mutex, never held across an `.await`.
    presence_seen: std::sync::Mutex<HashMap<ProjectId, HashSet<UserId>>>,
}

impl RedisBroker {
    /// Connects both clients, starts the receiver, publisher and node agent.
    /// `room_events` is the receiving end of the registry's hooks.
    pub async fn connect(
        settings: RedisSettings,
        registry: Registry,
        room_events: mpsc::Receiver<RoomEvent>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BrokerError> {
        let config = RedisConfig::from_url(&settings.url)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                p.broadcast_channel_capacity = settings.receive_buffer.max(32);
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
            })
            // 0 attempts = keep trying forever, backing off to 1 s.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client.init().await?;
        subscriber.init().await?;
        let resubscriber = subscriber.manage_subscriptions();

        let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (agent_tx, agent_rx) = mpsc::channel(1024);
        let inner = Arc::new(Inner {
            node: rand::random(),
            registry,
            client,
            subscriber,
            metrics,
            node_ttl: settings.node_ttl,
            outgoing: outgoing_tx,
            agent: agent_tx,
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            resubscriber: Mutex::new(Some(resubscriber)),
            presence_seen: std::sync::Mutex::new(HashMap::new()),
        });
        let receiver = tokio::spawn(receive(
            inner.clone(),
            inner.subscriber.message_rx(),
            inner.subscriber.reconnect_rx(),
            inner.client.reconnect_rx(),
        ));
        let publisher = tokio::spawn(publish_queued(inner.clone(), outgoing_rx));
        let agent = tokio::spawn(NodeAgent::new(inner.clone()).run(agent_rx, room_events));
        inner
            .tasks
            .lock()
            .await
            .extend([receiver, publisher, agent]);
        tracing::info!(node = inner.node, "redis broker connected");
        Ok(Self { inner })
    }

    /// This process's node id.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Delivers to this node's members now, and queues the event for the
    /// other nodes (never waits on Redis).
    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        self.inner.publish(project, msg).await;
    }

    /// Closes `user`'s sockets to the project here now, and on other nodes
    /// once they receive the envelope.
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        self.inner.registry.evict(project, user, code).await;
        self.inner.send(&Envelope {
            origin: self.inner.node,
            project,
            payload: Payload::Evict { user, code },
        });
    }

    /// Both connections are up and Redis answers a PING in time.
    pub async fn ready(&self) -> bool {
        if self.inner.subscriber.state() != ClientState::Connected {
            return false;
        }
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                self.inner.client.ping::<String>(None)
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// Makes sure this node receives the project's events from other nodes
    /// before a joining socket loads its history (so nothing committed
    /// meanwhile slips between the two). Gives up after a few seconds, so a
    /// Redis outage does not stop local joins.
    pub async fn listen(&self, project: ProjectId) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .agent
            .send(AgentCmd::Listen { project, reply })
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(LISTEN_TIMEOUT, done).await;
    }

    /// Users online in the project on any node, merged with `local` (this
    /// node's view, which is all there is while Redis is unreachable).
    pub async fn online_users(&self, project: ProjectId, local: Vec<UserId>) -> Vec<UserId> {
        let mut users = local;
        if !self.inner.connected() {
            return users;
        }
        let remote = self
            .inner
            .client
            .hkeys::<Vec<String>, _>(scripts::presence_key(project))
            .await;
        match remote {
            Ok(ids) => users.extend(ids.iter().filter_map(|s| s.parse::<UserId>().ok())),
            Err(e) => tracing::warn!(error = %e, "reading presence failed; local view only"),
        }
        users.sort_unstable();
        users.dedup();
        self.inner.note_online(project, &users);
        users
    }

    /// Takes one of `user`'s socket slots across all nodes. `Ok(None)`: the
    /// user already holds `max`. When Redis cannot answer, the caller's
    /// local limit is all that applies (`Err`).
    pub async fn acquire_socket(
        &self,
        user: UserId,
        max: usize,
    ) -> Result<Option<RemoteSocketSlot>, BrokerError> {
        if !self.inner.connected() {
            return Err(BrokerError::Disconnected);
        }
        let taken: i64 = self
            .inner
            .client
            .eval(
                scripts::SOCKET_ACQUIRE,
                vec![scripts::sockets_key(user)],
                vec![
                    self.inner.node.to_string(),
                    max.to_string(),
                    scripts::NODE_PREFIX.to_owned(),
                ],
            )
            .await?;
        Ok((taken == 1).then(|| RemoteSocketSlot {
            inner: self.inner.clone(),
            user,
        }))
    }

    /// Leaves the cluster cleanly: drops this node's presence (announcing
    /// the users who went offline), flushes queued envelopes and closes the
    /// connections. Call after sockets closed and the persister flushed.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .agent
            .send(AgentCmd::Stop { reply })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, done).await;
        }
        self.inner.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().await.drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(COMMAND_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(resubscriber) = self.inner.resubscriber.lock().await.take() {
            resubscriber.abort();
        }
        let _ = self.inner.client.quit().await;
        let _ = self.inner.subscriber.quit().await;
    }
}

impl Inner {
    /// Whether the command connection is up. While it is not, callers skip
    /// Redis at once instead of waiting for a command timeout, so joins and
    /// presence stay fast during an outage.
    pub(super) fn connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Delivers to this node's members now, then to every other node.
    pub(super) async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        self.note_presence(project, &msg);
        let envelope = Envelope {
            origin: self.node,
            project,
            payload: Payload::Event { message: msg },
        };
        self.send(&envelope);
        if let Payload::Event { message } = envelope.payload {
            self.registry.deliver(project, Arc::new(message)).await;
        }
    }

    /// Sends an event to the other nodes only (this node's members already
    /// have it).
    pub(super) fn send_remote(&self, project: ProjectId, msg: ServerMessage) {
        self.send(&Envelope {
            origin: self.node,
            project,
            payload: Payload::Event { message: msg },
        });
    }

    /// Queues an envelope for other nodes; never waits. A full queue (Redis
    /// far behind or away) counts as a loss.
    fn send(&self, envelope: &Envelope) {
        let bytes = match envelope.encode() {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "encoding an envelope failed");
                return;
            }
        };
        if self.outgoing.try_send((envelope.project, bytes)).is_err() {
            self.metrics.broker_lost.fetch_add(1, Relaxed);
        }
    }

    fn presence_seen(&self) -> std::sync::MutexGuard<'_, HashMap<ProjectId, HashSet<UserId>>> {
        // The map stays consistent even if a holder panicked.
        self.presence_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers what a presence event delivered to this node's members of
    /// `project` tells them (other events are ignored).
    pub(super) fn note_presence(&self, project: ProjectId, msg: &ServerMessage) {
        match msg {
            ServerMessage::PresenceJoin { user_id } if self.registry.has_room(project) => {
                self.presence_seen()
                    .entry(project)
                    .or_default()
                    .insert(*user_id);
            }
            ServerMessage::PresenceLeave { user_id } => {
                if let Some(users) = self.presence_seen().get_mut(&project) {
                    users.remove(user_id);
                }
            }
            _ => {}
        }
    }

    /// Remembers the users a joiner of `project` was told are online.
    fn note_online(&self, project: ProjectId, users: &[UserId]) {
        if self.registry.has_room(project) {
            self.presence_seen()
                .entry(project)
                .or_default()
                .extend(users.iter().copied());
        }
    }

    /// Forgets, and returns, the users of `project` this node's members
    /// were told are online for whom `still_online` is false.
    pub(super) fn take_stale_presence(
        &self,
        project: ProjectId,
        still_online: impl Fn(UserId) -> bool,
    ) -> Vec<UserId> {
        let mut seen = self.presence_seen();
        let Some(users) = seen.get_mut(&project) else {
            return Vec::new();
        };
        let stale: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| !still_online(*u))
            .collect();
        for user in &stale {
            users.remove(user);
        }
        stale
    }

    /// The project has no room here any more: nobody to remember for.
    pub(super) fn forget_presence(&self, project: ProjectId) {
        self.presence_seen().remove(&project);
    }

    /// Tells every room on this node that events may have been lost.
    pub(super) async fn resync_all(&self, reason: &str) {
        for project in self.registry.active_projects() {
            let msg = ServerMessage::Resync {
                reason: reason.to_owned(),
            };
            self.registry.deliver(project, Arc::new(msg)).await;
        }
    }
}

/// Receives other nodes' envelopes and hands them to this node's rooms.
async fn receive(
    inner: Arc<Inner>,
    mut messages: broadcast::Receiver<fred::types::Message>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    mut client_reconnects: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            reconnect = client_reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = inner.agent.try_send(AgentCmd::Beat);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tracing::warn!("redis subscriber reconnected");
                    let _ = inner.agent.try_send(AgentCmd::Reconnected);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = messages.recv() => match message {
                Ok(message) => on_message(&inner, message).await,
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "redis receive buffer overflowed");
                    inner.metrics.broker_lost.fetch_add(lost, Relaxed);
                    inner.resync_all("events were lost between servers").await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

async fn on_message(inner: &Inner, message: fred::types::Message) {
    let Some(bytes) = message.value.as_bytes() else {
        return;
    };
    let envelope = match Envelope::decode(bytes) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an undecodable envelope");
            return;
        }
    };
    if envelope.origin == inner.node {
        return;
    }
    match envelope.payload {
        Payload::Event { message } => {
            inner.note_presence(envelope.project, &message);
            inner
                .registry
                .deliver(envelope.project, Arc::new(message))
                .await;
        }
        Payload::Evict { user, code } => {
            inner.registry.evict(envelope.project, user, code).await;
        }
    }
}

/// Writes queued envelopes, several per pipeline, in queue order.
async fn publish_queued(inner: Arc<Inner>, mut rx: mpsc::Receiver<(ProjectId, Bytes)>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            () = inner.stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < PUBLISH_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        write_batch(&inner, &mut batch).await;
    }
    // Flush what is still queued, then stop.
    while let Ok(item) = rx.try_recv() {
        batch.push(item);
        if batch.len() == PUBLISH_BATCH {
            write_batch(&inner, &mut batch).await;
        }
    }
    write_batch(&inner, &mut batch).await;
}

async fn write_batch(inner: &Inner, batch: &mut Vec<(ProjectId, Bytes)>) {
    if batch.is_empty() {
        return;
    }
    if !inner.connected() {
        // Gone either way; the nodes' rooms resync when Redis is back.
        inner
            .metrics
            .broker_lost
            .fetch_add(batch.len() as u64, Relaxed);
        batch.clear();
        return;
    }
    let pipeline = inner.client.pipeline();
    let mut queued = 0u64;
    for (project, payload) in batch.drain(..) {
        if pipeline
            .publish::<Value, _, _>(channel(project), payload)
            .await
            .is_ok()
        {
            queued += 1;
        }
    }
    if let Err(e) = pipeline.all::<Vec<Value>>().await {
        tracing::warn!(error = %e, envelopes = queued, "publishing to redis failed");
        inner.metrics.broker_lost.fetch_add(queued, Relaxed);
    }
}

/// One socket slot counted in Redis; given back when dropped.
pub struct RemoteSocketSlot {
    inner: Arc<Inner>,
    user: UserId,
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
        let inner = self.inner.clone();
        let user = self.user;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let released: Result<i64, _> = inner
                    .client
                    .eval(
                        scripts::SOCKET_RELEASE,
                        vec![scripts::sockets_key(user)],
                        vec![inner.node.to_string()],
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
