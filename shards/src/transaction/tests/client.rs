//! Client transactions: every timer edge of 17.1.1 and 17.1.2 (A, B, D, M, E,
//! F, K), the ACK for non-2xx, 2xx retransmissions reaching the TU, CANCEL.

use super::*;
use crate::sip::{HeaderName, Method};
use crate::transaction::{Event, Kind, State, Timer};

const INVITE_LINE: &str = "send INVITE sip:bob@192.0.2.50 SIP/2.0";
const OPTIONS_LINE: &str = "send OPTIONS sip:bob@192.0.2.50 SIP/2.0";
const ACK_LINE: &str = "send ACK sip:bob@192.0.2.50 SIP/2.0";

#[test]
fn timer_a_doubles_and_timer_b_fires_at_exactly_64_t1() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKa1");
    let tx = h.send(0, &inv);
    assert_eq!(h.take(), [INVITE_LINE]);
    assert_eq!(h.table.state(tx), Some(State::Calling));
    assert_eq!(h.table.kind(tx), Some(Kind::ClientInvite));
    assert_eq!(h.table.poll_timeout(), Some(T1));
    // A: T1, 2T1, 4T1, ... after each firing; B at 64*T1 ends it first.
    let mut want = at_each(&[500, 1500, 3500, 7500, 15500, 31500], INVITE_LINE);
    want.push((T64, timeout(Timer::B)));
    want.push((T64, TERMINATED.into()));
    assert_eq!(h.run(T64 - 1), want[..6]);
    assert_eq!(
        h.table.poll_timeout(),
        Some(T64),
        "B, not the next A (63500)"
    );
    assert_eq!(h.run(T64), want[6..]);
    assert_eq!(h.table.state(tx), None);
    assert!(h.table.is_empty());
    assert_eq!(h.table.poll_timeout(), None);
}

#[test]
fn a_late_wake_up_fires_b_without_a_retransmission_burst() {
    let mut h = Harness::new();
    h.send(0, &request("INVITE", "z9hG4bKlate"));
    h.take();
    h.table.handle_timeout(T64 + 10_000, &mut h.out);
    assert_eq!(h.take(), [timeout(Timer::B), TERMINATED.into()]);
}

#[test]
fn provisional_stops_a_and_b() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKa2");
    let tx = h.send(0, &inv);
    h.take();
    assert_eq!(h.run(600), at_each(&[500], INVITE_LINE));
    assert_eq!(
        h.recv(700, &response(&inv, 100, "")),
        Received::Response(tx)
    );
    assert_eq!(h.table.state(tx), Some(State::Proceeding));
    assert_eq!(h.table.poll_timeout(), None, "no A, no B in Proceeding");
    assert_eq!(h.run(10 * T64), []);
    // Every provisional reaches the TU, retransmitted or not.
    let ringing = response(&inv, 180, "b1");
    assert_eq!(h.recv(800, &ringing), Received::Response(tx));
    assert_eq!(h.recv(900, &ringing), Received::Response(tx));
    assert!(h.take().is_empty());
}

#[test]
fn non_2xx_final_is_acked_and_timer_d_absorbs_retransmissions() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKa3");
    let tx = h.send(0, &inv);
    h.take();
    assert_eq!(
        h.recv(100, &response(&inv, 180, "b1")),
        Received::Response(tx)
    );
    let busy = response(&inv, 486, "b1");
    assert_eq!(h.recv(1000, &busy), Received::Response(tx));
    assert_eq!(h.table.state(tx), Some(State::Completed));
    let sent = h.take_raw();
    assert_eq!(sent.len(), 1);
    let Action::Send { dest, data, .. } = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(*dest, peer());
    let ack = Message::parse(data).unwrap();
    ack.check().unwrap();
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.request_uri_str(), Some("sip:bob@192.0.2.50"));
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKa3"));
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(ack.to().unwrap().tag(), Some("b1"));
    assert_eq!(ack.from().unwrap().tag(), Some("a1"));
    assert_eq!(ack.call_id(), Some("call-z9hG4bKa3"));
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
    assert_eq!(ack.max_forwards().unwrap(), Some(70));
    assert_eq!(ack.header(HeaderName::ContentLength).unwrap(), "0");
    // Retransmitted finals get the ACK again and do not reach the TU.
    assert_eq!(h.recv(2000, &busy), Received::Absorbed);
    assert_eq!(h.take(), [ACK_LINE]);
    assert_eq!(h.recv(3000, &busy), Received::Absorbed);
    assert_eq!(h.take(), [ACK_LINE]);
    assert_eq!(h.recv(3100, &response(&inv, 180, "b1")), Received::Absorbed);
    // D = 32 s after the final; no timeout event.
    assert_eq!(h.table.poll_timeout(), Some(1000 + 32_000));
    assert_eq!(h.run(1000 + 31_999), []);
    assert_eq!(h.run(1000 + 32_000), line(&[(33_000, TERMINATED)]));
    assert_eq!(h.recv(34_000, &busy), Received::Stray);
}

