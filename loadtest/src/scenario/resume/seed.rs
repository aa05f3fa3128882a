//! The seed phase of `resume`: one socket per project sends the planned
//! commands ([`super::plan`]) with up to `--seed-window` in flight, takes
//! every answer, and checks that the log grew by one event per command.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use vridge_protocol::codec::decode_server;
use vridge_protocol::{ClientMessage, CommentEdit, NewComment, NewReaction, ServerMessage};

use super::plan::{KINDS, Op, Planner};
use super::{ResumeSpec, close, frame, newest_seq, note_error, open_state, scan};
use crate::clock::unix_ns;
use crate::procstat::{cpu_percent, cpu_us_per_event};
use crate::provisioning::{Member, Project};
use crate::report::Report;
use crate::run::{Run, round1, round2};

/// How long the seeder waits for any answer before it gives up.
const SEED_STALL: Duration = Duration::from_secs(30);

/// How long the seeder keeps reading, once every command is answered, for
/// the broadcasts of the last ones (whose `seq` a `comment_ack` lacks).
const SEED_TAIL: Duration = Duration::from_secs(5);

/// What one project's seeder found.
#[derive(Debug, Default)]
struct Seeded {
    /// `initial_state.last_seq` of the seeder's socket: the log before.
    before: i64,
    /// Commands sent, by [`KINDS`].
    sent: [u64; KINDS.len()],
    /// Commands acknowledged with a change (a `comment_ack`, an `ack`
    /// with a `seq`, a 200 to a status change).
    acked: u64,
    /// `ack`s with `seq: null`: the command changed nothing (the plan
    /// avoids those, so each is a surprise).
    noop: u64,
    /// `ack`s or `comment_ack`s marked `duplicate`.
    duplicate: u64,
    /// Commands refused (`error`, a REST status other than 200).
    refused: u64,
    /// Commands never answered.
    unanswered: u64,
    /// The newest `seq` seen in acknowledgements and broadcasts.
    newest_seen: i64,
    /// Why the seeder stopped early, if it did.
    error: Option<String>,
}

