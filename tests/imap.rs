//! The list archives over IMAP4rev1 (RFC 3501), read-only, over real TCP
//! to the in-process daemon: the seed dialogue T16 (with §8's D12
//! correction: the FETCH literal's closing parenthesis is there; and the
//! mailbox is read-only, so STORE \Deleted is refused), every command and
//! error path, IDLE seeing a new post arrive, and Python's `imaplib`.

mod common;
mod reader_support;

use mail_parser::MessageParser;
use reader_support::{imap_posts, python, tagged, uids, Archive, LineClient, ANN, IMAP_DATES};

/// Every command family and its refusals, as an anonymous reader and as a
/// member; UIDs are the archive row ids and UIDVALIDITY is stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_and_error_path() {
    let a = Archive::start(|b| b).await;
    imap_posts(&a).await;
    a.post("pub", "public one", "Anyone may read this.", IMAP_DATES[0])
        .await;
    let pw = a.password(ANN, "dev").await;
    let ids = uids(&a, "dev");

    let mut c = LineClient::connect(a.imap_addr()).await;
    c.line().await;
    let r = c.imap("a1", "CAPABILITY").await;
    assert_eq!(
        r,
        [
            "* CAPABILITY IMAP4REV1 IDLE UNSELECT",
            "a1 OK CAPABILITY completed"
        ]
    );
    assert_eq!(c.imap("a2", "NOOP").await, ["a2 OK NOOP completed"]);
    assert_eq!(
        c.imap("a3", "SELECT dev").await,
        ["a3 BAD log in first (LOGIN)"]
    );
    assert_eq!(
        c.imap("a4", "FROB").await,
        ["a4 BAD unknown command or bad syntax"]
    );
    let r = c.imap("a5", &format!("LOGIN {ANN} wrong")).await;
    assert_eq!(r, ["a5 NO LOGIN failed: wrong user name or password"]);
    // anonymous: the public archive and INBOX only
    let r = c.imap("a6", "LOGIN anonymous guest").await;
    assert_eq!(r, ["a6 OK LOGIN completed: 1 list archive to read"]);
    assert_eq!(
        c.imap("a7", "LOGIN anonymous x").await,
        ["a7 BAD already logged in"]
    );
    let r = c.imap("a8", "LIST \"\" *").await;
    assert_eq!(
        r,
        [
            "* LIST (\\Noinferiors) \"/\" INBOX",
            "* LIST (\\Noinferiors) \"/\" pub",
            "a8 OK LIST completed"
        ]
    );
    assert_eq!(
        c.imap("a9", "SELECT dev").await,
        ["a9 NO no such mailbox (or not one you may read)"]
    );
    assert_eq!(
        c.imap("a10", "FETCH 1 FLAGS").await,
        ["a10 BAD select a mailbox first (SELECT or EXAMINE)"]
    );
    c.imap("a11", "LOGOUT").await;

    let mut c = LineClient::connect(a.imap_addr()).await;
    c.line().await;
    c.imap("b1", &format!("LOGIN {ANN} {pw}")).await;
    let r = c.imap("b2", "LIST \"\" \"\"").await;
    assert_eq!(
        r,
        ["* LIST (\\Noselect) \"/\" \"\"", "b2 OK LIST completed"]
    );
    let r = c.imap("b3", "LSUB \"\" \"d%\"").await;
    assert_eq!(
        r,
        ["* LSUB (\\Noinferiors) \"/\" dev", "b3 OK LSUB completed"]
    );
    let validity = listd::reader::mailbox::uid_validity("dev");
    let r = c
        .imap(
            "b4",
            "STATUS dev (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)",
        )
        .await;
    assert_eq!(
        r[0],
        format!(
            "* STATUS dev (MESSAGES 3 UIDNEXT {} UIDVALIDITY {validity} UNSEEN 3 RECENT 0)",
            uids(&a, "pub")[0] + 1
        )
    );
    assert_eq!(
        c.imap("b5", "STATUS nosuch (MESSAGES)").await,
        ["b5 NO no such mailbox (or not one you may read)"]
    );
    for (cmd, want) in [
        ("CREATE x", "NO mailboxes here are list archives"),
        ("DELETE dev", "NO mailboxes here are list archives"),
        ("RENAME dev x", "NO mailboxes here are list archives"),
        ("SUBSCRIBE dev", "OK SUBSCRIBE completed"),
        (
            "UNSUBSCRIBE dev",
            "NO the archives you may read are always listed",
        ),
        (
            "APPEND dev {3+}\r\nabc",
            "NO the list archives are read-only: post to the list",
        ),
    ] {
        let r = c.imap("c", cmd).await;
        assert!(tagged(&r).starts_with(&format!("c {want}")), "{cmd}: {r:?}");
    }
    let r = c.imap("b6", "EXAMINE dev").await;
    assert_eq!(
        tagged(&r),
        "b6 OK [READ-ONLY] EXAMINE completed (list archives are read-only)"
    );
    // UIDs are archive row ids
    let r = c.imap("b7", "FETCH 1:* (UID FLAGS RFC822.SIZE)").await;
    assert_eq!(r.len(), 4, "{r:#?}");
    assert!(
        r[0].starts_with(&format!("* 1 FETCH (UID {} RFC822.SIZE ", ids[0])),
        "{}",
        r[0]
    );
    assert!(r[0].ends_with("FLAGS ())"), "{}", r[0]);
    let r = c
        .imap(
            "b8",
            &format!("UID FETCH {}:* (ENVELOPE INTERNALDATE)", ids[1]),
        )
        .await;
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(r[0].starts_with(&format!("* 2 FETCH (UID {} ENVELOPE (\"{}\" \"Cafe talk\" ((\"Ann Example\" NIL \"ann\" \"example.org\"))", ids[1], IMAP_DATES[1])), "{}", r[0]);
    assert!(
        r[0].contains("INTERNALDATE \"17-Apr-2001 09:00:00 +0000\""),
        "{}",
        r[0]
    );
    let r = c
        .imap(
            "b9",
            "FETCH 2 (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.6>)",
        )
        .await;
    assert!(
        r[0].contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\""),
        "{}",
        r[0]
    );
    assert!(
        r[0].contains("BODY[HEADER.FIELDS (SUBJECT)] {22}\r\nSubject: Cafe talk\r\n\r\n"),
        "{}",
        r[0]
    );
    assert!(r[0].contains("BODY[]<0> "), "{}", r[0]);
    assert!(!r[0].contains("\\Seen"), "PEEK sets no flag: {}", r[0]);
    let r = c.imap("b10", "FETCH 3 RFC822").await;
    let start = r[0].find("}\r\n").unwrap() + 3;
    let body = &r[0][start..r[0].rfind(" FLAGS").unwrap()];
    let m = MessageParser::default().parse(body.as_bytes()).unwrap();
    assert_eq!(m.subject(), Some("Re: Release plans"));
    assert!(r[0].ends_with("FLAGS (\\Seen))"), "{}", r[0]);
    let r = c.imap("b11", "STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (FLAGS (\\Seen))",
            "b11 OK STORE completed (\\Seen is kept for this session only)"
        ]
    );
    let r = c.imap("b12", "UID STORE 1:* -FLAGS.SILENT (\\Seen)").await;
    assert_eq!(
        r,
        ["b12 OK STORE completed (\\Seen is kept for this session only)"]
    );
    // searches
    for (q, want) in [
        ("SEARCH ALL", "* SEARCH 1 2 3"),
        ("SEARCH SUBJECT \"release plans\"", "* SEARCH 1 3"),
        ("SEARCH BODY friday", "* SEARCH 1 3"),
        ("SEARCH TEXT cake", "* SEARCH 1"),
        ("SEARCH FROM ann@example.org", "* SEARCH 1 2 3"),
        ("SEARCH BODY zz", "* SEARCH"),
        ("SEARCH NOT BODY friday", "* SEARCH 2"),
        ("SEARCH OR SUBJECT cafe BODY cake", "* SEARCH 1 2"),
        ("SEARCH SINCE 17-Apr-2001", "* SEARCH 2 3"),
        ("SEARCH BEFORE 17-Apr-2001", "* SEARCH 1"),
        ("SEARCH ON 18-Apr-2001", "* SEARCH 3"),
        ("SEARCH SENTSINCE 18-Apr-2001", "* SEARCH 3"),
        ("SEARCH HEADER Subject \"Re:\"", "* SEARCH 3"),
        ("SEARCH HEADER X-Nothing \"\"", "* SEARCH"),
        ("SEARCH TO dev@lists", "* SEARCH 1 2 3"),
        ("SEARCH 2:3 UNSEEN", "* SEARCH 2 3"),
        ("SEARCH SEEN", "* SEARCH"),
        ("SEARCH DELETED", "* SEARCH"),
        ("SEARCH LARGER 1 SMALLER 100000", "* SEARCH 1 2 3"),
        ("SEARCH CHARSET UTF-8 SUBJECT cafe", "* SEARCH 2"),
    ] {
        let r = c.imap("s", q).await;
        assert_eq!(r, [want, "s OK SEARCH completed"], "{q}");
    }
    let r = c
        .imap("s", &format!("UID SEARCH UID {}:* BODY friday", ids[1]))
        .await;
    assert_eq!(r[0], format!("* SEARCH {}", ids[2]));
    let r = c.imap("s", "SEARCH CHARSET KOI8-R SUBJECT x").await;
    assert_eq!(
        r,
        ["s NO [BADCHARSET] only UTF-8 and US-ASCII are searched"]
    );
    for (cmd, want) in [
        (
            "EXPUNGE",
            "NO the list archives are read-only: nothing is ever expunged",
        ),
        (
            "COPY 1 INBOX",
            "NO the list archives are read-only: messages cannot be copied",
        ),
        (
            "UID MOVE 1 INBOX",
            "NO the list archives are read-only: messages cannot be copied",
        ),
        ("FETCH 1 BINARY[1]", "BAD BINARY is not supported here"),
        ("CHECK", "OK CHECK completed"),
        ("UNSELECT", "OK CLOSE completed"),
    ] {
        let r = c.imap("d", cmd).await;
        assert!(tagged(&r).starts_with(&format!("d {want}")), "{cmd}: {r:?}");
    }
    c.imap("e", "LOGOUT").await;
    // UIDVALIDITY is the same in the next session
    let mut c = LineClient::connect(a.imap_addr()).await;
    c.line().await;
    c.imap("f1", &format!("LOGIN {ANN} {pw}")).await;
    let r = c.imap("f2", "EXAMINE dev").await;
    assert!(r.contains(&format!("* OK [UIDVALIDITY {validity}] UIDs valid")));
    // too many bad commands in a row close the session
    for _ in 0..9 {
        c.imap("g", "FROB").await;
    }
    c.send("g FROB").await;
    assert_eq!(c.imap_line().await, "g BAD unknown command or bad syntax");
    assert_eq!(c.imap_line().await, "* BYE too many bad commands");
    assert!(c.closed().await);
    a.stop().await;
}

