//! What every scenario shares: the target, counters and histograms, the
//! pacing of connects and sends, the live progress line, opening a socket up
//! to its `initial_state`, and watching the server's and our own CPU and
//! memory.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::classify::{self, Kind};
use crate::procstat::{Process, Sample, cpu_percent};
use crate::provisioning::Member;
use crate::report::Report;
use crate::stats::{Counters, Latency};
use crate::target::{Socket, Target};

/// How long a socket may take from connect to its `initial_state`.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared by every task of one run. Cheap to clone.
#[derive(Clone)]
pub struct Run {
    pub target: Arc<Target>,
    pub counters: Arc<Counters>,
    pub latency: Arc<Latency>,
    /// With members spread over nodes: the same deliveries, split by
    /// whether sender and reader share a node (see [`Target::spreads_members`]).
    pub latency_same_node: Arc<Latency>,
    pub latency_cross_node: Arc<Latency>,
    /// Server processes to watch (`--server-pid`), summed.
    pub server_pids: Arc<Vec<u32>>,
    /// Load generators sharing this run (`--shard I/N`: N), each driving an
    /// even share of it.
    pub shards: usize,
    pub progress: ProgressBar,
}

impl Run {
    pub fn new(target: Target, server_pids: Vec<u32>, show_progress: bool) -> Self {
        let progress = if show_progress {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
        } else {
            ProgressBar::hidden()
        };
        progress.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self {
            target: Arc::new(target),
            counters: Arc::new(Counters::default()),
            latency: Arc::new(Latency::default()),
            latency_same_node: Arc::new(Latency::default()),
            latency_cross_node: Arc::new(Latency::default()),
            server_pids: Arc::new(server_pids),
            shards: 1,
            progress,
        }
    }

    /// Opens socket `index` for `member` and waits for its first frame
    /// (`initial_state`). Counts it as opened, or as failed with its cause.
    pub async fn open(&self, index: usize, member: &Member) -> Option<Socket> {
        let result = tokio::time::timeout(OPEN_TIMEOUT, async {
            let mut ws = self
                .target
                .connect(index, member)
                .await
                .map_err(|e| e.cause())?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        self.count_frame(t.as_bytes());
                        return Ok(ws);
                    }
                    Some(Ok(Message::Binary(b))) => {
                        self.count_frame(&b);
                        return Ok(ws);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(match frame {
                            Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                            None => "closed".into(),
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("{e}")),
                    None => return Err("closed before initial_state".into()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("no initial_state in time".into()));
        match result {
            Ok(ws) => {
                self.counters.opened.fetch_add(1, Relaxed);
                Some(ws)
            }
            Err(cause) => {
                self.counters.failed.fetch_add(1, Relaxed);
                self.counters.cause(cause);
                None
            }
        }
    }

    /// Counts the events of a frame that needs no further inspection.
    pub fn count_frame(&self, frame: &[u8]) {
        let mut counts = [0u64; Kind::ALL.len()];
        classify::for_each_event(frame, self.target.encoding, |k, _| counts[k.index()] += 1);
        self.counters.add_events(&counts);
        self.counters
            .bytes_in
            .fetch_add(frame.len() as u64, Relaxed);
    }

    /// Samples every watched server process, summed; `None` when none is
    /// watched or one cannot be read.
    pub fn server_sample(&self) -> Option<Sample> {
        let mut total: Option<Sample> = None;
        for pid in self.server_pids.iter() {
            let s = Process(Some(*pid)).sample()?;
            total = Some(match total {
                None => s,
                Some(t) => Sample {
                    cpu_secs: t.cpu_secs + s.cpu_secs,
                    rss_bytes: t.rss_bytes + s.rss_bytes,
                    at: s.at,
                },
            });
        }
        total
    }

    /// This run is one of `shards` load generators driving the same servers.
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Starts the live progress line, refreshed until the returned guard drops.
    pub fn live(&self, goal: String) -> LiveGuard {
        let run = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last = (Instant::now(), 0u64, 0u64, Process(None).sample());
            loop {
                tick.tick().await;
                let c = &run.counters;
                let sent = Counters::load(&c.sent);
                let events: u64 = Kind::ALL.iter().map(|k| c.received(*k)).sum();
                let now = Instant::now();
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let me = Process(None).sample();
                let cpu = match (&last.3, &me) {
                    (Some(a), Some(b)) => cpu_percent(a, b),
                    _ => 0.0,
                };
                run.progress.set_message(format!(
                    "{goal} | open {} fail {} drop {} | sent {:.0}/s | recv {:.0} ev/s | client cpu {cpu:.0}%",
                    Counters::load(&c.opened),
                    Counters::load(&c.failed),
                    Counters::load(&c.dropped),
                    (sent - last.1) as f64 / secs,
                    (events - last.2) as f64 / secs,
                ));
                run.progress.tick();
                last = (now, sent, events, me);
            }
        });
        LiveGuard {
            task,
            progress: self.progress.clone(),
        }
    }

    /// Adds what every report carries: connection counts, failure causes,
    /// received events, our own CPU.
    pub fn finish_report(&self, report: &mut Report, client_from: Option<Sample>) {
        let c = &self.counters;
        report
            .add("opened", Counters::load(&c.opened))
            .add("failed", Counters::load(&c.failed))
            .add("dropped", Counters::load(&c.dropped));
        for (cause, n) in c.causes() {
            report.add(format!("cause: {cause}"), n);
        }
        for kind in Kind::ALL {
            let n = c.received(kind);
            if n > 0 {
                report.add(format!("received_{}", kind.name()), n);
            }
        }
        if let Ok(Some(e)) = c.first_error.lock().map(|e| e.clone()) {
            report.add("first_error", e);
        }
        if let (Some(a), Some(b)) = (client_from, Process(None).sample()) {
            report
                .add("client_cpu_percent", round1(cpu_percent(&a, &b)))
                .add("client_rss_mib", round1(b.rss_bytes as f64 / 1048576.0));
        }
    }
}

/// Rounds to one decimal, for percentages and MiB.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Rounds to two decimals, for microseconds per event.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Stops the progress line on drop.
pub struct LiveGuard {
    task: tokio::task::JoinHandle<()>,
    progress: ProgressBar,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.progress.finish_and_clear();
    }
}

/// Spreads `count` events evenly at `rate` per second from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    pub start: Instant,
    pub interval: Duration,
}

impl Pacer {
    pub fn new(start: Instant, rate: f64) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self { start, interval }
    }

    /// When event `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + self.interval.mul_f64(i as f64)
    }

    /// Sleeps until event `i` is due.
    pub async fn wait(&self, i: u64) {
        tokio::time::sleep_until(self.due(i)).await;
    }
}

/// A one-way "now" signal every task can wait for, whenever it starts waiting.
#[derive(Debug, Clone)]
pub struct Signal(tokio::sync::watch::Sender<bool>);

impl Default for Signal {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(false))
    }
}

impl Signal {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`Signal::fire`] has been called.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}
