//! The command robot through the real pipeline and store: command mails in
//! through the spool, replies out of the outbound queue, parsed with
//! mail-parser.

mod common;
mod robot_support;

use robot_support::*;

const REQ: &str = "dev-request@lists.example.org";
const MAJ: &str = "majordomo@lists.example.org";
const ANN: &str = "ann@example.org";

fn s_flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn list(policy: &str, extra: &str) -> String {
    format!("description: Development talk\nowners: [owner@example.org]\nsubscription: {policy}\n{extra}")
}

#[test]
fn double_opt_in_by_replying_to_the_confirmation() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, REQ, "", "subscribe\n", T0);
    let out = s.outbox();
    assert_eq!(out.len(), 2, "{out:#?}");
    let results = &to_rcpt(&out, ANN)[0];
    assert!(
        results.body().contains(">>>> subscribe"),
        "{}",
        results.body()
    );
    assert!(results
        .body()
        .contains("A confirmation request has been sent to ann@example.org"));
    let confirm = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap();
    let token = confirm.token();
    assert_eq!(token.len(), 26);
    assert_eq!(confirm.rcpts, vec![ANN]);
    assert_eq!(confirm.env_from, "dev-bounces@lists.example.org");
    assert_eq!(
        confirm.header("From").unwrap(),
        "<dev-request@lists.example.org>"
    );
    let confirm_addr = format!("dev-confirm+{token}@{DOMAIN}");
    assert_eq!(confirm.reply_to().as_deref(), Some(confirm_addr.as_str()));
    assert_eq!(
        confirm.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(confirm
        .parsed()
        .in_reply_to()
        .as_text()
        .unwrap()
        .starts_with("cmd-"));
    assert!(confirm.body().contains(&format!("confirm {token}")));
    assert!(
        !results.body().contains(&token),
        "the token only goes in the confirmation"
    );
    assert!(!s.is_member("dev", ANN));

    // the reply quotes the whole confirmation, and says "unsubscribe" in a quote
    let quoted: String = confirm.body().lines().map(|l| format!("> {l}\n")).collect();
    let body = format!("Yes please!\n\n{quoted}> unsubscribe\n");
    let bytes = mail(
        ANN,
        &confirm_addr,
        &format!("Re: confirm {token}"),
        &body,
        &[],
    );
    s.deliver_at(ANN, &confirm_addr, bytes.as_bytes(), T0 + 60);
    assert!(s.is_member("dev", ANN));
    let out = s.outbox();
    // welcome to ann, notice to the owner; no results reply besides
    assert_eq!(out.len(), 2, "{out:#?}");
    let welcome = to_rcpt(&out, ANN)[0];
    assert!(welcome
        .subject()
        .contains("Welcome to the dev mailing list"));
    assert!(welcome.body().contains("dev-leave@lists.example.org"));
    let notice = to_rcpt(&out, "owner@example.org")[0];
    assert_eq!(notice.kind, "notice");
    assert_eq!(notice.to(), "dev-owner@lists.example.org");
    assert!(notice.subject().contains("ann@example.org has joined dev"));
    assert_eq!(
        notice.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
}

#[test]
fn double_opt_in_by_confirm_command_to_majordomo() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, MAJ, "", "subscribe dev\n", T0);
    let out = s.outbox();
    let token = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap()
        .token();
    // upper case, in a body with a greeting before it
    s.command(
        ANN,
        MAJ,
        "",
        &format!("Hi\nconfirm {}\nthanks\n", token.to_uppercase()),
        T0 + 5,
    );
    assert!(s.is_member("dev", ANN));
    let out = s.outbox();
    let results = out
        .iter()
        .find(|m| m.subject().starts_with("Results"))
        .unwrap();
    assert!(results
        .body()
        .contains("Confirmed: ann@example.org is now subscribed to dev."));
    assert!(
        results
            .body()
            .contains(">>>> (a line that is no command; not repeated)\nUnknown command.")
            && !results.body().contains("Hi"),
        "{}",
        results.body()
    );
    assert_eq!(
        results.header("From").unwrap(),
        "<majordomo@lists.example.org>"
    );
    assert_eq!(
        results.env_from, "",
        "site replies go out with the null sender by default"
    );
    assert!(out.iter().any(|m| m.subject().contains("Welcome")));
}

#[test]
fn confirm_in_the_subject_of_a_reply_to_the_request_address() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, REQ, "subscribe", "", T0);
    let token = confirm_token(&mut s);
    // replied to -request@ instead of the confirm address: the Subject carries it
    s.command(
        ANN,
        REQ,
        &format!("Re: confirm {token}"),
        &format!("> confirm {token}\n"),
        T0 + 1,
    );
    assert!(s.is_member("dev", ANN));
}

#[test]
fn expired_token_is_refused() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let token = confirm_token(&mut s);
    let addr = format!("dev-confirm+{token}@{DOMAIN}");
    s.command(ANN, &addr, "Re: confirm", "yes", T0 + 7 * 86_400 + 1);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(
        out[0].body().contains("This confirmation has expired"),
        "{}",
        out[0].body()
    );
}

#[test]
fn token_expiry_is_configurable() {
    let mut s = Site::with(&[("dev", DEV)], &[], "  token_expiry_days: 1");
    s.command(ANN, REQ, "", "subscribe", T0);
    let token = confirm_token(&mut s);
    s.command(ANN, REQ, "", &format!("confirm {token}"), T0 + 86_400 + 1);
    assert!(!s.is_member("dev", ANN));
}

#[test]
fn reused_token_does_nothing_twice() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let token = confirm_token(&mut s);
    let addr = format!("dev-confirm+{token}@{DOMAIN}");
    s.command(ANN, &addr, "Re: confirm", "", T0 + 1);
    assert!(s.is_member("dev", ANN));
    s.outbox();
    // she leaves; the old token must not bring her back
    listd::store::members::remove(
        &s.conn,
        "dev",
        &listd::address::Address::parse(ANN).unwrap().key(),
    )
    .unwrap();
    s.command(ANN, &addr, "Re: confirm", "", T0 + 2);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].body().contains("already used"), "{}", out[0].body());
    // a token for another list is unknown here
    s.command(ANN, REQ, "", "confirm abcdefghijklmnopqrstuvwxyz", T0 + 3);
    assert!(s.outbox()[0]
        .body()
        .contains("No request is waiting for this confirmation token"));
}

