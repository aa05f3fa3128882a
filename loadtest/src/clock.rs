//! The shared clock of latency measurement: nanoseconds since the Unix epoch,
//! which every process on one machine reads alike, so a send time written
//! into a message by one process can be compared with the receive time in
//! another.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
