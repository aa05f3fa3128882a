//! A coordinator to test against, shared by the hub's and the sockets'
//! unit tests: a hub on a fresh SQLite store and the single-node broker,
//! with a project (owner, editor, viewer), a feedback item in it and one in
//! another project; members join with bare outbound queues.

use std::sync::Arc;
use std::time::Duration;

use vridge_protocol::{Encoding, ServerMessage};

use super::*;
use crate::broker::MemoryBroker;
use crate::domain::Role;
use crate::outbound::{Inbox, Outbox};
use crate::store::{NewFeedback, NewUser};

pub(crate) struct World {
    pub(crate) hub: Hub,
    pub(crate) project: ProjectId,
    pub(crate) other_project: ProjectId,
    pub(crate) feedback: FeedbackId,
    pub(crate) foreign_feedback: FeedbackId,
    pub(crate) editor: UserId,
    pub(crate) viewer: UserId,
    _dir: tempfile::TempDir,
}

pub(crate) async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let store = Store::connect(&url, 2).await.unwrap();
    let mut users = Vec::new();
    for name in ["owner", "editor", "viewer"] {
        let email = format!("{name}@example.test");
        let user = store
            .create_user(&NewUser {
                email: &email,
                username: name,
                password_hash: None,
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let (owner, editor, viewer) = (users[0], users[1], users[2]);
    let project = store.create_project(owner, "Cut", "").await.unwrap().id;
    store
        .add_member(project, editor, Role::Editor)
        .await
        .unwrap();
    store
        .add_member(project, viewer, Role::Viewer)
        .await
        .unwrap();
    let other_project = store.create_project(owner, "Other", "").await.unwrap().id;
    let feedback_in = |project| NewFeedback {
        project_id: project,
        created_by: owner,
        title: "Item",
        priority: "medium",
        timestamp: None,
        video_url: None,
    };
    let feedback = store
        .create_feedback(&feedback_in(project))
        .await
        .unwrap()
        .0
        .id;
    let foreign_feedback = store
        .create_feedback(&feedback_in(other_project))
        .await
        .unwrap()
        .0
        .id;
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::build(HubParts {
        reads: BatchedReads::spawn(store.clone(), INITIAL_COMMENTS),
        store,
        broker: Broker::Memory(MemoryBroker::default()),
        metrics,
        typing_timeout: Duration::from_secs(10),
        typing_batch: Duration::ZERO,
        presence_leave_grace: Duration::ZERO,
        persist_batch: 16,
        resume: ResumeLimits {
            max_comments: 1000,
            max_bytes: 1 << 20,
        },
    });
    World {
        hub,
        project,
        other_project,
        feedback,
        foreign_feedback,
        editor,
        viewer,
        _dir: dir,
    }
}

/// Joins `user` with a JSON queue; returns the queue and the first state.
pub(crate) async fn member(w: &World, user: UserId) -> (Outbox, Inbox, Joined) {
    let (outbox, inbox, _closer) = Outbox::channel(64, Encoding::Json, Arc::default());
    let joined = w
        .hub
        .join(JoinRequest {
            project: w.project,
            user,
            outbox: outbox.clone(),
            since: None,
            since_seq: None,
        })
        .await
        .unwrap();
    (outbox, inbox, joined)
}

/// The next event queued for a member, decoded.
pub(crate) async fn next(inbox: &mut Inbox) -> ServerMessage {
    let frame = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("an event in time")
        .expect("queue open");
    serde_json::from_slice(&frame.bytes).unwrap()
}

/// The next event that is not a presence announcement.
pub(crate) async fn next_event(inbox: &mut Inbox) -> ServerMessage {
    loop {
        match next(inbox).await {
            ServerMessage::PresenceJoin { .. } | ServerMessage::PresenceLeave { .. } => {}
            other => return other,
        }
    }
}
