//! `resume`: how long a client that missed E events of mixed kinds takes to
//! catch up through `?since_seq=`, and what it costs the server.
//!
//! - Seed phase (skipped with `--events 0`): in each of P projects, its
//!   first member (the owner) sends E commands over one socket, up to
//!   `--seed-window` in flight: `comment_add` (about 40 %), `comment_edit`
//!   of its comments, `reaction_add` and `reaction_remove`,
//!   `comment_resolve` and `comment_reopen`, a few `comment_delete`, and a
//!   few REST status changes of the project's feedback item. Every command
//!   is planned to make exactly one event ([`plan`]), and waits for its
//!   answer (`comment_ack`, `ack`, or the REST response). The count is
//!   verified: the seqs acknowledged and broadcast must reach the log's
//!   newest, and the log must have grown by one event per command.
//! - Measure phase (skipped with `--clients 0`): C clients (spread over the
//!   projects and their members) connect at once with
//!   `?since_seq=--since-seq`, read `initial_state` and, while it says
//!   `resume_complete: false`, reconnect with `since_seq=last_seq`
//!   (`--repeats` times, one resume after another). Each resume
//!   reports its time to complete (first connect to the last
//!   `initial_state`), rounds, events (`per_resume_<type>`: the mean by
//!   event type) and bytes; every client must receive
//!   exactly the events after its `since_seq` (the log's newest, read by a
//!   probe socket, minus `since_seq`), in seq order without a gap — a
//!   mismatch is counted and shown as `first_error`. The server's CPU is
//!   sampled around the measure phase.
mod measure;
mod page;
mod plan;
mod seed;

use std::sync::atomic::Ordering::Relaxed;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::encode;
use vridge_protocol::{ClientMessage, Encoding};

pub use page::{EVENT_TYPES, Page, scan};
pub use plan::{KINDS, MIX, Op, Planner};

use super::close;
use crate::procstat::Process;
use crate::provisioning::{Member, Project};
use crate::report::Report;
use crate::run::{OPEN_TIMEOUT, Run};
use crate::target::Socket;

/// What `resume` does.
#[derive(Debug, Clone, Copy)]
pub struct ResumeSpec {
    /// Commands (each one event) to seed per project; 0: no seed phase.
    pub events: u64,
    /// Seed commands in flight per project at most.
    pub seed_window: usize,
    /// REST status changes in the seed mix.
    pub status_changes: bool,
    /// Resuming clients; 0: no measure phase.
    pub clients: usize,
    /// The `since_seq` clients resume from first.
    pub since_seq: i64,
    /// Most connects per client before it counts as not complete.
    pub max_rounds: u32,
    /// Resumes per client, one after another (more samples, and a longer
    /// window for the server's CPU, than one resume of one client gives).
    pub repeats: u32,
}

pub async fn run(run: &Run, projects: &[Project], spec: ResumeSpec) -> Report {
    let mut report = Report::new("resume");
    let client_start = Process(None).sample();
    report
        .add("projects", projects.len() as u64)
        .add("since_seq", spec.since_seq);
    if spec.events > 0 {
        seed::phase(run, projects, spec, &mut report).await;
    }
    // The log's newest event of each project, as a fresh socket sees it.
    let mut newest = Vec::with_capacity(projects.len());
    for (pi, p) in projects.iter().enumerate() {
        let probe = match p.members.first() {
            Some(m) => newest_seq(run, pi, m).await,
            None => Err("a project without members".into()),
        };
        match probe {
            Ok(seq) => newest.push(seq),
            Err(e) => {
                report.add("error", format!("project {}: {e}", p.project_id));
                run.finish_report(&mut report, client_start);
                return report;
            }
        }
    }
    report.add(
        "log_newest_seq_max",
        newest.iter().copied().max().unwrap_or(0),
    );
    if spec.clients > 0 {
        measure::phase(run, projects, &newest, spec, &mut report).await;
    }
    run.finish_report(&mut report, client_start);
    report
}

/// Opens a socket (with `query` added to its URL) and reads its first data
/// frame, the `initial_state`. Counts it as opened, or as failed.
pub(super) async fn open_state(
    run: &Run,
    index: usize,
    member: &Member,
    query: &str,
) -> Result<(Socket, Vec<u8>), String> {
    let result = tokio::time::timeout(OPEN_TIMEOUT, async {
        let mut ws = run
            .target
            .connect_with_query(index, member, query)
            .await
            .map_err(|e| e.cause())?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok((ws, t.as_bytes().to_vec())),
                Some(Ok(Message::Binary(b))) => return Ok((ws, b.to_vec())),
                Some(Ok(Message::Close(f))) => {
                    return Err(match f {
                        Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                        None => "closed".into(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed before initial_state".into()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no initial_state in time".into()));
    match &result {
        Ok((_, frame)) => {
            run.counters.opened.fetch_add(1, Relaxed);
            run.counters.bytes_in.fetch_add(frame.len() as u64, Relaxed);
        }
        Err(cause) => {
            run.counters.failed.fetch_add(1, Relaxed);
            run.counters.cause(cause.clone());
        }
    }
    result
}

/// The newest event of `member`'s project: `initial_state.last_seq` of a
/// fresh socket.
pub(super) async fn newest_seq(run: &Run, index: usize, member: &Member) -> Result<i64, String> {
    let (ws, frame) = open_state(run, index, member, "").await?;
    close(ws).await;
    scan(&frame, run.target.encoding)
        .and_then(|p| p.last_seq)
        .ok_or_else(|| "initial_state has no last_seq: a server without the event log?".into())
}

/// Keeps the first error of the run for the report.
pub(super) fn note_error(run: &Run, e: String) {
    if let Ok(mut first) = run.counters.first_error.lock() {
        first.get_or_insert(e);
    }
}

/// Encodes a client message as the frame type its encoding uses.
pub(super) fn frame(encoding: Encoding, msg: &ClientMessage) -> Option<Message> {
    let bytes = encode(encoding, msg).ok()?;
    match encoding {
        Encoding::Json => Utf8Bytes::try_from(bytes).ok().map(Message::Text),
        Encoding::MsgPack => Some(Message::Binary(bytes)),
    }
}
