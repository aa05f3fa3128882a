//! `storm`: N sockets open, then all of them reconnect at once, as after a
//! deploy. Reports how long until every socket was back (its
//! `initial_state` received), the reconnect time of each, errors by cause,
//! the server's CPU during the storm, and its memory per socket once the
//! storm has settled (what a storm leaves behind, against the memory of a
//! socket opened at a calm rate).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ended, read_until};
use crate::procstat::{Process, cpu_percent};
use crate::provisioning::Member;
use crate::report::Report;
use crate::run::{Pacer, Run, Signal, round1};
use crate::stats::Percentiles;

/// How long after the storm the servers' memory is read.
const SETTLE: Duration = Duration::from_secs(10);

/// What `storm` does.
#[derive(Debug, Clone, Copy)]
pub struct StormSpec {
    pub connect_rate: f64,
    /// Reconnect attempts per socket before it counts as not back.
    pub attempts: u32,
    /// Pause between a failed attempt and the next.
    pub retry_after: Duration,
    /// Wall-clock time (Unix seconds) to start the storm at, so several
    /// load-generator processes storm together; `None`: once all are open.
    pub at_unix_secs: Option<u64>,
}

pub async fn run(run: &Run, members: Vec<Member>, spec: StormSpec) -> Report {
    let total = members.len();
    let _live = run.live(format!("storm {total} sockets"));
    let client_start = Process(None).sample();
    let server_start = run.server_sample();
    let storm = Signal::default();
    let stop = Signal::default();
    let reconnect_latency = Arc::new(crate::stats::Latency::default());
    let back = Arc::new(AtomicU64::new(0));
    let attempt_errors = Arc::new(AtomicU64::new(0));
    let settled = Arc::new(AtomicU64::new(0));
    let gave_up = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let pacer = Pacer::new(Instant::now(), spec.connect_rate);
    let storm_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    for (i, member) in members.into_iter().enumerate() {
        pacer.wait(i as u64).await;
        let (run, storm, stop, storm_at) =
            (run.clone(), storm.clone(), stop.clone(), storm_at.clone());
        let (lat, back, errors, settled, gave_up) = (
            reconnect_latency.clone(),
            back.clone(),
            attempt_errors.clone(),
            settled.clone(),
            gave_up.clone(),
        );
        tasks.spawn(async move {
            let first = run.open(i, &member).await;
            settled.fetch_add(1, Relaxed);
            let Some(mut ws) = first else { return };
            let ended = read_until(&mut ws, &storm, |f| run.count_frame(f)).await;
            if ended != Ended::Stopped {
                run.counters.dropped.fetch_add(1, Relaxed);
                run.counters.cause(ended.cause());
            }
            // The storm: drop the connection and reconnect at once.
            drop(ws);
            let Some(t0) = storm_at.get().copied() else {
                return;
            };
            for attempt in 0..spec.attempts {
                if attempt > 0 {
                    tokio::time::sleep(spec.retry_after).await;
                }
                match run.target.connect(i, &member).await {
                    Ok(mut ws) => {
                        if first_frame(&mut ws).await {
                            lat.record_ns(i, &[t0.elapsed().as_nanos() as u64]);
                            back.fetch_add(1, Relaxed);
                            stop.wait().await;
                            return;
                        }
                        errors.fetch_add(1, Relaxed);
                        run.counters.cause("reconnect: closed before initial_state");
                    }
                    Err(e) => {
                        errors.fetch_add(1, Relaxed);
                        run.counters.cause(format!("reconnect: {}", e.cause()));
                    }
                }
            }
            gave_up.fetch_add(1, Relaxed);
        });
    }
    while settled.load(Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = run.counters.opened.load(Relaxed);
    let wait = match spec.at_unix_secs {
        Some(at) => Duration::from_nanos(
            (at.saturating_mul(1_000_000_000)).saturating_sub(crate::clock::unix_ns()),
        ),
        None => Duration::from_secs(1),
    };
    tokio::time::sleep(wait).await;
    let server_from = run.server_sample();
    let client_from = Process(None).sample();
    let t0 = Instant::now();
    let _ = storm_at.set(t0);
    storm.fire();
    // Wait until every opened socket is back or has given up.
    let deadline = t0 + Duration::from_secs(120);
    while back.load(Relaxed) + gave_up.load(Relaxed) < opened && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server_to = run.server_sample();
    let client_to = Process(None).sample();
    // Let the servers settle (every shard's storm, the last presence
    // events, allocations given back) before measuring what is left.
    tokio::time::sleep(SETTLE).await;
    let server_settled = run.server_sample();
    stop.fire();
    while tasks.join_next().await.is_some() {}

    let mut report = Report::new("storm");
    let back = back.load(Relaxed);
    let reconnect = Percentiles::of(&reconnect_latency.merged());
    // The slowest socket's reconnect time is when the last one was back.
    let all_back_secs = reconnect.max_ms / 1000.0;
    report
        .add("sockets", total as u64)
        .add("opened_before_storm", opened)
        .add("back", back)
        .add("not_back", opened.saturating_sub(back))
        .add("reconnect_errors", attempt_errors.load(Relaxed))
        .add("all_back_secs", (all_back_secs * 1000.0).round() / 1000.0)
        .latency("reconnect", reconnect);
    if let (Some(a), Some(b)) = (server_from, server_to) {
        report.add("server_cpu_percent", round1(cpu_percent(&a, &b)));
    }
    if let (Some(start), Some(settled)) = (server_start, server_settled) {
        // The servers hold every shard's sockets; shards are the same size.
        let sockets = back * run.shards as u64;
        let grown = settled.rss_bytes.saturating_sub(start.rss_bytes);
        report.add(
            "server_rss_per_socket_after_kib",
            round1(grown as f64 / 1024.0 / sockets.max(1) as f64),
        );
    }
    if let (Some(a), Some(b)) = (client_from, client_to) {
        report.add("client_cpu_storm_percent", round1(cpu_percent(&a, &b)));
    }
    run.finish_report(&mut report, client_start);
    report
}

/// Waits for the first data frame (`initial_state`) of a fresh socket.
async fn first_frame(ws: &mut crate::target::Socket) -> bool {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return true,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(crate::run::OPEN_TIMEOUT, wait)
        .await
        .unwrap_or(false)
}
