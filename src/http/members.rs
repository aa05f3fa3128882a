//! Project members: invite by email, change a role, remove. Admins and the
//! owner manage members; the owner's own membership never changes here. A
//! removed member's open sockets to the project are closed with 4003, as are
//! a demoted member's (their sockets carry the role they joined with, so
//! they reconnect with the new one).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use serde::Deserialize;
use utoipa::ToSchema;
use vridge_protocol::{ProjectId, UserId, close};

use super::ApiState;
use super::access::{self, Need};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Writer};
use super::input;
use super::views::MemberView;
use crate::domain::Role;
use crate::store::AddMember;

/// Most members a project may have, its owner included.
pub const MAX_MEMBERS: i64 = 50;
const NO_MEMBER: &str = "member not found";

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/projects/{project_id}/members", post(invite))
        .route(
            "/projects/{project_id}/members/{user_id}",
            patch(change_role).delete(remove),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteRequest {
    /// The email of an existing account.
    #[schema(format = "email")]
    pub email: String,
    /// `admin`, `editor` or `viewer`.
    #[schema(example = "editor")]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `admin`, `editor` or `viewer`.
    pub role: String,
}

/// A role that can be granted: anything but `owner`.
fn grantable(raw: &str) -> Result<Role, ApiError> {
    match raw.parse::<Role>() {
        Ok(Role::Owner) | Err(_) => Err(ApiError::invalid(
            "role must be one of admin, editor, viewer",
        )),
        Ok(role) => Ok(role),
    }
}

async fn member_view(
    app: &ApiState,
    project: ProjectId,
    user: UserId,
) -> Result<MemberView, ApiError> {
    app.store
        .project_members(project)
        .await?
        .into_iter()
        .find(|m| m.user_id == user)
        .map(MemberView::from)
        .ok_or(ApiError::NotFound(NO_MEMBER))
}

/// Adds an existing account to the project (admins and owner).
#[utoipa::path(post, path = "/projects/{project_id}/members", tag = "members",
    params(("project_id" = i64, Path, description = "Project id")),
    request_body = InviteRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Added", body = MemberView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Only admins and the owner invite", body = ErrorBody),
        (status = 404, description = "No such project (or not a member), or no account with this email", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 422, description = "Invalid role, or the project has 50 members", body = ErrorBody),
    ))]
pub async fn invite(
    State(app): State<ApiState>,
    Writer(actor): Writer,
    Path(project): Path<ProjectId>,
    Json(req): Json<InviteRequest>,
) -> Result<(StatusCode, axum::Json<MemberView>), ApiError> {
    access::require(&app, project, actor, Need::Manage).await?;
    let role = grantable(&req.role)?;
    let email = input::email(&req.email)?;
    let user = app
        .store
        .user_by_email(&email)
        .await?
        .ok_or(ApiError::NotFound("no account with this email"))?;
    match app
        .store
        .add_member_capped(project, user.id, role, MAX_MEMBERS)
        .await?
    {
        AddMember::Added => Ok((
            StatusCode::CREATED,
            axum::Json(member_view(&app, project, user.id).await?),
        )),
        AddMember::AlreadyMember => Err(ApiError::Conflict("already a member of this project")),
        AddMember::ProjectFull => Err(ApiError::invalid(format!(
            "a project has at most {MAX_MEMBERS} members"
        ))),
    }
}

/// The target's current role, refusing changes to the owner.
async fn target_role(app: &ApiState, project: ProjectId, user: UserId) -> Result<Role, ApiError> {
    match app.store.member_role(project, user).await? {
        None => Err(ApiError::NotFound(NO_MEMBER)),
        Some(Role::Owner) => Err(ApiError::Forbidden(
            "the owner's membership cannot be changed",
        )),
        Some(role) => Ok(role),
    }
}

/// Changes a member's role (admins and owner).
#[utoipa::path(patch, path = "/projects/{project_id}/members/{user_id}", tag = "members",
    params(("project_id" = i64, Path, description = "Project id"),
           ("user_id" = i64, Path, description = "The member's user id")),
    request_body = RoleRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = MemberView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Not allowed, or the target is the owner", body = ErrorBody),
        (status = 404, description = "No such project or member", body = ErrorBody),
        (status = 422, description = "Invalid role", body = ErrorBody),
    ))]
pub async fn change_role(
    State(app): State<ApiState>,
    Writer(actor): Writer,
    Path((project, user)): Path<(ProjectId, UserId)>,
    Json(req): Json<RoleRequest>,
) -> Result<axum::Json<MemberView>, ApiError> {
    access::require(&app, project, actor, Need::Manage).await?;
    let role = grantable(&req.role)?;
    let before = target_role(&app, project, user).await?;
    if !app.store.set_member_role(project, user, role).await? {
        return Err(ApiError::NotFound(NO_MEMBER));
    }
    if role < before {
        app.hub.evict(project, user, close::PERMISSION_DENIED).await;
    }
    Ok(axum::Json(member_view(&app, project, user).await?))
}

/// Removes a member (admins and owner); their sockets to the project close with 4003.
#[utoipa::path(delete, path = "/projects/{project_id}/members/{user_id}", tag = "members",
    params(("project_id" = i64, Path, description = "Project id"),
           ("user_id" = i64, Path, description = "The member's user id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Not allowed, or the target is the owner", body = ErrorBody),
        (status = 404, description = "No such project or member", body = ErrorBody),
    ))]
pub async fn remove(
    State(app): State<ApiState>,
    Writer(actor): Writer,
    Path((project, user)): Path<(ProjectId, UserId)>,
) -> Result<StatusCode, ApiError> {
    access::require(&app, project, actor, Need::Manage).await?;
    target_role(&app, project, user).await?;
    if !app.store.remove_member(project, user).await? {
        return Err(ApiError::NotFound(NO_MEMBER));
    }
    app.hub.evict(project, user, close::PERMISSION_DENIED).await;
    Ok(StatusCode::NO_CONTENT)
}