#[test]
fn timer_d_follows_config_and_is_zero_over_reliable_transports() {
    let mut h = Harness::with(Config {
        timer_d_ms: 40_000,
        ..Config::default()
    });
    let inv = request("INVITE", "z9hG4bKd1");
    h.send(0, &inv);
    let _ = h.recv(10, &response(&inv, 503, "x"));
    assert_eq!(h.table.poll_timeout(), Some(40_010));

    let mut h = Harness::new();
    let tx = h.send_on(0, &inv, true);
    assert_eq!(h.table.poll_timeout(), Some(T64), "B only, no A over TCP");
    assert_eq!(h.run(T64 - 1), []);
    assert_eq!(
        h.recv_on(10, &response(&inv, 503, "x"), true),
        Received::Response(tx)
    );
    assert_eq!(h.take(), [INVITE_LINE, ACK_LINE, TERMINATED]);
    assert!(h.table.is_empty());
}

#[test]
fn every_2xx_reaches_the_tu_until_timer_m() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKa4");
    let tx = h.send(0, &inv);
    h.take();
    let ok = response(&inv, 200, "b1");
    assert_eq!(h.recv(400, &ok), Received::Response(tx));
    assert_eq!(h.table.state(tx), Some(State::Accepted));
    assert!(
        h.take().is_empty(),
        "the TU ACKs a 2xx, not the transaction"
    );
    assert_eq!(h.run(399 + T64), [], "no A after the 2xx");
    // Retransmissions and other forks' 2xx all reach the TU.
    assert_eq!(h.recv(900, &ok), Received::Response(tx));
    assert_eq!(h.recv(1900, &ok), Received::Response(tx));
    assert_eq!(
        h.recv(2000, &response(&inv, 200, "fork2")),
        Received::Response(tx)
    );
    // Anything else is dropped.
    assert_eq!(h.recv(2100, &response(&inv, 180, "b1")), Received::Absorbed);
    assert_eq!(h.recv(2200, &response(&inv, 486, "b1")), Received::Absorbed);
    // M = 64*T1 after the first 2xx.
    assert_eq!(h.run(400 + T64), line(&[(400 + T64, TERMINATED)]));
    assert_eq!(h.recv(400 + T64 + 1, &ok), Received::Stray);
}

#[test]
fn a_2xx_after_a_non_2xx_still_reaches_the_tu() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKa5");
    let tx = h.send(0, &inv);
    let _ = h.recv(10, &response(&inv, 480, "b1"));
    assert_eq!(
        h.recv(20, &response(&inv, 200, "b2")),
        Received::Response(tx)
    );
}

#[test]
fn timer_e_doubles_capped_at_t2_and_f_fires_at_64_t1() {
    let mut h = Harness::new();
    let tx = h.send(0, &request("OPTIONS", "z9hG4bKe1"));
    assert_eq!(h.table.state(tx), Some(State::Trying));
    assert_eq!(h.table.kind(tx), Some(Kind::ClientNonInvite));
    assert_eq!(h.take(), [OPTIONS_LINE]);
    let mut want = at_each(
        &[
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ],
        OPTIONS_LINE,
    );
    want.push((T64, timeout(Timer::F)));
    want.push((T64, TERMINATED.into()));
    assert_eq!(h.run(T64 - 1), want[..10]);
    assert_eq!(h.run(T64), want[10..]);
    assert!(h.table.is_empty());
}

