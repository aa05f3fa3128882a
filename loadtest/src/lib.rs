//! vridge-loadtest: the load generator of the vridge realtime server.
//!
//! It drives any server that speaks the feedback protocol from a
//! provisioning file (JSON lines of users, tokens and projects), over
//! loopback only, in bounded scenarios — `idle`, `fanout`, `typing`,
//! `storm`, `rest`, `slow`, `resume` — and reports latency percentiles from HDR
//! histograms, delivery counts against what was expected, failures by the
//! limit that caused them, and the CPU and memory of the server and of
//! itself. See BENCHMARKS.md for the numbers it produced and how.

pub mod classify;
pub mod cli;
pub mod clock;
pub mod procstat;
pub mod provisioning;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod target;
