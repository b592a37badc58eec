//! Configuration: the global `listd.yaml` and one `lists/NAME.yaml` per list,
//! read with `serde_yaml_ng` into typed structs.
//!
//! Trusts nothing in the files: unknown keys, wrong types, bad addresses,
//! bad CIDRs and duplicate lists are errors that name the file, the line and
//! column, and the reason. Loading collects every error instead of stopping
//! at the first, so `listd check` can report them all.

mod auth;
mod edit;
mod error;
mod list;
mod readers;
pub mod schedule;

pub use auth::{AuthConfig, DnsConfig};
pub use edit::{edit_list_key, parse_setting_value, replace_list_file, EditedListFile};
pub use error::{find_line_from, ConfigError, ConfigErrors};
pub use list::{
    Access, DigestConfig, DmarcMitigation, HeaderMatch, ListConfig, NonmemberAction,
    OversizeAction, PostingPolicy, ReplyTo, SenderVerification, SubscriptionPolicy,
    UnsubscribePolicy,
};
pub use readers::{ImapConfig, Pop3Config, IMAP_MIN_IDLE_SECS, POP3_MIN_IDLE_SECS};

use crate::address::Address;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Environment variable naming the global config file.
pub const CONFIG_ENV: &str = "LISTD_CONFIG";

/// The global configuration, `listd.yaml`, plus every list found in `lists_dir`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the file this was loaded from.
    pub path: PathBuf,
    pub domain: String,
    pub data_dir: PathBuf,
    pub lists_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub smtp: SmtpConfig,
    pub lmtp: LmtpConfig,
    pub relay: RelayConfig,
    pub robot: RobotConfig,
    pub delivery: DeliveryConfig,
    /// `bounce:` — bounce scoring, disabling, probes and removal.
    pub bounce: BounceConfig,
    pub web: WebConfig,
    /// `pop3:` — the read-only archive over POP3.
    pub pop3: Pop3Config,
    /// `imap:` — the read-only archive over IMAP.
    pub imap: ImapConfig,
    pub dkim: DkimConfig,
    /// `dns:` — the one resolver (static zone, servers, timeouts).
    pub dns: DnsConfig,
    /// `auth:` — SPF/DKIM/DMARC verification at intake.
    pub auth: AuthConfig,
    /// Where mail to `postmaster@domain` (and `<Postmaster>`) is forwarded;
    /// empty: to the owners of every list (see [`Config::postmaster_recipients`]).
    pub postmaster: Vec<String>,
    pub lists: BTreeMap<String, ListConfig>,
}

/// The on-disk shape of `listd.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    domain: String,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_lists_dir")]
    lists_dir: PathBuf,
    #[serde(default = "default_templates_dir")]
    templates_dir: PathBuf,
    #[serde(default)]
    smtp: SmtpConfig,
    #[serde(default)]
    lmtp: LmtpConfig,
    #[serde(default)]
    relay: RelayConfig,
    #[serde(default)]
    robot: RobotConfig,
    #[serde(default)]
    delivery: DeliveryConfig,
    #[serde(default)]
    bounce: BounceConfig,
    #[serde(default)]
    web: WebConfig,
    #[serde(default)]
    pop3: Pop3Config,
    #[serde(default)]
    imap: ImapConfig,
    #[serde(default)]
    dkim: DkimConfig,
    #[serde(default)]
    dns: DnsConfig,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    postmaster: Vec<String>,
}

fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_lists_dir() -> PathBuf {
    "lists".into()
}
fn default_templates_dir() -> PathBuf {
    "templates".into()
}

