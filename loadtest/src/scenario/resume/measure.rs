//! The measure phase of `resume`: clients resuming at once, each until
//! `initial_state` says complete; time, rounds, events, bytes, server CPU.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::page::EVENT_TYPES;
use super::{ResumeSpec, close, note_error, open_state, scan};
use crate::procstat::{Process, cpu_percent, cpu_us_per_event};
use crate::provisioning::{Member, Project};
use crate::report::Report;
use crate::run::{Run, Signal, round1, round2};
use crate::stats::{Latency, Percentiles};

/// What one resume of one client found.
#[derive(Debug, Default)]
struct Resumed {
    expected: u64,
    events: u64,
    by_type: [u64; EVENT_TYPES.len() + 1],
    rounds: u32,
    bytes: u64,
    out_of_order: u64,
    complete: bool,
    /// The first connect to the last `initial_state`.
    elapsed_ns: u64,
    error: Option<String>,
}

pub(super) async fn phase(
    run: &Run,
    projects: &[Project],
    newest: &[i64],
    spec: ResumeSpec,
    report: &mut Report,
) {
    let _live = run.live(format!(
        "resume: {} clients from seq {}",
        spec.clients, spec.since_seq
    ));
    let start = Signal::default();
    let complete_latency = Arc::new(Latency::default());
    let round_latency = Arc::new(Latency::default());
    let mut tasks = JoinSet::new();
    let since = spec.since_seq.max(0);
    for i in 0..spec.clients {
        let pi = i % projects.len().max(1);
        let Some(project) = projects.get(pi) else {
            break;
        };
        let members = &project.members;
        let Some(member) = members
            .get((i / projects.len()) % members.len().max(1))
            .cloned()
        else {
            continue;
        };
        // A since_seq past the log is clamped to its newest event.
        let newest = newest[pi];
        let from = since.min(newest);
        let (run, start, complete_latency, round_latency) = (
            run.clone(),
            start.clone(),
            complete_latency.clone(),
            round_latency.clone(),
        );
        tasks.spawn(async move {
            start.wait().await;
            let mut all = Vec::new();
            for _ in 0..spec.repeats.max(1) {
                let r = resume_client(
                    &run,
                    i,
                    &member,
                    (since, from),
                    newest,
                    spec.max_rounds,
                    &round_latency,
                )
                .await;
                if r.complete {
                    complete_latency.record_ns(i, &[r.elapsed_ns]);
                }
                all.push(r);
            }
            all
        });
    }
    // Let every task reach the start line, then go at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server_from = run.server_sample();
    let client_from = Process(None).sample();
    let started = Instant::now();
    start.fire();
    let mut outcomes: Vec<Resumed> = Vec::with_capacity(spec.clients);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(o) = joined {
            outcomes.extend(o);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let server_to = run.server_sample();
    let client_to = Process(None).sample();

    let mut mismatched = 0u64;
    for o in &outcomes {
        let bad = !o.complete || o.events != o.expected || o.out_of_order > 0 || o.error.is_some();
        if bad {
            mismatched += 1;
            note_error(
                run,
                format!(
                    "resume: {} of {} events in {} rounds, {} out of order, {}{}",
                    o.events,
                    o.expected,
                    o.rounds,
                    o.out_of_order,
                    if o.complete {
                        "complete"
                    } else {
                        "not complete"
                    },
                    o.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    let n = outcomes.len().max(1) as u64;
    let events: u64 = outcomes.iter().map(|o| o.events).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let mut rounds: Vec<u32> = outcomes.iter().map(|o| o.rounds).collect();
    rounds.sort_unstable();
    let rounds_at = |q: f64| {
        rounds
            .get(((rounds.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0)
    };
    report
        .add("clients", spec.clients as u64)
        .add("repeats", u64::from(spec.repeats.max(1)))
        .add("resumes", outcomes.len() as u64)
        .add(
            "resumes_complete",
            outcomes.iter().filter(|o| o.complete).count() as u64,
        )
        .add("resumes_mismatched", mismatched)
        .add(
            "events_expected_per_resume",
            outcomes.iter().map(|o| o.expected).max().unwrap_or(0),
        )
        .add(
            "events_per_resume_min",
            outcomes.iter().map(|o| o.events).min().unwrap_or(0),
        )
        .add(
            "events_per_resume_max",
            outcomes.iter().map(|o| o.events).max().unwrap_or(0),
        )
        .add("events_received", events)
        .add(
            "events_out_of_order",
            outcomes.iter().map(|o| o.out_of_order).sum::<u64>(),
        )
        .add("rounds_p50", rounds_at(0.5))
        .add("rounds_max", rounds.last().copied().unwrap_or(0))
        .add("bytes_per_resume", bytes / n)
        .add(
            "bytes_per_event",
            round1(bytes as f64 / events.max(1) as f64),
        );
    for (t, name) in EVENT_TYPES.iter().chain(["other"].iter()).enumerate() {
        let total: u64 = outcomes.iter().map(|o| o.by_type[t]).sum();
        if total > 0 {
            report.add(format!("per_resume_{name}"), total / n);
        }
    }
    report
        .latency("complete", Percentiles::of(&complete_latency.merged()))
        .latency("round", Percentiles::of(&round_latency.merged()))
        .add("measure_secs", round2(secs))
        .add("events_per_sec", round1(events as f64 / secs.max(1e-9)));
    if let (Some(a), Some(b)) = (server_from, server_to) {
        report
            .add(
                "server_cpu_secs",
                round2((b.cpu_secs - a.cpu_secs).max(0.0)),
            )
            .add("server_cpu_percent", round1(cpu_percent(&a, &b)))
            .add("server_rss_mib", round1(b.rss_bytes as f64 / 1048576.0));
        if let Some(us) = cpu_us_per_event(&a, &b, events, run.shards) {
            report.add("server_cpu_us_per_event", round2(us));
        }
    }
    if let (Some(a), Some(b)) = (client_from, client_to) {
        report.add("client_cpu_busy_percent", round1(cpu_percent(&a, &b)));
    }
}

/// One client resuming until `initial_state` says complete: it asks for
/// `since.0` first, which the server should take as `since.1` (clamped to
/// the log's `newest` event), and must receive every event after that.
async fn resume_client(
    run: &Run,
    index: usize,
    member: &Member,
    since: (i64, i64),
    newest: i64,
    max_rounds: u32,
    round_latency: &Latency,
) -> Resumed {
    let encoding = run.target.encoding;
    let (mut since, from) = since;
    let mut out = Resumed {
        expected: (newest - from).max(0) as u64,
        ..Resumed::default()
    };
    let t0 = Instant::now();
    while out.rounds < max_rounds.max(1) {
        let r0 = Instant::now();
        let (ws, frame) = match open_state(run, index, member, &format!("since_seq={since}")).await
        {
            Ok(opened) => opened,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        };
        let now = Instant::now();
        round_latency.record_ns(index, &[now.duration_since(r0).as_nanos() as u64]);
        out.elapsed_ns = now.duration_since(t0).as_nanos() as u64;
        // Close without waiting: the next round does not depend on it.
        tokio::spawn(close(ws));
        out.rounds += 1;
        out.bytes += frame.len() as u64;
        let Some(page) = scan(&frame, encoding) else {
            out.error = Some("the first frame is not initial_state".into());
            break;
        };
        run.counters.add_events(&page.kinds);
        out.events += page.events;
        out.out_of_order += page.out_of_order;
        for (total, n) in out.by_type.iter_mut().zip(page.by_type) {
            *total += n;
        }
        let want_from = if out.rounds == 1 { from } else { since };
        if page.resumed_from_seq != Some(want_from) {
            out.error.get_or_insert_with(|| {
                format!(
                    "asked since_seq={since}, resumed from {:?} (expected {want_from})",
                    page.resumed_from_seq
                )
            });
        }
        match (page.complete, page.last_seq) {
            (Some(true), _) => {
                out.complete = true;
                break;
            }
            (Some(false), Some(last)) if last > since => since = last,
            (Some(false), last) => {
                out.error = Some(format!(
                    "a capped resume from {since} made no progress (last_seq {last:?})"
                ));
                break;
            }
            (None, _) => {
                out.error = Some(
                    "initial_state has no resume_complete: does the server know ?since_seq=?"
                        .into(),
                );
                break;
            }
        }
    }
    if !out.complete && out.error.is_none() {
        out.error = Some(format!("not complete after {max_rounds} rounds"));
    }
    out
}
