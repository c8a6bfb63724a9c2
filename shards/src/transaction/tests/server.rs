//! Server transactions: every timer edge of 17.2.1 and 17.2.2 (G, H, I, J, L
//! and the 2xx retransmission), retransmitted requests absorbed or answered
//! with the latest response, 100 Trying.

use super::*;
use crate::sip::{HeaderName, Method};
use crate::transaction::{Kind, State, Timer};

const TRYING: &str = "send SIP/2.0 100 Trying";
const RINGING: &str = "send SIP/2.0 180 Ringing";
const BUSY: &str = "send SIP/2.0 486 Busy Here";
const OK: &str = "send SIP/2.0 200 OK";

/// The ACK the peer sends for our final to the INVITE with `invite_branch`:
/// same branch for a non-2xx (`ack_branch == invite_branch`), a new one for a
/// 2xx; To carries our tag.
fn ack_for(invite_branch: &str, ack_branch: &str, to_tag: &str) -> Vec<u8> {
    let ack = request_from("ACK", "192.0.2.50:5060", ack_branch, 1);
    let ack = edit(
        &ack,
        &format!("Call-ID: call-{ack_branch}"),
        &format!("Call-ID: call-{invite_branch}"),
    );
    edit(
        &ack,
        "To: <sip:bob@example.com>",
        &format!("To: <sip:bob@example.com>;tag={to_tag}"),
    )
}

/// A new INVITE server transaction (its 100 Trying taken).
fn invite(h: &mut Harness, now: u64, branch: &str) -> (TxId, Vec<u8>) {
    let inv = incoming("INVITE", branch);
    let Received::Request(tx) = h.recv(now, &inv) else {
        panic!("not a new request")
    };
    assert_eq!(h.take(), [TRYING]);
    (tx, inv)
}

#[test]
fn new_invite_gets_100_trying_and_retransmissions_get_the_latest_provisional() {
    let mut h = Harness::new();
    let inv = edit(
        &incoming("INVITE", "z9hG4bKs1"),
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nTimestamp: 54.2 0.1\r\n",
    );
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!()
    };
    assert_eq!(h.table.kind(tx), Some(Kind::ServerInvite));
    assert_eq!(h.table.state(tx), Some(State::Proceeding));
    let sent = h.take_raw();
    let Action::Send { dest, data, .. } = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(*dest, peer(), "back to the source");
    let trying = Message::parse(data).unwrap();
    trying.check().unwrap();
    assert_eq!(trying.status_code(), Some(100));
    assert_eq!(trying.to().unwrap().tag(), None);
    assert_eq!(trying.header(HeaderName::Timestamp).unwrap(), "54.2 0.1");
    assert_eq!(trying.top_via().unwrap().branch(), Some("z9hG4bKs1"));
    assert_eq!(h.table.poll_timeout(), None, "no timer in Proceeding");

    assert_eq!(h.recv(500, &inv), Received::Absorbed);
    assert_eq!(h.take(), [TRYING]);
    h.respond(600, tx, &response(&inv, 180, "s1")).unwrap();
    assert_eq!(h.take(), [RINGING]);
    assert_eq!(h.recv(1500, &inv), Received::Absorbed);
    assert_eq!(h.take(), [RINGING]);
}

#[test]
fn without_auto_trying_a_retransmission_in_proceeding_gets_nothing() {
    let mut h = Harness::with(Config {
        send_100_trying: false,
        ..Config::default()
    });
    let inv = incoming("INVITE", "z9hG4bKs2");
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!()
    };
    assert!(h.take().is_empty());
    assert_eq!(h.recv(500, &inv), Received::Absorbed);
    assert!(h.take().is_empty());
    h.respond(600, tx, &response(&inv, 100, "")).unwrap();
    assert_eq!(h.recv(700, &inv), Received::Absorbed);
    assert_eq!(h.take(), [TRYING, TRYING]);
}

#[test]
fn timer_g_doubles_capped_at_t2_until_timer_h_times_out() {
    let mut h = Harness::new();
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKg1");
    h.respond(1000, tx, &response(&inv, 486, "s1")).unwrap();
    assert_eq!(h.take(), [BUSY]);
    assert_eq!(h.table.state(tx), Some(State::Completed));
    let mut want = at_each(
        &[
            1500, 2500, 4500, 8500, 12500, 16500, 20500, 24500, 28500, 32500,
        ],
        BUSY,
    );
    want.push((1000 + T64, timeout(Timer::H)));
    want.push((1000 + T64, TERMINATED.into()));
    assert_eq!(h.run(1000 + T64 - 1), want[..10]);
    assert_eq!(h.run(1000 + T64), want[10..]);
    assert!(h.table.is_empty());
}

