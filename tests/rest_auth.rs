//! Accounts and tokens over REST: sign-up, sign-in and its throttling,
//! refresh rotation with reuse detection, sign-out, `/me`, token kinds and
//! pinned algorithms (HS256 by default, RS256 with a key pair).

mod common;

use std::time::Duration;

use base64::Engine;
use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use vridge_realtime::auth::{JwtKeys, TokenKind};

#[tokio::test]
async fn register_creates_an_account_and_refuses_a_taken_email() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    let user = api.register("ann@example.com").await;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["username"], "ann_user");
    assert!(user.get("password_hash").is_none());
    let again = api
        .post(
            "/auth/register",
            json!({"email": "ANN@example.com", "password": "another one", "username": "ann2"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error(), "conflict");
    // The stored hash is argon2id, never the password.
    let (_, hash) = server
        .state
        .store
        .user_credentials("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(hash.unwrap().starts_with("$argon2id$"));
}

#[tokio::test]
async fn register_validates_password_username_and_email() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    for body in [
        json!({"email": "a@example.com", "password": "short", "username": "abc"}),
        json!({"email": "a@example.com", "password": "long enough", "username": "ab"}),
        json!({"email": "a@example.com", "password": "long enough", "username": "a".repeat(31)}),
        json!({"email": "not-an-email", "password": "long enough", "username": "abc"}),
    ] {
        let r = api.post("/auth/register", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error(), "invalid");
        assert!(r.body["message"].is_string());
    }
    let missing = api
        .post("/auth/register", json!({"email": "a@example.com"}))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let broken = Api::send(
        api.request(reqwest::Method::POST, "/auth/register")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.error(), "bad_request");
}

#[tokio::test]
async fn login_returns_a_working_pair_and_one_generic_error() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    let user = api.register("bo@example.com").await;
    let pair = api.login("bo@example.com").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    assert_eq!(pair["user"]["id"], user["id"]);
    let me = api
        .as_token(pair["access_token"].as_str().unwrap())
        .get("/me")
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "bo@example.com");

    let wrong_password = api
        .post(
            "/auth/login",
            json!({"email": "bo@example.com", "password": "wrong horse"}),
        )
        .await;
    let unknown_email = api
        .post(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_password.body, unknown_email.body,
        "one message for both"
    );
}

#[tokio::test]
async fn repeated_logins_for_one_email_get_429_with_retry_after() {
    let server = TestServer::spawn_with(&["--login-attempts-per-email", "3"]).await;
    let api = Api::new(&server);
    api.register("cy@example.com").await;
    for _ in 0..3 {
        let r = api
            .post(
                "/auth/login",
                json!({"email": "cy@example.com", "password": "guess guess"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now.
    let limited = api
        .post(
            "/auth/login",
            json!({"email": "cy@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another email from the same address is still served.
    api.register("dee@example.com").await;
    api.login("dee@example.com").await;
}

#[tokio::test]
async fn repeated_logins_from_one_address_get_429() {
    let server = TestServer::spawn_with(&["--login-attempts-per-ip", "2"]).await;
    let api = Api::new(&server);
    for email in ["e1@example.com", "e2@example.com"] {
        let r = api
            .post(
                "/auth/login",
                json!({"email": email, "password": "whatever1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = api
        .post(
            "/auth/login",
            json!({"email": "e3@example.com", "password": "whatever1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
}

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    api.register("fay@example.com").await;
    let first = api.login("fay@example.com").await;
    let second = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_ne!(second.body["refresh_token"], first["refresh_token"]);
    let me = api
        .as_token(&s(&second.body["access_token"]))
        .get("/me")
        .await;
    assert_eq!(me.status, StatusCode::OK);

    // The first token was rotated away: presenting it again is reuse.
    let replay = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // ...which revoked the whole family, including the live successor.
    let successor = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": second.body["refresh_token"]}),
        )
        .await;
    assert_eq!(successor.status, StatusCode::UNAUTHORIZED);

    // Another sign-in is a separate family and still works.
    let other = api.login("fay@example.com").await;
    let ok = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": other["refresh_token"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    api.register("gus@example.com").await;
    let pair = api.login("gus@example.com").await;
    let out = api
        .post(
            "/auth/logout",
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let garbage = api
        .post("/auth/logout", json!({"refresh_token": "nope"}))
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_kinds_are_not_interchangeable() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    api.register("hal@example.com").await;
    let pair = api.login("hal@example.com").await;
    let refresh_as_access = api.as_token(&s(&pair["refresh_token"])).get("/me").await;
    assert_eq!(refresh_as_access.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_as_access.header("www-authenticate"), Some("Bearer"));
    let access_as_refresh = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": pair["access_token"]}),
        )
        .await;
    assert_eq!(access_as_refresh.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn me_refuses_missing_expired_unsigned_and_foreign_tokens() {
    let server = TestServer::spawn().await;
    let api = Api::new(&server);
    let user = api.register("ida@example.com").await;
    let id = user["id"].as_i64().unwrap();
    assert_eq!(api.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = server
        .state
        .jwt
        .mint_at(id, TokenKind::Access, now - 3600, now - 600)
        .unwrap();
    let r = api.as_token(&expired).get("/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["message"], "token expired");
    let good = server.token(id);
    let payload = good.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_eq!(
        api.as_token(&none).get("/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let foreign = JwtKeys::hs256(&[9u8; 32], Duration::from_secs(60))
        .mint_access(id)
        .unwrap();
    assert_eq!(
        api.as_token(&foreign).get("/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.as_token(&good).get("/me").await.status, StatusCode::OK);
}

/// An RSA key pair made by the `openssl` command line.
fn rsa_pair(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join("jwt_private.pem");
    let public = dir.join("jwt_public.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
    run(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (private, public)
}

#[tokio::test]
async fn with_a_key_pair_tokens_are_rs256_and_nothing_else_is_accepted() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(keys.path());
    let server = TestServer::spawn_with(&[
        "--jwt-private-key",
        private.to_str().unwrap(),
        "--jwt-public-key",
        public.to_str().unwrap(),
    ])
    .await;
    assert_eq!(server.state.jwt.algorithm(), "RS256");
    let api = Api::new(&server);
    let user = api.register("jo@example.com").await;
    let id = user["id"].as_i64().unwrap();
    let pair = api.login("jo@example.com").await;
    let access = s(&pair["access_token"]);
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(access.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        api.as_token(&access).get("/me").await.status,
        StatusCode::OK
    );
    let refreshed = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);

    // HS256 with the configured secret, or with the public key as the HMAC
    // secret (algorithm confusion), is refused.
    let hs = JwtKeys::hs256(JWT_SECRET.as_bytes(), Duration::from_secs(60))
        .mint_access(id)
        .unwrap();
    assert_eq!(
        api.as_token(&hs).get("/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let public_pem = std::fs::read(&public).unwrap();
    let confused = JwtKeys::hs256(&public_pem, Duration::from_secs(60))
        .mint_access(id)
        .unwrap();
    assert_eq!(
        api.as_token(&confused).get("/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    // The socket accepts the RS256 token too.
    let f = server.fixture().await;
    let (_client, state) = server.join(f.project.id, f.owner.id).await;
    assert_eq!(state.project_id, f.project.id);
}
