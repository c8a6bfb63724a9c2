//! SRTP (SDES) through the real binary with a stock softphone: Debian's
//! baresip registers over TLS with `mediaenc=srtp-mand` and calls a UDP
//! extension; both hear each other's tone, the recording holds both, the
//! CDR names the suite, and the wire (tcpdump on `lo`) carries no plaintext
//! RTP on the encrypted leg. Keys never go to a party not on TLS.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::baresip::{self, heard_by, log_of, tone_is, Via};
use common::capture::{Capture, Datagram};
use common::media::*;
use common::*;

/// The tests whose softphones send SRTP run one at a time: the capture of
/// the first reads SRTP datagrams off `lo`, and another test's call (same
/// media port range, another PBX) would be in it.
static SRTP_ON_LO: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A TLS-enabled PBX with recording on; returns it and its TLS port.
fn pbx_tls(media_extra: &str) -> (Pbx, u16) {
    let tls_port = free_port();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!("tls_port = {tls_port}"),
        media_extra: media_extra.into(),
        extra_tables: "[recording]\nenabled = true\n".into(),
        ..PbxOptions::default()
    });
    (pbx, tls_port)
}

/// µ-law to linear (test side).
fn unulaw(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exp = (u >> 4) & 0x07;
    let mant = i32::from(u & 0x0f);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    (if sign != 0 { -mag } else { mag }) as i16
}

/// The datagrams to or from `port` of 127.0.0.1.
fn leg_of(wire: &[Datagram], port: u16) -> (Vec<&Datagram>, Vec<&Datagram>) {
    let from: Vec<_> = wire.iter().filter(|d| d.from.port() == port).collect();
    let to: Vec<_> = wire.iter().filter(|d| d.to.port() == port).collect();
    (from, to)
}

