//! `GET /projects/{id}/events?since_seq=`: a project's event log, oldest
//! first, for REST clients and integrations: the same events, in the same
//! order, that the project's sockets receive live and replay on a
//! `?since_seq=` resume.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;
use vridge_protocol::ProjectId;

use super::ApiState;
use super::access::{self, Need};
use super::comments::limit;
use super::error::{ApiError, ErrorBody};
use super::etag::{PageTag, json_tagged};
use super::extract::{AuthUser, Path, Query};
use super::views::EventFeed;

pub const DEFAULT_EVENTS: u32 = 100;
pub const MAX_EVENTS: u32 = 500;

pub fn router() -> Router<ApiState> {
    Router::new().route("/projects/{project_id}/events", get(project_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Return events numbered after this (default 0: from the first).
    #[param(minimum = 0)]
    pub since_seq: Option<i64>,
    /// Most events returned (default 100, at most 500; larger values are capped).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// A project's events after `since_seq`, oldest first.
#[utoipa::path(get, path = "/projects/{project_id}/events", tag = "events",
    params(("project_id" = i64, Path, description = "Project id"), EventQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events after `since_seq`", body = EventFeed,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
        (status = 422, description = "Invalid limit", body = ErrorBody),
    ))]
pub async fn project_events(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(project): Path<ProjectId>,
    Query(q): Query<EventQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    access::require(&app, project, user, Need::Read).await?;
    let limit = limit(q.limit, DEFAULT_EVENTS, MAX_EVENTS)?;
    let since = q.since_seq.unwrap_or(0).max(0);
    // Events are numbered without holes, but what they show (a comment's
    // current text) can change after they were logged: the tag names the
    // range and the project's newest event, which every such change moves,
    // read before the page so that it never claims a newer state than the
    // page shows.
    let newest = app.reads.last_seq(project).await?.unwrap_or(0);
    let page = app.store.events_since(project, since, limit).await?;
    let last_seq = page.events.last().and_then(|e| e.seq()).unwrap_or(since);
    let tag = PageTag::new(
        "events",
        &[
            project,
            since,
            i64::from(limit),
            last_seq,
            page.events.len() as i64,
            newest,
        ],
    );
    json_tagged(&headers, &tag, || EventFeed {
        events: page.events,
        last_seq,
        complete: !page.more,
    })
}
