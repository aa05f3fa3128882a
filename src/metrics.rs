//! Metric names and counters in one place, rendered as Prometheus text at
//! `/metrics`. Plain atomics: updating a counter on the hot path is one
//! relaxed add, with no registry lookup and no allocation.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Kinds of client messages counted in `vridge_messages_in_total`.
pub const IN_KINDS: [&str; 6] = [
    "comment_add",
    "typing_indicator",
    "reaction_add",
    "refresh_token",
    "unknown",
    "invalid",
];
/// Kinds of server messages counted in `vridge_messages_out_total`.
pub const OUT_KINDS: [&str; 12] = [
    "initial_state",
    "comment",
    "comment_ack",
    "typing",
    "reaction",
    "feedback_created",
    "status_changed",
    "presence",
    "error",
    "resync",
    "token_expiring",
    "token_refreshed",
];

/// A Prometheus histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit, to stay in integers.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every counter the server keeps. One instance lives in the application state.
#[derive(Debug)]
pub struct Metrics {
    pub sockets_open: AtomicI64,
    pub rooms_active: AtomicI64,
    messages_in: [AtomicU64; IN_KINDS.len()],
    messages_out: [AtomicU64; OUT_KINDS.len()],
    /// Events per frame written by connection writers.
    pub frame_events: Histogram,
    pub slow_consumer_closes: AtomicU64,
    pub rate_limited: AtomicU64,
    pub persist_rows: Histogram,
    pub persist_seconds: Histogram,
    pub persist_failures: AtomicU64,
    pub broker_lost: AtomicU64,
    /// Keepalive pings written, pongs read, and sockets closed for silence:
    /// when sockets drop with 4009, these tell a peer that stopped answering
    /// from pings that went out late or pongs that came back late.
    pub pings_sent: AtomicU64,
    pub pongs_received: AtomicU64,
    pub keepalive_closes: AtomicU64,
    /// Time from writing a ping to reading its pong.
    pub pong_seconds: Histogram,
    /// Connections and REST requests refused or cut by the HTTP layer.
    pub http: HttpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sockets_open: AtomicI64::new(0),
            rooms_active: AtomicI64::new(0),
            messages_in: Default::default(),
            messages_out: Default::default(),
            frame_events: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            slow_consumer_closes: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            persist_rows: Histogram::new(&[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
            persist_seconds: Histogram::new(&[
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            persist_failures: AtomicU64::new(0),
            broker_lost: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            pongs_received: AtomicU64::new(0),
            keepalive_closes: AtomicU64::new(0),
            pong_seconds: Histogram::new(&[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0]),
            http: HttpMetrics::default(),
        }
    }
}

impl Metrics {
    pub fn message_in(&self, kind: &str) {
        // Anything not listed counts as "unknown" (second to last).
        let i = IN_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(IN_KINDS.len() - 2);
        self.messages_in[i].fetch_add(1, Relaxed);
    }

    pub fn messages_out(&self, kind: &str, n: u64) {
        if let Some(i) = OUT_KINDS.iter().position(|k| *k == kind) {
            self.messages_out[i].fetch_add(n, Relaxed);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "vridge_sockets_open",
            "Open feedback sockets.",
            self.sockets_open.load(Relaxed),
        );
        gauge(
            &mut out,
            "vridge_rooms_active",
            "Rooms with at least one member on this node.",
            self.rooms_active.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP vridge_messages_in_total Client messages received, by type.\n# TYPE vridge_messages_in_total counter"
        );
        for (kind, n) in IN_KINDS.iter().zip(&self.messages_in) {
            let _ = writeln!(
                out,
                "vridge_messages_in_total{{type=\"{kind}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vridge_messages_out_total Server messages queued to sockets, by type.\n# TYPE vridge_messages_out_total counter"
        );
        for (kind, n) in OUT_KINDS.iter().zip(&self.messages_out) {
            let _ = writeln!(
                out,
                "vridge_messages_out_total{{type=\"{kind}\"}} {}",
                n.load(Relaxed)
            );
        }
        self.frame_events.render(
            &mut out,
            "vridge_frame_events",
            "Events per written frame (batch size).",
        );
        counter(
            &mut out,
            "vridge_slow_consumer_closes_total",
            "Sockets closed with 4008.",
            self.slow_consumer_closes.load(Relaxed),
        );
        counter(
            &mut out,
            "vridge_rate_limited_total",
            "Client messages refused by a rate limit.",
            self.rate_limited.load(Relaxed),
        );
        self.persist_rows.render(
            &mut out,
            "vridge_persister_batch_rows",
            "Comments per persister flush.",
        );
        self.persist_seconds.render(
            &mut out,
            "vridge_persister_flush_seconds",
            "Persister flush latency.",
        );
        counter(
            &mut out,
            "vridge_persister_failures_total",
            "Persister flushes that failed.",
            self.persist_failures.load(Relaxed),
        );
        counter(
            &mut out,
            "vridge_broker_lost_total",
            "Broker messages known to be lost.",
            self.broker_lost.load(Relaxed),
        );
        counter(
            &mut out,
            "vridge_pings_sent_total",
            "Keepalive pings written.",
            self.pings_sent.load(Relaxed),
        );
        counter(
            &mut out,
            "vridge_pongs_received_total",
            "Pongs read from peers.",
            self.pongs_received.load(Relaxed),
        );
        counter(
            &mut out,
            "vridge_keepalive_closes_total",
            "Sockets closed with 4009 (silent for the pong timeout).",
            self.keepalive_closes.load(Relaxed),
        );
        self.pong_seconds.render(
            &mut out,
            "vridge_pong_seconds",
            "Time from writing a ping to reading its pong.",
        );
        self.http.render(&mut out);
        out
    }
}

/// The accept loop's and REST layer's counters: what a hostile or broken
/// client cost, and what the server refused.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// TCP connections open (HTTP, and sockets upgraded from them).
    pub connections_open: AtomicI64,
    /// Connections closed at once: their address held `--max-connections-per-ip`.
    pub connections_refused: AtomicU64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: AtomicU64,
    /// Accepts that failed because the process or system ran out of files.
    pub accept_fd_exhausted: AtomicU64,
    /// REST requests and upgrades answered 429.
    pub rate_limited: AtomicU64,
    /// Sign-ups and sign-ins answered 503: every hashing slot stayed busy.
    pub hash_busy: AtomicU64,
    /// Comment history pages served from memory, and read from the store.
    pub history_pages_from_memory: AtomicU64,
    pub history_pages_read: AtomicU64,
}

impl HttpMetrics {
    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP vridge_connections_open TCP connections open.\n# TYPE vridge_connections_open gauge\nvridge_connections_open {}",
            self.connections_open.load(Relaxed)
        );
        for (name, help, v) in [
            (
                "vridge_connections_refused_total",
                "Connections closed at once for their address's connection cap.",
                &self.connections_refused,
            ),
            (
                "vridge_header_timeouts_total",
                "Connections closed for not sending a request head in time.",
                &self.header_timeouts,
            ),
            (
                "vridge_accept_fd_exhausted_total",
                "Accepts that failed with EMFILE or ENFILE.",
                &self.accept_fd_exhausted,
            ),
            (
                "vridge_http_rate_limited_total",
                "REST requests and upgrades answered 429.",
                &self.rate_limited,
            ),
            (
                "vridge_password_hash_busy_total",
                "Sign-ups and sign-ins answered 503 (hashing saturated).",
                &self.hash_busy,
            ),
            (
                "vridge_history_pages_from_memory_total",
                "Comment history pages served from memory (their project unchanged).",
                &self.history_pages_from_memory,
            ),
            (
                "vridge_history_pages_read_total",
                "Comment history pages read from the store.",
                &self.history_pages_read,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.frame_events.observe(1.0);
        m.frame_events.observe(3.0);
        m.frame_events.observe(1000.0);
        let text = m.render();
        assert!(
            text.contains("vridge_frame_events_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vridge_frame_events_bucket{le=\"4\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("vridge_frame_events_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("vridge_frame_events_count 3"), "{text}");
    }

    #[test]
    fn unknown_in_kinds_count_as_unknown() {
        let m = Metrics::default();
        m.message_in("dance");
        assert!(
            m.render()
                .contains("vridge_messages_in_total{type=\"unknown\"} 1")
        );
    }
}
