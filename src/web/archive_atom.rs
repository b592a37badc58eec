//! The Atom feed (RFC 4287) of a public list archive, written by hand:
//! every text is XML-escaped, and characters XML 1.0 forbids (control
//! characters, U+FFFE, U+FFFF) are dropped, so any subject or address
//! makes a well-formed document.
//!
//! Trusts nothing in the entries (they come from archived mail).

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomEntry {
    /// An IRI naming the post for good (its message URL or a `tag:` URI).
    pub id: String,
    pub title: String,
    /// The message page, if the site's public URL is known.
    pub link: Option<String>,
    /// Unix seconds (the post's date).
    pub updated: i64,
    pub author: String,
    pub summary: String,
}

/// The feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomFeed {
    pub id: String,
    pub title: String,
    /// The feed's own URL and the archive page, if the public URL is known.
    pub self_link: Option<String>,
    pub link: Option<String>,
    /// The newest entry's time (or now, for an empty feed).
    pub updated: i64,
    pub entries: Vec<AtomEntry>,
}

/// `s` as XML character data or attribute value.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 in UTC.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn link(out: &mut String, rel: &str, href: &Option<String>) {
    if let Some(h) = href {
        out.push_str(&format!(
            "<link rel=\"{rel}\" href=\"{}\"/>\n",
            xml_escape(h)
        ));
    }
}

/// The feed as an Atom document.
pub fn render(feed: &AtomFeed) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(&format!("<id>{}</id>\n", xml_escape(&feed.id)));
    out.push_str(&format!("<title>{}</title>\n", xml_escape(&feed.title)));
    out.push_str(&format!("<updated>{}</updated>\n", rfc3339(feed.updated)));
    link(&mut out, "self", &feed.self_link);
    link(&mut out, "alternate", &feed.link);
    for e in &feed.entries {
        out.push_str("<entry>\n");
        out.push_str(&format!("<id>{}</id>\n", xml_escape(&e.id)));
        out.push_str(&format!("<title>{}</title>\n", xml_escape(&e.title)));
        out.push_str(&format!("<updated>{}</updated>\n", rfc3339(e.updated)));
        out.push_str(&format!(
            "<author><name>{}</name></author>\n",
            xml_escape(if e.author.is_empty() {
                "unknown"
            } else {
                &e.author
            })
        ));
        link(&mut out, "alternate", &e.link);
        out.push_str(&format!(
            "<summary type=\"text\">{}</summary>\n",
            xml_escape(&e.summary)
        ));
        out.push_str("</entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_character_data() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\u{ffff}\té"),
            "a&lt;b&gt;&amp;&quot;c&apos;\té"
        );
        let feed = AtomFeed {
            id: "tag:example.org,2026:dev".into(),
            title: "dev <archive>".into(),
            self_link: Some("http://h/archive/dev/atom.xml?a=1&b=2".into()),
            link: None,
            updated: 0,
            entries: vec![AtomEntry {
                id: "tag:example.org,2026:dev/1".into(),
                title: "]]><script>".into(),
                link: None,
                updated: 1_700_000_000,
                author: String::new(),
                summary: "x\u{0}y".into(),
            }],
        };
        let xml = render(&feed);
        assert!(xml.contains("<title>]]&gt;&lt;script&gt;</title>"), "{xml}");
        assert!(xml.contains("href=\"http://h/archive/dev/atom.xml?a=1&amp;b=2\""));
        assert!(xml.contains("<updated>2023-11-14T22:13:20Z</updated>"));
        assert!(xml.contains("<summary type=\"text\">xy</summary>"));
        assert!(xml.contains("<name>unknown</name>"));
        assert!(!xml.contains("<script"));
    }
}
