//! Unit tests of the sans-IO session: no sockets, no database.

use super::*;
use crate::config::ListConfig;
use std::path::Path;

fn config() -> Arc<Config> {
    let mut c = Config::for_tests("lists.example.org", Path::new("/nonexistent"));
    c.smtp.hostname = "lists.example.org".into();
    c.smtp.max_message_size = 1000;
    c.smtp.max_recipients = 3;
    c.smtp.max_commands_per_minute = 20;
    for (name, yaml) in [
        ("dev", "expn: trusted\n"),
        ("secret", "expn: nobody\n"),
        (
            "open",
            "expn: anyone\nmax_message_size: 100\noversize_posts: reject\n",
        ),
        ("staff", "expn: owners\n"),
    ] {
        let l = ListConfig::parse(Path::new("x.yaml"), name, yaml).unwrap();
        c.lists.insert(name.into(), l);
    }
    Arc::new(c)
}

fn peer(trusted: bool) -> Peer {
    Peer {
        ip: Some("192.0.2.1".parse().unwrap()),
        trusted,
    }
}

/// A session plus what the fake driver saw.
struct T {
    s: Session,
    stored: Vec<Submission>,
    expanded: Vec<String>,
    store_result: Result<i64, String>,
    closed: bool,
    now: Moment,
}

impl T {
    fn new(proto: Protocol, trusted: bool) -> T {
        T::with_config(config(), proto, trusted)
    }

    fn with_config(config: Arc<Config>, proto: Protocol, trusted: bool) -> T {
        let now = Moment {
            unix: 1000,
            mono: std::time::Instant::now(),
        };
        T {
            now,
            s: Session::new(config, proto, peer(trusted), now),
            stored: vec![],
            expanded: vec![],
            store_result: Ok(7),
            closed: false,
        }
    }
    fn smtp() -> T {
        T::new(Protocol::Smtp, false)
    }

    /// Feeds input, runs the session like the server does, returns the output.
    fn io(&mut self, input: &str) -> String {
        self.io_bytes(input.as_bytes())
    }

