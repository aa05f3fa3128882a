//! Members over REST: invite, role changes, removal, the 50-member cap, the
//! role table, and closing a removed member's sockets with 4003.

mod common;

use std::time::{Duration, Instant};

use common::rest::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use vridge_protocol::close;
use vridge_realtime::domain::Role;
use vridge_realtime::store::NewUser;

async fn user(server: &TestServer, name: &str) -> vridge_realtime::store::User {
    server
        .state
        .store
        .create_user(&NewUser {
            email: &format!("{name}@example.com"),
            username: name,
            password_hash: None,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn admins_invite_by_email_and_duplicates_unknowns_and_owner_role_are_refused() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let newcomer = user(&server, "newcomer").await;
    let path = format!("/projects/{}/members", f.project.id);
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));

    let added = owner
        .post(
            &path,
            json!({"email": "NEWCOMER@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    assert_eq!(added.body["user_id"], newcomer.id);
    assert_eq!(added.body["role"], "admin");
    assert_eq!(
        server
            .state
            .store
            .member_role(f.project.id, newcomer.id)
            .await
            .unwrap(),
        Some(Role::Admin)
    );

    let again = owner
        .post(
            &path,
            json!({"email": "newcomer@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown = owner
        .post(
            &path,
            json!({"email": "ghost@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for role in ["owner", "root"] {
        let r = owner
            .post(&path, json!({"email": f.outsider.email, "role": role}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{role}");
    }

    // The new admin may invite too; editors and viewers may not.
    let admin = Api::new(&server).as_token(&server.token(newcomer.id));
    let by_admin = admin
        .post(&path, json!({"email": f.outsider.email, "role": "viewer"}))
        .await;
    assert_eq!(by_admin.status, StatusCode::CREATED);
    let late = user(&server, "latecomer").await;
    for actor in [f.editor.id, f.viewer.id] {
        let r = Api::new(&server)
            .as_token(&server.token(actor))
            .post(&path, json!({"email": late.email, "role": "viewer"}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn a_project_holds_at_most_50_members() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    // The fixture has 4 members; fill up to 50.
    for i in 0..46 {
        let u = user(&server, &format!("filler{i}")).await;
        server
            .state
            .store
            .add_member(f.project.id, u.id, Role::Viewer)
            .await
            .unwrap();
    }
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));
    let full = owner
        .post(
            &format!("/projects/{}/members", f.project.id),
            json!({"email": f.outsider.email, "role": "viewer"}),
        )
        .await;
    assert_eq!(full.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(full.body["message"].as_str().unwrap().contains("50"));
    let detail = owner.get(&format!("/projects/{}", f.project.id)).await;
    assert_eq!(detail.body["member_count"], 50);
}

#[tokio::test]
async fn role_changes_follow_the_table_and_never_touch_the_owner() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));
    let member = |id: i64| format!("/projects/{}/members/{id}", f.project.id);

    let promoted = owner
        .patch(&member(f.viewer.id), json!({"role": "editor"}))
        .await;
    assert_eq!(promoted.status, StatusCode::OK);
    assert_eq!(promoted.body["role"], "editor");
    let bad = owner
        .patch(&member(f.viewer.id), json!({"role": "owner"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let not_member = owner
        .patch(&member(f.outsider.id), json!({"role": "viewer"}))
        .await;
    assert_eq!(not_member.status, StatusCode::NOT_FOUND);

    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let by_editor = editor
        .patch(&member(f.editor2.id), json!({"role": "viewer"}))
        .await;
    assert_eq!(by_editor.status, StatusCode::FORBIDDEN);

    owner
        .patch(&member(f.editor.id), json!({"role": "admin"}))
        .await;
    let admin = editor; // now an admin
    let on_owner = admin
        .patch(&member(f.owner.id), json!({"role": "viewer"}))
        .await;
    assert_eq!(on_owner.status, StatusCode::FORBIDDEN);
    assert_eq!(
        admin.delete(&member(f.owner.id)).await.status,
        StatusCode::FORBIDDEN
    );
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    assert_eq!(
        outsider.delete(&member(f.viewer.id)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn removing_a_member_closes_their_sockets_with_4003_within_a_second() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut removed, _) = server.join(f.project.id, f.editor2.id).await;
    let (mut stays, _) = server.join(f.project.id, f.editor.id).await;
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));
    let started = Instant::now();
    let r = owner
        .delete(&format!(
            "/projects/{}/members/{}",
            f.project.id, f.editor2.id
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        removed.ended().await,
        Ended::Closed(close::PERMISSION_DENIED)
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The others stay connected and see the departure.
    stays
        .expect(|m| {
            matches!(m, vridge_protocol::ServerMessage::PresenceLeave { user_id } if *user_id == f.editor2.id)
        })
        .await;
    // Gone from the project: REST 404, and a new socket is refused.
    let gone = Api::new(&server).as_token(&server.token(f.editor2.id));
    assert_eq!(
        gone.get(&format!("/projects/{}", f.project.id))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let mut again = Client::connect(
        &server.ws_url(f.project.id, &server.token(f.editor2.id)),
        vridge_protocol::Encoding::Json,
    )
    .await;
    assert_eq!(again.ended().await, Ended::Closed(close::PERMISSION_DENIED));
    assert_eq!(
        owner
            .delete(&format!(
                "/projects/{}/members/{}",
                f.project.id, f.editor2.id
            ))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_demoted_editor_is_disconnected_and_rejoins_as_a_viewer() {
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    let owner = Api::new(&server).as_token(&server.token(f.owner.id));
    let r = owner
        .patch(
            &format!("/projects/{}/members/{}", f.project.id, f.editor.id),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        socket.ended().await,
        Ended::Closed(close::PERMISSION_DENIED)
    );
    let (mut socket, _) = server.join(f.project.id, f.editor.id).await;
    socket
        .send(&comment_add(f.feedback[0], "still here?", None))
        .await;
    socket.expect(is_error).await;
}
