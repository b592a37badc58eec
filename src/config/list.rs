//! One list's settings, `lists/NAME.yaml`. The file name is the list's name.

use super::error::{find_line, ConfigError};
use crate::address::Address;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Who may subscribe, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionPolicy {
    Open,
    #[default]
    Confirm,
    Approve,
    ConfirmThenApprove,
    Closed,
}

/// Whether unsubscribing needs a confirmation from the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribePolicy {
    Open,
    #[default]
    Confirm,
}

/// Who may post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PostingPolicy {
    Anyone,
    #[default]
    Members,
    Moderated,
    Announce,
}

/// What happens to a post from a non-member on a `members` list
/// (and from a non-moderator on an `announce` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NonmemberAction {
    #[default]
    Hold,
    Reject,
    Discard,
}

/// What happens to a post larger than the list's `max_message_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OversizeAction {
    /// Held for the moderators (Mailman's `max-size` rule).
    #[default]
    Hold,
    /// Refused: 552 at SMTP time (RCPT with a declared SIZE, else at the
    /// end of DATA), so the poster's own server reports it.
    Reject,
}

/// One `hold_headers` entry (Mailman's `header_matches`): a post with a
/// `header` field whose value matches `pattern` is held as a suspicious
/// header. The pattern is a regular expression, matched case-insensitively
/// anywhere in the unfolded value (and in its RFC 2047-decoded text).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub header: String,
    pub pattern: String,
    /// `pattern` compiled when the file is loaded (`None` only for an entry
    /// built in code without [`HeaderMatch::compile`]; it matches nothing).
    #[serde(skip)]
    pub regex: Option<regex::Regex>,
}

impl HeaderMatch {
    /// Compiles `pattern` (case-insensitive); the error is one line.
    pub fn compile(&mut self) -> Result<(), String> {
        let re = regex::RegexBuilder::new(&self.pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let text = e.to_string();
                let why = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                format!(
                    "hold_headers: `{}` is not a valid regular expression: {why}",
                    self.pattern
                )
            })?;
        self.regex = Some(re);
        Ok(())
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(value))
    }
}

/// Whether a post that is let through only because of the address it
/// claims (From: or envelope) must prove that address (`sender_verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderVerification {
    /// Believe the claimed address (the default for lists other than announce).
    None,
    /// A post that gets past the posting policy only because it claims an
    /// owner's, a moderator's or an accept-listed sender's address is held
    /// until it proves itself: a valid `Approved:` password, or the claimed
    /// address confirming by the token mailed to it (the default for
    /// `posting: announce`).
    Confirm,
    /// As `confirm`, and members posting to a members-only list must prove
    /// their address too.
    ConfirmMembers,
}

/// Who may see the membership (EXPN over SMTP, `who` by email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    Nobody,
    Trusted,
    Members,
    Owners,
    Anyone,
}

/// The Reply-To policy: `none`, `list`, or an address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplyTo {
    #[default]
    None,
    List,
    Address(String),
}

impl Serialize for ReplyTo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            ReplyTo::None => "none",
            ReplyTo::List => "list",
            ReplyTo::Address(a) => a,
        })
    }
}

impl<'de> Deserialize<'de> for ReplyTo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "none" => Ok(ReplyTo::None),
            "list" => Ok(ReplyTo::List),
            other => Address::parse(other)
                .map(|a| ReplyTo::Address(a.to_string()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "reply_to must be `none`, `list` or an address; `{other}`: {e}"
                    ))
                }),
        }
    }
}

/// The `digest:` map of a list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    pub enabled: bool,
    pub max_messages: u32,
    pub max_bytes: u64,
    /// `daily HH:MM`, `weekly DAY HH:MM` or `none`.
    pub schedule: String,
    /// `yearly`, `monthly` or `never`.
    pub volume_period: String,
    pub send_empty: bool,
    /// Template names for the digest header and footer.
    pub header: String,
    pub footer: String,
}

impl DigestConfig {
    /// The parsed `schedule` (validated when the file was loaded; a value
    /// that somehow fails to parse counts as `none`).
    pub fn schedule(&self) -> crate::config::schedule::Schedule {
        crate::config::schedule::Schedule::parse(&self.schedule)
            .unwrap_or(crate::config::schedule::Schedule::None)
    }

    /// The parsed `volume_period` (validated at load; `yearly` otherwise).
    pub fn volume_period(&self) -> crate::config::schedule::VolumePeriod {
        crate::config::schedule::VolumePeriod::parse(&self.volume_period)
            .unwrap_or(crate::config::schedule::VolumePeriod::Yearly)
    }
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: true,
            max_messages: 30,
            max_bytes: 100 * 1024,
            schedule: "daily 06:00".into(),
            volume_period: "yearly".into(),
            send_empty: false,
            header: "digest-header".into(),
            footer: "digest-footer".into(),
        }
    }
}

