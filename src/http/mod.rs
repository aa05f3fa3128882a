//! The HTTP surface: health, metrics, the WebSocket endpoint; each resource
//! module exposes its own router and they are merged here.

mod health;

use axum::Router;

use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(crate::ws::router())
        .with_state(state)
}
