//! `vridge-realtime provision`: creates load-test users and projects straight
//! in the store and writes one JSON line per user —
//! `{"user_id","token","project_id","feedback_id"}` — the provisioning file
//! that `vridge-loadtest` reads. Users are named with a tag unique to the
//! call, so provisioning twice into one store never collides.

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vridge_protocol::{FeedbackId, ProjectId, UserId};

use crate::auth::{JwtKeys, TokenKind};
use crate::store::{BulkProject, Store, StoreError};

/// Projects written per transaction, so one huge call does not hold one
/// huge transaction (and its memory) open.
const PROJECTS_PER_TRANSACTION: usize = 1000;

/// One line of the provisioning file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedUser {
    pub user_id: UserId,
    pub token: String,
    pub project_id: ProjectId,
    pub feedback_id: FeedbackId,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("minting a token failed")]
    Token,
    #[error("writing the provisioning file: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding a line: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("nothing to provision: projects and members must both be at least 1")]
    Empty,
}

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionSpec {
    pub projects: usize,
    pub members: usize,
    pub token_ttl: Duration,
}

/// Creates `spec.projects` × `spec.members` users and their projects, mints
/// their tokens, and returns one line per user, project by project (the
/// owner first in each).
pub async fn provision(
    store: &Store,
    jwt: &JwtKeys,
    spec: ProvisionSpec,
) -> Result<Vec<ProvisionedUser>, ProvisionError> {
    if spec.projects == 0 || spec.members == 0 {
        return Err(ProvisionError::Empty);
    }
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let tag = &tag[..12];
    let mut out = Vec::with_capacity(spec.projects * spec.members);
    let indices: Vec<usize> = (0..spec.projects).collect();
    for chunk in indices.chunks(PROJECTS_PER_TRANSACTION) {
        let projects: Vec<BulkProject> = chunk
            .iter()
            .map(|p| BulkProject {
                name: format!("load {tag} #{p}"),
                member_emails: (0..spec.members)
                    .map(|m| format!("load-{tag}-p{p}-m{m}@load.test"))
                    .collect(),
            })
            .collect();
        for project in store.bulk_provision(&projects).await? {
            for user_id in project.members {
                let token = jwt
                    .mint(user_id, TokenKind::Access, spec.token_ttl)
                    .map_err(|_| ProvisionError::Token)?;
                out.push(ProvisionedUser {
                    user_id,
                    token,
                    project_id: project.project_id,
                    feedback_id: project.feedback_id,
                });
            }
        }
    }
    Ok(out)
}

/// Writes the lines as JSON lines.
pub fn write_lines<W: Write>(users: &[ProvisionedUser], out: W) -> Result<(), ProvisionError> {
    let mut out = std::io::BufWriter::new(out);
    for user in users {
        serde_json::to_writer(&mut out, user)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
