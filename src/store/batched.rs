//! The reads every connecting socket makes — is this user a member, and the
//! project's newest comments — batched across concurrent connects (see
//! [`coalesce`](super::coalesce)), and those every REST page makes (the
//! membership again, and the project's newest event for its tag). A
//! reconnect storm of 20,000 sockets asks these 40,000 times within a few
//! seconds; one query each kept the pool queueing for tens of seconds (and,
//! on SQLite, every query is a hand-off to a worker thread and back).
//! Batched, it is a few hundred queries.

use vridge_protocol::{ProjectId, Seq, UserId};

use super::coalesce::Coalescer;
use super::{MAX_BATCHED_KEYS, Newest, Store, StoreError};
use crate::domain::Role;

/// Batches in flight per kind of read: enough to overlap one query's round
/// trip with the next batch filling, few enough to leave the pool to the
/// persister and REST.
const PARALLEL_BATCHES: usize = 2;

/// Handles to the batched reads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BatchedReads {
    roles: Coalescer<(ProjectId, UserId), Option<Role>>,
    newest: Coalescer<ProjectId, Newest>,
    seqs: Coalescer<ProjectId, Option<Seq>>,
}

impl BatchedReads {
    /// Spawns the loaders; `newest_limit` is how many comments
    /// [`newest_comments`](Self::newest_comments) returns.
    pub fn spawn(store: Store, newest_limit: u32) -> Self {
        let roles = Coalescer::spawn(MAX_BATCHED_KEYS, PARALLEL_BATCHES, {
            let store = store.clone();
            move |pairs: Vec<(ProjectId, UserId)>| {
                let store = store.clone();
                async move {
                    let roles = store.member_roles(&pairs).await?;
                    Ok(roles.into_iter().map(|(k, role)| (k, Some(role))).collect())
                }
            }
        });
        let newest = Coalescer::spawn(MAX_BATCHED_KEYS, PARALLEL_BATCHES, {
            let store = store.clone();
            move |projects| {
                let store = store.clone();
                async move { store.latest_comments_of(&projects, newest_limit).await }
            }
        });
        let seqs = Coalescer::spawn(MAX_BATCHED_KEYS, PARALLEL_BATCHES, move |projects| {
            let store = store.clone();
            async move {
                let seqs = store.last_seqs(&projects).await?;
                Ok(seqs.into_iter().map(|(k, seq, _)| (k, Some(seq))).collect())
            }
        });
        Self {
            roles,
            newest,
            seqs,
        }
    }

    /// As [`Store::member_role`], batched.
    pub async fn member_role(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        self.roles.get((project, user)).await
    }

    /// As [`Store::last_seq`], batched. The read starts after this call,
    /// never before, so a page read after it holds every event up to it.
    pub async fn last_seq(&self, project: ProjectId) -> Result<Option<Seq>, StoreError> {
        self.seqs.get(project).await
    }

    /// As [`Store::latest_comments_of`] for one project with the limit given
    /// at spawn, batched. The read starts after this call, never before: a
    /// caller that joined its room first misses no event (see `Hub::join`).
    pub async fn newest_comments(&self, project: ProjectId) -> Result<Newest, StoreError> {
        self.newest.get(project).await
    }
}
