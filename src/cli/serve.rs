//! `listd serve`: run the daemon until SIGTERM or SIGINT, then stop
//! gracefully (finish transactions in flight) and exit 0.
//!
//! Logging goes through `tracing` to stderr; the filter is `--log-level`,
//! else `$RUST_LOG`, else `info`.

use super::{load_config, CliResult};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Log filter, e.g. `info`, `debug` or `listd=debug,info` [default: $RUST_LOG, then info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// Runs the daemon in the foreground.
pub fn run(path: &Path, args: ServeArgs) -> CliResult {
    init_logging(args.log_level.as_deref())?;
    let config = load_config(path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("listd")
        .build()?;
    rt.block_on(async move {
        let daemon = crate::daemon::start(config).await?;
        for a in daemon.smtp_addrs() {
            tracing::info!("SMTP on {a}");
        }
        for a in daemon.lmtp_addrs() {
            tracing::info!("LMTP on {a:?}");
        }
        wait_for_signal().await?;
        daemon.shutdown().await;
        anyhow::Ok(())
    })
}

fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| anyhow::anyhow!("--log-level `{l}`: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // A second init (tests calling run twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
