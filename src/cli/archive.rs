//! `listd archive export LIST [--since DATE]` writes a list's archive to
//! stdout as one mbox (mboxrd); `listd archive import LIST FILE.mbox` loads
//! an old archive into it without distributing anything (a progress bar on
//! a terminal, with the messages read and their rate) and fills its IMAP
//! search index (`reader::text`). A thin layer over `crate::archive`.
//!
//! Trusts the configuration; the mbox file being imported is untrusted and
//! its errors name the file and line.

use super::{load_config, open_store, CliResult};
use clap::Subcommand;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum ArchiveCmd {
    /// Write LIST's archive to stdout as one mbox, oldest first.
    Export {
        list: String,
        /// Only posts dated on or after DATE (YYYY-MM-DD, UTC, or an RFC 3339 time).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
    /// Load FILE (an mbox) into LIST's archive without distributing it.
    /// Messages already archived (same Message-ID) are skipped.
    Import { list: String, file: PathBuf },
}

pub fn run(path: &Path, cmd: ArchiveCmd) -> CliResult {
    let config = load_config(path)?;
    let list_of = |name: &str| super::list_name(&config, name);
    match cmd {
        ArchiveCmd::Export { list, since } => {
            let list = list_of(&list)?;
            let since = since
                .as_deref()
                .map(crate::archive::parse_since)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let conn = open_store(&config)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = crate::archive::export(
                &config.data_dir,
                &conn,
                &list,
                crate::archive::Select::Since(since),
                &mut out,
            )?;
            out.flush()?;
            eprintln!("listd: exported {n} messages from {list}");
            Ok(())
        }
        ArchiveCmd::Import { list, file } => {
            let list = list_of(&list)?;
            let f = std::fs::File::open(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let pb = super::progress::bar(len, super::progress::Unit::Bytes);
            let mut conn = open_store(&config)?;
            let target = crate::archive::ImportTarget {
                data_dir: &config.data_dir,
                list: &list,
                domain: config.list_domain(&list),
                now: crate::store::now(),
                batch: 500,
            };
            let rate = super::progress::ItemRate::new("messages");
            let stats =
                crate::archive::import(&mut conn, &target, BufReader::new(f), |bytes, msgs| {
                    pb.set_position(bytes);
                    rate.show(&pb, msgs);
                })
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            pb.finish_and_clear();
            println!(
                "imported {} messages into {list}; {} already archived were skipped",
                stats.imported, stats.skipped_duplicates
            );
            // so the first IMAP SEARCH of a big import does not wait for it
            let indexed = crate::reader::text::catch_up(&conn, &config.data_dir, &list)
                .map_err(|e| anyhow::anyhow!("search index of {list}: {e}"))?;
            println!("indexed {indexed} messages of {list} for IMAP SEARCH");
            Ok(())
        }
    }
}