#[test]
fn timer_e_in_proceeding_fires_every_t2() {
    let mut h = Harness::new();
    let req = request("OPTIONS", "z9hG4bKe2");
    let tx = h.send(0, &req);
    h.take();
    assert_eq!(h.run(500), at_each(&[500], OPTIONS_LINE));
    assert_eq!(
        h.recv(600, &response(&req, 100, "")),
        Received::Response(tx)
    );
    assert_eq!(h.table.state(tx), Some(State::Proceeding));
    // E keeps its schedule (1500), then repeats every T2; F still ends it.
    let times: Vec<u64> = (0..8).map(|n| 1500 + n * T2).collect();
    let mut want = at_each(&times, OPTIONS_LINE);
    want.push((T64, timeout(Timer::F)));
    want.push((T64, TERMINATED.into()));
    assert_eq!(h.run(T64), want);
}

#[test]
fn non_invite_final_then_timer_k() {
    let mut h = Harness::new();
    let req = request("BYE", "z9hG4bKk1");
    let tx = h.send(0, &req);
    h.take();
    let ok = response(&req, 200, "b1");
    assert_eq!(h.recv(700, &ok), Received::Response(tx));
    assert_eq!(h.table.state(tx), Some(State::Completed));
    assert_eq!(h.recv(800, &ok), Received::Absorbed);
    assert_eq!(h.recv(900, &response(&req, 100, "")), Received::Absorbed);
    assert!(h.take().is_empty());
    assert_eq!(h.table.poll_timeout(), Some(700 + T4));
    assert_eq!(h.run(700 + T4 - 1), []);
    assert_eq!(h.run(700 + T4), line(&[(700 + T4, TERMINATED)]));
    assert_eq!(h.recv(700 + T4 + 1, &ok), Received::Stray);
}

#[test]
fn non_invite_over_a_reliable_transport() {
    let mut h = Harness::new();
    let req = request("MESSAGE", "z9hG4bKr1");
    let tx = h.send_on(0, &req, true);
    assert_eq!(h.table.poll_timeout(), Some(T64), "no E, F only");
    assert_eq!(
        h.recv_on(10, &response(&req, 202, "x"), true),
        Received::Response(tx)
    );
    assert_eq!(
        h.take().last().map(String::as_str),
        Some(TERMINATED),
        "K = 0"
    );
    assert!(h.table.is_empty());
    let tx = h.send_on(0, &request("MESSAGE", "z9hG4bKr2"), true);
    h.take();
    assert_eq!(
        h.run(T64),
        line(&[(T64, &timeout(Timer::F)), (T64, TERMINATED)])
    );
    assert_eq!(h.table.state(tx), None);
}

#[test]
fn cancel_while_calling_waits_for_the_first_provisional() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKc1");
    let tx = h.send(0, &inv);
    h.take();
    assert_eq!(h.table.cancel(100, tx, &mut h.out), Ok(None));
    assert!(h.take().is_empty(), "no CANCEL before a provisional (9.1)");
    assert_eq!(
        h.table.cancel(150, tx, &mut h.out),
        Err(TxError::WrongState)
    );
    assert_eq!(h.run(600), at_each(&[500], INVITE_LINE), "A keeps running");
    assert_eq!(
        h.recv(700, &response(&inv, 180, "b1")),
        Received::Response(tx)
    );
    let actions = h.take_raw();
    assert_eq!(actions.len(), 2, "{actions:?}");
    let Action::Send {
        data, tx: cancel, ..
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        actions[1],
        Action::Event {
            tx,
            event: Event::CancelSent { cancel: *cancel }
        }
    );
    let msg = Message::parse(data).unwrap();
    msg.check().unwrap();
    assert_eq!(msg.method(), Some(Method::Cancel));
    assert_eq!(msg.top_via().unwrap().branch(), Some("z9hG4bKc1"));
    assert_eq!(h.table.kind(*cancel), Some(Kind::ClientNonInvite));
    assert_eq!(h.table.request(*cancel), Some(&data[..]));
    // The CANCEL's own response and the INVITE's 487 are told apart by CSeq.
    let cancel_req = data.to_vec();
    assert_eq!(
        h.recv(800, &response(&cancel_req, 200, "b1")),
        Received::Response(*cancel)
    );
    assert_eq!(
        h.recv(900, &response(&inv, 487, "b1")),
        Received::Response(tx)
    );
    assert_eq!(h.take(), [ACK_LINE]);
}

