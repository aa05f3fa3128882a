//! Presence churn does not multiply: a user whose last socket in a project
//! closes is announced gone only after `--presence-leave-grace-ms`, and a
//! reconnect within it (a reload, a network blip) announces neither the
//! leave nor the join — on one node, and across nodes on Redis, where the
//! user may come back on any node. Typing is not held back: a typist's
//! last socket closing stops their indicator at once. Real servers, real
//! Redis, real WebSocket clients.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use vridge_protocol::{ClientMessage, ServerMessage, UserId};

const GRACE_MS: u64 = 1500;
const GRACE: Duration = Duration::from_millis(GRACE_MS);
const RECONNECTS: usize = 10;

fn grace_args() -> Vec<String> {
    vec![
        "--presence-leave-grace-ms".into(),
        GRACE_MS.to_string(),
        "--no-rate-limits".into(),
    ]
}

fn is_presence_of(user: UserId) -> impl FnMut(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::PresenceJoin { user_id } | ServerMessage::PresenceLeave { user_id } if *user_id == user)
}

fn is_leave_of(user: UserId) -> impl FnMut(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::PresenceLeave { user_id } if *user_id == user)
}

/// Closes a socket the way a browser does, and waits until it is gone.
async fn close(mut client: Client) {
    let _ = client.ws.close(None).await;
    let _ = client.ended().await;
}

/// Every presence event about `user` that reaches `watcher` within `window`.
async fn presence_seen(watcher: &mut Client, user: UserId, window: Duration) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    let mut matches = is_presence_of(user);
    let _ = tokio::time::timeout(window, async {
        while let Some(msg) = watcher.try_next().await {
            if matches(&msg) {
                seen.push(msg);
            }
        }
    })
    .await;
    seen
}