#[test]
fn completed_resends_the_final_and_ack_confirms_until_timer_i() {
    let mut h = Harness::new();
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKi1");
    h.respond(100, tx, &response(&inv, 486, "s1")).unwrap();
    h.take();
    assert_eq!(h.run(600), at_each(&[600], BUSY));
    assert_eq!(h.recv(700, &inv), Received::Absorbed);
    assert_eq!(
        h.take(),
        [BUSY],
        "the final again on a retransmitted INVITE"
    );
    // The ACK has the INVITE's branch: absorbed, G and H stop.
    let ack = ack_for("z9hG4bKi1", "z9hG4bKi1", "s1");
    assert_eq!(h.recv(800, &ack), Received::Absorbed);
    assert_eq!(h.table.state(tx), Some(State::Confirmed));
    assert_eq!(h.table.poll_timeout(), Some(800 + T4), "I only");
    // More ACKs and INVITEs are absorbed silently.
    assert_eq!(h.recv(900, &ack), Received::Absorbed);
    assert_eq!(h.recv(1000, &inv), Received::Absorbed);
    assert!(h.take().is_empty());
    assert_eq!(h.run(800 + T4 - 1), []);
    assert_eq!(h.run(800 + T4), line(&[(800 + T4, TERMINATED)]));
    // After I, the INVITE would be a new transaction.
    assert!(matches!(h.recv(800 + T4 + 1, &inv), Received::Request(_)));
}

#[test]
fn invite_server_over_a_reliable_transport() {
    let mut h = Harness::new();
    let inv = incoming("INVITE", "z9hG4bKtcp");
    let Received::Request(tx) = h.recv_on(0, &inv, true) else {
        panic!()
    };
    h.respond(100, tx, &response(&inv, 603, "s1")).unwrap();
    assert_eq!(h.table.poll_timeout(), Some(100 + T64), "H only, no G");
    let ack = ack_for("z9hG4bKtcp", "z9hG4bKtcp", "s1");
    assert_eq!(h.recv_on(200, &ack, true), Received::Absorbed);
    assert_eq!(
        h.take(),
        [TRYING, "send SIP/2.0 603 Decline", TERMINATED],
        "I = 0"
    );
}

#[test]
fn accepted_resends_the_2xx_until_ack_then_timer_l() {
    let mut h = Harness::new();
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKl1");
    h.respond(1000, tx, &response(&inv, 200, "s1")).unwrap();
    assert_eq!(h.take(), [OK]);
    assert_eq!(h.table.state(tx), Some(State::Accepted));
    // 13.3.1.4: T1 doubling up to T2 until the ACK.
    assert_eq!(h.run(4500), at_each(&[1500, 2500, 4500], OK));
    assert_eq!(h.recv(5000, &inv), Received::Absorbed);
    assert_eq!(h.take(), [OK], "a retransmitted INVITE gets the 2xx");
    // The ACK for a 2xx has its own branch; it is matched by dialog and passed up.
    let ack = ack_for("z9hG4bKl1", "z9hG4bKl1ack", "s1");
    assert_eq!(h.recv(6000, &ack), Received::Ack(Some(tx)));
    assert_eq!(
        h.recv(6100, &ack),
        Received::Ack(Some(tx)),
        "each ACK is the TU's"
    );
    assert_eq!(h.table.poll_timeout(), Some(1000 + T64), "L only");
    // The caller has the 2xx: a late INVITE copy is absorbed without an
    // answer (RFC 6026 7.1), and the transaction keeps no copy of the 2xx.
    assert_eq!(h.recv(7000, &inv), Received::Absorbed);
    assert_eq!(h.take(), Vec::<String>::new());
    // The TU may retransmit the 2xx itself; a non-2xx is refused.
    h.respond(7100, tx, &response(&inv, 200, "s1")).unwrap();
    assert_eq!(h.take(), [OK]);
    assert_eq!(
        h.respond(7200, tx, &response(&inv, 486, "s1")),
        Err(TxError::WrongState)
    );
    assert_eq!(h.run(1000 + T64 - 1), []);
    assert_eq!(h.run(1000 + T64), line(&[(1000 + T64, TERMINATED)]));
    assert_eq!(h.recv(1000 + T64 + 1, &ack), Received::Ack(None));
}

#[test]
fn timer_l_reports_a_2xx_never_acked() {
    let mut h = Harness::new();
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKl2");
    h.respond(0, tx, &response(&inv, 200, "s1")).unwrap();
    h.take();
    let mut want = at_each(
        &[
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ],
        OK,
    );
    want.push((T64, timeout(Timer::L)));
    want.push((T64, TERMINATED.into()));
    assert_eq!(h.run(T64), want);
}

#[test]
fn without_2xx_retransmission_accepted_only_answers_retransmitted_invites() {
    let mut h = Harness::with(Config {
        retransmit_2xx: false,
        ..Config::default()
    });
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKl3");
    h.respond(0, tx, &response(&inv, 200, "s1")).unwrap();
    h.take();
    assert_eq!(h.table.poll_timeout(), Some(T64));
    assert_eq!(h.recv(700, &inv), Received::Absorbed);
    assert_eq!(h.take(), [OK]);
    assert_eq!(h.run(T64), line(&[(T64, TERMINATED)]), "no timeout event");
}

