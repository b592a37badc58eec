//! The text both digest formats share: the masthead line, the table of
//! contents, and what goes around them (`Digest` is the issue as the
//! builders see it). Pure formatting, no I/O.

use super::item::Item;

/// One issue as the builders see it.
pub struct Digest<'a> {
    /// The list's name.
    pub list: &'a str,
    pub volume: i64,
    pub issue: i64,
    /// When the issue closed (unix seconds, UTC).
    pub now: i64,
    /// Top-level header fields (From, To, Subject, Date, Message-ID,
    /// List-*), already encoded for the wire; the builders add the MIME ones.
    pub headers: &'a [(String, String)],
    /// The rendered `header` template (may be empty).
    pub header_text: &'a str,
    /// The rendered `footer` template (may be empty).
    pub footer_text: &'a str,
}

impl Digest<'_> {
    /// `NAME Digest, Vol 3, Issue 12`: the Subject and the trailer's words.
    pub fn title(&self) -> String {
        title(self.list, self.volume, self.issue)
    }

    /// RFC 1153's masthead: `NAME Digest   Mon, 03 Jun 2024   Volume 3 : Issue 12`.
    pub fn masthead(&self) -> String {
        format!(
            "{} Digest    {}    Volume {} : Issue {}",
            self.list,
            crate::config::schedule::utc(self.now).format("%a, %d %b %Y"),
            self.volume,
            self.issue
        )
    }
}

/// `NAME Digest, Vol V, Issue I`.
pub fn title(list: &str, volume: i64, issue: i64) -> String {
    format!("{list} Digest, Vol {volume}, Issue {issue}")
}

/// `Today's Topics:`, a blank line, then `   N. Subject (Author)` per post
/// (decoded text, one line each). `\n` line ends.
pub fn toc(items: &[Item<'_>]) -> String {
    let mut s = String::from("Today's Topics:\n\n");
    if items.is_empty() {
        s.push_str("   (no posts in this issue)\n");
    }
    for (i, it) in items.iter().enumerate() {
        s.push_str(&format!("{:>4}. {} ({})\n", i + 1, it.subject, it.author));
    }
    s
}

/// The text part at the top of a digest: masthead, header text, contents.
/// `\n` line ends.
pub fn front_matter(d: &Digest<'_>, items: &[Item<'_>]) -> String {
    let mut s = d.masthead();
    s.push_str("\n\n");
    let header = d.header_text.trim_matches('\n');
    if !header.trim().is_empty() {
        s.push_str(header);
        s.push_str("\n\n");
    }
    s.push_str(&toc(items));
    s
}