/// IDLE: a client waiting in IDLE is told of a post archived meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sees_a_new_post_arrive() {
    let a = Archive::start(|b| b).await;
    a.post("pub", "first", "one", IMAP_DATES[0]).await;
    let mut c = LineClient::connect(a.imap_addr()).await;
    c.line().await;
    c.imap("a1", "LOGIN anonymous x").await;
    let r = c.imap("a2", "SELECT pub").await;
    assert!(r.contains(&"* 1 EXISTS".to_string()));
    c.send("a3 IDLE").await;
    assert!(c.line().await.starts_with("+ idling"));
    a.post("pub", "second", "two", IMAP_DATES[1]).await;
    assert_eq!(c.line().await, "* 2 EXISTS");
    c.send("DONE").await;
    assert_eq!(c.line().await, "a3 OK IDLE terminated");
    let r = c
        .imap("a4", "FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .await;
    assert!(r[0].contains("Subject: second"), "{r:?}");
    // NOOP reports new posts too
    a.post("pub", "third", "three", IMAP_DATES[2]).await;
    assert_eq!(
        c.imap("a5", "NOOP").await,
        ["* 3 EXISTS", "a5 OK NOOP completed"]
    );
    a.stop().await;
}

const IMAPLIB: &str = r#"
import imaplib, json, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port, timeout=20)
out = {"caps": sorted(m.capabilities)}
out["login"] = m.login(user, pw)[0]
typ, boxes = m.list()
out["list"] = [b.decode() for b in boxes]
typ, data = m.select("dev", readonly=True)
out["select"] = [typ, data[0].decode()]
typ, data = m.search(None, "BODY", "friday")
out["search"] = data[0].decode()
typ, data = m.uid("SEARCH", None, "SUBJECT", "cafe")
out["uid_search"] = data[0].decode()
typ, data = m.fetch("1:3", "(BODY.PEEK[])")
out["messages"] = [part[1].decode() for part in data if isinstance(part, tuple)]
typ, data = m.status("pub", "(MESSAGES)")
out["status"] = data[0].decode()
try:
    typ, data = m.store("1", "+FLAGS", "\\Deleted")
    out["store"] = typ + " " + data[0].decode()