#[test]
fn forged_third_party_subscribe_subscribes_no_one() {
    let open = list("open", "");
    let mut s = Site::new(&[("dev", &open)]);
    let mallory = "mallory@evil.example";
    let victim = "victim@example.net";
    s.command(
        mallory,
        REQ,
        "",
        &format!("subscribe dev {victim}\nsubscribe {victim}\n"),
        T0,
    );
    assert!(!s.is_member("dev", victim));
    assert!(!s.is_member("dev", mallory));
    let out = s.outbox();
    let to_mallory = to_rcpt(&out, mallory);
    let to_victim = to_rcpt(&out, victim);
    assert_eq!(to_mallory.len(), 1);
    assert_eq!(
        to_victim.len(),
        1,
        "one confirmation: the same command twice runs once"
    );
    let token = to_victim[0].token();
    assert!(to_victim[0]
        .flat()
        .contains("The request came from mallory@evil.example"));
    assert!(!to_mallory[0].body().contains(&token));
    assert!(to_mallory[0]
        .flat()
        .contains("Nothing changes unless that address confirms"));
    // the confirmation for a third party is not threaded to mallory's mail
    assert!(to_victim[0].parsed().in_reply_to().is_empty());

    // From: forged as the victim, Reply-To and envelope mallory's: every
    // answer goes to the victim, nothing to mallory
    let bytes = mail(
        victim,
        REQ,
        "",
        "subscribe\nwhich\n",
        &["Reply-To: mallory@evil.example"],
    );
    s.deliver_at(mallory, REQ, bytes.as_bytes(), T0 + 1);
    let out = s.outbox();
    assert!(to_rcpt(&out, mallory).is_empty());
    // open list, but own subscribe from a forged From: is what `open` means;
    // on a confirm list it would wait for the victim (see the next case)
    assert!(s.is_member("dev", victim));

    let mut s = Site::new(&[("dev", DEV)]);
    let bytes = mail(
        victim,
        REQ,
        "",
        "subscribe\n",
        &["Reply-To: mallory@evil.example"],
    );
    s.deliver_at(mallory, REQ, bytes.as_bytes(), T0);
    assert!(!s.is_member("dev", victim));
    let out = s.outbox();
    assert!(to_rcpt(&out, mallory).is_empty());
    assert_eq!(to_rcpt(&out, victim).len(), 2);
}

#[test]
fn third_party_unsubscribe_never_reveals_membership() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.add_member("dev", "bob@example.org");
    s.command(
        ANN,
        REQ,
        "",
        "unsubscribe dev bob@example.org\nunsubscribe carol@example.org\n",
        T0,
    );
    let out = s.outbox();
    let reply = to_rcpt(&out, ANN)[0].body();
    assert!(reply.contains("If bob@example.org is subscribed to dev, a confirmation request"));
    assert!(reply.contains("If carol@example.org is subscribed to dev, a confirmation request"));
    // only the member gets a confirmation; bob is still a member
    assert_eq!(to_rcpt(&out, "bob@example.org").len(), 1);
    assert!(to_rcpt(&out, "carol@example.org").is_empty());
    assert!(s.is_member("dev", "bob@example.org"));
}

#[test]
fn policy_open_subscribes_at_once() {
    let open = list("open", "");
    let mut s = Site::new(&[("dev", &open)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    assert!(s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 3, "results, welcome, owner notice: {out:#?}");
    assert!(to_rcpt(&out, ANN)[0]
        .body()
        .contains("ann@example.org is now subscribed to dev."));
    assert!(to_rcpt(&out, ANN)[1].subject().contains("Welcome"));
}

#[test]
fn notify_owners_off_sends_no_notice() {
    let open = list("open", "notify_owners: false\n");
    let mut s = Site::new(&[("dev", &open)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    assert!(s.is_member("dev", ANN));
    assert!(to_rcpt(&s.outbox(), "owner@example.org").is_empty());
}

#[test]
fn policy_closed_refuses() {
    let closed = list("closed", "");
    let mut s = Site::new(&[("dev", &closed)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(
        out[0].body().contains("The dev list is closed"),
        "{}",
        out[0].body()
    );
    // -join@ answers the same refusal
    s.command(ANN, "dev-join@lists.example.org", "", "", T0 + 1);
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].body().contains("The dev list is closed"));
}

#[test]
fn policy_approve_asks_the_owners_and_approval_by_reply() {
    let approve = list("approve", "");
    let mut s = Site::new(&[("dev", &approve)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 2);
    assert!(to_rcpt(&out, ANN)[0]
        .flat()
        .contains("sent to the list owners for approval"));
    let ask = to_rcpt(&out, "owner@example.org")[0];
    assert!(ask.subject().starts_with("approve "));
    assert!(ask
        .body()
        .contains("ann@example.org asks to join the dev mailing list"));
    let token = ask.token();
    // asking again does not ask the owners twice
    s.command(ANN, REQ, "", "subscribe", T0 + 1);
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .flat()
        .contains("already waiting for the owners' approval"));

    // the owner replies to the request mail: Subject "Re: approve TOKEN", body quoted
    let quoted: String = ask.body().lines().map(|l| format!("> {l}\n")).collect();
    s.command(
        "owner@example.org",
        REQ,
        &format!("Re: approve {token}"),
        &format!("OK by me.\n\n{quoted}"),
        T0 + 10,
    );
    assert!(s.is_member("dev", ANN));
    let out = s.outbox();
    let owner_reply = out
        .iter()
        .find(|m| m.subject().starts_with("Results"))
        .unwrap();
    assert!(
        owner_reply.body().contains("now subscribed to dev"),
        "{}",
        owner_reply.body()
    );
    assert!(to_rcpt(&out, ANN)[0].subject().contains("Welcome"));
    // the token is spent
    s.command(
        "owner@example.org",
        REQ,
        "",
        &format!("approve {token}"),
        T0 + 11,
    );
    assert!(s.outbox()[0].body().contains("already decided"));
}

#[test]
fn rejection_by_mail_tells_the_requester_with_the_reason() {
    let approve = list("approve", "");
    let mut s = Site::new(&[("dev", &approve)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let out = s.outbox();
    let ask = to_rcpt(&out, "owner@example.org")[0];
    let token = ask.token();
    // reply whose Subject says approve but body says reject: the body wins
    s.command(
        "owner@example.org",
        REQ,
        &format!("Re: approve {token}"),
        &format!("reject {token} not a project member\n"),
        T0 + 5,
    );
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    let told = to_rcpt(&out, ANN)[0];
    assert!(told.subject().contains("declined"));
    assert!(told.body().contains("not a project member"));
    // discard: nobody told
    s.command("bob@example.org", REQ, "", "subscribe", T0 + 6);
    let token = to_rcpt(&s.outbox(), "owner@example.org")[0].token();
    s.command(
        "owner@example.org",
        REQ,
        "",
        &format!("discard {token}"),
        T0 + 7,
    );
    let out = s.outbox();
    assert_eq!(out.len(), 1, "only the owner's results: {out:#?}");
    assert!(!s.is_member("dev", "bob@example.org"));
}

#[test]
fn policy_confirm_then_approve_does_both_in_order() {
    let cta = list("confirm_then_approve", "");
    let mut s = Site::new(&[("dev", &cta)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let out = s.outbox();
    assert!(
        to_rcpt(&out, "owner@example.org").is_empty(),
        "owners wait for the confirmation"
    );
    let token = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap()
        .token();
    s.command(
        ANN,
        &format!("dev-confirm+{token}@{DOMAIN}"),
        "Re:",
        "",
        T0 + 1,
    );
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    let ask = to_rcpt(&out, "owner@example.org")[0];
    assert!(
        ask.body()
            .contains("The address has confirmed the request."),
        "{}",
        ask.body()
    );
    let reply = to_rcpt(&out, ANN)[0];
    assert!(reply.body().contains("Thank you for confirming"));
    s.command(
        "owner@example.org",
        REQ,
        "",
        &format!("approve {}", ask.token()),
        T0 + 2,
    );
    assert!(s.is_member("dev", ANN));
}

#[test]
fn unsubscribe_needs_confirmation_by_default() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.add_member("dev", ANN);
    s.command(ANN, REQ, "", "unsubscribe", T0);
    assert!(s.is_member("dev", ANN));
    let out = s.outbox();
    let c = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap();
    assert!(c
        .flat()
        .contains("unsubscribe ann@example.org from the dev mailing"));
    let token = c.token();
    s.command(
        ANN,
        &format!("dev-confirm+{token}@{DOMAIN}"),
        "Re:",
        "",
        T0 + 1,
    );
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 2);
    assert!(to_rcpt(&out, ANN)[0]
        .subject()
        .contains("You have left the dev mailing list"));
    assert!(to_rcpt(&out, "owner@example.org")[0]
        .subject()
        .contains("has left dev"));
    // not a member any more
    s.command(ANN, REQ, "", "signoff", T0 + 2);
    assert!(s.outbox()[0]
        .body()
        .contains("ann@example.org is not subscribed to dev"));
}

#[test]
fn open_unsubscription_and_the_leave_address() {
    let l = list("confirm", "unsubscription: open\n");
    let mut s = Site::new(&[("dev", &l)]);
    s.add_member("dev", ANN);
    s.command(ANN, "dev-leave@lists.example.org", "bye", "", T0);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    // the goodbye is the answer; owners are told
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(to_rcpt(&out, ANN)[0].subject().contains("You have left"));
}

#[test]
fn join_address_sends_only_the_confirmation() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, "dev-join@lists.example.org", "", "please add me\n", T0);
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].subject().starts_with("confirm "));
    assert!(!s.is_member("dev", ANN));
}

#[test]
fn help_lists_info_which_and_end() {
    let secret = "description: Hidden\nadvertised: false\n";
    let mut s = Site::new(&[("dev", DEV), ("secret", secret)]);
    s.add_member("dev", ANN);
    s.command(
        ANN,
        MAJ,
        "help",
        "lists\ninfo dev\ninfo secret\ninfo nosuch\nwhich\nend\nwho dev\n",
        T0,
    );
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    let b = out[0].body();
    assert!(
        b.contains(">>>> help\nThis is the mail robot of lists.example.org."),
        "{b}"
    );
    assert!(b.contains(">>>> lists\ndev: Development talk"), "{b}");
    assert!(!b.contains("secret: Hidden"), "{b}");
    assert!(b.contains(">>>> info dev\ndev: Development talk"), "{b}");
    assert!(b.contains("subscription       confirm"), "{b}");
    assert!(
        b.contains(">>>> info secret\nThere is no list named `secret` here."),
        "{b}"
    );
    assert!(
        b.contains(">>>> info nosuch\nThere is no list named `nosuch` here."),
        "{b}"
    );
    assert!(
        b.contains(">>>> which\nann@example.org is subscribed to:\n  dev"),
        "{b}"
    );
    assert!(!b.contains("who dev"), "reading stops at end: {b}");
    assert_eq!(
        out[0].subject(),
        "Results of your commands to majordomo@lists.example.org"
    );
    assert!(out[0]
        .parsed()
        .in_reply_to()
        .as_text()
        .unwrap()
        .starts_with("cmd-"));
    let refs = out[0].parsed().references().as_text_list().map(|v| v.len());
    assert!(refs == Some(1) || out[0].parsed().references().as_text().is_some());
}

#[test]
fn which_for_a_stranger_and_unknown_commands_continue() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, REQ, "", "frobnicate everything\nwhich\n", T0);
    let b = s.outbox()[0].body();
    assert!(
        b.contains(">>>> (a line that is no command; not repeated)\nUnknown command.")
            && !b.contains("frobnicate"),
        "{b}"
    );
    assert!(
        b.contains("ann@example.org is not subscribed to any list here."),
        "{b}"
    );
}

