//! `rest`: GET requests at a fixed rate (open loop: requests start on
//! schedule whether or not earlier ones finished, up to an in-flight cap)
//! against a path template filled from the provisioning file, with each
//! member's token as a bearer token. Latency percentiles and statuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::procstat::{Process, cpu_percent, cpu_us_per_event};
use crate::provisioning::Member;
use crate::report::Report;
use crate::run::{Pacer, Run, round1, round2};
use crate::stats::Percentiles;
use crate::target::Target;

/// What `rest` does.
#[derive(Debug, Clone)]
pub struct RestSpec {
    /// e.g. `/projects/{project_id}/comments?since=0&limit=50`.
    pub path_template: String,
    pub rate: f64,
    pub duration: Duration,
    pub max_in_flight: usize,
}

#[derive(Debug, Default)]
struct Statuses {
    ok: AtomicU64,
    client_error: AtomicU64,
    server_error: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    /// Requests not started because the in-flight cap was reached.
    skipped: AtomicU64,
}

pub async fn run(run: &Run, members: Vec<Member>, spec: RestSpec) -> Report {
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(spec.max_in_flight)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let mut report = Report::new("rest");
            report.add("error", format!("building the HTTP client: {e}"));
            return report;
        }
    };
    let _live = run.live(format!("rest {}/s", spec.rate));
    let statuses = Arc::new(Statuses::default());
    let in_flight = Arc::new(Semaphore::new(spec.max_in_flight.max(1)));
    let count = (spec.rate * spec.duration.as_secs_f64()).round() as u64;
    let servers: Vec<String> = run
        .target
        .servers()
        .iter()
        .map(|s| format!("http://{s}"))
        .collect();
    let server_from = run.server_sample();
    let client_from = Process(None).sample();
    let started = Instant::now();
    let pacer = Pacer::new(started, spec.rate);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        pacer.wait(i).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            statuses.skipped.fetch_add(1, Relaxed);
            continue;
        };
        let Some(member) = members.get(i as usize % members.len().max(1)) else {
            break;
        };
        let url = format!(
            "{}{}",
            servers[i as usize % servers.len()],
            Target::path_for(&spec.path_template, member)
        );
        let request = client.get(url).bearer_auth(&member.token);
        let (run, statuses) = (run.clone(), statuses.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let result = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    // Read the whole body: its transfer is part of the latency.
                    let body = response.bytes().await;
                    run.counters.sent.fetch_add(1, Relaxed);
                    match (status.as_u16(), body) {
                        (_, Err(_)) => &statuses.failed,
                        (200..=299, Ok(b)) => {
                            run.counters.bytes_in.fetch_add(b.len() as u64, Relaxed);
                            &statuses.ok
                        }
                        (400..=499, _) => &statuses.client_error,
                        (500..=599, _) => &statuses.server_error,
                        _ => &statuses.other,
                    }
                }
                Err(e) => {
                    run.counters.cause(if e.is_timeout() {
                        "timeout".to_string()
                    } else {
                        "request failed".to_string()
                    });
                    &statuses.failed
                }
            };
            result.fetch_add(1, Relaxed);
            run.latency
                .record_ns(i as usize, &[sent.elapsed().as_nanos() as u64]);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let server_to = run.server_sample();
    let client_to = Process(None).sample();
    let mut report = Report::new("rest");
    let load = |c: &AtomicU64| c.load(Relaxed);
    report
        .add("path_template", spec.path_template.clone())
        .add("target_rate", spec.rate)
        .add("requests", count)
        .add(
            "achieved_rate",
            round1((count - load(&statuses.skipped)) as f64 / elapsed),
        )
        .add("status_2xx", load(&statuses.ok))
        .add("status_4xx", load(&statuses.client_error))
        .add("status_5xx", load(&statuses.server_error))
        .add("status_other", load(&statuses.other))
        .add("request_errors", load(&statuses.failed))
        .add("skipped_in_flight_cap", load(&statuses.skipped))
        .latency("latency", Percentiles::of(&run.latency.merged()));
    if let (Some(a), Some(b)) = (server_from, server_to) {
        report.add("server_cpu_percent", round1(cpu_percent(&a, &b)));
        let answered =
            load(&statuses.ok) + load(&statuses.client_error) + load(&statuses.server_error);
        if let Some(us) = cpu_us_per_event(&a, &b, answered, run.shards) {
            report.add("server_cpu_us_per_request", round2(us));
        }
    }
    if let (Some(a), Some(b)) = (client_from, client_to) {
        report.add("client_cpu_busy_percent", round1(cpu_percent(&a, &b)));
    }
    report
}
