//! Rooms: one actor per project with members on this node.
//!
//! A [`RoomHandle`] is a cheap clone around the actor's bounded command
//! queue; the task ([`actor`]) owns all room state — members, presence counts,
//! typing deadlines, leaves held back — so none of it needs a lock. The
//! [`Registry`] finds the room of a project, spawning it on first join; the
//! room retires itself once it has no member and no leave held back.
//! Comments reach members in the project's commit order ([`chain`]).
//!
//! Presence churn is damped here, for every presence engine alike: when a user's last
//! socket closes, the room holds their leave for the configured grace, and a
//! socket of theirs joining within it cancels both the leave and the join.
//! Across nodes the same holds because a held leave keeps the user counted
//! in the cluster (presence hears of it only when the grace ends). Who
//! announces a join or a leave is presence's decision
//! ([`Presence`](crate::broker::Presence)), never the room's.

mod actor;
mod chain;
mod registry;
mod rooms;
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use vridge_protocol::{ServerMessage, UserId};

pub use registry::Registry;

use crate::broker::Presence;
use crate::outbound::Outbox;
use crate::store::{EventPage, Store};

/// Settings every room shares.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub typing_timeout: Duration,
    /// A room's typing window: the typing event that opens it goes out at
    /// once, those within it together at its end; zero sends each at once.
    pub typing_batch: Duration,
    /// How long a user's leave is held after their last socket closed, so a
    /// reconnect within it announces nothing; zero announces at once.
    pub presence_leave_grace: Duration,
    /// Where a room reads comments it is missing (and, when it starts, the
    /// project's newest comment id, which its comment chain continues from).
    pub store: Store,
    /// Told of first and last sockets, typing stops and retirements; decides
    /// who announces presence.
    pub presence: Presence,
}

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
    /// The room's own read of the store after a gap in the event chain
    /// outlasted its wait: the events after the last one it delivered,
    /// oldest first; `None` when the read failed.
    Fill(Option<EventPage>),
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
