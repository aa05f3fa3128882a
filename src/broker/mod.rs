//! Where events go to reach every node's members of a project.
//!
//! `Memory` is the single-node broker: publishing delivers to this node's
//! room. `Redis` fans out across nodes with Redis pub/sub and keeps presence
//! and socket counts cluster-wide ([`redis`]). Both are variants of one enum,
//! so callers never know which one runs.

mod envelope;
mod node;
pub mod redis;
mod scripts;

use std::sync::Arc;

use vridge_protocol::{ProjectId, ServerMessage, UserId};

pub use envelope::{Envelope, NodeId, Payload};
pub use redis::{BrokerError, RedisBroker, RedisSettings, RemoteSocketSlot};

use crate::room::Registry;

#[derive(Debug, Clone)]
pub enum Broker {
    /// One node: events go to this node's rooms only.
    Memory(Registry),
    /// Several nodes sharing a Redis.
    Redis(RedisBroker),
}

/// A socket slot counted beyond this node, if the broker counts them.
#[derive(Debug)]
pub enum SocketSlot {
    /// Only this node's limiter counts (one node, or Redis unreachable).
    Local,
    /// Counted in Redis across nodes; given back on drop.
    Cluster(RemoteSocketSlot),
}

impl Broker {
    /// Delivers `msg` to every member of `project`, on every node. This
    /// node's members get it at once; other nodes' as soon as the broker
    /// carries it.
    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        match self {
            Broker::Memory(registry) => registry.deliver(project, Arc::new(msg)).await,
            Broker::Redis(redis) => redis.publish(project, msg).await,
        }
    }

    /// Closes every socket `user` holds to `project`, on every node, with
    /// `code` (a member removed from the project gets 4003).
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        match self {
            Broker::Memory(registry) => registry.evict(project, user, code).await,
            Broker::Redis(redis) => redis.evict(project, user, code).await,
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

    /// Users online in `project` on any node; `local` is this node's room view.
    pub async fn online_users(&self, project: ProjectId, local: Vec<UserId>) -> Vec<UserId> {
        match self {
            Broker::Memory(_) => local,
            Broker::Redis(redis) => redis.online_users(project, local).await,
        }
    }

    /// Takes one of `user`'s socket slots across nodes; `None` when they hold
    /// `max` already. Callers check this node's limiter first (the fast path).
    /// When Redis cannot answer, only the local limit applies.
    pub async fn acquire_socket(&self, user: UserId, max: usize) -> Option<SocketSlot> {
        match self {
            Broker::Memory(_) => Some(SocketSlot::Local),
            Broker::Redis(redis) => match redis.acquire_socket(user, max).await {
                Ok(Some(slot)) => Some(SocketSlot::Cluster(slot)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster socket count unavailable; local limit only");
                    Some(SocketSlot::Local)
                }
            },
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
