//! The command line: `listd serve`, `check`, `lists`, `members`, `queue`.
//! Each subcommand is a thin call into the library. Exit codes: 0 ok,
//! 1 error, 2 usage (clap's own).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "listd", version, about = "A mailing list manager daemon")]
pub struct Cli {
    /// The global config file [default: $LISTD_CONFIG, then ./listd.yaml]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate listd.yaml and every list; exit non-zero on any error.
    Check,
}

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
    match cli.command {
        Command::Check => match crate::config::Config::load(&path) {
            Ok(c) => {
                println!("{}: ok, {} lists", path.display(), c.lists.len());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
    }
}
