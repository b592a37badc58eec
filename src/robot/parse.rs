//! Reading commands out of a command mail: the Subject and the first
//! text/plain part (an HTML-only body reduced to text), decoded by
//! mail-parser (quoted-printable, base64, RFC 2047 encoded-words).
//!
//! Pure functions over untrusted text: no line is ever executed here, only
//! classified. Reading stops at `end`, at a signature line (`--` / `-- `),
//! at a forwarding separator (`-----Original Message-----`, a line of
//! underscores), or after `max_bad_lines` lines that are not commands.
//! Quoted lines (`>`) and blank lines are skipped. Invisible format
//! characters (a byte-order mark, zero-width spaces) are removed first.

/// The verbs the robot knows, with their aliases folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Subscribe,
    Unsubscribe,
    Confirm,
    Help,
    Lists,
    Info,
    Who,
    Which,
    Set,
    /// The archive's months (Majordomo's and Sympa's `index`).
    Index,
    /// One archive month, mailed as an mbox.
    Get,
    /// A fresh app password for reading the archive over IMAP and POP3,
    /// mailed to the member's subscribed address.
    Password,
    /// Answers with its own words (Mailman's `echo`): is the robot there?
    Echo,
    /// An owner adds a member (Sympa's `ADD`), confirmed by the owner.
    Add,
    /// An owner removes a member (Sympa's `DEL`), confirmed by the owner.
    Del,
    End,
    Approve,
    Reject,
    Discard,
    /// Moderation: approve a held post and always accept its sender.
    Accept,
    /// Moderation: discard a held post and ban its sender.
    Ban,
}

impl Verb {
    /// Parses a command word, case-insensitively, with its aliases.
    pub fn parse(word: &str) -> Option<Verb> {
        Some(match word.to_ascii_lowercase().as_str() {
            "subscribe" | "join" => Verb::Subscribe,
            "unsubscribe" | "leave" | "signoff" => Verb::Unsubscribe,
            "confirm" => Verb::Confirm,
            "help" => Verb::Help,
            "lists" => Verb::Lists,
            "info" | "intro" => Verb::Info,
            "who" | "review" => Verb::Who,
            "which" => Verb::Which,
            "set" => Verb::Set,
            "index" => Verb::Index,
            "get" => Verb::Get,
            "password" => Verb::Password,
            "echo" => Verb::Echo,
            "add" => Verb::Add,
            "del" | "delete" => Verb::Del,
            "end" | "stop" => Verb::End,
            "approve" => Verb::Approve,
            "reject" => Verb::Reject,
            "discard" => Verb::Discard,
            "accept" => Verb::Accept,
            "ban" => Verb::Ban,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Subscribe => "subscribe",
            Verb::Unsubscribe => "unsubscribe",
            Verb::Confirm => "confirm",
            Verb::Help => "help",
            Verb::Lists => "lists",
            Verb::Info => "info",
            Verb::Who => "who",
            Verb::Which => "which",
            Verb::Set => "set",
            Verb::Index => "index",
            Verb::Get => "get",
            Verb::Password => "password",
            Verb::Echo => "echo",
            Verb::Add => "add",
            Verb::Del => "del",
            Verb::End => "end",
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::Discard => "discard",
            Verb::Accept => "accept",
            Verb::Ban => "ban",
        }
    }

    /// Verbs whose first argument is a token.
    pub fn takes_token(self) -> bool {
        matches!(
            self,
            Verb::Confirm | Verb::Approve | Verb::Reject | Verb::Discard | Verb::Accept | Verb::Ban
        )
    }
}

/// Longest line echoed back in a reply.
pub const MAX_ECHO: usize = 200;

/// One line of the mail, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The line as written (trimmed, control characters removed, shortened).
    pub text: String,
    /// `None`: not a command.
    pub verb: Option<Verb>,
    /// The words after the verb.
    pub args: Vec<String>,
    /// Taken from the Subject rather than the body.
    pub from_subject: bool,
}

impl CommandLine {
    /// Everything after the first `n` arguments, re-joined with spaces.
    pub fn rest_after(&self, n: usize) -> String {
        self.args
            .iter()
            .skip(n)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ran out of text.
    EndOfText,
    /// An `end` command.
    End,
    /// A signature or forwarding separator.
    Signature,
    /// Too many lines that are not commands.
    TooManyBadLines(u32),
}

/// The commands found in a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Commands and unknown lines, in order (the Subject's first).
    pub lines: Vec<CommandLine>,
    pub stop: Stop,
}

impl Extracted {
    /// Whether anything in the mail was a known command.
    pub fn has_commands(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.verb.is_some_and(|v| v != Verb::End))
    }
}