#[test]
fn baresip_over_tls_with_mandatory_srtp_calls_a_udp_extension() {
    let _alone = SRTP_ON_LO
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (pbx, tls_port) = pbx_tls("");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let dir = pbx.dir().join("baresip");
    let wire = Capture::start(pbx.dir(), "udp and portrange 61000-61998");
    let _baresip = baresip::start(
        &pbx,
        Via::TlsSrtp(tls_port),
        &dir,
        "1001",
        440.0,
        "",
        &["/dial sip:1002@127.0.0.1"],
    );

    // The UDP extension is offered plain RTP: no key crosses UDP.
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let invite = phone.answer(&answer);
    let offer = invite.split_once("\r\n\r\n").unwrap().1;
    assert!(offer.contains("RTP/AVP"), "{offer}");
    assert!(
        !offer.contains("a=crypto"),
        "keys offered over UDP: {offer}"
    );
    let to_relay: SocketAddr = sdp_audio(offer);

    // 3 s of 1000 Hz to baresip while its 440 Hz comes back.
    let rtp = phone.rtp.try_clone().unwrap();
    let heard = std::thread::spawn(move || {
        receive(&rtp, Duration::from_millis(1500), Duration::from_secs(8))
    });
    let sent = tone_frames(1000.0, 150, ulaw);
    let sender = {
        let (rtp, frames) = (phone.rtp.try_clone().unwrap(), sent.clone());
        std::thread::spawn(move || {
            send_stream(
                &rtp,
                to_relay,
                0,
                7,
                160,
                Duration::from_millis(20),
                &frames,
            );
        })
    };

    // Mid-call, an attacker on baresip's IP without the key: forged SRTP
    // and a replayed genuine packet at the relay's encrypted side.
    std::thread::sleep(Duration::from_millis(1200));
    let genuine = wire
        .seen()
        .into_iter()
        .find(|d| {
            d.payload.len() == 12 + 160 + 10
                && !(61000..61998).contains(&d.from.port())
                && (61000..61998).contains(&d.to.port())
        })
        .expect("baresip's SRTP on the wire");
    // (baresip's own first RTCP, an unencrypted APP "PING" sent before its
    // SRTP starts, is dropped too: counted before the attack.)
    let rejected_before = pbx.metric_sum("shardpbx_rtp_srtp_rejected_total");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let forged = 50u32;
    for i in 0..forged {
        let mut pkt = rtp_packet(0, false, 900 + i as u16, 160 * i, 0x0bad_cafe, &[0xd5; 160]);
        pkt.extend_from_slice(&[0u8; 10]);
        attacker.send_to(&pkt, genuine.to).unwrap();
    }
    attacker.send_to(&genuine.payload, genuine.to).unwrap();
    sender.join().unwrap();
    let heard = heard.join().unwrap();
    let call_id = active_call_id(&pbx).expect("the call is up");
    let (code, body) = call_command(&pbx, &call_id, r#"{"action":"hangup"}"#);
    assert_eq!(code, 200, "{body}");
    phone.accept_bye(Duration::from_secs(3));
    let wire = wire.stop();

    // The UDP extension heard baresip's 440 Hz, decrypted.
    assert!(
        heard.len() >= 100,
        "{} packets from baresip reached the UDP phone\n{}",
        heard.len(),
        log_of(&dir)
    );
    let samples: Vec<i16> = heard
        .iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.iter().map(|u| unulaw(*u)))
        .collect();
    let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
    assert!(
        goertzel(mid, 440.0) > 100.0 * goertzel(mid, 1000.0),
        "the UDP phone hears baresip's 440 Hz"
    );

    // The CDR: complete, the encrypted leg names its suite.
    let (cdr, rec) = recording_of(&pbx, &call_id);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().expect("CDR tracks");
    assert_eq!(tracks[0]["srtp"], "AES_CM_128_HMAC_SHA1_80", "{cdr}");
    assert!(tracks[1]["srtp"].is_null(), "{cdr}");
    let baresip_port: SocketAddr = tracks[0]["latched"]
        .as_str()
        .expect("baresip's stream latched")
        .parse()
        .unwrap();

    // The stored SIP flow shows the SDP, never a key (a read token may
    // fetch it).
    let auth = format!("Authorization: Bearer {}\r\n", api_token(&pbx, "read"));
    let path = format!("/console/call-records/{call_id}/sip-flow");
    let flow = wait_until(Duration::from_secs(15), || {
        let (code, body) = http_request(&pbx, "GET", &path, &auth, "");
        (code == 200).then_some(body)
    })
    .expect("the call's SIP flow");
    assert!(
        flow.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{flow}"
    );
    for (i, _) in flow.match_indices("inline:") {
        assert!(
            flow[i + 7..].starts_with("<redacted>"),
            "a key in the stored flow: {}",
            &flow[i..(i + 60).min(flow.len())]
        );
    }

    // The recording holds both: baresip left (440 Hz), the phone right
    // (1000 Hz): the relay recorded the decrypted audio.
    let (left, right) = read_wav(&rec);
    let mid = |v: &[i16]| v[v.len() / 4..v.len() * 3 / 4].to_vec();
    let (l, r) = (mid(&left), mid(&right));
    assert!(
        goertzel(&l, 440.0) > 100.0 * goertzel(&l, 1000.0),
        "left is baresip"
    );
    assert!(
        goertzel(&r, 1000.0) > 100.0 * goertzel(&r, 440.0),
        "right is the phone"
    );

    // On the wire, baresip's leg is SRTP both ways: every RTP datagram is
    // 12 + 160 + a 10-byte tag long, and none carries a payload that was
    // plain on the other leg (what the phone sent, what it heard).
    let (from_b, to_b) = leg_of(&wire, baresip_port.port());
    let rtp_len = |d: &&Datagram| d.payload.get(1).is_some_and(|pt| pt & 0x7f == 0);
    let from_b: Vec<_> = from_b.into_iter().filter(rtp_len).collect();
    let to_b: Vec<_> = to_b.into_iter().filter(rtp_len).collect();
    assert!(
        from_b.len() >= 100 && to_b.len() >= 100,
        "{} / {}",
        from_b.len(),
        to_b.len()
    );
    let plain: Vec<&[u8]> = sent
        .iter()
        .map(Vec::as_slice)
        .chain(heard.iter().map(|p| p.payload.as_slice()))
        .collect();
    for d in from_b.iter().chain(to_b.iter()) {
        assert_eq!(d.payload.len(), 12 + 160 + 10, "{d:?}");
        let body = &d.payload[12..172];
        assert!(
            !plain.contains(&body),
            "plaintext RTP on the SRTP leg: {d:?}"
        );
    }
    // And the other leg is the plaintext itself (the check can see it).
    let (_, to_phone) = leg_of(&wire, phone.rtp_port());
    assert!(
        to_phone
            .iter()
            .any(|d| d.payload.len() == 172 && plain.contains(&&d.payload[12..172])),
        "the capture saw the plain leg"
    );
    // The forgeries and the replay were dropped and counted, and none
    // reached the UDP phone.
    assert!(
        heard.iter().all(|p| p.ssrc != 0x0bad_cafe),
        "a forgery got through"
    );
    assert_eq!(
        pbx.metric_sum("shardpbx_rtp_srtp_rejected_total") - rejected_before,
        u64::from(forged) + 1,
        "forged and replayed SRTP dropped"
    );
}

const KEY_LINE: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

