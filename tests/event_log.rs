//! The project event log and the comment model, end to end over real
//! sockets and REST: every change is one numbered event delivered in order,
//! a client that was away resumes by event number with no gap, and the
//! comment commands are acknowledged, idempotent and checked by role.

mod common;

use std::time::Duration;

use common::rest::Api;
use common::*;
use serde_json::json;
use vridge_protocol::{
    Ack, ClientMessage, CommentEdit, Encoding, InitialState, NewComment, NewReaction, ServerMessage,
};

const NO_LIMITS: &[&str] = &["--no-rate-limits"];

/// Connects `user` resuming after event `since_seq`, and reads its state.
async fn resume(
    server: &TestServer,
    project: i64,
    user: i64,
    since_seq: i64,
) -> (Client, InitialState) {
    let url = format!(
        "{}&since_seq={since_seq}",
        server.ws_url(project, &server.token(user))
    );
    let mut client = Client::connect(&url, Encoding::Json).await;
    match client.next().await {
        ServerMessage::InitialState(state) => (client, state),
        other => panic!("expected initial_state, got {other:?}"),
    }
}

fn is_logged(msg: &ServerMessage) -> bool {
    msg.event().is_some()
}

/// The next `ack`, checked to answer `command` with `client_msg_id`.
async fn expect_ack(client: &mut Client, command: &str, client_msg_id: Option<&str>) -> Ack {
    let msg = client
        .expect(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error { .. }))
        .await;
    let ServerMessage::Ack(ack) = msg else {
        panic!("expected an ack of {command}, got {msg:?}");
    };
    assert_eq!(ack.command, command);
    assert_eq!(ack.client_msg_id.as_deref(), client_msg_id);
    ack
}

/// The next error, checked to say `message` about `client_msg_id`.
async fn expect_error(client: &mut Client, message: &str, client_msg_id: Option<&str>) {
    let msg = client
        .expect(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error { .. }))
        .await;
    assert_eq!(
        msg,
        ServerMessage::Error {
            message: message.into(),
            client_msg_id: client_msg_id.map(str::to_owned),
        }
    );
}

fn edit(comment_id: i64, text: &str, client_msg_id: &str) -> ClientMessage {
    ClientMessage::CommentEdit {
        edit: CommentEdit {
            comment_id,
            text: text.into(),
            title: None,
            section: None,
        },
        client_msg_id: Some(client_msg_id.into()),
    }
}

fn reaction(comment_id: i64, add: bool, client_msg_id: &str) -> ClientMessage {
    let reaction = NewReaction {
        comment_id,
        emoji: "👍".into(),
    };
    let client_msg_id = Some(client_msg_id.to_owned());
    if add {
        ClientMessage::ReactionAdd {
            reaction,
            client_msg_id,
        }
    } else {
        ClientMessage::ReactionRemove {
            reaction,
            client_msg_id,
        }
    }
}

