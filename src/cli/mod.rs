//! The command line: `listd serve`, `check`, `lists`, `members`, `queue`, `digest`, ...
//! Each subcommand is a thin call into the library, in its own file.
//! Exit codes: 0 ok, 1 error, 2 usage (clap's own).

mod api_token;
mod archive;
mod bounces;
mod check;
mod digest;
mod dkim;
mod held;
mod lists;
mod members;
mod progress;
mod queue;
mod requests;
mod serve;
mod web;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "listd",
    version,
    about = "A Majordomo-style mailing list manager daemon",
    after_help = "Exit codes: 0 success, 1 error, 2 usage error."
)]
pub struct Cli {
    /// The global config file [default: $LISTD_CONFIG, then ./listd.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: SMTP/LMTP intake, pipeline and delivery; stops on SIGTERM/SIGINT, reloads on SIGHUP.
    Serve(serve::ServeArgs),
    /// Validate listd.yaml, every list and the templates; exit 1 on any error.
    Check,
    /// Show the configured lists with their member counts; `create`, `get`, `set` and `unset` a list's settings.
    Lists {
        #[command(subcommand)]
        cmd: Option<lists::ListsCmd>,
    },
    /// Add, remove or list members; change their delivery mode or moderation flag.
    #[command(subcommand)]
    Members(members::MembersCmd),
    /// Bounces: the members that bounced (score, disabled, probes) and the newest recorded bounces.
    Bounces {
        list: String,
        /// How many recorded bounces to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The hold queue: list, show, approve/reject/discard; accept and ban lists.
    Held(held::HeldArgs),
    /// Read a password on stdin and print its argon2 hash (for `moderator_password`).
    HashPassword,
    /// Show the queues (incoming, active, deferred, hold, corrupt, sent, failed); `retry` forces deferred mail due now, `purge` runs the retention clean-up, `corrupt` lists, shows, retries or deletes inbound mail that could not be handled.
    Queue {
        #[command(subcommand)]
        action: Option<queue::QueueCmd>,
    },
    /// The list archives: `export LIST [--since DATE]` to stdout as mbox, `import LIST FILE.mbox`.
    Archive {
        #[command(subcommand)]
        cmd: archive::ArchiveCmd,
    },
    /// Digests: `send LIST` forces an issue out now, `status LIST` shows what is pending.
    Digest {
        #[command(subcommand)]
        cmd: digest::DigestCmd,
    },
    /// Subscription requests waiting for an owner: list them, or approve|reject|discard ID.
    Requests(requests::RequestsArgs),
    /// DKIM: `keygen DOMAIN SELECTOR` makes a signing key and prints the TXT record to publish.
    Dkim {
        #[command(subcommand)]
        cmd: dkim::DkimCmd,
    },
    /// The HTTP side: `token LIST ADDRESS` prints a member's one-click unsubscribe URL, `rotate-secret` makes a new site key for those links.
    Web {
        #[command(subcommand)]
        cmd: web::WebCmd,
    },
    /// Tokens for the REST API: `create NAME --role admin|list:NAME` prints one, `list`, `revoke NAME`.
    ApiToken {
        #[command(subcommand)]
        cmd: api_token::ApiTokenCmd,
    },
}

/// An error a subcommand reports; printed as `listd: ...` with exit code 1.
pub type CliResult = anyhow::Result<()>;

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let path = crate::config::Config::locate(cli.config.as_deref());
    // commands that may change the queues wake a running daemon afterwards
    let wakes = matches!(
        cli.command,
        Command::Members(_)
            | Command::Held(_)
            | Command::Queue { .. }
            | Command::Digest { .. }
            | Command::Requests(_)
    );
    let result = match cli.command {
        Command::Serve(args) => serve::run(&path, args),
        Command::Check => check::run(&path),
        Command::Lists { cmd } => lists::run(&path, cmd),
        Command::Members(cmd) => members::run(&path, cmd),
        Command::Bounces { list, limit } => bounces::run(&path, &list, limit),
        Command::Held(a) => held::run(&path, a, crate::store::now()),
        Command::HashPassword => held::hash_password(),
        Command::Queue { action } => queue::run(&path, action),
        Command::Digest { cmd } => digest::run(&path, cmd),
        Command::Requests(a) => requests::run(&path, a),
        Command::Archive { cmd } => archive::run(&path, cmd),
        Command::Dkim { cmd } => dkim::run(&path, cmd),
        Command::Web { cmd } => web::run(&path, cmd, crate::store::now()),
        Command::ApiToken { cmd } => api_token::run(&path, cmd, crate::store::now()),
    };
    if wakes && result.is_ok() {
        if let Ok(config) = crate::config::Config::load(&path) {
            crate::control::wake(&config.data_dir);
        }
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("listd: {e:#}");
            1
        }
    }
}

/// Loads the configuration or fails with every error, one per line.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    crate::config::Config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

/// The configured list called `name` (any case), as its lower-case name.
pub fn list_name(config: &crate::config::Config, name: &str) -> anyhow::Result<String> {
    let lc = name.to_ascii_lowercase();
    if config.lists.contains_key(&lc) {
        Ok(lc)
    } else {
        anyhow::bail!("no such list `{name}` (see `listd lists`)")
    }
}

/// Opens the store of a configuration.
pub fn open_store(config: &crate::config::Config) -> anyhow::Result<rusqlite::Connection> {
    let p = config.db_path();
    crate::store::open(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}
