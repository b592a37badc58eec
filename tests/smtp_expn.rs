//! The EXPN policy matrix over real TCP: every `expn` policy, from a
//! trusted and an untrusted client; unknown lists; nested lists.

mod common;

use common::*;

const POLICIES: [&str; 5] = ["nobody", "trusted", "members", "owners", "anyone"];

fn env(trusted: bool) -> TestEnv {
    let mut b = TestEnv::builder();
    if !trusted {
        b = b.set("smtp", "trusted_networks", "[\"192.0.2.0/24\"]");
    }
    for p in POLICIES {
        b = b.list(
            &format!("l-{p}"),
            &format!("expn: {p}\nowners: [owner@example.org]\n"),
        );
    }
    b = b
        .list("outer", "expn: anyone\n")
        .list("inner", "expn: nobody\n");
    let env = b.build();
    for p in POLICIES {
        env.add_members(&format!("l-{p}"), &["Zed@Example.org", "amy@example.org"]);
    }
    env.add_members("outer", &["bob@example.org", "inner@lists.example.org"]);
    env.add_members("inner", &["carl@example.org", "bob@EXAMPLE.org"]);
    env
}

async fn expn(c: &mut SmtpClient, arg: &str) -> Reply {
    c.cmd(&format!("EXPN {arg}")).await
}

#[tokio::test]
async fn policy_matrix() {
    // (policy, allowed for an untrusted client, allowed for a trusted one);
    // members and owners count as trusted: an SMTP client has no identity.
    let matrix = [
        ("nobody", false, false),
        ("trusted", false, true),
        ("members", false, true),
        ("owners", false, true),
        ("anyone", true, true),
    ];
    for trusted in [false, true] {
        let env = env(trusted);
        let d = env.start().await;
        let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
        for (policy, untrusted_ok, trusted_ok) in matrix {
            let allowed = if trusted { trusted_ok } else { untrusted_ok };
            for arg in [
                format!("l-{policy}"),
                format!("<l-{policy}@lists.example.org>"),
            ] {
                let r = expn(&mut c, &arg).await;
                if allowed {
                    r.expect(250);
                    assert_eq!(
                        r.lines,
                        ["2.1.5 <Zed@example.org>", "2.1.5 <amy@example.org>"],
                        "{policy} trusted={trusted}"
                    );
                } else {
                    r.expect(550);
                    assert_eq!(r.status(), Some("5.7.1"), "{policy} trusted={trusted}");
                    assert!(
                        !r.text().contains("example.org"),
                        "refusal leaks nothing: {r:?}"
                    );
                }
            }
            c.cmd("NOOP").await.expect(250); // keep the errors-in-a-row count low
        }
        for unknown in [
            "nosuch",
            "nosuch@lists.example.org",
            "l-anyone@elsewhere.org",
            "l-anyone-request",
        ] {
            let r = expn(&mut c, unknown).await;
            r.expect(550);
            assert_eq!(r.status(), Some("5.1.1"), "{unknown}");
        }
        c.quit().await;
        d.shutdown().await;
    }
}

#[tokio::test]
async fn nested_lists_are_expanded_and_deduplicated() {
    let env = env(false);
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = expn(&mut c, "outer").await;
    r.expect(250);
    assert_eq!(
        r.lines,
        ["2.1.5 <bob@example.org>", "2.1.5 <carl@example.org>"]
    );
    c.quit().await;
    d.shutdown().await;
}

/// A list bigger than `smtp.expn_max_members` is not expanded (550 5.3.4),
/// counting nested members; one at the limit still is.
#[tokio::test]
async fn a_list_over_expn_max_members_is_refused() {
    let env = TestEnv::builder()
        .set("smtp", "expn_max_members", "2")
        .list("small", "expn: anyone\n")
        .list("big", "expn: anyone\n")
        .list("nest", "expn: anyone\n")
        .build();
    env.add_members("small", &["a@example.org", "b@example.org"]);
    env.add_members("big", &["a@example.org", "b@example.org", "c@example.org"]);
    env.add_members("nest", &["z@example.org", "small@lists.example.org"]);
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = expn(&mut c, "small").await;
    r.expect(250);
    assert_eq!(r.lines.len(), 2);
    for list in ["big", "nest"] {
        let r = expn(&mut c, list).await;
        r.expect(550);
        assert_eq!(r.status(), Some("5.3.4"), "{list}");
        assert!(r.text().contains("more than 2 members"), "{}", r.text());
    }
    c.quit().await;
    d.shutdown().await;
}

/// EXPN shows display names (this list's first, else another list's),
/// quoted when they hold specials; names never break a reply line.
#[tokio::test]
async fn expn_shows_display_names() {
    let env = TestEnv::builder()
        .list("team", "expn: anyone\n")
        .list("other", "expn: anyone\n")
        .build();
    {
        let conn = env.store();
        let add = |list: &str, addr: &str, name: Option<&str>| {
            let a = listd::address::Address::parse(addr).unwrap();
            listd::store::members::add(
                &conn,
                list,
                &a.to_string(),
                &a.key(),
                name,
                listd::store::members::DeliveryMode::Each,
                1,
            )
            .unwrap();
        };
        add("team", "ann@example.org", Some("Ann Example"));
        add("team", "bob@example.org", Some("Smith, Bob\r\nX-Evil: 1"));
        add("team", "cid@example.org", None);
        add("other", "cid@example.org", Some("Cid"));
        add("team", "dee@example.org", None);
    }
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = expn(&mut c, "team").await;
    r.expect(250);
    assert_eq!(
        r.lines,
        [
            "2.1.5 Ann Example <ann@example.org>",
            "2.1.5 \"Smith, Bob X-Evil: 1\" <bob@example.org>",
            "2.1.5 Cid <cid@example.org>",
            "2.1.5 <dee@example.org>",
        ]
    );
    c.quit().await;
    d.shutdown().await;
}
