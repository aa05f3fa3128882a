//! What a run counts and measures, shared by every connection task: atomic
//! counters (per event kind, connections, failures by cause) and latency in
//! HDR histograms. Tasks add a whole frame's worth at once, and histograms
//! are sharded so that tasks on different threads rarely share a lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;

use crate::classify::Kind;

/// Latency is recorded in microseconds, up to a minute, at 3 significant digits.
const MAX_MICROS: u64 = 60_000_000;
const SHARDS: usize = 32;
/// A send this late (10 ms) counts in [`Counters::late_sends`].
pub const LATE_SEND_NS: u64 = 10_000_000;

/// Latency histograms, sharded by connection.
#[derive(Debug)]
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

impl Latency {
    /// Records nanosecond samples from connection `conn`.
    pub fn record_ns(&self, conn: usize, samples: &[u64]) {
        if samples.is_empty() {
            return;
        }
        let Ok(mut h) = self.shards[conn % SHARDS].lock() else {
            return;
        };
        for ns in samples {
            h.saturating_record((ns / 1000).clamp(1, MAX_MICROS));
        }
    }

    /// Every shard merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            if let Ok(h) = shard.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// Percentiles of a histogram in milliseconds, for reports.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Counters of a run. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sockets that completed the handshake and received `initial_state`.
    pub opened: AtomicU64,
    /// Sockets that never opened.
    pub failed: AtomicU64,
    /// Open sockets that ended before the run did.
    pub dropped: AtomicU64,
    /// Messages the load generator sent.
    pub sent: AtomicU64,
    /// Sends that left more than [`LATE_SEND_NS`] after their scheduled
    /// time: the client could not keep its own schedule.
    pub late_sends: AtomicU64,
    /// Measured deliveries (events this run sent and timed).
    pub delivered: AtomicU64,
    /// Events received, by [`Kind`].
    pub received: [AtomicU64; Kind::ALL.len()],
    /// Bytes of frames received.
    pub bytes_in: AtomicU64,
    /// Why sockets failed or dropped, e.g. "EADDRNOTAVAIL", "close 4008".
    causes: Mutex<BTreeMap<String, u64>>,
    /// The first `error` event's text, to show in the report.
    pub first_error: Mutex<Option<String>>,
}

impl Counters {
    pub fn received(&self, kind: Kind) -> u64 {
        self.received[kind.index()].load(Relaxed)
    }

    /// Adds one frame's event counts.
    pub fn add_events(&self, counts: &[u64; Kind::ALL.len()]) {
        for (slot, n) in self.received.iter().zip(counts) {
            if *n > 0 {
                slot.fetch_add(*n, Relaxed);
            }
        }
    }

    /// Counts one failure or drop under `cause`.
    pub fn cause(&self, cause: impl Into<String>) {
        if let Ok(mut causes) = self.causes.lock() {
            *causes.entry(cause.into()).or_insert(0) += 1;
        }
    }

    /// Failure and drop causes with their counts.
    pub fn causes(&self) -> BTreeMap<String, u64> {
        self.causes.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn load(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_merge_across_shards() {
        let lat = Latency::default();
        let samples: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        for (i, chunk) in samples.chunks(100).enumerate() {
            lat.record_ns(i, chunk);
        }
        let p = Percentiles::of(&lat.merged());
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_ms - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max_ms - 1000.0).abs() < 1.0, "{p:?}");
    }
}
