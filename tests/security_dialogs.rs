//! Issue 12, holes 1 and 2, through the real binary: somebody who knows a
//! call's Call-ID (webhooks, the console and AMI show it) cannot hang it up,
//! re-INVITE it, or replace it with an INVITE of their own; a response from
//! elsewhere than where the request went changes nothing; the ids we mint
//! cannot be predicted from the ones seen on the wire.

mod common;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::media::*;
use common::*;

fn active_calls(pbx: &Pbx) -> usize {
    let text = pbx.http_get("/ami/v1/health");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["activeCalls"].as_u64().unwrap() as usize
}

/// An in-dialog request of an attacker who knows the Call-ID (and the
/// caller's From tag, which any hop saw) but not our tag.
fn forged(method: &str, uac: &Uac, call_id: &str, to_tag: &str, cseq: u32) -> String {
    format!(
        "{method} sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=c1\r\nTo: <sip:1002@pbx.test>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:evil@{me}>\r\nContent-Length: 0\r\n\r\n",
        me = uac.local,
        b = branch(),
    )
}

/// The ACK of a non-2xx final response `r` to `invite` (RFC 3261 17.1.1.3).
fn ack_of(invite: &str, r: &Response) -> String {
    let line = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let to = r
        .raw
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap_or_default();
    let cseq = line("CSeq:").replace("INVITE", "ACK");
    format!(
        "ACK sip:1002@127.0.0.1 SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\n{}\r\n{to}\r\n{}\r\n{cseq}\r\nContent-Length: 0\r\n\r\n",
        line("Via:"),
        line("From:"),
        line("Call-ID:"),
    )
}

#[test]
fn a_stranger_who_knows_the_call_id_cannot_end_or_reinvite_the_call() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = answered_call(&pbx, &mut phone, "hijack-1");
    assert_eq!(active_calls(&pbx), 1);

    let evil = Uac::new(pbx.sip);
    // Guessed tags: 481, the call goes on.
    for method in ["BYE", "INVITE", "UPDATE", "INFO", "REFER", "NOTIFY"] {
        let request = forged(method, &evil, "hijack-1", "guessed", 50);
        let r = evil.request(&request);
        assert_eq!(r.code, 481, "{method} with a guessed tag: {}", r.raw);
        if method == "INVITE" {
            // A final response to an INVITE is retransmitted until ACKed
            // (RFC 3261 17.2.1): the stranger ACKs it like any UAC.
            evil.send(&ack_of(&request, &r));
        }
    }
    // No To tag at all: a new INVITE with the live call's Call-ID is no
    // new call and no part of this one.
    let r = evil.request(&forged("INVITE", &evil, "hijack-1", "", 1).replace(";tag=\r\n", "\r\n"));
    assert_eq!(r.code, 482, "{}", r.raw);
    assert!(
        phone
            .wait_request("BYE", Duration::from_millis(500))
            .is_none(),
        "the callee was not hung up"
    );
    assert_eq!(active_calls(&pbx), 1, "the call is still up");
    assert!(pbx.metric_sum("shardpbx_sip_dialog_mismatch_total") >= 6);

    // The caller itself, replaying an old CSeq (the INVITE's), gets 500.
    let stale = caller.replay_in_dialog("INFO", 2);
    assert_eq!(stale.code, 500, "{}", stale.raw);
    assert_eq!(pbx.metric_sum("shardpbx_sip_cseq_out_of_order_total"), 1);
    assert_eq!(active_calls(&pbx), 1);

    // The legitimate re-INVITE and BYE still work.
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let reanswer = caller.reinvite(&offer, || {
        let re = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .expect("the re-INVITE reached the phone");
        phone.sip.send(&sip_response(
            &re,
            200,
            "OK",
            "ph1",
            "sip:1002@127.0.0.1",
            &answer,
        ));
    });
    assert!(reanswer.contains("m=audio"), "{reanswer}");
    let bye = caller.bye();
    assert_eq!(bye.code, 200);
    assert!(phone.accept_bye(Duration::from_secs(5)));
    let cdr = wait_cdr(&pbx, "hijack-1");
    assert_eq!(cdr["hangupReason"], "byCaller");
    assert_eq!(cdr["status"], "completed");

    // Once the call is over, its Call-ID cannot start another one that
    // would overwrite the record.
    let r = evil.request(&forged("INVITE", &evil, "hijack-1", "", 1).replace(";tag=\r\n", "\r\n"));
    assert_eq!(r.code, 482, "{}", r.raw);
    let mut pbx = pbx;
    pbx.restart();
    let r = evil.request(&forged("INVITE", &evil, "hijack-1", "", 7).replace(";tag=\r\n", "\r\n"));
    assert_eq!(
        r.code, 482,
        "a stored record's Call-ID, after a restart: {}",
        r.raw
    );
    let cdr_after = wait_cdr(&pbx, "hijack-1");
    assert_eq!(cdr, cdr_after, "the record is untouched");
}

