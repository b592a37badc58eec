//! Posting rules: decide what happens to a post, without changing anything.
//!
//! Input is plain data: a [`PostView`] read from the parsed message, the
//! envelope sender, the list's settings and [`Facts`] looked up beforehand
//! (membership, duplicate Message-ID, moderation's per-sender rules and
//! pre-approval). Output is a [`PostAction`]. No I/O, no clock, no mutation:
//! the caller acts on the decision (see `pipeline::post`).
//!
//! The order follows Mailman 3's posting chain: loops and duplicates are
//! dropped; bans and per-sender reject/discard rules apply to everyone; a
//! valid `Approved:` accepts; then the list's `emergency` switch, a bad
//! password and automatic mail hold; then the posting policy (non-members,
//! moderated, announce); last the checks on the message itself (size,
//! suspicious headers, implicit destination, too many recipients,
//! administrivia, no subject), which apply to accepted senders too.
//!
//! Trusts the facts it is given; trusts nothing in the view (header values
//! are compared, never interpreted further).

use crate::address::address_key;
use crate::config::{
    ListConfig, NonmemberAction, OversizeAction, PostingPolicy, SenderVerification,
};
use crate::hold::ClaimedRole;
use crate::mime::{header_block, list_id};
use mail_parser::{Address, HeaderValue, Message};

/// Days a Message-ID counts as a duplicate on the same list.
pub const DUPLICATE_WINDOW_DAYS: i64 = 30;

/// How many non-blank lines of the first text part the administrivia check reads.
pub const ADMINISTRIVIA_LINES: usize = 5;

/// What the rules read from a message: plain values, parsed beforehand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostView {
    /// The first From: address.
    pub from: Option<String>,
    /// The Sender: address.
    pub sender: Option<String>,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Decoded subject ("" if none).
    pub subject: String,
    /// The ids of every List-Id field (inside `<>`), lower-cased.
    pub list_ids: Vec<String>,
    /// Every X-Loop value, trimmed and lower-cased.
    pub x_loops: Vec<String>,
    /// The Precedence value, lower-cased.
    pub precedence: Option<String>,
    /// The Auto-Submitted keyword (before any `;`), lower-cased.
    pub auto_submitted: Option<String>,
    /// Size of the message in bytes.
    pub size: u64,
    /// Every address in To: and Cc:, lower-cased, each once.
    pub recipients: Vec<String>,
    /// Every address in Resent-To: and Resent-Cc:, lower-cased.
    pub resent_recipients: Vec<String>,
    /// Every header field as (name, unfolded value); a field whose decoded
    /// text (RFC 2047) differs from its raw value appears twice.
    pub headers: Vec<(String, String)>,
    /// The first [`ADMINISTRIVIA_LINES`] non-blank lines of the first text
    /// part, trimmed.
    pub first_lines: Vec<String>,
}

