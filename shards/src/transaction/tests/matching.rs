//! Matching through the table: RFC 3261 keys (sent-by, method, CANCEL), RFC
//! 2543 keys (the torture messages inv2543.dat and badbranch.dat, the 2543 ACK
//! matched by our To tag), responses by branch and CSeq method.

use super::*;
use crate::transaction::{cancel_target, State, TransactionKey};

fn torture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/sip-torture/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

#[test]
fn same_branch_from_another_sent_by_is_another_transaction() {
    let mut h = Harness::new();
    let a = incoming("OPTIONS", "z9hG4bKm1");
    let b = request_from("OPTIONS", "192.0.2.51:5060", "z9hG4bKm1", 1);
    let c = request_from("OPTIONS", "192.0.2.50:5070", "z9hG4bKm1", 1);
    let (Received::Request(ta), Received::Request(tb), Received::Request(tc)) =
        (h.recv(0, &a), h.recv(0, &b), h.recv(0, &c))
    else {
        panic!()
    };
    assert!(ta != tb && tb != tc && ta != tc);
    // Other headers do not matter with a magic-cookie branch.
    let a2 = edit(&a, "CSeq: 1", "CSeq: 2");
    assert_eq!(h.recv(1, &a2), Received::Absorbed);
    // Another method with the same branch is another transaction.
    assert!(matches!(
        h.recv(2, &incoming("INFO", "z9hG4bKm1")),
        Received::Request(_)
    ));
    assert_eq!(h.table.len(), 4);
}

#[test]
fn cancel_finds_the_invite_it_cancels() {
    let mut h = Harness::new();
    let inv = incoming("INVITE", "z9hG4bKcx");
    let Received::Request(invite) = h.recv(0, &inv) else {
        panic!()
    };
    let cancel = request_from("CANCEL", "192.0.2.50:5060", "z9hG4bKcx", 1);
    let Received::Request(ctx) = h.recv(10, &cancel) else {
        panic!()
    };
    assert_ne!(ctx, invite, "CANCEL is a transaction of its own");
    assert_eq!(h.table.cancel_target_of(ctx), Some(invite));
    let key = h.table.key(ctx).unwrap().clone();
    assert_eq!(h.table.lookup(&cancel_target(&key).unwrap()), Some(invite));
    assert_eq!(h.table.cancel_target_of(invite), None, "not a CANCEL");
    // A retransmitted CANCEL is absorbed, then answered with its final.
    assert_eq!(h.recv(20, &cancel), Received::Absorbed);
    h.take();
    h.respond(30, ctx, &response(&cancel, 200, "s1")).unwrap();
    h.respond(31, invite, &response(&inv, 487, "s1")).unwrap();
    assert_eq!(h.recv(40, &cancel), Received::Absorbed);
    assert_eq!(
        h.take(),
        [
            "send SIP/2.0 200 OK",
            "send SIP/2.0 487 Request Terminated",
            "send SIP/2.0 200 OK"
        ]
    );
    // A CANCEL with another branch, or from another sent-by, matches nothing.
    for other in [
        request_from("CANCEL", "192.0.2.50:5060", "z9hG4bKcy", 1),
        request_from("CANCEL", "192.0.2.99:5060", "z9hG4bKcx", 1),
    ] {
        let Received::Request(c) = h.recv(50, &other) else {
            panic!()
        };
        assert_eq!(h.table.cancel_target_of(c), None);
    }
}

#[test]
fn rfc2543_invite_torture_message() {
    let mut h = Harness::new();
    let inv = torture("inv2543.dat");
    let msg = Message::parse(&inv).unwrap();
    let key = TransactionKey::server(&msg).unwrap();
    assert!(!key.is_rfc3261(), "no branch: RFC 2543 rules");
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!()
    };
    assert_eq!(h.table.lookup(&key), Some(tx));
    assert_eq!(h.table.key(tx), Some(&key));
    assert_eq!(h.take(), ["send SIP/2.0 100 Trying"]);
    assert_eq!(h.recv(500, &inv), Received::Absorbed);
    assert_eq!(h.take(), ["send SIP/2.0 100 Trying"]);
    // Each field RFC 2543 compares makes another transaction.
    for (from, to) in [
        ("CSeq: 56", "CSeq: 57"),
        ("Call-ID: inv2543.1717", "Call-ID: inv2543.1718"),
        (
            "INVITE sip:UserB@example.com",
            "INVITE sip:UserC@example.com",
        ),
        ("iftgw.example.com", "iftgw2.example.com"),
        ("user=phone>\r\n", "user=phone>;tag=f9\r\n"),
    ] {
        assert!(
            matches!(h.recv(600, &edit(&inv, from, to)), Received::Request(_)),
            "{to}"
        );
    }
    h.take();
    // Our 486 carries a To tag; the 2543 ACK carries it too, with the same
    // Via (no branch), Request-URI, From, Call-ID and CSeq number.
    h.respond(1000, tx, &response(&inv, 486, "srv1")).unwrap();
    assert_eq!(h.recv(1100, &inv), Received::Absorbed);
    assert_eq!(
        h.take(),
        ["send SIP/2.0 486 Busy Here", "send SIP/2.0 486 Busy Here"]
    );
    let ack = edit(
        &edit(
            &edit(&inv, "INVITE sip:", "ACK sip:"),
            "CSeq: 56 INVITE",
            "CSeq: 56 ACK",
        ),
        "To: sip:+16505552222@ss1.example.net;user=phone",
        "To: sip:+16505552222@ss1.example.net;user=phone;tag=srv1",
    );
    // An ACK with another To tag is not ours.
    let wrong = edit(&ack, "tag=srv1", "tag=other");
    assert_eq!(h.recv(1200, &wrong), Received::Ack(None));
    assert_eq!(h.table.state(tx), Some(State::Completed));
    assert_eq!(h.recv(1300, &ack), Received::Absorbed);
    assert_eq!(h.table.state(tx), Some(State::Confirmed));
    assert_eq!(h.recv(1400, &ack), Received::Absorbed);
    assert!(h.take().is_empty());
    h.run(1300 + T4);
    assert_eq!(h.table.state(tx), None);
    assert_eq!(h.recv(1300 + T4, &ack), Received::Ack(None));
}

