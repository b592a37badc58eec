//! `listd serve`: run the daemon until SIGTERM or SIGINT, then stop
//! gracefully (finish transactions in flight) and exit 0. SIGHUP, or a
//! `reload` on the control socket (`listd lists create|set|unset`), re-reads
//! the configuration, lists and templates without stopping.
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
        // Handlers first: a signal that arrives once the ports accept
        // connections must stop the daemon gracefully, not kill it.
        let mut signals = Signals::install()?;
        let daemon = crate::daemon::start(config).await?;
        for a in daemon.smtp_addrs() {
            tracing::info!("SMTP on {a}");
        }
        for a in daemon.lmtp_addrs() {
            tracing::info!("LMTP on {a}");
        }
        loop {
            tokio::select! {
                s = signals.wait() => match s {
                    Signal::Stop => break,
                    Signal::Reload => reload(&daemon, path),
                },
                () = daemon.reload_requested() => {
                    tracing::info!("reload asked on the control socket");
                    reload(&daemon, path);
                }
            }
        }
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

/// Re-reads the configuration (SIGHUP). A configuration with errors is
/// refused, each error logged with its file and line, and the daemon keeps
/// running on the one it has.
fn reload(daemon: &crate::daemon::DaemonHandle, path: &Path) {
    match crate::config::Config::load(path) {
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            tracing::error!(
                errors = errors.0.len(),
                "reload refused: the configuration has errors; still running the previous one"
            );
        }
        Ok(config) => match daemon.reload(config) {
            Ok(warnings) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
            }
            Err(e) => tracing::error!("{e}; still running the previous configuration"),
        },
    }
}

/// What a caught signal asks for.
enum Signal {
    Stop,
    Reload,
}

/// SIGTERM, SIGINT (stop) and SIGHUP (reload), caught from the moment they
/// are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn wait(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => {
                tracing::info!("SIGTERM received");
                Signal::Stop
            }
            _ = self.int.recv() => {
                tracing::info!("SIGINT received");
                Signal::Stop
            }
            _ = self.hup.recv() => {
                tracing::info!("SIGHUP received: reloading the configuration");
                Signal::Reload
            }
        }
    }
}