/// The settings of one list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// The list's name, from its file name (not a YAML key).
    #[serde(skip)]
    pub name: String,
    /// The file this came from.
    #[serde(skip)]
    pub path: PathBuf,
    /// The domain of every address the list owns (`NAME@DOMAIN`,
    /// `NAME-request@DOMAIN`, ...); unset: the site's `domain`. Read it
    /// through `Config::list_domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Listed by `lists` and the web; a private list is not advertised.
    #[serde(default = "yes")]
    pub advertised: bool,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub moderators: Vec<String>,
    #[serde(default)]
    pub subscription: SubscriptionPolicy,
    #[serde(default)]
    pub unsubscription: UnsubscribePolicy,
    #[serde(default)]
    pub posting: PostingPolicy,
    #[serde(default)]
    pub nonmember_posts: NonmemberAction,
    /// Whether privileged-by-address posts must prove their sender; unset:
    /// `confirm` on announce lists, `none` otherwise (see
    /// [`ListConfig::sender_verification`]).
    #[serde(default)]
    pub sender_verification: Option<SenderVerification>,
    /// e.g. `"[dev]"`; empty for none.
    #[serde(default)]
    pub subject_prefix: String,
    #[serde(default)]
    pub reply_to: ReplyTo,
    /// Distributed posts carry `Sender: NAME-bounces@domain` (any Sender:
    /// of the post's own is replaced), as Mailman 2's
    /// `include_sender_header` did: old clients then send auto-replies to
    /// the list's bounce address. Some clients show "on behalf of".
    #[serde(default)]
    pub sender_header: bool,
    /// Per-list size limit in bytes (0: the global smtp.max_message_size).
    #[serde(default)]
    pub max_message_size: u64,
    /// What a post over `max_message_size` gets: held (default) or refused.
    #[serde(default)]
    pub oversize_posts: OversizeAction,
    /// Hold a post that does not name the list (or an `acceptable_aliases`
    /// address) in To/Cc (Mailman's `require_explicit_destination`).
    #[serde(default = "yes")]
    pub require_explicit_destination: bool,
    /// Other addresses that count as naming the list in To/Cc.
    #[serde(default)]
    pub acceptable_aliases: Vec<String>,
    /// Hold a post naming more than this many addresses in To/Cc (0: no limit).
    #[serde(default = "max_recipients")]
    pub max_recipients: u32,
    /// Hold a post whose subject or first lines look like a `subscribe` or
    /// `unsubscribe` command (sent to the list instead of `NAME-request@`).
    #[serde(default = "yes")]
    pub administrivia: bool,
    /// Hold a post with an empty subject.
    #[serde(default)]
    pub hold_no_subject: bool,
    /// Hold a post when one of its headers matches (suspicious header).
    #[serde(default)]
    pub hold_headers: Vec<HeaderMatch>,
    /// Hold every post, whoever sends it (but `Approved:`).
    #[serde(default)]
    pub emergency: bool,
    /// New members (by the robot or `listd members add`) start with their
    /// moderation flag set to `hold`, until a moderator accepts them
    /// (Mailman's `default_member_action: hold`).
    #[serde(default)]
    pub moderate_new_members: bool,
    #[serde(default = "access_trusted")]
    pub expn: Access,
    #[serde(default = "access_owners")]
    pub who: Access,
    #[serde(default)]
    pub digest: DigestConfig,
    #[serde(default = "yes")]
    pub archive: bool,
    /// Who may read the archive by mail (`index`, `get`); `trusted` is read
    /// as owners, since mail comes from no trusted network.
    #[serde(default = "access_members")]
    pub archive_access: Access,
    /// Per-recipient envelope senders `NAME-bounces+user=example.org@domain`.
    #[serde(default)]
    pub verp: bool,
    /// Each member's copy of a post carries their own one-click unsubscribe
    /// link (needs `web.public_url`); one transaction per member then.
    #[serde(default)]
    pub personalize: bool,
    /// Append the `footer` template to posts.
    #[serde(default)]
    pub footer: bool,
    /// Leave out members already named in To/Cc.
    #[serde(default)]
    pub skip_explicit_recipients: bool,
    /// Owners get a notice on each subscribe and unsubscribe.
    #[serde(default = "yes")]
    pub notify_owners: bool,
    /// Posters are told their post awaits moderation.
    #[serde(default = "yes")]
    pub notify_held: bool,
    /// Moderators get a daily reminder of pending posts.
    #[serde(default = "yes")]
    pub moderator_reminders: bool,
    /// Days a held post waits before it expires.
    #[serde(default = "hold_days")]
    pub hold_days: u32,
    /// argon2 hash (PHC string) of the moderator password for `Approved:`.
    #[serde(default)]
    pub moderator_password: Option<String>,
    /// Moderator notices of held posts per hour; past that the moderators
    /// get one summary notice (the posts stay held). 0: no limit.
    #[serde(default = "moderation_notices_per_hour")]
    pub moderation_notices_per_hour: u32,
    /// Wrong `Approved:` passwords within an hour that lock the check for
    /// the list for an hour (posts are then read as if they had no
    /// password, and no password is tried). 0: never lock.
    #[serde(default = "approved_failures_per_hour")]
    pub approved_failures_per_hour: u32,
    /// Hold a member's post whose From: fails DMARC (as our intake checked
    /// it) on a `members` list, instead of distributing it.
    #[serde(default)]
    pub require_dmarc_pass_for_members: bool,
    /// How a post from a domain whose DMARC policy would make receivers
    /// refuse the list's copy goes out (see [`DmarcMitigation`]).
    #[serde(default)]
    pub dmarc_mitigation: DmarcMitigation,
}

