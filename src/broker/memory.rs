//! The single-node broker: there are no other nodes, so publishing is
//! delivering into this node's rooms.

use std::fmt;
use std::sync::{Arc, OnceLock};

use vridge_protocol::{ProjectId, ServerMessage, UserId};

use super::Deliveries;

/// Cheap to clone; every clone delivers into the same rooms.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    /// This node's rooms, set once when the app is wired.
    rooms: Arc<OnceLock<Arc<dyn Deliveries>>>,
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    pub fn attach(&self, rooms: Arc<dyn Deliveries>) {
        let _ = self.rooms.set(rooms);
    }

    pub async fn publish(&self, project: ProjectId, msg: ServerMessage) {
        if let Some(rooms) = self.rooms.get() {
            rooms.deliver(project, Arc::new(msg)).await;
        }
    }

    pub async fn evict(&self, project: ProjectId, user: UserId, code: u16) {
        if let Some(rooms) = self.rooms.get() {
            rooms.evict(project, user, code).await;
        }
    }
}
