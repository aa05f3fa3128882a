//! CPU time and resident memory of a process, from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux). Used for the server (`--server-pid`) and
//! for the load generator itself, so a reader can tell when the client, not
//! the server, was the bottleneck.

use std::time::Instant;

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, which Linux fixes
/// at 100 for user space on every architecture it runs the load test on.
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// User + system CPU time, in seconds.
    pub cpu_secs: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    pub at: Instant,
}

/// Which process: `None` is this one.
#[derive(Debug, Clone, Copy)]
pub struct Process(pub Option<u32>);

impl Process {
    fn dir(self) -> String {
        match self.0 {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".into(),
        }
    }

    /// Reads the process now; `None` when it is gone or `/proc` is missing.
    pub fn sample(self) -> Option<Sample> {
        let dir = self.dir();
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // The command name may hold spaces: fields are counted after its ')'.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some(Sample {
            cpu_secs: (utime + stime) / TICKS_PER_SEC,
            rss_bytes: rss_kib * 1024,
            at: Instant::now(),
        })
    }
}

/// CPU time between two samples per event, in microseconds: the cost of one
/// delivery (or request), comparable across runs on a shared machine where
/// percentages of a core are not. `shards` load generators split the events
/// evenly, each seeing the whole server's CPU, so each counts its share.
/// `None` when nothing happened.
pub fn cpu_us_per_event(from: &Sample, to: &Sample, events: u64, shards: usize) -> Option<f64> {
    let all_events = events as f64 * shards.max(1) as f64;
    (events > 0).then(|| (to.cpu_secs - from.cpu_secs).max(0.0) * 1e6 / all_events)
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(from: &Sample, to: &Sample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (to.cpu_secs - from.cpu_secs) / wall * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let a = Process(None).sample().expect("/proc/self");
        assert!(a.rss_bytes > 0);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = Process(None).sample().unwrap();
        assert!(b.cpu_secs >= a.cpu_secs);
        assert!(cpu_percent(&a, &b) >= 0.0);
    }

    #[test]
    fn cpu_per_event_counts_every_shards_share() {
        let at = std::time::Instant::now();
        let sample = |cpu_secs| Sample {
            cpu_secs,
            rss_bytes: 0,
            at,
        };
        let (a, b) = (sample(1.0), sample(3.0));
        assert_eq!(cpu_us_per_event(&a, &b, 1_000_000, 1), Some(2.0));
        assert_eq!(cpu_us_per_event(&a, &b, 500_000, 2), Some(2.0));
        assert_eq!(cpu_us_per_event(&a, &b, 0, 1), None);
        assert!(Process(Some(u32::MAX)).sample().is_none());
    }
}