fn first_addr(a: Option<&Address<'_>>) -> Option<String> {
    a.and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn text_values(m: &Message<'_>, name: &str) -> Vec<String> {
    m.header_values(name)
        .filter_map(|v| match v {
            HeaderValue::Text(t) => Some(t.to_string()),
            HeaderValue::TextList(l) => Some(l.join(",")),
            _ => None,
        })
        .collect()
}

/// The addresses in the named address fields, lower-cased, each once.
fn addresses(m: &Message<'_>, names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        for v in m.header_values(*name) {
            let HeaderValue::Address(a) = v else { continue };
            for addr in a.iter() {
                let Some(x) = addr.address.as_deref() else {
                    continue;
                };
                let x = x.trim().to_ascii_lowercase();
                if !x.is_empty() && !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// The first non-blank lines of the first text part (a full parse of the
/// message, which `m`, parsed for the headers only, does not have).
fn first_lines(bytes: &[u8]) -> Vec<String> {
    let Some(m) = mail_parser::MessageParser::default().parse(bytes) else {
        return Vec::new();
    };
    let Some(text) = m.body_text(0) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(ADMINISTRIVIA_LINES)
        .map(str::to_string)
        .collect()
}

impl PostView {
    /// Reads the view from a parsed message (`None`: nothing parsed, e.g. no
    /// header at all; headers alone are enough) and its bytes.
    pub fn from_message(m: Option<&Message<'_>>, bytes: &[u8]) -> PostView {
        let size = bytes.len() as u64;
        let Some(m) = m else {
            return PostView {
                size,
                ..PostView::default()
            };
        };
        let raw_all = |name: &str| -> Vec<String> {
            m.headers_raw()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| header_block::unfold_text(v.as_bytes()))
                .collect()
        };
        let list_ids = raw_all("List-Id")
            .iter()
            .map(|v| list_id::parse(v))
            .collect();
        let x_loops = raw_all("X-Loop")
            .iter()
            .map(|v| list_id::parse_x_loop(v))
            .collect();
        let lower_first = |name: &str| -> Option<String> {
            text_values(m, name)
                .into_iter()
                .next()
                .or_else(|| raw_all(name).into_iter().next())
                .map(|v| v.trim().to_ascii_lowercase())
        };
        let mut headers = Vec::with_capacity(m.headers().len());
        for h in m.headers() {
            let name = h.name.as_str().to_string();
            let raw = bytes
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let raw = header_block::unfold_text(raw).trim().to_string();
            let decoded = match &h.value {
                HeaderValue::Text(t) if t.trim() != raw => Some(t.trim().to_string()),
                _ => None,
            };
            headers.push((name.clone(), raw));
            if let Some(d) = decoded {
                headers.push((name, d));
            }
        }
        PostView {
            from: first_addr(m.from()),
            sender: first_addr(m.sender()),
            message_id: m
                .message_id()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            subject: m.subject().unwrap_or_default().to_string(),
            list_ids,
            x_loops,
            precedence: lower_first("Precedence"),
            auto_submitted: lower_first("Auto-Submitted")
                .map(|v| v.split(';').next().unwrap_or_default().trim().to_string()),
            size,
            recipients: addresses(m, &["To", "Cc"]),
            resent_recipients: addresses(m, &["Resent-To", "Resent-Cc"]),
            headers,
            first_lines: first_lines(bytes),
        }
    }

    /// The poster: the From: address, else the envelope sender.
    pub fn poster<'a>(&'a self, env_from: &'a str) -> &'a str {
        self.from.as_deref().unwrap_or(env_from)
    }
}

/// A per-sender rule from the moderation data: the member's own moderation
/// flag (accept/hold/reject/discard), the list's accept list, bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderRule {
    /// Treat as a member for the nonmember rules.
    Accept,
    Hold,
    Reject,
    /// Includes bans.
    Discard,
}

/// Facts the caller looked up before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The From: address or the envelope sender is a member of the list.
    pub is_member: bool,
    /// ... is a moderator or an owner of the list.
    pub is_moderator: bool,
    /// The Message-ID was seen on this list within the duplicate window.
    pub duplicate: bool,
    /// A valid `Approved:` pre-approval (checked by moderation).
    pub pre_approved: bool,
    /// An `Approved:` line whose password is wrong (checked by moderation).
    pub bad_approved_password: bool,
    /// Moderation's per-sender rule, if any.
    pub sender_rule: Option<SenderRule>,
    /// The poster's address is proven (its From: passed DMARC at our
    /// intake, and it is the address every role above was found for), so
    /// the roles are believed under `sender_verification`. (A valid
    /// `Approved:` is `pre_approved`; a confirmation by token releases the
    /// held post through moderation.)
    pub verified_sender: bool,
    /// The From: failed its domain's DMARC check at our intake.
    pub from_dmarc_fail: bool,
}

/// Why a post is held: moderation's type (it stores and shows the reason).
pub use crate::hold::HoldReason;

/// Why a post is dropped without a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscardReason {
    /// The list's own List-Id is already present.
    LoopListId,
    /// The list's own X-Loop is already present.
    LoopXLoop,
    /// The Message-ID was already distributed or held on this list.
    Duplicate(String),
    /// `nonmember_posts: discard`.
    NonMember,
    /// Moderation's per-sender rule (or a ban) says discard.
    SenderRule,
    /// It would have been rejected, but the envelope sender is null, so there
    /// is nobody to tell.
    NullSenderReject(String),
}

impl DiscardReason {
    pub fn describe(&self) -> String {
        match self {
            DiscardReason::LoopListId => "mail loop: the list's own List-Id is present".into(),
            DiscardReason::LoopXLoop => "mail loop: the list's own X-Loop is present".into(),
            DiscardReason::Duplicate(id) => format!("duplicate Message-ID <{id}>"),
            DiscardReason::NonMember => "post from a non-member (nonmember_posts: discard)".into(),
            DiscardReason::SenderRule => "the moderators discard posts from this sender".into(),
            DiscardReason::NullSenderReject(why) => {
                format!("rejected with a null envelope sender, nobody to tell: {why}")
            }
        }
    }
}

/// What to do with a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAction {
    Accept,
    Hold(HoldReason),
    /// An SMTP-like code and enhanced status + a sentence, sent to the poster.
    Reject(u16, String),
    Discard(DiscardReason),
}

/// Decides what happens to a post to `list`.
///
/// `env_from` is the envelope sender ("" for `<>`); `global_max` is
/// `smtp.max_message_size`.
pub fn decide(
    view: &PostView,
    env_from: &str,
    list: &ListConfig,
    domain: &str,
    global_max: u64,
    facts: &Facts,
) -> PostAction {
    let action = decide_inner(view, list, domain, global_max, facts);
    match action {
        PostAction::Reject(_, why) if env_from.is_empty() => {
            PostAction::Discard(DiscardReason::NullSenderReject(why))
        }
        a => a,
    }
}

