//! The `vridge-realtime` binary: parse the command line, set up tracing, run.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use vridge_realtime::auth::{TokenKind, keys};
use vridge_realtime::config::{Cli, Command};
use vridge_realtime::{Application, demo};

/// jemalloc, with background threads giving freed memory back to the
/// system within about a second (`.cargo/config.toml` sets the decay; the
/// `_RJEM_MALLOC_CONF` environment variable overrides it at run time).
///
/// Chosen on evidence (BENCHMARKS.md, "the allocator after a storm"): a
/// reconnect storm briefly holds every socket twice (the old one closing,
/// the new one joining) with thousands of `initial_state` frames in flight.
/// glibc's malloc kept that peak: 13–18 KiB per socket of resident memory
/// after the storm had settled, against 5 KiB for sockets opened at a
/// calm rate. jemalloc with background purging returned to 5.6–5.7 KiB,
/// and the storm itself finished sooner.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    raise_open_file_limit();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Token { user, ttl_secs } => {
            let config = cli.config;
            let ttl = Duration::from_secs(ttl_secs.unwrap_or(config.auth.access_token_ttl_secs));
            let keys = keys::load(&config.auth, &config.data_dir, ttl)?;
            let token = keys
                .mint(user, TokenKind::Access, ttl)
                .map_err(|e| anyhow::anyhow!("minting the token: {e}"))?;
            println!("{token}");
            Ok(())
        }
        Command::Provision(args) => provision(cli.config, args).await,
    }
}

/// Creates load-test users and projects and writes the provisioning file.
async fn provision(
    config: vridge_realtime::Config,
    args: vridge_realtime::config::ProvisionArgs,
) -> anyhow::Result<()> {
    use vridge_realtime::provision::{ProvisionSpec, provision, write_lines};
    std::fs::create_dir_all(&config.data_dir).context("creating the data directory")?;
    let store = vridge_realtime::store::Store::connect(
        &config.database_url(),
        config.store.db_max_connections,
    )
    .await
    .context("opening the store")?;
    // The server's own keys (HS256 secret or RS256 pair), so its tokens verify.
    let access_ttl = Duration::from_secs(config.auth.access_token_ttl_secs);
    let keys = keys::load(&config.auth, &config.data_dir, access_ttl)?;
    let started = std::time::Instant::now();
    let spec = ProvisionSpec {
        projects: args.projects,
        members: args.members,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
    };
    let users = provision(&store, &keys, spec).await?;
    if args.out.as_os_str() == "-" {
        write_lines(&users, std::io::stdout().lock())?;
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        write_lines(&users, file)?;
    }
    store.close().await;
    eprintln!(
        "provisioned {} users in {} projects in {:.1?} ({})",
        users.len(),
        args.projects,
        started.elapsed(),
        args.out.display()
    );
    Ok(())
}

/// Raises the open-file soft limit to the hard limit: every socket is a file,
/// and the usual soft limit (1,024) would cap the server far below what it
/// can hold. Failing to raise it is reported, not fatal.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
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
    tracing::info!(%addr, page = %format_args!("http://{addr}/"), store = app.state().store.engine(), "serving");
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
