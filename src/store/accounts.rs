//! Users, projects, memberships and feedback items.

use std::collections::HashMap;

use sqlx::QueryBuilder;
use vridge_protocol::{EventMeta, Feedback, FeedbackId, ProjectId, UserId};

use super::engine::append_events;
use super::events::{EventKind, NewEvent};
use super::rows::{FeedbackRow, feedback_columns};
use super::{MAX_BATCHED_KEYS, Store, StoreError, on_pool};
use crate::domain::Role;
use crate::time::now_ms;

/// A user as the server shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub username: String,
    pub created_at: i64,
}

/// What creating a user needs. `password_hash` is already hashed (argon2id);
/// `None` makes a user that can only use operator-minted tokens.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub username: &'a str,
    pub password_hash: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    pub status: String,
    pub owner_id: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What creating a feedback item needs.
#[derive(Debug, Clone)]
pub struct NewFeedback<'a> {
    pub project_id: ProjectId,
    pub created_by: UserId,
    pub title: &'a str,
    pub priority: &'a str,
    pub timestamp: Option<f64>,
    pub video_url: Option<&'a str>,
}

macro_rules! project_columns {
    () => {
        "id, name, description, status, owner_id, created_at, updated_at"
    };
}

impl Store {
    /// Creates a user; a taken email is [`StoreError::Conflict`].
    pub async fn create_user(&self, new: &NewUser<'_>) -> Result<User, StoreError> {
        on_pool!(self, pool => sqlx::query_as::<_, User>(
            "INSERT INTO users (email, username, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, email, username, created_at",
        )
        .bind(new.email)
        .bind(new.username)
        .bind(new.password_hash)
        .bind(now_ms())
        .fetch_one(pool)
        .await)
        .map_err(StoreError::from_write)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(
            "SELECT id, email, username, created_at FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(pool)
        .await)?)
    }

    /// Creates a project and makes `owner` its owner member, atomically.
    pub async fn create_project(
        &self,
        owner: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            let project = sqlx::query_as::<_, Project>(concat!("INSERT INTO projects (name, description, owner_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING ", project_columns!()))
            .bind(name)
            .bind(description)
            .bind(owner)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            sqlx::query(
                "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
            )
            .bind(project.id)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.commit().await?;
            Ok(project)
        })
    }

    pub async fn projects_owned_by(&self, owner: UserId) -> Result<Vec<Project>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, Project>(concat!("SELECT ", project_columns!(), " FROM projects WHERE owner_id = $1 ORDER BY id"))
        .bind(owner)
        .fetch_all(pool)
        .await)?,
        )
    }

    /// Adds `user` to `project` with `role`; an existing membership is
    /// [`StoreError::Conflict`].
    pub async fn add_member(
        &self,
        project: ProjectId,
        user: UserId,
        role: Role,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(project)
        .bind(user)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(StoreError::from_write)
    }

    /// The user's role in the project, or `None` when they are not a member
    /// (or the project does not exist).
    pub async fn member_role(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project)
        .bind(user)
        .fetch_optional(pool)
        .await)?;
        role.map(|r| {
            r.parse()
                .map_err(|e: crate::domain::UnknownRole| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    /// The roles of many (project, user) pairs in one query: what
    /// [`member_role`](Self::member_role) answers for each, for the batched
    /// reads of concurrent connects. Pairs that are not memberships are
    /// absent from the map. One query per [`MAX_BATCHED_KEYS`] pairs.
    pub async fn member_roles(
        &self,
        pairs: &[(ProjectId, UserId)],
    ) -> Result<HashMap<(ProjectId, UserId), Role>, StoreError> {
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        let mut rows: Vec<(ProjectId, UserId, String)> = Vec::new();
        for chunk in pairs.chunks(MAX_BATCHED_KEYS) {
            rows.extend(on_pool!(self, pool => {
                let mut query = QueryBuilder::new(
                    "SELECT project_id, user_id, role FROM project_members WHERE (project_id, user_id) IN (",
                );
                let mut pairs_sql = query.separated(", ");
                for (project, user) in chunk {
                    pairs_sql.push("(");
                    pairs_sql.push_bind_unseparated(*project);
                    pairs_sql.push_unseparated(", ");
                    pairs_sql.push_bind_unseparated(*user);
                    pairs_sql.push_unseparated(")");
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await
            })?);
        }
        rows.into_iter()
            .map(|(project, user, role)| {
                let role = role
                    .parse()
                    .map_err(|e: crate::domain::UnknownRole| StoreError::Corrupt(e.to_string()))?;
                Ok(((project, user), role))
            })
            .collect()
    }

    /// Creates a feedback item and its `feedback_created` event, in one
    /// transaction.
    pub async fn create_feedback(
        &self,
        new: &NewFeedback<'_>,
    ) -> Result<(Feedback, EventMeta), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = super::begin(pool).await?;
            let row: FeedbackRow = sqlx::query_as(concat!("INSERT INTO feedback (project_id, title, priority, video_timestamp, video_url, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ", feedback_columns!()))
            .bind(new.project_id)
            .bind(new.title)
            .bind(new.priority)
            .bind(new.timestamp)
            .bind(new.video_url)
            .bind(new.created_by)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            let events = [NewEvent {
                project: new.project_id,
                kind: EventKind::FeedbackCreated,
                actor: new.created_by,
                comment: None,
                feedback: Some(row.id),
                detail: None,
                key: None,
            }];
            let meta = append_events!(tx, &events, now)
                .pop()
                .ok_or_else(|| StoreError::Corrupt("no event appended".into()))?;
            tx.commit().await?;
            Ok((row.into_wire(), meta))
        })
    }

    /// The project a feedback item belongs to.
    pub async fn feedback_project(
        &self,
        feedback: FeedbackId,
    ) -> Result<Option<ProjectId>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT project_id FROM feedback WHERE id = $1",
        )
        .bind(feedback)
        .fetch_optional(pool)
        .await)?)
    }

    /// Ids of a project's feedback items, oldest first.
    pub async fn feedback_ids(&self, project: ProjectId) -> Result<Vec<FeedbackId>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM feedback WHERE project_id = $1 ORDER BY id",
        )
        .bind(project)
        .fetch_all(pool)
        .await)?)
    }
}
