//! Extractors for REST handlers: the authenticated user (a Bearer access
//! token), the same user counted against a write quota, and JSON, query and
//! path extractors whose rejections render as [`ApiError`] bodies instead of
//! axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use vridge_protocol::UserId;

use super::ApiState;
use super::error::ApiError;
use crate::auth::AuthError;
use crate::limits::LimitedKind;

/// The user a request acts for, from `Authorization: Bearer <access token>`.
/// Refresh tokens, expired or foreign tokens are refused with 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser(pub UserId);

impl FromRequestParts<ApiState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &ApiState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        Ok(AuthUser(app.jwt.verify_access(token)?))
    }
}

/// The user of a REST write, counted against their `RestWrite` quota (429
/// with `Retry-After` past it) before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer(pub UserId);

impl FromRequestParts<ApiState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &ApiState) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, app).await?;
        count(app, user, LimitedKind::RestWrite)?;
        Ok(Writer(user))
    }
}

/// The author of a REST comment, counted against the same `comment_add`
/// quota as the socket's messages, so either way holds the same limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commenter(pub UserId);

impl FromRequestParts<ApiState> for Commenter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &ApiState) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, app).await?;
        count(app, user, LimitedKind::CommentAdd)?;
        Ok(Commenter(user))
    }
}

fn count(app: &ApiState, user: UserId, kind: LimitedKind) -> Result<(), ApiError> {
    app.limits.check(user, kind).map_err(|wait| {
        app.metrics
            .http
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::rate_limited(wait)
    })
}

fn rejected(status: axum::http::StatusCode, message: String) -> ApiError {
    ApiError::Rejected { status, message }
}

/// `axum::Json` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Json(v))
            .map_err(|e: JsonRejection| rejected(e.status(), e.body_text()))
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| rejected(e.status(), e.body_text()))
    }
}

/// `axum::extract::Path` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| {
                // A path segment that is not a number names no resource.
                rejected(axum::http::StatusCode::NOT_FOUND, e.body_text())
            })
    }
}
