//! Projects over REST: the paginated list with counts and status filter,
//! creation, detail with members, updates and archiving, and who may do what.

mod common;

use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use vridge_realtime::domain::Role;
use vridge_realtime::store::NewFeedback;

#[tokio::test]
async fn list_pages_through_own_and_joined_projects_with_links() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let api = Api::new(&server).as_token(&server.token(f.editor.id));
    // The editor owns 11 projects and is a member of the fixture's: 12.
    for i in 0..11 {
        let r = api
            .post("/projects", json!({"name": format!("Cut {i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let page1 = api.get("/projects?page_size=5").await;
    assert_eq!(page1.status, StatusCode::OK);
    assert_eq!(page1.body["count"], 12);
    assert_eq!(page1.body["results"].as_array().unwrap().len(), 5);
    assert_eq!(page1.body["previous"], serde_json::Value::Null);
    assert_eq!(
        page1.body["next"],
        "/projects?page=2&page_size=5&status=active"
    );
    let page3 = api.get("/projects?page=3&page_size=5").await;
    let last = page3.body["results"].as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(page3.body["next"], serde_json::Value::Null);
    assert_eq!(
        page3.body["previous"],
        "/projects?page=2&page_size=5&status=active"
    );
    // Newest first; the fixture's project (oldest, joined as editor) is last.
    assert_eq!(last[1]["id"], f.project.id);
    assert_eq!(last[1]["role"], "editor");
    // Defaults: 10 per page; page_size is capped at 50.
    let default = api.get("/projects").await;
    assert_eq!(default.body["results"].as_array().unwrap().len(), 10);
    let capped = api.get("/projects?page_size=500").await;
    assert_eq!(capped.body["results"].as_array().unwrap().len(), 12);
    assert_eq!(capped.body["next"], serde_json::Value::Null);
    // Beyond the last page: empty, with the count.
    let beyond = api.get("/projects?page=9").await;
    assert_eq!(beyond.body["count"], 12);
    assert!(beyond.body["results"].as_array().unwrap().is_empty());
    // Bad pages.
    assert_eq!(
        api.get("/projects?page=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.get("/projects?page=x").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("/projects?status=deleted").await.status,
        StatusCode::BAD_REQUEST
    );
    // The outsider sees none of them.
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(outsider.get("/projects").await.body["count"], 0);
    assert_eq!(
        Api::new(&server).get("/projects").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn list_counts_members_and_open_and_total_feedback_per_project() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let store = &server.state.store;
    // A second project with a different shape, so counts cannot leak across rows.
    let other = store.create_project(f.owner.id, "Other", "").await.unwrap();
    store
        .add_member(other.id, f.viewer.id, Role::Viewer)
        .await
        .unwrap();
    for title in ["a", "b", "c"] {
        store
            .create_feedback(&NewFeedback {
                project_id: other.id,
                created_by: f.owner.id,
                title,
                priority: "low",
                timestamp: None,
                video_url: None,
            })
            .await
            .unwrap();
    }
    store
        .update_feedback(f.feedback[0], f.owner.id, Some("resolved"), None)
        .await
        .unwrap();
    let api = Api::new(&server).as_token(&server.token(f.owner.id));
    let page = api.get("/projects?page_size=50").await;
    let results = page.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let by_id = |id: i64| results.iter().find(|p| p["id"] == id).unwrap();
    let fixture = by_id(f.project.id);
    assert_eq!(fixture["member_count"], 4);
    assert_eq!(fixture["feedback_total"], 2);
    assert_eq!(fixture["feedback_open"], 1);
    assert_eq!(fixture["role"], "owner");
    let o = by_id(other.id);
    assert_eq!(o["member_count"], 2);
    assert_eq!(o["feedback_total"], 3);
    assert_eq!(o["feedback_open"], 3);
}

#[tokio::test]
async fn create_then_detail_shows_members() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let api = Api::new(&server).as_token(&server.token(f.owner.id));
    let created = api
        .post(
            "/projects",
            json!({"name": "  Trailer  ", "description": "v2"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "Trailer");
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["members"][0]["role"], "owner");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
        json!({"name": "a\u{0}b"}),
    ] {
        let r = api.post("/projects", bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let detail = api.get(&format!("/projects/{}", f.project.id)).await;
    assert_eq!(detail.status, StatusCode::OK);
    let members = detail.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    assert_eq!(members[0]["user_id"], f.owner.id);
    assert_eq!(members[0]["role"], "owner");
    assert!(
        members
            .iter()
            .any(|m| m["user_id"] == f.viewer.id && m["role"] == "viewer")
    );
}

#[tokio::test]
async fn a_non_member_gets_404_for_an_existing_project_as_for_a_missing_one() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    let existing = outsider.get(&format!("/projects/{}", f.project.id)).await;
    let missing = outsider.get("/projects/999999").await;
    assert_eq!(existing.status, StatusCode::NOT_FOUND);
    assert_eq!(existing.body, missing.body);
    let patch = outsider
        .patch(&format!("/projects/{}", f.project.id), json!({"name": "x"}))
        .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(
        outsider.get("/projects/not-a-number").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn editors_update_viewers_cannot_and_archiving_keeps_history_readable() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let path = format!("/projects/{}", f.project.id);
    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    let denied = viewer.patch(&path, json!({"name": "Mine now"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.error(), "forbidden");

    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let renamed = editor
        .patch(&path, json!({"name": "Cut 4", "description": "final"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "Cut 4");
    assert_eq!(renamed.body["description"], "final");
    let bad = editor.patch(&path, json!({"status": "deleted"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A comment to find again after archiving.
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    socket
        .send(&comment_add(f.feedback[0], "keep me", Some("k1")))
        .await;
    socket.expect(is_ack).await;

    let archived = editor.patch(&path, json!({"status": "archived"})).await;
    assert_eq!(archived.status, StatusCode::OK);
    assert_eq!(archived.body["status"], "archived");
    assert_eq!(archived.body["name"], "Cut 4", "other fields kept");
    let active = editor.get("/projects").await;
    assert!(
        !active.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == f.project.id)
    );
    let listed = editor.get("/projects?status=archived").await;
    assert_eq!(listed.body["results"][0]["id"], f.project.id);
    assert_eq!(editor.get("/projects?status=all").await.body["count"], 1);
    // History stays readable.
    assert_eq!(editor.get(&path).await.status, StatusCode::OK);
    let feedback = editor.get(&format!("/feedback/{}", f.project.id)).await;
    assert_eq!(feedback.body["stats"]["total"], 2);
    let comments = viewer
        .get(&format!("/projects/{}/comments", f.project.id))
        .await;
    assert_eq!(comments.body["results"][0]["text"], "keep me");
}
