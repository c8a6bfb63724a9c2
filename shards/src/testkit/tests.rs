//! Call flows through the SIP endpoint in virtual time: caller UA, endpoint,
//! callee UA on the harness's network. Each runs in milliseconds of real
//! time, whatever the virtual time it covers (a 60 s ring timeout, timer H).

use std::sync::atomic::Ordering;

use super::endpoint::{OUT_TRUNK, PROXY, ROUTE};
use super::*;
use crate::cdr::time_fmt::parse_time;
use crate::cdr::Cdr;
use crate::endpoint::SipEndpoint;

type Rig = Harness<SipEndpoint>;

/// Status codes `ua` received for its `method` requests, 100 left out.
fn codes(h: &Rig, ua: std::net::SocketAddr, method: &str) -> Vec<u16> {
    let mut c = h.ua(ua).responses(method);
    c.retain(|&c| c != 100);
    c
}

/// The one CDR of the test.
fn the_cdr(h: &Rig) -> &Cdr {
    assert_eq!(h.cdrs.len(), 1, "CDRs: {:?}\n{}", h.cdrs, h.ladder());
    &h.cdrs[0]
}

/// Ms from CDR time `a` to CDR time `b`.
fn ms_between(a: &str, b: &str) -> u64 {
    parse_time(b).expect("time") - parse_time(a).expect("time")
}

fn ringing(callee: Answering) -> Rig {
    endpoint(Setup {
        callee,
        ..Setup::default()
    })
}

/// Caller calls, callee answers at once: the call is up after a second.
fn answered_call() -> Rig {
    let mut h = endpoint(Setup::default());
    h.ua_mut(CALLER).invite("2000");
    h.run_for(1_000);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 200], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1, "{}", h.ladder());
    h
}

#[test]
fn basic_call_hung_up_by_the_caller_has_a_completed_cdr_timed_by_the_virtual_clock() {
    let mut h = ringing(Answering::Accept { ring_ms: 2_000 });
    h.ua_mut(CALLER).invite("2000");
    h.run_for(1_000);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180], "{}", h.ladder());
    h.run_for(1_500);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 200], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1);
    assert!(h.ua(CALLER).in_dialog() && h.ua(CALLEE).in_dialog());
    h.run_for(30_000);
    assert!(h.cdrs.is_empty(), "the call is up");
    h.ua_mut(CALLER).bye();
    h.settle();
    assert_eq!(codes(&h, CALLER, "BYE"), [200], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1);
    assert!(!h.ua(CALLEE).in_dialog());

    let cdr = the_cdr(&h);
    assert_eq!(cdr.call_id, h.ua(CALLER).call_id().unwrap());
    assert_eq!(
        (
            cdr.status.as_str(),
            cdr.hangup_reason.as_str(),
            cdr.status_code
        ),
        ("completed", "byCaller", 200)
    );
    assert_eq!(cdr.direction.as_str(), "inbound");
    assert_eq!(cdr.route_id.as_deref(), Some(ROUTE));
    assert_eq!(cdr.sip_trunk_id.as_deref(), Some(OUT_TRUNK));
    assert_eq!(
        (cdr.from_number.as_str(), cdr.to_number.as_str()),
        ("1001", "2000")
    );
    // 10 ms a hop: INVITE in at 10, 180 back at 30, the callee answers at
    // 20 + 2000, its 200 is in at 2030; the BYE left at 32500, in at 32510.
    let start = &cdr.start_time;
    assert_eq!(*start, clock::cdr_time(clock::START_MONO_MS + 10));
    assert_eq!(ms_between(start, cdr.ring_time.as_deref().unwrap()), 20);
    let answer = cdr.answer_time.as_deref().unwrap();
    assert_eq!(ms_between(start, answer), 2_020);
    assert_eq!(ms_between(answer, &cdr.end_time), 30_480);
    assert_eq!(cdr.duration_secs, 30);
    let call_id = cdr.call_id.clone();

    // The flow follows once the call has lingered.
    h.run_for(crate::call::flow::LINGER_MS + 1_000);
    assert!(h.flows.iter().any(|(id, _)| *id == call_id));
    assert_eq!(h.stats.calls_completed.load(Ordering::Relaxed), 1);
}

