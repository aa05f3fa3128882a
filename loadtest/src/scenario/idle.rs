//! `idle`: open N sockets across P projects at a given connect rate, hold
//! them, and report how many opened, failed and dropped, with the server's
//! memory and CPU while it holds them (and ours).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ended, read_until};
use crate::procstat::{Process, cpu_percent};
use crate::provisioning::Project;
use crate::report::Report;
use crate::run::{Pacer, Run, Signal, round1};

/// What `idle` does.
#[derive(Debug, Clone, Copy)]
pub struct IdleSpec {
    pub connect_rate: f64,
    pub hold: Duration,
}

pub async fn run(run: &Run, projects: &[Project], spec: IdleSpec) -> Report {
    let members: Vec<_> = projects
        .iter()
        .flat_map(|p| p.members.iter().cloned())
        .collect();
    let total = members.len();
    let _live = run.live(format!("idle {total} sockets"));
    let client_start = Process(None).sample();
    let server_before = run.server_sample();
    let stop = Signal::default();
    let mut tasks = JoinSet::new();
    let connect_start = Instant::now();
    let pacer = Pacer::new(connect_start, spec.connect_rate);
    for (i, member) in members.into_iter().enumerate() {
        pacer.wait(i as u64).await;
        let run = run.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let Some(mut ws) = run.open(i, &member).await else {
                return;
            };
            let ended = read_until(&mut ws, &stop, |f| run.count_frame(f)).await;
            if ended != Ended::Stopped {
                run.counters.dropped.fetch_add(1, Relaxed);
                run.counters.cause(ended.cause());
            }
            // Dropped without a close handshake: holding many sockets, the
            // run ends faster this way and the server sees a plain EOF.
            drop(ws);
        });
    }
    // Every socket has been started; wait until each opened or failed.
    while run.counters.opened.load(Relaxed) + run.counters.failed.load(Relaxed) < total as u64 {
        if tasks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    // Let the server settle (allocations, the last presence events) before
    // measuring it at rest.
    tokio::time::sleep(Duration::from_secs(2).min(spec.hold)).await;
    let server_held = run.server_sample();
    let client_held = Process(None).sample();
    tokio::time::sleep(spec.hold.saturating_sub(Duration::from_secs(2))).await;
    let server_end = run.server_sample();
    let client_end = Process(None).sample();
    stop.fire();
    while tasks.join_next().await.is_some() {}

    let opened = run.counters.opened.load(Relaxed);
    let mut report = Report::new("idle");
    report
        .add("sockets", total as u64)
        .add("projects", projects.len() as u64)
        .add("connect_secs", round1(connect_secs))
        .add("hold_secs", spec.hold.as_secs());
    if let (Some(before), Some(held), Some(end)) = (server_before, server_held, server_end) {
        let grown = held.rss_bytes.saturating_sub(before.rss_bytes);
        report
            .add("server_rss_mib", round1(end.rss_bytes as f64 / 1048576.0))
            .add(
                "server_rss_per_socket_kib",
                round1(grown as f64 / 1024.0 / opened.max(1) as f64),
            )
            .add(
                "server_cpu_at_rest_percent",
                round1(cpu_percent(&held, &end)),
            );
    }
    if let (Some(a), Some(b)) = (client_held, client_end) {
        report.add("client_cpu_at_rest_percent", round1(cpu_percent(&a, &b)));
    }
    run.finish_report(&mut report, client_start);
    report
}