#[test]
fn who_follows_the_policy_and_refusals_look_alike() {
    let mk = |who: &str| format!("owners: [owner@example.org]\nwho: {who}\n");
    let (nobody, members, owners, anyone, trusted) = (
        mk("nobody"),
        mk("members"),
        mk("owners"),
        mk("anyone"),
        mk("trusted"),
    );
    let mut s = Site::new(&[
        ("a", &nobody),
        ("b", &members),
        ("c", &owners),
        ("d", &anyone),
        ("e", &trusted),
    ]);
    for l in ["a", "b", "c", "d", "e"] {
        s.add_member(l, "bob@example.org");
    }
    s.add_member("b", ANN);
    let run = |s: &mut Site, from: &str| -> String {
        s.command(from, MAJ, "", "who a\nreview b\nwho c\nwho d\nwho e\n", T0);
        s.outbox()[0].body()
    };
    let refused = |l: &str| format!("The membership of {l} is not available to you.");
    let b = run(&mut s, ANN);
    assert!(b.contains(&refused("a")));
    assert!(
        b.contains(">>>> review b\nb has 2 members:\n  ann@example.org\n  bob@example.org"),
        "{b}"
    );
    assert!(b.contains(&refused("c")) && b.contains(&refused("e")));
    assert!(b.contains("d has 1 member:\n  bob@example.org"));
    let b = run(&mut s, "stranger@example.net");
    assert!(
        b.contains(&refused("b")),
        "a non-member of b is refused: {b}"
    );
    assert!(!b.contains("bob@example.org\n") || b.contains("d has 1 member"));
    let b = run(&mut s, "owner@example.org");
    assert!(b.contains(&refused("a")), "nobody means nobody: {b}");
    assert!(b.contains("c has 1 member"));
    assert!(
        b.contains("e has 1 member"),
        "trusted reads as owners by mail"
    );
}

fn mode_of(s: &Site, list: &str, addr: &str) -> listd::store::members::DeliveryMode {
    listd::store::members::get(
        &s.conn,
        list,
        &listd::address::Address::parse(addr).unwrap().key(),
    )
    .unwrap()
    .unwrap()
    .mode
}

