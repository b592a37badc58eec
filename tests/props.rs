//! Property tests over every parser, on stable: the same invariant checks
//! as the cargo-fuzz targets (`listd::fuzzing`, see `fuzz/`), driven by
//! proptest with structured and arbitrary inputs, plus the regression
//! inputs the fuzzers found. Case counts are kept small so the file runs
//! in seconds; the fuzzers do the long searches.

use listd::archive;
use listd::fuzzing::{self, decorate, digest, mbox, robot, smtp};
use listd::posts::rules::Facts;
use listd::smtp::Protocol;
use proptest::prelude::*;

/// `n` cases, unless `PROPTEST_CASES` asks for a longer run.
fn cases(n: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c.failure_persistence = None;
    c
}

/// Reply/forward prefixes, list tags and the characters that once broke
/// the stripper, glued in any order before any text.
fn subject() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Re:"),
        Just("RE: "),
        Just("AW:"),
        Just("Fwd: "),
        Just("Re[2]:"),
        Just("Re(3): "),
        Just("[dev] "),
        Just("["),
        Just("]"),
        Just(":"),
        Just("€"),
        Just("é("),
        Just(" "),
    ];
    (prop::collection::vec(token, 0..8), any::<String>())
        .prop_map(|(tokens, rest)| tokens.concat() + &rest)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn subject_prefix_stripping_is_a_suffix_and_idempotent(s in subject()) {
        robot::check_subject(&s);
    }

    #[test]
    fn robot_reads_any_bytes(data in any::<Vec<u8>>()) {
        robot::check(&data);
    }

    #[test]
    fn authentication_results_fields_read_any_bytes(data in any::<Vec<u8>>()) {
        fuzzing::auth::check(&data);
    }

    #[test]
    fn authentication_results_fields_read_header_like_text(
        lines in prop::collection::vec(
            "(Authentication-Results: ?(\\([a-z ]*\\) ?)?(lists\\.example\\.org|LISTS\\.EXAMPLE\\.ORG|mx\\.example\\.org|x)[; ]*(spf|dkim|dmarc)=(pass|fail) ?|Received: from x|From: a@b\\.c| folded|)",
            0..8,
        ),
    ) {
        fuzzing::auth::check(format!("{}\r\n\r\nbody", lines.join("\r\n")).as_bytes());
    }

    #[test]
    fn the_zone_parser_reads_any_text(data in any::<Vec<u8>>()) {
        fuzzing::auth::check_zone(&data);
    }

    #[test]
    fn bounces_read_any_bytes(data in any::<Vec<u8>>()) {
        fuzzing::bounce::check(&data);
    }

    #[test]
    fn bounces_read_dsn_like_text(
        lines in proptest::collection::vec(prop_oneof![
            Just("Final-Recipient: rfc822; a@b.example"),
            Just("Original-Recipient: rfc822;<é@x.example>"),
            Just("Final-Recipient: x400; junk"),
            Just("Action: failed"),
            Just("Action: delayed"),
            Just("Status: 5.1.1"),
            Just("Status: 5.7.999999"),
            Just("Diagnostic-Code: smtp; 550 5.1.10 no"),
            Just(" continued é"),
            Just(""),
            Just(":"),
            Just("€€€"),
        ], 0..24),
    ) {
        fuzzing::bounce::check(lines.join("\r\n").as_bytes());
    }

    #[test]
    fn robot_extracts_from_command_like_text(
        subject in subject(),
        lines in prop::collection::vec(
            prop_oneof![
                Just("subscribe dev".to_string()),
                Just("> quoted".to_string()),
                Just("\u{feff}help".to_string()),
                Just("end".to_string()),
                Just("-- ".to_string()),
                "[a-z €:.]{0,250}",
            ],
            0..12,
        ),
        max_bad in 0u32..5,
    ) {
        robot::check_extract(Some(&subject), Some(&lines.join("\n")), max_bad);
    }

    #[test]
    fn member_tokens_never_panic_verify_only_what_was_minted_and_round_trip(
        s in prop_oneof![
            any::<String>(),
            "[a-z0-9.-]{0,8}\n[a-zA-Z0-9.+é-]{0,10}@[a-z.]{0,10}",
            "AQAAAA[A-Za-z0-9_-]{0,90}",
        ],
    ) {
        fuzzing::member_token::check(s.as_bytes());
    }

    #[test]
    fn address_parsing_never_panics_on_unicode(s in any::<String>()) {
        fuzzing::address::run(&fuzzing::config(), &s);
    }

    #[test]
    fn addresses_round_trip_and_route(
        s in "<?[a-zA-Z0-9.+\"é -]{0,12}(-request|-confirm\\+x|-bounces)?@(lists\\.example\\.org|LISTS\\.Example\\.ORG|[a-z.é-]{0,10}|\\[[0-9.:]{0,8}\\])>?"
    ) {
        fuzzing::address::run(&fuzzing::config(), &s);
    }
}

