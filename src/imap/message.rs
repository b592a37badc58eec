//! One archived message as IMAP shows it: ENVELOPE, BODYSTRUCTURE and the
//! bytes of a body section (`BODY[1.2.MIME]`, `BODY[HEADER.FIELDS (..)]`,
//! ...), computed from the bytes with mail-parser. Pure functions; part
//! offsets are relative to the raw bytes of the message that holds them.
//!
//! Trusts nothing in the message: a malformed one still gets an envelope
//! and a body structure (text/plain), and a section that is not there is
//! empty.

use imap_codec::imap_types::body::{BasicFields, Body, BodyStructure, SpecificFields};
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address as EnvAddress, Envelope};
use imap_codec::imap_types::fetch::Section;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Nested messages deeper than this are shown as opaque parts.
const MAX_DEPTH: usize = 8;

/// A string for IMAP: quoted when it can be, else a literal.
pub fn istring(s: impl Into<Vec<u8>>) -> IString<'static> {
    let mut b: Vec<u8> = s.into();
    // a literal may not hold NUL (RFC 3501 CHAR8)
    b.iter_mut().filter(|c| **c == 0).for_each(|c| *c = b' ');
    IString::try_from(b).unwrap_or_else(|_| IString::try_from("").expect("empty string"))
}

fn nstring(s: Option<&str>) -> NString<'static> {
    NString(s.map(istring))
}

/// The body bytes of a section, raw (as in the message).
pub fn nbytes(b: &[u8]) -> NString<'static> {
    NString(Some(istring(b.to_vec())))
}

/// Parses a message; `None` only for empty input.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<EnvAddress<'static>> {
    let Some(a) = a else {
        return Vec::new();
    };
    a.iter()
        .map(|addr| {
            let full = addr.address.as_deref().unwrap_or("");
            let (mailbox, host) = match full.rsplit_once('@') {
                Some((m, h)) => (Some(m), Some(h)),
                None => (Some(full), None),
            };
            EnvAddress {
                name: nstring(addr.name.as_deref()),
                adl: NString::NIL,
                mailbox: nstring(mailbox),
                host: nstring(host),
            }
        })
        .collect()
}

/// The ENVELOPE of a message (RFC 3501 §7.4.2); Sender and Reply-To
/// default to From.
pub fn envelope(m: &Message<'_>) -> Envelope<'static> {
    let raw = |name: &'static str| m.header_raw(name).map(str::trim);
    let from = addresses(m.from());
    let or_from = |v: Vec<EnvAddress<'static>>| if v.is_empty() { from.clone() } else { v };
    Envelope {
        date: nstring(raw("Date")),
        subject: nstring(raw("Subject")),
        sender: or_from(addresses(m.sender())),
        reply_to: or_from(addresses(m.reply_to())),
        from: from.clone(),
        to: addresses(m.to()),
        cc: addresses(m.cc()),
        bcc: addresses(m.bcc()),
        in_reply_to: nstring(raw("In-Reply-To")),
        message_id: nstring(raw("Message-ID")),
    }
}

fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
    let (from, to) = (from as usize, (to as usize).min(raw.len()));
    raw.get(from..to).unwrap_or_default()
}

fn lines(b: &[u8]) -> u32 {
    memchr::memchr_iter(b'\n', b).count() as u32
}

/// The BODYSTRUCTURE of a message.
pub fn body_structure(m: &Message<'_>) -> BodyStructure<'static> {
    part_structure(m, 0, 0)
}

fn part_structure(m: &Message<'_>, id: usize, depth: usize) -> BodyStructure<'static> {
    let Some(p) = m.parts.get(id) else {
        return text_plain(0, 0);
    };
    if let PartType::Multipart(children) = &p.body {
        let bodies: Vec<BodyStructure<'static>> = children
            .iter()
            .filter(|c| (**c as usize) != id && depth < MAX_DEPTH * 4)
            .map(|c| part_structure(m, *c as usize, depth + 1))
            .collect();
        if let Ok(bodies) = Vec1::try_from(bodies) {
            let subtype = p
                .content_type()
                .and_then(|c| c.subtype())
                .unwrap_or("mixed");
            return BodyStructure::Multi {
                bodies,
                subtype: istring(subtype.to_ascii_uppercase()),
                extension_data: None,
            };
        }
    }
    let body = slice(&m.raw_message, p.offset_body, p.offset_end);
    let ct = p.content_type();
    let ctype = ct
        .map(|c| c.ctype().to_ascii_lowercase())
        .unwrap_or_else(|| "text".into());
    let subtype = ct
        .and_then(|c| c.subtype())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| {
            if ctype == "text" {
                "plain".into()
            } else {
                "octet-stream".into()
            }
        });
    let mut params: Vec<(IString<'static>, IString<'static>)> = ct
        .and_then(|c| c.attributes())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                istring(a.name.to_ascii_uppercase()),
                istring(a.value.to_string()),
            )
        })
        .collect();
    if ct.is_none() {
        params.push((istring("CHARSET"), istring("US-ASCII")));
    }
    let basic = BasicFields {
        parameter_list: params,
        id: nstring(p.content_id()),
        description: nstring(p.content_description()),
        content_transfer_encoding: istring(
            p.content_transfer_encoding()
                .unwrap_or("7BIT")
                .to_ascii_uppercase(),
        ),
        size: body.len() as u32,
    };
    let specific = match &p.body {
        PartType::Message(nested) if depth < MAX_DEPTH => SpecificFields::Message {
            envelope: Box::new(envelope(nested)),
            body_structure: Box::new(part_structure(nested, 0, depth + 1)),
            number_of_lines: lines(body),
        },
        _ if ctype == "text" => SpecificFields::Text {
            subtype: istring(subtype.to_ascii_uppercase()),
            number_of_lines: lines(body),
        },
        _ => SpecificFields::Basic {
            r#type: istring(ctype.to_ascii_uppercase()),
            subtype: istring(subtype.to_ascii_uppercase()),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: None,
    }
}