#[test]
fn a_response_from_another_address_than_the_callee_changes_nothing() {
    let pbx = Pbx::start(PbxOptions::default());
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "spoofed-busy-1");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let evil = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(10))
            .expect("the phone got the INVITE");
        // Someone who saw the INVITE (its branch) answers 486 for the
        // phone, from their own address.
        let busy = sip_response(&invite, 486, "Busy Here", "evil", "sip:evil@127.0.0.1", "");
        evil.send_to(busy.as_bytes(), pbx.sip).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // The real phone answers.
        let contact = format!("sip:1002@{}", phone.sip.local);
        phone
            .sip
            .send(&sip_response(&invite, 200, "OK", "ph1", &contact, &answer));
        phone
            .wait_request("ACK", Duration::from_secs(5))
            .expect("ACK");
    });
    assert_eq!(
        r.code, 200,
        "the spoofed 486 did not end the call: {}",
        r.raw
    );
    assert_eq!(pbx.metric_sum("shardpbx_sip_spoofed_responses_total"), 1);
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(5)));
}

/// The generator the ids came from before: xorshift64*, output = state * M.
fn xorshift_successors(output: u64, n: usize) -> Vec<u64> {
    const M: u64 = 0x2545_f491_4f6c_dd1d;
    // M is odd, so it has an inverse mod 2^64 (Newton's iteration).
    let mut inv: u64 = M;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(M.wrapping_mul(inv)));
    }
    let mut x = output.wrapping_mul(inv);
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(M)
        })
        .collect()
}

