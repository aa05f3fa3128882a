//! Rooms: one actor per project with members on this node.
//!
//! A [`RoomHandle`] is a cheap clone around the actor's bounded command
//! queue; the task ([`actor`]) owns all room state — members, presence counts,
//! typing deadlines, leaves held back — so none of it needs a lock. The
//! [`Registry`] finds the room of a project, spawning it on first join; the
//! room retires itself once it has no member and no leave held back.
//! Comments reach members in the project's commit order ([`chain`]).
//!
//! Presence churn is damped here, for both brokers alike: when a user's last
//! socket closes, the room holds their leave for the configured grace, and a
//! socket of theirs joining within it cancels both the leave and the join.
//! Across nodes the same holds because a held leave keeps the user counted
//! in the cluster (the broker hears of it only when the grace ends).

mod actor;
mod chain;
mod registry;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{Comment, ServerMessage, UserId};

pub use registry::{Registry, RoomSettings};

use vridge_protocol::ProjectId;

use crate::ws::outbox::Outbox;

/// Identifies one socket on this node for its whole life.
pub type ConnId = u64;

/// What a joining connection learns from the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Users with at least one socket in the room, or whose leave is held
    /// back (they count as online), the joiner included, in id order.
    pub online_users: Vec<UserId>,
}

/// Commands a room actor serves.
#[derive(Debug)]
pub enum RoomCmd {
    Join {
        conn: ConnId,
        user: UserId,
        outbox: Outbox,
        reply: oneshot::Sender<Joined>,
    },
    Leave {
        conn: ConnId,
    },
    /// An event for every member (typing: every member but its sender's sockets).
    Publish(Arc<ServerMessage>),
    /// Closes every socket of `user` with `code` (membership revoked).
    Evict {
        user: UserId,
        code: u16,
    },
    /// The room's own read of the store after a gap in the comment chain
    /// outlasted its wait: the comments after the last one it delivered,
    /// oldest first; `None` when the read failed.
    Fill(Option<Vec<Comment>>),
}

/// What rooms tell a cross-node broker about their life. Without hooks (one
/// node) a room announces presence to its own members itself.
#[derive(Debug, Clone)]
pub struct RoomHooks {
    /// Rooms `try_send` here and never wait: the broker's task also feeds
    /// rooms, and two bounded queues waiting on each other could deadlock.
    pub events: mpsc::Sender<RoomEvent>,
}

/// A change in a room that matters beyond this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
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

/// A cheap, clonable reference to a running room.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCmd>,
    /// Distinguishes this room from a later room of the same project, so a
    /// retiring room only ever removes itself from the registry.
    instance: u64,
}

impl RoomHandle {
    /// Tells the room this connection is gone. A room that already dropped
    /// the connection (slow consumer, eviction) may have retired: that is fine.
    pub async fn leave(&self, conn: ConnId) {
        let _ = self.tx.send(RoomCmd::Leave { conn }).await;
    }
}
