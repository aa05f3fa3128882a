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
//!
//! The agent mirrors which users this node holds in which project (it sees
//! every first/last-socket event, in order). When its heartbeat finds its
//! own key gone — Redis restarted empty, or this node was swept while it
//! could not reach Redis — it registers those users again, announcing the
//! ones no other node holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{
    ClientLike, Expiration, KeysInterface, LuaInterface, PubsubInterface, SetsInterface,
};
use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::envelope::channel;
use super::redis::{BrokerError, Inner};
use super::scripts;
use crate::room::RoomEvent;

/// How a heartbeat went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// The previous heartbeat was still alive.
    Fresh,
    /// This node's key was gone: first beat, Redis lost it, or it expired.
    Lapsed,
    /// Redis did not answer.
    Failed,
}

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
    /// Users with a socket on this node, per project, as rooms reported them.
    local: HashMap<ProjectId, HashSet<UserId>>,
}

impl NodeAgent {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            listening: HashSet::new(),
            local: HashMap::new(),
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
                    if self.beat().await == Beat::Lapsed {
                        self.restore_presence().await;
                    }
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
        if self.beat().await == Beat::Lapsed {
            self.restore_presence().await;
        }
        self.inner
            .resync_all("the connection between servers was interrupted")
            .await;
    }

    async fn on_room_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::Retired(project) => self.retired(project).await,
            RoomEvent::UserOnline { project, user } => {
                self.local.entry(project).or_default().insert(user);
                match self.presence(scripts::ONLINE, project, user).await {
                    Ok(1) | Err(_) => {
                        self.inner
                            .publish(project, ServerMessage::PresenceJoin { user_id: user })
                            .await;
                    }
                    Ok(_) => {}
                }
            }
            RoomEvent::TypingStopped { project, user } => {
                // This node's members were told already.
                self.inner.send_remote(
                    project,
                    ServerMessage::Typing {
                        user_id: user,
                        is_typing: false,
                    },
                );
            }
            RoomEvent::UserOffline { project, user } => {
                if let Some(users) = self.local.get_mut(&project) {
                    users.remove(&user);
                    if users.is_empty() {
                        self.local.remove(&project);
                    }
                }
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
    ) -> Result<i64, BrokerError> {
        if !self.inner.connected() {
            return Err(BrokerError::Disconnected);
        }
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
            .await
            .map_err(BrokerError::from);
        if let Err(e) = &result {
            tracing::warn!(error = %e, project, user, "presence update failed");
        }
        result
    }

    /// Refreshes this node's heartbeat and registers it for sweeping; tells
    /// whether the previous heartbeat had lapsed (or this is the first).
    async fn beat(&self) -> Beat {
        if !self.inner.connected() {
            return Beat::Failed;
        }
        let ttl_ms = self.inner.node_ttl.as_millis().max(1) as i64;
        let previous: Result<Option<String>, _> = self
            .inner
            .client
            .set(
                scripts::alive_key(self.inner.node),
                "1",
                Some(Expiration::PX(ttl_ms)),
                None,
                true,
            )
            .await;
        let registered: Result<(), _> = self
            .inner
            .client
            .sadd(scripts::NODES, self.inner.node.to_string())
            .await;
        match (previous, registered) {
            (Ok(Some(_)), Ok(())) => Beat::Fresh,
            (Ok(None), Ok(())) => Beat::Lapsed,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "heartbeat failed");
                Beat::Failed
            }
        }
    }

    /// Registers again every user this node holds that Redis does not count
    /// for it, announcing those no other node holds.
    async fn restore_presence(&self) {
        let held: Vec<(ProjectId, UserId)> = self
            .local
            .iter()
            .flat_map(|(p, users)| users.iter().map(move |u| (*p, *u)))
            .collect();
        for (project, user) in held {
            if let Ok(1) = self.presence(scripts::RESTORE, project, user).await {
                self.inner
                    .publish(project, ServerMessage::PresenceJoin { user_id: user })
                    .await;
            }
        }
    }

    /// Drops the presence of every node whose heartbeat lapsed.
    async fn sweep(&self) {
        if !self.inner.connected() {
            return;
        }
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
