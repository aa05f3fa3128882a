//! The command line, and turning it into a run: read the provisioning file,
//! pick projects and members, raise the open-file limit, run the scenario.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use vridge_protocol::Encoding;

use crate::provisioning::{self, Project, Shard};
use crate::report::Report;
use crate::run::Run;
use crate::scenario::{idle, rest, resume, room, storm};
use crate::target::{Placement, Target, sources_needed};

#[derive(Debug, Parser)]
#[command(
    name = "vridge-loadtest",
    version,
    about = "Load generator for vridge realtime servers (loopback only)"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WireEncoding {
    Json,
    Msgpack,
}

/// Options every scenario takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Server URL (ws://HOST:PORT); repeat to spread projects across nodes
    /// (a project's members all go to the same node, unless --spread-members).
    #[arg(long = "url", global = true, default_value = "ws://127.0.0.1:8080")]
    pub urls: Vec<String>,
    /// Spread each project's members over the --urls (by user id) instead of
    /// putting a project on one node, so deliveries cross nodes; the servers
    /// must share a Redis. Latency is then reported same-node and cross-node.
    #[arg(long, global = true)]
    pub spread_members: bool,
    /// Provisioning file: JSON lines of {"user_id","token","project_id","feedback_id"}.
    #[arg(long, global = true, default_value = "loadtest.jsonl")]
    pub provisioning: PathBuf,
    /// WebSocket path template; {project_id}, {user_id}, {feedback_id} and {token} are filled in.
    #[arg(
        long,
        global = true,
        default_value = "/ws/feedback/{project_id}?token={token}"
    )]
    pub ws_path: String,
    /// Wire encoding of the sockets.
    #[arg(long, global = true, value_enum, default_value = "json")]
    pub encoding: WireEncoding,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread sockets over (0: as many as needed).
    #[arg(long, global = true, default_value_t = 0)]
    pub source_addrs: usize,
    /// Server process to report CPU and memory of; repeat for several nodes.
    #[arg(long, global = true)]
    pub server_pid: Vec<u32>,
    /// New sockets per second while connecting.
    #[arg(long, global = true, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Drive only this slice of the projects (INDEX/COUNT), to split a run across processes.
    #[arg(long, global = true)]
    pub shard: Option<Shard>,
    /// No live progress line.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// Projects and members to use.
#[derive(Debug, Clone, Copy, Args)]
pub struct Shape {
    /// Projects to use from the provisioning file.
    #[arg(long, default_value_t = 10)]
    pub projects: usize,
    /// Members per project (0: every member the file has).
    #[arg(long, default_value_t = 0)]
    pub members: usize,
}

/// Sending traffic into rooms.
#[derive(Debug, Clone, Copy, Args)]
pub struct Traffic {
    /// Messages per second sent in each project (by its first member).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Seconds to wait for the last deliveries after sending ends.
    #[arg(long, default_value_t = 5.0)]
    pub grace_secs: f64,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Open sockets and hold them: opened, failed, dropped, server RSS and CPU.
    Idle {
        #[command(flatten)]
        shape: Shape,
        /// Seconds to hold the sockets once all are open.
        #[arg(long, default_value_t = 60)]
        hold_secs: u64,
    },
    /// One member per project sends comment_add; every member times and counts the comments.
    Fanout {
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        traffic: Traffic,
        /// Filler bytes added to each comment's text.
        #[arg(long, default_value_t = 0)]
        text_bytes: usize,
    },
    /// As fanout, with typing_indicator (the ephemeral path).
    Typing {
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        traffic: Traffic,
    },
    /// Open sockets, then reconnect them all at once: time until all are back.
    Storm {
        #[command(flatten)]
        shape: Shape,
        /// Reconnect attempts per socket.
        #[arg(long, default_value_t = 5)]
        attempts: u32,
        /// Milliseconds between failed attempts.
        #[arg(long, default_value_t = 200)]
        retry_after_ms: u64,
        /// Start the storm at this Unix time (seconds), so several shards storm together.
        #[arg(long)]
        at_unix_secs: Option<u64>,
    },
    /// GET a REST path at a fixed rate: latency percentiles and statuses.
    Rest {
        /// HTTP path template, filled like --ws-path.
        #[arg(
            long,
            default_value = "/projects/{project_id}/comments?since=0&limit=50"
        )]
        path: String,
        /// Requests per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration_secs: f64,
        /// Requests in flight at most; a request due beyond it is skipped and counted.
        #[arg(long, default_value_t = 512)]
        max_in_flight: usize,
        /// Projects whose members' tokens are used.
        #[arg(long, default_value_t = 10)]
        projects: usize,
    },
    /// As fanout, with a share of each project's members never reading.
    Slow {
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        traffic: Traffic,
        /// Share of members (never the sender) that stop reading.
        #[arg(long, default_value_t = 0.2)]
        slow_share: f64,
        /// Filler bytes added to each comment's text (fills slow members' buffers sooner).
        #[arg(long, default_value_t = 1024)]
        text_bytes: usize,
    },
    /// Seed E events of mixed kinds per project, then time C clients
    /// resuming with ?since_seq= until complete; server CPU.
    Resume {
        /// Projects to seed and resume (clients are spread over them).
        #[arg(long, default_value_t = 1)]
        projects: usize,
        /// Events (one per command) to seed per project; 0: no seed phase,
        /// measure what the store holds.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Seed commands in flight per project at most.
        #[arg(long, default_value_t = 64)]
        seed_window: usize,
        /// No REST status changes in the seed mix.
        #[arg(long)]
        no_status_changes: bool,
        /// Clients resuming at once; 0: no measure phase.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// The since_seq clients resume from first.
        #[arg(long, default_value_t = 0)]
        since_seq: i64,
        /// Most connects per client before it counts as not complete.
        #[arg(long, default_value_t = 1000)]
        max_rounds: u32,
        /// Resumes per client, one after another.
        #[arg(long, default_value_t = 1)]
        repeats: u32,
    },
}

