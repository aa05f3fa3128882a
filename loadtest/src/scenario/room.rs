//! `fanout`, `typing` and `slow`: P projects × M members; in each project
//! the first member sends at `rate` per second for the duration and every
//! member measures end-to-end latency (send → receipt) and counts what it
//! receives against what it should.
//!
//! - `fanout` sends `comment_add`; the send time travels in the comment text,
//!   so latency is measured across processes too. Every member receives each
//!   comment, its author included.
//! - `typing` sends `typing_indicator`, the ephemeral path. Its events carry
//!   no client data, so the sender notes the send time of its k-th indicator
//!   in memory shared with the receivers, and each receiver's k-th
//!   `typing:true` from that project is matched with it (rooms keep order).
//!   Every member but the sender receives each one.
//! - `slow` is `fanout` where a share of each project's members (never the
//!   sender) stop reading after `initial_state`: the server should drop
//!   them as slow consumers while the readers' latency does not move.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vridge_protocol::codec::encode;
use vridge_protocol::{ClientMessage, Encoding, NewComment};

use super::{Ended, read_until};
use crate::classify::{self, Kind};
use crate::clock::unix_ns;
use crate::procstat::{Process, cpu_percent, cpu_us_per_event};
use crate::provisioning::{Member, Project};
use crate::report::Report;
use crate::run::{Pacer, Run, Signal, round1, round2};
use crate::stats::{Counters, LATE_SEND_NS, Percentiles};

/// What the senders send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    Comments,
    Typing,
}

/// What a room scenario does.
#[derive(Debug, Clone, Copy)]
pub struct RoomSpec {
    pub traffic: Traffic,
    pub connect_rate: f64,
    /// Messages per second per project.
    pub rate: f64,
    pub duration: Duration,
    /// Filler bytes added to each comment's text.
    pub text_bytes: usize,
    /// Share of each project's members that never read (0 for fanout/typing).
    pub slow_share: f64,
    /// How long to wait for the last deliveries once sending has ended.
    pub grace: Duration,
}

impl RoomSpec {
    fn name(&self) -> &'static str {
        match (self.traffic, self.slow_share > 0.0) {
            (Traffic::Typing, _) => "typing",
            (Traffic::Comments, false) => "fanout",
            (Traffic::Comments, true) => "slow",
        }
    }

    /// Messages each sender sends.
    fn per_sender(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Sender,
    Reader,
    Slow,
}

/// What one member's task found.
#[derive(Debug, Default)]
struct Outcome {
    project: usize,
    opened: bool,
    sender: bool,
    slow: bool,
    /// Measured events received (comments with a send time, or typing:true
    /// from the sender).
    delivered: u64,
    /// For the sender: messages sent.
    sent: u64,
    /// For a slow member: the server closed it before the end.
    slow_closed: bool,
}

/// Send times of one project's typing indicators, by sequence number.
struct SendLog(Vec<AtomicU64>);

