//! Mail addresses: parsing an RFC 5321 mailbox into local part and domain,
//! the comparison key that treats the domain case-insensitively and the
//! local part case-preservingly (RFC 5321 §2.4), and the coarser mailbox
//! key rate limits count by (every spelling of one mailbox shares it).
//!
//! Trusts nothing: every string here may come from the network or a file.

use std::fmt;

/// Longest address accepted anywhere (RFC 5321 §4.5.3.1: 64 + 1 + 255).
pub const MAX_ADDRESS_LEN: usize = 320;

/// A syntactically checked mailbox `local@domain`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than {MAX_ADDRESS_LEN} characters")]
    TooLong,
    #[error("address has no '@'")]
    NoAt,
    #[error("local part is empty or longer than 64 characters")]
    BadLocal,
    #[error("domain is empty or malformed")]
    BadDomain,
    #[error("address contains a space, control character or bracket")]
    BadChar,
}

impl Address {
    /// Parses `local@domain`, with or without surrounding angle brackets.
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let s = input.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s);
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        let at = s.rfind('@').ok_or(AddressError::NoAt)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() || local.len() > 64 {
            return Err(AddressError::BadLocal);
        }
        let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
        if !quoted
            && local
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || "<>()[]\\,;:\"".contains(c))
        {
            return Err(AddressError::BadChar);
        }
        if quoted && local.chars().any(|c| c.is_control()) {
            return Err(AddressError::BadChar);
        }
        if !valid_domain(domain) {
            return Err(AddressError::BadDomain);
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The comparison key: local part as written, domain lower-cased.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// The key of the mailbox behind every spelling of this address, for
    /// rate limits only (never for membership): the local part lower-cased,
    /// a `+tag` or `-tag` subaddress removed and dots dropped (as Gmail
    /// ignores them), so `Victim@`, `v.ictim+1@` and `victim-x@` all count
    /// as `victim@`. Merging two real people's budgets only makes both
    /// stricter.
    pub fn mailbox_key(&self) -> String {
        let lower = self.local.to_lowercase();
        if lower.starts_with('"') {
            return format!("{lower}@{}", self.domain);
        }
        let base = match lower.find(['+', '-']) {
            Some(i) if i > 0 => &lower[..i],
            _ => lower.as_str(),
        };
        let undotted: String = base.chars().filter(|&c| c != '.').collect();
        let local = if undotted.is_empty() { base } else { &undotted };
        format!("{local}@{}", self.domain)
    }
}

/// [`Address::mailbox_key`] of an address string, or the trimmed input
/// lower-cased when it does not parse.
pub fn mailbox_key(s: &str) -> String {
    match Address::parse(s) {
        Ok(a) => a.mailbox_key(),
        Err(_) => s.trim().to_lowercase(),
    }
}

/// The comparison key of an address string, or the trimmed input lower-cased
/// in its domain when it does not parse (so lookups never panic).
pub fn address_key(s: &str) -> String {
    match Address::parse(s) {
        Ok(a) => a.key(),
        Err(_) => s.trim().to_string(),
    }
}

/// Splits `Name <addr>` into (name, addr); a bare address has no name.
pub fn split_display_name(s: &str) -> (Option<String>, String) {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = s[..a].trim().trim_matches('"').trim();
            let name = (!name.is_empty()).then(|| name.to_string());
            (name, s[a + 1..b].trim().to_string())
        }
        _ => (None, s.to_string()),
    }
}

/// The entries of a pasted list of addresses: one a line or separated by
/// commas or semicolons (not those inside `"quotes"` or `<angle
/// brackets>`), trimmed; empty entries and `#` comment lines left out.
pub fn pasted_entries(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let (mut cur, mut quoted, mut angle) = (String::new(), false, false);
        for c in line.chars() {
            match c {
                '"' if !angle => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                ',' | ';' if !quoted && !angle => {
                    out.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        out.push(cur);
    }
    out.into_iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

fn valid_domain(d: &str) -> bool {
    if d.is_empty() || d.len() > 255 {
        return false;
    }
    if let Some(lit) = d.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return !lit.is_empty()
            && lit
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ".:".contains(c) || c.is_ascii_alphabetic());
    }
    d.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_idn_char(c))
    })
}

/// A non-ASCII character allowed in a domain label (an IDN in UTF-8, RFC
/// 6531), never white space or a control: a domain ending in U+2008 printed
/// with it and then trimmed to another address.
fn is_idn_char(c: char) -> bool {
    !c.is_ascii() && !c.is_whitespace() && !c.is_control()
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_list_splits_on_lines_commas_and_semicolons_but_not_inside_names() {
        let text = "ann@example.org, bob@example.org\n# a comment\n\n\"Lee, Cy\" <cy@example.org>;dee@example.org\n  <e,f@example.org>  \né@x, ,";
        assert_eq!(
            pasted_entries(text),
            vec![
                "ann@example.org",
                "bob@example.org",
                "\"Lee, Cy\" <cy@example.org>",
                "dee@example.org",
                "<e,f@example.org>",
                "é@x",
            ]
        );
        assert_eq!(
            split_display_name("\"Lee, Cy\" <cy@example.org>"),
            (Some("Lee, Cy".into()), "cy@example.org".into())
        );
    }

    #[test]
    fn domain_folds_local_keeps_case() {
        let a = Address::parse("<Jane.Doe@Example.ORG>").unwrap();
        assert_eq!(a.key(), "Jane.Doe@example.org");
        assert_ne!(
            Address::parse("jane.doe@example.org").unwrap(),
            Address::parse("Jane.Doe@example.org").unwrap()
        );
        assert_eq!(
            Address::parse("x@EXAMPLE.org").unwrap(),
            Address::parse("x@example.org").unwrap()
        );
    }

    #[test]
    fn mailbox_key_merges_spellings_of_one_mailbox() {
        for a in [
            "victim@example.org",
            "Victim@EXAMPLE.org",
            "vIctim@example.org",
            "victim+1@example.org",
            "VICTIM-list@example.org",
            "v.ic.tim+x-y@example.org",
        ] {
            assert_eq!(mailbox_key(a), "victim@example.org", "{a}");
        }
        assert_eq!(mailbox_key("victim@other.org"), "victim@other.org");
        assert_eq!(mailbox_key("+x@example.org"), "+x@example.org");
        assert_eq!(mailbox_key("\"A.B\"@example.org"), "\"a.b\"@example.org");
        assert_eq!(mailbox_key("Ünï+x@example.org"), "ünï@example.org");
        assert_eq!(mailbox_key(" Not An Address "), "not an address");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(Address::parse("nobody"), Err(AddressError::NoAt));
        assert_eq!(Address::parse("@example.org"), Err(AddressError::BadLocal));
        assert_eq!(
            Address::parse("a b@example.org"),
            Err(AddressError::BadChar)
        );
        assert_eq!(Address::parse("a@exa..mple"), Err(AddressError::BadDomain));
        assert_eq!(Address::parse("a@-x.org"), Err(AddressError::BadDomain));
        assert!(Address::parse(&format!("{}@x.org", "a".repeat(65))).is_err());
        assert!(Address::parse("\"a b\"@example.org").is_ok());
        assert!(Address::parse("a@[127.0.0.1]").is_ok());
        assert!(Address::parse("a@bücher.example").is_ok());
        // found by fuzzing: Unicode white space in the domain
        assert_eq!(
            Address::parse("<e@n.\u{2008}g\u{2008}>"),
            Err(AddressError::BadDomain)
        );
        assert_eq!(
            Address::parse("a@x\u{85}y.org"),
            Err(AddressError::BadDomain)
        );
    }
}