/// `smtp:` — the ESMTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `host:port` pairs to listen on.
    pub listen: Vec<String>,
    /// Name used in the greeting, EHLO reply and Received: headers.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: u64,
    /// Concurrent connections; one more gets 421.
    pub max_connections: usize,
    /// Concurrent connections from one client IP outside `trusted_networks`
    /// (Postfix's `smtpd_client_connection_count_limit`); one more gets 421.
    /// 0: no per-client limit.
    pub max_connections_per_client: usize,
    /// The same for one client IP inside `trusted_networks` (the MTA in
    /// front of listd), higher. 0: no limit.
    pub max_connections_per_trusted_client: usize,
    /// CIDRs whose clients count as `trusted` for EXPN/VRFY policies.
    pub trusted_networks: Vec<String>,
    /// Seconds of silence before the session gets 421 and is closed.
    pub idle_timeout_secs: u64,
    /// Seconds from the first byte of a command line until the whole line
    /// must have arrived (Postfix's per-record deadline); also the grace of
    /// DATA before `min_data_rate` counts. Past it: 421 and close.
    pub command_deadline_secs: u64,
    /// Bytes per second DATA must average: it may take
    /// `command_deadline_secs` plus one second per `min_data_rate` bytes
    /// received; slower gets 421, is closed and nothing of it is stored.
    /// 0: no minimum.
    pub min_data_rate: u64,
    /// Longest session in seconds; then 421 and close (0: no cap).
    pub max_session_secs: u64,
    /// RCPT commands accepted per transaction (452 beyond).
    pub max_recipients: usize,
    /// Errors in a row before the session gets 421 and is closed.
    pub max_errors: u32,
    /// Commands per connection per minute before the session is slowed with 421.
    pub max_commands_per_minute: u32,
    /// Most addresses an EXPN answer lists; a bigger list gets 550 5.3.4
    /// (the expansion stops there, so EXPN never holds a big list in memory).
    pub expn_max_members: usize,
    /// Incoming rows waiting for the pipeline above which a session pauses
    /// before it commits a message (Postfix's `in_flow_delay`; the default
    /// is Postfix's active queue limit). 0: never pause.
    pub in_flow_backlog: u64,
    /// Longest such pause per message, in milliseconds; the message is
    /// then taken anyway (mail is never refused for it).
    pub in_flow_delay_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec!["127.0.0.1:2525".into()],
            hostname: "localhost".into(),
            max_message_size: 10 * 1024 * 1024,
            max_connections: 256,
            max_connections_per_client: 32,
            max_connections_per_trusted_client: 128,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            idle_timeout_secs: 300,
            command_deadline_secs: 60,
            min_data_rate: 1024,
            max_session_secs: 3600,
            max_recipients: 100,
            max_errors: 10,
            max_commands_per_minute: 6000,
            expn_max_members: 100_000,
            in_flow_backlog: 20_000,
            in_flow_delay_ms: 1000,
        }
    }
}

/// `lmtp:` — the LMTP listener (TCP `host:port` or a unix socket path).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    pub listen: Vec<String>,
}

/// How the outbound relay connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    #[default]
    None,
    Starttls,
    Tls,
}

/// Where outbound mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelayMode {
    /// To the relay MTA at `relay.host` (the default: Postfix in front).
    #[default]
    Relay,
    /// Straight to each recipient domain's mail exchangers (MX, else A/AAAA).
    Mx,
}

/// `relay:` — the MTA that delivers what listd sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// `relay` (to `host`) or `mx` (direct delivery; `host`, `tls` and AUTH unused).
    pub mode: RelayMode,
    /// In `mx` mode: connections open at once to one recipient domain.
    pub mx_connections_per_domain: usize,
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// RCPTs per SMTP transaction.
    pub max_recipients: usize,
    /// Parallel connections to the relay.
    pub connections: usize,
    /// Seconds to wait for any one relay reply.
    pub timeout_secs: u64,
    /// Name listd gives in its EHLO to the relay (defaults to smtp.hostname).
    pub helo_name: Option<String>,
    /// Pipeline MAIL, RCPTs and DATA (RFC 2920) when the relay offers PIPELINING.
    pub pipelining: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            mode: RelayMode::Relay,
            mx_connections_per_domain: 2,
            host: "127.0.0.1".into(),
            port: 25,
            tls: RelayTls::None,
            username: None,
            password: None,
            max_recipients: 100,
            connections: 4,
            timeout_secs: 60,
            helo_name: None,
            pipelining: true,
        }
    }
}

