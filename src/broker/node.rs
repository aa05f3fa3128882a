//! The node agent: one task per node that owns what this node holds in Redis
//! — which project channels it listens to, its presence contributions, its
//! heartbeat — and sweeps nodes that died without saying goodbye.
//!
//! Subscriptions follow the room lifecycle. A joining socket asks to
//! `Listen` (and waits for it) before loading history; a retiring room
//! reports `Retired`. The race of a room re-created while the old one's
//! retirement is still queued is settled here, in one place: a `Retired`
//! unsubscribes only if the registry has no room for the project *when the
//! agent handles it*, and both kinds of command are handled one at a time,
//! so the last word always matches the registry.
//!
//! Presence: a room reports a user's first and last socket on this node;
//! the agent runs an atomic script that counts nodes per user and announces
//! `presence_join` / `presence_leave` to every node only on the first /
//! last socket anywhere. Every node refreshes a heartbeat key with a TTL of
//! `node_ttl` every third of it; each node also sweeps: a node in the node
//! set whose heartbeat lapsed has its presence subtracted and its users who
//! are then offline everywhere announced as gone — within `node_ttl` plus
//! one sweep interval of the crash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{
    ClientLike, Expiration, KeysInterface, LuaInterface, PubsubInterface, SetsInterface,
};
use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::envelope::channel;
use super::redis::Inner;
use super::scripts;
use crate::room::RoomEvent;

/// What the rest of the broker asks of the agent.
#[derive(Debug)]
pub enum AgentCmd {
    /// Subscribe to the project's channel (if not yet), then reply.
    Listen {
        project: ProjectId,
        reply: oneshot::Sender<()>,
    },
    /// The subscriber reconnected: resubscribe, then tell rooms to resync.
    Reconnected,
    /// Leave the cluster: drop this node's presence, then reply and end.
    Stop { reply: oneshot::Sender<()> },
}

pub(super) struct NodeAgent {
    inner: Arc<Inner>,
    /// Projects this node wants to hear about; lives as long as the agent.
    listening: HashSet<ProjectId>,
}

impl NodeAgent {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            listening: HashSet::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<AgentCmd>,
        mut room_events: mpsc::Receiver<RoomEvent>,
    ) {
        let beat = (self.inner.node_ttl / 3).max(Duration::from_millis(100));
        let mut heartbeat = tokio::time::interval(beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(AgentCmd::Listen { project, reply }) => {
                        self.listen(project).await;
                        let _ = reply.send(());
                    }
                    Some(AgentCmd::Reconnected) => self.reconnected().await,
                    Some(AgentCmd::Stop { reply }) => {
                        self.leave_cluster().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                event = room_events.recv() => match event {
                    Some(event) => self.on_room_event(event).await,
                    None => return,
                },
                _ = heartbeat.tick() => {
                    self.beat().await;
                    self.sweep().await;
                }
            }
        }
    }

    async fn listen(&mut self, project: ProjectId) {
        if !self.listening.insert(project) {
            return;
        }
        if !self.inner.subscriber.is_connected() {
            // Resubscribed on reconnect.
            return;
        }
        if let Err(e) = self.inner.subscriber.subscribe(channel(project)).await {
            tracing::warn!(error = %e, project, "subscribing failed; retried on reconnect");
        }
    }

    async fn retired(&mut self, project: ProjectId) {
        if self.inner.registry.has_room(project) || !self.listening.remove(&project) {
            return;
        }
        if let Err(e) = self.inner.subscriber.unsubscribe(channel(project)).await {
            tracing::debug!(error = %e, project, "unsubscribing failed");
        }
    }

    async fn reconnected(&mut self) {
        let channels: Vec<String> = self.listening.iter().map(|p| channel(*p)).collect();
        if !channels.is_empty()
            && let Err(e) = self.inner.subscriber.subscribe(channels).await
        {
            tracing::warn!(error = %e, "resubscribing after a reconnect failed");
        }
        self.beat().await;
        self.inner
            .resync_all("the connection between servers was interrupted")
            .await;
    }

    async fn on_room_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::Retired(project) => self.retired(project).await,
            RoomEvent::UserOnline { project, user } => {
                match self.presence(scripts::ONLINE, project, user).await {
                    Ok(1) | Err(_) => {
                        self.inner
                            .publish(project, ServerMessage::PresenceJoin { user_id: user })
                            .await;
                    }
                    Ok(_) => {}
                }
            }
            RoomEvent::UserOffline { project, user } => {
                match self.presence(scripts::OFFLINE, project, user).await {
                    Ok(0) | Err(_) => {
                        self.inner
                            .publish(project, ServerMessage::PresenceLeave { user_id: user })
                            .await;
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    /// Runs a presence script; errors are logged (the caller falls back to
    /// announcing what this node saw).
    async fn presence(
        &self,
        script: &'static str,
        project: ProjectId,
        user: UserId,
    ) -> Result<i64, fred::error::Error> {
        let result = self
            .inner
            .client
            .eval(
                script,
                vec![
                    scripts::presence_key(project),
                    scripts::node_presence_key(self.inner.node),
                ],
                vec![scripts::presence_field(project, user), user.to_string()],
            )
            .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, project, user, "presence update failed");
        }
        result
    }

    /// Refreshes this node's heartbeat and registers it for sweeping.
    async fn beat(&self) {
        let ttl_ms = self.inner.node_ttl.as_millis().max(1) as i64;
        let alive: Result<(), _> = self
            .inner
            .client
            .set(
                scripts::alive_key(self.inner.node),
                "1",
                Some(Expiration::PX(ttl_ms)),
                None,
                false,
            )
            .await;
        let registered: Result<(), _> = self
            .inner
            .client
            .sadd(scripts::NODES, self.inner.node.to_string())
            .await;
        if let Err(e) = alive.and(registered) {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }

    /// Drops the presence of every node whose heartbeat lapsed.
    async fn sweep(&self) {
        let nodes: Vec<String> = match self.inner.client.smembers(scripts::NODES).await {
            Ok(nodes) => nodes,
            Err(_) => return,
        };
        for node in nodes {
            let Ok(node) = node.parse::<u64>() else {
                continue;
            };
            if node != self.inner.node {
                self.sweep_node(node).await;
            }
        }
    }

    /// Runs the sweep script for `node` and announces who went offline.
    async fn sweep_node(&self, node: u64) {
        let gone: Vec<String> = match self
            .inner
            .client
            .eval(
                scripts::SWEEP,
                vec![
                    scripts::node_presence_key(node),
                    scripts::NODES.to_owned(),
                    scripts::alive_key(node),
                ],
                vec![node.to_string(), scripts::PRESENCE_PREFIX.to_owned()],
            )
            .await
        {
            Ok(gone) => gone,
            Err(e) => {
                tracing::warn!(error = %e, node, "sweeping a node failed");
                return;
            }
        };
        if !gone.is_empty() {
            tracing::info!(
                node,
                users = gone.len(),
                "dropped the presence of a lost node"
            );
        }
        for field in gone {
            let Some((project, user)) = field.split_once(':') else {
                continue;
            };
            if let (Ok(project), Ok(user)) = (project.parse(), user.parse()) {
                self.inner
                    .publish(project, ServerMessage::PresenceLeave { user_id: user })
                    .await;
            }
        }
    }

    /// Graceful exit: stop being alive, then sweep ourselves.
    async fn leave_cluster(&self) {
        let _: Result<(), _> = self
            .inner
            .client
            .del(scripts::alive_key(self.inner.node))
            .await;
        self.sweep_node(self.inner.node).await;
    }
}
