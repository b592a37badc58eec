//! Session tests that need no socket, against the sample site
//! (`reader::sample`): a peer off loopback and outside the trusted
//! networks, and the inactivity timer.

use super::{Pop3Peer, Pop3Session};
use crate::reader::sample::{fixture, PASSWORD, POSTS};
use crate::reader::ArchiveDb;

fn run(s: &mut Pop3Session, db: &ArchiveDb, line: &str) -> String {
    s.receive(format!("{line}\r\n").as_bytes());
    s.advance(db, 1_700_000_000);
    String::from_utf8(s.take_output()).unwrap()
}

#[test]
fn off_loopback_only_anonymous_logins_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(&dir.path().join("site"));
    let peer = Pop3Peer {
        ip: Some("203.0.113.9".parse().unwrap()),
        trusted: false,
    };
    let mut s = Pop3Session::new("h", "<1.2@h>", 10, peer);
    assert!(String::from_utf8(s.take_output())
        .unwrap()
        .starts_with("+OK h POP3"));
    run(&mut s, &db, "USER ann@example.org+dev");
    let r = run(&mut s, &db, &format!("PASS {PASSWORD}"));
    assert!(
        r.starts_with("-ERR [AUTH] passwords are taken only on loopback"),
        "{r}"
    );
    assert!(s.maildrop().is_none());
    run(&mut s, &db, "USER pub");
    let r = run(&mut s, &db, "PASS anything at all");
    assert!(
        r.starts_with(&format!("+OK pub has {POSTS} messages")),
        "{r}"
    );
    // the same password on a trusted peer works
    let mut t = Pop3Session::new(
        "h",
        "<1.2@h>",
        10,
        Pop3Peer {
            trusted: true,
            ..peer
        },
    );
    run(&mut t, &db, "USER ann@example.org+dev");
    let r = run(&mut t, &db, &format!("PASS {PASSWORD}"));
    assert!(
        r.starts_with(&format!("+OK dev has {POSTS} messages")),
        "{r}"
    );
}

#[test]
fn the_inactivity_timer_closes_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(&dir.path().join("site"));
    let peer = Pop3Peer {
        ip: None,
        trusted: true,
    };
    let mut s = Pop3Session::new("h", "<1.2@h>", 10, peer);
    run(&mut s, &db, "USER pub");
    run(&mut s, &db, "PASS x");
    run(&mut s, &db, "DELE 1");
    s.timeout();
    assert!(s.is_closed());
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        "-ERR inactivity timeout, closing (nothing was changed)\r\n"
    );
    // input after the close is ignored
    assert_eq!(run(&mut s, &db, "STAT"), "");
    assert_eq!(
        crate::reader::mailbox::uids(db.conn(), "pub")
            .unwrap()
            .len(),
        POSTS
    );
}

#[test]
fn a_month_file_that_is_gone_is_an_answer_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(&dir.path().join("site"));
    let peer = Pop3Peer {
        ip: None,
        trusted: true,
    };
    let mut s = Pop3Session::new("h", "<1.2@h>", 10, peer);
    run(&mut s, &db, "USER pub");
    run(&mut s, &db, "PASS x");
    std::fs::remove_dir_all(crate::archive::root(&db.config().data_dir).join("pub")).unwrap();
    assert_eq!(
        run(&mut s, &db, "RETR 1"),
        "-ERR [SYS/TEMP] message 1 cannot be read just now\r\n"
    );
    // a new session cannot open the maildrop at all
    let mut t = Pop3Session::new("h", "<1.2@h>", 10, peer);
    run(&mut t, &db, "USER pub");
    assert_eq!(
        run(&mut t, &db, "PASS x"),
        "-ERR [SYS/TEMP] the archive cannot be read just now, try later\r\n"
    );
}