/// `robot:` — the command robot's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RobotConfig {
    /// Replies sent to one mailbox per hour (every spelling of it: case,
    /// `+tag`/`-tag`, dots); beyond that they are dropped and logged.
    pub replies_per_hour: u32,
    /// Replies sent to addresses of one domain per hour.
    pub replies_per_domain_per_hour: u32,
    /// Replies the robot sends per hour in all.
    pub replies_per_hour_total: u32,
    /// Archive months (`get`) mailed to one mailbox per day; each also
    /// counts as a reply.
    pub get_per_day: u32,
    /// Notices to one poster's mailbox per day (held, rejected, expired);
    /// beyond that the post is still held or rejected, untold.
    pub poster_notices_per_day: u32,
    /// Robot mails to one list's owners per hour (approval requests,
    /// join/leave notices); beyond that they are not sent and logged, and
    /// requests still wait in `listd requests`. Stops a flood of forged
    /// requests from flooding the owners.
    pub owner_mails_per_hour: u32,
    /// Days a confirmation token stays valid.
    pub token_expiry_days: u32,
    /// Non-command lines tolerated before the robot stops reading.
    pub max_bad_lines: u32,
    /// Command mails larger than this are answered with a refusal, not parsed.
    pub max_command_mail_size: u64,
    /// The largest archive month `get LIST YYYY-MM` mails (bytes of mbox).
    pub max_get_size: u64,
    /// Envelope sender of site-wide robot mail (replies from `majordomo@`
    /// that concern no one list); "" sends them with the null sender `<>`.
    /// Mail about a list always uses `NAME-bounces@`.
    pub bounce_address: String,
}

impl Default for RobotConfig {
    fn default() -> Self {
        RobotConfig {
            replies_per_hour: 10,
            replies_per_domain_per_hour: 100,
            replies_per_hour_total: 1000,
            get_per_day: 5,
            poster_notices_per_day: 5,
            owner_mails_per_hour: 60,
            token_expiry_days: 7,
            max_bad_lines: 25,
            max_command_mail_size: 256 * 1024,
            max_get_size: 10 * 1024 * 1024,
            bounce_address: String::new(),
        }
    }
}

/// `delivery:` — retry schedule of the outbound queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// First retry delay of a deferred recipient, seconds.
    pub retry_initial_secs: u64,
    /// Longest delay between two tries, seconds.
    pub retry_max_secs: u64,
    /// A recipient still deferred after this many hours is given up (bounced).
    pub give_up_hours: u64,
    /// Finished queue rows and the bodies nothing refers to any more are
    /// deleted this many days after they finished (0: keep everything).
    pub retain_days: u64,
    /// Finished incoming rows, and the received bodies only they refer to,
    /// go sooner: this many hours after they finished (never later than
    /// `retain_days`). A distributed post then keeps one copy in the
    /// database, the decorated one its delivery uses.
    pub retain_incoming_hours: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_initial_secs: 300,
            retry_max_secs: 1800,
            give_up_hours: 120,
            retain_days: 30,
            retain_incoming_hours: 1,
        }
    }
}

/// `bounce:` — what bounces do to a member: a hard bounce (5.1.x) counts
/// 1.0, any other 1.0 × `soft_weight`, at most one a day; at `threshold`
/// the member is disabled, probed `probes` times every `probe_interval_days`
/// and then removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BounceConfig {
    /// The score at which a member is disabled (gets no mail).
    pub threshold: f64,
    /// What a soft bounce (not a bad mailbox: full, a 4xx given up) counts.
    pub soft_weight: f64,
    /// A score with no bounce for this many days starts again from 0.
    pub stale_days: u32,
    /// Notices with a re-enable token a disabled member gets before removal
    /// (the first at disabling); 0 removes at the first due probe.
    pub probes: u32,
    /// Days between two probes, and from the last probe to removal.
    pub probe_interval_days: u32,
    /// Days a bounce's body is kept (0: kept as long as the row); the row
    /// and the score stay.
    pub retain_days: u32,
    /// Spam/policy refusals on one list within a day that make a report to
    /// the owners (at most one report a day; 0: never).
    pub policy_report_after: u32,
}

impl Default for BounceConfig {
    fn default() -> Self {
        BounceConfig {
            threshold: 5.0,
            soft_weight: 0.5,
            stale_days: 7,
            probes: 3,
            probe_interval_days: 7,
            retain_days: 30,
            policy_report_after: 3,
        }
    }
}