#[test]
fn cancel_in_proceeding_goes_at_once_and_ends_the_invite_after_64_t1() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKc2");
    let tx = h.send(0, &inv);
    let _ = h.recv(100, &response(&inv, 183, "b1"));
    h.take();
    let cancel = h.table.cancel(1000, tx, &mut h.out).unwrap().unwrap();
    assert_eq!(h.take(), ["send CANCEL sip:bob@192.0.2.50 SIP/2.0"]);
    assert_eq!(
        h.table.cancel(1001, tx, &mut h.out),
        Err(TxError::WrongState)
    );
    assert_eq!(
        h.table.cancel(1001, cancel, &mut h.out),
        Err(TxError::WrongState)
    );
    // The CANCEL gets a 200 but the INVITE never gets its 487.
    let cancel_req = h.table.request(cancel).unwrap().to_vec();
    let _ = h.recv(1100, &response(&cancel_req, 200, "b1"));
    let log = h.run(1000 + T64);
    assert!(log.contains(&(1000 + T64, timeout(Timer::B))), "{log:?}");
    assert_eq!(h.table.state(tx), None);
}

#[test]
fn cancel_is_refused_after_a_final_and_for_other_kinds() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKc3");
    let tx = h.send(0, &inv);
    let _ = h.recv(10, &response(&inv, 200, "b1"));
    assert_eq!(h.table.cancel(20, tx, &mut h.out), Err(TxError::WrongState));
    let opt = h.send(0, &request("OPTIONS", "z9hG4bKc4"));
    assert_eq!(
        h.table.cancel(20, opt, &mut h.out),
        Err(TxError::WrongState)
    );
    // A pending CANCEL is dropped when a final arrives first.
    let inv = request("INVITE", "z9hG4bKc5");
    let tx = h.send(0, &inv);
    assert_eq!(h.table.cancel(5, tx, &mut h.out), Ok(None));
    let _ = h.recv(10, &response(&inv, 486, "b1"));
    h.take();
    assert_eq!(h.recv(20, &response(&inv, 180, "b1")), Received::Absorbed);
    assert_eq!(h.take(), Vec::<String>::new());
}

#[test]
fn send_request_refuses_what_is_not_a_transaction() {
    let mut h = Harness::new();
    let p = peer();
    let t = &mut h.table;
    let out = &mut h.out;
    assert_eq!(
        t.send_request(0, &request("ACK", "z9hG4bKx"), p, false, out),
        Err(TxError::Ack)
    );
    assert_eq!(
        t.send_request(
            0,
            &response(&request("BYE", "z9hG4bKx"), 200, "t"),
            p,
            false,
            out
        ),
        Err(TxError::Malformed)
    );
    assert_eq!(
        t.send_request(0, b"", p, false, out),
        Err(TxError::Malformed)
    );
    let no_branch = edit(&request("BYE", "z9hG4bKx"), ";branch=z9hG4bKx", "");
    assert!(matches!(
        t.send_request(0, &no_branch, p, false, out),
        Err(TxError::Key(_))
    ));
    t.send_request(0, &request("BYE", "z9hG4bKdup"), p, false, out)
        .unwrap();
    assert_eq!(
        t.send_request(0, &request("BYE", "z9hG4bKdup"), p, false, out),
        Err(TxError::Duplicate)
    );
    // The same branch with another method is another transaction (CANCEL).
    assert!(t
        .send_request(0, &request("CANCEL", "z9hG4bKdup"), p, false, out)
        .is_ok());
}