fn decide_inner(
    view: &PostView,
    list: &ListConfig,
    domain: &str,
    global_max: u64,
    facts: &Facts,
) -> PostAction {
    let address = format!("{}@{domain}", list.name);
    // 1. loops
    let own_id = list_id::id(&list.name, domain);
    if view.list_ids.contains(&own_id) {
        return PostAction::Discard(DiscardReason::LoopListId);
    }
    let own_loop = address_key(&address).to_ascii_lowercase();
    if view.x_loops.iter().any(|l| address_key(l) == own_loop) {
        return PostAction::Discard(DiscardReason::LoopXLoop);
    }
    // 2. duplicates
    if facts.duplicate {
        return PostAction::Discard(DiscardReason::Duplicate(
            view.message_id.clone().unwrap_or_default(),
        ));
    }
    // 3. bans and per-sender reject/discard rules apply to everyone
    match facts.sender_rule {
        Some(SenderRule::Discard) => return PostAction::Discard(DiscardReason::SenderRule),
        Some(SenderRule::Reject) => {
            return PostAction::Reject(
                550,
                format!("5.7.1 The moderators of {address} do not accept posts from you."),
            )
        }
        _ => {}
    }
    // 4. a valid Approved: pre-approval skips every remaining check (as in
    //    Mailman, where `approved` comes first); a wrong password goes to
    //    the moderators
    if facts.pre_approved {
        return PostAction::Accept;
    }
    if list.emergency {
        return PostAction::Hold(HoldReason::Emergency);
    }
    if facts.bad_approved_password {
        return PostAction::Hold(HoldReason::BadApprovedPassword);
    }
    // 5. automatic mail goes to a human
    if let Some(p) = view.precedence.as_deref() {
        if p == "bulk" || p == "junk" {
            return PostAction::Hold(HoldReason::Bulk);
        }
    }
    if let Some(a) = view.auto_submitted.as_deref() {
        if !a.is_empty() && a != "no" {
            return PostAction::Hold(HoldReason::AutoReply);
        }
    }
    if facts.sender_rule == Some(SenderRule::Hold) {
        return PostAction::Hold(HoldReason::MemberModerated);
    }
    // 6. posting policy: who may post. A sender on the accept list counts as
    //    allowed under every policy (Mailman's per-sender `accept` action).
    //    What lets a post through is a role of the address it claims; under
    //    `sender_verification` that claim must be proven.
    let accepted_sender = facts.sender_rule == Some(SenderRule::Accept);
    let not_allowed = |hold: HoldReason, who: &str| match list.nonmember_posts {
        NonmemberAction::Hold => PostAction::Hold(hold),
        NonmemberAction::Reject => {
            PostAction::Reject(550, format!("5.7.1 Only {who} may post to {address}."))
        }
        NonmemberAction::Discard => PostAction::Discard(DiscardReason::NonMember),
    };
    let privileged = if facts.is_moderator {
        ClaimedRole::Moderator
    } else {
        ClaimedRole::AcceptedSender
    };
    let allowed_by = match list.posting {
        PostingPolicy::Anyone => Ok(None),
        PostingPolicy::Members
            if facts.is_member && list.require_dmarc_pass_for_members && facts.from_dmarc_fail =>
        {
            Err(PostAction::Hold(HoldReason::DmarcFail))
        }
        PostingPolicy::Members if facts.is_member => Ok(Some(ClaimedRole::Member)),
        PostingPolicy::Members if facts.is_moderator || accepted_sender => Ok(Some(privileged)),
        PostingPolicy::Members => Err(not_allowed(HoldReason::NonMember, "members")),
        PostingPolicy::Moderated if accepted_sender => Ok(Some(ClaimedRole::AcceptedSender)),
        PostingPolicy::Moderated => Err(PostAction::Hold(HoldReason::Moderated)),
        PostingPolicy::Announce if facts.is_moderator || accepted_sender => Ok(Some(privileged)),
        PostingPolicy::Announce => Err(not_allowed(
            HoldReason::AnnounceOnly,
            "the owners and moderators",
        )),
    };
    let unproven = match allowed_by {
        Err(a) => return a,
        Ok(role) => role.filter(|r| needs_proof(list.sender_verification(), *r, facts)),
    };
    // 7. the message itself, whoever sent it; a post that passes them but
    //    rests on an unproven claim waits for the claimed address
    content_checks(view, list, &address, global_max).unwrap_or(match unproven {
        Some(role) => PostAction::Hold(HoldReason::SenderUnverified(role)),
        None => PostAction::Accept,
    })
}

/// Whether a post let through by `role` must prove its sender first.
fn needs_proof(v: SenderVerification, role: ClaimedRole, facts: &Facts) -> bool {
    if facts.verified_sender {
        return false;
    }
    match v {
        SenderVerification::None => false,
        SenderVerification::Confirm => role != ClaimedRole::Member,
        SenderVerification::ConfirmMembers => true,
    }
}