/// `web:` — the HTTP listener (one-click unsubscribe, `/healthz`) and the
/// public URLs advertised in list headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Base of the archive URL advertised in List-Archive, e.g. `https://lists.example.org/archive`.
    pub archive_url: Option<String>,
    /// Base of an HTTPS one-click unsubscribe URL (RFC 8058), e.g. `https://lists.example.org/unsubscribe`.
    pub unsubscribe_url: Option<String>,
    /// `host:port` the HTTP server listens on; absent: no HTTP server.
    pub listen: Option<String>,
    /// The server's public base URL (https; a loopback `http://` URL is
    /// accepted with a warning). With it, lists with `personalize: true`
    /// give each member their own one-click unsubscribe link.
    pub public_url: Option<String>,
    /// Days a replaced site key still verifies the links made with it.
    pub token_grace_days: u32,
    /// Seconds a client has to send a request's head (slowloris); then the
    /// connection is closed.
    pub header_timeout_secs: u64,
    /// Site admins of the web admin and the API: every list, every action.
    pub admins: Vec<String>,
    /// Days a web login session lasts.
    pub session_days: u32,
    /// `POST /login` attempts per address per hour (0: no limit).
    pub login_per_address_per_hour: u32,
    /// `POST /login` attempts per client IP per hour (0: no limit).
    pub login_per_ip_per_hour: u32,
    /// Subscribe requests from the web form per client IP per hour (0: no limit).
    pub subscribe_per_ip_per_hour: u32,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For:` names the client:
    /// from them the client is the last address there that is not itself
    /// a trusted proxy. From anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            archive_url: None,
            unsubscribe_url: None,
            listen: None,
            public_url: None,
            token_grace_days: 30,
            header_timeout_secs: 10,
            admins: Vec::new(),
            session_days: 7,
            login_per_address_per_hour: 5,
            login_per_ip_per_hour: 30,
            subscribe_per_ip_per_hour: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

impl WebConfig {
    /// Whether `addr` is one of `admins`.
    pub fn is_admin(&self, addr: &str) -> bool {
        let k = crate::address::address_key(addr);
        self.admins
            .iter()
            .any(|a| crate::address::address_key(a) == k)
    }

    /// The warning a loopback `http://` `public_url` deserves, if it is one.
    pub fn public_url_warning(&self) -> Option<String> {
        let u = self.public_url.as_deref()?;
        u.starts_with("http://").then(|| {
            format!(
                "web.public_url `{u}` is plain http on loopback: fine for trials, but mail \
                 providers only honour https one-click unsubscribe links"
            )
        })
    }
}

/// Why `url` cannot be `web.public_url`, if it cannot: an https URL, or
/// http to a loopback host; nothing a header could not carry inside `<>`.
pub fn bad_public_url(url: &str) -> Option<String> {
    if !url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"<>\"\\,^`{|}".contains(&b))
    {
        return Some(format!(
            "web.public_url `{url}` must be a plain URL (printable ASCII, no spaces, quotes, commas or angle brackets)"
        ));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    match scheme {
        "https" if !host.is_empty() => None,
        "http" if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) => None,
        _ => Some(format!(
            "web.public_url `{url}` must be an https:// URL (http:// only to 127.0.0.1 or localhost, for trials)"
        )),
    }
}

/// A list's RFC 2369 / 2919 / 8058 field values ([`Config::list_fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFields {
    /// `description <NAME.domain>`.
    pub id: String,
    pub help: String,
    pub subscribe: String,
    pub unsubscribe: String,
    /// Whether `List-Unsubscribe-Post: List-Unsubscribe=One-Click` goes with it.
    pub one_click: bool,
    pub post: String,
    pub owner: String,
    pub archive: Option<String>,
    /// The `X-Loop` value: the list's address.
    pub loop_address: String,
}

/// `dkim:` — the keys listd signs its outgoing mail with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// One key per signing domain (`listd dkim keygen DOMAIN SELECTOR`).
    pub keys: Vec<DkimKeyConfig>,
}

/// One DKIM signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The signing domain (`d=`): the list domain, or a From domain listd sends as.
    pub domain: String,
    /// The selector (`s=`): the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The private key (PKCS#8 or PKCS#1 PEM; Ed25519 or RSA), relative to listd.yaml's folder.
    pub key_file: PathBuf,
}