/// Invisible format characters some mail programs put in text: a byte-order
/// mark at the start of a body, zero-width spaces and joiners, soft hyphens.
/// They are removed, so `\u{feff}subscribe` is still `subscribe`.
const INVISIBLE: &[char] = &[
    '\u{feff}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{00ad}',
];

/// A line without its invisible characters.
fn visible(line: &str) -> std::borrow::Cow<'_, str> {
    if line.contains(INVISIBLE) {
        line.replace(INVISIBLE, "").into()
    } else {
        line.into()
    }
}

fn clean(line: &str) -> String {
    let s: String = visible(line)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.chars().count() > MAX_ECHO {
        let mut t: String = s.chars().take(MAX_ECHO).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// Classifies one line. Blank lines give `None`.
pub fn parse_line(line: &str) -> Option<CommandLine> {
    let text = clean(line);
    if text.is_empty() {
        return None;
    }
    let mut words = text.split_whitespace();
    let first = words.next()?;
    // "subscribe:" or "help." are still commands
    let verb = Verb::parse(first.trim_end_matches([':', '.', ',', ';']));
    let args = if verb.is_some() {
        words.map(str::to_string).collect()
    } else {
        Vec::new()
    };
    Some(CommandLine {
        text,
        verb,
        args,
        from_subject: false,
    })
}

/// Removes reply and forward prefixes (`Re:`, `Fwd:`, `AW:`, `SV:` ...) and
/// a leading `[tag]`.
pub fn strip_subject_prefixes(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        let before = s;
        if let Some(rest) = s.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                s = rest[end + 1..].trim_start();
            }
        }
        if let Some(colon) = s.find(':') {
            let prefix = s[..colon].trim().to_ascii_lowercase();
            // `Re[2]:` / `Re(2):` count like `Re:`
            // (char-safe: `find` and `strip_suffix` return boundaries)
            let counted = prefix.find(['[', '(']).and_then(|i| {
                let digits = prefix[i + 1..].strip_suffix([']', ')'])?;
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| prefix[..i].trim_end().to_string())
            });
            let prefix = counted.unwrap_or(prefix);
            if matches!(
                prefix.as_str(),
                "re" | "fw" | "fwd" | "aw" | "wg" | "sv" | "vs" | "antw" | "ref" | "tr" | "rif"
            ) {
                s = s[colon + 1..].trim_start();
            }
        }
        if s == before {
            return s;
        }
    }
}

fn is_separator(line: &str) -> bool {
    let t = line.trim_end();
    if t == "--" {
        return true;
    }
    let t = t.trim();
    if t.len() >= 5 && t.chars().all(|c| c == '_') {
        return true;
    }
    let lc = t.to_ascii_lowercase();
    lc.starts_with("-----original message")
        || lc.starts_with("----- original message")
        || lc.starts_with("-------- forwarded message")
        || lc.starts_with("---------- forwarded message")
        || lc.starts_with("-----begin pgp signature")
}

/// Extracts the commands of a mail from its Subject and body text.
///
/// A Subject counts only when its first word (after `Re:` and the like) is a
/// command; it is then processed first, unless the body repeats it or names
/// the same token (the body wins: `reject TOKEN` in the body of a reply to
/// `approve TOKEN` must not approve first).
pub fn extract(subject: Option<&str>, body: Option<&str>, max_bad_lines: u32) -> Extracted {
    let mut lines: Vec<CommandLine> = Vec::new();
    let mut bad = 0u32;
    let mut stop = Stop::EndOfText;
    if let Some(body) = body {
        for raw in body.lines() {
            let raw = visible(raw);
            let raw = raw.as_ref();
            if is_separator(raw) {
                stop = Stop::Signature;
                break;
            }
            let trimmed = raw.trim_start();
            if trimmed.starts_with('>') {
                continue;
            }
            let Some(cl) = parse_line(trimmed) else {
                continue;
            };
            match cl.verb {
                Some(Verb::End) => {
                    stop = Stop::End;
                    break;
                }
                Some(_) => lines.push(cl),
                None => {
                    bad += 1;
                    lines.push(cl);
                    if bad >= max_bad_lines.max(1) {
                        stop = Stop::TooManyBadLines(bad);
                        break;
                    }
                }
            }
        }
    }

    let subject_cmd = subject
        .map(strip_subject_prefixes)
        .and_then(parse_line)
        .filter(|c| c.verb.is_some_and(|v| v != Verb::End));
    if let Some(mut sc) = subject_cmd {
        let token_of = |c: &CommandLine| {
            c.verb
                .filter(|v| v.takes_token())
                .and_then(|_| c.args.first())
                .map(|t| t.to_ascii_lowercase())
        };
        let clash = lines.iter().any(|l| {
            (l.verb == sc.verb && l.args == sc.args)
                || (token_of(&sc).is_some() && token_of(&sc) == token_of(l))
        });
        if !clash {
            sc.from_subject = true;
            lines.insert(0, sc);
        }
    }

    // the same command twice in one mail runs once
    let mut seen: Vec<(Verb, Vec<String>)> = Vec::new();
    lines.retain(|l| match l.verb {
        None => true,
        Some(v) => {
            let key = (v, l.args.iter().map(|a| a.to_ascii_lowercase()).collect());
            if seen.contains(&key) {
                false
            } else {
                seen.push(key);
                true
            }
        }
    });
    Extracted { lines, stop }
}

