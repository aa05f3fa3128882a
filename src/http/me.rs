//! `GET /me`: the signed-in user's account.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::AuthUser;
use super::views::UserView;

pub fn router() -> Router<ApiState> {
    Router::new().route("/me", get(me))
}

/// The signed-in user.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn me(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
) -> Result<axum::Json<UserView>, ApiError> {
    let user = app
        .store
        .user_by_id(user)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    Ok(axum::Json(user.into()))
}