pub async fn run(run: &Run, projects: &[Project], spec: RoomSpec) -> Report {
    let n = spec.per_sender();
    let total: usize = projects.iter().map(|p| p.members.len()).sum();
    let _live = run.live(format!(
        "{} {}×{}",
        spec.name(),
        projects.len(),
        projects.first().map_or(0, |p| p.members.len())
    ));
    let client_start = Process(None).sample();
    let start_sending = Signal::default();
    let stop = Signal::default();
    let run_id = unix_ns() / 1_000_000;
    let ready = Arc::new(AtomicU64::new(0));
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let pacer = Pacer::new(Instant::now(), spec.connect_rate);
    let mut index = 0usize;
    let spread = run.target.spreads_members();
    for (pi, project) in projects.iter().enumerate() {
        let log = Arc::new(SendLog((0..n).map(|_| AtomicU64::new(0)).collect()));
        let sender_node = project.members.first().map(|m| run.target.node_of(m));
        let slow_count =
            ((project.members.len().saturating_sub(1)) as f64 * spec.slow_share).round() as usize;
        let first_slow = project.members.len() - slow_count;
        for (mi, member) in project.members.iter().enumerate() {
            let part = match mi {
                0 => Part::Sender,
                i if i >= first_slow => Part::Slow,
                _ => Part::Reader,
            };
            pacer.wait(index as u64).await;
            let ctx = Member2 {
                run: run.clone(),
                cross_node: spread && sender_node != Some(run.target.node_of(member)),
                member: member.clone(),
                index,
                project: pi,
                part,
                spec,
                log: log.clone(),
                start: start_sending.clone(),
                stop: stop.clone(),
                ready: ready.clone(),
                // Senders are spread over one send interval so that projects
                // do not all send at the same instant.
                offset: Duration::from_secs_f64(if spec.rate > 0.0 {
                    pi as f64 / projects.len() as f64 / spec.rate
                } else {
                    0.0
                }),
                run_id,
                count: n,
            };
            tasks.spawn(ctx.run());
            index += 1;
        }
    }
    while ready.load(Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_from = run.server_sample();
    let client_from = Process(None).sample();
    let sending_since = Instant::now();
    start_sending.fire();
    // The last sender is due at offset + (n-1)/rate < duration.
    tokio::time::sleep(spec.duration).await;
    // Wait for deliveries to stop coming, up to the grace period.
    let grace_end = Instant::now() + spec.grace;
    let mut last = run.counters.delivered.load(Relaxed);
    let mut still_since = Instant::now();
    while Instant::now() < grace_end && still_since.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = run.counters.delivered.load(Relaxed);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let busy_secs = sending_since.elapsed().as_secs_f64();
    let server_to = run.server_sample();
    let client_to = Process(None).sample();
    stop.fire();
    let mut outcomes = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(o) = joined {
            outcomes.push(o);
        }
    }

    // Expected deliveries, per socket: every opened reader (and, for
    // comments, the sender) should see everything its project's sender sent.
    let mut sent_by_project = vec![0u64; projects.len()];
    for o in outcomes.iter().filter(|o| o.sent > 0) {
        sent_by_project[o.project] += o.sent;
    }
    let (mut expected, mut delivered, mut lost, mut extra) = (0u64, 0u64, 0u64, 0u64);
    let (mut slow_members, mut slow_closed) = (0u64, 0u64);
    for o in &outcomes {
        if o.slow {
            slow_members += 1;
            slow_closed += u64::from(o.slow_closed);
            continue;
        }
        // Comments reach their author too; typing never does.
        let receives = spec.traffic == Traffic::Comments || !o.sender;
        let should = if o.opened && receives {
            sent_by_project[o.project]
        } else {
            0
        };
        expected += should;
        delivered += o.delivered;
        lost += should.saturating_sub(o.delivered);
        extra += o.delivered.saturating_sub(should);
    }
    let sent: u64 = sent_by_project.iter().sum();
    let latency = Percentiles::of(&run.latency.merged());
    let mut report = Report::new(spec.name());
    report
        .add("projects", projects.len() as u64)
        .add(
            "members_per_project",
            projects.first().map_or(0, |p| p.members.len()) as u64,
        )
        .add("rate_per_project", spec.rate)
        .add("duration_secs", spec.duration.as_secs_f64())
        .add("sent", sent)
        .add(
            "send_rate",
            round1(sent as f64 / spec.duration.as_secs_f64()),
        )
        .add("late_sends", Counters::load(&run.counters.late_sends))
        .add("expected", expected)
        .add("delivered", delivered)
        .add("lost", lost)
        .add("extra", extra)
        .add(
            "deliveries_per_sec",
            round1(delivered as f64 / spec.duration.as_secs_f64()),
        );
    if spec.traffic == Traffic::Comments {
        report.add("acks", run.counters.received(Kind::CommentAck));
    }
    if spec.slow_share > 0.0 {
        report
            .add("slow_members", slow_members)
            .add("slow_closed_by_server", slow_closed);
    }
    report.latency("latency", latency);
    if spread {
        report
            .latency(
                "latency_same_node",
                Percentiles::of(&run.latency_same_node.merged()),
            )
            .latency(
                "latency_cross_node",
                Percentiles::of(&run.latency_cross_node.merged()),
            );
    }
    if let (Some(a), Some(b)) = (server_from, server_to) {
        report.add("server_cpu_percent", round1(cpu_percent(&a, &b)));
        if let Some(us) = cpu_us_per_event(&a, &b, delivered, run.shards) {
            report.add("server_cpu_us_per_delivery", round2(us));
        }
    }
    if let (Some(a), Some(b)) = (client_from, client_to) {
        report.add("client_cpu_busy_percent", round1(cpu_percent(&a, &b)));
    }
    report.add("busy_secs", round1(busy_secs));
    run.finish_report(&mut report, client_start);
    report
}

/// One member's task.
struct Member2 {
    run: Run,
    /// The project's sender is on another node than this member.
    cross_node: bool,
    member: Member,
    index: usize,
    project: usize,
    part: Part,
    spec: RoomSpec,
    log: Arc<SendLog>,
    start: Signal,
    stop: Signal,
    ready: Arc<AtomicU64>,
    offset: Duration,
    run_id: u64,
    count: u64,
}

