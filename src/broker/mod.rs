//! Where events go to reach the members of a project on other nodes, and
//! who is online across nodes.
//!
//! `Memory` is the single-node broker: publishing delivers to this node's
//! rooms. `Redis` fans out across nodes with Redis pub/sub and keeps
//! presence and socket counts cluster-wide ([`redis`]). Both are variants of
//! one enum, so callers never know which one runs; presence has the matching
//! engines ([`Presence`]). Either delivers into this node's rooms through a
//! sink the broker defines ([`Deliveries`]), so the broker imports nothing
//! of the rooms.

mod envelope;
mod link;
mod memory;
mod node;
mod presence;
mod redis;
mod scripts;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use vridge_protocol::{ProjectId, ServerMessage, UserId};

pub use envelope::{Envelope, NodeId, Payload};
pub use memory::MemoryBroker;
pub use presence::{
    Announce, Presence, PresenceEvent, RedisPresence, RemoteSocketSlot, SocketSlot,
};
pub use redis::{RedisBroker, RedisSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    Disconnected,
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

/// This node's rooms as a broker sees them: where published events and
/// evictions are delivered.
pub trait Deliveries: Send + Sync + 'static {
    /// Hands an event to this node's members of `project`, if any.
    fn deliver(&self, project: ProjectId, msg: Arc<ServerMessage>) -> BoxFuture<'_, ()>;
    /// Closes every socket `user` holds to `project` on this node.
    fn evict(&self, project: ProjectId, user: UserId, code: u16) -> BoxFuture<'_, ()>;
    /// Whether the project has a room on this node right now.
    fn has_room(&self, project: ProjectId) -> bool;
    /// Projects with a room on this node.
    fn active_projects(&self) -> Vec<ProjectId>;
}

#[derive(Debug, Clone)]
pub enum Broker {
    /// One node: events go to this node's rooms only.
    Memory(MemoryBroker),
    /// Several nodes sharing a Redis.
    Redis(RedisBroker),
}

impl Broker {
    /// Delivers `msg` to every member of `project`, on every node. This
    /// node's members get it at once; other nodes' as soon as the broker
    /// carries it (never waiting on Redis).
    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        match self {
            Broker::Memory(memory) => memory.publish(project, msg).await,
            Broker::Redis(redis) => redis.publish(project, msg).await,
        }
    }

    /// Closes every socket `user` holds to `project`, on every node, with
    /// `code` (a member removed from the project gets 4003).
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        match self {
            Broker::Memory(memory) => memory.evict(project, user, code).await,
            Broker::Redis(redis) => redis.evict(project, user, code).await,
        }
    }

    /// The presence engine that matches this broker.
    pub fn presence(&self) -> Presence {
        match self {
            Broker::Memory(_) => Presence::Local,
            Broker::Redis(redis) => redis.presence(),
        }
    }

    /// Names this node's rooms, where other nodes' events are delivered.
    pub fn attach(&self, rooms: Arc<dyn Deliveries>) {
        match self {
            Broker::Memory(memory) => memory.attach(rooms),
            Broker::Redis(redis) => redis.attach(rooms),
        }
    }

    /// Whether the broker can currently reach its backend (always, in memory).
    pub async fn ready(&self) -> bool {
        match self {
            Broker::Memory(_) => true,
            Broker::Redis(redis) => redis.ready().await,
        }
    }

    /// Makes sure events of `project` published on other nodes reach this
    /// node from now on. A joining socket awaits this before it loads
    /// history, so no comment falls between the two.
    pub async fn listen(&self, project: ProjectId) {
        match self {
            Broker::Memory(_) => {}
            Broker::Redis(redis) => redis.listen(project).await,
        }
    }

    /// Leaves the cluster cleanly (Redis): presence dropped, queued
    /// envelopes flushed. Call after sockets closed and the persister flushed.
    pub async fn shutdown(&self) {
        match self {
            Broker::Memory(_) => {}
            Broker::Redis(redis) => redis.shutdown().await,
        }
    }
}
