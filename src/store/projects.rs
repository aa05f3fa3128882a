//! Project listings with their counts, project updates, and membership
//! changes. A listing page costs two queries whatever its size: one count,
//! one page whose member and feedback counts are correlated subqueries of the
//! same statement (no query per project).

use vridge_protocol::{ProjectId, UserId};

use super::accounts::Project;
use super::{Store, StoreError, on_pool};
use crate::domain::Role;
use crate::time::now_ms;

/// The columns of [`ProjectSummary`], for `concat!`.
macro_rules! summary_columns {
    () => {
        "p.id, p.name, p.description, p.status, p.owner_id, p.created_at, p.updated_at, m.role, \
         (SELECT COUNT(*) FROM project_members c WHERE c.project_id = p.id) AS member_count, \
         (SELECT COUNT(*) FROM feedback f WHERE f.project_id = p.id) AS feedback_total, \
         (SELECT COUNT(*) FROM feedback f WHERE f.project_id = p.id AND f.status = 'open') AS feedback_open"
    };
}

/// A project as one of its members sees it in a listing.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectSummary {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    pub status: String,
    pub owner_id: UserId,
    pub created_at: i64,
    pub updated_at: i64,
    /// The viewing user's role.
    pub role: String,
    pub member_count: i64,
    pub feedback_total: i64,
    pub feedback_open: i64,
}

/// A member of a project, with their account's public fields.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub username: String,
    pub role: String,
    pub joined_at: i64,
}

/// Which projects a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Archived,
    All,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Active => "active",
            StatusFilter::Archived => "archived",
            StatusFilter::All => "all",
        }
    }
}

/// Fields of a project to change; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Whether a member was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMember {
    Added,
    AlreadyMember,
    ProjectFull,
}

impl Store {
    /// One page of the projects `user` belongs to (owned or joined), newest
    /// first, and how many there are in all. Exactly two queries.
    pub async fn list_projects(
        &self,
        user: UserId,
        status: StatusFilter,
        limit: u32,
        offset: u64,
    ) -> Result<(i64, Vec<ProjectSummary>), StoreError> {
        let filter = status.as_str();
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        on_pool!(self, pool => {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM projects p JOIN project_members m ON m.project_id = p.id \
                 WHERE m.user_id = $1 AND ($2 = 'all' OR p.status = $2)",
            )
            .bind(user)
            .bind(filter)
            .fetch_one(pool)
            .await?;
            let rows = sqlx::query_as::<_, ProjectSummary>(concat!(
                "SELECT ", summary_columns!(),
                " FROM projects p JOIN project_members m ON m.project_id = p.id \
                 WHERE m.user_id = $1 AND ($2 = 'all' OR p.status = $2) \
                 ORDER BY p.id DESC LIMIT $3 OFFSET $4"
            ))
            .bind(user)
            .bind(filter)
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok((count, rows))
        })
    }

    /// One project as `user` sees it, or `None` when they are not a member.
    pub async fn project_summary(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<ProjectSummary>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, ProjectSummary>(concat!(
            "SELECT ", summary_columns!(),
            " FROM projects p JOIN project_members m ON m.project_id = p.id \
             WHERE p.id = $1 AND m.user_id = $2"
        ))
        .bind(project)
        .bind(user)
        .fetch_optional(pool)
        .await)?,
        )
    }

    /// The project's members, owner first, then by join order.
    pub async fn project_members(&self, project: ProjectId) -> Result<Vec<Member>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Member>(
            "SELECT m.user_id, u.email, u.username, m.role, m.created_at AS joined_at \
             FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 \
             ORDER BY CASE WHEN m.role = 'owner' THEN 0 ELSE 1 END, m.created_at, m.user_id",
        )
        .bind(project)
        .fetch_all(pool)
        .await)?)
    }

    /// Applies `changes` to a project; `None` when it does not exist.
    pub async fn update_project(
        &self,
        project: ProjectId,
        changes: &ProjectChanges<'_>,
    ) -> Result<Option<Project>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Project>(
            "UPDATE projects SET name = COALESCE($2, name), description = COALESCE($3, description), \
             status = COALESCE($4, status), updated_at = $5 WHERE id = $1 \
             RETURNING id, name, description, status, owner_id, created_at, updated_at",
        )
        .bind(project)
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.status)
        .bind(now_ms())
        .fetch_optional(pool)
        .await)?)
    }

    /// Adds a member unless they already are one or the project has `max`
    /// members already.
    pub async fn add_member_capped(
        &self,
        project: ProjectId,
        user: UserId,
        role: Role,
        max: i64,
    ) -> Result<AddMember, StoreError> {
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM project_members WHERE project_id = $1",
            )
            .bind(project)
            .fetch_one(&mut *tx)
            .await?;
            if count >= max {
                return Ok(AddMember::ProjectFull);
            }
            let inserted = sqlx::query(
                "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(project)
            .bind(user)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write);
            match inserted {
                Ok(_) => {}
                Err(StoreError::Conflict) => return Ok(AddMember::AlreadyMember),
                Err(e) => return Err(e),
            }
            tx.commit().await?;
            Ok(AddMember::Added)
        })
    }

    /// Changes a member's role; `false` when they are not a member.
    pub async fn set_member_role(
        &self,
        project: ProjectId,
        user: UserId,
        role: Role,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project)
        .bind(user)
        .bind(role.as_str())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Removes a member; `false` when they were not one.
    pub async fn remove_member(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project)
        .bind(user)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}