#[test]
fn callee_hangs_up_and_the_caller_gets_the_bye() {
    let mut h = answered_call();
    h.run_for(5_000);
    h.ua_mut(CALLEE).bye();
    h.settle();
    let byes = h.ua(CALLER).requests("BYE");
    assert_eq!(byes.len(), 1, "{}", h.ladder());
    assert_eq!(byes[0].from, PROXY);
    assert_eq!(codes(&h, CALLEE, "BYE"), [200]);
    assert!(!h.ua(CALLER).in_dialog());
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("completed", "byCallee")
    );
    // Answered at 30 ms, the BYE in at 6010 ms.
    assert_eq!(cdr.duration_secs, 5);
}

#[test]
fn busy_callee_gives_486_to_the_caller_and_a_rejected_cdr() {
    let mut h = ringing(Answering::Reject(486));
    h.ua_mut(CALLER).invite("2000");
    h.settle();
    assert_eq!(codes(&h, CALLER, "INVITE"), [486], "{}", h.ladder());
    // Both non-2xx finals are ACKed hop by hop.
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1, "{}", h.ladder());
    assert!(h
        .wire()
        .iter()
        .any(|w| w.from == CALLER && w.first_line.starts_with("ACK ")));
    let cdr = the_cdr(&h);
    assert_eq!(
        (
            cdr.status.as_str(),
            cdr.hangup_reason.as_str(),
            cdr.status_code
        ),
        ("failed", "rejected", 486)
    );
    assert_eq!((cdr.answer_time.as_deref(), cdr.duration_secs), (None, 0));
}

#[test]
fn caller_cancel_while_ringing_gives_487_and_a_canceled_cdr() {
    let mut h = ringing(Answering::Ring);
    h.ua_mut(CALLER).invite("2000");
    h.run_for(3_000);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180]);
    h.ua_mut(CALLER).cancel();
    h.settle();
    assert_eq!(codes(&h, CALLER, "CANCEL"), [200], "{}", h.ladder());
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 487]);
    assert_eq!(h.ua(CALLEE).requests("CANCEL").len(), 1, "{}", h.ladder());
    assert!(h
        .wire()
        .iter()
        .any(|w| w.from == CALLEE && w.first_line.starts_with("SIP/2.0 200")));
    assert_eq!(
        h.ua(CALLEE).requests("ACK").len(),
        1,
        "the callee's 487 is ACKed"
    );
    let cdr = the_cdr(&h);
    assert_eq!(
        (
            cdr.status.as_str(),
            cdr.hangup_reason.as_str(),
            cdr.status_code
        ),
        ("missed", "canceled", 487)
    );
    assert!(cdr.ring_time.is_some() && cdr.answer_time.is_none());
}

#[test]
fn no_answer_within_max_ring_time_gives_408_cancels_the_callee_and_a_no_answer_cdr() {
    let mut h = ringing(Answering::Ring);
    let max_ring_ms = Setup::default().max_ring_ms;
    h.ua_mut(CALLER).invite("2000");
    h.run_for(max_ring_ms - 1_000);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180]);
    assert!(h.ua(CALLEE).requests("CANCEL").is_empty());
    h.run_for(2_000);
    h.settle();
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 408], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("CANCEL").len(), 1);
    let cdr = the_cdr(&h);
    assert_eq!(
        (
            cdr.status.as_str(),
            cdr.hangup_reason.as_str(),
            cdr.status_code
        ),
        ("missed", "noAnswer", 408)
    );
    // Ends on the first tick past the deadline (ticks are 20 ms apart).
    let rang = ms_between(&cdr.start_time, &cdr.end_time);
    assert!((max_ring_ms..max_ring_ms + 25).contains(&rang), "{rang}");
}

#[test]
fn lost_200s_are_retransmitted_by_timer_g_until_the_ack() {
    let mut h = endpoint(Setup::default());
    h.fault(
        Fault::drop("SIP/2.0 200")
            .cseq("INVITE")
            .to(CALLER)
            .times(2),
    );
    let t0 = h.now_ms();
    h.ua_mut(CALLER).invite("2000");
    h.run_for(400);
    assert_eq!(codes(&h, CALLER, "INVITE"), [180], "{}", h.ladder());
    assert_eq!(
        h.ua(CALLEE).requests("ACK").len(),
        1,
        "the callee's 200 is ACKed at once"
    );
    h.run_for(10_000);
    // The 200 left at 30 ms, again T1 (500 ms) later on the next 20 ms
    // tick (540), again 2*T1 after that (1540): that one gets through.
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 200], "{}", h.ladder());
    let got = h
        .ua(CALLER)
        .seen()
        .iter()
        .find(|s| s.status() == Some(200))
        .map(|s| s.at_ms - t0)
        .unwrap();
    assert!((1_540..=1_570).contains(&got), "200 arrived at {got} ms");
    // Once ACKed, no more retransmissions (only one 200 in 10 s), call up.
    assert_eq!(h.ua(CALLEE).requests("ACK").len(), 1);
    assert!(h.cdrs.is_empty());
    h.ua_mut(CALLER).bye();
    h.settle();
    assert_eq!(the_cdr(&h).hangup_reason.as_str(), "byCaller");
}