#[test]
fn a_response_from_another_address_is_dropped_and_changes_nothing() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKspoof");
    let tx = h.send(0, &inv);
    h.take();
    let busy = response(&inv, 486, "evil");
    let msg = Message::parse(&busy).unwrap();
    for other in ["192.0.2.66:5060", "192.0.2.50:5999"] {
        let from: std::net::SocketAddr = other.parse().unwrap();
        assert_eq!(
            h.table.receive(100, &msg, from.into(), false, &mut h.out),
            Received::WrongSource,
            "{other}"
        );
    }
    // Nothing was sent (no ACK for the forged final), the state is unchanged.
    assert!(h.take().is_empty());
    assert_eq!(h.table.state(tx), Some(State::Calling));
    // The same final from the peer counts.
    assert_eq!(h.recv(200, &busy), Received::Response(tx));
    // An IPv4-mapped IPv6 source is the same address.
    let mut h = Harness::new();
    let bye = request("BYE", "z9hG4bKmapped");
    let tx = h.send(0, &bye);
    let ok = response(&bye, 200, "b1");
    let msg = Message::parse(&ok).unwrap();
    let mapped: std::net::SocketAddr = "[::ffff:192.0.2.50]:5060".parse().unwrap();
    assert_eq!(
        h.table.receive(10, &msg, mapped.into(), false, &mut h.out),
        Received::Response(tx)
    );
}

#[test]
fn an_invite_resent_without_any_answer_counts_as_stalled_until_answered_or_gone() {
    let mut h = Harness::new();
    let a = request("INVITE", "z9hG4bKst1");
    let b = request("INVITE", "z9hG4bKst2");
    let ta = h.send(0, &a);
    h.send(100, &b);
    h.take();
    assert_eq!(h.table.stalled_invites(), 0, "within T1 nobody is late");
    h.run(550);
    assert_eq!(
        h.table.stalled_invites(),
        1,
        "a was resent at T1, b not yet"
    );
    h.run(650);
    assert_eq!(h.table.stalled_invites(), 2);
    // Any answer, even a 100, means the callee is there.
    assert_eq!(h.recv(700, &response(&a, 100, "")), Received::Response(ta));
    assert_eq!(h.table.stalled_invites(), 1);
    // Past its third resend (at 7.5 s, resent at 0.5, 1.5, 3.5) b is gone
    // rather than late: it no longer counts, though timer B still runs.
    h.run(3_700);
    assert_eq!(h.table.stalled_invites(), 1);
    h.run(7_700);
    assert_eq!(h.table.stalled_invites(), 0);
    assert!(h.table.state(ta).is_some());
    h.run(100 + T64);
    assert_eq!(h.table.stalled_invites(), 0);
    // A non-INVITE never counts.
    h.send(T64 + 200, &request("OPTIONS", "z9hG4bKst3"));
    h.run(T64 + 2000);
    assert_eq!(h.table.stalled_invites(), 0);
}

#[test]
fn accepted_keeps_the_invite_headers_without_its_sdp() {
    let mut h = Harness::new();
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let plain = request("INVITE", "z9hG4bKsdp");
    let text = String::from_utf8(plain).unwrap().replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    );
    let tx = h.send(0, text.as_bytes());
    h.take();
    assert_eq!(h.table.request(tx), Some(text.as_bytes()), "sent whole");
    let ok = response(text.as_bytes(), 200, "b1");
    assert_eq!(h.recv(10, &ok), Received::Response(tx));
    let kept = Message::parse(h.table.request(tx).unwrap()).unwrap();
    assert!(kept.body().is_empty());
    assert_eq!(kept.content_length(), Some(0));
    assert!(kept.header_raw(HeaderName::ContentType).is_none());
    assert_eq!(kept.request_uri_str(), Some("sip:bob@192.0.2.50"));
    assert_eq!(
        kept.header_raw(HeaderName::From),
        Some("<sip:alice@example.com>;tag=a1")
    );
    assert_eq!(kept.cseq().unwrap().seq, 1);
    // A 2xx retransmission still reaches the TU, which ACKs it from this.
    assert_eq!(h.recv(20, &ok), Received::Response(tx));
}

#[test]
fn a_completed_non_invite_keeps_no_copy_of_its_request() {
    let mut h = Harness::new();
    let bye = request("BYE", "z9hG4bKbye1");
    let tx = h.send(0, &bye);
    assert_eq!(h.table.request(tx), Some(&bye[..]));
    assert_eq!(
        h.recv(10, &response(&bye, 200, "b1")),
        Received::Response(tx)
    );
    assert_eq!(h.table.state(tx), Some(State::Completed));
    assert_eq!(h.table.request(tx), None);
    // Completed still absorbs the 200's retransmission, silently.
    h.take();
    assert_eq!(h.recv(20, &response(&bye, 200, "b1")), Received::Absorbed);
    assert_eq!(h.take(), Vec::<String>::new());
}