/// One node: ten reconnects within the grace reach the other member as
/// nothing at all; leaving for good is one `presence_leave`, no sooner than
/// the grace, and the user is listed as online until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_within_the_grace_are_silent_on_one_node() {
    let args = grace_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::spawn_with(&args).await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.editor.id).await;
    let (mut churn, _) = server.join(f.project.id, f.editor2.id).await;
    watcher
        .expect(
            |m| matches!(m, ServerMessage::PresenceJoin { user_id } if *user_id == f.editor2.id),
        )
        .await;

    for _ in 0..RECONNECTS {
        close(churn).await;
        let (again, state) = server.join(f.project.id, f.editor2.id).await;
        assert!(state.online_users.contains(&f.editor.id));
        churn = again;
    }
    // Typing stops at once, not after the grace.
    churn
        .send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    watcher.expect(is_typing_start).await;
    close(churn).await;
    let closed = Instant::now();
    let mut stop_first = true;
    let mut leave_seen = false;
    tokio::time::timeout(GRACE, async {
        while let Some(msg) = watcher.try_next().await {
            match msg {
                ServerMessage::Typing {
                    user_id,
                    is_typing: false,
                } if user_id == f.editor2.id => return,
                ServerMessage::PresenceLeave { .. } => {
                    leave_seen = true;
                    stop_first = false;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("typing stopped within the grace");
    assert!(stop_first && !leave_seen, "typing stopped before any leave");
    // During the grace the leaver is still online.
    let (probe, state) = server.join(f.project.id, f.owner.id).await;
    assert!(
        state.online_users.contains(&f.editor2.id),
        "{:?}",
        state.online_users
    );
    close(probe).await;

    let seen = presence_seen(&mut watcher, f.editor2.id, GRACE * 3).await;
    assert_eq!(
        seen,
        [ServerMessage::PresenceLeave {
            user_id: f.editor2.id
        }],
        "no join or leave for the {RECONNECTS} reconnects, one leave for the real one"
    );
    assert!(closed.elapsed() >= GRACE);
    let (_late, state) = server.join(f.project.id, f.owner.id).await;
    assert!(!state.online_users.contains(&f.editor2.id));
}

/// With no grace, a leave goes out as soon as the last socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_grace_announces_the_leave_at_once() {
    let server = TestServer::spawn_with(&["--presence-leave-grace-ms", "0"]).await;
    let f = server.fixture().await;
    let (mut watcher, _) = server.join(f.project.id, f.editor.id).await;
    let (leaver, _) = server.join(f.project.id, f.viewer.id).await;
    close(leaver).await;
    watcher.expect(is_leave_of(f.viewer.id)).await;
    let (_late, state) = server.join(f.project.id, f.owner.id).await;
    assert!(!state.online_users.contains(&f.viewer.id));
}

/// Two nodes on Redis: a user hopping between nodes ten times within the
/// grace produces no presence event on either node; their typing stops on
/// the other node at once; leaving for good is exactly one
/// `presence_leave` on each node, after the grace, and the user is listed
/// as online (from either node) until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_within_the_grace_are_silent_across_nodes() {
    let args = grace_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start(2, &args).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut w0, _) = n0.join(f.project.id, f.editor.id).await;
    let (mut w1, _) = n1.join(f.project.id, f.owner.id).await;
    let (mut churn, _) = n1.join(f.project.id, f.editor2.id).await;
    let joined = |m: &ServerMessage| matches!(m, ServerMessage::PresenceJoin { user_id } if *user_id == f.editor2.id);
    w0.expect(joined).await;
    w1.expect(joined).await;

    for i in 0..RECONNECTS {
        close(churn).await;
        let node = if i % 2 == 0 { n0 } else { n1 };
        let (again, state) = node.join(f.project.id, f.editor2.id).await;
        assert!(state.online_users.contains(&f.editor.id));
        assert!(state.online_users.contains(&f.owner.id));
        churn = again;
    }
    // The last reconnect was on node 1; typing from there stops on node 0
    // when the socket closes, within node 0's typing window (250 ms).
    churn
        .send(&ClientMessage::TypingIndicator { is_typing: true })
        .await;
    w0.expect(is_typing_start).await;
    close(churn).await;
    let closed = Instant::now();
    tokio::time::timeout(GRACE, async {
        loop {
            match w0.try_next().await {
                Some(ServerMessage::Typing {
                    user_id,
                    is_typing: false,
                }) if user_id == f.editor2.id => return,
                Some(ServerMessage::PresenceLeave { .. }) => {
                    panic!("a leave before the typing stop")
                }
                Some(_) => {}
                None => panic!("socket ended"),
            }
        }
    })
    .await
    .expect("typing stopped on the other node within the grace");
    let (probe, state) = n0.join(f.project.id, f.viewer.id).await;
    assert!(
        state.online_users.contains(&f.editor2.id),
        "online during the grace, seen from the other node: {:?}",
        state.online_users
    );
    close(probe).await;

    let (seen0, seen1) = tokio::join!(
        presence_seen(&mut w0, f.editor2.id, GRACE * 3),
        presence_seen(&mut w1, f.editor2.id, GRACE * 3)
    );
    let one_leave = [ServerMessage::PresenceLeave {
        user_id: f.editor2.id,
    }];
    assert_eq!(seen0, one_leave, "node 0");
    assert_eq!(seen1, one_leave, "node 1");
    assert!(closed.elapsed() >= GRACE);
    let (_late, state) = n0.join(f.project.id, f.owner.id).await;
    assert!(
        !state.online_users.contains(&f.editor2.id),
        "{:?}",
        state.online_users
    );
}

/// A user who leaves one node and, after the grace there ran out, is still
/// on the other node is never announced gone: the held leave only counts
/// down this node's share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_leave_on_one_node_is_no_leave_while_another_node_holds_the_user() {
    let args = grace_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start(2, &args).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let f = n0.fixture().await;
    let (mut w0, _) = n0.join(f.project.id, f.editor.id).await;
    let (here, _) = n0.join(f.project.id, f.viewer.id).await;
    let (_there, _) = n1.join(f.project.id, f.viewer.id).await;
    w0.expect(|m| matches!(m, ServerMessage::PresenceJoin { user_id } if *user_id == f.viewer.id))
        .await;
    close(here).await;
    let seen = presence_seen(&mut w0, f.viewer.id, GRACE * 2).await;
    assert!(seen.is_empty(), "{seen:?}");
    let (_late, state) = n0.join(f.project.id, f.owner.id).await;
    assert!(state.online_users.contains(&f.viewer.id));
}

fn is_typing_start(m: &ServerMessage) -> bool {
    matches!(
        m,
        ServerMessage::Typing {
            is_typing: true,
            ..
        }
    )
}