/// The checks on the message itself (Mailman's max-size, header-match,
/// implicit-dest, max-recipients, administrivia, no-subject), in that order.
fn content_checks(
    view: &PostView,
    list: &ListConfig,
    address: &str,
    global_max: u64,
) -> Option<PostAction> {
    let limit = list.size_limit(global_max);
    if view.size > limit {
        return Some(match list.oversize_posts {
            OversizeAction::Hold => PostAction::Hold(HoldReason::TooBig {
                size: view.size,
                limit,
            }),
            OversizeAction::Reject => PostAction::Reject(
                552,
                format!(
                    "5.3.4 The message is {} bytes; posts to {address} may be at most {limit} bytes.",
                    view.size
                ),
            ),
        });
    }
    if let Some(why) = suspicious_header(view, list) {
        return Some(PostAction::Hold(HoldReason::SuspiciousHeader(why)));
    }
    if list.require_explicit_destination && !names_the_list(view, list, address) {
        return Some(PostAction::Hold(HoldReason::ImplicitDestination));
    }
    let count = view.recipients.len();
    if list.max_recipients > 0 && count > list.max_recipients as usize {
        return Some(PostAction::Hold(HoldReason::TooManyRecipients {
            count: count as u32,
            max: list.max_recipients,
        }));
    }
    if list.administrivia {
        let line = std::iter::once(view.subject.trim())
            .chain(view.first_lines.iter().map(String::as_str))
            .find(|l| is_administrivia(l, &list.name, address));
        if let Some(l) = line {
            return Some(PostAction::Hold(HoldReason::Administrivia(
                l.chars().take(80).collect(),
            )));
        }
    }
    if list.hold_no_subject && view.subject.trim().is_empty() {
        return Some(PostAction::Hold(HoldReason::NoSubject));
    }
    None
}

/// The first `hold_headers` entry a header of the post matches, in words.
fn suspicious_header(view: &PostView, list: &ListConfig) -> Option<String> {
    for m in &list.hold_headers {
        let name = m.header.trim();
        for (n, v) in &view.headers {
            if n.eq_ignore_ascii_case(name) && m.matches(v) {
                let shown: String = v.chars().take(80).collect();
                return Some(format!("{name}: {shown} (matches `{}`)", m.pattern));
            }
        }
    }
    None
}

/// Whether To/Cc (or Resent-To/Resent-Cc) name the list or one of its
/// `acceptable_aliases`. Compared whole and case-insensitively.
fn names_the_list(view: &PostView, list: &ListConfig, address: &str) -> bool {
    let own = address.to_ascii_lowercase();
    let aliases: Vec<String> = list
        .acceptable_aliases
        .iter()
        .map(|a| address_key(a).to_ascii_lowercase())
        .collect();
    view.recipients
        .iter()
        .chain(&view.resent_recipients)
        .any(|r| *r == own || aliases.contains(r))
}