#[test]
fn a_lost_ack_gets_the_2xx_retransmitted_then_timer_h_hangs_up_the_callee() {
    let mut h = endpoint(Setup::default());
    h.fault(Fault::drop("ACK ").from(CALLER).always());
    h.ua_mut(CALLER).invite("2000");
    h.run_for(31_000);
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    assert!(h.ua(CALLEE).requests("BYE").is_empty());
    let arrivals: Vec<u64> = h
        .ua(CALLER)
        .seen()
        .iter()
        .filter(|s| s.status() == Some(200))
        .map(|s| s.at_ms)
        .collect();
    let gaps: Vec<u64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // T1, doubling up to T2 (4 s), each on a 20 ms tick.
    for (gap, want) in gaps.iter().zip([500, 1_000, 2_000, 4_000, 4_000, 4_000]) {
        assert!(gap.abs_diff(want) <= 20, "gaps {gaps:?}");
    }
    assert!(gaps.len() >= 8, "gaps {gaps:?}\n{}", h.ladder());
    h.run_for(2_000);
    h.settle();
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1, "{}", h.ladder());
    assert!(
        h.ua(CALLER).requests("BYE").is_empty(),
        "the caller is gone"
    );
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("completed", "bySystem")
    );
    // Timer H: 64*T1 after the first 2xx.
    assert_eq!(cdr.duration_secs, 32);
}

#[test]
fn a_bye_with_a_wrong_tag_gets_481_and_the_call_stays() {
    let mut h = answered_call();
    h.ua_mut(CALLER).request(
        "BYE",
        Tweak {
            to_tag: Some("not-the-tag".into()),
            ..Tweak::default()
        },
    );
    h.run_for(5_000);
    assert_eq!(codes(&h, CALLER, "BYE"), [481], "{}", h.ladder());
    assert!(h.ua(CALLEE).requests("BYE").is_empty());
    assert!(h.cdrs.is_empty());
    assert_eq!(h.stats.sip_dialog_mismatch.load(Ordering::Relaxed), 1);
    h.ua_mut(CALLER).bye();
    h.settle();
    assert_eq!(codes(&h, CALLER, "BYE"), [481, 200]);
    assert_eq!(the_cdr(&h).hangup_reason.as_str(), "byCaller");
}

#[test]
fn an_in_dialog_request_with_an_old_cseq_gets_500_and_the_call_stays() {
    let mut h = answered_call();
    // The INVITE's CSeq (1) again.
    h.ua_mut(CALLER).request(
        "BYE",
        Tweak {
            cseq: Some(1),
            ..Tweak::default()
        },
    );
    h.run_for(5_000);
    assert_eq!(codes(&h, CALLER, "BYE"), [500], "{}", h.ladder());
    assert!(h.ua(CALLEE).requests("BYE").is_empty());
    assert!(h.cdrs.is_empty());
    assert_eq!(h.stats.sip_cseq_out_of_order.load(Ordering::Relaxed), 1);
    h.ua_mut(CALLER).bye();
    h.settle();
    assert_eq!(codes(&h, CALLER, "BYE"), [500, 200]);
    assert_eq!(the_cdr(&h).status.as_str(), "completed");
}

#[test]
fn a_duplicated_invite_is_absorbed_not_called_twice() {
    let mut h = endpoint(Setup::default());
    h.fault(Fault::duplicate("INVITE ").from(CALLER));
    h.ua_mut(CALLER).invite("2000");
    h.run_for(1_000);
    assert_eq!(h.ua(CALLEE).requests("INVITE").len(), 1, "{}", h.ladder());
    assert_eq!(h.stats.retransmissions.load(Ordering::Relaxed), 1);
    assert_eq!(codes(&h, CALLER, "INVITE").last(), Some(&200));
}

#[test]
fn a_delayed_ack_arriving_after_a_retransmission_still_confirms_the_call() {
    let mut h = endpoint(Setup::default());
    h.fault(Fault::delay("ACK ", 700).from(CALLER));
    h.ua_mut(CALLER).invite("2000");
    h.run_for(40_000);
    // The late ACK and the ACK of the retransmitted 200 both arrive; the
    // call is up well past timer H.
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    assert!(h.ua(CALLEE).requests("BYE").is_empty());
    h.ua_mut(CALLER).bye();
    h.settle();
    assert_eq!(the_cdr(&h).hangup_reason.as_str(), "byCaller");
}