/// One content line and how it ends (`\r` then `\n` make a good CRLF too).
fn data_line() -> impl Strategy<Value = (String, &'static str)> {
    (
        "[ -~]{0,18}",
        prop_oneof![
            6 => Just("\r\n"),
            1 => Just("\n"),
            1 => Just("\r"),
            1 => Just("\r\r\n"),
        ],
    )
}

proptest! {
    #![proptest_config(cases(128))]

    /// Content with any bare CR or LF is never stored (so never acked); a
    /// clean one is stored exactly once, whatever the chunking.
    #[test]
    fn smtp_session_never_acks_bare_line_ends(
        lines in prop::collection::vec(data_line(), 1..6),
        lmtp in any::<bool>(),
        chunk_seed in 0u8..16,
    ) {
        let mut input = Vec::new();
        for (text, eol) in &lines {
            if text.starts_with('.') {
                input.push(b'.');
            }
            input.extend_from_slice(text.as_bytes());
            input.extend_from_slice(eol.as_bytes());
        }
        let bare = !fuzzing::crlf_only(&input);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let drive = smtp::Drive {
            proto: if lmtp { Protocol::Lmtp } else { Protocol::Smtp },
            trusted: false,
            preamble: true,
            store_fails: false,
            chunk_seed,
        };
        let stored = smtp::run(drive, &input);
        prop_assert_eq!(stored, usize::from(!bare));
    }

    #[test]
    fn smtp_session_survives_any_bytes(data in any::<Vec<u8>>()) {
        smtp::check(&data);
    }
}

/// POP3 command lines, well-formed and not, in any order.
fn pop3_lines() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("USER ann@example.org+dev".to_string()),
        Just(format!("PASS {}", fuzzing::reader::PASSWORD)),
        Just("USER pub".to_string()),
        Just("PASS x".to_string()),
        "(STAT|LIST|UIDL|RETR|TOP|DELE|NOOP|RSET|CAPA|APOP pub) ?[0-9]{0,2} ?[0-9]{0,2}",
        "[ -~]{0,20}",
    ];
    (any::<u8>(), prop::collection::vec(line, 0..12)).prop_map(|(flags, lines)| {
        let mut out = vec![flags];
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn pop3_session_keeps_the_archive_and_crlf(data in prop_oneof![pop3_lines(), any::<Vec<u8>>()]) {
        fuzzing::reader::check_pop3(&data);
    }
}

/// IMAP command lines, well-formed and not, in any order.
fn imap_lines() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(format!("a LOGIN ann@example.org {}", fuzzing::reader::PASSWORD)),
        Just("a LOGIN anonymous x".to_string()),
        "b (SELECT|EXAMINE|STATUS) (dev|pub|INBOX|x)( \\(MESSAGES UIDNEXT\\))?",
        "c (UID )?FETCH [0-9*]{1,2}(:[0-9*]{1,2})? (FLAGS|ENVELOPE|BODYSTRUCTURE|BODY\\[\\]|BODY.PEEK\\[[0-9.]{0,5}(HEADER|TEXT|MIME)?\\]|RFC822(.SIZE|.HEADER|.TEXT)?|BODY\\[\\]<[0-9]{1,3}.[0-9]{1,3}>)",
        "d (UID )?SEARCH (ALL|BODY x|SUBJECT post|TEXT dot|FROM ann|NOT SEEN|OR 1 2|SINCE 1-Jan-2020|HEADER Subject x|1:\\*)",
        "e (STORE 1 \\+FLAGS \\\\Seen|COPY 1 x|EXPUNGE|CLOSE|NOOP|LIST \"\" \\*|IDLE|DONE|LOGOUT|CAPABILITY)",
        "[ -~]{0,24}",
    ];
    (any::<u8>(), prop::collection::vec(line, 0..10)).prop_map(|(flags, lines)| {
        let mut out = vec![flags];
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn imap_session_keeps_the_archive_and_crlf(data in prop_oneof![imap_lines(), any::<Vec<u8>>()]) {
        fuzzing::reader::check_imap(&data);
    }
}

/// A header block: some of the fields decoration cares about.
fn headers() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("From: Ann <ann@example.org>\r\n"),
        Just("Subject: Re: [dev] hello\r\n"),
        Just("Subject: =?UTF-8?B?UmU6IFtkZXZdIGNhZsOp?=\r\n"),
        Just("Message-ID: <m1@example.org>\r\n"),
        Just("List-Id: up <up.example.net>\r\n"),
        Just("Precedence: bulk\r\n"),
        Just("Reply-To: ann@example.org\r\n"),
        Just("X-Folded: a\r\n\tb\r\n"),
        Just("MIME-Version: 1.0\r\n"),
    ];
    prop::collection::vec(field, 0..6).prop_map(|f| f.concat())
}