/// DMARC mitigation: what the list does to a post's From: so receivers do
/// not refuse its copy (the list breaks the author's DKIM and SPF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DmarcMitigation {
    /// Munge the From: when the author's domain publishes `p=quarantine`
    /// or `p=reject`, or its policy could not be looked up.
    #[default]
    Auto,
    /// Munge every post's From:.
    Always,
    /// Never change the From:.
    Never,
    /// When `auto` would munge: send a new message from the list with the
    /// post enclosed unchanged (message/rfc822).
    Wrap,
}

fn yes() -> bool {
    true
}
fn access_trusted() -> Access {
    Access::Trusted
}
fn access_owners() -> Access {
    Access::Owners
}
fn access_members() -> Access {
    Access::Members
}
fn hold_days() -> u32 {
    14
}
fn moderation_notices_per_hour() -> u32 {
    20
}
fn approved_failures_per_hour() -> u32 {
    5
}
fn max_recipients() -> u32 {
    10
}

/// Suffixes that route to a list's service addresses, and so cannot end a list name.
pub const RESERVED_SUFFIXES: &[&str] = &[
    "request",
    "owner",
    "bounces",
    "confirm",
    "join",
    "leave",
    "subscribe",
    "unsubscribe",
    "moderate",
];

impl ListConfig {
    /// Whether an address is one of the owners.
    pub fn is_owner(&self, addr: &str) -> bool {
        let k = crate::address::address_key(addr);
        self.owners
            .iter()
            .any(|o| crate::address::address_key(o) == k)
    }

    /// The `sender_verification` in force: the configured one, else
    /// `confirm` for announce lists and `none` for the others.
    pub fn sender_verification(&self) -> SenderVerification {
        self.sender_verification.unwrap_or(match self.posting {
            PostingPolicy::Announce => SenderVerification::Confirm,
            _ => SenderVerification::None,
        })
    }

    /// Whether an address is a moderator or an owner.
    pub fn is_moderator(&self, addr: &str) -> bool {
        let k = crate::address::address_key(addr);
        self.is_owner(addr)
            || self
                .moderators
                .iter()
                .any(|o| crate::address::address_key(o) == k)
    }

    /// The size limit in force for posts: the list's, else the global one.
    pub fn size_limit(&self, global: u64) -> u64 {
        if self.max_message_size == 0 {
            global
        } else {
            self.max_message_size.min(global)
        }
    }

    /// The size limit the SMTP intake enforces for posts to this list: the
    /// list's own limit only when oversize posts are refused; when they are
    /// held, only the global one (the posting rules hold what is larger).
    pub fn smtp_size_limit(&self, global: u64) -> u64 {
        match self.oversize_posts {
            OversizeAction::Reject => self.size_limit(global),
            OversizeAction::Hold => global,
        }
    }