/// `set LIST MODE` changes nothing until the member's own mailbox confirms
/// it (From: is a claim); the change is then applied and the member told,
/// with a token that undoes it.
#[test]
fn set_delivery_modes() {
    use listd::store::members::DeliveryMode;
    let nodigest = "digest:\n  enabled: false\n";
    let mut s = Site::new(&[("dev", DEV), ("ops", nodigest)]);
    s.add_member("dev", ANN);
    s.add_member("ops", ANN);
    s.command(
        ANN,
        REQ,
        "",
        "set digest\nset dev plain\nset mail\nset bogus\nset ops digest\n",
        T0,
    );
    let out = s.outbox();
    let b = s_flat(&out[0].body());
    assert!(
        b.contains(">>>> set digest To make sure this comes from ann@example.org, a confirmation has been sent there. Nothing changes until it is confirmed; then ann@example.org gets the MIME digest from dev."),
        "{b}"
    );
    assert!(b.contains("then ann@example.org gets the plain-text digest from dev."));
    assert!(
        b.contains(">>>> set mail ann@example.org already gets each post as it is sent from dev.")
    );
    assert!(b.contains("Unknown mode `bogus`"));
    assert!(
        b.contains("This address only handles the dev list. Send commands for ops to ops-request@"),
        "{b}"
    );
    // one confirmation per requested mode, to the member; nothing changed yet
    let asks: Vec<&Sent> = out
        .iter()
        .filter(|m| m.subject().starts_with("confirm "))
        .collect();
    assert_eq!(asks.len(), 2, "{out:#?}");
    assert!(asks.iter().all(|m| m.rcpts == vec![ANN.to_string()]));
    let plain = asks
        .iter()
        .find(|m| m.body().contains("the plain-text digest"))
        .unwrap();
    assert_eq!(mode_of(&s, "dev", ANN), DeliveryMode::Each);

    // confirming applies it and tells the member, with an undo token
    s.command(ANN, REQ, "", &format!("confirm {}", plain.token()), T0 + 1);
    let out = s.outbox();
    assert!(
        s_flat(&out[0].body())
            .contains("Confirmed: ann@example.org now gets the plain-text digest from dev."),
        "{}",
        out[0].body()
    );
    assert_eq!(mode_of(&s, "dev", ANN), DeliveryMode::DigestPlain);
    let told = out
        .iter()
        .find(|m| m.subject().contains("to undo: confirm"))
        .expect("a notice of the change");
    assert_eq!(told.rcpts, vec![ANN.to_string()]);
    assert!(s_flat(&told.body()).contains("Before, it got each post as it is sent."));
    // used twice: nothing more
    s.command(ANN, REQ, "", &format!("confirm {}", plain.token()), T0 + 2);
    assert!(s.outbox()[0].body().contains("already used"));
    assert_eq!(mode_of(&s, "dev", ANN), DeliveryMode::DigestPlain);
    // the undo token restores the previous mode
    s.command(ANN, REQ, "", &format!("confirm {}", told.token()), T0 + 3);
    assert!(s_flat(&s.outbox()[0].body()).contains("Confirmed: ann@example.org now gets each post"));
    assert_eq!(mode_of(&s, "dev", ANN), DeliveryMode::Each);

    s.command(
        ANN,
        MAJ,
        "",
        "set ops digest\nset ops nomail\nset dev\nset\n",
        T0 + 4,
    );
    let b = s_flat(&s.outbox()[0].body());
    assert!(b.contains("The ops list has no digest."), "{b}");
    assert!(b.contains("then ann@example.org gets no mail (you stay subscribed) from ops."));
    // `set LIST` alone shows the current mode and how to change it
    assert!(
        b.contains(
            ">>>> set dev ann@example.org gets each post as it is sent from dev. To change it, send `set dev MODE`"
        ),
        "{b}"
    );
    assert!(b.contains(">>>> set Name the list"), "{b}");
    s.command(
        "bob@example.org",
        MAJ,
        "",
        "set dev digest\nset dev",
        T0 + 5,
    );
    let out = s.outbox();
    let b = out[0].body();
    assert!(
        b.contains(">>>> set dev digest\nbob@example.org is not subscribed to dev."),
        "{b}"
    );
    assert!(
        b.contains(">>>> set dev\nbob@example.org is not subscribed to dev."),
        "{b}"
    );
    assert_eq!(out.len(), 1, "no confirmation for a non-member");
    // on a list without a digest only the modes it has are offered
    s.command(ANN, MAJ, "", "set ops", T0 + 6);
    let b = s_flat(&s.outbox()[0].body());
    assert!(
        b.contains("gets each post as it is sent from ops. To change it, send `set ops MODE`, with MODE one of each (or mail), nomail."),
        "{b}"
    );
    // a request confirmed when the mode is already set changes nothing
    let ask = |s: &mut Site, t: i64| {
        s.command(ANN, REQ, "", "set plain", t);
        s.outbox()
            .into_iter()
            .find(|m| m.subject().starts_with("confirm "))
            .unwrap()
    };
    let (first, second) = (ask(&mut s, T0 + 7), ask(&mut s, T0 + 8));
    s.command(ANN, REQ, "", &format!("confirm {}", first.token()), T0 + 9);
    assert_eq!(s.outbox().len(), 2, "results and the notice");
    s.command(
        ANN,
        REQ,
        "",
        &format!("confirm {}", second.token()),
        T0 + 10,
    );
    let out = s.outbox();
    assert_eq!(out.len(), 1, "no notice: nothing changed");
    assert!(s_flat(&out[0].body())
        .contains("ann@example.org already gets the plain-text digest from dev."));
    // a member who left in the meantime is not changed
    let digest = asks
        .iter()
        .find(|m| m.body().contains("the MIME digest"))
        .unwrap();
    listd::store::members::remove(
        &s.conn,
        "dev",
        &listd::address::Address::parse(ANN).unwrap().key(),
    )
    .unwrap();
    s.command(
        ANN,
        REQ,
        "",
        &format!("confirm {}", digest.token()),
        T0 + 11,
    );
    assert!(s_flat(&s.outbox()[0].body()).contains("ann@example.org is not subscribed to dev."));
}

#[test]
fn majordomo_needs_list_names_and_bad_addresses_are_explained() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(
        ANN,
        MAJ,
        "",
        "subscribe\nsubscribe nosuch\nsubscribe dev not-an-address\nsubscribe dev a@b@\nsubscribe dev dev@lists.example.org\nsubscribe ann@example.org\n",
        T0,
    );
    let out = s.outbox();
    assert_eq!(out.len(), 1, "no confirmation went anywhere: {out:#?}");
    let b = out[0].body();
    assert!(
        b.contains(">>>> subscribe\nName the list: `subscribe LIST`."),
        "{b}"
    );
    assert!(b.contains("There is no list named `nosuch` here."));
    assert!(
        b.contains("`not-an-address` is not a valid address: address has no '@'."),
        "{b}"
    );
    assert!(b.contains("`a@b@` is not a valid address"));
    assert!(b.contains("is an address of this list server"));
    assert!(
        b.contains(">>>> subscribe ann@example.org\nName the list first"),
        "{b}"
    );
}