except m.error as e:
    out["store"] = "error " + str(e)
out["close"] = m.close()[0]
out["logout"] = m.logout()[0]
print(json.dumps(out))
"#;

/// Python's imaplib reads a members-only archive with an app password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_imaplib_reads_the_archive() {
    let a = Archive::start(|b| b).await;
    imap_posts(&a).await;
    let pw = a.password(ANN, "dev").await;
    let ids = uids(&a, "dev");
    let addr = a.imap_addr();
    let args = vec![
        addr.ip().to_string(),
        addr.port().to_string(),
        ANN.to_string(),
        pw,
    ];
    let out = tokio::task::spawn_blocking(move || python(IMAPLIB, &args))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["caps"].as_array().unwrap().iter().any(|c| c == "IDLE"),
        "{v}"
    );
    assert_eq!(v["login"], "OK");
    assert_eq!(
        v["list"],
        serde_json::json!([
            "(\\Noinferiors) \"/\" INBOX",
            "(\\Noinferiors) \"/\" dev",
            "(\\Noinferiors) \"/\" pub"
        ])
    );
    assert_eq!(v["select"], serde_json::json!(["OK", "3"]));
    assert_eq!(v["search"], "1 3");
    assert_eq!(v["uid_search"], ids[1].to_string());
    let subjects: Vec<String> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            MessageParser::default()
                .parse(m.as_str().unwrap().as_bytes())
                .unwrap()
                .subject()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        ["Release plans", "Cafe talk", "Re: Release plans"]
    );
    assert_eq!(v["status"], "pub (MESSAGES 0)");
    assert!(
        v["store"].as_str().unwrap().contains("read-only"),
        "{}",
        v["store"]
    );
    assert_eq!(v["close"], "OK");
    assert_eq!(v["logout"], "BYE");
    a.stop().await;
}