/// Whether a line reads like a subscription command meant for the robot:
/// `subscribe`, `unsubscribe`, `signoff`, `join` or `leave`, followed by at
/// most two words that are the list's name or address, an address, `me` or
/// `address=...` (so "leave it to me" is prose, "unsubscribe dev" is not).
pub fn is_administrivia(line: &str, list: &str, address: &str) -> bool {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return false;
    };
    let verb = verb.trim_end_matches([':', '.', '!']).to_ascii_lowercase();
    if !["subscribe", "unsubscribe", "signoff", "join", "leave"].contains(&verb.as_str()) {
        return false;
    }
    let args: Vec<&str> = words.collect();
    args.len() <= 2
        && args.iter().all(|a| {
            let a = a.trim_matches(['<', '>', '.', ',']).to_ascii_lowercase();
            a == list
                || a == address.to_ascii_lowercase()
                || a == "me"
                || a.starts_with("address=")
                || (a.contains('@') && !a.starts_with('@') && !a.ends_with('@'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn list(yaml: &str) -> ListConfig {
        ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", yaml).unwrap()
    }

    fn view(raw: &str) -> PostView {
        let m = MessageParser::default().parse(raw.as_bytes());
        PostView::from_message(m.as_ref(), raw.as_bytes())
    }

    const D: &str = "lists.example.org";
    const PLAIN: &str = "From: Ann <ann@example.org>\r\nTo: dev@lists.example.org\r\n\
                         Message-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n";

    fn member() -> Facts {
        Facts {
            is_member: true,
            ..Facts::default()
        }
    }

    #[test]
    fn view_reads_the_fields_rules_need() {
        let v = view(
            "From: Ann <ann@example.org>\r\nSender: s@example.org\r\nMessage-ID: <a@b>\r\n\
             Subject: =?utf-8?q?caf=C3=A9?=\r\nList-Id: Dev list <Dev.Lists.Example.org>\r\n\
             X-Loop: <Dev@Lists.Example.org>\r\nPrecedence: Bulk\r\n\
             Auto-Submitted: auto-replied; owner-email=x@y\r\n\r\nx",
        );
        assert_eq!(v.from.as_deref(), Some("ann@example.org"));
        assert_eq!(v.sender.as_deref(), Some("s@example.org"));
        assert_eq!(v.message_id.as_deref(), Some("a@b"));
        assert_eq!(v.subject, "café");
        assert_eq!(v.list_ids, vec!["dev.lists.example.org"]);
        assert_eq!(v.x_loops, vec!["dev@lists.example.org"]);
        assert_eq!(v.precedence.as_deref(), Some("bulk"));
        assert_eq!(v.auto_submitted.as_deref(), Some("auto-replied"));
        let empty = PostView::from_message(None, b"1234567");
        assert_eq!(empty.size, 7);
        assert_eq!(empty.poster("env@x"), "env@x");
    }

    #[test]
    fn a_member_failing_dmarc_is_held_only_when_the_list_requires_a_pass() {
        let v = view(PLAIN);
        let failing = Facts {
            from_dmarc_fail: true,
            ..member()
        };
        let strict = list("posting: members\nrequire_dmarc_pass_for_members: true");
        let lax = list("posting: members");
        let d = |l: &ListConfig, f: &Facts| decide(&v, "ann@example.org", l, D, 1 << 20, f);
        assert_eq!(
            d(&strict, &failing),
            PostAction::Hold(HoldReason::DmarcFail)
        );
        assert_eq!(d(&lax, &failing), PostAction::Accept);
        assert_eq!(d(&strict, &member()), PostAction::Accept);
        // a valid Approved: still wins
        let approved = Facts {
            pre_approved: true,
            ..failing.clone()
        };
        assert_eq!(d(&strict, &approved), PostAction::Accept);
    }

    #[test]
    fn a_verified_moderator_needs_no_confirmation_on_an_announce_list() {
        let v = view(PLAIN);
        let l = list("posting: announce");
        let claimed = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        let d = |f: &Facts| decide(&v, "ann@example.org", &l, D, 1 << 20, f);
        assert_eq!(
            d(&claimed),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::Moderator))
        );
        let proven = Facts {
            verified_sender: true,
            ..claimed
        };
        assert_eq!(d(&proven), PostAction::Accept);
    }

    #[test]
    fn anyone_accepts_non_members() {
        let l = list("posting: anyone");
        assert_eq!(
            decide(
                &view(PLAIN),
                "ann@example.org",
                &l,
                D,
                1 << 20,
                &Facts::default()
            ),
            PostAction::Accept
        );
    }

    #[test]
    fn members_policy_follows_nonmember_posts() {
        let v = view(PLAIN);
        let f = Facts::default();
        let l = list("posting: members\nnonmember_posts: hold");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            PostAction::Hold(HoldReason::NonMember)
        );
        let l = list("posting: members\nnonmember_posts: reject");
        match decide(&v, "a@x", &l, D, 1 << 20, &f) {
            PostAction::Reject(550, t) => {
                assert!(t.contains("Only members may post to dev@"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        let l = list("posting: members\nnonmember_posts: discard");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            PostAction::Discard(DiscardReason::NonMember)
        );
        // moderators and accept-listed senders count as allowed
        let l = list("posting: members\nnonmember_posts: reject");
        let m = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &m), PostAction::Accept);
        let a = Facts {
            sender_rule: Some(SenderRule::Accept),
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &a), PostAction::Accept);
    }

    #[test]
    fn moderated_holds_everything_even_members() {
        let l = list("posting: moderated");
        let m = Facts {
            is_member: true,
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &m),
            PostAction::Hold(HoldReason::Moderated)
        );
    }

    #[test]
    fn announce_only_moderators_post() {
        let v = view(PLAIN);
        let l = list("posting: announce\nnonmember_posts: hold\nsender_verification: none");
        let m = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &m), PostAction::Accept);
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::AnnounceOnly)
        );
        let l = list("posting: announce\nnonmember_posts: reject");
        match decide(&v, "a@x", &l, D, 1 << 20, &member()) {
            PostAction::Reject(550, t) => assert!(t.contains("owners and moderators"), "{t}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversize_is_held_by_default_or_rejected_by_choice() {
        let v = view(PLAIN);
        let l = list("posting: anyone\nmax_message_size: 10");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::TooBig {
                size: v.size,
                limit: 10
            })
        );
        let l = list("posting: anyone\nmax_message_size: 10\noversize_posts: reject");
        match decide(&v, "a@x", &l, D, 1 << 20, &member()) {
            PostAction::Reject(552, t) => assert!(t.contains("at most 10 bytes"), "{t}"),
            other => panic!("{other:?}"),
        }
        // no list limit: the global one (the SMTP intake enforces it first)
        let l = list("posting: anyone");
        assert!(matches!(
            decide(&v, "a@x", &l, D, 20, &member()),
            PostAction::Hold(HoldReason::TooBig { limit: 20, .. })
        ));
        assert_eq!(
            decide(&v, "a@x", &l, D, v.size, &member()),
            PostAction::Accept
        );
        // the SMTP intake only enforces a list's own limit when it rejects
        assert_eq!(list("max_message_size: 10").smtp_size_limit(1000), 1000);
        assert_eq!(
            list("max_message_size: 10\noversize_posts: reject").smtp_size_limit(1000),
            10
        );
        // a non-member on a rejecting list is refused as a non-member, not held for size
        let l = list("posting: members\nnonmember_posts: reject\nmax_message_size: 10");
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &Facts::default()),
            PostAction::Reject(550, _)
        ));
    }

    #[test]
    fn suspicious_headers_from_hold_headers() {
        let l = list(
            "posting: anyone\nhold_headers:\n  - header: X-Spam-Flag\n    pattern: '^yes'\n  \
             - header: subject\n    pattern: 'viagra|casino'\n",
        );
        let got = decide(
            &view(&format!("X-Spam-Flag: YES\r\n{PLAIN}")),
            "a@x",
            &l,
            D,
            1 << 20,
            &member(),
        );
        match got {
            PostAction::Hold(HoldReason::SuspiciousHeader(w)) => {
                assert!(w.contains("X-Spam-Flag: YES"), "{w}");
                assert!(w.contains("`^yes`"), "{w}");
            }
            other => panic!("{other:?}"),
        }
        // the decoded (RFC 2047) subject counts too; folded values are unfolded
        let encoded = PLAIN.replace(
            "Subject: hi",
            "Subject: =?utf-8?q?cheap_CAS?=\r\n =?utf-8?q?INO?=",
        );
        assert!(matches!(
            decide(&view(&encoded), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::SuspiciousHeader(_))
        ));
        for clean in [
            format!("X-Spam-Flag: no\r\n{PLAIN}"),
            format!("X-Other: yes\r\n{PLAIN}"),
        ] {
            assert_eq!(
                decide(&view(&clean), "a@x", &l, D, 1 << 20, &member()),
                PostAction::Accept
            );
        }
    }

    #[test]
    fn implicit_destination_and_acceptable_aliases() {
        let l = list("posting: anyone");
        let elsewhere = PLAIN.replace("To: dev@lists.example.org", "To: other@example.com");
        assert_eq!(
            decide(&view(&elsewhere), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::ImplicitDestination)
        );
        let no_to = PLAIN.replace("To: dev@lists.example.org\r\n", "");
        assert_eq!(
            decide(&view(&no_to), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::ImplicitDestination)
        );
        // Cc, any case, a display name, Resent-To all count
        for ok in [
            PLAIN.replace(
                "To: dev@lists.example.org",
                "To: x@example.com\r\nCc: \"Dev\" <DEV@Lists.Example.ORG>",
            ),
            PLAIN.replace(
                "To: dev@lists.example.org",
                "To: x@example.com\r\nResent-To: dev@lists.example.org",
            ),
        ] {
            assert_eq!(
                decide(&view(&ok), "a@x", &l, D, 1 << 20, &member()),
                PostAction::Accept,
                "{ok}"
            );
        }
        let l = list("posting: anyone\nacceptable_aliases: [dev@example.org]");
        let alias = PLAIN.replace("To: dev@lists.example.org", "To: Dev@example.org");
        assert_eq!(
            decide(&view(&alias), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        let l = list("posting: anyone\nrequire_explicit_destination: false");
        assert_eq!(
            decide(&view(&elsewhere), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
    }

    #[test]
    fn too_many_recipients() {
        let many = |n: usize| {
            let cc: Vec<String> = (0..n).map(|i| format!("p{i}@example.com")).collect();
            PLAIN.replace(
                "To: dev@lists.example.org",
                &format!("To: dev@lists.example.org\r\nCc: {}", cc.join(", ")),
            )
        };
        let l = list("posting: anyone");
        // the list + 9 = 10 addresses: fine; the list + 10: held
        assert_eq!(
            decide(&view(&many(9)), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        assert_eq!(
            decide(&view(&many(10)), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::TooManyRecipients { count: 11, max: 10 })
        );
        let l = list("posting: anyone\nmax_recipients: 0");
        assert_eq!(
            decide(&view(&many(50)), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
    }

    #[test]
    fn administrivia_in_subject_or_first_lines() {
        let l = list("posting: anyone");
        let held = |subject: &str, body: &str| {
            let raw = PLAIN
                .replace("Subject: hi", &format!("Subject: {subject}"))
                .replace("\r\n\r\nbody\r\n", &format!("\r\n\r\n{body}"));
            decide(&view(&raw), "a@x", &l, D, 1 << 20, &member())
        };
        for (subject, body) in [
            ("unsubscribe", "body\r\n"),
            ("Subscribe dev", "body\r\n"),
            ("hello", "\r\n  unsubscribe dev ann@example.org\r\n"),
            ("hello", "please\r\nsignoff\r\n"),
            ("hello", "leave me\r\n"),
        ] {
            assert!(
                matches!(
                    held(subject, body),
                    PostAction::Hold(HoldReason::Administrivia(_))
                ),
                "{subject} / {body}"
            );
        }
        for (subject, body) in [
            ("subscribe to our newsletter!", "body\r\n"),
            ("hello", "leave it to me\r\n"),
            ("join us", "body\r\n"),
            ("hello", "1\r\n2\r\n3\r\n4\r\n5\r\nunsubscribe\r\n"),
        ] {
            assert_eq!(
                held(subject, body),
                PostAction::Accept,
                "{subject} / {body}"
            );
        }
        let l = list("posting: anyone\nadministrivia: false");
        let raw = PLAIN.replace("Subject: hi", "Subject: unsubscribe");
        assert_eq!(
            decide(&view(&raw), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
    }

    #[test]
    fn no_subject_and_emergency_are_opt_in() {
        let raw = PLAIN.replace("Subject: hi\r\n", "");
        let l = list("posting: anyone");
        assert_eq!(
            decide(&view(&raw), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        let l = list("posting: anyone\nhold_no_subject: true");
        assert_eq!(
            decide(&view(&raw), "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::NoSubject)
        );
        let l = list("posting: anyone\nemergency: true");
        let m = Facts {
            is_moderator: true,
            sender_rule: Some(SenderRule::Accept),
            ..member()
        };
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &m),
            PostAction::Hold(HoldReason::Emergency)
        );
        let approved = Facts {
            pre_approved: true,
            ..Facts::default()
        };
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &approved),
            PostAction::Accept
        );
    }

    #[test]
    fn accepted_senders_skip_the_policy_but_not_the_message_checks() {
        // proven (else announce lists would wait for the sender's confirmation)
        let accepted = Facts {
            sender_rule: Some(SenderRule::Accept),
            verified_sender: true,
            ..Facts::default()
        };
        for policy in ["members", "moderated", "announce"] {
            let l = list(&format!("posting: {policy}\nnonmember_posts: hold"));
            assert_eq!(
                decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &accepted),
                PostAction::Accept,
                "{policy}"
            );
            let elsewhere = PLAIN.replace("To: dev@lists.example.org", "To: x@example.com");
            assert_eq!(
                decide(&view(&elsewhere), "a@x", &l, D, 1 << 20, &accepted),
                PostAction::Hold(HoldReason::ImplicitDestination),
                "{policy}"
            );
            let auto = format!("Auto-Submitted: auto-replied\r\n{PLAIN}");
            assert_eq!(
                decide(&view(&auto), "a@x", &l, D, 1 << 20, &accepted),
                PostAction::Hold(HoldReason::AutoReply),
                "{policy}"
            );
        }
    }

    #[test]
    fn config_errors_for_the_new_keys_name_file_and_line() {
        let p = std::path::Path::new("dev.yaml");
        let e = ListConfig::parse(
            p,
            "dev",
            "posting: anyone\nhold_headers:\n  - header: X-Spam\n    pattern: '(unclosed'\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line.map(|l| l.0), Some(4), "{}", e[0]);
        assert!(
            e[0].message.contains("not a valid regular expression"),
            "{}",
            e[0]
        );
        let e = ListConfig::parse(
            p,
            "dev",
            "hold_headers:\n  - header: 'X Spam:'\n    pattern: yes\n",
        )
        .unwrap_err();
        assert_eq!(e[0].line.map(|l| l.0), Some(2), "{}", e[0]);
        assert!(e[0].message.contains("not a header field name"), "{}", e[0]);
        let e = ListConfig::parse(p, "dev", "acceptable_aliases: [not an address]\n").unwrap_err();
        assert_eq!(e[0].line.map(|l| l.0), Some(1), "{}", e[0]);
        let e = ListConfig::parse(p, "dev", "oversize_posts: bounce\n").unwrap_err();
        assert_eq!(e[0].line.map(|l| l.0), Some(1), "{}", e[0]);
        let e = ListConfig::parse(p, "dev", "max_recipients: -1\n").unwrap_err();
        assert_eq!(e[0].line.map(|l| l.0), Some(1), "{}", e[0]);
    }

    #[test]
    fn loops_are_discarded_before_anything_else() {
        let l = list("posting: anyone");
        let v = view(&format!("List-Id: <dev.{D}>\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Discard(DiscardReason::LoopListId)
        );
        let v = view(&format!("X-Loop: DEV@{D}\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Discard(DiscardReason::LoopXLoop)
        );
        // the forms mime::list_id reads: a missing `>`, a named X-Loop
        let v = view(&format!("List-Id: Dev <dev.{D} \r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Discard(DiscardReason::LoopListId)
        );
        let v = view(&format!("X-Loop: Dev list\r\n <dev@{D}>\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Discard(DiscardReason::LoopXLoop)
        );
        // another list's List-Id and X-Loop are fine
        let v = view(&format!(
            "List-Id: <other.{D}>\r\nX-Loop: other@{D}\r\n{PLAIN}"
        ));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        let dup = Facts {
            duplicate: true,
            ..member()
        };
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &dup),
            PostAction::Discard(DiscardReason::Duplicate("1@x".into()))
        );
    }

    #[test]
    fn bulk_and_auto_submitted_are_held_but_auto_submitted_no_is_not() {
        let l = list("posting: anyone");
        for (h, want) in [
            ("Precedence: bulk", Some(HoldReason::Bulk)),
            ("Precedence: junk", Some(HoldReason::Bulk)),
            ("Precedence: list", None),
            ("Auto-Submitted: auto-replied", Some(HoldReason::AutoReply)),
            (
                "Auto-Submitted: auto-generated",
                Some(HoldReason::AutoReply),
            ),
            ("Auto-Submitted: no", None),
        ] {
            let v = view(&format!("{h}\r\n{PLAIN}"));
            let got = decide(&v, "a@x", &l, D, 1 << 20, &member());
            match want {
                Some(r) => assert_eq!(got, PostAction::Hold(r), "{h}"),
                None => assert_eq!(got, PostAction::Accept, "{h}"),
            }
        }
    }

    #[test]
    fn pre_approval_skips_policy_and_message_checks_but_not_loops() {
        let l = list("posting: moderated\nmax_message_size: 10");
        let f = Facts {
            pre_approved: true,
            ..Facts::default()
        };
        assert_eq!(
            decide(
                &view(&format!("Precedence: bulk\r\n{PLAIN}")),
                "a@x",
                &l,
                D,
                1 << 20,
                &f
            ),
            PostAction::Accept
        );
        let v = view(&format!("X-Loop: dev@{D}\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            PostAction::Discard(DiscardReason::LoopXLoop)
        );
        let bad = Facts {
            bad_approved_password: true,
            is_member: true,
            ..Facts::default()
        };
        let l = list("posting: anyone");
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &bad),
            PostAction::Hold(HoldReason::BadApprovedPassword)
        );
    }

    #[test]
    fn null_sender_is_never_rejected() {
        let l = list("posting: members\nnonmember_posts: reject");
        match decide(&view(PLAIN), "", &l, D, 1 << 20, &Facts::default()) {
            PostAction::Discard(DiscardReason::NullSenderReject(why)) => {
                assert!(why.contains("Only members"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sender_rules() {
        let l = list("posting: anyone");
        let v = view(PLAIN);
        let with = |r| Facts {
            sender_rule: Some(r),
            ..member()
        };
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &with(SenderRule::Discard)),
            PostAction::Discard(DiscardReason::SenderRule)
        );
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &with(SenderRule::Reject)),
            PostAction::Reject(550, _)
        ));
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &with(SenderRule::Hold)),
            PostAction::Hold(HoldReason::MemberModerated)
        ));
    }

    #[test]
    fn announce_lists_confirm_a_claimed_moderator_by_default() {
        let v = view(PLAIN);
        let l = list("posting: announce\nnonmember_posts: reject");
        assert_eq!(l.sender_verification(), SenderVerification::Confirm);
        assert_eq!(
            list("posting: members").sender_verification(),
            SenderVerification::None
        );
        let claimed = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &claimed),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::Moderator))
        );
        // an accept-listed sender claims its privilege by address too
        let accepted = Facts {
            sender_rule: Some(SenderRule::Accept),
            ..Facts::default()
        };
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &accepted),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::AcceptedSender))
        );
        // proven: a valid Approved:, or a verified sender (the DKIM seam)
        for proven in [
            Facts {
                pre_approved: true,
                ..claimed.clone()
            },
            Facts {
                verified_sender: true,
                ..claimed.clone()
            },
        ] {
            assert_eq!(
                decide(&v, "a@x", &l, D, 1 << 20, &proven),
                PostAction::Accept
            );
        }
        // a plain member is refused as before: no privilege claimed
        match decide(&v, "a@x", &l, D, 1 << 20, &member()) {
            PostAction::Reject(550, t) => assert!(t.contains("owners and moderators"), "{t}"),
            other => panic!("{other:?}"),
        }
        // the message checks come first: a moderator's approval is the proof
        let elsewhere = view(&PLAIN.replace("To: dev@lists.example.org", "To: x@example.com"));
        assert_eq!(
            decide(&elsewhere, "a@x", &l, D, 1 << 20, &claimed),
            PostAction::Hold(HoldReason::ImplicitDestination)
        );
    }

    #[test]
    fn sender_verification_on_other_policies() {
        let v = view(PLAIN);
        let accepted = Facts {
            sender_rule: Some(SenderRule::Accept),
            ..Facts::default()
        };
        let moderator = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        // moderated: an accept-listed sender skips moderation only when proven
        let l = list("posting: moderated\nsender_verification: confirm");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &accepted),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::AcceptedSender))
        );
        let l = list("posting: moderated");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &accepted),
            PostAction::Accept
        );
        // members, confirm: members are believed, a non-member moderator is not
        let l = list("posting: members\nsender_verification: confirm");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Accept
        );
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &moderator),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::Moderator))
        );
        // confirm_members: members prove themselves too
        let l = list("posting: members\nsender_verification: confirm_members");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            PostAction::Hold(HoldReason::SenderUnverified(ClaimedRole::Member))
        );
        // a list anyone may post to grants nothing by address
        let l = list("posting: anyone\nsender_verification: confirm_members");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &moderator),
            PostAction::Accept
        );
        // an unknown value is a configuration error on its line
        let e = ListConfig::parse(
            std::path::Path::new("dev.yaml"),
            "dev",
            "posting: announce\nsender_verification: dkim\n",
        )
        .unwrap_err();
        assert_eq!(e[0].line.map(|l| l.0), Some(2), "{}", e[0]);
    }
}
