//! `listd dkim keygen DOMAIN SELECTOR`: makes a signing key pair, writes the
//! private key (mode 0600, never over an existing file) and prints the DNS
//! TXT record to publish and the `dkim:` lines for listd.yaml. Needs no
//! valid configuration (the key it makes is often what one is missing).

use crate::dkim::{self, KeyAlgorithm};
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum DkimCmd {
    /// Make a key pair for DOMAIN and SELECTOR; print the TXT record to publish.
    Keygen {
        domain: String,
        selector: String,
        /// The key type: ed25519 (small, fast) or rsa (2048 bits, what every verifier knows).
        #[arg(long, value_enum, default_value_t = Algorithm::Rsa)]
        algorithm: Algorithm,
        /// Where to write the private key (default: dkim/DOMAIN.SELECTOR.key beside listd.yaml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

/// Runs a `dkim` subcommand.
pub fn run(config_path: &Path, cmd: DkimCmd) -> super::CliResult {
    let DkimCmd::Keygen {
        domain,
        selector,
        algorithm,
        out,
    } = cmd;
    let domain = domain.to_ascii_lowercase();
    if crate::address::Address::parse(&format!("x@{domain}")).is_err() {
        anyhow::bail!("`{domain}` is not a valid domain name");
    }
    if selector.is_empty()
        || !selector
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        anyhow::bail!("selector `{selector}` is not a DNS label");
    }
    let base = config_path.parent().unwrap_or(Path::new("."));
    let relative = out.unwrap_or_else(|| PathBuf::from(format!("dkim/{domain}.{selector}.key")));
    let path = if relative.is_absolute() {
        relative.clone()
    } else {
        base.join(&relative)
    };
    let algorithm = match algorithm {
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
        Algorithm::Rsa => KeyAlgorithm::Rsa,
    };
    let (pem, txt) =
        dkim::generate(algorithm).map_err(|e| anyhow::anyhow!("key generation: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    write_private(&path, pem.as_bytes())?;
    println!("wrote {} ({})", path.display(), algorithm.dns_tag());
    println!();
    println!("Publish this TXT record:");
    println!();
    println!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        zone_strings(&txt)
    );
    println!();
    println!("and add to listd.yaml:");
    println!();
    println!(
        "dkim:\n  keys:\n    - domain: {domain}\n      selector: {selector}\n      key_file: {}",
        relative.display()
    );
    Ok(())
}

/// Writes a new file readable by its owner only; an existing file is kept.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A TXT value as zone-file strings of at most 255 characters each.
fn zone_strings(txt: &str) -> String {
    txt.as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}