impl Member2 {
    async fn run(self) -> Outcome {
        let mut outcome = Outcome {
            project: self.project,
            slow: self.part == Part::Slow,
            sender: self.part == Part::Sender,
            ..Outcome::default()
        };
        let ws = self.run.open(self.index, &self.member).await;
        self.ready.fetch_add(1, Relaxed);
        let Some(ws) = ws else {
            return outcome;
        };
        outcome.opened = true;
        if self.part == Part::Slow {
            self.stop.wait().await;
            outcome.slow_closed = slow_was_closed(ws).await;
            return outcome;
        }
        let (mut sink, mut stream) = ws.split();
        let sender = (self.part == Part::Sender).then(|| {
            let run = self.run.clone();
            let start = self.start.clone();
            let stop = self.stop.clone();
            let log = self.log.clone();
            let (spec, offset, count, run_id) = (self.spec, self.offset, self.count, self.run_id);
            let member = self.member.clone();
            let encoding = run.target.encoding;
            tokio::spawn(async move {
                start.wait().await;
                let pacer = Pacer::new(Instant::now() + offset, spec.rate);
                let mut sent = 0u64;
                for i in 0..count {
                    tokio::select! {
                        biased;
                        () = stop.wait() => break,
                        () = pacer.wait(i) => {}
                    }
                    if Instant::now()
                        .saturating_duration_since(pacer.due(i))
                        .as_nanos() as u64
                        > LATE_SEND_NS
                    {
                        run.counters.late_sends.fetch_add(1, Relaxed);
                    }
                    let now = unix_ns();
                    let msg = match spec.traffic {
                        Traffic::Comments => ClientMessage::CommentAdd {
                            comment: NewComment {
                                feedback_id: member.feedback_id,
                                text: classify::comment_text(now, spec.text_bytes),
                                title: None,
                                section: None,
                                security: None,
                                timestamp: None,
                                ..Default::default()
                            },
                            client_msg_id: Some(format!("lt{run_id}-{i}")),
                        },
                        Traffic::Typing => {
                            if let Some(slot) = log.0.get(i as usize) {
                                slot.store(now, Relaxed);
                            }
                            ClientMessage::TypingIndicator { is_typing: true }
                        }
                    };
                    let Some(frame) = frame(encoding, &msg) else {
                        break;
                    };
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                    sent += 1;
                    run.counters.sent.fetch_add(1, Relaxed);
                }
                // Keep the socket open until the run ends: closing it would
                // end the indicator and the sender's own receipts.
                stop.wait().await;
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                sent
            })
        });
        let run = &self.run;
        let encoding = run.target.encoding;
        let is_sender = self.part == Part::Sender;
        let mut typing_seq = 0usize;
        let mut samples: Vec<u64> = Vec::with_capacity(64);
        let ended = read_until(&mut stream, &self.stop, |frame| {
            let mut counts = [0u64; Kind::ALL.len()];
            let now = unix_ns();
            let mut error: Option<String> = None;
            classify::for_each_event(frame, encoding, |kind, event| {
                counts[kind.index()] += 1;
                match kind {
                    Kind::Comment => {
                        if let Some(sent) = classify::sent_ns(event) {
                            samples.push(now.saturating_sub(sent));
                        }
                    }
                    Kind::Typing if !is_sender && classify::is_typing(event, encoding) => {
                        let sent = self.log.0.get(typing_seq).map_or(0, |s| s.load(Relaxed));
                        if sent > 0 {
                            samples.push(now.saturating_sub(sent));
                        }
                        typing_seq += 1;
                    }
                    Kind::Error if error.is_none() => {
                        error = Some(
                            String::from_utf8_lossy(&event[..event.len().min(120)]).into_owned(),
                        );
                    }
                    _ => {}
                }
            });
            run.counters.add_events(&counts);
            run.counters.bytes_in.fetch_add(frame.len() as u64, Relaxed);
            if !samples.is_empty() {
                outcome.delivered += samples.len() as u64;
                run.counters
                    .delivered
                    .fetch_add(samples.len() as u64, Relaxed);
                run.latency.record_ns(self.index, &samples);
                if run.target.spreads_members() {
                    let split = if self.cross_node {
                        &run.latency_cross_node
                    } else {
                        &run.latency_same_node
                    };
                    split.record_ns(self.index, &samples);
                }
                samples.clear();
            }
            if let Some(e) = error
                && let Ok(mut first) = run.counters.first_error.lock()
            {
                first.get_or_insert(e);
            }
        })
        .await;
        if ended != Ended::Stopped {
            run.counters.dropped.fetch_add(1, Relaxed);
            run.counters.cause(ended.cause());
            self.stop.wait().await;
        }
        if let Some(sender) = sender {
            outcome.sent = sender.await.unwrap_or(0);
        }
        outcome
    }
}

/// Encodes a client message as the frame type its encoding uses.
fn frame(encoding: Encoding, msg: &ClientMessage) -> Option<Message> {
    let bytes = encode(encoding, msg).ok()?;
    match encoding {
        Encoding::Json => Utf8Bytes::try_from(bytes).ok().map(Message::Text),
        Encoding::MsgPack => Some(Message::Binary(bytes)),
    }
}

/// Reads what a slow member left unread, to learn whether the server
/// closed it (a close frame or the end of the stream within a few seconds).
async fn slow_was_closed(mut ws: crate::target::Socket) -> bool {
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}