const TLS_CLIENT: &str = r#"
import imaplib, json, socket, ssl, sys
host, port, tls_port, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}
m = imaplib.IMAP4(host, port, timeout=20)
out["before"] = sorted(m.capabilities)
m.starttls(ssl_context=ctx)
out["after"] = sorted(m.capabilities)
out["login"] = m.login(user, pw)[0]
out["select"] = m.select("dev", readonly=True)[1][0].decode()
m.logout()
s = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx, timeout=20)
out["implicit_caps"] = sorted(s.capabilities)
out["implicit_login"] = s.login(user, pw)[0]
out["implicit_select"] = s.select("dev", readonly=True)[1][0].decode()
s.logout()
# a command pipelined behind STARTTLS in plain text is never run
raw = socket.create_connection((host, port), timeout=20)
f = raw.makefile("rb")
f.readline()
raw.sendall(b"a STARTTLS\r\nb LOGOUT\r\n")
out["starttls"] = f.readline().decode().strip()
tls = ctx.wrap_socket(raw)
tf = tls.makefile("rb")
tls.sendall(b"c NOOP\r\n")
out["after_injection"] = tf.readline().decode().strip()
print(json.dumps(out))
"#;

/// STARTTLS on `imap.listen` and TLS at once on `imap.listen_tls`, with a
/// self-signed certificate made by openssl, driven by Python's imaplib and
/// ssl; a command pipelined in clear behind STARTTLS is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_over_tcp() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=lists.example.org",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let yaml = |p: &std::path::Path| common::yaml_str(&p.display().to_string());
    let a = Archive::start(|b| {
        b.set("imap", "tls_cert", &yaml(&cert))
            .set("imap", "tls_key", &yaml(&key))
            .set("imap", "listen_tls", "127.0.0.1:0")
    })
    .await;
    imap_posts(&a).await;
    let pw = a.password(ANN, "dev").await;
    let (plain, tls) = (
        a.imap_addr(),
        a.daemon().imaps_addr().expect("imaps listens"),
    );
    let args = vec![
        plain.ip().to_string(),
        plain.port().to_string(),
        tls.port().to_string(),
        ANN.to_string(),
        pw,
    ];
    let out = tokio::task::spawn_blocking(move || python(TLS_CLIENT, &args))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let caps = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(caps("before").contains(&"STARTTLS".to_string()), "{v}");
    assert!(!caps("after").contains(&"STARTTLS".to_string()), "{v}");
    assert!(
        !caps("implicit_caps").contains(&"STARTTLS".to_string()),
        "{v}"
    );
    assert_eq!(v["login"], "OK");
    assert_eq!(v["select"], "3");
    assert_eq!(v["implicit_login"], "OK");
    assert_eq!(v["implicit_select"], "3");
    assert_eq!(v["starttls"], "a OK Begin TLS negotiation now");
    assert_eq!(v["after_injection"], "c OK NOOP completed");
    a.stop().await;
}
