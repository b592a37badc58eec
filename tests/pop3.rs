//! The list archive over POP3 (RFC 1939), read-only, over real TCP to the
//! in-process daemon: the seed dialogue T15 (with §8's D11 correction: the
//! `+OK` status lines are there), every command and error path, and
//! Python's `poplib`, a client nobody here wrote.

mod common;
mod reader_support;

use mail_parser::MessageParser;
use reader_support::{pop3_posts, python, Archive, LineClient, ANN, POP3_DATE};

/// Every command and its error paths, in both states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_and_error_path() {
    let a = Archive::start(|b| b.set("pop3", "maildrop_size", "2")).await;
    pop3_posts(&a).await;
    a.post("pub", "public one", "Anyone may read this.", POP3_DATE)
        .await;
    let pw = a.password(ANN, "dev").await;
    let uids: Vec<i64> = {
        let conn = a.env.store();
        let mut st = conn
            .prepare("SELECT id FROM archive_index WHERE list = 'dev' ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };

    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    assert_eq!(c.cmd("CAPA").await, "+OK Capability list follows");
    let capa = String::from_utf8(c.multiline().await).unwrap();
    for cap in ["USER", "TOP", "UIDL", "EXPIRE NEVER"] {
        assert!(capa.lines().any(|l| l == cap), "{capa}");
    }
    assert!(c.cmd("PASS x").await.starts_with("-ERR USER first"));
    assert!(c.cmd("USER").await.starts_with("-ERR say USER"));
    assert!(c.cmd("STAT").await.starts_with("-ERR unknown command here"));
    // anonymous: the public archive yes, the members-only one no
    c.cmd("USER dev").await;
    assert_eq!(
        c.cmd("PASS").await,
        "-ERR [AUTH] no archive named dev that you may read"
    );
    c.cmd(&format!("USER {ANN}+dev")).await;
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] wrong user name or password"
    );
    c.cmd(&format!("USER {ANN}+nosuch")).await;
    assert_eq!(
        c.cmd(&format!("PASS {pw}")).await,
        "-ERR [AUTH] no archive named nosuch that you may read"
    );
    assert!(c
        .cmd(&format!("APOP {ANN}+dev 0123"))
        .await
        .starts_with("-ERR [AUTH] APOP needs a clear-text secret"));
    assert!(c
        .cmd("APOP pub c4c9334bac560ecc979e58001b3e22fb")
        .await
        .starts_with("+OK pub has 1 messages"));
    assert!(c.cmd("USER x").await.starts_with("-ERR already logged in"));
    c.cmd("QUIT").await;

    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    c.cmd(&format!("USER {ANN}+DEV")).await;
    // the maildrop is the newest maildrop_size posts
    assert!(c
        .cmd(&format!("PASS {pw}"))
        .await
        .starts_with("+OK dev has 2 messages"));
    assert!(c.cmd("UIDL").await.starts_with("+OK 2 messages"));
    let uidl = String::from_utf8(c.multiline().await).unwrap();
    assert_eq!(uidl, format!("1 {}\r\n2 {}\r\n", uids[1], uids[2]));
    assert_eq!(c.cmd("UIDL 2").await, format!("+OK 2 {}", uids[2]));
    let one = c.cmd("LIST 1").await;
    assert!(one.starts_with("+OK 1 "), "{one}");
    for (cmd, want) in [
        ("LIST 3", "-ERR no message 3"),
        ("RETR 0", "-ERR no message 0"),
        ("RETR x", "-ERR give a message number"),
        ("TOP 1", "-ERR say TOP MSG LINES"),
        ("TOP 1 x", "-ERR say TOP MSG LINES"),
        ("DELE 9", "-ERR no message 9"),
        ("FOO", "-ERR unknown command"),
    ] {
        assert!(c.cmd(cmd).await.starts_with(want), "{cmd}");
    }
    assert!(c.cmd("TOP 1 1").await.starts_with("+OK"));
    let top = String::from_utf8(c.multiline().await).unwrap();
    let (head, body) = top.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Subject: message 2"), "{head}");
    assert_eq!(
        body, ".A line that starts with a dot\r\n",
        "one body line, unstuffed"
    );
    assert!(c.cmd("DELE 1").await.starts_with("+OK message 1 deleted"));
    assert_eq!(c.cmd("RETR 1").await, "-ERR message 1 is deleted");
    assert_eq!(c.cmd("DELE 1").await, "-ERR message 1 is deleted");
    assert!(c.cmd("LIST").await.starts_with("+OK 1 messages"));
    let listing = String::from_utf8(c.multiline().await).unwrap();
    assert!(
        listing.starts_with("2 ") && listing.lines().count() == 1,
        "{listing}"
    );
    assert_eq!(c.cmd("NOOP").await, "+OK ");
    assert!(c
        .cmd("RSET")
        .await
        .starts_with("+OK maildrop has 2 messages"));
    assert!(c.cmd("RETR 1").await.starts_with("+OK"));
    c.multiline().await;
    assert!(c.cmd("DELE 2").await.starts_with("+OK"));
    // a dropped connection before QUIT changes nothing
    drop(c);
    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    c.cmd(&format!("USER {ANN}+dev")).await;
    assert!(c
        .cmd(&format!("PASS {pw}"))
        .await
        .starts_with("+OK dev has 2 messages"));
    c.cmd("QUIT").await;
    assert_eq!(a.archived("dev"), 3);

    // too many errors in a row close the session
    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    for _ in 0..9 {
        assert!(c.cmd("XYZZY").await.starts_with("-ERR"));
    }
    c.send("XYZZY").await;
    c.line().await;
    assert_eq!(c.line().await, "-ERR too many errors, closing");
    assert!(c.closed().await);
    // so does an over-long line
    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    c.raw(&vec![b'A'; 600]).await;
    assert_eq!(c.line().await, "-ERR command line too long");
    assert!(c.closed().await);
    a.stop().await;
}

