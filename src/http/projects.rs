//! Projects: the caller's paginated list with counts, creation, detail with
//! members, and updates (name, description, status). Archiving keeps every
//! feedback item and comment readable.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vridge_protocol::ProjectId;

use super::ApiState;
use super::access::{self, NO_PROJECT, Need};
use super::error::{ApiError, ErrorBody};
use super::extract::{AuthUser, Json, Path, Query, Writer};
use super::input;
use super::views::{MemberView, ProjectDetail, ProjectPage, ProjectView};
use crate::store::{ProjectChanges, StatusFilter};

pub const DEFAULT_PAGE_SIZE: u32 = 10;
pub const MAX_PAGE_SIZE: u32 = 50;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{project_id}", get(detail).patch(update))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Projects per page (default 10, at most 50; larger values are capped).
    #[param(minimum = 1)]
    pub page_size: Option<u32>,
    /// `active` (default), `archived` or `all`.
    #[param(inline)]
    pub status: Option<ListStatus>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListStatus {
    Active,
    Archived,
    All,
}

impl ListStatus {
    fn filter(self) -> StatusFilter {
        match self {
            ListStatus::Active => StatusFilter::Active,
            ListStatus::Archived => StatusFilter::Archived,
            ListStatus::All => StatusFilter::All,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ListStatus::Active => "active",
            ListStatus::Archived => "archived",
            ListStatus::All => "all",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProject {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateProject {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `active` or `archived`.
    pub status: Option<String>,
}

/// The projects the caller owns or is a member of, newest first.
#[utoipa::path(get, path = "/projects", tag = "projects", params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = ProjectPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "Page out of range", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ProjectPage>, ApiError> {
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid("page must be at least 1"));
    }
    let size = match q.page_size {
        Some(0) => return Err(ApiError::invalid("page_size must be at least 1")),
        Some(n) => n.min(MAX_PAGE_SIZE),
        None => DEFAULT_PAGE_SIZE,
    };
    let status = q.status.unwrap_or(ListStatus::Active);
    let offset = (page - 1).saturating_mul(u64::from(size));
    let (count, rows) = app
        .store
        .list_projects(user, status.filter(), size, offset)
        .await?;
    let link = |p: u64| {
        format!(
            "/projects?page={p}&page_size={size}&status={}",
            status.as_str()
        )
    };
    let seen = offset.saturating_add(rows.len() as u64);
    let total = u64::try_from(count).unwrap_or(0);
    Ok(axum::Json(ProjectPage {
        count,
        next: (seen < total && !rows.is_empty()).then(|| link(page + 1)),
        previous: (page > 1).then(|| link(page - 1)),
        results: rows.into_iter().map(ProjectView::from).collect(),
    }))
}

/// Creates a project owned by the caller.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProject,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = ProjectDetail),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 422, description = "Invalid name or description", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<ApiState>,
    Writer(user): Writer,
    Json(req): Json<CreateProject>,
) -> Result<(StatusCode, axum::Json<ProjectDetail>), ApiError> {
    input::text("name", &req.name, input::MAX_NAME_CHARS, true)?;
    input::text(
        "description",
        &req.description,
        input::MAX_DESCRIPTION_CHARS,
        false,
    )?;
    let project = app
        .store
        .create_project(user, req.name.trim(), &req.description)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(load_detail(&app, project.id, user).await?),
    ))
}

async fn load_detail(
    app: &ApiState,
    project: ProjectId,
    user: vridge_protocol::UserId,
) -> Result<ProjectDetail, ApiError> {
    let summary = app
        .store
        .project_summary(project, user)
        .await?
        .ok_or(ApiError::NotFound(NO_PROJECT))?;
    let members = app.store.project_members(project).await?;
    Ok(ProjectDetail {
        project: summary.into(),
        members: members.into_iter().map(MemberView::from).collect(),
    })
}

/// A project with its members (any member may read it).
#[utoipa::path(get, path = "/projects/{project_id}", tag = "projects",
    params(("project_id" = i64, Path, description = "Project id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectDetail),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
    ))]
pub async fn detail(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(project): Path<ProjectId>,
) -> Result<axum::Json<ProjectDetail>, ApiError> {
    Ok(axum::Json(load_detail(&app, project, user).await?))
}

/// Changes a project's name, description or status (editors and up).
#[utoipa::path(patch, path = "/projects/{project_id}", tag = "projects",
    params(("project_id" = i64, Path, description = "Project id")),
    request_body = UpdateProject,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated project", body = ProjectDetail),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Viewers may not change a project", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ))]
pub async fn update(
    State(app): State<ApiState>,
    Writer(user): Writer,
    Path(project): Path<ProjectId>,
    Json(req): Json<UpdateProject>,
) -> Result<axum::Json<ProjectDetail>, ApiError> {
    access::require(&app, project, user, Need::Update).await?;
    if let Some(name) = &req.name {
        input::text("name", name, input::MAX_NAME_CHARS, true)?;
    }
    if let Some(d) = &req.description {
        input::text("description", d, input::MAX_DESCRIPTION_CHARS, false)?;
    }
    let status = req
        .status
        .as_deref()
        .map(|s| input::one_of("status", s, &["active", "archived"]))
        .transpose()?;
    let name = req.name.as_deref().map(str::trim);
    app.store
        .update_project(
            project,
            &ProjectChanges {
                name,
                description: req.description.as_deref(),
                status,
            },
        )
        .await?
        .ok_or(ApiError::NotFound(NO_PROJECT))?;
    Ok(axum::Json(load_detail(&app, project, user).await?))
}
