//! What a Redis node shares between its broker handle and its node agent:
//! the two Redis connections, this node's id, the queue of envelopes for
//! other nodes, the way into this node's rooms (the [`Deliveries`] sink) and
//! the presence this node's members were told about. Both the
//! [`RedisBroker`](super::RedisBroker) and the [`NodeAgent`](super::node)
//! hold it; neither reaches into the other.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike};
use tokio::sync::mpsc;
use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::Deliveries;
use super::envelope::{Envelope, EnvelopeError, NodeId, Payload};
use crate::metrics::Metrics;

/// Lives as long as the broker; shared by its tasks.
pub(super) struct Link {
    /// This process, for its whole life.
    pub(super) node: NodeId,
    /// This node's rooms, set once when the app is wired.
    pub(super) rooms: OnceLock<Arc<dyn Deliveries>>,
    /// Commands, scripts and publishing.
    pub(super) client: Client,
    /// Receives the channels of projects this node has rooms for.
    pub(super) subscriber: SubscriberClient,
    pub(super) metrics: Arc<Metrics>,
    pub(super) node_ttl: Duration,
    /// Encoded envelopes for the publisher task, with their project.
    pub(super) outgoing: mpsc::Sender<(ProjectId, Bytes)>,
    /// Per project with a room here: the users this node's members were
    /// told are online (by `presence_join`, or in `initial_state`), less
    /// those since announced gone. Dropped when the project stops being
    /// listened to; a std mutex, never held across an `.await`.
    pub(super) presence_seen: std::sync::Mutex<HashMap<ProjectId, HashSet<UserId>>>,
}

impl Link {
    /// Whether the command connection is up. While it is not, callers skip
    /// Redis at once instead of waiting for a command timeout, so joins and
    /// presence stay fast during an outage.
    pub(super) fn connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The node's rooms, once wired; nothing is delivered before (there
    /// are no rooms yet).
    fn rooms(&self) -> Option<&Arc<dyn Deliveries>> {
        self.rooms.get()
    }

    /// Hands an event to this node's members of `project`.
    pub(super) async fn deliver(&self, project: ProjectId, msg: Arc<ServerMessage>) {
        if let Some(rooms) = self.rooms() {
            rooms.deliver(project, msg).await;
        }
    }

    /// Closes `user`'s sockets to `project` on this node.
    pub(super) async fn evict_here(&self, project: ProjectId, user: UserId, code: u16) {
        if let Some(rooms) = self.rooms() {
            rooms.evict(project, user, code).await;
        }
    }

    /// Whether the project has a room on this node right now.
    pub(super) fn has_room(&self, project: ProjectId) -> bool {
        self.rooms().is_some_and(|r| r.has_room(project))
    }

    /// Queues the event for every other node, then delivers it to this
    /// node's members.
    pub(super) async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        self.send_remote(project, &msg);
        self.deliver(project, Arc::new(msg)).await;
    }

    /// Sends an event to the other nodes only (this node's members have it
    /// already).
    pub(super) fn send_remote(&self, project: ProjectId, msg: &ServerMessage) {
        self.note_presence(project, msg);
        self.send(project, Envelope::encode_event(self.node, project, msg));
    }

    /// Sends an eviction to the other nodes.
    pub(super) fn send_evict(&self, project: ProjectId, user: UserId, code: u16) {
        let envelope = Envelope {
            origin: self.node,
            project,
            payload: Payload::Evict { user, code },
        };
        self.send(project, envelope.encode());
    }

    /// Queues an encoded envelope for other nodes; never waits. A full
    /// queue (Redis far behind or away) counts as a loss.
    fn send(&self, project: ProjectId, encoded: Result<Vec<u8>, EnvelopeError>) {
        let bytes = match encoded {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "encoding an envelope failed");
                return;
            }
        };
        if self.outgoing.try_send((project, bytes)).is_err() {
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
            ServerMessage::PresenceJoin { user_id } if self.has_room(project) => {
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
    pub(super) fn note_online(&self, project: ProjectId, users: &[UserId]) {
        if self.has_room(project) {
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
        let Some(rooms) = self.rooms() else {
            return;
        };
        for project in rooms.active_projects() {
            let msg = ServerMessage::Resync {
                reason: reason.to_owned(),
            };
            rooms.deliver(project, Arc::new(msg)).await;
        }
    }
}