/// A body with its Content-* fields: plain in each transfer encoding,
/// html, mixed, alternative, signed.
fn body() -> impl Strategy<Value = String> {
    let text = "[ -~é€]{0,40}(\r\n[ -~]{0,40}){0,3}\r?\n?";
    (text, 0usize..8).prop_map(|(t, kind)| {
        let ascii: String = t.chars().filter(char::is_ascii).collect();
        match kind {
            0 => format!("\r\n{ascii}"),
            1 => format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{t}"),
            2 => format!("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{ascii}=\r\n"),
            3 => {
                let b64 = listd::mime::transfer::base64_encode_lines(t.as_bytes(), "\r\n");
                format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}", String::from_utf8_lossy(&b64))
            }
            4 => format!("Content-Type: text/html\r\n\r\n<p>{t}</p>\r\n"),
            5 => format!("Content-Type: multipart/mixed; boundary=b1\r\n\r\npre\r\n--b1\r\nContent-Type: text/plain\r\n\r\n{ascii}\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n"),
            6 => format!("Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\n{ascii}\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>{t}</p>\r\n--alt--\r\n"),
            _ => format!("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\n{t}\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n"),
        }
    })
}

proptest! {
    #![proptest_config(cases(96))]

    /// Decoration keeps every leaf part (see `listd::fuzzing::decorate`).
    #[test]
    fn decoration_keeps_leaf_parts(
        head in headers(),
        body in body(),
        footer in prop_oneof![
            Just(None),
            Just(Some("-- \nDev list footer\n")),
            Just(Some("-- \nListe dév: €\n")),
        ],
        news in any::<bool>(),
        lf in any::<bool>(),
    ) {
        let mut m = head + &body;
        if lf {
            m = m.replace("\r\n", "\n");
        }
        let list = if news { "news" } else { "dev" };
        decorate::run(m.as_bytes(), list, footer, &Facts::default());
    }

    /// The 7-bit form keeps every leaf part (see `listd::fuzzing::seven_bit`).
    #[test]
    fn seven_bit_form_keeps_leaf_parts(head in headers(), body in body(), lf in any::<bool>()) {
        let mut m = head + &body;
        if lf {
            m = m.replace("\r\n", "\n");
        }
        fuzzing::seven_bit::run(m.as_bytes());
    }

    #[test]
    fn seven_bit_form_survives_any_bytes(data in any::<Vec<u8>>()) {
        fuzzing::seven_bit::check(&data);
    }

    #[test]
    fn decoration_and_rules_survive_any_bytes(data in any::<Vec<u8>>()) {
        decorate::check(&data);
    }

    #[test]
    fn digest_builders_never_panic(
        header in any::<String>(),
        footer in prop_oneof![Just(String::new()), any::<String>()],
        posts in prop::collection::vec(
            prop_oneof![
                any::<Vec<u8>>(),
                (headers(), body()).prop_map(|(h, b)| (h + &b).into_bytes()),
                "[-\r\n a-z]{0,80}".prop_map(String::into_bytes),
            ],
            0..5,
        ),
    ) {
        let posts: Vec<&[u8]> = posts.iter().map(Vec::as_slice).collect();
        digest::run(&header, &footer, &posts);
    }
}

