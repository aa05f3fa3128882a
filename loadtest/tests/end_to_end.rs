//! The load generator against a real server on a random port: provisioning
//! round trip, and short real runs whose deliveries must match what was sent.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use vridge_loadtest::provisioning::{self, Member, Project};
use vridge_loadtest::run::Run;
use vridge_loadtest::scenario::{idle, rest, resume, room, storm};
use vridge_loadtest::target::Target;
use vridge_protocol::codec::decode_server;
use vridge_protocol::{Encoding, ServerMessage, close};
use vridge_realtime::auth::JwtKeys;
use vridge_realtime::provision::{ProvisionSpec, provision, write_lines};
use vridge_realtime::store::Store;
use vridge_realtime::{Application, Config};

const SECRET: &str = "load-test-secret-of-at-least-32-bytes!!";

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

fn config(dir: &std::path::Path, extra: &[&str]) -> Config {
    let dir = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        &dir,
        "--jwt-secret",
        SECRET,
    ];
    args.extend_from_slice(extra);
    Config::from_args(args).unwrap()
}

async fn serve(app: Application, dir: tempfile::TempDir) -> Server {
    let addr = app.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

/// A server with rate limits lifted and `projects` × `members` provisioned
/// through its own store and keys.
async fn server_with(projects: usize, members: usize) -> (Server, Vec<Project>) {
    server_with_flags(projects, members, &[]).await
}

/// As [`server_with`], with more server flags.
async fn server_with_flags(
    projects: usize,
    members: usize,
    extra: &[&str],
) -> (Server, Vec<Project>) {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--no-rate-limits"];
    flags.extend_from_slice(extra);
    let app = Application::build(config(dir.path(), &flags))
        .await
        .unwrap();
    let users = provision(
        &app.state().store,
        &app.state().jwt,
        ProvisionSpec {
            projects,
            members,
            token_ttl: Duration::from_secs(600),
        },
    )
    .await
    .unwrap();
    let members: Vec<Member> = users
        .into_iter()
        .map(|u| Member {
            user_id: u.user_id,
            token: u.token,
            project_id: u.project_id,
            feedback_id: u.feedback_id,
        })
        .collect();
    let server = serve(app, dir).await;
    (server, provisioning::by_project(members))
}

async fn run_for(server: &Server) -> Run {
    let target = Target::new(
        &[format!("ws://{}", server.addr)],
        "/ws/feedback/{project_id}?token={token}".into(),
        Encoding::Json,
        1,
    )
    .await
    .unwrap();
    Run::new(target, vec![std::process::id()], false)
}

#[tokio::test]
async fn provisioned_file_round_trips_and_its_tokens_open_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[]);
    let store = Store::connect(&cfg.database_url(), 2).await.unwrap();
    let keys = JwtKeys::hs256(SECRET.as_bytes(), Duration::from_secs(900));
    let spec = ProvisionSpec {
        projects: 3,
        members: 4,
        token_ttl: Duration::from_secs(600),
    };
    let users = provision(&store, &keys, spec).await.unwrap();
    // Twice into the same store: the second run must not collide.
    let again = provision(&store, &keys, spec).await.unwrap();
    assert_eq!(again.len(), 12);
    store.close().await;
    let file = dir.path().join("load.jsonl");
    write_lines(&users, std::fs::File::create(&file).unwrap()).unwrap();

    let read = provisioning::read(&file).unwrap();
    assert_eq!(read.len(), 12);
    let mut ids: Vec<i64> = read.iter().map(|m| m.user_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every member is a distinct user");
    let projects = provisioning::by_project(read);
    assert_eq!(projects.len(), 3);
    assert!(projects.iter().all(|p| p.members.len() == 4));
    assert!(
        projects
            .iter()
            .all(|p| p.members.iter().all(|m| m.feedback_id == p.feedback_id))
    );

    let app = Application::build(config(dir.path(), &[])).await.unwrap();
    let server = serve(app, tempfile::tempdir().unwrap()).await;
    let run = run_for(&server).await;
    let member = &projects[1].members[2];
    let mut ws = run.target.connect(0, member).await.unwrap();
    let first = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break decode_server(Encoding::Json, t.as_bytes()).unwrap(),
            _ => continue,
        }
    };
    match first {
        ServerMessage::InitialState(state) => {
            assert_eq!(state.project_id, projects[1].project_id);
            assert!(state.online_users.contains(&member.user_id));
        }
        other => panic!("expected initial_state, got {other:?}"),
    }
    // A member of another project is refused this one.
    let outsider = Member {
        project_id: projects[1].project_id,
        ..projects[0].members[0].clone()
    };
    let mut refused = run.target.connect(1, &outsider).await.unwrap();
    let code = loop {
        match refused.next().await {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, close::PERMISSION_DENIED);
    drop(ws);
    server.stop().await;
}

