//! The `vridge-realtime` binary: parse the command line, set up tracing, run.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use vridge_realtime::auth::{TokenKind, keys};
use vridge_realtime::config::{Cli, Command};
use vridge_realtime::{Application, demo};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Token { user, ttl_secs } => {
            let config = cli.config;
            let ttl = Duration::from_secs(ttl_secs.unwrap_or(config.access_token_ttl_secs));
            let keys = keys::load(&config, ttl)?;
            let token = keys
                .mint(user, TokenKind::Access, ttl)
                .map_err(|e| anyhow::anyhow!("minting the token: {e}"))?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: vridge_realtime::Config) -> anyhow::Result<()> {
    let demo = config.demo;
    let app = Application::build(config)
        .await
        .context("starting the server")?;
    let addr = app.local_addr()?;
    if demo {
        let seeded = demo::seed(app.state(), addr)
            .await
            .context("seeding the demo")?;
        println!("{}", seeded.describe());
    }
    tracing::info!(%addr, store = app.state().store.engine(), "serving");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
