//! Liveness, readiness and Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn live() -> &'static str {
    "ok"
}

/// The store (and broker, when remote) answer: this node can take traffic.
async fn ready(State(app): State<ApiState>) -> impl IntoResponse {
    let store = app.store.ping().await.is_ok();
    let broker = app.hub.broker_ready().await;
    let status = if store && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "store": if store { "ok" } else { "unreachable" },
        "broker": if broker { "ok" } else { "unreachable" },
    });
    (status, axum::Json(body))
}

async fn metrics(State(app): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
