//! The node agent: one task per node that owns what this node holds in Redis
//! — which project channels it listens to, its presence contributions, its
//! heartbeat — and sweeps nodes that died without saying goodbye.
//!
//! Subscriptions follow the room lifecycle. A joining socket asks to
//! `Listen` (and waits for it) before loading history; a retiring room
//! reports `Retired`. The race of a room re-created while the old one's
//! retirement is still queued is settled here, in one place: a `Retired`
//! unsubscribes only if this node has no room for the project *when the
//! agent handles it*, and both kinds of command are handled one at a time,
//! so the last word always matches the rooms.
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
//! every first/last-socket event, in order). When it finds its own
//! heartbeat key gone — Redis restarted empty, or this node was swept while
//! it could not reach Redis — it registers those users again, announcing
//! the ones no other node holds, and keeps retrying until every one is back
//! (a restore cut short by another outage is not forgotten). Every presence
//! write registers the node in the same script (see [`scripts`]), and a
//! reconnect of either Redis connection triggers a heartbeat at once, so
//! there is no moment in which this node holds presence no sweeper can find.
//!
//! What Redis forgot, the sweepers cannot sweep: a node that died after
//! Redis came back empty but before it registered again leaves no trace,
//! yet other nodes' members were told its users joined. So after each loss
//! it notices, the agent waits one node TTL — every live node has
//! heartbeat and restored by then, the same rule the sweep applies — and
//! reconciles: users this node's members were told are online (see
//! [`Link::note_presence`]) whom no node counts any more are announced
//! gone to this node's members.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use fred::prelude::{
    ClientLike, HashesInterface, KeysInterface, LuaInterface, PubsubInterface, SetsInterface,
};
use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::BrokerError;
use super::envelope::channel;
use super::link::Link;
use super::presence::PresenceEvent;
use super::scripts;

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
    /// The subscriber reconnected: resubscribe, heartbeat, then tell rooms
    /// to resync.
    Reconnected,
    /// The command connection reconnected: heartbeat (and restore) now,
    /// not at the next tick.
    Beat,
    /// Leave the cluster: drop this node's presence, then reply and end.
    Stop { reply: oneshot::Sender<()> },
}

pub(super) struct NodeAgent {
    /// The connections and rooms it shares with the broker handle.
    link: Arc<Link>,
    /// Projects this node wants to hear about; lives as long as the agent.
    listening: HashSet<ProjectId>,
    /// Users with a socket on this node, per project, as rooms reported them
    /// (a user whose leave a room holds back is still here).
    local: HashMap<ProjectId, HashSet<UserId>>,
    /// Redis may not count every user in `local` for this node: set when
    /// the heartbeat key was found gone, cleared once a restore completed.
    restore_pending: bool,
    /// When to reconcile this node's members' view of presence with Redis
    /// after a loss of Redis data; `None`: no loss pending.
    reconcile_at: Option<Instant>,
}

