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

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{
    Builder, ClientLike, Config as RedisConfig, EventInterface, PubsubInterface, ReconnectPolicy,
    Value,
};
use fred::types::ClientState;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::envelope::{Envelope, NodeId, Payload, channel};
use super::link::Link;
use super::node::{AgentCmd, NodeAgent};
use super::presence::{Presence, PresenceEvent, RedisPresence};
use super::{BrokerError, Deliveries};
use crate::metrics::Metrics;

/// Envelopes queued for publishing before new ones count as lost.
const OUTGOING_QUEUE: usize = 65_536;
/// Most envelopes written in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// No Redis command waits longer than this; then the caller degrades.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Presence reports of rooms queued for the node agent before new ones
/// count as lost (rooms never wait on it).
const PRESENCE_REPORTS: usize = 65_536;
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

/// Handle to the Redis broker. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    link: Arc<Link>,
    control: Arc<Control>,
}

/// The broker's own tasks and queues, beside the [`Link`] it shares.
struct Control {
    /// Commands for the node agent.
    agent: mpsc::Sender<AgentCmd>,
    /// Rooms' presence reports for the node agent (see [`Presence`]).
    reports: mpsc::Sender<PresenceEvent>,
    /// Stops the receiver and publisher tasks.
    stop: CancellationToken,
    /// The background tasks, awaited at shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// fred's resubscribing task; it runs until aborted at shutdown.
    resubscriber: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node", &self.link.node)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects both clients, starts the receiver, publisher and node agent.
    /// Deliveries start once [`attach`](Self::attach) names this node's rooms.
    pub async fn connect(
        settings: RedisSettings,
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
        let (reports_tx, reports_rx) = mpsc::channel(PRESENCE_REPORTS);
        let link = Arc::new(Link {
            node: rand::random(),
            rooms: OnceLock::new(),
            client,
            subscriber,
            metrics,
            node_ttl: settings.node_ttl,
            outgoing: outgoing_tx,
            presence_seen: std::sync::Mutex::new(HashMap::new()),
        });
        let stop = CancellationToken::new();
        let receiver = tokio::spawn(receive(
            link.clone(),
            agent_tx.clone(),
            stop.clone(),
            link.subscriber.message_rx(),
            link.subscriber.reconnect_rx(),
            link.client.reconnect_rx(),
        ));
        let publisher = tokio::spawn(publish_queued(link.clone(), stop.clone(), outgoing_rx));
        let agent = tokio::spawn(NodeAgent::new(link.clone()).run(agent_rx, reports_rx));
        tracing::info!(node = link.node, "redis broker connected");
        Ok(Self {
            link,
            control: Arc::new(Control {
                agent: agent_tx,
                reports: reports_tx,
                stop,
                tasks: Mutex::new(vec![receiver, publisher, agent]),
                resubscriber: Mutex::new(Some(resubscriber)),
            }),
        })
    }

    /// Names this node's rooms: from now on, other nodes' events are
    /// delivered to them. Set once; later calls are ignored.
    pub fn attach(&self, rooms: Arc<dyn Deliveries>) {
        let _ = self.link.rooms.set(rooms);
    }

    /// The presence engine of this broker: rooms report to the node agent,
    /// which announces across nodes; counts and lists come from Redis.
    pub fn presence(&self) -> Presence {
        Presence::Redis(RedisPresence::new(
            Some(self.link.clone()),
            self.control.reports.clone(),
        ))
    }

    /// This process's node id.
    pub fn node(&self) -> NodeId {
        self.link.node
    }

    /// Queues the event for the other nodes (never waits on Redis), then
    /// delivers it to this node's members.
    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        self.link.publish(project, msg).await;
    }

    /// Closes `user`'s sockets to the project here now, and on other nodes
    /// once they receive the envelope.
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        self.link.evict_here(project, user, code).await;
        self.link.send_evict(project, user, code);
    }

    /// Both connections are up and Redis answers a PING in time.
    pub async fn ready(&self) -> bool {
        if self.link.subscriber.state() != ClientState::Connected {
            return false;
        }
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                self.link.client.ping::<String>(None)
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
            .control
            .agent
            .send(AgentCmd::Listen { project, reply })
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(LISTEN_TIMEOUT, done).await;
    }

    /// Leaves the cluster cleanly: drops this node's presence (announcing
    /// the users who went offline), flushes queued envelopes and closes the
    /// connections. Call after sockets closed and the persister flushed.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .control
            .agent
            .send(AgentCmd::Stop { reply })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, done).await;
        }
        self.control.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = self.control.tasks.lock().await.drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(COMMAND_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(resubscriber) = self.control.resubscriber.lock().await.take() {
            resubscriber.abort();
        }
        let _ = self.link.client.quit().await;
        let _ = self.link.subscriber.quit().await;
    }
}

/// Receives other nodes' envelopes and hands them to this node's rooms.
async fn receive(
    link: Arc<Link>,
    agent: mpsc::Sender<AgentCmd>,
    stop: CancellationToken,
    mut messages: broadcast::Receiver<fred::types::Message>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    mut client_reconnects: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            reconnect = client_reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = agent.try_send(AgentCmd::Beat);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tracing::warn!("redis subscriber reconnected");
                    let _ = agent.try_send(AgentCmd::Reconnected);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = messages.recv() => match message {
                Ok(message) => on_message(&link, message).await,
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "redis receive buffer overflowed");
                    link.metrics.broker_lost.fetch_add(lost, Relaxed);
                    link.resync_all("events were lost between servers").await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

async fn on_message(link: &Link, message: fred::types::Message) {
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
    if envelope.origin == link.node {
        return;
    }
    match envelope.payload {
        Payload::Event { message } => {
            link.note_presence(envelope.project, &message);
            link.deliver(envelope.project, Arc::new(message)).await;
        }
        Payload::Evict { user, code } => {
            link.evict_here(envelope.project, user, code).await;
        }
    }
}

/// Writes queued envelopes, several per pipeline, in queue order.
async fn publish_queued(
    link: Arc<Link>,
    stop: CancellationToken,
    mut rx: mpsc::Receiver<(ProjectId, Bytes)>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < PUBLISH_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        write_batch(&link, &mut batch).await;
    }
    // Flush what is still queued, then stop.
    while let Ok(item) = rx.try_recv() {
        batch.push(item);
        if batch.len() == PUBLISH_BATCH {
            write_batch(&link, &mut batch).await;
        }
    }
    write_batch(&link, &mut batch).await;
}

async fn write_batch(link: &Link, batch: &mut Vec<(ProjectId, Bytes)>) {
    if batch.is_empty() {
        return;
    }
    if !link.connected() {
        // Gone either way; the nodes' rooms resync when Redis is back.
        link.metrics
            .broker_lost
            .fetch_add(batch.len() as u64, Relaxed);
        batch.clear();
        return;
    }
    let pipeline = link.client.pipeline();
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
        link.metrics.broker_lost.fetch_add(queued, Relaxed);
    }
}
