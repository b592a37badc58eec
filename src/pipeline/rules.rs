//! Posting rules: decide what happens to a post, without changing anything.
//!
//! Input is plain data: a [`PostView`] read from the parsed message, the
//! envelope sender, the list's settings and [`Facts`] looked up beforehand
//! (membership, duplicate Message-ID, moderation's per-sender rules and
//! pre-approval). Output is an [`Action`]. No I/O, no clock, no mutation:
//! the caller acts on the decision (see `pipeline::post`).
//!
//! Trusts the facts it is given; trusts nothing in the view (header values
//! are compared, never interpreted further).

use crate::address::address_key;
use crate::config::{ListConfig, NonmemberAction, PostingPolicy};
use mail_parser::{Address, HeaderValue, Message};

/// Days a Message-ID counts as a duplicate on the same list.
pub const DUPLICATE_WINDOW_DAYS: i64 = 30;

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

impl PostView {
    /// Reads the view from a parsed message (`None`: nothing parsed, e.g. no
    /// header at all) of `size` bytes.
    pub fn from_message(m: Option<&Message<'_>>, size: u64) -> PostView {
        let Some(m) = m else {
            return PostView {
                size,
                ..PostView::default()
            };
        };
        let raw_all = |name: &str| -> Vec<String> {
            m.headers_raw()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| {
                    String::from_utf8_lossy(&super::header_block::unfold(v.as_bytes())).to_string()
                })
                .collect()
        };
        let list_ids = raw_all("List-Id")
            .into_iter()
            .map(|v| {
                let id = match (v.rfind('<'), v.rfind('>')) {
                    (Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
                    _ => v.clone(),
                };
                id.trim().to_ascii_lowercase()
            })
            .collect();
        let x_loops = raw_all("X-Loop")
            .into_iter()
            .map(|v| {
                let v = v.trim();
                let v = v
                    .strip_prefix('<')
                    .and_then(|v| v.strip_suffix('>'))
                    .unwrap_or(v);
                v.trim().to_ascii_lowercase()
            })
            .collect();
        let lower_first = |name: &str| -> Option<String> {
            text_values(m, name)
                .into_iter()
                .next()
                .or_else(|| raw_all(name).into_iter().next())
                .map(|v| v.trim().to_ascii_lowercase())
        };
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
        }
    }

    /// The poster: the From: address, else the envelope sender.
    pub fn poster<'a>(&'a self, env_from: &'a str) -> &'a str {
        self.from.as_deref().unwrap_or(env_from)
    }
}

/// A per-sender rule from the moderation data (accept/hold/reject/discard
/// lists, bans). Supplied by the moderation module once it exists.
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
}

/// Why a post is held: moderation's type (it stores and shows the reason).
pub use crate::moderation::HoldReason;

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
pub enum Action {
    Accept,
    Hold(HoldReason),
    /// An SMTP-like code and enhanced status + a sentence, sent to the poster.
    Reject(u16, String),
    Discard(DiscardReason),
}