#[test]
fn rfc2543_ack_for_a_2xx_is_passed_up() {
    let mut h = Harness::new();
    let inv = torture("inv2543.dat");
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!()
    };
    h.respond(10, tx, &response(&inv, 200, "srv2")).unwrap();
    let ack = edit(
        &edit(
            &edit(&inv, "INVITE sip:", "ACK sip:"),
            "CSeq: 56 INVITE",
            "CSeq: 56 ACK",
        ),
        "user=phone\r\nCall-ID",
        "user=phone;tag=srv2\r\nCall-ID",
    );
    assert_eq!(h.recv(20, &ack), Received::Ack(Some(tx)));
    assert_eq!(h.table.state(tx), Some(State::Accepted));
    h.take();
    assert_eq!(
        h.run(10 + T64),
        line(&[(10 + T64, TERMINATED)]),
        "ACKed: no L timeout"
    );
}

#[test]
fn rfc2543_cancel_matches_the_invite() {
    let mut h = Harness::new();
    let inv = torture("inv2543.dat");
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!()
    };
    let cancel = edit(
        &edit(&inv, "INVITE sip:", "CANCEL sip:"),
        "CSeq: 56 INVITE",
        "CSeq: 56 CANCEL",
    );
    let Received::Request(ctx) = h.recv(10, &cancel) else {
        panic!()
    };
    assert_eq!(h.table.cancel_target_of(ctx), Some(tx));
    let other = edit(&cancel, "CSeq: 56", "CSeq: 55");
    let Received::Request(c2) = h.recv(10, &other) else {
        panic!()
    };
    assert_eq!(h.table.cancel_target_of(c2), None);
}

#[test]
fn a_bare_magic_cookie_branch_uses_rfc2543_rules() {
    let mut h = Harness::new();
    let opt = torture("badbranch.dat");
    let msg = Message::parse(&opt).unwrap();
    assert_eq!(msg.top_via().unwrap().branch(), Some("z9hG4bK"));
    assert!(!TransactionKey::server(&msg).unwrap().is_rfc3261());
    let Received::Request(tx) = h.recv(0, &opt) else {
        panic!()
    };
    assert_eq!(h.recv(100, &opt), Received::Absorbed);
    // With 2543 rules the From tag counts, which a branch key would ignore.
    assert!(matches!(
        h.recv(200, &edit(&opt, "tag=33242", "tag=33243")),
        Received::Request(_)
    ));
    h.respond(300, tx, &response(&opt, 200, "x")).unwrap();
    h.take();
    assert_eq!(h.recv(400, &opt), Received::Absorbed);
    assert_eq!(h.take(), ["send SIP/2.0 200 OK"]);
}

#[test]
fn responses_match_by_branch_and_cseq_method() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKrm");
    let tx = h.send(0, &inv);
    let _ = h.recv(10, &response(&inv, 180, "b"));
    let cancel = h.table.cancel(20, tx, &mut h.out).unwrap().unwrap();
    let cancel_req = h.table.request(cancel).unwrap().to_vec();
    assert_eq!(
        h.recv(30, &response(&cancel_req, 200, "b")),
        Received::Response(cancel)
    );
    assert_eq!(
        h.recv(40, &response(&inv, 487, "b")),
        Received::Response(tx)
    );
    // Unknown branch, no branch, no Via.
    let other = response(&request("INVITE", "z9hG4bKzz"), 200, "b");
    assert_eq!(h.recv(50, &other), Received::Stray);
    let no_branch = edit(&other, ";branch=z9hG4bKzz", "");
    assert_eq!(h.recv(50, &no_branch), Received::Stray);
    let no_via = edit(&other, "Via:", "X-Via:");
    assert_eq!(
        h.recv(50, &no_via),
        Received::Invalid(crate::transaction::KeyError::Via)
    );
    // A request never matches a client transaction (and vice versa).
    assert!(matches!(h.recv(60, &inv), Received::Request(_)));
}
