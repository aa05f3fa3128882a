//! vridge-realtime: the realtime collaboration server behind the video-feedback
//! product. See README.md for running it and ../DESIGN.md for the architecture.

pub mod app;
pub mod auth;
pub mod broker;
pub mod config;
pub mod demo;
pub mod domain;
pub mod grid;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod periodic;
pub mod provision;
pub mod room;
pub mod store;
pub mod time;
pub mod ws;

pub use app::{AppState, Application};
pub use config::Config;