/// Every DKIM key file must hold a usable key, and no domain has two keys.
fn validate_dkim(path: &Path, text: &str, dkim: &DkimConfig, errors: &mut Vec<ConfigError>) {
    let mut seen = std::collections::BTreeSet::new();
    for k in &dkim.keys {
        let at = error::find_line(text, &format!("selector: {}", k.selector))
            .or_else(|| error::find_line(text, "dkim:"));
        if !seen.insert(k.domain.to_ascii_lowercase()) {
            errors.push(ConfigError::new(
                path,
                at,
                format!(
                    "dkim.keys: a second key for {} (one key signs per domain)",
                    k.domain
                ),
            ));
        }
        if Address::parse(&format!("x@{}", k.domain)).is_err() {
            errors.push(ConfigError::new(
                path,
                at,
                format!("dkim.keys: `{}` is not a valid domain name", k.domain),
            ));
        }
        if k.selector.is_empty()
            || !k
                .selector
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            errors.push(ConfigError::new(
                path,
                at,
                format!("dkim.keys: selector `{}` is not a DNS label", k.selector),
            ));
        }
        if let Err(why) = crate::dkim::check_key_file(&k.key_file) {
            errors.push(ConfigError::new(
                path,
                at,
                format!("dkim key file {}: {why}", k.key_file.display()),
            ));
        }
    }
}

impl Config {
    /// The site's DKIM signer (no keys: signs nothing).
    pub fn dkim_signer(&self) -> Result<crate::dkim::Signer, String> {
        crate::dkim::Signer::load(
            self.dkim
                .keys
                .iter()
                .map(|k| (k.domain.as_str(), k.selector.as_str(), k.key_file.as_path())),
        )
    }

    /// Where the config file is: `--config`, then `$LISTD_CONFIG`, then `./listd.yaml`.
    pub fn locate(cli: Option<&Path>) -> PathBuf {
        if let Some(p) = cli {
            return p.to_path_buf();
        }
        if let Some(p) = std::env::var_os(CONFIG_ENV) {
            if !p.is_empty() {
                return PathBuf::from(p);
            }
        }
        PathBuf::from("listd.yaml")
    }

