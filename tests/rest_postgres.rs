//! The REST surface on PostgreSQL: every new query runs on the production
//! engine too, and a project listing costs the same, fixed number of
//! statements whatever the page size (counted from sqlx's statement log).
//! Needs the database of `TEST_DATABASE_URL` (default: the local server);
//! fails, never skips, when it is unreachable.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database on the test server; dropped by [`drop_database`].
async fn create_database() -> (String, String) {
    let admin = sqlx::PgPool::connect(&admin_url())
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL is reachable");
    let name = format!("vridge_rest_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = admin_url();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    (name.clone(), format!("{prefix}/{name}"))
}

async fn drop_database(name: &str) {
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
}

/// Counts the statements sqlx logs on this thread.
struct StatementCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// A current-thread runtime: the server's tasks, and so its PostgreSQL
// statements, run on this thread, where the counter is installed.
#[tokio::test(flavor = "current_thread")]
async fn the_rest_surface_works_on_postgres_and_listing_costs_two_statements() {
    let (name, url) = create_database().await;
    let server = TestServer::spawn_with(&["--database-url", &url]).await;
    assert_eq!(server.state.store.engine(), "postgres");
    let api = Api::new(&server);

    // Accounts and token rotation.
    api.register("pg-owner@example.com").await;
    api.register("pg-member@example.com").await;
    let pair = api.login("pg-owner@example.com").await;
    let rotated = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let reuse = api
        .post(
            "/auth/refresh",
            json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    let owner = api.as_token(rotated.body["access_token"].as_str().unwrap());
    let member_pair = api.login("pg-member@example.com").await;
    let member = api.as_token(member_pair["access_token"].as_str().unwrap());

    // Projects, members, feedback, comments.
    let mut project_ids = Vec::new();
    for i in 0..30 {
        let p = owner
            .post("/projects", json!({"name": format!("P{i}")}))
            .await;
        assert_eq!(p.status, StatusCode::CREATED);
        project_ids.push(p.body["id"].as_i64().unwrap());
    }
    let project = project_ids[0];
    let invited = owner
        .post(
            &format!("/projects/{project}/members"),
            json!({"email": "pg-member@example.com", "role": "editor"}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED);
    assert_eq!(
        owner
            .post(
                &format!("/projects/{project}/members"),
                json!({"email": "pg-member@example.com", "role": "editor"}),
            )
            .await
            .status,
        StatusCode::CONFLICT
    );
    let fb = member
        .post(
            &format!("/feedback/{project}"),
            json!({"title": "Grade", "timestamp": 3.0, "priority": "high"}),
        )
        .await;
    assert_eq!(fb.status, StatusCode::CREATED);
    let fb_id = fb.body["id"].as_i64().unwrap();
    let patched = member
        .patch(
            &format!("/feedback/item/{fb_id}"),
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(patched.body["status"], "in_progress");
    let list = member
        .get(&format!(
            "/feedback/{project}?status=in_progress&priority=high"
        ))
        .await;
    assert_eq!(list.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        list.body["stats"],
        json!({"total": 1, "open": 0, "in_progress": 1, "resolved": 0, "closed": 0})
    );
    let mut comment_ids = Vec::new();
    for i in 0..3 {
        let c = Api::send(
            member
                .request(
                    reqwest::Method::POST,
                    &format!("/feedback/item/{fb_id}/comments"),
                )
                .header("Idempotency-Key", format!("pg-{i}"))
                .json(&json!({"text": format!("c{i}")})),
        )
        .await;
        assert_eq!(c.status, StatusCode::CREATED);
        comment_ids.push(c.body["id"].as_i64().unwrap());
    }
    let page = member
        .get(&format!("/feedback/item/{fb_id}/comments?limit=2"))
        .await;
    assert_eq!(page.body["results"][0]["id"], comment_ids[2]);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let older = member
        .get(&format!(
            "/feedback/item/{fb_id}/comments?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(older.body["results"][0]["id"], comment_ids[0]);
    let feed = member
        .get(&format!(
            "/projects/{project}/comments?since={}",
            comment_ids[0]
        ))
        .await;
    assert_eq!(feed.body["results"].as_array().unwrap().len(), 2);
    let archived = owner
        .patch(
            &format!("/projects/{project}"),
            json!({"status": "archived"}),
        )
        .await;
    assert_eq!(archived.body["status"], "archived");
    assert_eq!(
        owner
            .delete(&format!(
                "/projects/{project}/members/{}",
                invited.body["user_id"]
            ))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // The listing: the same statement count for 1 row or 50.
    let counted = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(StatementCounter(counted.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut costs = Vec::new();
    for size in [1, 10, 50] {
        counted.store(0, Ordering::SeqCst);
        let r = owner
            .get(&format!("/projects?page_size={size}&status=all"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["count"], 30);
        assert_eq!(r.body["results"].as_array().unwrap().len(), size.min(30));
        costs.push(counted.load(Ordering::SeqCst));
    }
    assert_eq!(costs, vec![2, 2, 2], "statements per listing page");
    drop(_guard);

    server.stop().await;
    drop_database(&name).await;
}
