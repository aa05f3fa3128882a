//! Feedback over REST: the list with filters and counts, creation and status
//! changes, and the socket events they cause.

mod common;

use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use vridge_protocol::ServerMessage;

#[tokio::test]
async fn list_filters_by_status_and_priority_and_counts_everything() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let path = format!("/feedback/{}", f.project.id);
    let high = editor
        .post(
            &path,
            json!({"title": "Too dark", "timestamp": 10.0, "priority": "high"}),
        )
        .await;
    assert_eq!(high.status, StatusCode::CREATED);
    editor
        .patch(
            &format!("/feedback/item/{}", f.feedback[0]),
            json!({"status": "in_progress"}),
        )
        .await;
    editor
        .patch(
            &format!("/feedback/item/{}", f.feedback[1]),
            json!({"status": "resolved"}),
        )
        .await;

    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    let all = viewer.get(&path).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        all.body["stats"],
        json!({"total": 3, "open": 1, "in_progress": 1, "resolved": 1, "closed": 0})
    );
    assert_eq!(all.body["results"][0]["title"], "Too dark", "newest first");

    let open = viewer.get(&format!("{path}?status=open")).await;
    let items = open.body["results"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], high.body["id"]);
    assert_eq!(open.body["stats"]["total"], 3, "stats are unfiltered");
    let medium = viewer.get(&format!("{path}?priority=medium")).await;
    assert_eq!(medium.body["results"].as_array().unwrap().len(), 2);
    let both = viewer
        .get(&format!("{path}?priority=medium&status=resolved"))
        .await;
    assert_eq!(both.body["results"][0]["id"], f.feedback[1]);

    let closed = viewer.get(&format!("{path}?status=closed")).await;
    assert_eq!(closed.status, StatusCode::OK, "closed is a status now");
    assert!(closed.body["results"].as_array().unwrap().is_empty());
    assert_eq!(
        viewer.get(&format!("{path}?status=done")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(outsider.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        Api::new(&server).get(&path).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn list_answers_304_to_a_matching_etag() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let api = Api::new(&server).as_token(&server.token(f.viewer.id));
    let path = format!("/feedback/{}", f.project.id);
    let first = api.get(&path).await;
    let etag = first.header("etag").unwrap().to_owned();
    let again = Api::send(
        api.request(reqwest::Method::GET, &path)
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.body, serde_json::Value::Null);
    // A change gives a new tag.
    Api::new(&server)
        .as_token(&server.token(f.editor.id))
        .patch(
            &format!("/feedback/item/{}", f.feedback[0]),
            json!({"priority": "critical"}),
        )
        .await;
    let changed = Api::send(
        api.request(reqwest::Method::GET, &path)
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag").unwrap(), etag);
}

#[tokio::test]
async fn creating_feedback_reaches_the_projects_sockets() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.viewer.id).await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let created = editor
        .post(
            &format!("/feedback/{}", f.project.id),
            json!({"title": "Logo too small", "timestamp": 61.5, "video_url": "https://cdn.example/cut.mp4"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["priority"], "medium");
    assert_eq!(created.body["status"], "open");
    assert_eq!(created.body["created_by"], f.editor.id);
    let event = watcher
        .expect(|m| matches!(m, ServerMessage::FeedbackCreated { .. }))
        .await;
    let ServerMessage::FeedbackCreated { feedback, .. } = event else {
        unreachable!()
    };
    assert_eq!(feedback.id, created.body["id"].as_i64().unwrap());
    assert_eq!(feedback.title, "Logo too small");
    assert_eq!(feedback.timestamp, Some(61.5));
}

#[tokio::test]
async fn creating_feedback_is_validated_and_needs_the_create_permission() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let path = format!("/feedback/{}", f.project.id);
    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    let denied = viewer
        .post(&path, json!({"title": "x", "timestamp": 1.0}))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    for bad in [
        json!({"title": "", "timestamp": 1.0}),
        json!({"title": "x", "timestamp": -1.0}),
        json!({"title": "x", "timestamp": 1.0, "priority": "urgent"}),
        json!({"title": "x"}),
    ] {
        let r = editor.post(&path, bad.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(
        outsider
            .post(&path, json!({"title": "x", "timestamp": 1.0}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Nothing was stored by the refused requests.
    assert_eq!(
        server
            .state
            .store
            .feedback_ids(f.project.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn changing_status_reaches_the_projects_sockets() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.owner.id).await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let path = format!("/feedback/item/{}", f.feedback[1]);
    let r = editor
        .patch(&path, json!({"status": "resolved", "priority": "high"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "resolved");
    assert_eq!(r.body["priority"], "high");
    let event = watcher
        .expect(|m| matches!(m, ServerMessage::StatusChanged { .. }))
        .await;
    let ServerMessage::StatusChanged {
        feedback_id,
        status,
        priority,
        user_id,
        event: Some(logged),
    } = event
    else {
        panic!("expected a logged status change, got {event:?}");
    };
    assert_eq!(
        (feedback_id, status.as_str(), priority.as_str(), user_id),
        (f.feedback[1], "resolved", "high", f.editor.id)
    );
    assert_eq!(
        (logged.prev_seq, logged.actor_id),
        (logged.seq - 1, f.editor.id)
    );
    // Only the priority: the status is kept.
    let r = editor.patch(&path, json!({"priority": "low"})).await;
    assert_eq!(r.body["status"], "resolved");

    assert_eq!(
        editor.patch(&path, json!({})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        editor.patch(&path, json!({"status": "done"})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let viewer = Api::new(&server).as_token(&server.token(f.viewer.id));
    assert_eq!(
        viewer.patch(&path, json!({"status": "open"})).await.status,
        StatusCode::FORBIDDEN
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    let hidden = outsider.patch(&path, json!({"status": "open"})).await;
    let missing = outsider
        .patch("/feedback/item/999999", json!({"status": "open"}))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.body, missing.body);
    // The refused change did not happen.
    watcher
        .expect_none(
            std::time::Duration::from_millis(200),
            |m| matches!(m, ServerMessage::StatusChanged { status, .. } if status == "open"),
        )
        .await;
}
