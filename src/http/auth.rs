//! Accounts and tokens: sign-up, sign-in (throttled), refresh-token rotation
//! with reuse detection, and sign-out.
//!
//! A sign-in starts a token family. Each refresh revokes the token presented
//! and issues its successor in the same family; presenting a revoked token
//! again means it was stolen or replayed, so the whole family is revoked and
//! its holder must sign in again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::Json;
use super::input;
use super::login_limit::LoginLimits;
use super::views::UserView;
use crate::auth::password::{self, PasswordError};
use crate::auth::{Claims, TokenKind};
use crate::limits::LimitedKind;
use crate::store::{NewUser, RefreshUse, User};
use crate::time::now_ms;

/// The one answer to a failed sign-in, whether the email or the password was wrong.
const BAD_CREDENTIALS: &str = "invalid email or password";

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(format = "email", example = "ann@example.com")]
    pub email: String,
    /// At least 8 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// 3 to 30 letters, digits or `@.+-_`.
    #[schema(min_length = 3, max_length = 30, pattern = r"^[A-Za-z0-9@.+_-]{3,30}$")]
    pub username: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A fresh access token and refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// Send as `Authorization: Bearer …` (or `?token=` on the socket).
    pub access_token: String,
    /// Send to `/auth/refresh` for the next pair; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserView,
}

/// The key under which a refresh token's jti is stored.
fn jti_hash(jti: &str) -> String {
    Sha256::digest(jti.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A 429 for a sign-up or sign-in over its quota, counted.
fn refused(app: &ApiState, wait: Duration) -> ApiError {
    app.metrics.http.rate_limited.fetch_add(1, Relaxed);
    ApiError::rate_limited(wait)
}

/// A hashing failure as an answer; saturation (503) is counted.
fn hashing_failed(app: &ApiState, e: PasswordError) -> ApiError {
    if matches!(e, PasswordError::Busy) {
        app.metrics.http.hash_busy.fetch_add(1, Relaxed);
    }
    e.into()
}

/// Counts a refresh or sign-out against its user's REST write quota (the
/// user is known only once the refresh token verifies).
fn count_write(app: &ApiState, claims: &Claims) -> Result<(), ApiError> {
    let user = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("invalid token"))?;
    app.limits
        .check(user, LimitedKind::RestWrite)
        .map_err(|wait| refused(app, wait))
}

/// Mints an access token and a refresh token in `family` for `user`.
async fn issue(app: &ApiState, user: User, family: &str) -> Result<TokenPair, ApiError> {
    let refresh_ttl = Duration::from_secs(app.config.auth.refresh_token_ttl_secs);
    let access_token = app.jwt.mint_access(user.id)?;
    let (refresh_token, jti) = app.jwt.mint_refresh(user.id, refresh_ttl)?;
    let ttl_ms = i64::try_from(refresh_ttl.as_millis()).unwrap_or(i64::MAX);
    app.store
        .insert_refresh_token(
            &jti_hash(&jti),
            family,
            user.id,
            now_ms().saturating_add(ttl_ms),
        )
        .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: app.jwt.access_ttl().as_secs(),
        user: user.into(),
    })
}

/// Creates an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserView),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 422, description = "Invalid email, username or password", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Too many sign-ups and sign-ins at once",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn register(
    State(app): State<ApiState>,
    Extension(limits): Extension<Arc<LoginLimits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    limits
        .register(peer.ip())
        .map_err(|wait| refused(&app, wait))?;
    let email = input::email(&req.email)?;
    let username = input::username(&req.username)?;
    input::password(&req.password)?;
    if app.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::Conflict("an account with this email exists"));
    }
    let hash = app
        .hashes
        .hash(req.password)
        .await
        .map_err(|e| hashing_failed(&app, e))?;
    let user = app
        .store
        .create_user(&NewUser {
            email: &email,
            username: &username,
            password_hash: Some(&hash),
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                ApiError::Conflict("an account with this email exists")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

/// Signs in: an access token, a refresh token, and the user.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 429, description = "Too many attempts for this email or address",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Too many sign-ups and sign-ins at once",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn login(
    State(app): State<ApiState>,
    Extension(limits): Extension<Arc<LoginLimits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let email = req.email.trim().to_lowercase();
    limits
        .attempt(&email, peer.ip())
        .map_err(|wait| refused(&app, wait))?;
    let found = if req.password.chars().count() > password::MAX_PASSWORD_CHARS {
        None
    } else {
        app.store.user_credentials(&email).await?
    };
    let (user, stored) = match found {
        Some((user, stored)) => (Some(user), stored),
        None => (None, None),
    };
    let ok = app
        .hashes
        .verify(req.password, stored)
        .await
        .map_err(|e| hashing_failed(&app, e))?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => return Err(ApiError::Unauthorized(BAD_CREDENTIALS)),
    };
    let family = uuid::Uuid::new_v4().to_string();
    Ok(axum::Json(issue(&app, user, &family).await?))
}

/// Trades a refresh token for a new pair; the old one is revoked. A revoked
/// token presented again revokes its whole family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn refresh(
    State(app): State<ApiState>,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let claims = app.jwt.verify(&req.refresh_token, TokenKind::Refresh)?;
    count_write(&app, &claims)?;
    match app.store.use_refresh_token(&jti_hash(&claims.jti)).await? {
        RefreshUse::Rotated { user, family } if user.to_string() == claims.sub => {
            let user = app
                .store
                .user_by_id(user)
                .await?
                .ok_or(ApiError::Unauthorized("invalid token"))?;
            Ok(axum::Json(issue(&app, user, &family).await?))
        }
        RefreshUse::Reused => Err(ApiError::Unauthorized(
            "refresh token reused; every session of this sign-in is revoked",
        )),
        _ => Err(ApiError::Unauthorized("invalid token")),
    }
}

/// Signs out: revokes the refresh token and every token rotated from the same sign-in.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Invalid or unknown token", body = ErrorBody),
        (status = 429, description = "Too many writes by this user",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn logout(
    State(app): State<ApiState>,
    Json(req): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let claims = app.jwt.verify(&req.refresh_token, TokenKind::Refresh)?;
    count_write(&app, &claims)?;
    if app
        .store
        .revoke_refresh_token_family(&jti_hash(&claims.jti))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Unauthorized("invalid token"))
    }
}