    /// Parses one list file. `name` is the file stem.
    pub fn parse(path: &Path, name: &str, text: &str) -> Result<ListConfig, Vec<ConfigError>> {
        let mut list: ListConfig = if text.trim().is_empty() {
            serde_yaml_ng::from_str("{}")
        } else {
            serde_yaml_ng::from_str(text)
        }
        .map_err(|e| vec![ConfigError::from_yaml(path, &e)])?;
        list.name = name.to_string();
        list.path = path.to_path_buf();
        let mut errors = Vec::new();
        let at = |needle: &str| find_line(text, needle);
        if let Some(reason) = bad_list_name(name) {
            errors.push(ConfigError::new(path, None, reason));
        }
        if let Some(d) = &mut list.domain {
            *d = d.trim().to_ascii_lowercase();
            if d.contains(['@', '<', '>']) || Address::parse(&format!("x@{d}")).is_err() {
                errors.push(ConfigError::new(
                    path,
                    at("domain:"),
                    format!("domain: `{d}` is not a valid domain name"),
                ));
            }
        }
        for (key, addrs) in [
            ("owners", &list.owners),
            ("moderators", &list.moderators),
            ("acceptable_aliases", &list.acceptable_aliases),
        ] {
            for a in addrs {
                if let Err(e) = Address::parse(a) {
                    errors.push(ConfigError::new(
                        path,
                        at(a).or_else(|| at(&format!("{key}:"))),
                        format!("{key}: `{a}` is not a valid address: {e}"),
                    ));
                }
            }
        }
        if let Some(h) = &list.moderator_password {
            if !h.starts_with("$argon2") {
                errors.push(ConfigError::new(
                    path,
                    at("moderator_password"),
                    "moderator_password must be an argon2 hash (`listd hash-password` makes one), not a plain password".into(),
                ));
            }
        }
        if list.digest.max_messages == 0 {
            errors.push(ConfigError::new(
                path,
                at("max_messages"),
                "digest.max_messages must be greater than 0".into(),
            ));
        }
        if list.digest.max_bytes == 0 {
            errors.push(ConfigError::new(
                path,
                at("max_bytes"),
                "digest.max_bytes must be greater than 0".into(),
            ));
        }
        if let Err(e) = crate::config::schedule::Schedule::parse(&list.digest.schedule) {
            errors.push(ConfigError::new(
                path,
                at("schedule").or_else(|| at("digest:")),
                e,
            ));
        }
        if !["yearly", "monthly", "never"].contains(&list.digest.volume_period.as_str()) {
            errors.push(ConfigError::new(
                path,
                at("volume_period"),
                format!(
                    "digest.volume_period must be yearly, monthly or never, not `{}`",
                    list.digest.volume_period
                ),
            ));
        }
        for m in &mut list.hold_headers {
            if let Err(e) = m.compile() {
                errors.push(ConfigError::new(
                    path,
                    at(&m.pattern).or_else(|| at("hold_headers")),
                    e,
                ));
            }
            let name = m.header.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                errors.push(ConfigError::new(
                    path,
                    at(&m.header).or_else(|| at("hold_headers")),
                    format!(
                        "hold_headers: `{}` is not a header field name (printable ASCII, no `:` or spaces)",
                        m.header
                    ),
                ));
            }
        }
        if list.hold_days == 0 {
            errors.push(ConfigError::new(
                path,
                at("hold_days"),
                "hold_days must be at least 1".into(),
            ));
        }
        if errors.is_empty() {
            Ok(list)
        } else {
            Err(errors)
        }
    }
}

/// Why `name` cannot be a list name, if it cannot.
pub fn bad_list_name(name: &str) -> Option<String> {
    let ok_chars = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_chars {
        return Some(format!(
            "list name `{name}` (from the file name) must be 1-64 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit"
        ));
    }
    if name == "majordomo" {
        return Some("list name `majordomo` is reserved for the site-wide robot".into());
    }
    if name == "postmaster" {
        return Some(
            "list name `postmaster` is reserved for the site's postmaster (RFC 5321 §4.5.1)".into(),
        );
    }
    for s in RESERVED_SUFFIXES {
        if name.ends_with(&format!("-{s}")) {
            return Some(format!(
                "list name `{name}` ends in `-{s}`, which is reserved for the list's service addresses"
            ));
        }
    }
    None
}

/// Loads every `*.yaml` / `*.yml` file in `dir`. A list defined twice is an error.
pub(super) fn load_all(
    dir: &Path,
    domain: &str,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, ListConfig> {
    let mut lists: BTreeMap<String, ListConfig> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(ConfigError::new(
                dir,
                None,
                format!("cannot read lists_dir: {e}"),
            ));
            return lists;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    paths.sort();
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let name = stem.to_ascii_lowercase();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(&path, None, format!("cannot read: {e}")));
                continue;
            }
        };
        let parsed = ListConfig::parse(&path, &stem, &text);
        if let Some(prev) = lists.get(&name) {
            // names are the store's keys: unique across every list domain
            let dom = |d: Option<&str>| d.unwrap_or(domain).to_string();
            let this = parsed.as_ref().ok().and_then(|l| l.domain.as_deref());
            errors.push(ConfigError::new(
                &path,
                Some(find_line(&text, "domain:").unwrap_or((1, 1))),
                format!(
                    "duplicate list `{name}` (at {}): already defined in {} (at {}); list names are unique across all domains",
                    dom(this),
                    prev.path.display(),
                    dom(prev.domain.as_deref()),
                ),
            ));
            continue;
        }
        match parsed {
            Ok(l) => {
                lists.insert(name, l);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    lists
}
