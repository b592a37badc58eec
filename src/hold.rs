//! Why a post is held, and the role its claimed sender would have: the
//! vocabulary the posting rules decide in and moderation stores and shows.
//!
//! A leaf, so the pure rules and the moderation handler share it without
//! depending on each other. Plain data; trusts nothing.

/// Why a post was held. The posting rules choose; moderation stores and shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// A non-member posted to a members-only list (`nonmember_posts: hold`).
    NonMember,
    /// The list is moderated: every post is held.
    Moderated,
    /// An announce list, and the poster is not an owner or moderator.
    AnnounceOnly,
    /// Larger than the list's size limit.
    TooBig { size: u64, limit: u64 },
    /// An auto-reply (`Auto-Submitted:` other than `no`).
    AutoReply,
    /// `Precedence: bulk` or `junk`.
    Bulk,
    /// A header that looks wrong; the text says which.
    SuspiciousHeader(String),
    /// An `Approved:` line whose password did not match. The poster is never
    /// told this reason.
    BadApprovedPassword,
    /// Neither To: nor Cc: names the list (`require_explicit_destination`).
    ImplicitDestination,
    /// More addresses in To/Cc than the list's `max_recipients`.
    TooManyRecipients { count: u32, max: u32 },
    /// The subject or a first line looks like a robot command (the line).
    Administrivia(String),
    /// An empty subject (`hold_no_subject`).
    NoSubject,
    /// The list's `emergency` switch is on: every post is held.
    Emergency,
    /// The poster is a member whose moderation flag is `hold`.
    MemberModerated,
    /// The post would pass only because of the role its claimed address
    /// has, and nothing proved that address (`sender_verification`): held
    /// until the address confirms by the token mailed to it.
    SenderUnverified(ClaimedRole),
    /// A member's post whose From: failed its domain's DMARC check at our
    /// intake (`require_dmarc_pass_for_members`).
    DmarcFail,
    /// Anything else, in words.
    Other(String),
}

impl HoldReason {
    /// The stored code.
    pub fn code(&self) -> &'static str {
        match self {
            HoldReason::NonMember => "non-member",
            HoldReason::Moderated => "moderated",
            HoldReason::AnnounceOnly => "announce-only",
            HoldReason::TooBig { .. } => "size",
            HoldReason::AutoReply => "auto-reply",
            HoldReason::Bulk => "bulk",
            HoldReason::SuspiciousHeader(_) => "suspicious-header",
            HoldReason::BadApprovedPassword => "bad-approved-password",
            HoldReason::ImplicitDestination => "implicit-destination",
            HoldReason::TooManyRecipients { .. } => "max-recipients",
            HoldReason::Administrivia(_) => "administrivia",
            HoldReason::NoSubject => "no-subject",
            HoldReason::Emergency => "emergency",
            HoldReason::MemberModerated => "member-moderated",
            HoldReason::SenderUnverified(_) => "sender-unverified",
            HoldReason::DmarcFail => "dmarc-fail",
            HoldReason::Other(_) => "other",
        }
    }

    /// The reason in words, for moderators.
    pub fn describe(&self) -> String {
        match self {
            HoldReason::NonMember => "post from a non-member".into(),
            HoldReason::Moderated => "the list is moderated".into(),
            HoldReason::AnnounceOnly => {
                "announce-only list: only owners and moderators may post".into()
            }
            HoldReason::TooBig { size, limit } => {
                format!("message is {size} bytes, larger than the list's limit of {limit} bytes")
            }
            HoldReason::AutoReply => "an auto-reply (Auto-Submitted)".into(),
            HoldReason::Bulk => "bulk or junk mail (Precedence)".into(),
            HoldReason::SuspiciousHeader(h) => format!("suspicious header: {h}"),
            HoldReason::BadApprovedPassword => "bad Approved password".into(),
            HoldReason::ImplicitDestination => {
                "implicit destination: the list's address is not in To or Cc".into()
            }
            HoldReason::TooManyRecipients { count, max } => {
                format!("too many recipients: {count} addresses in To/Cc, the list allows {max}")
            }
            HoldReason::Administrivia(line) => format!(
                "administrivia: `{line}` looks like a command for the robot, sent to the list"
            ),
            HoldReason::NoSubject => "the message has no subject".into(),
            HoldReason::Emergency => "the list is in emergency moderation".into(),
            HoldReason::MemberModerated => "the poster is a moderated member".into(),
            HoldReason::SenderUnverified(role) => format!(
                "unverified sender: the post claims to come from {}; it waits for that address to confirm it",
                role.describe()
            ),
            HoldReason::DmarcFail => {
                "the From: address failed its domain's DMARC check: it may be forged".into()
            }
            HoldReason::Other(s) => s.clone(),
        }
    }

    /// The reason as the poster may read it; `None` when the poster is not
    /// told why (a wrong `Approved:` password).
    pub fn poster_text(&self) -> Option<String> {
        match self {
            HoldReason::BadApprovedPassword => None,
            HoldReason::NonMember => {
                Some("you are not a member of the list, so a moderator looks at it first".into())
            }
            HoldReason::MemberModerated => {
                Some("a moderator reviews your posts to this list before they go out".into())
            }
            HoldReason::Administrivia(_) => Some(
                "it looks like a subscription command; commands go to the list's -request address, not to the list".into(),
            ),
            other => Some(other.describe()),
        }
    }
}

/// The role a post's claimed address has on the list, when that role is
/// what lets the post through (see `sender_verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimedRole {
    /// An owner or a moderator.
    Moderator,
    /// A sender on the accept list (or a member whose flag is `accept`).
    AcceptedSender,
    /// A member (`sender_verification: confirm_members`).
    Member,
}

impl ClaimedRole {
    /// The role in words: "an owner or moderator of the list".
    pub fn describe(self) -> &'static str {
        match self {
            ClaimedRole::Moderator => "an owner or moderator of the list",
            ClaimedRole::AcceptedSender => "a sender the moderators always accept",
            ClaimedRole::Member => "a member of the list",
        }
    }
}
