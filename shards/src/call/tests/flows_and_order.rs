//! What the engine records in a call's flow and the order of its outputs
//! (found in review: each failed before the fix it names).

use super::*;
use crate::call::flow::{decode, EntryKind, LINGER_MS, SETTLED_LINGER_MS};

fn drain(rig: &mut Rig) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut order = Vec::new();
    let mut flows = Vec::new();
    while let Some(o) = rig.engine.poll_output() {
        match o {
            Output::Transmit { data, .. } => {
                let s = String::from_utf8_lossy(&data).into_owned();
                order.push(format!("TX {}", s.lines().next().unwrap_or("")));
            }
            Output::Cdr(c) => {
                order.push(format!("CDR {}", c.status.as_str()));
                rig.cdrs.push(*c);
            }
            Output::Flow { json, .. } => {
                order.push("FLOW".into());
                flows.push(json);
            }
        }
    }
    (order, flows)
}

fn cancel() -> String {
    format!("CANCEL sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKc1\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>\r\nCall-ID: call-1\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

fn in_dialog(method: &str, branch: &str, cseq: u32, our_tag: &str) -> String {
    format!("{method} sip:shardpbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nFrom: <sip:1001@pbx>;tag=ca\r\nTo: <sip:1002@pbx>;tag={our_tag}\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:1001@{CALLER}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

fn entries(flow: &[u8]) -> Vec<String> {
    let (_, _, e) = decode(flow).expect("flow");
    e.iter()
        .map(|e| {
            let dir = if e.kind == EntryKind::Inbound {
                "in "
            } else {
                "out"
            };
            format!("{dir} {} {}", e.leg, e.text.lines().next().unwrap_or(""))
        })
        .collect()
}

#[test]
fn a_calls_cdr_comes_after_the_datagrams_that_ended_it() {
    let mut rig = Rig::new();
    let b_invite = start(&mut rig);
    rig.receive(at(10), &answer(&b_invite, 180, "cb"), CALLEE);
    drain(&mut rig);
    rig.receive(at(20), &cancel(), CALLER);
    let (order, _) = drain(&mut rig);
    assert_eq!(
        order,
        [
            "TX SIP/2.0 200 OK",
            "TX SIP/2.0 487 Request Terminated",
            "TX CANCEL sip:1002@127.0.0.1:5072 SIP/2.0",
            "CDR missed",
        ]
    );
}

#[test]
fn a_reinvites_trying_and_a_late_byes_481_are_in_the_flow() {
    let mut rig = Rig::new();
    let b_invite = start(&mut rig);
    rig.receive(at(10), &answer(&b_invite, 200, "cb"), CALLEE);
    let sent = rig.sent();
    let ok = sent
        .iter()
        .find(|(d, m)| d.to_string() == CALLER && m.starts_with("SIP/2.0 200"))
        .unwrap();
    let m = Message::parse(ok.1.as_bytes()).unwrap();
    let tag = m.to().unwrap().tag().unwrap().to_string();
    let re = in_dialog("INVITE", "z9hG4bKre1", 2, &tag);
    let msg = Message::parse(re.as_bytes()).unwrap();
    assert_eq!(rig.feed(at(30), &msg, CALLER), Handled::Done);
    drain(&mut rig);
    let bye = in_dialog("BYE", "z9hG4bKby1", 3, &tag);
    rig.receive(at(40), &bye, CALLER);
    drain(&mut rig);
    // A late second BYE (glare / new branch) after the call ended.
    let bye2 = in_dialog("BYE", "z9hG4bKby2", 4, &tag);
    let msg = Message::parse(bye2.as_bytes()).unwrap();
    // The endpoint answers what is in no dialog of the engine.
    let Handled::NoDialog(tx) = rig.feed(at(50), &msg, CALLER) else {
        panic!("the late BYE is the endpoint's to answer");
    };
    let mut buf = Vec::new();
    let w = crate::sip::Writer::response_to(&mut buf, &msg, 481, None, Some("sp1"), None);
    w.finish(b"");
    rig.engine
        .handle(at(50), Input::Answer { tx, response: &buf }, None);
    drain(&mut rig);
    rig.tick(50 + LINGER_MS);
    let (_, flows) = drain(&mut rig);
    let flow = entries(&flows[0]);
    let at_ = |line: &str| flow.iter().position(|e| e == line);
    let reinvite = at_("in  caller INVITE sip:shardpbx@127.0.0.1:5060 SIP/2.0").expect("re-INVITE");
    assert_eq!(
        flow[reinvite + 1],
        "out caller SIP/2.0 100 Trying",
        "{flow:#?}"
    );
    assert!(
        at_("out caller SIP/2.0 481 Call/Transaction Does Not Exist").is_some(),
        "{flow:#?}"
    );
}

/// Up, ACKed, then the caller hangs up: we answer its BYE and send
/// ours to the callee. Returns our BYE to the callee.
fn hang_up(rig: &mut Rig) -> String {
    let b_invite = start(rig);
    rig.receive(at(10), &answer(&b_invite, 200, "cb"), CALLEE);
    let sent = rig.sent();
    let tag = rig.ack_our_200(&sent, "call-1");
    rig.receive(at(40), &in_dialog("BYE", "z9hG4bKby1", 2, &tag), CALLER);
    let (order, _) = drain(rig);
    assert!(order.contains(&"CDR completed".to_string()), "{order:?}");
    // Our BYE to the callee, from its transaction's copy.
    rig.engine
        .flow_txs
        .values()
        .flatten()
        .filter_map(|&tx| rig.engine.table.request(tx))
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .find(|r| r.starts_with("BYE"))
        .expect("our BYE to the callee")
}

#[test]
fn a_settled_calls_flow_is_handed_over_a_second_after_it_ends() {
    let mut rig = Rig::new();
    let bye = hang_up(&mut rig);
    rig.receive(at(60), &answer(&bye, 200, "cb"), CALLEE);
    drain(&mut rig);
    rig.tick(40 + SETTLED_LINGER_MS - 1);
    assert!(drain(&mut rig).1.is_empty(), "not before its linger");
    rig.tick(40 + SETTLED_LINGER_MS);
    let (_, flows) = drain(&mut rig);
    let flow = entries(&flows[0]);
    assert_eq!(
        flow.last().map(String::as_str),
        Some("in  callee SIP/2.0 200 OK"),
        "{flow:#?}"
    );
    assert!(rig.engine.flow_txs.is_empty() && rig.engine.closing.is_empty());
}

#[test]
fn an_unanswered_bye_keeps_the_flow_open_for_its_retransmissions() {
    let mut rig = Rig::new();
    let bye = hang_up(&mut rig);
    let bye_line = format!("out callee {}", bye.lines().next().unwrap());
    rig.tick(40 + SETTLED_LINGER_MS);
    assert!(drain(&mut rig).1.is_empty(), "our BYE still waits");
    let mut flows = Vec::new();
    for ms in (40 + SETTLED_LINGER_MS..=40 + LINGER_MS).step_by(100) {
        rig.tick(ms);
        let (_, f) = drain(&mut rig);
        if !f.is_empty() {
            assert_eq!(ms, 40 + LINGER_MS, "handed over at the longest linger");
            flows = f;
        }
    }
    let flow = entries(&flows[0]);
    let byes = flow.iter().filter(|e| **e == bye_line).count();
    // Sent at 40, resent at 540, 1540 and 3540 (timer E doubling).
    assert_eq!(byes, 4, "{flow:#?}");
}

#[test]
fn a_cancel_the_table_sends_late_is_in_the_flow() {
    let mut rig = Rig::new();
    let b_invite = start(&mut rig);
    // Before any provisional: the CANCEL waits for one.
    rig.receive(at(20), &cancel(), CALLER);
    let (order, _) = drain(&mut rig);
    assert!(
        !order.iter().any(|o| o.starts_with("TX CANCEL")),
        "{order:?}"
    );
    rig.receive(at(100), &answer(&b_invite, 180, "cb"), CALLEE);
    let (order, _) = drain(&mut rig);
    assert_eq!(order, ["TX CANCEL sip:1002@127.0.0.1:5072 SIP/2.0"]);
    rig.tick(100 + LINGER_MS);
    let (_, flows) = drain(&mut rig);
    let flow = entries(&flows[0]);
    assert!(
        flow.iter()
            .any(|e| e == "out callee CANCEL sip:1002@127.0.0.1:5072 SIP/2.0"),
        "{flow:#?}"
    );
}
