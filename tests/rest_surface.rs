//! What every REST route shares: the OpenAPI document lists each of them,
//! CORS follows the allow-list, bodies are size-limited, unknown routes
//! answer a JSON 404; the review page at `/` is served with its security headers.

mod common;

use std::collections::BTreeSet;

use common::rest::Api;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every REST route the server has, as "METHOD path".
const ROUTES: &[&str] = &[
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /auth/logout",
    "GET /me",
    "GET /projects",
    "POST /projects",
    "GET /projects/{project_id}",
    "PATCH /projects/{project_id}",
    "POST /projects/{project_id}/members",
    "PATCH /projects/{project_id}/members/{user_id}",
    "DELETE /projects/{project_id}/members/{user_id}",
    "GET /projects/{project_id}/comments",
    "GET /feedback/{project_id}",
    "POST /feedback/{project_id}",
    "PATCH /feedback/item/{feedback_id}",
    "GET /feedback/item/{feedback_id}/comments",
    "POST /feedback/item/{feedback_id}/comments",
    "GET /comments/{comment_id}/thread",
    "GET /comments/{comment_id}/versions",
    "GET /projects/{project_id}/events",
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_is_served() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    let doc = api.get("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(documented, expected);
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc.body["components"]["schemas"]["ErrorBody"].is_object());

    // Each documented operation reaches a handler (no fallback 404, no 405).
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let concrete = path
            .replace("{project_id}", "1")
            .replace("{user_id}", "1")
            .replace("{feedback_id}", "1");
        let req = api
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
            .json(&json!({}));
        let r = Api::send(req).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{route}");
        assert_ne!(r.body["message"], "no such route", "{route}");
        assert!(r.status.is_client_error(), "{route}: {:?}", r.status);
    }
}

#[tokio::test]
async fn unknown_routes_answer_a_json_404() {
    let server = TestServer::spawn().await;
    let r = Api::new(&server).get("/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "message": "no such route"})
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let server = TestServer::spawn_with(&[
        "--cors-origins",
        "https://app.example,https://admin.example",
    ])
    .await;
    let api = Api::new(&server);
    let preflight = |origin: &'static str| {
        api.request(Method::OPTIONS, "/projects")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key",
            )
    };
    let allowed = preflight("https://admin.example").send().await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://admin.example"
    );
    let allow_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allow_headers.contains("idempotency-key"), "{allow_headers}");
    let refused = preflight("https://evil.example").send().await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let simple = api
        .request(Method::GET, "/me")
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let server = TestServer::spawn_with(&["--max-body-bytes", "1024"]).await;
    let f = server.fixture().await;
    let api = Api::new(&server).as_token(&server.token(f.editor.id));
    let big = api
        .post(
            &format!("/feedback/item/{}/comments", f.feedback[0]),
            json!({"text": "x".repeat(2000)}),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.error(), "payload_too_large");
    let fine = api
        .post(
            &format!("/feedback/item/{}/comments", f.feedback[0]),
            json!({"text": "x".repeat(500)}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED);
    // A body that is not JSON at all.
    let typed = Api::send(
        api.request(Method::POST, "/projects")
            .header("content-type", "text/plain")
            .body("name=x"),
    )
    .await;
    assert_eq!(typed.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(matches!(typed.body, Value::Object(_)));
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::spawn_with(&["--request-timeout-secs", "1"]).await;
    // A client that announces a body and never finishes sending it.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            response.extend_from_slice(&buf[..n]);
            if n == 0 || response.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server answered before the client gave up"
    );
    let head = String::from_utf8_lossy(&response);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

#[tokio::test]
async fn the_review_page_and_its_assets_are_served_with_a_strict_policy() {
    let server = TestServer::spawn().await;
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/page/app.js", "text/javascript; charset=utf-8"),
        ("/assets/src/session.js", "text/javascript; charset=utf-8"),
        ("/assets/page/style.css", "text/css; charset=utf-8"),
    ] {
        let r = http.get(server.http(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], kind, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self' ws: wss:"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
    }
    let page = http.get(server.http("/")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/page/app.js">"#));
    assert!(!html.contains("<script>"), "no inline script");
    let missing = http
        .get(server.http("/assets/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let unknown = http
        .get(server.http("/assets/page/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