/// Adds a comment from `client` and returns its id once acknowledged.
async fn add_comment(client: &mut Client, feedback: i64, text: &str, id: &str) -> i64 {
    client.send(&comment_add(feedback, text, Some(id))).await;
    let msg = client.expect(is_ack).await;
    let ServerMessage::CommentAck(ack) = msg else {
        unreachable!()
    };
    ack.comment_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_commands_are_acknowledged_checked_and_delivered_as_one_ordered_log() {
    let server = TestServer::spawn_with(NO_LIMITS).await;
    let f = server.fixture().await;
    let (mut a, state) = server.join(f.project.id, f.editor.id).await;
    let (mut b, _) = server.join(f.project.id, f.editor2.id).await;
    let (mut viewer, _) = server.join(f.project.id, f.viewer.id).await;
    let (mut watcher, _) = server.join(f.project.id, f.owner.id).await;
    // The fixture's two feedback items are the log's first two events.
    assert_eq!(state.last_seq, Some(2));

    let root = add_comment(&mut a, f.feedback[0], "root", "c1").await;
    a.send(&edit(root, "root, corrected", "e1")).await;
    let first = expect_ack(&mut a, "comment_edit", Some("e1")).await;
    assert!(!first.duplicate);
    // A retry of the same command is the same event, not a second edit.
    a.send(&edit(root, "root, corrected", "e1")).await;
    let again = expect_ack(&mut a, "comment_edit", Some("e1")).await;
    assert_eq!((again.seq, again.duplicate), (first.seq, true));
    // Only the author edits; viewers change nothing; errors name the command.
    b.send(&edit(root, "not mine", "e2")).await;
    expect_error(&mut b, "Permission denied", Some("e2")).await;
    viewer
        .send(&ClientMessage::CommentResolve {
            comment_id: root,
            client_msg_id: Some("r0".into()),
        })
        .await;
    expect_error(&mut viewer, "Permission denied", Some("r0")).await;
    viewer.send(&reaction(root, true, "v1")).await;
    expect_error(&mut viewer, "Permission denied", Some("v1")).await;

    b.send(&ClientMessage::CommentResolve {
        comment_id: root,
        client_msg_id: Some("r1".into()),
    })
    .await;
    assert!(
        expect_ack(&mut b, "comment_resolve", Some("r1"))
            .await
            .seq
            .is_some()
    );
    b.send(&reaction(root, true, "x1")).await;
    expect_ack(&mut b, "reaction_add", Some("x1")).await;
    b.send(&reaction(root, false, "x2")).await;
    assert!(
        expect_ack(&mut b, "reaction_remove", Some("x2"))
            .await
            .seq
            .is_some()
    );
    b.send(&reaction(root, false, "x3")).await;
    assert_eq!(
        expect_ack(&mut b, "reaction_remove", Some("x3")).await.seq,
        None,
        "removing a reaction that is not there changes nothing"
    );

    // A reply to a reply attaches to the root.
    let mut first_reply = comment_add(f.feedback[0], "reply", Some("c2b"));
    if let ClientMessage::CommentAdd { comment, .. } = &mut first_reply {
        comment.parent_id = Some(root);
    }
    b.send(&first_reply).await;
    let ServerMessage::CommentAck(reply_ack) = b.expect(is_ack).await else {
        unreachable!()
    };
    assert_eq!(reply_ack.comment.parent_id, Some(root));
    let mut nested = comment_add(f.feedback[0], "reply to the reply", Some("c3"));
    if let ClientMessage::CommentAdd { comment, .. } = &mut nested {
        comment.parent_id = Some(reply_ack.comment_id);
    }
    b.send(&nested).await;
    let ServerMessage::CommentAck(nested_ack) = b.expect(is_ack).await else {
        unreachable!()
    };
    assert_eq!(nested_ack.comment.parent_id, Some(root));
    // A reply into another feedback item, and a range ending before it
    // starts, are bad input.
    let mut elsewhere = comment_add(f.feedback[1], "wrong item", Some("c4"));
    if let ClientMessage::CommentAdd { comment, .. } = &mut elsewhere {
        comment.parent_id = Some(root);
    }
    b.send(&elsewhere).await;
    expect_error(&mut b, "Invalid comment data", Some("c4")).await;
    b.send(&ClientMessage::CommentAdd {
        comment: NewComment {
            feedback_id: f.feedback[0],
            text: "backwards".into(),
            timestamp: Some(4.0),
            timestamp_end: Some(2.0),
            ..NewComment::default()
        },
        client_msg_id: Some("c5".into()),
    })
    .await;
    expect_error(&mut b, "Invalid comment data", Some("c5")).await;

    // The author withdraws the root: a tombstone; nothing more may change it.
    a.send(&ClientMessage::CommentDelete {
        comment_id: root,
        client_msg_id: Some("d1".into()),
    })
    .await;
    let deleted = expect_ack(&mut a, "comment_delete", Some("d1")).await;
    a.send(&edit(root, "back from the dead", "e3")).await;
    expect_error(&mut a, "Invalid comment data", Some("e3")).await;

    // A member who only watched saw every event once, in order, with no
    // hole, and the deletion as a tombstone.
    let mut seqs = Vec::new();
    let mut last_deleted = None;
    while seqs.last() != deleted.seq.as_ref() {
        let msg = watcher.expect(is_logged).await;
        let event = msg.event().unwrap().clone();
        if let Some(prev) = seqs.last() {
            assert_eq!(event.prev_seq, *prev, "no hole before {msg:?}");
        }
        seqs.push(event.seq);
        if let ServerMessage::CommentDeleted {
            comment, user_id, ..
        } = msg
        {
            assert_eq!(user_id, f.editor.id);
            last_deleted = Some(comment);
        }
    }
    assert_eq!(seqs.first(), Some(&3));
    assert_eq!(seqs.len() as i64, seqs[seqs.len() - 1] - 2);
    let tombstone = last_deleted.expect("the deletion was delivered");
    assert_eq!((tombstone.id, tombstone.text.as_str()), (root, ""));
    assert!(tombstone.deleted_at.is_some());
    watcher
        .expect_none(Duration::from_millis(300), is_logged)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_from_away_replays_every_event_it_missed_then_goes_live() {
    let server = TestServer::spawn_with(NO_LIMITS).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let (mut b, state) = server.join(f.project.id, f.editor2.id).await;
    let kept = add_comment(&mut a, f.feedback[0], "kept", "k").await;
    let gone = add_comment(&mut a, f.feedback[0], "withdrawn later", "g").await;
    let seen = b
        .expect(|m| matches!(m, ServerMessage::Comment { comment, .. } if comment.id == gone))
        .await;
    let held = seen.seq().unwrap();
    assert_eq!(held, state.last_seq.unwrap() + 2);
    drop(b);

    // While b is away: an edit, a reaction and its removal, a deletion, and
    // two REST writes.
    a.send(&edit(kept, "kept, edited", "e")).await;
    expect_ack(&mut a, "comment_edit", Some("e")).await;
    a.send(&reaction(kept, true, "r+")).await;
    expect_ack(&mut a, "reaction_add", Some("r+")).await;
    a.send(&reaction(kept, false, "r-")).await;
    expect_ack(&mut a, "reaction_remove", Some("r-")).await;
    a.send(&ClientMessage::CommentDelete {
        comment_id: gone,
        client_msg_id: Some("d".into()),
    })
    .await;
    expect_ack(&mut a, "comment_delete", Some("d")).await;
    let api = Api::new(&server).as_token(&server.token(f.editor.id));
    let r = api
        .patch(
            &format!("/feedback/item/{}", f.feedback[0]),
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .post(
            &format!("/feedback/{}", f.project.id),
            json!({"title": "Credits", "timestamp": 12.0}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let (mut b, state) = resume(&server, f.project.id, f.editor2.id, held).await;
    assert_eq!(state.resumed_from_seq, Some(held));
    assert_eq!(state.resume_complete, Some(true));
    assert!(state.comments.is_empty());
    let kinds: Vec<(i64, &str)> = state
        .events
        .iter()
        .map(|m| {
            let kind = match m {
                ServerMessage::CommentEdited { .. } => "comment_edited",
                ServerMessage::Reaction { .. } => "reaction",
                ServerMessage::ReactionRemoved { .. } => "reaction_removed",
                ServerMessage::CommentDeleted { .. } => "comment_deleted",
                ServerMessage::StatusChanged { .. } => "status_changed",
                ServerMessage::FeedbackCreated { .. } => "feedback_created",
                _ => "other",
            };
            (m.seq().unwrap(), kind)
        })
        .collect();
    let expected: Vec<(i64, &str)> = [
        "comment_edited",
        "reaction",
        "reaction_removed",
        "comment_deleted",
        "status_changed",
        "feedback_created",
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| (held + 1 + i as i64, k))
    .collect();
    assert_eq!(kinds, expected);
    assert_eq!(state.last_seq, Some(held + 6));
    match &state.events[0] {
        ServerMessage::CommentEdited { comment, .. } => assert_eq!(comment.text, "kept, edited"),
        other => panic!("expected the edit, got {other:?}"),
    }
    match &state.events[4] {
        ServerMessage::StatusChanged { status, .. } => assert_eq!(status, "closed"),
        other => panic!("expected the status change, got {other:?}"),
    }

    // Live from there, with no gap and no duplicate across the switch-over.
    let next = add_comment(&mut a, f.feedback[0], "after", "n").await;
    let live = b.expect(is_logged).await;
    assert_eq!(live.seq(), Some(held + 7));
    assert!(matches!(live, ServerMessage::Comment { comment, .. } if comment.id == next));

    // A resume by comment id tells the log position its comments reflect.
    let url = format!(
        "{}&since={kept}",
        server.ws_url(f.project.id, &server.token(f.editor2.id))
    );
    let mut by_id = Client::connect(&url, Encoding::Json).await;
    let ServerMessage::InitialState(by_id_state) = by_id.next().await else {
        panic!("expected initial_state")
    };
    assert_eq!(by_id_state.last_seq, Some(held + 7));
    let texts: Vec<&str> = by_id_state
        .comments
        .iter()
        .map(|c| c.text.as_str())
        .collect();
    assert_eq!(
        texts,
        vec!["", "after"],
        "the withdrawn comment as a tombstone, then the new one"
    );

    // A resume from the future is clamped to the newest event.
    let (_c, clamped) = resume(&server, f.project.id, f.editor2.id, 1_000_000).await;
    assert_eq!(clamped.resumed_from_seq, Some(held + 7));
    assert!(clamped.events.is_empty());
    assert_eq!(clamped.last_seq, Some(held + 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_resume_says_so_and_the_next_resume_continues() {
    let server = TestServer::spawn_with(&["--no-rate-limits", "--resume-max-comments", "3"]).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    for i in 0..7 {
        add_comment(&mut a, f.feedback[0], &format!("n{i}"), &format!("n{i}")).await;
    }
    let mut since = 0;
    let mut seen = Vec::new();
    loop {
        let (_c, state) = resume(&server, f.project.id, f.editor2.id, since).await;
        assert!(state.events.len() <= 3);
        seen.extend(state.events.iter().filter_map(ServerMessage::seq));
        since = state.last_seq.unwrap();
        if state.resume_complete == Some(true) {
            break;
        }
    }
    assert_eq!(seen, (1..=9).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_threads_versions_and_open_history_are_readable_over_rest() {
    let server = TestServer::spawn_with(NO_LIMITS).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let root = add_comment(&mut a, f.feedback[0], "root", "c1").await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let reply = editor
        .post(
            &format!("/feedback/item/{}/comments", f.feedback[0]),
            json!({"text": "a reply over REST", "parent_id": root, "timestamp": 1.0, "timestamp_end": 2.5}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(reply.body["parent_id"], root);
    assert_eq!(reply.body["timestamp_end"], 2.5);
    let bad = editor
        .post(
            &format!("/feedback/item/{}/comments", f.feedback[1]),
            json!({"text": "into the wrong item", "parent_id": root}),
        )
        .await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    let other = add_comment(&mut a, f.feedback[0], "to resolve", "c2").await;
    a.send(&edit(root, "root, edited", "e1")).await;
    expect_ack(&mut a, "comment_edit", Some("e1")).await;
    a.send(&reaction(root, true, "x")).await;
    expect_ack(&mut a, "reaction_add", Some("x")).await;
    a.send(&ClientMessage::CommentResolve {
        comment_id: other,
        client_msg_id: Some("r".into()),
    })
    .await;
    expect_ack(&mut a, "comment_resolve", Some("r")).await;

    // History: roots only, with their counts; `open=true` leaves the resolved out.
    let history = editor
        .get(&format!("/feedback/item/{}/comments", f.feedback[0]))
        .await;
    let results = history.body["results"].as_array().unwrap();
    let ids: Vec<i64> = results.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![other, root]);
    assert_eq!(results[1]["reply_count"], 1);
    assert_eq!(
        results[1]["reactions"],
        json!([{"emoji": "👍", "count": 1}])
    );
    assert!(results[1]["edited_at"].is_string());
    assert!(results[0]["resolved_at"].is_string());
    assert_eq!(results[0]["resolved_by"], f.editor.id);
    let open = editor
        .get(&format!(
            "/feedback/item/{}/comments?open=true",
            f.feedback[0]
        ))
        .await;
    let ids: Vec<i64> = open.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![root]);

    // A thread reads whole from any of its comments; versions keep the original.
    let reply_id = reply.body["id"].as_i64().unwrap();
    let thread = editor.get(&format!("/comments/{reply_id}/thread")).await;
    assert_eq!(thread.status, 200);
    assert_eq!(thread.body["root"]["id"], root);
    assert_eq!(thread.body["replies"][0]["id"], reply_id);
    let versions = editor.get(&format!("/comments/{root}/versions")).await;
    assert_eq!(versions.body["versions"][0]["text"], "root");
    assert_eq!(versions.body["versions"][0]["version"], 1);

    // The log over REST: oldest first, paged, tagged; a change moves the tag.
    let path = format!("/projects/{}/events?since_seq=0&limit=3", f.project.id);
    let page = editor.get(&path).await;
    assert_eq!(page.status, 200);
    let seqs: Vec<i64> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(
        (
            page.body["last_seq"].as_i64(),
            page.body["complete"].as_bool()
        ),
        (Some(3), Some(false))
    );
    let tag = page.header("etag").unwrap().to_owned();
    let again = Api::send(
        editor
            .request(reqwest::Method::GET, &path)
            .header("if-none-match", &tag),
    )
    .await;
    assert_eq!(again.status, 304);
    a.send(&edit(root, "root, edited twice", "e2")).await;
    expect_ack(&mut a, "comment_edit", Some("e2")).await;
    let moved = Api::send(
        editor
            .request(reqwest::Method::GET, &path)
            .header("if-none-match", &tag),
    )
    .await;
    assert_eq!(moved.status, 200, "an edit changes what the page shows");
    let rest = editor
        .get(&format!("/projects/{}/events?since_seq=3", f.project.id))
        .await;
    assert_eq!(rest.body["complete"], true);
    let last = rest.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "comment_edited");
    assert_eq!(last["comment"]["text"], "root, edited twice");

    // A fresh socket's initial_state carries the same counts.
    let (_fresh, state) = server.join(f.project.id, f.editor2.id).await;
    let shown = state.comments.iter().find(|c| c.id == root).unwrap();
    assert_eq!(shown.reply_count, 1);
    assert_eq!(
        shown
            .reactions
            .iter()
            .map(|r| (r.emoji.as_str(), r.count))
            .collect::<Vec<_>>(),
        vec![("👍", 1)]
    );

    // A deleted root stays as a tombstone with its replies.
    a.send(&ClientMessage::CommentDelete {
        comment_id: root,
        client_msg_id: Some("d".into()),
    })
    .await;
    expect_ack(&mut a, "comment_delete", Some("d")).await;
    let thread = editor.get(&format!("/comments/{root}/thread")).await;
    assert_eq!(thread.body["root"]["text"], "");
    assert!(thread.body["root"]["deleted_at"].is_string());
    assert_eq!(thread.body["replies"][0]["id"], reply_id);
    let versions = editor.get(&format!("/comments/{root}/versions")).await;
    assert_eq!(
        versions.body["versions"],
        json!([]),
        "the old text went with it"
    );

    // Outsiders get 404 everywhere, as for things that do not exist.
    let outsider = Api::new(&server).as_token(&server.token(f.outsider.id));
    for path in [
        format!("/projects/{}/events", f.project.id),
        format!("/comments/{root}/thread"),
        format!("/comments/{root}/versions"),
        "/comments/999999999/thread".to_owned(),
    ] {
        assert_eq!(outsider.get(&path).await.status, 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_changes_have_their_own_quota_and_refusals_name_the_command() {
    let server = TestServer::spawn_with(&["--limit-comment-change", "2"]).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let id = add_comment(&mut a, f.feedback[0], "quota", "c").await;
    a.send(&edit(id, "one", "e1")).await;
    expect_ack(&mut a, "comment_edit", Some("e1")).await;
    a.send(&ClientMessage::CommentResolve {
        comment_id: id,
        client_msg_id: Some("r1".into()),
    })
    .await;
    expect_ack(&mut a, "comment_resolve", Some("r1")).await;
    a.send(&edit(id, "three", "e3")).await;
    expect_error(&mut a, "Rate limit exceeded", Some("e3")).await;
    // Reactions have their own quota, untouched.
    a.send(&reaction(id, true, "x")).await;
    expect_ack(&mut a, "reaction_add", Some("x")).await;
}

const FROM_MEMORY: &str = "vridge_history_pages_from_memory_total";

/// Whether a comment's view shows the change made to it.
type Shows = fn(&serde_json::Value) -> bool;

/// History pages are kept in memory while their project has no new event:
/// the same page asked again is served from memory, and after each kind of
/// change the next read shows the change, never the kept page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_history_page_is_reused_until_any_change_and_never_served_stale() {
    let server = TestServer::spawn_with(NO_LIMITS).await;
    let f = server.fixture().await;
    let (mut a, _) = server.join(f.project.id, f.editor.id).await;
    let root = add_comment(&mut a, f.feedback[0], "root", "c1").await;
    let editor = Api::new(&server).as_token(&server.token(f.editor.id));
    let item = format!("/feedback/item/{}/comments", f.feedback[0]);
    let feed = format!("/projects/{}/comments?since=0", f.project.id);
    // Both pages, as the server sends them now: the root comment's view.
    let read = |path: String| {
        let editor = &editor;
        async move {
            let page = editor.get(&path).await;
            assert_eq!(page.status, 200, "{path}: {:?}", page.body);
            page.body["results"][0].clone()
        }
    };

    read(item.clone()).await;
    read(feed.clone()).await;
    let kept = server.metric(FROM_MEMORY).await;
    let first = read(item.clone()).await;
    read(feed.clone()).await;
    assert_eq!(
        server.metric(FROM_MEMORY).await,
        kept + 2,
        "an unchanged page is served from memory"
    );
    assert_eq!(first["text"], "root");

    let changes: [(ClientMessage, &str, Shows); 6] = [
        (edit(root, "root, edited", "e"), "comment_edit", |c| {
            c["text"] == "root, edited"
        }),
        (reaction(root, true, "r+"), "reaction_add", |c| {
            c["reactions"] == json!([{"emoji": "👍", "count": 1}])
        }),
        (reaction(root, false, "r-"), "reaction_remove", |c| {
            c["reactions"] == json!([])
        }),
        (
            ClientMessage::CommentResolve {
                comment_id: root,
                client_msg_id: Some("res".into()),
            },
            "comment_resolve",
            |c| c["resolved_at"].is_string(),
        ),
        (
            ClientMessage::CommentReopen {
                comment_id: root,
                client_msg_id: Some("reo".into()),
            },
            "comment_reopen",
            |c| c["resolved_at"].is_null(),
        ),
        (
            ClientMessage::CommentDelete {
                comment_id: root,
                client_msg_id: Some("del".into()),
            },
            "comment_delete",
            |c| c["deleted_at"].is_string() && c["text"] == "",
        ),
    ];
    for (change, command, shows) in changes {
        let id = change.client_msg_id().map(str::to_owned);
        a.send(&change).await;
        expect_ack(&mut a, command, id.as_deref()).await;
        for path in [&item, &feed] {
            let root_now = read(path.clone()).await;
            assert!(shows(&root_now), "{path} after {command}: {root_now}");
            // Asked again with nothing changed: the same page, from memory.
            let kept = server.metric(FROM_MEMORY).await;
            assert_eq!(read(path.clone()).await, root_now);
            assert_eq!(server.metric(FROM_MEMORY).await, kept + 1);
        }
    }

    // A reply moves the root's count on the item page.
    let reply = editor
        .post(&item, json!({"text": "a reply", "parent_id": root}))
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(read(item.clone()).await["reply_count"], 1);
}
