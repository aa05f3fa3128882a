//! What the registry and every room of this node share: the map of rooms,
//! their settings and the metrics. A room holds it to read its settings and
//! to take itself out of the map when it retires; the registry holds it to
//! find and spawn rooms.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use dashmap::DashMap;
use vridge_protocol::ProjectId;

use super::{RoomHandle, RoomSettings};
use crate::metrics::Metrics;

/// Lives as long as the registry (and its last room).
#[derive(Debug)]
pub(super) struct Rooms {
    /// The live room of each project with members here.
    pub(super) map: DashMap<ProjectId, RoomHandle>,
    /// Numbers room instances, so a retiring room removes only itself.
    pub(super) next_instance: AtomicU64,
    pub(super) settings: RoomSettings,
    pub(super) metrics: Arc<Metrics>,
}

impl Rooms {
    /// Removes the project's room from the map if it is still `instance`.
    pub(super) fn forget(&self, project: ProjectId, instance: u64) {
        self.map.remove_if(&project, |_, h| h.instance == instance);
    }
}
