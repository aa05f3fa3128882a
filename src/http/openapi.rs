//! The OpenAPI 3 document of the REST surface, generated from the handlers'
//! annotations, served at `/openapi.json`.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::ApiState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vridge-realtime REST API",
        description = "Accounts, projects, members, feedback and comment history. \
            Errors are `{\"error\": code, \"message\": text}`. A project the caller is \
            not a member of answers 404, exactly like one that does not exist."
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::auth::refresh,
        super::auth::logout,
        super::me::me,
        super::projects::list,
        super::projects::create,
        super::projects::detail,
        super::projects::update,
        super::members::invite,
        super::members::change_role,
        super::members::remove,
        super::feedback::list,
        super::feedback::create,
        super::feedback::update,
        super::comments::feedback_comments,
        super::comments::project_feed,
        super::comments::add_comment,
        super::comments::thread,
        super::comments::versions,
        super::events::project_events,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn router() -> Router<ApiState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