pub(super) async fn phase(run: &Run, projects: &[Project], spec: ResumeSpec, report: &mut Report) {
    let _live = run.live(format!(
        "resume: seeding {} events in {} projects",
        spec.events,
        projects.len()
    ));
    let http = spec
        .status_changes
        .then(|| {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(10))
                .build()
                .ok()
        })
        .flatten();
    let run_id = unix_ns() / 1_000_000;
    let server_from = run.server_sample();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (pi, project) in projects.iter().enumerate() {
        let Some(owner) = project.members.first().cloned() else {
            continue;
        };
        let seeder = Seeder {
            run: run.clone(),
            member: owner,
            index: pi,
            prefix: format!("rs{run_id}p{pi}-"),
            spec,
            http: http.clone(),
        };
        tasks.spawn(seeder.seed());
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(o) = joined {
            outcomes.push(o);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let server_to = run.server_sample();
    // Each project's log must have grown by one event per command acknowledged.
    let mut seeded = 0u64;
    let mut mismatched = 0u64;
    for (pi, o) in &outcomes {
        let after = match projects.get(*pi).and_then(|p| p.members.first()) {
            Some(m) => newest_seq(run, *pi, m).await.unwrap_or(-1),
            None => -1,
        };
        let grew = (after - o.before).max(0) as u64;
        seeded += grew;
        if grew != o.acked || o.newest_seen != after || o.error.is_some() {
            mismatched += 1;
            note_error(
                run,
                format!(
                    "seed of project {}: log {} -> {after} ({grew} events), {} commands acknowledged, newest seq seen {}{}",
                    projects.get(*pi).map_or(0, |p| p.project_id),
                    o.before,
                    o.acked,
                    o.newest_seen,
                    o.error
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    let sum = |f: fn(&Seeded) -> u64| outcomes.iter().map(|(_, o)| f(o)).sum::<u64>();
    report
        .add("seed_events_per_project", spec.events)
        .add("seed_window", spec.seed_window as u64)
        .add("seed_commands_acked", sum(|o| o.acked))
        .add("seed_events", seeded)
        .add("seed_projects_mismatched", mismatched)
        .add("seed_noop_acks", sum(|o| o.noop))
        .add("seed_duplicates", sum(|o| o.duplicate))
        .add("seed_refused", sum(|o| o.refused))
        .add("seed_unanswered", sum(|o| o.unanswered))
        .add("seed_secs", round2(secs))
        .add(
            "seed_events_per_sec",
            round1(seeded as f64 / secs.max(1e-9)),
        );
    for (k, name) in KINDS.iter().enumerate() {
        let n: u64 = outcomes.iter().map(|(_, o)| o.sent[k]).sum();
        report.add(format!("seed_{name}"), n);
    }
    if let (Some(a), Some(b)) = (server_from, server_to) {
        report.add("seed_server_cpu_percent", round1(cpu_percent(&a, &b)));
        if let Some(us) = cpu_us_per_event(&a, &b, seeded, run.shards) {
            report.add("seed_server_cpu_us_per_event", round2(us));
        }
    }
}

/// One project's seeder.
struct Seeder {
    run: Run,
    member: Member,
    index: usize,
    /// `client_msg_id` prefix, unique per run and project (a retry with the
    /// same id would be answered as a duplicate and store nothing).
    prefix: String,
    spec: ResumeSpec,
    http: Option<reqwest::Client>,
}

impl Seeder {
    async fn seed(self) -> (usize, Seeded) {
        let mut out = Seeded::default();
        let run = &self.run;
        let encoding = run.target.encoding;
        let ws = match open_state(run, self.index, &self.member, "").await {
            Ok((ws, frame)) => match scan(&frame, encoding).and_then(|p| p.last_seq) {
                Some(seq) => {
                    out.before = seq;
                    out.newest_seen = seq;
                    ws
                }
                None => {
                    out.error = Some(
                        "initial_state has no last_seq: a server without the event log?".into(),
                    );
                    return (self.index, out);
                }
            },
            Err(e) => {
                out.error = Some(e);
                return (self.index, out);
            }
        };
        let (mut sink, mut stream) = ws.split();
        let (rest_tx, mut rest_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
        let mut plan = Planner::new(self.member.project_id as u64 ^ 0x5eed, self.http.is_some());
        let mut in_flight: HashMap<u64, Op> = HashMap::new();
        let (mut planned, mut answered) = (0u64, 0u64);
        let target = self.spec.events;
        let window = self.spec.seed_window.max(1);
        while answered < target {
            let mut fed = false;
            while in_flight.len() < window && planned < target {
                let id = planned;
                let op = plan.next_op();
                planned += 1;
                out.sent[op.kind()] += 1;
                in_flight.insert(id, op);
                if let Op::Status(status) = op {
                    self.change_status(id, status, rest_tx.clone());
                    continue;
                }
                let msg = self.command(id, op);
                let Some(frame) = frame(encoding, &msg) else {
                    out.error = Some("encoding a command failed".into());
                    break;
                };
                if sink.feed(frame).await.is_err() {
                    out.error = Some("the socket closed while sending".into());
                    break;
                }
                fed = true;
            }
            if out.error.is_some() || (fed && sink.flush().await.is_err()) {
                out.error
                    .get_or_insert_with(|| "the socket closed while sending".into());
                break;
            }
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(Message::Text(t))) => {
                        answered += self.answers(t.as_bytes(), &mut in_flight, &mut plan, &mut out);
                    }
                    Some(Ok(Message::Binary(b))) => {
                        answered += self.answers(&b, &mut in_flight, &mut plan, &mut out);
                    }
                    Some(Ok(Message::Close(f))) => {
                        out.error = Some(format!("the server closed the seeder's socket: {:?}", f.map(|f| u16::from(f.code))));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        out.error = Some(format!("seeder socket: {e}"));
                        break;
                    }
                    None => {
                        out.error = Some("the seeder's socket ended".into());
                        break;
                    }
                },
                Some((id, ok)) = rest_rx.recv() => {
                    if let Some(op) = in_flight.remove(&id) {
                        answered += 1;
                        if ok { out.acked += 1 } else { out.refused += 1 }
                        plan.done(op);
                    }
                }
                () = tokio::time::sleep(SEED_STALL) => {
                    out.error = Some(format!("no answer for {} s", SEED_STALL.as_secs()));
                    break;
                }
            }
        }
        out.unanswered = in_flight.len() as u64 + (target - planned);
        // A `comment_ack` carries no seq: read on until the broadcasts of
        // the last commands are in.
        let expect = out.before + out.acked as i64;
        let tail_end = Instant::now() + SEED_TAIL;
        while out.error.is_none() && out.newest_seen < expect && Instant::now() < tail_end {
            match tokio::time::timeout_at(tail_end, stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.answers(t.as_bytes(), &mut in_flight, &mut plan, &mut out);
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    self.answers(&b, &mut in_flight, &mut plan, &mut out);
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        if let Ok(ws) = sink.reunite(stream) {
            close(ws).await;
        }
        (self.index, out)
    }

    /// The socket command for `op` (not a status change).
    fn command(&self, id: u64, op: Op) -> ClientMessage {
        let client_msg_id = Some(format!("{}{id}", self.prefix));
        let reaction = |comment_id, emoji: &str| NewReaction {
            comment_id,
            emoji: emoji.into(),
        };
        match op {
            Op::Add | Op::Status(_) => ClientMessage::CommentAdd {
                comment: NewComment {
                    feedback_id: self.member.feedback_id,
                    text: format!(
                        "seeded note {id}: the cut drags here, trim two seconds and hold the wide shot"
                    ),
                    timestamp: Some((id % 3600) as f64),
                    ..Default::default()
                },
                client_msg_id,
            },
            Op::Edit(comment_id) => ClientMessage::CommentEdit {
                edit: CommentEdit {
                    comment_id,
                    text: format!("edited by command {id}: trim three seconds, keep the wide shot"),
                    title: None,
                    section: None,
                },
                client_msg_id,
            },
            Op::React(c, emoji) => ClientMessage::ReactionAdd {
                reaction: reaction(c, emoji),
                client_msg_id,
            },
            Op::Unreact(c, emoji) => ClientMessage::ReactionRemove {
                reaction: reaction(c, emoji),
                client_msg_id,
            },
            Op::Resolve(comment_id) => ClientMessage::CommentResolve {
                comment_id,
                client_msg_id,
            },
            Op::Reopen(comment_id) => ClientMessage::CommentReopen {
                comment_id,
                client_msg_id,
            },
            Op::Delete(comment_id) => ClientMessage::CommentDelete {
                comment_id,
                client_msg_id,
            },
        }
    }

    /// PATCHes the project's feedback item to `status`; the answer comes
    /// back on `done` as (command id, 200 or not).
    fn change_status(
        &self,
        id: u64,
        status: &str,
        done: tokio::sync::mpsc::UnboundedSender<(u64, bool)>,
    ) {
        let Some(http) = self.http.clone() else {
            let _ = done.send((id, false));
            return;
        };
        let url = format!(
            "{}/feedback/item/{}",
            self.run.target.http_base(&self.member),
            self.member.feedback_id
        );
        let token = self.member.token.clone();
        let body = format!(r#"{{"status":"{status}"}}"#);
        tokio::spawn(async move {
            let ok = http
                .patch(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            let _ = done.send((id, ok));
        });
    }

    /// Takes the answers and broadcasts of one frame; returns how many
    /// commands it answered.
    fn answers(
        &self,
        bytes: &[u8],
        in_flight: &mut HashMap<u64, Op>,
        plan: &mut Planner,
        out: &mut Seeded,
    ) -> u64 {
        let encoding = self.run.target.encoding;
        self.run
            .counters
            .bytes_in
            .fetch_add(bytes.len() as u64, Relaxed);
        let Ok(msg) = decode_server(encoding, bytes) else {
            note_error(&self.run, "seeder: a frame that does not decode".into());
            return 0;
        };
        let msgs = match msg {
            ServerMessage::Batch { messages } => messages,
            one => vec![one],
        };
        let mut answered = 0;
        let id_of = |cmid: Option<&str>| cmid?.strip_prefix(&self.prefix)?.parse::<u64>().ok();
        for msg in msgs {
            if let Some(seq) = msg.seq() {
                out.newest_seen = out.newest_seen.max(seq);
                continue;
            }
            match msg {
                ServerMessage::CommentAck(a) => {
                    if let Some(op) =
                        id_of(a.client_msg_id.as_deref()).and_then(|i| in_flight.remove(&i))
                    {
                        answered += 1;
                        out.acked += 1;
                        out.duplicate += u64::from(a.duplicate);
                        plan.added(a.comment_id);
                        plan.done(op);
                    }
                }
                ServerMessage::Ack(a) => {
                    if let Some(op) =
                        id_of(a.client_msg_id.as_deref()).and_then(|i| in_flight.remove(&i))
                    {
                        answered += 1;
                        out.duplicate += u64::from(a.duplicate);
                        match a.seq {
                            Some(seq) => {
                                out.acked += 1;
                                out.newest_seen = out.newest_seen.max(seq);
                            }
                            None => {
                                out.noop += 1;
                                note_error(
                                    &self.run,
                                    format!("seeder: {} changed nothing: {op:?}", a.command),
                                );
                            }
                        }
                        plan.done(op);
                    }
                }
                ServerMessage::Error {
                    message,
                    client_msg_id,
                } => {
                    let op = id_of(client_msg_id.as_deref()).and_then(|i| in_flight.remove(&i));
                    note_error(
                        &self.run,
                        format!("seeder: error {message:?} answering {op:?}"),
                    );
                    if let Some(op) = op {
                        answered += 1;
                        out.refused += 1;
                        plan.done(op);
                    }
                }
                _ => {}
            }
        }
        answered
    }
}