fn room_spec(traffic: room::Traffic, slow_share: f64) -> room::RoomSpec {
    room::RoomSpec {
        traffic,
        connect_rate: 500.0,
        rate: 20.0,
        duration: Duration::from_secs(1),
        text_bytes: 16,
        slow_share,
        grace: Duration::from_secs(3),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_run_delivers_every_comment_to_every_member() {
    let (server, projects) = server_with(3, 4).await;
    let run = run_for(&server).await;
    let report = room::run(&run, &projects, room_spec(room::Traffic::Comments, 0.0)).await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    assert_eq!(n("sent"), 60.0, "{}", report.table());
    // 3 projects × 20 comments × 4 members (the author sees its own).
    assert_eq!(n("expected"), 240.0, "{}", report.table());
    assert_eq!(n("delivered"), 240.0, "{}", report.table());
    assert_eq!(n("lost"), 0.0);
    assert_eq!(n("acks"), 60.0);
    assert_eq!(n("latency_count"), 240.0);
    assert!(n("latency_p99_ms") > 0.0);
    assert!(report.get("first_error").is_none(), "{}", report.table());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_run_delivers_to_everyone_but_the_sender() {
    let (server, projects) = server_with(2, 5).await;
    let run = run_for(&server).await;
    let report = room::run(&run, &projects, room_spec(room::Traffic::Typing, 0.0)).await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    // 2 projects × 20 indicators × 4 other members.
    assert_eq!(n("expected"), 160.0, "{}", report.table());
    assert_eq!(n("delivered"), 160.0, "{}", report.table());
    assert_eq!(n("latency_count"), 160.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_storm_runs_count_every_socket() {
    let (server, projects) = server_with(2, 3).await;
    let run = run_for(&server).await;
    let report = idle::run(
        &run,
        &projects,
        idle::IdleSpec {
            connect_rate: 500.0,
            hold: Duration::from_secs(1),
        },
    )
    .await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    assert_eq!(
        (n("opened"), n("failed"), n("dropped")),
        (6.0, 0.0, 0.0),
        "{}",
        report.table()
    );
    // Our own pid stands in for the server's: it is the same process here.
    assert!(n("server_rss_mib") > 0.0, "{}", report.table());

    let run = run_for(&server).await;
    let members = projects.into_iter().flat_map(|p| p.members).collect();
    let report = storm::run(
        &run,
        members,
        storm::StormSpec {
            connect_rate: 500.0,
            attempts: 3,
            retry_after: Duration::from_millis(50),
            at_unix_secs: None,
        },
    )
    .await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    assert_eq!((n("back"), n("not_back")), (6.0, 0.0), "{}", report.table());
    assert_eq!(n("reconnect_count"), 6.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_run_gets_every_request_answered() {
    let (server, projects) = server_with(1, 2).await;
    let run = run_for(&server).await;
    let members = projects.into_iter().flat_map(|p| p.members).collect();
    let report = rest::run(
        &run,
        members,
        rest::RestSpec {
            path_template: "/health/live?p={project_id}".into(),
            rate: 50.0,
            duration: Duration::from_secs(1),
            max_in_flight: 16,
        },
    )
    .await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    assert_eq!(
        (n("requests"), n("status_2xx")),
        (50.0, 50.0),
        "{}",
        report.table()
    );
    assert_eq!(n("latency_count"), 50.0);
    // A path that does not exist is reported, not hidden.
    let run = run_for(&server).await;
    let report = rest::run(
        &run,
        vec![Member {
            user_id: 1,
            token: "t".into(),
            project_id: 1,
            feedback_id: 1,
        }],
        rest::RestSpec {
            path_template: "/no/such/{project_id}".into(),
            rate: 20.0,
            duration: Duration::from_millis(500),
            max_in_flight: 4,
        },
    )
    .await;
    assert_eq!(
        report.number("status_4xx"),
        Some(10.0),
        "{}",
        report.table()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_run_seeds_every_event_and_every_client_gets_them_all() {
    // A small cap, so a resume takes several rounds.
    let (server, projects) = server_with_flags(2, 3, &["--resume-max-comments", "50"]).await;
    let spec = resume::ResumeSpec {
        events: 300,
        seed_window: 16,
        status_changes: true,
        clients: 4,
        since_seq: 0,
        max_rounds: 100,
        repeats: 2,
    };
    let run = run_for(&server).await;
    let report = resume::run(&run, &projects, spec).await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    let table = report.table();
    assert_eq!(n("seed_events"), 600.0, "{table}");
    assert_eq!(n("seed_commands_acked"), 600.0, "{table}");
    assert_eq!(n("seed_projects_mismatched"), 0.0, "{table}");
    assert_eq!(
        (n("seed_noop_acks"), n("seed_refused"), n("seed_unanswered")),
        (0.0, 0.0, 0.0),
        "{table}"
    );
    assert_eq!(
        (n("resumes"), n("resumes_complete"), n("resumes_mismatched")),
        (8.0, 8.0, 0.0),
        "{table}"
    );
    assert_eq!(n("events_received"), 8.0 * 300.0, "{table}");
    assert_eq!(n("events_out_of_order"), 0.0, "{table}");
    assert!(n("rounds_p50") >= 6.0, "{table}");
    assert_eq!(n("complete_count"), 8.0, "{table}");
    assert!(report.get("first_error").is_none(), "{table}");

    // Measure only, from the middle of the log.
    let run = run_for(&server).await;
    let report = resume::run(
        &run,
        &projects,
        resume::ResumeSpec {
            events: 0,
            clients: 2,
            since_seq: 100,
            repeats: 1,
            ..spec
        },
    )
    .await;
    let n = |k: &str| report.number(k).unwrap_or(-1.0);
    assert_eq!(
        (n("events_per_resume_min"), n("events_per_resume_max")),
        (200.0, 200.0),
        "{}",
        report.table()
    );
    assert_eq!(n("resumes_mismatched"), 0.0, "{}", report.table());
    server.stop().await;
}