#[test]
fn stopping_the_shard_hangs_up_calls_still_up() {
    let mut h = answered_call();
    h.stop();
    assert_eq!(h.ua(CALLER).requests("BYE").len(), 1, "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1);
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("completed", "bySystem")
    );
    assert_eq!(
        cdr.metadata.get("hangupMessage").and_then(|m| m.as_str()),
        Some("shutdown")
    );
    assert_eq!(cdr.sip_trunk_id.as_deref(), Some(OUT_TRUNK));
}

#[test]
fn a_callee_that_never_responds_fails_the_call_on_timer_b() {
    let mut h = ringing(Answering::Silent);
    h.ua_mut(CALLER).invite("2000");
    h.run_for(31_000);
    assert!(h.cdrs.is_empty(), "{}", h.ladder());
    // Timer A: the INVITE, again 0.5, 1.5, 3.5, 7.5 and 15.5 s after it.
    assert_eq!(h.ua(CALLEE).requests("INVITE").len(), 6, "{}", h.ladder());
    h.run_for(2_000);
    h.settle();
    assert_eq!(codes(&h, CALLER, "INVITE"), [408], "{}", h.ladder());
    let cdr = the_cdr(&h);
    assert_eq!(
        (
            cdr.status.as_str(),
            cdr.hangup_reason.as_str(),
            cdr.status_code
        ),
        ("failed", "failed", 408)
    );
    // Timer B: 64*T1 after the INVITE left for the callee (at 10 ms).
    let took = ms_between(&cdr.start_time, &cdr.end_time);
    assert!((32_000..32_030).contains(&took), "{took}");
}

#[test]
fn a_hangup_command_sends_bye_to_both_legs() {
    use crate::runtime::inbox::CallCommand;
    let mut h = answered_call();
    h.run_for(3_000);
    let (reply, answer) = crossbeam_channel::bounded(1);
    let call_id = h.ua(CALLER).call_id().unwrap().to_string();
    h.message(crate::runtime::ShardMsg::CallCommand {
        call_id,
        command: CallCommand::Hangup {
            reason: Some("operator".into()),
        },
        reply,
    });
    assert!(matches!(answer.try_recv(), Ok(Ok(()))));
    h.settle();
    assert_eq!(h.ua(CALLER).requests("BYE").len(), 1, "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1);
    let cdr = the_cdr(&h);
    assert_eq!(
        (cdr.status.as_str(), cdr.hangup_reason.as_str()),
        ("completed", "bySystem")
    );
    assert_eq!(
        cdr.metadata.get("hangupMessage").and_then(|m| m.as_str()),
        Some("operator")
    );
    assert_eq!(cdr.duration_secs, 3);
}

/// RFC 3261 9.1/15: a 2xx that crosses our CANCEL still makes a dialog at
/// the callee; the proxy must ACK it and then send BYE. Today the engine
/// forgets the leg's INVITE transaction when the call ends (`end` removes
/// it from `by_tx`), so the late 200 is dropped unanswered: the callee
/// never gets an ACK or a BYE and believes the call is up.
#[test]
fn a_callee_200_crossing_the_cancel_is_acked_and_hung_up() {
    let mut h = ringing(Answering::Accept { ring_ms: 1_000 });
    let t0 = h.now_ms();
    h.ua_mut(CALLER).invite("2000");
    // The callee's 200 leaves at 1020 ms; our CANCEL reaches it at 1025.
    h.run_until(t0 + 1_005);
    h.ua_mut(CALLER).cancel();
    h.run_for(5_000);
    h.settle();
    assert_eq!(codes(&h, CALLER, "INVITE"), [180, 487], "{}", h.ladder());
    assert_eq!(h.ua(CALLEE).requests("CANCEL").len(), 1, "{}", h.ladder());
    assert_eq!(the_cdr(&h).hangup_reason.as_str(), "canceled");
    assert_eq!(
        h.ua(CALLEE).requests("ACK").len(),
        1,
        "the callee's 200 is ACKed\n{}",
        h.ladder()
    );
    assert_eq!(h.ua(CALLEE).requests("BYE").len(), 1, "{}", h.ladder());
    assert!(!h.ua(CALLEE).in_dialog());
}