/// Keys never cross UDP: an SRTP-only offer over UDP is refused, and a
/// best-effort one (RTP/AVP with keys) goes on without them.
#[test]
fn keys_never_cross_udp() {
    let (pbx, _) = pbx_tls("");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");

    let mut caller = Caller::new(&pbx, "savp-over-udp@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], KEY_LINE).replace("RTP/AVP", "RTP/SAVP");
    let r = caller.call("1002", &offer, || {});
    assert_eq!(r.code, 488, "{}", r.raw);
    assert!(r.raw.contains("SRTP Needs TLS"), "{}", r.raw);
    assert!(
        phone
            .wait_request("INVITE", Duration::from_millis(500))
            .is_none(),
        "the callee was rung"
    );
    assert_eq!(wait_cdr(&pbx, "savp-over-udp@test")["status"], "failed");

    let mut caller = Caller::new(&pbx, "best-effort-over-udp@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], KEY_LINE);
    let mut invite = String::new();
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    assert!(!invite.contains("a=crypto"), "a key crossed UDP: {invite}");
    assert!(!caller.answer.contains("a=crypto"), "{}", caller.answer);
    assert!(caller.answer.contains("RTP/AVP"), "{}", caller.answer);
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
    assert!(pbx.metric_sum("shardpbx_sdp_srtp_refused_total") >= 1);
}

/// An extension that requires SRTP is not called over UDP (no key could
/// reach it): the caller gets 488.
#[test]
fn an_extension_that_requires_srtp_is_not_called_over_udp() {
    let (pbx, _) = pbx_tls("srtp_extensions = { \"1002\" = \"required\" }");
    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "required-udp@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let r = caller.call("1002", &offer, || {});
    assert_eq!(r.code, 488, "{}", r.raw);
    assert!(
        phone
            .wait_request("INVITE", Duration::from_millis(500))
            .is_none(),
        "the callee was rung"
    );
}

/// Two stock softphones, both over TLS with mandatory SRTP, with the
/// default policy: the callee refuses our best-effort offer (488), is
/// offered RTP/SAVP and answers. The relay decrypts each leg with its own
/// keys and suite and encrypts again for the other. Each hears the other's
/// tone; the recording holds both.
#[test]
fn two_srtp_softphones_each_with_its_own_suite() {
    let _alone = SRTP_ON_LO
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (pbx, tls_port) = pbx_tls("");
    let callee_dir = pbx.dir().join("callee");
    let _callee = baresip::start(
        &pbx,
        Via::TlsSrtp(tls_port),
        &callee_dir,
        "1002",
        1000.0,
        ";answermode=auto",
        &[],
    );
    wait_until(Duration::from_secs(10), || {
        let out = pbx.cli(&["registrations", "list", "--aor", "1002", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("TLS")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("1002 did not register over TLS:\n{}", log_of(&callee_dir)));
    let caller_dir = pbx.dir().join("caller");
    let caller = baresip::start(
        &pbx,
        Via::TlsSrtp(tls_port),
        &caller_dir,
        "1001",
        440.0,
        "",
        &["/dial sip:1002@127.0.0.1"],
    );
    let call_id = wait_until(Duration::from_secs(10), || active_call_id(&pbx))
        .unwrap_or_else(|| panic!("no call:\n{}", log_of(&caller_dir)));
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = call_command(&pbx, &call_id, r#"{"action":"hangup"}"#);
    assert_eq!(code, 200, "{body}");
    let (cdr, rec) = recording_of(&pbx, &call_id);
    drop(caller);

    assert_eq!(cdr["status"], "completed", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().unwrap();
    // baresip offers AES_CM only; toward the callee we offer GCM first.
    assert_eq!(tracks[0]["srtp"], "AES_CM_128_HMAC_SHA1_80", "{cdr}");
    assert_eq!(tracks[1]["srtp"], "AEAD_AES_128_GCM", "{cdr}");
    let (left, right) = read_wav(&rec);
    assert!(
        tone_is(&left, 440.0, 1000.0),
        "the recording's left is the caller"
    );
    assert!(
        tone_is(&right, 1000.0, 440.0),
        "the recording's right is the callee"
    );
    assert!(
        tone_is(&heard_by(&callee_dir), 440.0, 1000.0),
        "the callee heard the caller:\n{}",
        log_of(&callee_dir)
    );
    assert!(
        tone_is(&heard_by(&caller_dir), 1000.0, 440.0),
        "the caller heard the callee:\n{}",
        log_of(&caller_dir)
    );
    // Nothing but the unencrypted RTCP APP "PING" each baresip sends as
    // its stream starts was refused.
    assert!(pbx.metric_sum("shardpbx_rtp_srtp_rejected_total") <= 2);
}