/// Block-level HTML elements: each starts a new line in the text.
const BLOCKS: &[&str] = &[
    "div", "p", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol",
];

/// Reduces HTML to text for command reading: quoted `<blockquote>` parts
/// are dropped (they are the HTML form of `>` lines), block elements become
/// line breaks, and mail-parser's converter does the rest (tags, entities).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut depth = 0usize; // inside <blockquote>
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        if depth == 0 {
            out.push_str(&rest[..lt]);
        }
        let tail = &rest[lt + 1..];
        let closing = tail.starts_with('/');
        let name: String = tail
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let end = tail.find('>').map(|i| lt + 1 + i + 1).unwrap_or(rest.len());
        if name == "blockquote" {
            if closing {
                depth = depth.saturating_sub(1);
            } else {
                depth += 1;
            }
            out.push_str("<br>");
        } else if depth == 0 {
            if BLOCKS.contains(&name.as_str()) {
                out.push_str("<br>");
            }
            out.push_str(&rest[lt..end]);
        }
        rest = &rest[end..];
    }
    if depth == 0 {
        out.push_str(rest);
    }
    mail_parser::decoders::html::html_to_text(&out)
}

/// The Subject (decoded) and first text part (an HTML-only body reduced to
/// text) of a parsed mail.
pub fn subject_and_body(msg: &mail_parser::Message<'_>) -> (Option<String>, Option<String>) {
    let subject = msg.subject().map(str::to_string);
    let body = msg.text_part(0).and_then(|p| match &p.body {
        mail_parser::PartType::Text(t) => Some(t.to_string()),
        mail_parser::PartType::Html(h) => Some(html_to_text(h)),
        _ => None,
    });
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs(e: &Extracted) -> Vec<Option<&'static str>> {
        e.lines.iter().map(|l| l.verb.map(Verb::name)).collect()
    }

    #[test]
    fn several_commands_aliases_and_case() {
        let e = extract(
            None,
            Some("SUBSCRIBE dev\n\nJoin ops a@b.org\nsignoff x\nreview dev\nfrobnicate\nhelp\n"),
            25,
        );
        assert_eq!(
            verbs(&e),
            vec![
                Some("subscribe"),
                Some("subscribe"),
                Some("unsubscribe"),
                Some("who"),
                None,
                Some("help")
            ]
        );
        assert_eq!(e.lines[1].args, vec!["ops", "a@b.org"]);
        assert_eq!(e.stop, Stop::EndOfText);
    }

    #[test]
    fn stops_at_end_signature_separator_and_bad_lines() {
        let e = extract(None, Some("help\nend\nlists\n"), 25);
        assert_eq!(verbs(&e), vec![Some("help")]);
        assert_eq!(e.stop, Stop::End);

        let e = extract(None, Some("help\n-- \nlists\n"), 25);
        assert_eq!(verbs(&e), vec![Some("help")]);
        assert_eq!(e.stop, Stop::Signature);
        let e = extract(None, Some("help\r\n--\r\nlists\r\n"), 25);
        assert_eq!(e.stop, Stop::Signature);
        let e = extract(
            None,
            Some("help\n-----Original Message-----\nconfirm abc\n"),
            25,
        );
        assert_eq!(verbs(&e), vec![Some("help")]);
        let e = extract(None, Some("help\n________________\nlists\n"), 25);
        assert_eq!(verbs(&e), vec![Some("help")]);

        let body = "Hello robot,\nplease\nsign\nme\nhelp\n";
        let e = extract(None, Some(body), 3);
        assert_eq!(e.stop, Stop::TooManyBadLines(3));
        assert_eq!(verbs(&e), vec![None, None, None]);
    }

    #[test]
    fn invisible_characters_are_ignored() {
        // a byte-order mark before the first command, a zero-width space in
        // a quote marker and in a signature line, a soft hyphen in a verb
        let e = extract(
            Some("\u{feff}help"),
            Some("\u{feff}which\n\u{200b}> subscribe dev\nli\u{ad}sts\n-\u{200b}- \nunsubscribe\n"),
            25,
        );
        assert_eq!(verbs(&e), vec![Some("help"), Some("which"), Some("lists")]);
        assert_eq!(e.stop, Stop::Signature);
    }

    #[test]
    fn quoted_lines_are_ignored() {
        let e = extract(None, Some("> subscribe dev\n  > confirm x\nwhich\n"), 25);
        assert_eq!(verbs(&e), vec![Some("which")]);
    }

    #[test]
    fn subject_commands() {
        let e = extract(Some("Re: AW: confirm AbC"), Some("> quoted\n"), 25);
        assert_eq!(verbs(&e), vec![Some("confirm")]);
        assert!(e.lines[0].from_subject);
        assert_eq!(e.lines[0].args, vec!["AbC"]);
        // a subject that is not a command is silently ignored
        let e = extract(Some("Hello there"), Some("help"), 25);
        assert_eq!(verbs(&e), vec![Some("help")]);
        // the body repeats the subject: runs once
        let e = extract(Some("subscribe dev"), Some("subscribe dev\n"), 25);
        assert_eq!(verbs(&e), vec![Some("subscribe")]);
        assert!(!e.lines[0].from_subject);
        // body names the same token: the body wins
        let e = extract(Some("Re: approve tok"), Some("reject TOK spam\n"), 25);
        assert_eq!(verbs(&e), vec![Some("reject")]);
        assert_eq!(strip_subject_prefixes("[dev] Re: Fwd: help"), "help");
        assert_eq!(
            strip_subject_prefixes("Re[2]: RE (3): confirm x"),
            "confirm x"
        );
        assert_eq!(strip_subject_prefixes("Re[]: help"), "Re[]: help");
        assert_eq!(strip_subject_prefixes("Note(s): help"), "Note(s): help");
        assert_eq!(strip_subject_prefixes("Re:"), "");
        // a multi-byte character before the colon (this panicked once)
        assert_eq!(strip_subject_prefixes("Kosten (€: 5)"), "Kosten (€: 5)");
        assert_eq!(strip_subject_prefixes("Re(€): x"), "Re(€): x");
        assert_eq!(strip_subject_prefixes("[€] Re[2€]: x"), "Re[2€]: x");
    }

    #[test]
    fn long_and_control_lines_are_cleaned() {
        let long = format!("help {}", "x".repeat(1000));
        let e = extract(None, Some(&long), 25);
        assert_eq!(e.lines[0].text.chars().count(), MAX_ECHO + 1);
        let e = extract(None, Some("he\u{0}lp\u{7}"), 25);
        assert_eq!(e.lines[0].text, "he lp");
        assert!(e.lines[0].verb.is_none());
        assert!(!e.has_commands());
    }

    #[test]
    fn multipart_alternative_uses_the_plain_part_and_html_only_is_reduced() {
        let mime = "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
subscribe d=\r\nev\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>lists</p>\r\n--b--\r\n";
        let msg = mail_parser::MessageParser::default()
            .parse(mime.as_bytes())
            .unwrap();
        let (_, body) = subject_and_body(&msg);
        assert_eq!(body.unwrap().trim(), "subscribe dev");

        let html = "From: a@example.org\r\nSubject: =?utf-8?q?help?=\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PGh0bWw+PGJvZHk+PHA+d2hpY2g8L3A+PHA+bGlzdHM8L3A+PC9ib2R5PjwvaHRtbD4=\r\n";
        let msg = mail_parser::MessageParser::default()
            .parse(html.as_bytes())
            .unwrap();
        let (subject, body) = subject_and_body(&msg);
        assert_eq!(subject.as_deref(), Some("help"));
        let e = extract(subject.as_deref(), body.as_deref(), 25);
        assert_eq!(verbs(&e), vec![Some("help"), Some("which"), Some("lists")]);
    }

    #[test]
    fn html_blocks_are_lines_and_blockquotes_are_quotes() {
        let t = html_to_text(
            "<html><body><div dir=\"ltr\">subscribe dev</div><div>which&nbsp;</div>\
             <div class=\"gmail_quote\">On Mon wrote:<br><blockquote>confirm abc<div>unsubscribe</div>\
             <blockquote>help</blockquote></blockquote></div><DIV>lists</DIV></body></html>",
        );
        let e = extract(None, Some(&t), 25);
        assert_eq!(
            verbs(&e),
            vec![Some("subscribe"), Some("which"), None, Some("lists")],
            "{t:?}"
        );
        // unclosed tags and stray brackets do not panic
        let _ = html_to_text("<div<<>>a < b <blockquote");
        let _ = html_to_text("ü<é>ö</");
    }
}
