//! Bulk provisioning for load tests: many users, projects, memberships and
//! feedback items written with multi-row INSERTs inside one transaction, so
//! that 100,000 users take seconds rather than minutes. Users get no password
//! (NULL hash): they can only connect with operator-minted tokens.
//!
//! Rows are matched back to what was asked for by a unique key the insert
//! returns (email, project name), never by the order of `RETURNING` rows.

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{FeedbackId, ProjectId, UserId};

use super::{Store, StoreError, on_pool};
use crate::time::now_ms;

/// Rows per INSERT statement: 4–8 bound parameters per row stays far below
/// SQLite's 32,766 and PostgreSQL's 65,535 parameter limits.
const ROWS_PER_STATEMENT: usize = 1000;

/// One project to create: its name (unique within the call) and its members'
/// emails, the first of which becomes the owner; the others are editors.
#[derive(Debug, Clone)]
pub struct BulkProject {
    pub name: String,
    pub member_emails: Vec<String>,
}

/// What [`Store::bulk_provision`] created for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedProject {
    pub project_id: ProjectId,
    pub feedback_id: FeedbackId,
    /// Member user ids, in the order of [`BulkProject::member_emails`].
    pub members: Vec<UserId>,
}

impl Store {
    /// Creates every user, project, membership and one feedback item per
    /// project in one transaction. A taken email or a repeated project name
    /// fails the whole call (nothing is written).
    pub async fn bulk_provision(
        &self,
        projects: &[BulkProject],
    ) -> Result<Vec<ProvisionedProject>, StoreError> {
        let now = now_ms();
        let emails: Vec<&str> = projects
            .iter()
            .flat_map(|p| p.member_emails.iter().map(String::as_str))
            .collect();
        let mut owners = Vec::with_capacity(projects.len());
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;

            let mut user_ids: HashMap<String, UserId> = HashMap::with_capacity(emails.len());
            for chunk in emails.chunks(ROWS_PER_STATEMENT) {
                let mut insert =
                    QueryBuilder::new("INSERT INTO users (email, username, password_hash, created_at) ");
                insert.push_values(chunk, |mut row, email| {
                    row.push_bind(*email)
                        .push_bind(*email)
                        .push_bind(None::<String>)
                        .push_bind(now);
                });
                insert.push(" RETURNING id, email");
                let rows: Vec<(i64, String)> = insert
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                user_ids.extend(rows.into_iter().map(|(id, email)| (email, id)));
            }
            let id_of = |email: &str| {
                user_ids
                    .get(email)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("user {email} was not returned")))
            };
            for p in projects {
                let owner = p
                    .member_emails
                    .first()
                    .ok_or_else(|| StoreError::Corrupt(format!("project {} has no members", p.name)))?;
                owners.push(id_of(owner)?);
            }

            let mut project_ids: HashMap<String, ProjectId> = HashMap::with_capacity(projects.len());
            let indexed: Vec<(&BulkProject, UserId)> =
                projects.iter().zip(owners.iter().copied()).collect();
            for chunk in indexed.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO projects (name, description, owner_id, created_at, updated_at) ",
                );
                insert.push_values(chunk, |mut row, (p, owner)| {
                    row.push_bind(p.name.as_str())
                        .push_bind("load test")
                        .push_bind(*owner)
                        .push_bind(now)
                        .push_bind(now);
                });
                insert.push(" RETURNING id, name");
                let rows: Vec<(i64, String)> = insert
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                project_ids.extend(rows.into_iter().map(|(id, name)| (name, id)));
            }
            let mut provisioned = Vec::with_capacity(projects.len());
            for p in projects {
                let project_id = project_ids.get(&p.name).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!("project {} was not returned (repeated name?)", p.name))
                })?;
                let members = p
                    .member_emails
                    .iter()
                    .map(|e| id_of(e))
                    .collect::<Result<Vec<_>, _>>()?;
                provisioned.push(ProvisionedProject {
                    project_id,
                    feedback_id: 0,
                    members,
                });
            }

            let memberships: Vec<(ProjectId, UserId, &'static str)> = provisioned
                .iter()
                .flat_map(|p| {
                    p.members.iter().enumerate().map(move |(i, user)| {
                        (p.project_id, *user, if i == 0 { "owner" } else { "editor" })
                    })
                })
                .collect();
            for chunk in memberships.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO project_members (project_id, user_id, role, created_at) ",
                );
                insert.push_values(chunk, |mut row, (project, user, role)| {
                    row.push_bind(*project)
                        .push_bind(*user)
                        .push_bind(*role)
                        .push_bind(now);
                });
                insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
            }

            let mut feedback_ids: HashMap<ProjectId, FeedbackId> =
                HashMap::with_capacity(provisioned.len());
            for chunk in provisioned.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO feedback (project_id, title, priority, created_by, created_at, updated_at) ",
                );
                insert.push_values(chunk, |mut row, p| {
                    row.push_bind(p.project_id)
                        .push_bind("Load test cut")
                        .push_bind("medium")
                        .push_bind(p.members[0])
                        .push_bind(now)
                        .push_bind(now);
                });
                insert.push(" RETURNING id, project_id");
                let rows: Vec<(i64, i64)> = insert
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                feedback_ids.extend(rows.into_iter().map(|(id, project)| (project, id)));
            }
            for p in &mut provisioned {
                p.feedback_id = feedback_ids.get(&p.project_id).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!("feedback of project {} was not returned", p.project_id))
                })?;
            }
            tx.commit().await?;
            Ok(provisioned)
        })
    }
}
