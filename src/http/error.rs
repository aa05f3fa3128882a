//! The one error type of the REST surface. Every handler returns it; it
//! renders as `{"error": code, "message": text}` with the matching status.
//! Server-side failures are logged here and answered with a fixed message,
//! never with their details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::auth::password::PasswordError;
use crate::hub::persister::PersistError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, invalid or expired credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but the role does not allow this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource, or not one the caller may see (404).
    #[error("{0}")]
    NotFound(&'static str),
    /// The write collides with existing state (409).
    #[error("{0}")]
    Conflict(&'static str),
    /// Well-formed but invalid input (422).
    #[error("{0}")]
    Invalid(String),
    /// A request axum could not parse (bad JSON, query, path, size…), with the
    /// status axum chose (400, 413, 415, 422).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// Too many attempts; retry after this many seconds (429).
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
    /// A dependency is not available right now (503); retrying may succeed.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Saturated right now (503, with `Retry-After`): retry after this long.
    #[error("{message}")]
    Overloaded {
        message: &'static str,
        retry_after_secs: u64,
    },
    /// Anything else (500): logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Rejected { status, .. } => *status,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid(_) => "invalid",
            ApiError::Rejected { status, .. } => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid",
                _ => "bad_request",
            },
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A 429 telling the client to wait `wait` (at least a second).
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        }
    }

    /// Shorthand for a 422 with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.code().to_owned(),
            message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Overloaded {
                retry_after_secs, ..
            } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict("a conflicting record already exists"),
            StoreError::NotFound => ApiError::NotFound("not found"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthorized(match e {
            AuthError::Missing => "authentication required",
            AuthError::Expired => "token expired",
            AuthError::Invalid => "invalid token",
            AuthError::WrongKind => "wrong token type",
        })
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => ApiError::Overloaded {
                message: "too many sign-ins at once, please retry",
                retry_after_secs: 2,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> Self {
        match e {
            PersistError::Stopped => ApiError::Unavailable("the server is shutting down"),
            PersistError::Store => ApiError::Unavailable(crate::hub::persister::STORE_FAILED),
            PersistError::Rejected => ApiError::Invalid("the comment's data was refused".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_conflicts_are_409_and_database_errors_500() {
        assert_eq!(
            ApiError::from(StoreError::Conflict).status_code(),
            StatusCode::CONFLICT
        );
        let db = ApiError::from(StoreError::Database(sqlx::Error::PoolClosed));
        assert_eq!(db.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ApiError::from(AuthError::Expired).status_code(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_details() {
        let response = ApiError::Internal("password_hash column missing".into()).into_response();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("password_hash"), "{text}");
        assert!(text.contains("\"error\":\"internal\""));
    }
}