impl Scenario {
    /// Projects and members per project this scenario needs from the file.
    fn shape(&self) -> Shape {
        match self {
            Scenario::Idle { shape, .. }
            | Scenario::Fanout { shape, .. }
            | Scenario::Typing { shape, .. }
            | Scenario::Storm { shape, .. }
            | Scenario::Slow { shape, .. } => *shape,
            Scenario::Rest { projects, .. } | Scenario::Resume { projects, .. } => Shape {
                projects: *projects,
                members: 0,
            },
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit; returns
/// the limit in force.
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|_| {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(0)
    })
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}

/// Runs the scenario the command line asks for.
pub async fn execute(cli: Cli) -> anyhow::Result<Report> {
    let common = cli.common;
    let shape = cli.scenario.shape();
    let all = provisioning::read(&common.provisioning)
        .with_context(|| format!("reading {}", common.provisioning.display()))?;
    let projects: Vec<Project> = provisioning::select(
        provisioning::by_project(all),
        shape.projects,
        shape.members,
        common.shard,
    )?;
    let sockets: usize = match &cli.scenario {
        // A seeder per project and the resuming clients.
        Scenario::Resume { clients, .. } => projects.len() + clients,
        _ => projects.iter().map(|p| p.members.len()).sum(),
    };
    let limit = raise_open_files();
    // Each socket is a file, plus some for the runtime and HTTP.
    let uses_sockets = !matches!(cli.scenario, Scenario::Rest { .. });
    if uses_sockets && (sockets as u64) + 64 > limit {
        eprintln!(
            "warning: {sockets} sockets need more open files than this process may have ({limit}); \
             expect EMFILE: raise the hard limit (ulimit -Hn) or split the run with --shard"
        );
    }
    let sources = if common.source_addrs == 0 {
        sources_needed(sockets)
    } else {
        common.source_addrs
    };
    let encoding = match common.encoding {
        WireEncoding::Json => Encoding::Json,
        WireEncoding::Msgpack => Encoding::MsgPack,
    };
    // Shards of one run take disjoint source addresses: shard i starts at
    // 127.0.0.(1 + i × sources).
    let first_source = common.shard.map_or(1, |s| 1 + s.index * sources).min(254) as u8;
    let placement = if common.spread_members {
        Placement::ByMember
    } else {
        Placement::ByProject
    };
    let target = Target::with_sources(
        &common.urls,
        common.ws_path.clone(),
        encoding,
        sources,
        first_source,
    )
    .await?
    .placed(placement);
    let run = Run::new(target, common.server_pid.clone(), !common.no_progress)
        .with_shards(common.shard.map_or(1, |s| s.count));
    let report = match cli.scenario {
        Scenario::Idle { hold_secs, .. } => {
            idle::run(
                &run,
                &projects,
                idle::IdleSpec {
                    connect_rate: common.connect_rate,
                    hold: Duration::from_secs(hold_secs),
                },
            )
            .await
        }
        Scenario::Fanout {
            traffic,
            text_bytes,
            ..
        } => {
            room::run(
                &run,
                &projects,
                room_spec(room::Traffic::Comments, &common, traffic, text_bytes, 0.0),
            )
            .await
        }
        Scenario::Typing { traffic, .. } => {
            room::run(
                &run,
                &projects,
                room_spec(room::Traffic::Typing, &common, traffic, 0, 0.0),
            )
            .await
        }
        Scenario::Slow {
            traffic,
            slow_share,
            text_bytes,
            ..
        } => {
            room::run(
                &run,
                &projects,
                room_spec(
                    room::Traffic::Comments,
                    &common,
                    traffic,
                    text_bytes,
                    slow_share.clamp(0.0, 1.0),
                ),
            )
            .await
        }
        Scenario::Storm {
            attempts,
            retry_after_ms,
            at_unix_secs,
            ..
        } => {
            let members = projects.into_iter().flat_map(|p| p.members).collect();
            storm::run(
                &run,
                members,
                storm::StormSpec {
                    connect_rate: common.connect_rate,
                    attempts: attempts.max(1),
                    retry_after: Duration::from_millis(retry_after_ms),
                    at_unix_secs,
                },
            )
            .await
        }
        Scenario::Resume {
            events,
            seed_window,
            no_status_changes,
            clients,
            since_seq,
            max_rounds,
            repeats,
            ..
        } => {
            resume::run(
                &run,
                &projects,
                resume::ResumeSpec {
                    events,
                    seed_window,
                    status_changes: !no_status_changes,
                    clients,
                    since_seq,
                    max_rounds,
                    repeats,
                },
            )
            .await
        }
        Scenario::Rest {
            path,
            rate,
            duration_secs,
            max_in_flight,
            ..
        } => {
            let members = projects.into_iter().flat_map(|p| p.members).collect();
            rest::run(
                &run,
                members,
                rest::RestSpec {
                    path_template: path,
                    rate,
                    duration: secs(duration_secs),
                    max_in_flight,
                },
            )
            .await
        }
    };
    Ok(report)
}

fn room_spec(
    traffic: room::Traffic,
    common: &Common,
    t: Traffic,
    text_bytes: usize,
    slow_share: f64,
) -> room::RoomSpec {
    room::RoomSpec {
        traffic,
        connect_rate: common.connect_rate,
        rate: t.rate,
        duration: secs(t.duration_secs),
        text_bytes,
        slow_share,
        grace: secs(t.grace_secs),
    }
}