/// Failed logins are counted per address: after the budget, even the right
/// password is refused (and the refusal says why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_address_out() {
    let a = Archive::start(|b| b).await;
    let pw = a.password(ANN, "dev").await;
    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    for _ in 0..listd::reader::passwords::FAILURES_PER_ADDRESS {
        c.cmd(&format!("USER {ANN}+dev")).await;
        assert_eq!(
            c.cmd("PASS guess").await,
            "-ERR [AUTH] wrong user name or password"
        );
    }
    c.cmd(&format!("USER {ANN}+dev")).await;
    assert_eq!(
        c.cmd(&format!("PASS {pw}")).await,
        "-ERR [AUTH] too many failed logins; try again in an hour"
    );
    // a reload cannot move the listeners: it says so
    let mut moved = a.env.config();
    moved.pop3.listen = Some("127.0.0.1:1".into());
    let warnings = a.daemon().reload(moved).unwrap();
    assert_eq!(
        warnings,
        ["pop3.listen, imap.listen or imap.listen_tls changed: restart to listen there"]
    );
    a.stop().await;
}

const POPLIB: &str = r#"
import json, poplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=20)
out = {"welcome": p.getwelcome().decode()}
out["capa"] = sorted(p.capa().keys())
p.user(user)
out["pass"] = p.pass_(pw).decode()
out["stat"] = list(p.stat())
resp, lines, _ = p.list()
out["list"] = [l.decode() for l in lines]
resp, lines, _ = p.uidl()
out["uidl"] = [l.decode() for l in lines]
out["messages"] = []
for i in range(1, out["stat"][0] + 1):
    resp, lines, octets = p.retr(i)
    out["messages"].append(b"\r\n".join(lines).decode("utf-8", "replace"))
resp, lines, _ = p.top(1, 0)
out["top"] = [l.decode() for l in lines]
out["dele"] = p.dele(1).decode()
out["quit"] = p.quit().decode()
print(json.dumps(out))
"#;

/// Python's poplib reads a members-only archive with an app password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_poplib_reads_the_archive() {
    let a = Archive::start(|b| b).await;
    pop3_posts(&a).await;
    let pw = a.password(ANN, "dev").await;
    let addr = a.pop3_addr();
    let args = vec![
        addr.ip().to_string(),
        addr.port().to_string(),
        format!("{ANN}+dev"),
        pw,
    ];
    let out = tokio::task::spawn_blocking(move || python(POPLIB, &args))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["welcome"].as_str().unwrap().starts_with("+OK"));
    assert_eq!(
        v["capa"],
        serde_json::json!([
            "EXPIRE",
            "IMPLEMENTATION",
            "PIPELINING",
            "RESP-CODES",
            "TOP",
            "UIDL",
            "USER"
        ])
    );
    assert_eq!(v["stat"][0], 3);
    let subjects: Vec<String> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let m = m.as_str().unwrap();
            MessageParser::default()
                .parse(m.as_bytes())
                .unwrap()
                .subject()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(subjects, ["message 1", "message 2", "message 3"]);
    assert!(v["messages"][1]
        .as_str()
        .unwrap()
        .contains("\r\n.A line that starts with a dot\r\n"));
    let sizes: u64 = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(v["stat"][1].as_u64().unwrap(), sizes);
    assert_eq!(v["uidl"].as_array().unwrap().len(), 3);
    assert!(v["top"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "Subject: message 1"));
    assert!(v["dele"].as_str().unwrap().starts_with("+OK"));
    assert!(v["quit"]
        .as_str()
        .unwrap()
        .contains("none removed from the archive"));
    assert_eq!(a.archived("dev"), 3);
    a.stop().await;
}
