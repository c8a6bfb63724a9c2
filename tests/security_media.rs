//! Issue 12, hole 5, through the real binary: spraying the relay's port
//! range from another address while a call rings (the "RTP bleed" attack)
//! steals no audio and injects none; an SDP that points the relay at a
//! multicast group, a broadcast address or nowhere is refused with 488; the
//! media ports are no UDP proxy for what is not RTP.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::media::*;
use common::*;

/// Sends a few RTP packets (one SSRC) to every port of the relay's range
/// from `sock`; bounded: 3 packets a port.
fn spray(sock: &UdpSocket, ssrc: u32) {
    for port in 61000..61998u16 {
        for seq in 0..3u16 {
            let p = rtp_packet(0, false, seq, u32::from(seq) * 160, ssrc, &[0xd5; 160]);
            let _ = sock.send_to(&p, ("127.0.0.1", port));
        }
    }
}

#[test]
fn spraying_the_relay_while_a_call_rings_steals_nothing() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    // The attacker is on another address of this host.
    let evil = UdpSocket::bind("127.0.0.2:0").expect("127.0.0.2 is loopback on Linux");
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "bleed-1@test");
    // The caller is behind NAT: its SDP names a private address, so the
    // relay must learn where its media really comes from. That is the
    // window the attack aims at: the first packet from ANY address won it.
    let offer = sdp(caller.rtp_port(), &[PCMU], "").replace("127.0.0.1", "192.168.1.20");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let mut phone_sends_to: Option<SocketAddr> = None;
    let r = caller.call("1002", &offer, || {
        let invite = phone
            .wait_request("INVITE", Duration::from_secs(10))
            .expect("INVITE");
        phone.ring(&invite);
        // Ringing: the relay's ports for this call exist and nobody has
        // sent on them yet. Spray the whole range, before the real sides.
        spray(&evil, 0xbad);
        phone_sends_to = Some(sdp_audio(invite.split_once("\r\n\r\n").unwrap().1));
        let contact = format!("sip:1002@{}", phone.sip.local);
        phone
            .sip
            .send(&sip_response(&invite, 200, "OK", "ph1", &contact, &answer));
        phone
            .wait_request("ACK", Duration::from_secs(5))
            .expect("ACK");
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    let caller_sends_to = sdp_audio(&caller.answer);
    let phone_sends_to = phone_sends_to.unwrap();
    // Spray again while the call is up.
    spray(&evil, 0xbad);
    let (at_caller, at_phone) = exchange(
        &caller.rtp,
        caller_sends_to,
        0,
        tone_frames(440.0, 25, ulaw),
        &phone.rtp,
        phone_sends_to,
        0,
        tone_frames(1000.0, 25, ulaw),
        160,
        Duration::from_millis(20),
    );
    // Each side hears the other and nothing of the attacker's (the phone's
    // first packets went to the caller's private address, before the
    // relay had learnt where the caller really is).
    assert_eq!(at_phone.len(), 25, "caller -> phone");
    assert!(
        at_caller.len() >= 20,
        "phone -> caller: {}",
        at_caller.len()
    );
    assert!(at_phone.iter().chain(&at_caller).all(|p| p.ssrc != 0xbad));
    // The attacker got no media back.
    evil.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        evil.recv_from(&mut buf).is_err(),
        "the attacker received media"
    );
    assert!(
        pbx.metric_sum("shardpbx_rtp_foreign_source_total") >= 12,
        "the spray was counted"
    );
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    let cdr = wait_cdr(&pbx, "bleed-1@test");
    assert_eq!(
        cdr["metadata"]["tracks"][0]["latched"],
        caller.rtp.local_addr().unwrap().to_string(),
        "{cdr}"
    );
    assert_eq!(
        cdr["metadata"]["tracks"][1]["latched"],
        phone.rtp.local_addr().unwrap().to_string(),
        "{cdr}"
    );
}

#[test]
fn sdp_addresses_that_would_abuse_the_relay_get_488() {
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    for (i, conn) in ["224.0.1.1", "255.255.255.255", "0.0.0.0"]
        .iter()
        .enumerate()
    {
        let mut caller = Caller::new(&pbx, &format!("bad-c-{i}@test"));
        let offer = sdp(7000, &[PCMU], "").replace("127.0.0.1", conn);
        let r = caller.call("1002", &offer, || {});
        assert_eq!(r.code, 488, "c={conn}: {}", r.raw);
        assert!(
            phone
                .wait_request("INVITE", Duration::from_millis(200))
                .is_none(),
            "the callee was not rung for c={conn}"
        );
    }
    assert_eq!(pbx.metric_sum("shardpbx_sdp_address_refused_total"), 3);
    // The legitimate call beside them, and junk to its ports is not relayed.
    let (mut caller, junk_to) = {
        let mut caller = Caller::new(&pbx, "good-c@test");
        let offer = sdp(caller.rtp_port(), &[PCMU], "");
        let answer = sdp(phone.rtp_port(), &[PCMU], "");
        let r = caller.call("1002", &offer, || {
            phone.answer(&answer);
        });
        assert_eq!(r.code, 200);
        let to = sdp_audio(&caller.answer);
        (caller, to)
    };
    caller
        .rtp
        .send_to(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", junk_to)
        .unwrap();
    caller.rtp.send_to(&[0x80u8; 3], junk_to).unwrap();
    let got = receive(
        &phone.rtp,
        Duration::from_millis(300),
        Duration::from_secs(1),
    );
    assert!(got.is_empty(), "nothing but RTP is relayed");
    std::thread::sleep(Duration::from_millis(200));
    assert!(pbx.metric_sum("shardpbx_rtp_malformed_total") >= 2);
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
}