impl NodeAgent {
    pub(super) fn new(link: Arc<Link>) -> Self {
        Self {
            link,
            listening: HashSet::new(),
            local: HashMap::new(),
            restore_pending: false,
            reconcile_at: None,
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<AgentCmd>,
        mut room_events: mpsc::Receiver<PresenceEvent>,
    ) {
        let beat = (self.link.node_ttl / 3).max(Duration::from_millis(100));
        let mut heartbeat = tokio::time::interval(beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconcile_at = self.reconcile_at;
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(AgentCmd::Listen { project, reply }) => {
                        self.listen(project).await;
                        let _ = reply.send(());
                    }
                    Some(AgentCmd::Reconnected) => self.reconnected().await,
                    Some(AgentCmd::Beat) => self.heartbeat().await,
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
                    self.heartbeat().await;
                    self.sweep().await;
                }
                () = sleep_until(reconcile_at.unwrap_or_else(Instant::now)), if reconcile_at.is_some() => {
                    // A joiner's online list may name a local user whose
                    // first-socket report is still queued: take those in
                    // first, so `local` knows them.
                    while let Ok(event) = room_events.try_recv() {
                        self.on_room_event(event).await;
                    }
                    self.reconcile_at = if self.reconcile().await {
                        None
                    } else {
                        Some(Instant::now() + beat)
                    };
                }
            }
        }
    }

    async fn listen(&mut self, project: ProjectId) {
        if !self.listening.insert(project) {
            return;
        }
        if !self.link.subscriber.is_connected() {
            // Resubscribed on reconnect.
            return;
        }
        if let Err(e) = self.link.subscriber.subscribe(channel(project)).await {
            tracing::warn!(error = %e, project, "subscribing failed; retried on reconnect");
        }
    }

    async fn retired(&mut self, project: ProjectId) {
        if self.link.has_room(project) || !self.listening.remove(&project) {
            return;
        }
        self.link.forget_presence(project);
        if let Err(e) = self.link.subscriber.unsubscribe(channel(project)).await {
            tracing::debug!(error = %e, project, "unsubscribing failed");
        }
    }

    async fn reconnected(&mut self) {
        let channels: Vec<String> = self.listening.iter().map(|p| channel(*p)).collect();
        if !channels.is_empty()
            && let Err(e) = self.link.subscriber.subscribe(channels).await
        {
            tracing::warn!(error = %e, "resubscribing after a reconnect failed");
        }
        self.heartbeat().await;
        self.link
            .resync_all("the connection between servers was interrupted")
            .await;
    }

    async fn on_room_event(&mut self, event: PresenceEvent) {
        match event {
            PresenceEvent::Retired(project) => self.retired(project).await,
            PresenceEvent::UserOnline { project, user } => {
                self.local.entry(project).or_default().insert(user);
                match self.register(scripts::ONLINE, project, user).await {
                    Ok((nodes, lapsed)) => {
                        if nodes == 1 {
                            self.link
                                .publish(project, ServerMessage::PresenceJoin { user_id: user })
                                .await;
                        }
                        if lapsed {
                            // Redis lost this node's keys: put the others
                            // back now rather than at the next tick.
                            self.lost_state();
                            self.heartbeat().await;
                        }
                    }
                    Err(_) => {
                        // Counted by the next restore; announced now, as
                        // this node sees it.
                        self.restore_pending = true;
                        self.link
                            .publish(project, ServerMessage::PresenceJoin { user_id: user })
                            .await;
                    }
                }
            }
            PresenceEvent::TypingStopped { project, user } => {
                // This node's members were told already.
                self.link.send_remote(
                    project,
                    &ServerMessage::Typing {
                        user_id: user,
                        is_typing: false,
                    },
                );
            }
            PresenceEvent::UserOffline { project, user } => {
                if let Some(users) = self.local.get_mut(&project) {
                    users.remove(&user);
                    if users.is_empty() {
                        self.local.remove(&project);
                    }
                }
                match self.offline(project, user).await {
                    Ok(0) | Err(_) => {
                        self.link
                            .publish(project, ServerMessage::PresenceLeave { user_id: user })
                            .await;
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    /// Runs [`scripts::ONLINE`] or [`scripts::RESTORE`] for a user of this
    /// node: the nodes counting the user afterwards (-1: already counted),
    /// and whether this node's heartbeat key had been gone. Errors are
    /// logged (the caller falls back to what this node saw).
    async fn register(
        &self,
        script: &'static str,
        project: ProjectId,
        user: UserId,
    ) -> Result<(i64, bool), BrokerError> {
        if !self.link.connected() {
            return Err(BrokerError::Disconnected);
        }
        let result: Result<Vec<i64>, BrokerError> = self
            .link
            .client
            .eval(
                script,
                vec![
                    scripts::presence_key(project),
                    scripts::node_presence_key(self.link.node),
                    scripts::alive_key(self.link.node),
                    scripts::NODES.to_owned(),
                ],
                vec![
                    scripts::presence_field(project, user),
                    user.to_string(),
                    self.link.node.to_string(),
                    self.ttl_ms().to_string(),
                ],
            )
            .await
            .map_err(BrokerError::from);
        match result {
            Ok(reply) => match reply[..] {
                [nodes, lapsed] => Ok((nodes, lapsed == 1)),
                _ => {
                    let e = BrokerError::Reply(format!("{reply:?}"));
                    tracing::warn!(error = %e, project, user, "presence update failed");
                    Err(e)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, project, user, "presence update failed");
                Err(e)
            }
        }
    }

    /// Runs [`scripts::OFFLINE`]: the nodes still counting the user.
    async fn offline(&self, project: ProjectId, user: UserId) -> Result<i64, BrokerError> {
        if !self.link.connected() {
            return Err(BrokerError::Disconnected);
        }
        let result = self
            .link
            .client
            .eval(
                scripts::OFFLINE,
                vec![
                    scripts::presence_key(project),
                    scripts::node_presence_key(self.link.node),
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

    fn ttl_ms(&self) -> i64 {
        self.link.node_ttl.as_millis().clamp(1, i64::MAX as u128) as i64
    }

    /// Redis lost what this node had written (or never had it): restore it,
    /// and reconcile this node's members' view once every live node has had
    /// a node TTL to restore theirs.
    fn lost_state(&mut self) {
        self.restore_pending = true;
        self.reconcile_at = Some(Instant::now() + self.link.node_ttl);
    }

    /// A heartbeat, then a restore if one is owed.
    async fn heartbeat(&mut self) {
        if self.beat().await == Beat::Lapsed {
            self.lost_state();
        }
        if self.restore_pending {
            self.restore_pending = !self.restore_presence().await;
        }
    }

    /// Refreshes this node's heartbeat and registers it for sweeping (one
    /// script); tells whether the previous heartbeat had lapsed (or this is
    /// the first).
    async fn beat(&self) -> Beat {
        if !self.link.connected() {
            return Beat::Failed;
        }
        let alive: Result<i64, _> = self
            .link
            .client
            .eval(
                scripts::BEAT,
                vec![
                    scripts::alive_key(self.link.node),
                    scripts::NODES.to_owned(),
                ],
                vec![self.link.node.to_string(), self.ttl_ms().to_string()],
            )
            .await;
        match alive {
            Ok(1) => Beat::Fresh,
            Ok(_) => Beat::Lapsed,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                Beat::Failed
            }
        }
    }

    /// Registers again every user this node holds that Redis does not count
    /// for it, announcing those no other node holds. True when every user
    /// was answered for.
    async fn restore_presence(&mut self) -> bool {
        let held: Vec<(ProjectId, UserId)> = self
            .local
            .iter()
            .flat_map(|(p, users)| users.iter().map(move |u| (*p, *u)))
            .collect();
        let mut complete = true;
        for (project, user) in held {
            match self.register(scripts::RESTORE, project, user).await {
                Ok((nodes, lapsed)) => {
                    if lapsed {
                        // Lost again since the heartbeat: go round once more.
                        self.lost_state();
                        complete = false;
                    }
                    if nodes == 1 {
                        self.link
                            .publish(project, ServerMessage::PresenceJoin { user_id: user })
                            .await;
                    }
                }
                Err(_) => complete = false,
            }
        }
        complete
    }

    /// After a loss of Redis data: users this node's members were told are
    /// online, whom neither Redis nor this node counts any more, are
    /// announced gone to this node's members (their node died before it
    /// could register them again). False when Redis could not answer.
    async fn reconcile(&mut self) -> bool {
        if !self.link.connected() {
            return false;
        }
        let projects: Vec<ProjectId> = self.listening.iter().copied().collect();
        for project in projects {
            let online: Vec<String> =
                match self.link.client.hkeys(scripts::presence_key(project)).await {
                    Ok(users) => users,
                    Err(e) => {
                        tracing::warn!(error = %e, project, "reading presence to reconcile failed");
                        return false;
                    }
                };
            let online: HashSet<UserId> = online.iter().filter_map(|u| u.parse().ok()).collect();
            let here = self.local.get(&project);
            let stale = self.link.take_stale_presence(project, |user| {
                online.contains(&user) || here.is_some_and(|h| h.contains(&user))
            });
            if !stale.is_empty() {
                tracing::info!(
                    project,
                    users = stale.len(),
                    "announcing users Redis forgot as gone"
                );
            }
            for user in stale {
                self.link
                    .deliver(
                        project,
                        Arc::new(ServerMessage::PresenceLeave { user_id: user }),
                    )
                    .await;
            }
        }
        true
    }

    /// Drops the presence of every node whose heartbeat lapsed.
    async fn sweep(&self) {
        if !self.link.connected() {
            return;
        }
        let nodes: Vec<String> = match self.link.client.smembers(scripts::NODES).await {
            Ok(nodes) => nodes,
            Err(_) => return,
        };
        for node in nodes {
            let Ok(node) = node.parse::<u64>() else {
                continue;
            };
            if node != self.link.node {
                self.sweep_node(node).await;
            }
        }
    }

    /// Runs the sweep script for `node` and announces who went offline.
    async fn sweep_node(&self, node: u64) {
        let gone: Vec<String> = match self
            .link
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
                self.link
                    .publish(project, ServerMessage::PresenceLeave { user_id: user })
                    .await;
            }
        }
    }

    /// Graceful exit: stop being alive, then sweep ourselves.
    async fn leave_cluster(&self) {
        let _: Result<(), _> = self
            .link
            .client
            .del(scripts::alive_key(self.link.node))
            .await;
        self.sweep_node(self.link.node).await;
    }
}