/// One mbox message: a sender, a time and lines (some `From `-like).
fn mbox_message() -> impl Strategy<Value = (String, i64, Vec<u8>)> {
    let line = prop_oneof![
        Just("From here".to_string()),
        Just(">From there".to_string()),
        Just(">>From x".to_string()),
        Just(String::new()),
        Just("Message-ID: <same@x>".to_string()),
        "[ -~\r]{0,30}",
    ];
    (
        "[a-z]{1,8}@example\\.org",
        0i64..4_000_000_000,
        prop::collection::vec(line, 0..8),
        prop_oneof![Just("\n"), Just("\r\n")],
    )
        .prop_map(|(sender, t, lines, eol)| {
            let body: String = lines.iter().map(|l| format!("{l}{eol}")).collect();
            (sender, t, body.into_bytes())
        })
}

proptest! {
    #![proptest_config(cases(24))]

    /// What export wrote reads back as the same messages, and an import of
    /// it exports them again.
    #[test]
    fn mbox_reader_round_trips_what_export_wrote(
        msgs in prop::collection::vec(mbox_message(), 0..5),
    ) {
        let mut mbox = Vec::new();
        for (sender, t, bytes) in &msgs {
            mbox.extend(archive::mbox_entry(&archive::from_line(sender, *t), bytes));
        }
        let (read, err) = mbox::read_all(&mbox);
        prop_assert_eq!(err, None);
        prop_assert_eq!(read.len(), msgs.len());
        let dir = tempfile::tempdir().unwrap();
        mbox::check(&mbox, Some(dir.path()));
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mbox_reader_survives_any_bytes(
        data in prop_oneof![
            any::<Vec<u8>>(),
            "(From [a-z]{0,3}( Sat Nov 22 03:00:00 2025)?\r?\n([>F]?[ -~\r]{0,12}\r?\n?){0,4}){0,4}"
                .prop_map(String::into_bytes),
        ],
    ) {
        mbox::check(&data, None);
    }
}

/// Every seed in `fuzz/seeds/TARGET/`, the crash inputs the fuzzers found
/// among them (`regress_*`), through its target's check.
#[test]
fn fuzz_seeds_and_regressions_pass() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 13] = [
        ("auth_fields", fuzzing::auth::check),
        ("dns_zone", fuzzing::auth::check_zone),
        ("bounce_parse", fuzzing::bounce::check),
        ("smtp_session", smtp::check),
        ("robot_parse", robot::check),
        ("decorate", decorate::check),
        ("digest", digest::check),
        ("address", fuzzing::address::check),
        ("member_token", fuzzing::member_token::check),
        ("seven_bit", fuzzing::seven_bit::check),
        ("pop3_session", fuzzing::reader::check_pop3),
        ("imap_session", fuzzing::reader::check_imap),
        ("mbox", |b| {
            let dir = tempfile::tempdir().unwrap();
            mbox::check(b.get(1..).unwrap_or_default(), Some(dir.path()));
        }),
    ];
    let mut regressions = 0;
    for (target, check) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(seeds.join(target)).unwrap() {
            let path = entry.unwrap().path();
            regressions += usize::from(path.to_string_lossy().contains("regress_"));
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds for {target}");
    }
    assert!(regressions >= 2, "the regression inputs are missing");
}