#[test]
fn display_names_are_kept() {
    let open = list("open", "");
    let mut s = Site::new(&[("dev", &open)]);
    s.command("Ann Example <ann@example.org>", REQ, "", "subscribe", T0);
    let m = listd::store::members::get(
        &s.conn,
        "dev",
        &listd::address::Address::parse(ANN).unwrap().key(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(m.name.as_deref(), Some("Ann Example"));
}

#[test]
fn loops_get_no_reply_and_change_nothing() {
    let open = list("open", "");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("", vec![]),
        ("ann@example.org", vec!["Auto-Submitted: auto-replied"]),
        ("ann@example.org", vec!["Auto-Submitted: auto-generated"]),
        ("ann@example.org", vec!["Precedence: bulk"]),
        ("ann@example.org", vec!["Precedence: junk"]),
        ("ann@example.org", vec!["Precedence: list"]),
        (
            "ann@example.org",
            vec!["List-Id: Dev <dev.lists.example.org>"],
        ),
        (
            "ann@example.org",
            vec!["X-Loop: dev-request@lists.example.org"],
        ),
        ("MAILER-DAEMON@example.org", vec![]),
        ("postmaster@example.org", vec![]),
        ("other-request@example.net", vec![]),
    ];
    for (env_from, headers) in cases {
        let mut s = Site::new(&[("dev", &open)]);
        let bytes = mail(ANN, REQ, "subscribe", "subscribe\nhelp\n", &headers);
        s.deliver_at(env_from, REQ, bytes.as_bytes(), T0);
        assert!(s.outbox().is_empty(), "answered {env_from:?} {headers:?}");
        assert!(
            !s.is_member("dev", ANN),
            "acted on {env_from:?} {headers:?}"
        );
    }
    // From: a daemon, envelope a person
    let mut s = Site::new(&[("dev", &open)]);
    let bytes = mail(
        "Mail Delivery <mailer-daemon@example.org>",
        REQ,
        "",
        "help",
        &[],
    );
    s.deliver_at(ANN, REQ, bytes.as_bytes(), T0);
    assert!(s.outbox().is_empty());
    // From: one of our own addresses (a list, a robot)
    let bytes = mail("dev@lists.example.org", REQ, "", "help", &[]);
    s.deliver_at(ANN, REQ, bytes.as_bytes(), T0);
    assert!(s.outbox().is_empty());
    // Auto-Submitted: no is a person
    let bytes = mail(ANN, REQ, "", "help", &["Auto-Submitted: no"]);
    s.deliver_at(ANN, REQ, bytes.as_bytes(), T0);
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn reply_rate_limit_per_address() {
    let mut s = Site::with(&[("dev", DEV)], &[], "  replies_per_hour: 3");
    for i in 0..5 {
        s.command(ANN, REQ, "", "help", T0 + i);
    }
    assert_eq!(s.outbox().len(), 3);
    // someone else is not affected
    s.command("bob@example.org", REQ, "", "help", T0 + 6);
    assert_eq!(s.outbox().len(), 1);
    // the state change still happens when the reply is dropped
    s.command(ANN, REQ, "", "subscribe", T0 + 7);
    assert!(s.outbox().is_empty());
    // an hour later, replies flow again
    s.command(ANN, REQ, "", "help", T0 + 3600 + 1);
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn rate_limit_also_protects_third_parties() {
    let mut s = Site::with(&[("dev", DEV)], &[], "  replies_per_hour: 2");
    for i in 0..4 {
        s.command(
            &format!("m{i}@evil.example"),
            REQ,
            "",
            "subscribe dev victim@example.net",
            T0 + i,
        );
    }
    let out = s.outbox();
    assert_eq!(to_rcpt(&out, "victim@example.net").len(), 2);
}

#[test]
fn default_rate_limit_is_ten_per_hour() {
    let mut s = Site::with(&[("dev", DEV)], &[], "  max_bad_lines: 25");
    for i in 0..12 {
        s.command(ANN, REQ, "", "help", T0 + i);
    }
    assert_eq!(s.outbox().len(), 10);
}

#[test]
fn multipart_alternative_command_mail() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.add_member("dev", ANN);
    let m = "From: ann@example.org\r\nTo: majordomo@lists.example.org\r\nSubject: =?utf-8?q?commands?=\r\n\
Message-ID: <alt@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
which\r\nset dev nom=\r\nail\r\n\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><body><p>lists</p><p>unsubscribe dev</p></body></html>\r\n--b1--\r\n";
    s.deliver_at(ANN, MAJ, m.as_bytes(), T0);
    let out = s.outbox();
    // the results, and the confirmation `set` asks for
    assert_eq!(out.len(), 2);
    assert!(out[1].subject().starts_with("confirm "));
    let b = out[0].body();
    assert!(b.contains(">>>> which\n"), "{b}");
    assert!(b.contains(">>>> set dev nomail\n"), "{b}");
    assert!(
        !b.contains(">>>> lists"),
        "the HTML alternative is not read: {b}"
    );
    assert!(s.is_member("dev", ANN));
}

#[test]
fn html_only_and_base64_command_mail() {
    let mut s = Site::new(&[("dev", DEV)]);
    // "<div>lists</div><div>which</div>" in base64
    let m = "From: ann@example.org\r\nTo: majordomo@lists.example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PGRpdj5saXN0czwvZGl2PjxkaXY+d2hpY2g8L2Rpdj4=\r\n";
    s.deliver_at(ANN, MAJ, m.as_bytes(), T0);
    let b = s.outbox()[0].body();
    assert!(
        b.contains(">>>> lists\n") && b.contains(">>>> which\n"),
        "{b}"
    );
}

#[test]
fn signature_and_quoted_signature() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.add_member("dev", ANN);
    s.command(
        ANN,
        REQ,
        "",
        "which\n> help\n> -- \n> Quoted Sig\n> unsubscribe\nlists\n-- \nAnn Example\nunsubscribe\n",
        T0,
    );
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    let b = out[0].body();
    assert!(b.contains(">>>> which") && b.contains(">>>> lists"), "{b}");
    assert!(
        !b.contains(">>>> help") && !b.contains("unsubscribe"),
        "{b}"
    );
    assert!(!b.contains("Ann Example"), "{b}");
    assert!(s.is_member("dev", ANN));
}

#[test]
fn too_many_bad_lines_stops_reading() {
    let mut s = Site::with(
        &[("dev", DEV)],
        &[],
        "  max_bad_lines: 3\n  replies_per_hour: 100",
    );
    s.command(ANN, REQ, "", "Hello,\nI would\nlike to\nhelp\n", T0);
    let b = s.outbox()[0].body();
    assert!(
        b.contains("Stopped reading after 3 lines that were not commands."),
        "{b}"
    );
    assert!(!b.contains(">>>> help"), "{b}");
}

#[test]
fn per_list_template_overrides() {
    let open = list("open", "");
    let mut s = Site::with(
        &[("dev", &open), ("ops", &open)],
        &[
            ("dev", "welcome", "Subject: Hi from dev, {{address}}\n\nDEV WELCOME {{list.description}} {{address}}\n"),
            ("dev", "command-results", "{{#each results}}[{{this.command}}] => {{this.result}}\n{{/each}}"),
        ],
        "  replies_per_hour: 100",
    );
    s.command(ANN, REQ, "", "subscribe", T0);
    let out = s.outbox();
    let b = to_rcpt(&out, ANN);
    assert_eq!(
        b[0].body(),
        "[subscribe] => ann@example.org is now subscribed to dev.\n"
    );
    assert_eq!(
        b[0].subject(),
        "Results of your commands to dev-request@lists.example.org"
    );
    assert_eq!(b[1].subject(), "Hi from dev, ann@example.org");
    assert_eq!(
        b[1].body(),
        "DEV WELCOME Development talk ann@example.org\n"
    );
    // the other list keeps the site templates
    s.command(
        ANN,
        "ops-request@lists.example.org",
        "",
        "subscribe",
        T0 + 1,
    );
    let out = s.outbox();
    assert!(to_rcpt(&out, ANN)[0].body().starts_with(">>>> subscribe"));
    assert!(to_rcpt(&out, ANN)[1]
        .subject()
        .starts_with("Welcome to the ops mailing list"));
}

#[test]
fn templates_see_settings_address_token_and_results() {
    let mut s = Site::with(
        &[("dev", DEV)],
        &[(
            "dev",
            "confirm-subscribe",
            "Subject: please confirm\n\n{{list.name}}|{{list.subscription}}|{{list.who}}|{{address}}|{{token}}|{{confirm_address}}|{{expiry_days}}\n",
        )],
        "  replies_per_hour: 100",
    );
    s.command(ANN, REQ, "", "subscribe", T0);
    let out = s.outbox();
    let c = out
        .iter()
        .find(|m| m.subject() == "please confirm")
        .unwrap();
    let body = c.body();
    let parts: Vec<&str> = body.trim().split('|').collect();
    assert_eq!(&parts[..4], &["dev", "confirm", "members", ANN]);
    assert_eq!(parts[4].len(), 26);
    assert_eq!(parts[5], format!("dev-confirm+{}@{DOMAIN}", parts[4]));
    assert_eq!(parts[6], "7");
    // a subject without the token still works: the Reply-To carries it
    let addr = c.reply_to().unwrap();
    s.command(ANN, &addr, "Re: please confirm", "", T0 + 1);
    assert!(s.is_member("dev", ANN));
}

#[test]
fn utf8_replies_are_quoted_printable() {
    let l = "description: Entwicklergespräche über Köln\nsubscription: open\n";
    let mut s = Site::new(&[("dev", l)]);
    s.command("Jürgen <juergen@example.de>", MAJ, "", "lists", T0);
    let out = s.outbox();
    let raw = String::from_utf8(out[0].bytes.clone()).unwrap();
    assert!(
        raw.contains("Content-Transfer-Encoding: quoted-printable"),
        "{raw}"
    );
    assert!(raw.contains("charset=utf-8") || raw.contains("charset=\"utf-8\""));
    assert!(out[0].body().contains("dev: Entwicklergespräche über Köln"));
    assert!(raw.is_ascii());
}

#[test]
fn oversized_command_mail_is_refused_unread() {
    let open = list("open", "");
    let mut s = Site::new(&[("dev", &open)]);
    let mut body = String::from("subscribe\n");
    let line = "x".repeat(998) + "\n";
    while body.len() < 10 * 1024 * 1024 {
        body.push_str(&line);
    }
    s.command(ANN, REQ, "", &body, T0);
    assert!(!s.is_member("dev", ANN));
    let out = s.outbox();
    assert_eq!(out.len(), 1);
    assert!(out[0].subject().contains("too large"));
    assert!(
        out[0]
            .body()
            .contains("reads messages of at most 262144 bytes"),
        "{}",
        out[0].body()
    );
    // and a loop is still not answered, however large
    let bytes = mail(ANN, REQ, "", &body, &["Precedence: bulk"]);
    s.deliver_at(ANN, REQ, bytes.as_bytes(), T0 + 1);
    assert!(s.outbox().is_empty());
}

#[test]
fn garbage_gets_a_clear_reply_and_never_a_panic() {
    let mut s = Site::with(&[("dev", DEV)], &[], "  replies_per_hour: 0");
    // no commands at all
    s.command(ANN, REQ, "Hello", "", T0);
    let b = s.outbox()[0].body();
    assert!(b.contains("No commands were found in your message."), "{b}");
    // binary junk, broken MIME, no headers, NULs, invalid UTF-8
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut junk = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect()
    };
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"From: \r\n\r\nsubscribe".to_vec(),
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x--".to_vec(),
        b"Subject: =?utf-8?b?!!!?=\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%".to_vec(),
        b"From: <>\r\n\r\n\xff\xfe\x00subscribe\x00".to_vec(),
    ];
    for n in [10, 100, 1000, 5000] {
        inputs.push(junk(n));
    }
    for (i, bytes) in inputs.iter().enumerate() {
        s.deliver_at(ANN, REQ, bytes, T0 + 10 + i as i64);
        let out = s.outbox();
        let results: Vec<_> = out
            .iter()
            .filter(|m| m.subject().starts_with("Results"))
            .collect();
        assert_eq!(results.len(), 1, "input {i}: {out:#?}");
        assert_eq!(results[0].rcpts, vec![ANN]);
    }
}

