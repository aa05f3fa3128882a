//! Two server nodes sharing PostgreSQL and Redis act as one: clients on
//! each see the other's comments, reactions, typing, presence and REST-side
//! events; socket limits and evictions hold across nodes; a reconnecting
//! client resumes without a gap.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::services::SlowProxy;
use common::*;
use vridge_protocol::{ClientMessage, Comment, NewReaction, ServerMessage, close};

const NO_LIMITS: &[&str] = &["--no-rate-limits"];

fn comment_of(msg: ServerMessage) -> Comment {
    match msg {
        ServerMessage::Comment { comment, .. } => comment,
        other => panic!("expected a comment, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_nodes_see_each_others_comments_once_and_in_order() {
    let cluster = Cluster::start(2, NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut b, _) = n1.join(f.project.id, f.editor2.id).await;
    for i in 0..5 {
        a.send(&comment_add(f.feedback[0], &format!("a{i}"), None))
            .await;
    }
    let mut on_b = Vec::new();
    for _ in 0..5 {
        on_b.push(comment_of(b.expect(is_comment).await).text);
    }
    assert_eq!(on_b, ["a0", "a1", "a2", "a3", "a4"]);
    b.send(&comment_add(f.feedback[1], "from node 1", Some("b-1")))
        .await;
    let ServerMessage::CommentAck(ack) = b.expect(is_ack).await else {
        unreachable!()
    };
    let seen = comment_of(a.expect(|m| matches!(m, ServerMessage::Comment { comment, .. } if comment.text == "from node 1")).await);
    assert_eq!(seen.id, ack.comment_id);
    // The origin delivers at once and ignores its own echo: exactly one copy.
    b.expect(is_comment).await;
    b.expect_none(Duration::from_millis(500), is_comment).await;
    a.expect_none(Duration::from_millis(300), is_comment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reactions_and_rest_events_cross_nodes() {
    let cluster = Cluster::start(2, NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut b, _) = n1.join(f.project.id, f.editor2.id).await;

    a.send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    let typing = b
        .expect(|m| matches!(m, ServerMessage::Typing { .. }))
        .await;
    assert_eq!(
        typing,
        ServerMessage::Typing {
            user_id: f.editor.id,
            is_typing: true
        }
    );
    a.expect_none(Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::Typing { .. })
    })
    .await;

    a.send(&comment_add(f.feedback[0], "react to me", None))
        .await;
    let comment = comment_of(b.expect(is_comment).await);
    b.send(&ClientMessage::ReactionAdd {
        reaction: NewReaction {
            comment_id: comment.id,
            emoji: "👍".into(),
        },
        client_msg_id: None,
    })
    .await;
    let reaction = a
        .expect(|m| matches!(m, ServerMessage::Reaction { .. }))
        .await;
    let ServerMessage::Reaction {
        reaction, user_id, ..
    } = reaction
    else {
        unreachable!()
    };
    assert_eq!((reaction.comment_id, user_id), (comment.id, f.editor2.id));

    // Events published by node 0 on behalf of REST clients reach node 1.
    n0.state
        .broker
        .publish(
            f.project.id,
            ServerMessage::StatusChanged {
                feedback_id: f.feedback[0],
                status: "resolved".into(),
                priority: "high".into(),
                user_id: f.owner.id,
                event: None,
            },
        )
        .await;
    let status = b
        .expect(|m| matches!(m, ServerMessage::StatusChanged { .. }))
        .await;
    assert!(
        matches!(status, ServerMessage::StatusChanged { feedback_id, .. } if feedback_id == f.feedback[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_cluster_wide_join_and_leave_once_per_user() {
    let cluster = Cluster::start(2, &[]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut b, b_state) = n1.join(f.project.id, f.editor2.id).await;
    assert_eq!(b_state.online_users, {
        let mut v = vec![f.editor.id, f.editor2.id];
        v.sort();
        v
    });
    let join = a
        .expect(|m| matches!(m, ServerMessage::PresenceJoin { .. }))
        .await;
    assert_eq!(
        join,
        ServerMessage::PresenceJoin {
            user_id: f.editor2.id
        }
    );
    b.expect_none(Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::PresenceJoin { .. })
    })
    .await;

    // A second socket of the same user, on the other node: no new join, and
    // closing one of the two is no leave.
    let (mut b2, _) = n0.join(f.project.id, f.editor2.id).await;
    a.expect_none(Duration::from_millis(500), |m| {
        matches!(m, ServerMessage::PresenceJoin { .. })
    })
    .await;
    b2.ws.close(None).await.unwrap();
    a.expect_none(Duration::from_millis(800), |m| {
        matches!(m, ServerMessage::PresenceLeave { .. })
    })
    .await;

    // The last socket, anywhere: a leave on every node.
    b.ws.close(None).await.unwrap();
    let leave = a
        .expect(|m| matches!(m, ServerMessage::PresenceLeave { .. }))
        .await;
    assert_eq!(
        leave,
        ServerMessage::PresenceLeave {
            user_id: f.editor2.id
        }
    );
    let (_c, c_state) = n1.join(f.project.id, f.owner.id).await;
    let mut expected = vec![f.editor.id, f.owner.id];
    expected.sort();
    assert_eq!(c_state.online_users, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_disconnect_returns_exactly_the_comments_missed() {
    let cluster = Cluster::start(2, NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut b, _) = n1.join(f.project.id, f.editor2.id).await;
    b.send(&comment_add(f.feedback[0], "before", None)).await;
    b.expect(is_ack).await;
    let last_seen = comment_of(a.expect(is_comment).await).id;
    a.ws.close(None).await.unwrap();

    let mut missed = Vec::new();
    for i in 0..50 {
        b.send(&comment_add(
            f.feedback[i % 2],
            &format!("missed {i}"),
            None,
        ))
        .await;
        let ServerMessage::CommentAck(ack) = b.expect(is_ack).await else {
            unreachable!()
        };
        missed.push(ack.comment_id);
    }

    let url = format!(
        "{}&since={last_seen}",
        n0.ws_url(f.project.id, &n0.token(f.editor.id))
    );
    let mut a = Client::connect(&url, vridge_protocol::Encoding::Json).await;
    let ServerMessage::InitialState(state) = a.next().await else {
        panic!("expected initial_state")
    };
    let got: Vec<i64> = state.comments.iter().map(|c| c.id).collect();
    assert_eq!(got, missed, "exactly the 50 missed comments, in order");
    assert_eq!(state.resumed_from, Some(last_seen));
    assert_eq!(state.resume_complete, Some(true));
    assert_eq!(state.last_comment_id, missed.last().copied());

    // Live events go on after the resume, without duplicates.
    b.send(&comment_add(f.feedback[0], "after", None)).await;
    let after = comment_of(a.expect(is_comment).await);
    assert_eq!(after.text, "after");
    a.expect_none(Duration::from_millis(500), is_comment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_resume_says_so_and_resumes_again_from_where_it_stopped() {
    let cluster = Cluster::start(1, &["--no-rate-limits", "--resume-max-comments", "10"]).await;
    let n0 = &cluster.nodes[0];
    let f = n0.fixture().await;
    let (mut b, _) = n0.join(f.project.id, f.editor2.id).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        b.send(&comment_add(f.feedback[0], &format!("c{i}"), None))
            .await;
        let ServerMessage::CommentAck(ack) = b.expect(is_ack).await else {
            unreachable!()
        };
        ids.push(ack.comment_id);
    }
    let mut since = 0;
    let mut collected = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let url = format!(
            "{}&since={since}",
            n0.ws_url(f.project.id, &n0.token(f.editor.id))
        );
        let mut a = Client::connect(&url, vridge_protocol::Encoding::Json).await;
        let ServerMessage::InitialState(state) = a.next().await else {
            panic!("expected initial_state")
        };
        assert!(state.comments.len() <= 10);
        collected.extend(state.comments.iter().map(|c| c.id));
        since = state.last_comment_id.unwrap();
        if state.resume_complete == Some(true) {
            break;
        }
        assert_eq!(state.comments.len(), 10, "a capped answer is full");
    }
    assert_eq!(rounds, 3);
    assert_eq!(collected, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sockets_per_user_hold_across_nodes() {
    let cluster = Cluster::start(2, &[]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let mut held = Vec::new();
    for i in 0..5 {
        let node = if i % 2 == 0 { n0 } else { n1 };
        held.push(node.join(f.project.id, f.editor.id).await.0);
    }
    for node in [n0, n1] {
        let mut sixth = Client::connect(
            &node.ws_url(f.project.id, &node.token(f.editor.id)),
            vridge_protocol::Encoding::Json,
        )
        .await;
        assert_eq!(
            sixth.ended().await,
            Ended::Closed(close::TOO_MANY_CONNECTIONS)
        );
    }
    let mut first = held.remove(0);
    first.ws.close(None).await.unwrap();
    let _ = first.ended().await;
    // The freed slot is given back asynchronously; it becomes usable soon.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(
            &n1.ws_url(f.project.id, &n1.token(f.editor.id)),
            vridge_protocol::Encoding::Json,
        )
        .await;
        match c.try_next().await {
            Some(ServerMessage::InitialState(_)) => break,
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("the freed slot was never usable: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_on_one_node_closes_the_users_sockets_on_every_node() {
    let cluster = Cluster::start(2, &[]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut on_n1, _) = n1.join(f.project.id, f.viewer.id).await;
    let (mut other, _) = n1.join(f.project.id, f.editor.id).await;
    n0.state
        .broker
        .evict(f.project.id, f.viewer.id, close::PERMISSION_DENIED)
        .await;
    assert_eq!(on_n1.ended().await, Ended::Closed(close::PERMISSION_DENIED));
    let leave = other
        .expect(|m| matches!(m, ServerMessage::PresenceLeave { .. }))
        .await;
    assert_eq!(
        leave,
        ServerMessage::PresenceLeave {
            user_id: f.viewer.id
        }
    );
}

/// Rooms retire and respawn while their project's unsubscribe may still be
/// in flight; the node must end up listening whenever it has members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_respawned_during_its_unsubscribe_still_hears_other_nodes() {
    // No leave grace: a held leave would keep the room alive, and the race
    // under test is its retirement.
    let cluster = Cluster::start(2, &["--no-rate-limits", "--presence-leave-grace-ms", "0"]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, _) = n0.join(f.project.id, f.editor.id).await;
    for round in 0..15 {
        let (mut churn, _) = n1.join(f.project.id, f.editor2.id).await;
        churn.ws.close(None).await.unwrap();
        drop(churn);
        let (mut b, _) = n1.join(f.project.id, f.viewer.id).await;
        let text = format!("round {round}");
        a.send(&comment_add(f.feedback[0], &text, None)).await;
        let got = comment_of(
            b.expect(
                |m| matches!(m, ServerMessage::Comment { comment, .. } if comment.text == text),
            )
            .await,
        );
        assert_eq!(got.text, text);
        b.ws.close(None).await.unwrap();
    }
}

/// REST writes on one node reach sockets on the other: a created feedback
/// item, and the removal of a member (whose sockets close with 4003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_writes_on_one_node_reach_sockets_on_the_other() {
    let cluster = Cluster::start(2, &[]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut watcher, _) = n1.join(f.project.id, f.editor.id).await;
    let (mut removed, _) = n1.join(f.project.id, f.viewer.id).await;
    let owner = common::rest::Api::new(n0).as_token(&n0.token(f.owner.id));
    let created = owner
        .post(
            &format!("/feedback/{}", f.project.id),
            serde_json::json!({"title": "Logo too small", "timestamp": 61.5}),
        )
        .await;
    assert_eq!(created.status, 201);
    let ServerMessage::FeedbackCreated { feedback, .. } = watcher
        .expect(|m| matches!(m, ServerMessage::FeedbackCreated { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(Some(feedback.id), created.body["id"].as_i64());

    let gone = owner
        .delete(&format!(
            "/projects/{}/members/{}",
            f.project.id, f.viewer.id
        ))
        .await;
    assert!(gone.status.is_success(), "{:?}", gone.status);
    assert_eq!(
        removed.ended().await,
        Ended::Closed(close::PERMISSION_DENIED)
    );
}

const FROM_MEMORY: &str = "vridge_history_pages_from_memory_total";

/// A node keeps the history pages it served; a comment added or edited
/// through the other node is in the next page it serves, because a page is
/// kept only as of the project's newest event, read from the shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_page_kept_on_one_node_shows_a_change_made_on_the_other() {
    let cluster = Cluster::start(2, NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let reader = common::rest::Api::new(n0).as_token(&n0.token(f.editor.id));
    let writer = common::rest::Api::new(n1).as_token(&n1.token(f.editor.id));
    let item = format!("/feedback/item/{}/comments", f.feedback[0]);
    let feed = format!("/projects/{}/comments?since=0", f.project.id);
    let texts = |page: &serde_json::Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = writer
        .post(&item, serde_json::json!({"text": "first"}))
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    // Read twice on node 0: the second comes from memory.
    for _ in 0..2 {
        assert_eq!(texts(&reader.get(&item).await.body), ["first"]);
        assert_eq!(texts(&reader.get(&feed).await.body), ["first"]);
    }
    assert_eq!(n0.metric(FROM_MEMORY).await, 2);
    let second = writer
        .post(&item, serde_json::json!({"text": "second"}))
        .await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    assert_eq!(texts(&reader.get(&item).await.body), ["second", "first"]);
    assert_eq!(texts(&reader.get(&feed).await.body), ["first", "second"]);

    // An edit on node 1 (over its socket) is an event too.
    let (mut socket, _) = n1.join(f.project.id, f.editor.id).await;
    let id = first.body["id"].as_i64().unwrap();
    socket
        .send(&ClientMessage::CommentEdit {
            edit: vridge_protocol::CommentEdit {
                comment_id: id,
                text: "first, edited".into(),
                title: None,
                section: None,
            },
            client_msg_id: Some("e".into()),
        })
        .await;
    socket
        .expect(|m| matches!(m, ServerMessage::Ack(a) if a.client_msg_id.as_deref() == Some("e")))
        .await;
    assert_eq!(
        texts(&reader.get(&feed).await.body),
        ["first, edited", "second"]
    );
    assert_eq!(
        texts(&reader.get(&item).await.body),
        ["second", "first, edited"]
    );
    // Each read after a change came from the store, not from memory.
    assert_eq!(n0.metric(FROM_MEMORY).await, 2);
}

/// Writers on both nodes interleave; every member on either node receives
/// each comment exactly once, in id order, each chaining to the one before
/// (`prev_id`) — so the newest id any member holds at any moment is a safe
/// `since`: a resume from it returns exactly the comments after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_both_nodes_receive_the_commit_order_and_resume_from_any_point() {
    const EACH: usize = 25;
    // Node 1 hears Redis 40 ms late: node 0's comments reach it well after
    // node 1's own later comments are committed and delivered locally.
    let cluster = Cluster::start(1, NO_LIMITS).await;
    let redis_addr = cluster
        .redis
        .url()
        .trim_start_matches("redis://")
        .parse()
        .unwrap();
    let slow = SlowProxy::start(redis_addr, Duration::from_millis(40)).await;
    let far_node = Cluster::node(&cluster.db, &slow.url(), NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &far_node);
    let f = n0.fixture().await;
    let (mut writer0, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut writer1, _) = n1.join(f.project.id, f.editor2.id).await;
    let (reader0, _) = n0.join(f.project.id, f.owner.id).await;
    let (reader1, _) = n1.join(f.project.id, f.viewer.id).await;
    for i in 0..EACH {
        writer0
            .send(&comment_add(f.feedback[0], &format!("n0-{i}"), None))
            .await;
        writer1
            .send(&comment_add(f.feedback[1], &format!("n1-{i}"), None))
            .await;
    }
    let mut received = Vec::new();
    for client in [writer0, writer1, reader0, reader1].iter_mut() {
        let mut comments: Vec<Comment> = Vec::new();
        while comments.len() < 2 * EACH {
            comments.push(comment_of(client.expect(is_comment).await));
        }
        client
            .expect_none(Duration::from_millis(400), is_comment)
            .await;
        received.push(comments);
    }
    let stored = n0
        .state
        .store
        .comments_since(f.project.id, 0, 1000)
        .await
        .unwrap();
    let stored_ids: Vec<i64> = stored.iter().map(|c| c.id).collect();
    assert_eq!(stored_ids.len(), 2 * EACH);
    for (who, comments) in received.iter().enumerate() {
        let ids: Vec<i64> = comments.iter().map(|c| c.id).collect();
        assert_eq!(ids, stored_ids, "member {who} got the commit order");
        let mut prev = None;
        for c in comments {
            assert_eq!(c.prev_id, prev, "member {who}: {} chains", c.id);
            prev = Some(c.id);
        }
    }
    for (k, since) in stored_ids.iter().enumerate().step_by(7) {
        let node = if k % 2 == 0 { n0 } else { n1 };
        let url = format!(
            "{}&since={since}",
            node.ws_url(f.project.id, &node.token(f.editor.id))
        );
        let mut client = Client::connect(&url, vridge_protocol::Encoding::Json).await;
        let ServerMessage::InitialState(state) = client.next().await else {
            panic!("expected initial_state")
        };
        let got: Vec<i64> = state.comments.iter().map(|c| c.id).collect();
        assert_eq!(got, stored_ids[k + 1..], "resume from {since}");
        assert_eq!(state.resume_complete, Some(true));
    }
}

/// Events made on two nodes at once reach watchers on both nodes as one
/// log: every `seq` once, in order, with no hole; and a client resuming by
/// `seq` on either node replays exactly what the watchers saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_two_nodes_arrive_as_one_gapless_log_everywhere() {
    let cluster = Cluster::start(2, NO_LIMITS).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut a, start) = n0.join(f.project.id, f.editor.id).await;
    let (mut b, _) = n1.join(f.project.id, f.editor2.id).await;
    let (mut w0, _) = n0.join(f.project.id, f.viewer.id).await;
    let (mut w1, _) = n1.join(f.project.id, f.owner.id).await;
    a.send(&comment_add(f.feedback[0], "target", Some("t")))
        .await;
    let ServerMessage::CommentAck(target) = a.expect(is_ack).await else {
        unreachable!()
    };
    // Comments from node 0 and reactions from node 1, sent without waiting.
    const EACH: usize = 20;
    for i in 0..EACH {
        a.send(&comment_add(f.feedback[0], &format!("a{i}"), None))
            .await;
        b.send(&ClientMessage::ReactionAdd {
            reaction: NewReaction {
                comment_id: target.comment_id,
                emoji: format!("e{i}"),
            },
            client_msg_id: None,
        })
        .await;
    }
    let first = start.last_seq.unwrap() + 1;
    let last = first + EACH as i64 * 2;
    let mut logs = Vec::new();
    for watcher in [&mut w0, &mut w1] {
        let mut seqs = Vec::new();
        while seqs.last() != Some(&last) {
            let msg = watcher.expect(|m| m.event().is_some()).await;
            seqs.push(msg.seq().unwrap());
        }
        assert_eq!(seqs, (first..=last).collect::<Vec<i64>>());
        logs.push(seqs);
    }
    for node in [n0, n1] {
        let url = format!(
            "{}&since_seq={}",
            node.ws_url(f.project.id, &node.token(f.editor2.id)),
            first - 1
        );
        let mut c = Client::connect(&url, vridge_protocol::Encoding::Json).await;
        let ServerMessage::InitialState(state) = c.next().await else {
            panic!("expected initial_state")
        };
        let replayed: Vec<i64> = state.events.iter().filter_map(ServerMessage::seq).collect();
        assert_eq!(replayed, logs[0]);
        assert_eq!(state.resume_complete, Some(true));
    }
}
