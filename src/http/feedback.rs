//! Feedback items: the project's list with its status counts, creation, and
//! status/priority changes. Every write is published to the project's
//! sockets (`feedback_created`, `status_changed`) as it happens.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vridge_protocol::{FeedbackId, ProjectId};

use super::ApiState;
use super::access::{self, NO_FEEDBACK, Need};
use super::error::{ApiError, ErrorBody};
use super::etag::json_with_etag;
use super::extract::{AuthUser, Json, Path, Query, Writer};
use super::input::{self, FEEDBACK_STATUSES, PRIORITIES};
use super::views::{FeedbackList, FeedbackView};
use crate::store::NewFeedback;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/feedback/{project_id}", get(list).post(create))
        .route("/feedback/item/{feedback_id}", patch(update))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only items with this status: `open`, `in_progress`, `resolved` or `closed`.
    pub status: Option<String>,
    /// Only items with this priority: `low`, `medium`, `high` or `critical`.
    pub priority: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateFeedback {
    /// 1 to 200 characters.
    pub title: String,
    /// Position in the video, in seconds (>= 0).
    pub timestamp: f64,
    /// `low`, `medium` (default), `high` or `critical`.
    pub priority: Option<String>,
    pub video_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateFeedback {
    /// `open`, `in_progress`, `resolved` or `closed`.
    pub status: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: Option<String>,
}

/// A project's feedback items, newest first, and its counts by status.
#[utoipa::path(get, path = "/feedback/{project_id}", tag = "feedback",
    params(("project_id" = i64, Path, description = "Project id"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Items and counts", body = FeedbackList,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
        (status = 422, description = "Unknown status or priority", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(project): Path<ProjectId>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    access::require(&app, project, user, Need::Read).await?;
    let status = q
        .status
        .as_deref()
        .map(|s| input::one_of("status", s, &FEEDBACK_STATUSES))
        .transpose()?;
    let priority = q
        .priority
        .as_deref()
        .map(|p| input::one_of("priority", p, &PRIORITIES))
        .transpose()?;
    let items = app.store.list_feedback(project, status, priority).await?;
    let stats = app.store.feedback_stats(project).await?;
    json_with_etag(
        &headers,
        &FeedbackList {
            results: items.into_iter().map(FeedbackView::from).collect(),
            stats: stats.into(),
        },
    )
}

/// Creates a feedback item (editors and up); the project's sockets get `feedback_created`.
#[utoipa::path(post, path = "/feedback/{project_id}", tag = "feedback",
    params(("project_id" = i64, Path, description = "Project id")),
    request_body = CreateFeedback,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = FeedbackView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Viewers may not create feedback", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<ApiState>,
    Writer(user): Writer,
    Path(project): Path<ProjectId>,
    Json(req): Json<CreateFeedback>,
) -> Result<(StatusCode, axum::Json<FeedbackView>), ApiError> {
    access::require(&app, project, user, Need::Create).await?;
    input::text("title", &req.title, input::MAX_NAME_CHARS, true)?;
    if !req.timestamp.is_finite() || req.timestamp < 0.0 {
        return Err(ApiError::invalid(
            "timestamp must be a number of seconds >= 0",
        ));
    }
    let priority = input::one_of(
        "priority",
        req.priority.as_deref().unwrap_or("medium"),
        &PRIORITIES,
    )?;
    if let Some(url) = &req.video_url {
        input::text("video_url", url, input::MAX_URL_CHARS, true)?;
    }
    let feedback = app
        .hub
        .create_feedback(&NewFeedback {
            project_id: project,
            created_by: user,
            title: req.title.trim(),
            priority,
            timestamp: Some(req.timestamp),
            video_url: req.video_url.as_deref(),
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(feedback.into())))
}

/// Changes a feedback item's status and/or priority (editors and up); the
/// project's sockets get `status_changed`.
#[utoipa::path(patch, path = "/feedback/item/{feedback_id}", tag = "feedback",
    params(("feedback_id" = i64, Path, description = "Feedback item id")),
    request_body = UpdateFeedback,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = FeedbackView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 403, description = "Viewers may not change feedback", body = ErrorBody),
        (status = 404, description = "No such item, or not a member of its project", body = ErrorBody),
        (status = 422, description = "Invalid or missing status/priority", body = ErrorBody),
    ))]
pub async fn update(
    State(app): State<ApiState>,
    Writer(user): Writer,
    Path(feedback): Path<FeedbackId>,
    Json(req): Json<UpdateFeedback>,
) -> Result<axum::Json<FeedbackView>, ApiError> {
    let _ = access::require_feedback(&app, feedback, user, Need::Update).await?;
    let status = req
        .status
        .as_deref()
        .map(|s| input::one_of("status", s, &FEEDBACK_STATUSES))
        .transpose()?;
    let priority = req
        .priority
        .as_deref()
        .map(|p| input::one_of("priority", p, &PRIORITIES))
        .transpose()?;
    if status.is_none() && priority.is_none() {
        return Err(ApiError::invalid("give a status, a priority, or both"));
    }
    let item = app
        .hub
        .update_feedback(feedback, user, status, priority)
        .await?
        .ok_or(ApiError::NotFound(NO_FEEDBACK))?;
    Ok(axum::Json(item.into()))
}