#[test]
fn a_token_is_bound_to_its_list_and_action() {
    let mut s = Site::new(&[("dev", DEV), ("ops", DEV)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let token = confirm_token(&mut s);
    // presented at another list's confirm address, or as an approval: unknown
    s.command(
        ANN,
        &format!("ops-confirm+{token}@{DOMAIN}"),
        "Re:",
        "",
        T0 + 1,
    );
    s.command(ANN, REQ, "", &format!("approve {token}"), T0 + 2);
    assert!(!s.is_member("dev", ANN) && !s.is_member("ops", ANN));
    let out = s.outbox();
    assert!(out[0]
        .body()
        .contains("No request is waiting for this confirmation token"));
    assert!(
        out[1].flat().contains("unknown moderation token"),
        "{}",
        out[1].body()
    );
    // still valid where it belongs
    s.command(ANN, MAJ, "", &format!("confirm {token}"), T0 + 3);
    assert!(s.is_member("dev", ANN));
}

#[test]
fn site_bounce_address_is_configurable_and_checked() {
    let mut s = Site::with(
        &[("dev", DEV)],
        &[],
        "  bounce_address: robot-bounces@example.org",
    );
    s.command(ANN, MAJ, "", "lists", T0);
    assert_eq!(s.outbox()[0].env_from, "robot-bounces@example.org");
    // list mail keeps NAME-bounces@
    s.command(ANN, MAJ, "", "subscribe dev", T0 + 1);
    let out = s.outbox();
    let c = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap();
    assert_eq!(c.env_from, "dev-bounces@lists.example.org");

    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &[], "  bounce_address: not an address");
    let e = listd::config::Config::load(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("listd.yaml") && e.contains("robot.bounce_address"),
        "{e}"
    );
}

#[test]
fn held_posts_are_approved_through_the_robot() {
    let l = "owners: [owner@example.org]\nmoderators: [mod@example.org]\nposting: members\nnonmember_posts: hold\nnotify_held: false\n";
    let mut s = Site::new(&[("dev", l)]);
    s.add_member("dev", "bob@example.org");
    let post = mail(
        "stranger@example.net",
        "dev@lists.example.org",
        "Hello list",
        "a post\n",
        &[],
    );
    s.deliver_at(
        "stranger@example.net",
        "dev@lists.example.org",
        post.as_bytes(),
        T0,
    );
    let out = s.outbox();
    let notice = to_rcpt(&out, "mod@example.org")[0];
    let approve_line = notice
        .body()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("approve ") && l.split_whitespace().count() == 2)
        .unwrap()
        .to_string();
    // a subscription-request lookup misses, so the robot hands it to moderation
    s.command("mod@example.org", REQ, "", &approve_line, T0 + 5);
    let out = s.outbox();
    let results = out
        .iter()
        .find(|m| m.subject().starts_with("Results"))
        .unwrap();
    assert!(results.is_to("mod@example.org"));
    assert!(
        out.iter().any(|m| m.kind == "post"),
        "the approved post is distributed: {out:#?}\n{}",
        results.body()
    );
    // the moderation token is single-use too
    s.command("mod@example.org", REQ, "", &approve_line, T0 + 6);
    let again = s.outbox();
    assert!(again.iter().all(|m| m.kind != "post"));
}