/// 16-hex-digit runs in `text`, as numbers.
fn hex_words(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() >= 16)
        .flat_map(|w| {
            w.as_bytes()
                .chunks(16)
                .filter(|c| c.len() == 16)
                .filter_map(|c| u64::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn ids_seen_on_the_wire_do_not_reveal_the_next_ones() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut seen = Vec::new();
    for i in 0..4 {
        let mut caller = Caller::new(&pbx, &format!("ids-{i}"));
        let offer = sdp(caller.rtp_port(), &[PCMU], "");
        let answer = sdp(phone.rtp_port(), &[PCMU], "");
        let mut invite = String::new();
        let r = caller.call("1002", &offer, || {
            invite = phone.answer(&answer);
        });
        assert_eq!(r.code, 200);
        // Our tag toward the caller, and the callee leg's branch, tag and Call-ID.
        let words: Vec<&str> = invite
            .lines()
            .filter(|l| {
                l.starts_with("Via:") || l.starts_with("From:") || l.starts_with("Call-ID:")
            })
            .chain(r.header("To"))
            .collect();
        seen.push(words.join("\n"));
        assert_eq!(caller.bye().code, 200);
        assert!(phone.accept_bye(Duration::from_secs(5)));
    }
    let values: Vec<u64> = seen.iter().flat_map(|s| hex_words(s)).collect();
    assert!(
        values.len() >= 4 * 4,
        "every id carries at least 64 random bits: {seen:#?}"
    );
    let distinct: HashSet<u64> = values.iter().copied().collect();
    assert_eq!(distinct.len(), values.len(), "no id repeats");
    // The attack on the old generator: from one id, compute the following
    // ones. None of them may show up.
    for &v in &values {
        let predicted: HashSet<u64> = xorshift_successors(v, 2000).into_iter().collect();
        assert!(
            values.iter().all(|w| !predicted.contains(w)),
            "an id predicted another: {seen:#?}"
        );
    }
}

#[test]
fn a_carrier_challenge_is_answered_only_with_qop_auth_and_a_random_cnonce() {
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    carrier
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = carrier.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let trunks = dir.path().join("trunks.toml");
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &trunks,
        format!("[trunks.carrier]\ndest = \"sip:127.0.0.1:{port}\"\nusername = \"tu\"\npassword = \"tp\"\n"),
    )
    .unwrap();
    std::fs::write(
        &routes,
        "[[routes]]\nname = \"out\"\npriority = 10\naction = \"forward\"\nmatch = { \"to.user\" = \"^9(\\\\d+)$\" }\nrewrite = { \"to.user\" = \"{1}\" }\ndest = [\"carrier\"]\n",
    )
    .unwrap();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!(
            "routes_files = [\"{}\"]\ntrunks_files = [\"{}\"]\nmax_ring_time = 5",
            routes.display(),
            trunks.display()
        ),
        ..PbxOptions::default()
    });
    let recv_invite = |limit: Duration| -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            if let Ok((n, _)) = carrier.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if text.starts_with("INVITE ") {
                    return Some(text);
                }
            }
        }
        None
    };
    let challenge = |invite: &str, qop: bool| {
        let qop = if qop { ", qop=\"auth\"" } else { "" };
        sip_response(invite, 407, "Proxy Authentication Required", "cr", "sip:c@127.0.0.1", "")
            .replacen(
                "Contact:",
                &format!("Proxy-Authenticate: Digest realm=\"carrier.test\", nonce=\"n0nce\"{qop}, algorithm=MD5\r\nContact:"),
                1,
            )
    };
    let pbx_addr = pbx.sip;
    let mut cnonces = Vec::new();
    for i in 0..2 {
        let mut caller = Caller::new(&pbx, &format!("trunk-auth-{i}"));
        let offer = sdp(caller.rtp_port(), &[PCMU], "");
        let r = caller.call("9555", &offer, || {
            let first = recv_invite(Duration::from_secs(5)).expect("INVITE to the carrier");
            carrier
                .send_to(challenge(&first, true).as_bytes(), pbx_addr)
                .unwrap();
            let second = recv_invite(Duration::from_secs(5)).expect("INVITE with credentials");
            let auth = second
                .lines()
                .find(|l| l.starts_with("Proxy-Authorization:"))
                .expect("credentials")
                .to_string();
            assert!(auth.contains("qop=auth"), "{auth}");
            cnonces.push(param(&auth, "cnonce").expect("a cnonce"));
            carrier
                .send_to(
                    sip_response(&second, 486, "Busy Here", "cr", "sip:c@127.0.0.1", "").as_bytes(),
                    pbx_addr,
                )
                .unwrap();
        });
        assert_eq!(r.code, 486);
    }
    assert_ne!(cnonces[0], cnonces[1], "a fresh cnonce per answer");
    for c in &cnonces {
        assert!(
            c.len() >= 16 && c.chars().all(|c| c.is_ascii_hexdigit()),
            "{c}"
        );
    }
    // A challenge without qop would make our response a replayable
    // function of the carrier's nonce: not answered.
    let mut caller = Caller::new(&pbx, "trunk-auth-noqop");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let r = caller.call("9555", &offer, || {
        let first = recv_invite(Duration::from_secs(5)).expect("INVITE to the carrier");
        carrier
            .send_to(challenge(&first, false).as_bytes(), pbx_addr)
            .unwrap();
        assert!(
            recv_invite(Duration::from_secs(1)).is_none(),
            "no credentials for a challenge without qop"
        );
    });
    assert!(r.code >= 400, "{}", r.raw);
}