fn text_plain(size: u32, lines: u32) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring("CHARSET"), istring("US-ASCII"))],
                id: NString::NIL,
                description: NString::NIL,
                content_transfer_encoding: istring("7BIT"),
                size,
            },
            specific: SpecificFields::Text {
                subtype: istring("PLAIN"),
                number_of_lines: lines,
            },
        },
        extension_data: None,
    }
}

/// The part at an IMAP part path (`1.2.3`): the message holding it and its
/// index there.
fn locate<'m>(m: &'m Message<'m>, path: &[u32]) -> Option<(&'m Message<'m>, usize)> {
    let mut msg = m;
    let mut idx = 0usize;
    for (step, n) in path.iter().enumerate() {
        let n = *n as usize;
        let part = msg.parts.get(idx)?;
        match &part.body {
            PartType::Multipart(children) => idx = *children.get(n.checked_sub(1)?)? as usize,
            PartType::Message(nested) if step > 0 => {
                msg = nested;
                match &msg.parts.first()?.body {
                    PartType::Multipart(children) => {
                        idx = *children.get(n.checked_sub(1)?)? as usize
                    }
                    _ if n == 1 => idx = 0,
                    _ => return None,
                }
            }
            _ if step == 0 && n == 1 => {}
            _ => return None,
        }
    }
    Some((msg, idx))
}

/// The header block of part `idx` of `m` (with its empty line).
fn header_of<'a>(m: &'a Message<'a>, idx: usize) -> &'a [u8] {
    m.parts
        .get(idx)
        .map(|p| slice(&m.raw_message, p.offset_header, p.offset_body))
        .unwrap_or_default()
}

/// The message a part path names for HEADER / TEXT: the whole message
/// (no path), or a message/rfc822 part.
fn message_at<'m>(m: &'m Message<'m>, part: Option<&[u32]>) -> Option<&'m Message<'m>> {
    let Some(path) = part else {
        return Some(m);
    };
    let (msg, idx) = locate(m, path)?;
    match &msg.parts.get(idx)?.body {
        PartType::Message(nested) => Some(nested),
        _ => None,
    }
}

/// The header fields of `block` whose names are (or, with `not`, are not)
/// in `names`, then the empty line.
fn header_fields(block: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in block.split_inclusive(|&c| c == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&c| c == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = names.contains(&name) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The bytes of a FETCH BODY section of `raw` (`None`: the whole message).
pub fn section(raw: &[u8], section: Option<&Section<'_>>) -> Vec<u8> {
    let Some(section) = section else {
        return raw.to_vec();
    };
    let Some(m) = parse(raw) else {
        return Vec::new();
    };
    let path = |p: &Option<imap_codec::imap_types::fetch::Part>| {
        p.as_ref()
            .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect::<Vec<u32>>())
    };
    let names = |v: &Vec1<imap_codec::imap_types::core::AString<'_>>| {
        v.as_ref()
            .iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).to_ascii_lowercase())
            .collect::<Vec<String>>()
    };
    match section {
        Section::Part(p) => {
            let path: Vec<u32> = p.0.as_ref().iter().map(|n| n.get()).collect();
            match locate(&m, &path) {
                Some((msg, idx)) => {
                    let part = &msg.parts[idx];
                    slice(&msg.raw_message, part.offset_body, part.offset_end).to_vec()
                }
                None => Vec::new(),
            }
        }
        Section::Mime(p) => {
            let path: Vec<u32> = p.0.as_ref().iter().map(|n| n.get()).collect();
            locate(&m, &path)
                .map(|(msg, idx)| header_of(msg, idx).to_vec())
                .unwrap_or_default()
        }
        Section::Header(p) => message_at(&m, path(p).as_deref())
            .map(|msg| header_of(msg, 0).to_vec())
            .unwrap_or_default(),
        Section::Text(p) => message_at(&m, path(p).as_deref())
            .and_then(|msg| {
                let root = msg.parts.first()?;
                let end = if std::ptr::eq(msg, &m) {
                    msg.raw_message.len() as u32
                } else {
                    root.offset_end
                };
                Some(slice(&msg.raw_message, root.offset_body, end).to_vec())
            })
            .unwrap_or_default(),
        Section::HeaderFields(p, v) => message_at(&m, path(p).as_deref())
            .map(|msg| header_fields(header_of(msg, 0), &names(v), false))
            .unwrap_or_default(),
        Section::HeaderFieldsNot(p, v) => message_at(&m, path(p).as_deref())
            .map(|msg| header_fields(header_of(msg, 0), &names(v), true))
            .unwrap_or_default(),
    }
}