/// The token of the confirmation among the mails queued since last looked.
fn confirm_token(s: &mut Site) -> String {
    s.outbox()
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .expect("a confirmation was sent")
        .token()
}

/// Sends `command` to dev-request@ as ann, replies to the confirmation it
/// causes; every mail on the way is added to `all`. Returns the confirmation.
fn confirm_by_reply(s: &mut Site, command: &str, now: i64, all: &mut Vec<Sent>) -> Sent {
    s.command(ANN, REQ, "", command, now);
    let out = s.outbox();
    let c = out
        .iter()
        .find(|m| m.subject().starts_with("confirm "))
        .unwrap()
        .clone();
    all.extend(out);
    s.command(ANN, &c.reply_to().unwrap(), "Re:", "", now + 1);
    all.extend(s.outbox());
    c
}

/// Every robot mail as a user reads it: lines under 78 characters (72 in
/// fact), the help's two-column tables aligned, confirmations that say how
/// to confirm and until when, MIME headers on each.
#[test]
fn every_robot_template_renders_tidy() {
    let apr = "description: Approval talk\nowners: [owner@example.org]\nsubscription: approve\n";
    let mut s = Site::new(&[("dev", DEV), ("apr", apr)]);
    let mut all: Vec<Sent> = Vec::new();
    // help (both robots), lists, info, who, which, set, unknown lines
    s.command(ANN, REQ, "", "help\n", T0);
    let help_req = s.outbox();
    s.command(
        ANN,
        MAJ,
        "",
        "help\nlists\ninfo dev\nwho dev\nwhich\nset dev\nfoo\nbar\n",
        T0,
    );
    let help_maj = s.outbox();
    all.extend(help_req.iter().cloned());
    all.extend(help_maj.iter().cloned());
    // confirm-subscribe, welcome, owner-notice; confirm-unsubscribe, goodbye
    let csub = confirm_by_reply(&mut s, "subscribe", T0 + 1, &mut all);
    let cunsub = confirm_by_reply(&mut s, "unsubscribe", T0 + 3, &mut all);
    // owner-approval, refusal (rejected with a long reason)
    s.command(
        ANN,
        "apr-request@lists.example.org",
        "",
        "subscribe",
        T0 + 5,
    );
    let out = s.outbox();
    let ask = to_rcpt(&out, "owner@example.org")[0].clone();
    all.extend(out);
    let reason = "we only take people who work on the project; write to us with a few words about what you do and we will gladly look again";
    s.command(
        "owner@example.org",
        "apr-request@lists.example.org",
        "",
        &format!("reject {} {reason}", ask.token()),
        T0 + 6,
    );
    all.extend(s.outbox());

    let templates_seen: Vec<String> = all.iter().map(|m| m.subject()).collect();
    for want in [
        "Results of your commands",
        "confirm ",
        "Welcome to the dev mailing list",
        "ann@example.org has joined dev",
        "You have left the dev mailing list",
        "ann@example.org has left dev",
        "approve ",
        "Your request to join apr was declined",
    ] {
        assert!(
            templates_seen.iter().any(|s| s.starts_with(want)),
            "no mail {want:?} in {templates_seen:#?}"
        );
    }
    for m in &all {
        let body = m.body();
        for line in body.lines() {
            assert!(
                line.chars().count() <= 72,
                "line over 72 characters in {:?}:\n{line}",
                m.subject()
            );
            assert!(
                !line.ends_with(' '),
                "trailing space in {:?}: {line:?}",
                m.subject()
            );
        }
        assert!(!body.contains("\n\n\n"), "two blank lines in:\n{body}");
        let p = m.parsed();
        assert!(p.date().is_some() && p.message_id().is_some());
        assert!(m.header("Auto-Submitted").is_some());
        assert!(m
            .header("Content-Type")
            .unwrap()
            .to_ascii_lowercase()
            .contains("utf-8"));
    }

    // the help's tables: every description starts in the same column, and
    // every continuation line lines up under it
    for reply in [&help_req[0], &help_maj[0]] {
        let b = reply.body();
        let help: Vec<&str> = b
            .lines()
            .skip_while(|l| !l.starts_with("Commands for everyone"))
            .take_while(|l| !l.starts_with("Subscribing or"))
            .filter(|l| l.starts_with("  "))
            .collect();
        assert!(help.len() >= 20, "{b}");
        for l in &help {
            let col = if l.trim_start().len() == l.len() - 2 {
                // "  command ...   description"
                let gap = l[2..].find("  ").map(|i| i + 2).expect(l);
                gap + l[gap..].len() - l[gap..].trim_start().len()
            } else {
                l.len() - l.trim_start().len()
            };
            assert!(col >= 30, "misaligned help line: {l:?}\n{b}");
            if l.trim_start().len() == l.len() - 2 {
                assert_eq!(col, 30, "misaligned help line: {l:?}\n{b}");
            }
        }
        for cmd in ["who LIST", "approve TOKEN", "accept TOKEN", "set LIST MODE"] {
            assert!(
                help.iter().any(|l| l.starts_with(&format!("  {cmd}  "))),
                "{cmd} is not in the table: {b}"
            );
        }
    }
    assert!(help_req[0]
        .flat()
        .contains("which handles the dev list, so you may leave out LIST"));
    assert!(help_req[0]
        .flat()
        .contains("Any message sent to dev-join@lists.example.org subscribes"));
    assert!(help_maj[0]
        .flat()
        .contains("LIST-join@lists.example.org and LIST-leave@lists.example.org"));
    // an unknown line points to help once, not under every line
    let b = help_maj[0].body();
    assert_eq!(
        s_flat(&b)
            .matches("for the commands this robot knows")
            .count(),
        1,
        "{b}"
    );
    // a stranger's line that is no command is not repeated to them
    assert!(
        b.contains(">>>> (a line that is no command; not repeated)\nUnknown command.\n"),
        "{b}"
    );

    // confirmations: both ways to confirm, and until when
    for c in [&csub, &cunsub] {
        let token = c.token();
        let flat = c.flat();
        assert!(
            flat.contains(&format!(
                "reply to this message (your reply goes to dev-confirm+{token}@lists.example.org)"
            )),
            "{}",
            c.body()
        );
        assert!(flat.contains("send a message to dev-request@lists.example.org with this line"));
        assert!(c.body().contains(&format!("\n    confirm {token}\n")));
        assert!(
            flat.contains("This request expires in 7 days (Tue 21 Nov 2023, 22:13 UTC)."),
            "{}",
            c.body()
        );
    }
    // the owners' request: the approve line alone, the refusals, the CLI
    let b = ask.body();
    let token = ask.token();
    assert!(b.contains(&format!("\n    approve {token}\n")), "{b}");
    assert!(b.contains(&format!("\n    reject {token} REASON\n")), "{b}");
    assert!(b.contains(&format!("\n    discard {token}\n")), "{b}");
    assert!(b.contains("\n    listd requests approve 1\n"), "{b}");
    assert!(b.contains("\n    listd requests reject 1 REASON\n"), "{b}");
    assert!(
        ask.flat().contains("until Tue 21 Nov 2023, 22:13 UTC"),
        "{b}"
    );
}