/// The RFC 2919 list identifier: `NAME.domain`.
pub fn list_id(list: &str, domain: &str) -> String {
    format!("{list}.{domain}").to_ascii_lowercase()
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
) -> Action {
    let action = decide_inner(view, list, domain, global_max, facts);
    match action {
        Action::Reject(_, why) if env_from.is_empty() => {
            Action::Discard(DiscardReason::NullSenderReject(why))
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
) -> Action {
    let address = format!("{}@{domain}", list.name);
    // 1. loops
    let own_id = list_id(&list.name, domain);
    if view.list_ids.contains(&own_id) {
        return Action::Discard(DiscardReason::LoopListId);
    }
    let own_loop = address_key(&address).to_ascii_lowercase();
    if view.x_loops.iter().any(|l| address_key(l) == own_loop) {
        return Action::Discard(DiscardReason::LoopXLoop);
    }
    // 2. duplicates
    if facts.duplicate {
        return Action::Discard(DiscardReason::Duplicate(
            view.message_id.clone().unwrap_or_default(),
        ));
    }
    // 3. bans and per-sender reject/discard rules apply to everyone
    match facts.sender_rule {
        Some(SenderRule::Discard) => return Action::Discard(DiscardReason::SenderRule),
        Some(SenderRule::Reject) => {
            return Action::Reject(
                550,
                format!("5.7.1 The moderators of {address} do not accept posts from you."),
            )
        }
        _ => {}
    }
    // 4. size
    let limit = list.size_limit(global_max);
    if view.size > limit {
        return Action::Reject(
            552,
            format!(
                "5.3.4 The message is {} bytes; posts to {address} may be at most {limit} bytes.",
                view.size
            ),
        );
    }
    // 5. a valid Approved: pre-approval skips the remaining checks; a wrong
    //    password goes to the moderators
    if facts.pre_approved {
        return Action::Accept;
    }
    if facts.bad_approved_password {
        return Action::Hold(HoldReason::BadApprovedPassword);
    }
    // 6. automatic mail goes to a human
    if let Some(p) = view.precedence.as_deref() {
        if p == "bulk" || p == "junk" {
            return Action::Hold(HoldReason::Bulk);
        }
    }
    if let Some(a) = view.auto_submitted.as_deref() {
        if !a.is_empty() && a != "no" {
            return Action::Hold(HoldReason::AutoReply);
        }
    }
    if facts.sender_rule == Some(SenderRule::Hold) {
        return Action::Hold(HoldReason::Other(
            "the moderators review posts from this sender".into(),
        ));
    }
    // 7. posting policy
    let accepted_sender = facts.sender_rule == Some(SenderRule::Accept);
    let not_allowed = |hold: HoldReason, who: &str| match list.nonmember_posts {
        NonmemberAction::Hold => Action::Hold(hold),
        NonmemberAction::Reject => {
            Action::Reject(550, format!("5.7.1 Only {who} may post to {address}."))
        }
        NonmemberAction::Discard => Action::Discard(DiscardReason::NonMember),
    };
    match list.posting {
        PostingPolicy::Anyone => Action::Accept,
        PostingPolicy::Members => {
            if facts.is_member || facts.is_moderator || accepted_sender {
                Action::Accept
            } else {
                not_allowed(HoldReason::NonMember, "members")
            }
        }
        // a sender the moderators chose to always accept skips moderation
        PostingPolicy::Moderated if accepted_sender => Action::Accept,
        PostingPolicy::Moderated => Action::Hold(HoldReason::Moderated),
        PostingPolicy::Announce => {
            if facts.is_moderator || accepted_sender {
                Action::Accept
            } else {
                not_allowed(HoldReason::AnnounceOnly, "the owners and moderators")
            }
        }
    }
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
        PostView::from_message(m.as_ref(), raw.len() as u64)
    }

    const D: &str = "lists.example.org";
    const PLAIN: &str =
        "From: Ann <ann@example.org>\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n";

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
        let empty = PostView::from_message(None, 7);
        assert_eq!(empty.size, 7);
        assert_eq!(empty.poster("env@x"), "env@x");
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
            Action::Accept
        );
    }

    #[test]
    fn members_policy_follows_nonmember_posts() {
        let v = view(PLAIN);
        let f = Facts::default();
        let l = list("posting: members\nnonmember_posts: hold");
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &member()), Action::Accept);
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            Action::Hold(HoldReason::NonMember)
        );
        let l = list("posting: members\nnonmember_posts: reject");
        match decide(&v, "a@x", &l, D, 1 << 20, &f) {
            Action::Reject(550, t) => assert!(t.contains("Only members may post to dev@"), "{t}"),
            other => panic!("{other:?}"),
        }
        let l = list("posting: members\nnonmember_posts: discard");
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            Action::Discard(DiscardReason::NonMember)
        );
        // moderators and accept-listed senders count as allowed
        let l = list("posting: members\nnonmember_posts: reject");
        let m = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &m), Action::Accept);
        let a = Facts {
            sender_rule: Some(SenderRule::Accept),
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &a), Action::Accept);
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
            Action::Hold(HoldReason::Moderated)
        );
    }

    #[test]
    fn announce_only_moderators_post() {
        let v = view(PLAIN);
        let l = list("posting: announce\nnonmember_posts: hold");
        let m = Facts {
            is_moderator: true,
            ..Facts::default()
        };
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &m), Action::Accept);
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            Action::Hold(HoldReason::AnnounceOnly)
        );
        let l = list("posting: announce\nnonmember_posts: reject");
        match decide(&v, "a@x", &l, D, 1 << 20, &member()) {
            Action::Reject(550, t) => assert!(t.contains("owners and moderators"), "{t}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn size_limit_list_then_global() {
        let v = view(PLAIN);
        let l = list("posting: anyone\nmax_message_size: 10");
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            Action::Reject(552, _)
        ));
        let l = list("posting: anyone");
        assert!(matches!(
            decide(&v, "a@x", &l, D, 20, &member()),
            Action::Reject(552, _)
        ));
        assert_eq!(decide(&v, "a@x", &l, D, v.size, &member()), Action::Accept);
    }

    #[test]
    fn loops_are_discarded_before_anything_else() {
        let l = list("posting: anyone");
        let v = view(&format!("List-Id: <dev.{D}>\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            Action::Discard(DiscardReason::LoopListId)
        );
        let v = view(&format!("X-Loop: DEV@{D}\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &member()),
            Action::Discard(DiscardReason::LoopXLoop)
        );
        // another list's List-Id and X-Loop are fine
        let v = view(&format!(
            "List-Id: <other.{D}>\r\nX-Loop: other@{D}\r\n{PLAIN}"
        ));
        assert_eq!(decide(&v, "a@x", &l, D, 1 << 20, &member()), Action::Accept);
        let dup = Facts {
            duplicate: true,
            ..member()
        };
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &dup),
            Action::Discard(DiscardReason::Duplicate("1@x".into()))
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
                Some(r) => assert_eq!(got, Action::Hold(r), "{h}"),
                None => assert_eq!(got, Action::Accept, "{h}"),
            }
        }
    }

    #[test]
    fn pre_approval_skips_policy_but_not_loops_or_size() {
        let l = list("posting: moderated\nmax_message_size: 100000");
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
            Action::Accept
        );
        let v = view(&format!("X-Loop: dev@{D}\r\n{PLAIN}"));
        assert_eq!(
            decide(&v, "a@x", &l, D, 1 << 20, &f),
            Action::Discard(DiscardReason::LoopXLoop)
        );
        let bad = Facts {
            bad_approved_password: true,
            is_member: true,
            ..Facts::default()
        };
        let l = list("posting: anyone");
        assert_eq!(
            decide(&view(PLAIN), "a@x", &l, D, 1 << 20, &bad),
            Action::Hold(HoldReason::BadApprovedPassword)
        );
    }

    #[test]
    fn null_sender_is_never_rejected() {
        let l = list("posting: members\nnonmember_posts: reject");
        match decide(&view(PLAIN), "", &l, D, 1 << 20, &Facts::default()) {
            Action::Discard(DiscardReason::NullSenderReject(why)) => {
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
            Action::Discard(DiscardReason::SenderRule)
        );
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &with(SenderRule::Reject)),
            Action::Reject(550, _)
        ));
        assert!(matches!(
            decide(&v, "a@x", &l, D, 1 << 20, &with(SenderRule::Hold)),
            Action::Hold(HoldReason::Other(_))
        ));
    }
}