    fn io_bytes(&mut self, input: &[u8]) -> String {
        self.s.receive(input);
        let mut out = Vec::new();
        loop {
            let step = self.s.advance(self.now);
            out.extend(self.s.take_output());
            match step {
                Step::NeedInput => break,
                Step::Close => {
                    self.closed = true;
                    break;
                }
                Step::Request(Request::Store(sub)) => {
                    self.stored.push(sub);
                    self.s
                        .complete(Completion::Stored(self.store_result.clone()));
                }
                Step::Request(Request::Expand { list }) => {
                    self.expanded.push(list);
                    self.s.complete(Completion::Expanded(Ok(vec![
                        ExpnEntry {
                            name: None,
                            address: "ann@example.org".into(),
                        },
                        ExpnEntry {
                            name: Some("Bob B".into()),
                            address: "bob@example.org".into(),
                        },
                    ])));
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Lets `ms` milliseconds of monotonic time pass.
    fn wait(&mut self, ms: u64) {
        self.now.mono += std::time::Duration::from_millis(ms);
    }

    fn hello(&mut self) {
        let verb = if self.s.proto == Protocol::Lmtp {
            "LHLO"
        } else {
            "EHLO"
        };
        self.io(""); // the greeting
        assert!(self
            .io(&format!("{verb} client.example\r\n"))
            .starts_with("250-"));
    }
}

fn codes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.len() >= 4 && &l[3..4] == " ")
        .map(|l| &l[..3])
        .collect()
}

#[test]
fn greeting_and_ehlo_extensions() {
    let mut t = T::smtp();
    assert_eq!(t.io(""), "220 lists.example.org ESMTP listd ready\r\n");
    let out = t.io("EHLO client.example\r\n");
    assert_eq!(
        out,
        "250-lists.example.org Hello client.example [192.0.2.1], pleased to meet you\r\n\
         250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n"
    );
    assert!(t
        .io("HELO other.example\r\n")
        .starts_with("250 lists.example.org Hello other.example"));
    assert_eq!(codes(&t.io("EHLO\r\n")), ["501"]);
    assert_eq!(codes(&t.io("LHLO x\r\n")), ["500"]);
}

#[test]
fn a_whole_transaction_is_stored_with_a_received_header() {
    let mut t = T::smtp();
    t.hello();
    let out = t.io("MAIL FROM: <alice@crepes.fr>\r\nRCPT TO: <dev@lists.example.org>\r\nDATA\r\n");
    assert_eq!(codes(&out), ["250", "250", "354"]);
    let out = t.io("Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n");
    assert!(out.starts_with("250 2.0.0 Ok: queued as "), "{out}");
    assert_eq!(t.stored.len(), 1);
    let sub = &t.stored[0];
    assert!(out.contains(&sub.queue_id));
    assert_eq!(sub.envelope.mail_from, "alice@crepes.fr");
    assert_eq!(
        sub.envelope.rcpts,
        vec![(
            "dev@lists.example.org".to_string(),
            crate::routing::Route::Post { list: "dev".into() }.into()
        )]
    );
    assert_eq!(sub.envelope.protocol, "ESMTP");
    assert_eq!(sub.envelope.helo, "client.example");
    assert_eq!(sub.envelope.client_ip.as_deref(), Some("192.0.2.1"));
    let text = String::from_utf8(sub.bytes.clone()).unwrap();
    assert!(text.starts_with(&format!(
        "Received: from client.example ([192.0.2.1])\r\n\tby lists.example.org (listd) with ESMTP id {}\r\n\tfor <dev@lists.example.org>; ",
        sub.queue_id
    )), "{text}");
    assert!(
        text.ends_with("\r\nSubject: x\r\n\r\n.leading dot\r\nbody\r\n"),
        "{text}"
    );
    // the transaction is over: a new MAIL is fine, DATA is not
    assert_eq!(codes(&t.io("DATA\r\n")), ["503"]);
    assert_eq!(codes(&t.io("QUIT\r\n")), ["221"]);
    assert!(t.closed);
}

#[test]
fn pipelined_commands_are_answered_in_order_in_one_flush() {
    let mut t = T::smtp();
    t.hello();
    let out = t.io(
        "MAIL FROM:<>\r\nRCPT TO:<nobody@lists.example.org>\r\nRCPT TO:<x@elsewhere.org>\r\n\
         RCPT TO:<dev-request@lists.example.org>\r\nNOOP\r\nDATA\r\nhi\r\n.\r\nRSET\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250", "550", "550", "250", "250", "354", "250", "250", "221"]
    );
    assert!(out.contains("550 5.1.1 <nobody@lists.example.org>: no such list or address"));
    assert!(out.contains("550 5.7.1 Relaying denied"));
    assert_eq!(t.stored[0].envelope.mail_from, "");
}

#[test]
fn sequence_errors_are_503() {
    let mut t = T::smtp();
    t.io("");
    assert!(t.io("MAIL FROM:<a@b.org>\r\n").starts_with("503 5.5.1"));
    t.io("EHLO x\r\n");
    assert_eq!(codes(&t.io("RCPT TO:<dev@lists.example.org>\r\n")), ["503"]);
    assert_eq!(codes(&t.io("DATA\r\n")), ["503"]);
    t.io("MAIL FROM:<a@b.org>\r\n");
    assert_eq!(codes(&t.io("MAIL FROM:<a@b.org>\r\n")), ["503"]);
    assert_eq!(codes(&t.io("DATA\r\n")), ["503"]);
    t.io("RCPT TO:<zzz@lists.example.org>\r\n");
    assert!(t
        .io("DATA\r\n")
        .starts_with("554 5.5.1 No valid recipients"));
}

#[test]
fn syntax_and_unknown_commands() {
    let mut t = T::new(Protocol::Smtp, true); // trusted: no command rate limit
    t.hello();
    for (line, code) in [
        ("FOO bar", "500"),
        ("SEND FROM:<a@b.org>", "502"),
        ("SOML FROM:<a@b.org>", "502"),
        ("SAML FROM:<a@b.org>", "502"),
        ("TURN", "502"),
        ("STARTTLS", "502"),
        ("MAIL FROM: crepes.fr", "501"),
        ("MAIL FROM:<a@@b>", "501"),
        ("MAIL FROM:<a@b.org> SIZE=abc", "501"),
        ("MAIL FROM:<a@b.org> FOO=1", "555"),
        ("MAIL FROM:<a@b.org> BODY=BINARYMIME", "555"),
        ("MAIL FROM:<a@b.org> RET=FULL", "555"),
        ("MAIL FROM:<a@b.org> SIZE=1001", "552"),
        ("MAIL FROM:<dé@b.org>", "553"),
        ("RSET x", "501"),
        ("DATA", "503"),
        ("VRFY", "501"),
        ("EXPN", "501"),
        ("HELP nosuch", "504"),
        ("QUIT now", "501"),
    ] {
        t.io("RSET\r\n");
        let out = t.io(&format!("{line}\r\n"));
        assert_eq!(codes(&out), [code], "{line}: {out}");
    }
    t.io("RSET\r\n");
    let out = t.io("MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME\r\nRCPT TO:<dev@lists.example.org> NOTIFY=NEVER\r\n");
    assert_eq!(codes(&out), ["250", "555"]);
    t.io("RSET\r\n");
    let out = t.io(
        "MAIL FROM:<dé@b.org> SMTPUTF8\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nx\r\n.\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "354", "250"]);
    assert!(String::from_utf8_lossy(&t.stored[0].bytes).contains("with UTF8SMTP id"));
}

#[test]
fn command_lines_over_512_octets_get_500_and_the_session_goes_on() {
    let mut t = T::smtp();
    t.hello();
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    assert!(t.io(&long).starts_with("500 5.5.2 Line too long"));
    // arriving in pieces, longer than the buffer would hold
    let mut out = t.io(&format!("NOOP {}", "y".repeat(5000)));
    out += &t.io(&"z".repeat(5000));
    out += &t.io("\r\nNOOP\r\n");
    assert_eq!(codes(&out), ["500", "250"]);
    // exactly 512 with CRLF is fine
    let ok = format!("NOOP {}\r\n", "x".repeat(512 - 7));
    assert_eq!(ok.len(), 512);
    assert_eq!(codes(&t.io(&ok)), ["250"]);
    assert_eq!(codes(&t.io("NOOP\rNOOP\r\n")), ["500"]);
    assert_eq!(codes(&t.io_bytes(b"NOOP \xff\r\n")), ["500"]);
    // LF-only command lines are tolerated
    assert_eq!(codes(&t.io("NOOP\n")), ["250"]);
}

#[test]
fn smuggling_attempts_are_rejected_and_nothing_is_stored() {
    for evil in [
        "x\n.\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nsmuggled\r\n.\r\n",
        "x\r\n.\nMAIL FROM:<evil@x.org>\r\n.\r\n",
        "x\r.\r\nMAIL FROM:<evil@x.org>\r\n.\r\n",
        "x\r\n.\rMAIL FROM:<evil@x.org>\r\n.\r\n",
    ] {
        let mut t = T::smtp();
        t.hello();
        t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
        let out = t.io(evil);
        assert_eq!(codes(&out), ["554"], "{evil:?}: {out}");
        assert!(out.contains("5.6.0") && out.contains("bare CR or bare LF"));
        assert!(t.stored.is_empty());
        // the session is in command mode again, at the real end of data
        assert_eq!(codes(&t.io("NOOP\r\n")), ["250"]);
    }
}

#[test]
fn data_limits() {
    let mut t = T::smtp();
    t.hello();
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    let out = t.io(&format!("{}\r\n.\r\n", "x".repeat(999)));
    assert!(
        out.starts_with("554 5.6.0 Message has a line longer than 998"),
        "{out}"
    );
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    let out = t.io(&format!("{}\r\n", "x".repeat(998)));
    assert_eq!(
        out, "",
        "a 998-octet line is fine (and over the limit of 1000 with the next)"
    );
    let out = t.io(".\r\n");
    assert_eq!(codes(&out), ["250"]);
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    let out = t.io(&"0123456789\r\n".repeat(100));
    assert_eq!(out, "");
    let out = t.io(".\r\n");
    assert!(out.starts_with("552 5.3.4"), "{out}");
    assert_eq!(t.stored.len(), 1);
}

#[test]
fn per_list_size_limit() {
    let mut t = T::smtp();
    t.hello();
    // declared on MAIL: refused at RCPT
    let out = t.io("MAIL FROM:<a@b.org> SIZE=500\r\nRCPT TO:<open@lists.example.org>\r\nRCPT TO:<dev@lists.example.org>\r\n");
    assert_eq!(codes(&out), ["250", "552", "250"]);
    t.io("RSET\r\n");
    // found at the end of data (SMTP: the whole message)
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<open@lists.example.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    let out = t.io(&format!("{}\r\n.\r\n", "x".repeat(200)));
    assert!(
        out.starts_with("552 5.3.4 Message too big for list open"),
        "{out}"
    );
    assert!(t.stored.is_empty());
}

#[test]
fn recipient_limit_is_452() {
    let mut t = T::smtp();
    t.hello();
    let out = t.io(
        "MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<dev-request@lists.example.org>\r\n\
         RCPT TO:<dev-owner@lists.example.org>\r\nRCPT TO:<open@lists.example.org>\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "250", "250", "452"]);
    assert!(out.contains("452 4.5.3"));
}

#[test]
fn duplicate_recipients_are_stored_once() {
    let mut t = T::smtp();
    t.hello();
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<dev@LISTS.example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(t.stored[0].envelope.rcpts.len(), 1);
    assert!(String::from_utf8_lossy(&t.stored[0].bytes).contains("for <dev@lists.example.org>"));
}

#[test]
fn store_failure_is_451_never_250() {
    let mut t = T::smtp();
    t.store_result = Err("disk full".into());
    t.hello();
    let out = t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&out), ["250", "250", "354", "451"]);
}

#[test]
fn ten_errors_in_a_row_close_with_421() {
    let mut t = T::new(Protocol::Smtp, true); // trusted: no command rate limit
    t.hello();
    // errors interrupted by a success do not add up
    let out = t.io(&("BOGUS\r\n".repeat(9) + "NOOP\r\n" + &"BOGUS\r\n".repeat(9)));
    assert!(!t.closed, "{out}");
    let out = t.io("BOGUS\r\nNOOP\r\n");
    assert!(t.closed);
    assert!(out.ends_with("500 5.5.1 Command unrecognized\r\n421 4.7.0 lists.example.org Too many errors in a row, closing transmission channel\r\n"), "{out}");
}

#[test]
fn command_rate_limit_for_untrusted_clients() {
    let mut t = T::smtp();
    t.hello(); // 1 command
    let out = t.io(&"NOOP\r\n".repeat(25));
    assert_eq!(codes(&out).iter().filter(|c| **c == "250").count(), 19);
    assert!(out.ends_with(
        "421 4.7.0 lists.example.org Too many commands, slow down and try again later\r\n"
    ));
    assert!(t.closed);
    // trusted clients are exempt
    let mut t = T::new(Protocol::Smtp, true);
    t.hello();
    assert_eq!(codes(&t.io(&"NOOP\r\n".repeat(25))).len(), 25);
    assert!(!t.closed);
}

#[test]
fn idle_timeout_and_shutdown() {
    let mut t = T::smtp();
    t.hello();
    t.s.timeout();
    assert!(String::from_utf8(t.s.take_output())
        .unwrap()
        .starts_with("421 4.4.2"));
    assert!(matches!(t.s.advance(t.now), Step::Close));

    // between transactions: 421 at once
    let mut t = T::smtp();
    t.hello();
    t.s.shutdown();
    assert!(t
        .io("")
        .starts_with("421 4.3.2 lists.example.org Service shutting down"));
    assert!(t.closed);

    // inside a transaction: finish it, then 421
    let mut t = T::smtp();
    t.hello();
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\n");
    t.s.shutdown();
    assert_eq!(codes(&t.io("DATA\r\n")), ["354"]);
    let out = t.io("x\r\n.\r\nMAIL FROM:<a@b.org>\r\n");
    assert_eq!(codes(&out), ["250", "421"]);
    assert!(t.closed);
    assert_eq!(t.stored.len(), 1);
}

#[test]
fn lmtp_answers_once_per_recipient() {
    let mut t = T::new(Protocol::Lmtp, false);
    assert!(t.io("").starts_with("220 lists.example.org LMTP"));
    assert_eq!(codes(&t.io("EHLO x\r\n")), ["500"]);
    assert_eq!(codes(&t.io("MAIL FROM:<a@b.org>\r\n")), ["503"]);
    assert!(t.io("LHLO client\r\n").contains("250 HELP"));
    let out = t.io(
        "MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<nope@lists.example.org>\r\n\
         RCPT TO:<open@lists.example.org>\r\nRCPT TO:<dev-request@lists.example.org>\r\nDATA\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "550", "250", "250", "354"]);
    let out = t.io(&format!("{}\r\n.\r\n", "x".repeat(200)));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("250 2.0.0 <dev@lists.example.org> Ok: queued as "));
    assert!(lines[1].starts_with("552 5.3.4 Message too big for list open"));
    assert!(lines[2].starts_with("250 2.0.0 <dev-request@lists.example.org> Ok: queued as "));
    assert_eq!(t.stored.len(), 1);
    assert_eq!(t.stored[0].envelope.rcpts.len(), 2);
    assert_eq!(t.stored[0].envelope.protocol, "LMTP");
    // a rejected message: every recipient gets the error
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<dev-owner@lists.example.org>\r\nDATA\r\n");
    let out = t.io("bad\nline\r\n.\r\n");
    assert_eq!(codes(&out), ["554", "554"]);
}

#[test]
fn help_vrfy_expn() {
    let mut t = T::smtp();
    t.hello();
    let out = t.io("HELP\r\n");
    assert!(out.starts_with("214-2.0.0 "), "{out}");
    assert!(out.ends_with("214 2.0.0 End of HELP info\r\n"));
    assert!(t.io("HELP rset\r\n").starts_with("214-2.0.0 RSET\r\n"));
    // untrusted: VRFY says 252 whatever the address
    assert!(t
        .io("VRFY <dev@lists.example.org>\r\n")
        .starts_with("252 2.5.0"));
    assert!(t.io("VRFY nobody\r\n").starts_with("252 2.5.0"));
    // EXPN policy for an untrusted client
    assert!(t.io("EXPN dev\r\n").starts_with("550 5.7.1"));
    assert!(t.io("EXPN staff\r\n").starts_with("550 5.7.1"));
    assert!(t.io("EXPN secret\r\n").starts_with("550 5.7.1"));
    assert!(t.io("EXPN nosuch\r\n").starts_with("550 5.1.1"));
    assert!(t.io("EXPN open@elsewhere.org\r\n").starts_with("550 5.1.1"));
    let out = t.io("EXPN <open@lists.example.org>\r\n");
    assert_eq!(
        out,
        "250-2.1.5 <ann@example.org>\r\n250 2.1.5 Bob B <bob@example.org>\r\n"
    );
    assert_eq!(t.expanded, ["open"]);

    let mut t = T::new(Protocol::Smtp, true);
    t.hello();
    assert!(t
        .io("VRFY <dev@lists.example.org>\r\n")
        .starts_with("250 2.1.5 <dev@lists.example.org>"));
    assert!(t
        .io("VRFY dev-request\r\n")
        .starts_with("250 2.1.5 <dev-request@lists.example.org>"));
    assert!(t.io("VRFY nobody\r\n").starts_with("550 5.1.1"));
    assert!(t.io("VRFY a@elsewhere.org\r\n").starts_with("550 5.7.1"));
    assert_eq!(codes(&t.io("EXPN dev\r\n")), ["250"]);
    assert_eq!(codes(&t.io("EXPN STAFF\r\n")), ["250"]);
    assert!(t.io("EXPN secret\r\n").starts_with("550 5.7.1"));
    assert_eq!(t.expanded, ["dev", "staff"]);
}

#[test]
fn helo_sessions_use_smtp_and_refuse_smtputf8() {
    let mut t = T::smtp();
    t.io("");
    t.io("HELO old.example\r\n");
    assert_eq!(codes(&t.io("MAIL FROM:<a@b.org> SMTPUTF8\r\n")), ["555"]);
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(t.stored[0].envelope.protocol, "SMTP");
    assert!(String::from_utf8_lossy(&t.stored[0].bytes).contains("with SMTP id"));
}

#[test]
fn expn_lookup_failure_is_451_and_stray_completions_are_ignored() {
    let mut t = T::new(Protocol::Smtp, true);
    t.hello();
    t.s.receive(b"EXPN dev\r\nNOOP\r\n");
    assert!(matches!(
        t.s.advance(t.now),
        Step::Request(Request::Expand { .. })
    ));
    t.s.complete(Completion::Expanded(Err("database is locked".into())));
    let out = t.io("");
    assert_eq!(codes(&out), ["451", "250"], "{out}");
    // a completion nobody asked for changes nothing
    t.s.complete(Completion::Stored(Ok(1)));
    assert_eq!(codes(&t.io("NOOP\r\n")), ["250"]);
}

fn limits_config(line: u64, rate: u64, session: u64) -> Arc<Config> {
    let mut c = (*config()).clone();
    c.smtp.command_deadline_secs = line;
    c.smtp.min_data_rate = rate;
    c.smtp.max_session_secs = session;
    Arc::new(c)
}

#[test]
fn a_dribbled_command_line_is_cut_off_at_its_deadline() {
    let mut t = T::with_config(limits_config(10, 0, 0), Protocol::Smtp, false);
    t.hello();
    // silence between commands is the idle timeout's, not the line's
    assert_eq!(t.s.deadline(), None);
    t.wait(60_000);
    assert_eq!(codes(&t.io("NOOP\r\n")), ["250"]);
    // the first byte starts the clock; later bytes do not restart it
    let first = t.now.mono;
    assert_eq!(t.io("NO"), "");
    assert_eq!(
        t.s.deadline(),
        Some(first + std::time::Duration::from_secs(10))
    );
    t.wait(9_000);
    assert_eq!(t.io("O"), "");
    t.wait(1_000);
    let out = t.io("P");
    assert!(
        out.starts_with("421 4.4.2 lists.example.org Error: timeout exceeded (command line"),
        "{out}"
    );
    assert!(t.closed);
    assert_eq!(t.s.deadline(), None);
}

#[test]
fn an_over_long_line_being_skipped_is_still_on_the_clock() {
    let mut t = T::with_config(limits_config(10, 0, 0), Protocol::Smtp, false);
    t.hello();
    assert_eq!(t.io(&"x".repeat(600)), "");
    t.wait(10_000);
    assert_eq!(codes(&t.io("")), ["421"]);
    assert!(t.closed);
}

#[test]
fn data_below_the_minimum_rate_is_421_and_not_stored() {
    let mut t = T::with_config(limits_config(10, 100, 0), Protocol::Smtp, false);
    t.hello();
    let out = t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    assert_eq!(codes(&out), ["250", "250", "354"]);
    // 500 bytes earn 5 s on top of the 10 s grace
    assert_eq!(t.io(&format!("{}\r\n", "x".repeat(498))), "");
    t.wait(14_900);
    assert_eq!(t.io(""), "");
    t.wait(100);
    let out = t.io("");
    assert!(
        out.contains("(message data slower than 100 bytes per second)"),
        "{out}"
    );
    assert!(t.closed);
    assert!(t.stored.is_empty());

    // fast enough: stored, and the command deadline applies again after it
    let mut t = T::with_config(limits_config(10, 100, 0), Protocol::Smtp, false);
    t.hello();
    t.io("MAIL FROM:<a@b.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n");
    t.wait(9_000);
    assert_eq!(codes(&t.io("x\r\n.\r\n")), ["250"]);
    assert_eq!(t.stored.len(), 1);
    assert_eq!(t.s.deadline(), None);
}

#[test]
fn the_session_cap_closes_even_a_busy_session() {
    let mut t = T::with_config(limits_config(10, 0, 30), Protocol::Smtp, true);
    t.hello();
    for _ in 0..5 {
        t.wait(5_000);
        assert_eq!(codes(&t.io("NOOP\r\n")), ["250"]);
    }
    t.wait(5_000);
    let out = t.io("");
    assert!(out.contains("(session longer than 30 seconds)"), "{out}");
    assert!(t.closed);
}

#[test]
fn no_limit_runs_while_the_driver_works() {
    let mut t = T::with_config(limits_config(10, 100, 30), Protocol::Smtp, true);
    t.hello();
    t.s.receive(b"EXPN dev\r\n");
    assert!(matches!(
        t.s.advance(t.now),
        Step::Request(Request::Expand { .. })
    ));
    assert_eq!(t.s.deadline(), None);
}