#[test]
fn intro_and_stop_are_aliases() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, MAJ, "", "intro dev\nstop\nwhich\n", T0);
    let b = s.outbox()[0].body();
    assert!(b.contains(">>>> intro dev\ndev: Development talk"), "{b}");
    assert!(!b.contains("which"), "reading stops at `stop`: {b}");
}

#[test]
fn expired_confirmation_points_to_the_list_robot() {
    let mut s = Site::new(&[("dev", DEV)]);
    s.command(ANN, MAJ, "", "subscribe dev", T0);
    let token = confirm_token(&mut s);
    s.command(ANN, MAJ, "", &format!("confirm {token}"), T0 + 8 * 86_400);
    let flat = s.outbox()[0].flat();
    assert!(
        flat.contains("so nothing was changed. For a new one, send `subscribe` to dev-request@lists.example.org."),
        "{flat}"
    );
    assert!(!s.is_member("dev", ANN));
}

#[test]
fn welcome_and_goodbye_follow_the_list_policies() {
    // open list, open unsubscription: no confirmation promised, come back by -join@
    let open = list("open", "unsubscription: open\n");
    let closed = list("closed", "");
    let mut s = Site::new(&[("dev", &open), ("ops", &closed)]);
    s.command(ANN, REQ, "", "subscribe", T0);
    let out = s.outbox();
    let welcome = to_rcpt(&out, ANN)[1];
    assert!(welcome.subject().starts_with("Welcome"));
    assert!(
        welcome
            .flat()
            .contains("To leave, send any message to dev-leave@lists.example.org. "),
        "{}",
        welcome.body()
    );
    s.command(ANN, "dev-leave@lists.example.org", "", "", T0 + 1);
    let out = s.outbox();
    assert!(to_rcpt(&out, ANN)[0]
        .flat()
        .contains("To come back, send any message to dev-join@lists.example.org."));

    // confirm unsubscription: the welcome says so; closed list: come back
    // through the owners
    s.add_member("ops", ANN);
    s.command(ANN, "ops-leave@lists.example.org", "", "", T0 + 2);
    let c = s.outbox()[0].clone();
    s.command(ANN, &c.reply_to().unwrap(), "Re:", "", T0 + 3);
    let out = s.outbox();
    let bye = to_rcpt(&out, ANN)[0];
    assert!(
        bye.flat()
            .contains("To come back, write to the owners at ops-owner@lists.example.org."),
        "{}",
        bye.body()
    );
    let mut s = Site::new(&[("dev", DEV)]);
    let mut out = Vec::new();
    confirm_by_reply(&mut s, "subscribe", T0, &mut out);
    let welcome = out
        .iter()
        .find(|m| m.subject().starts_with("Welcome"))
        .unwrap();
    assert!(welcome
        .flat()
        .contains("dev-leave@lists.example.org (you will be asked to confirm)."));
}

#[test]
fn encoded_subject_command_and_the_default_bad_line_limit() {
    let mut s = Site::new(&[("dev", DEV)]);
    // RFC 2047 Subject ("which"), quoted-printable body with a soft break
    let m = "From: ann@example.org\r\nTo: majordomo@lists.example.org\r\n\
Subject: =?utf-8?B?d2hpY2g=?=\r\nMessage-ID: <enc@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
li=\r\nsts\r\n";
    s.deliver_at(ANN, MAJ, m.as_bytes(), T0);
    let b = s.outbox()[0].body();
    assert!(
        b.contains(">>>> which\n") && b.contains(">>>> lists\n"),
        "{b}"
    );

    // a body that starts with a UTF-8 byte-order mark (some Windows mailers)
    let m = "From: ann@example.org\r\nTo: majordomo@lists.example.org\r\nSubject: x\r\n\
Message-ID: <bom@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\u{feff}which\r\n";
    s.deliver_at(ANN, MAJ, m.as_bytes(), T0);
    let b = s.outbox()[0].body();
    assert!(b.starts_with(">>>> which\n"), "{b}");

    // default robot settings: 24 chatty lines are read past, the 25th stops
    let chat = |n: usize| -> String {
        (0..n)
            .map(|i| format!("chatty line {i}\n"))
            .collect::<String>()
            + "help\n"
    };
    s.command(ANN, REQ, "", &chat(24), T0 + 1);
    let b = s.outbox()[0].body();
    assert!(b.contains(">>>> help\n"), "{b}");
    assert!(!b.contains("Stopped reading"), "{b}");
    s.command(ANN, REQ, "", &chat(25), T0 + 2);
    let b = s.outbox()[0].body();
    assert!(!b.contains(">>>> help\n"), "{b}");
    assert!(
        b.contains("Stopped reading after 25 lines that were not commands."),
        "{b}"
    );
}

#[test]
fn tokens_survive_quotes_and_punctuation_around_them() {
    let mut s = Site::new(&[("dev", DEV), ("ops", DEV)]);
    s.command(ANN, MAJ, "", "subscribe dev\nsubscribe ops", T0);
    let out = s.outbox();
    let tokens: Vec<String> = out
        .iter()
        .filter(|m| m.subject().starts_with("confirm "))
        .map(|m| m.token())
        .collect();
    assert_eq!(tokens.len(), 2);
    s.command(
        ANN,
        MAJ,
        "",
        &format!("confirm `{}`.\nconfirm <{}>\n", tokens[0], tokens[1]),
        T0 + 1,
    );
    assert!(s.is_member("dev", ANN) && s.is_member("ops", ANN));
    // and a word that is only punctuation is no token at all
    s.outbox();
    s.command(ANN, MAJ, "", "confirm ...", T0 + 2);
    assert!(s.outbox()[0]
        .flat()
        .contains("No request is waiting for this confirmation token"));
}
