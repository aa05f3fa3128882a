//! Where events go to reach every node's members of a project.
//!
//! `Memory` is the single-node broker: publishing delivers to this node's
//! room. The Redis broker (fan-out across nodes) is another variant of the
//! same enum, so callers never know which one runs.

use std::sync::Arc;

use vridge_protocol::{ProjectId, ServerMessage, UserId};

use crate::room::Registry;

#[derive(Debug, Clone)]
pub enum Broker {
    Memory(Registry),
}

impl Broker {
    /// Delivers `msg` to every member of `project`, on every node.
    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        match self {
            Broker::Memory(registry) => registry.deliver(project, Arc::new(msg)).await,
        }
    }

    /// Closes every socket `user` holds to `project`, on every node, with
    /// `code` (a member removed from the project gets 4003).
    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        match self {
            Broker::Memory(registry) => registry.evict(project, user, code).await,
        }
    }

    /// Whether the broker can currently reach its backend (always, in memory).
    pub async fn ready(&self) -> bool {
        match self {
            Broker::Memory(_) => true,
        }
    }
}