    /// Loads the global file and every list, returning all errors found.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                path,
                None,
                format!(
                    "cannot read: {e} (name the configuration with --config PATH or ${CONFIG_ENV})"
                ),
            )])
        })?;
        let raw: RawConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigErrors(vec![ConfigError::from_yaml(path, &e)]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        validate_global(path, &text, &raw, &mut errors);
        let mut raw = raw;
        for k in &mut raw.dkim.keys {
            k.key_file = resolve(&k.key_file);
        }
        validate_dkim(path, &text, &raw.dkim, &mut errors);
        readers::validate(path, &text, &raw.pop3, &raw.imap, &mut errors);
        for p in [&mut raw.imap.tls_cert, &mut raw.imap.tls_key]
            .into_iter()
            .flatten()
        {
            *p = resolve(p);
        }
        let mut dns = raw.dns.clone();
        dns.load_zone(path, &text, &resolve, &mut errors);
        auth::validate(path, &text, &raw.auth, &mut errors);
        let lists_dir = resolve(&raw.lists_dir);
        let lists = list::load_all(&lists_dir, &raw.domain, &mut errors);
        for a in &raw.postmaster {
            let own = Address::parse(a).is_ok_and(|addr| {
                addr.local().eq_ignore_ascii_case("postmaster")
                    && lists.values().any(|l| {
                        l.domain
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case(addr.domain()))
                    })
            });
            if own {
                errors.push(ConfigError::new(
                    path,
                    error::find_line(&text, a).or_else(|| error::find_line(&text, "postmaster:")),
                    format!(
                        "postmaster: `{a}` is listd's own postmaster address at a list domain; forwarding to it would loop (name a mailbox elsewhere)"
                    ),
                ));
            }
        }

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            path: path.to_path_buf(),
            domain: raw.domain.to_ascii_lowercase(),
            data_dir: resolve(&raw.data_dir),
            lists_dir,
            templates_dir: resolve(&raw.templates_dir),
            smtp: raw.smtp,
            lmtp: raw.lmtp,
            relay: raw.relay,
            robot: raw.robot,
            delivery: raw.delivery,
            bounce: raw.bounce,
            web: raw.web,
            pop3: raw.pop3,
            imap: raw.imap,
            dkim: raw.dkim,
            dns,
            auth: raw.auth,
            postmaster: raw.postmaster,
            lists,
        })
    }

    /// The list with this name (names are lower-case).
    pub fn list(&self, name: &str) -> Option<&ListConfig> {
        self.lists.get(&name.to_ascii_lowercase())
    }

    /// The domain of list `name`'s addresses: its own `domain:`, else the
    /// site's `domain` (also for a name that is no list).
    pub fn list_domain(&self, name: &str) -> &str {
        self.list(name)
            .and_then(|l| l.domain.as_deref())
            .unwrap_or(&self.domain)
    }

    /// Every domain listd receives mail for: the site's `domain` first,
    /// then each list domain, each once.
    pub fn served_domains(&self) -> Vec<&str> {
        let mut out = vec![self.domain.as_str()];
        for d in self.lists.values().filter_map(|l| l.domain.as_deref()) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// Whether listd receives mail for `domain` (any case).
    pub fn serves_domain(&self, domain: &str) -> bool {
        self.served_domains()
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// `NAME@domain`, at the list's domain.
    pub fn list_address(&self, name: &str) -> String {
        format!("{name}@{}", self.list_domain(name))
    }

    /// The RFC 2369 / 2919 / 8058 field values every message of `list`
    /// carries, posts and digests alike (unfolded).
    pub fn list_fields(&self, list: &ListConfig) -> ListFields {
        let name = &list.name;
        let addr = |suffix: &str| self.list_suffix_address(name, suffix);
        let list_address = self.list_address(name);
        let mut unsubscribe = format!("<mailto:{}>", addr("leave"));
        let one_click = if let Some(u) = &self.web.unsubscribe_url {
            unsubscribe = format!("<{}/{name}>, {unsubscribe}", u.trim_end_matches('/'));
            u.starts_with("https://")
        } else {
            false
        };
        ListFields {
            id: crate::mime::list_id::field_value(
                &list.description,
                &crate::mime::list_id::id(name, self.list_domain(name)),
            ),
            help: format!("<mailto:{}?subject=help>", addr("request")),
            subscribe: format!("<mailto:{}>", addr("join")),
            unsubscribe,
            one_click,
            post: if list.posting == PostingPolicy::Announce {
                "NO".to_string()
            } else {
                format!("<mailto:{list_address}>")
            },
            owner: format!("<mailto:{}>", addr("owner")),
            archive: self
                .web
                .archive_url
                .as_ref()
                .map(|u| format!("<{}/{name}/>", u.trim_end_matches('/'))),
            loop_address: list_address,
        }
    }

    /// `NAME-SUFFIX@domain` at the list's domain, e.g.
    /// `dev-request@lists.example.org`.
    pub fn list_suffix_address(&self, name: &str, suffix: &str) -> String {
        format!("{name}-{suffix}@{}", self.list_domain(name))
    }

    /// `postmaster@domain`, the RFC 5321 §4.5.1 address every site accepts.
    pub fn postmaster_address(&self) -> String {
        format!("postmaster@{}", self.domain)
    }

    /// Who gets mail for `postmaster@`: the `postmaster:` addresses, or, when
    /// none are configured, the owners of every list (each once, in list
    /// order). Empty only when neither exists.
    pub fn postmaster_recipients(&self) -> Vec<String> {
        if !self.postmaster.is_empty() {
            return self.postmaster.clone();
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for owner in self.lists.values().flat_map(|l| l.owners.iter()) {
            let key = Address::parse(owner)
                .map(|a| a.key())
                .unwrap_or_else(|_| owner.clone());
            if seen.insert(key) {
                out.push(owner.clone());
            }
        }
        out
    }

    /// The authserv-id our `Authentication-Results:` fields carry:
    /// `auth.authserv_id`, else `smtp.hostname`.
    pub fn authserv_id(&self) -> &str {
        self.auth
            .authserv_id
            .as_deref()
            .unwrap_or(&self.smtp.hostname)
    }

    /// The path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("listd.db")
    }

    /// The parsed trusted networks (validated at load time).
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.smtp
            .trusted_networks
            .iter()
            .filter_map(|s| parse_cidr(s).ok())
            .collect()
    }

    /// Whether a client IP is in `smtp.trusted_networks`.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_networks().iter().any(|n| n.contains(&ip))
    }

    /// A configuration built in code (tests, benches): the defaults for
    /// everything, the given domain and data dir, and no lists.
    pub fn for_tests(domain: &str, dir: &Path) -> Config {
        Config {
            path: dir.join("listd.yaml"),
            domain: domain.to_string(),
            data_dir: dir.join("data"),
            lists_dir: dir.join("lists"),
            templates_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"),
            smtp: SmtpConfig::default(),
            lmtp: LmtpConfig::default(),
            relay: RelayConfig::default(),
            robot: RobotConfig::default(),
            delivery: DeliveryConfig::default(),
            bounce: BounceConfig::default(),
            web: WebConfig::default(),
            pop3: Pop3Config::default(),
            imap: ImapConfig::default(),
            dkim: DkimConfig::default(),
            dns: DnsConfig::default(),
            auth: AuthConfig::default(),
            postmaster: Vec::new(),
            lists: BTreeMap::new(),
        }
    }
}