#[test]
fn respond_refusals() {
    let mut h = Harness::new();
    let (tx, inv) = invite(&mut h, 0, "z9hG4bKr1");
    assert_eq!(h.respond(0, tx, &inv), Err(TxError::Malformed));
    assert_eq!(h.respond(0, tx, b"garbage"), Err(TxError::Malformed));
    h.respond(0, tx, &response(&inv, 404, "s1")).unwrap();
    for code in [100, 180, 200, 486] {
        assert_eq!(
            h.respond(1, tx, &response(&inv, code, "s1")),
            Err(TxError::WrongState)
        );
    }
    let client = h.send(0, &request("OPTIONS", "z9hG4bKr2"));
    assert_eq!(
        h.respond(1, client, &response(&inv, 200, "s1")),
        Err(TxError::WrongState)
    );
    h.take();
    h.run(T64);
    assert_eq!(
        h.respond(T64 + 1, tx, &response(&inv, 200, "s1")),
        Err(TxError::Unknown),
        "a stale handle"
    );
}

#[test]
fn non_invite_server_absorbs_then_answers_retransmissions_until_timer_j() {
    let mut h = Harness::new();
    let req = incoming("OPTIONS", "z9hG4bKj1");
    let Received::Request(tx) = h.recv(0, &req) else {
        panic!()
    };
    assert_eq!(h.table.kind(tx), Some(Kind::ServerNonInvite));
    assert_eq!(h.table.state(tx), Some(State::Trying));
    assert!(h.take().is_empty(), "no automatic 100 for non-INVITE");
    assert_eq!(h.recv(500, &req), Received::Absorbed);
    assert!(h.take().is_empty(), "Trying absorbs");
    h.respond(600, tx, &response(&req, 100, "")).unwrap();
    assert_eq!(h.table.state(tx), Some(State::Proceeding));
    assert_eq!(h.recv(700, &req), Received::Absorbed);
    assert_eq!(h.take(), [TRYING, TRYING]);
    h.respond(800, tx, &response(&req, 200, "s1")).unwrap();
    assert_eq!(h.table.state(tx), Some(State::Completed));
    assert_eq!(h.recv(900, &req), Received::Absorbed);
    assert_eq!(h.take(), [OK, OK]);
    assert_eq!(
        h.respond(950, tx, &response(&req, 200, "s1")),
        Err(TxError::WrongState)
    );
    assert_eq!(h.table.poll_timeout(), Some(800 + T64));
    assert_eq!(h.run(800 + T64 - 1), []);
    assert_eq!(h.run(800 + T64), line(&[(800 + T64, TERMINATED)]));
    assert!(matches!(h.recv(800 + T64, &req), Received::Request(_)));
}

#[test]
fn non_invite_server_over_a_reliable_transport_ends_with_the_final() {
    let mut h = Harness::new();
    let req = incoming("BYE", "z9hG4bKj2");
    let Received::Request(tx) = h.recv_on(0, &req, true) else {
        panic!()
    };
    h.respond(1, tx, &response(&req, 200, "s1")).unwrap();
    assert_eq!(h.take(), [OK, TERMINATED], "J = 0");
    assert!(h.table.is_empty());
}

#[test]
fn ack_without_a_transaction_goes_to_the_tu() {
    let mut h = Harness::new();
    let ack = ack_for("z9hG4bKnone", "z9hG4bKnone2", "s1");
    assert_eq!(h.recv(0, &ack), Received::Ack(None));
    assert!(h.table.is_empty(), "an ACK never creates a transaction");
    // An ACK matching a transaction still in Proceeding is absorbed.
    let (tx, _) = invite(&mut h, 0, "z9hG4bKearly");
    let early = ack_for("z9hG4bKearly", "z9hG4bKearly", "s1");
    assert_eq!(h.recv(1, &early), Received::Absorbed);
    assert_eq!(h.table.state(tx), Some(State::Proceeding));
    let msg = Message::parse(&early).unwrap();
    assert_eq!(msg.method(), Some(Method::Ack));
}

#[test]
fn a_final_resent_without_its_ack_counts_as_stalled_until_acked() {
    let mut h = Harness::new();
    let inv = incoming("INVITE", "z9hG4bKsv1");
    let Received::Request(tx) = h.recv(0, &inv) else {
        panic!("a new INVITE makes a transaction");
    };
    h.respond(10, tx, &response(&inv, 486, "t1")).unwrap();
    assert_eq!(h.table.stalled_invites(), 0, "within T1 nobody is late");
    h.run(600);
    assert_eq!(h.table.stalled_invites(), 1, "486 resent, no ACK yet");
    assert_eq!(
        h.recv(700, &ack_for("z9hG4bKsv1", "z9hG4bKsv1", "t1")),
        Received::Absorbed
    );
    assert_eq!(h.table.stalled_invites(), 0, "{:?}", h.table.state(tx));
}
