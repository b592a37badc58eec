//! List-Id (RFC 2919) and X-Loop values: building our own, and reading the
//! identifier or address out of a value found in a message.
//!
//! Trusts nothing in the values it reads: they are only cut at ASCII
//! angle brackets, trimmed and lower-cased, for the callers to compare.

use super::phrase;

/// The RFC 2919 list identifier of list `list` at `domain`: `list.domain`,
/// lower-cased.
pub fn id(list: &str, domain: &str) -> String {
    format!("{list}.{domain}").to_ascii_lowercase()
}

/// A List-Id value, `description <id>` (just `<id>` without a
/// description), the description a [`phrase::encode`]d phrase. Unfolded:
/// fold it with `header_block::fold`.
pub fn field_value(description: &str, id: &str) -> String {
    let d = description.trim();
    if d.is_empty() {
        return format!("<{id}>");
    }
    format!("{} <{id}>", phrase::encode(d, "List-Id: ".len()))
}

/// What stands in the last `<...>` of an unfolded value (to the end if the
/// `>` is missing), else the whole value; trimmed and lower-cased.
fn bracketed(value: &str) -> String {
    let inner = match value.rfind('<') {
        // `<` and `>` are ASCII: the cuts fall on char boundaries
        Some(open) => {
            let rest = &value[open + 1..];
            rest.find('>').map_or(rest, |close| &rest[..close])
        }
        None => value,
    };
    inner.trim().to_ascii_lowercase()
}

/// The identifier in an (unfolded) List-Id value: `Name <id>`,
/// `"Name" <id>`, `<id>` or a bare `id`.
pub fn parse(value: &str) -> String {
    bracketed(value)
}

/// The address in an (unfolded) X-Loop value: `addr`, `<addr>` or
/// `Name <addr>`.
pub fn parse_x_loop(value: &str) -> String {
    bracketed(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_id_values_parse_in_every_form() {
        assert_eq!(parse("\"Name\" <id.example.org>"), "id.example.org");
        assert_eq!(
            parse("Dev list <Dev.Lists.Example.org>"),
            "dev.lists.example.org"
        );
        assert_eq!(parse("<id.example.org>"), "id.example.org");
        assert_eq!(parse("  id.example.org "), "id.example.org");
        assert_eq!(
            parse("\"a <b> c\" < id.example.org > (comment)"),
            "id.example.org"
        );
        // a missing `>` still yields the identifier
        assert_eq!(parse("Name <id.example.org"), "id.example.org");
        assert_eq!(parse(""), "");
        assert_eq!(parse("é <X.example.org>ü"), "x.example.org");
    }

    #[test]
    fn x_loop_values_parse() {
        assert_eq!(
            parse_x_loop("Dev@Lists.Example.org"),
            "dev@lists.example.org"
        );
        assert_eq!(
            parse_x_loop(" <dev@lists.example.org> "),
            "dev@lists.example.org"
        );
        assert_eq!(
            parse_x_loop("Robot <dev@lists.example.org>"),
            "dev@lists.example.org"
        );
    }

    #[test]
    fn our_values_are_built_and_read_back() {
        let id = id("Dev", "Lists.Example.org");
        assert_eq!(id, "dev.lists.example.org");
        assert_eq!(field_value("", &id), "<dev.lists.example.org>");
        assert_eq!(
            field_value(" Dev talk ", &id),
            "Dev talk <dev.lists.example.org>"
        );
        assert_eq!(
            field_value("News, from: \"us\"", &id),
            "\"News, from: \\\"us\\\"\" <dev.lists.example.org>"
        );
        let v = field_value("Entwickler-Café", &id);
        assert!(
            v.starts_with("=?utf-8?b?") && v.ends_with(" <dev.lists.example.org>"),
            "{v}"
        );
        for d in ["", "Dev talk", "News, from: \"us\"", "Entwickler-Café"] {
            let v = field_value(d, &id);
            assert_eq!(parse(&v), id, "{v}");
            let raw = format!("List-Id: {v}\r\n\r\n");
            let p = mail_parser::MessageParser::default()
                .parse_headers(raw.as_bytes())
                .unwrap();
            assert!(format!("{:?}", p.list_id()).contains(&id), "{v}");
        }
    }
}
