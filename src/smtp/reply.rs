//! SMTP replies: a three-digit code, an optional RFC 3463 enhanced status
//! code, and one or more text lines, written in the RFC 5321 §4.2 form
//! (`code-text` on every line but the last, `code text` on the last).
//!
//! Trusts nothing in the text it is given: CR, LF and other control
//! characters are replaced so a reply can never break the framing.

/// One reply to one command (or to the end of DATA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code (`"2.1.0"`), written at the start of each line.
    /// `None` for the greeting, the EHLO/LHLO reply and 354.
    pub status: Option<&'static str>,
    /// The text lines; never empty.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: Option<&'static str>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (a single line if `lines` has one element).
    pub fn multi(code: u16, status: Option<&'static str>, lines: Vec<String>) -> Reply {
        let lines = if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        };
        Reply {
            code,
            status,
            lines,
        }
    }

    /// A 4xx or 5xx reply.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form of the reply to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        let code = self.code.to_string();
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(code.as_bytes());
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(s) = self.status {
                out.extend_from_slice(s.as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            if !line.chars().any(char::is_control) {
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
                continue;
            }
            for c in line.chars() {
                if c.is_control() {
                    out.push(b'?');
                } else {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (tests, logs).
    pub fn to_wire(&self) -> String {
        let mut v = Vec::new();
        self.write_to(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// The first line's text, for logs.
    pub fn summary(&self) -> String {
        format!(
            "{} {}{}",
            self.code,
            self.status.map(|s| format!("{s} ")).unwrap_or_default(),
            self.lines.first().map(String::as_str).unwrap_or("")
        )
    }
}

// The replies used in more than one place.

/// 421 when the server is shutting down.
pub fn shutting_down(hostname: &str) -> Reply {
    Reply::new(
        421,
        Some("4.3.2"),
        format!("{hostname} Service shutting down, closing transmission channel"),
    )
}

/// 421 for a connection past `smtp.max_connections`.
pub fn too_many_connections(hostname: &str) -> Reply {
    Reply::new(
        421,
        Some("4.7.0"),
        format!("{hostname} Too many connections, try again later"),
    )
}

/// 421 for one connection too many from the same client.
pub fn too_many_from_client(hostname: &str) -> Reply {
    Reply::new(
        421,
        Some("4.7.0"),
        format!("{hostname} Too many connections from your address, try again later"),
    )
}

/// 421 after the idle timeout.
pub fn idle_timeout(hostname: &str) -> Reply {
    Reply::new(
        421,
        Some("4.4.2"),
        format!("{hostname} Idle timeout exceeded, closing transmission channel"),
    )
}

/// 500 for an unrecognised command.
pub fn unknown_command() -> Reply {
    Reply::new(500, Some("5.5.1"), "Command unrecognized")
}

/// 502 for a command listd knows but does not implement.
pub fn not_implemented() -> Reply {
    Reply::new(502, Some("5.5.1"), "Command not implemented")
}

/// 503 for a command out of sequence.
pub fn bad_sequence(why: &str) -> Reply {
    Reply::new(
        503,
        Some("5.5.1"),
        format!("Bad sequence of commands: {why}"),
    )
}

/// 501 for a bad argument, naming the expected syntax.
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, Some("5.5.4"), format!("Syntax: {usage}"))
}

/// 451 for a local failure (the store did not commit).
pub fn local_error() -> Reply {
    Reply::new(
        451,
        Some("4.3.0"),
        "Requested action aborted: local error in processing, try again later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_forms() {
        assert_eq!(
            Reply::new(250, Some("2.0.0"), "OK").to_wire(),
            "250 2.0.0 OK\r\n"
        );
        assert_eq!(Reply::new(354, None, "Go").to_wire(), "354 Go\r\n");
        let r = Reply::multi(
            250,
            Some("2.1.5"),
            vec!["<a@x.org>".into(), "B <b@x.org>".into(), "<c@x.org>".into()],
        );
        assert_eq!(
            r.to_wire(),
            "250-2.1.5 <a@x.org>\r\n250-2.1.5 B <b@x.org>\r\n250 2.1.5 <c@x.org>\r\n"
        );
    }

    #[test]
    fn control_characters_cannot_break_framing() {
        let r = Reply::new(250, None, "a\r\n250 evil");
        assert_eq!(r.to_wire(), "250 a??250 evil\r\n");
        assert_eq!(Reply::multi(214, None, vec![]).to_wire(), "214 \r\n");
    }
}