/// Parses a CIDR, accepting a bare IP as a host route.
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("`{s}` is not a CIDR network (like 127.0.0.0/8)"))
}

fn validate_global(path: &Path, text: &str, raw: &RawConfig, errors: &mut Vec<ConfigError>) {
    let at = |needle: &str| error::find_line(text, needle);
    if Address::parse(&format!("x@{}", raw.domain)).is_err() {
        errors.push(ConfigError::new(
            path,
            at("domain:"),
            format!("domain `{}` is not a valid domain name", raw.domain),
        ));
    }
    for n in raw
        .smtp
        .trusted_networks
        .iter()
        .chain(&raw.web.trusted_proxies)
    {
        if let Err(e) = parse_cidr(n) {
            errors.push(ConfigError::new(path, at(n), e));
        }
    }
    for l in &raw.smtp.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            errors.push(ConfigError::new(
                path,
                at(l),
                format!("smtp.listen `{l}` is not host:port (like 127.0.0.1:2525)"),
            ));
        }
    }
    for l in &raw.lmtp.listen {
        if !l.starts_with('/') && l.parse::<std::net::SocketAddr>().is_err() {
            errors.push(ConfigError::new(
                path,
                at(l),
                format!("lmtp.listen `{l}` is neither host:port nor an absolute unix socket path"),
            ));
        }
    }
    let positive = [
        ("max_message_size", raw.smtp.max_message_size == 0),
        ("max_connections", raw.smtp.max_connections == 0),
        ("command_deadline_secs", raw.smtp.command_deadline_secs == 0),
        ("max_recipients", raw.relay.max_recipients == 0),
        ("connections", raw.relay.connections == 0),
        (
            "mx_connections_per_domain",
            raw.relay.mx_connections_per_domain == 0,
        ),
        ("header_timeout_secs", raw.web.header_timeout_secs == 0),
        ("session_days", raw.web.session_days == 0),
    ];
    // a threshold of 0 would disable a member on any bounce, NaN never
    let b = &raw.bounce;
    if !(b.threshold > 0.0 && b.threshold.is_finite()) {
        errors.push(ConfigError::new(
            path,
            at("threshold:"),
            format!(
                "bounce.threshold must be a number greater than 0, not {}",
                b.threshold
            ),
        ));
    }
    if !(b.soft_weight >= 0.0 && b.soft_weight.is_finite()) {
        errors.push(ConfigError::new(
            path,
            at("soft_weight:"),
            format!(
                "bounce.soft_weight must be 0 or more, not {}",
                b.soft_weight
            ),
        ));
    }
    for (key, zero) in positive {
        if zero {
            errors.push(ConfigError::new(
                path,
                at(&format!("{key}:")),
                format!("{key} must be greater than 0"),
            ));
        }
    }
    if !raw.robot.bounce_address.is_empty() {
        if let Err(e) = Address::parse(&raw.robot.bounce_address) {
            errors.push(ConfigError::new(
                path,
                at("bounce_address"),
                format!(
                    "robot.bounce_address `{}` is not a valid address: {e} (leave it out for the null sender)",
                    raw.robot.bounce_address
                ),
            ));
        }
    }
    for a in &raw.postmaster {
        let why = match Address::parse(a) {
            Err(e) => Some(format!("postmaster: `{a}` is not a valid address: {e}")),
            Ok(addr)
                if addr.domain().eq_ignore_ascii_case(&raw.domain)
                    && addr.local().eq_ignore_ascii_case("postmaster") =>
            {
                Some(format!(
                    "postmaster: `{a}` is listd's own postmaster address; forwarding to it would loop (name a mailbox elsewhere)"
                ))
            }
            Ok(_) => None,
        };
        if let Some(why) = why {
            errors.push(ConfigError::new(
                path,
                at(a).or_else(|| at("postmaster:")),
                why,
            ));
        }
    }
    if raw.relay.username.is_some() != raw.relay.password.is_some() {
        errors.push(ConfigError::new(
            path,
            at("relay:"),
            "relay.username and relay.password go together".into(),
        ));
    }
    if let Some(l) = &raw.web.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            errors.push(ConfigError::new(
                path,
                at(l),
                format!("web.listen `{l}` is not host:port (like 127.0.0.1:8080)"),
            ));
        }
    }
    for a in &raw.web.admins {
        if crate::address::Address::parse(a).is_err() {
            errors.push(ConfigError::new(
                path,
                at(a),
                format!("web.admins: `{a}` is not an email address"),
            ));
        }
    }
    if let Some(why) = raw.web.public_url.as_deref().and_then(bad_public_url) {
        errors.push(ConfigError::new(path, at("public_url"), why));
    }
    if let Some(u) = &raw.web.unsubscribe_url {
        if !u.starts_with("https://") {
            errors.push(ConfigError::new(
                path,
                at("unsubscribe_url"),
                "web.unsubscribe_url must be an https:// URL (RFC 8058)".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_https_or_loopback_http_and_header_safe() {
        for ok in [
            "https://lists.example.org",
            "https://lists.example.org/web/",
            "http://127.0.0.1:8080",
            "http://localhost:8080/x",
            "http://[::1]:8080",
        ] {
            assert_eq!(bad_public_url(ok), None, "{ok}");
        }
        for bad in [
            "http://lists.example.org",
            "http://127.0.0.1.evil.org",
            "ftp://x",
            "lists.example.org",
            "https://",
            "https://x/a>b",
            "https://x/a, <mailto:y>",
            "https://x/\r\nBcc: y",
        ] {
            assert!(bad_public_url(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn a_bad_public_url_names_the_file_and_line_and_loopback_warns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lists")).unwrap();
        let path = dir.path().join("listd.yaml");
        std::fs::write(
            &path,
            "domain: l.example.org\nweb:\n  listen: 127.0.0.1:8080\n  public_url: http://l.example.org\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("listd.yaml:4:"), "{err}");
        assert!(err.contains("must be an https:// URL"), "{err}");
        std::fs::write(
            &path,
            "domain: l.example.org\nweb:\n  listen: nowhere\n  public_url: http://127.0.0.1:8080\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("listd.yaml:3:") && err.contains("web.listen"),
            "{err}"
        );
        std::fs::write(
            &path,
            "domain: l.example.org\nweb:\n  public_url: http://127.0.0.1:8080\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.web.token_grace_days, 30);
        assert!(c.web.public_url_warning().unwrap().contains("plain http"));
    }

    #[test]
    fn web_admins_are_addresses_and_sessions_last_some_days() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lists")).unwrap();
        let path = dir.path().join("listd.yaml");
        std::fs::write(
            &path,
            "domain: l.example.org\nweb:\n  admins: [root@l.example.org, nobody]\n  session_days: 0\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("web.admins: `nobody` is not an email address"),
            "{err}"
        );
        assert!(err.contains("session_days"), "{err}");
        std::fs::write(
            &path,
            "domain: l.example.org\nweb:\n  admins: [root@L.Example.org]\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.web.is_admin("root@l.example.org"));
        assert!(!c.web.is_admin("Root@l.example.org"));
        assert_eq!(
            (
                c.web.session_days,
                c.web.login_per_address_per_hour,
                c.web.login_per_ip_per_hour,
                c.web.subscribe_per_ip_per_hour
            ),
            (7, 5, 30, 10)
        );
    }
}
