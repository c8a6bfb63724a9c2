//! Browsers as phones through the real binary: Debian's Chromium, headless,
//! on the PBX's own `/phone` page (JsSIP over WSS, a WAV file as its
//! microphone), calls a stock softphone on UDP (baresip) and is called by
//! it. The relay is ICE-lite and does DTLS-SRTP toward the browser, plain
//! RTP toward the softphone: each hears the other's tone, the CDR and the
//! recording are complete. A WebRTC leg whose ICE never completes ends
//! the call with a CDR that says so.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::baresip::{self, heard_by, log_of, tone_is, write_tone_wav, Via};
use common::browser::Browser;
use common::media::*;
use common::stun::stun_check;
use common::*;

/// A PBX with WSS and recording on.
fn pbx_wss() -> Pbx {
    Pbx::start(PbxOptions {
        proxy_extra: format!("wss_port = {}", free_port()),
        extra_tables: "[recording]\nenabled = true\n".into(),
        ..PbxOptions::default()
    })
}

/// A 48 kHz tone of `hz` for the browser's fake microphone.
fn browser_tone(pbx: &Pbx, hz: f64) -> PathBuf {
    let wav = pbx.dir().join(format!("browser-{hz}.wav"));
    write_tone_wav(&wav, hz, 30, 48_000);
    wav
}

fn wait_registered(pbx: &Pbx, aor: &str, dir: &Path) {
    wait_until(Duration::from_secs(10), || {
        let out = pbx.cli(&["registrations", "list", "--aor", aor, "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("\"UDP\"")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{aor} did not register:\n{}", log_of(dir)));
}

/// A UDP baresip registered as 1002, playing 1000 Hz, answering at once:
/// its directory and process.
fn softphone_1002(pbx: &Pbx) -> (PathBuf, Peer) {
    let dir = pbx.dir().join("callee");
    let peer = baresip::start(pbx, Via::Udp, &dir, "1002", 1000.0, ";answermode=auto", &[]);
    wait_registered(pbx, "1002", &dir);
    (dir, peer)
}

/// A baresip (1002, 1000 Hz, reaching the PBX as `via` says) calls the
/// browser, which answers: its directory and process, the call up.
fn softphone_calls_browser(pbx: &Pbx, browser: &mut Browser, via: Via) -> (PathBuf, Peer) {
    let dir = pbx.dir().join("caller");
    let peer = baresip::start(
        pbx,
        via,
        &dir,
        "1002",
        1000.0,
        "",
        &["/dial sip:1001@127.0.0.1"],
    );
    browser.wait_call("ringing", Duration::from_secs(15));
    browser.ok(serde_json::json!({"cmd": "answer"}));
    browser.wait_call("in call", Duration::from_secs(10));
    (dir, peer)
}

/// The browser's side of an answered call: it hears `hz` and sends and
/// receives RTP.
fn assert_browser_media(browser: &mut Browser, hz: f64) {
    let heard = browser.heard_frequency();
    assert!(
        heard.is_some_and(|f| (f - hz).abs() < 15.0),
        "the browser heard {heard:?}, not {hz} Hz: {:?}",
        browser.seen
    );
    let stats = browser.stats();
    assert!(stats["packetsReceived"].as_u64() > Some(50), "{stats}");
    assert!(stats["packetsSent"].as_u64() > Some(50), "{stats}");
}

#[test]
fn a_browser_calls_a_udp_softphone_and_each_hears_the_other() {
    let pbx = pbx_wss();
    let (callee_dir, _callee) = softphone_1002(&pbx);
    let mut browser = Browser::start(&pbx, "1001", &browser_tone(&pbx, 440.0), &["--raw-audio"]);
    browser.ok(serde_json::json!({"cmd": "dial", "target": "1002"}));
    browser.wait_call("in call", Duration::from_secs(15));
    let call_id = active_call_id(&pbx).expect("an active call");
    std::thread::sleep(Duration::from_secs(3));
    assert_browser_media(&mut browser, 1000.0);
    // Muting the softphone's track (REST) silences it in the browser;
    // unmuting brings it back.
    for (action, heard) in [("mute", None), ("unmute", Some(1000.0))] {
        let body = format!(r#"{{"action":"{action}","track_id":"audio-1"}}"#);
        let (code, answer) = call_command(&pbx, &call_id, &body);
        assert_eq!(code, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(1500));
        let f = browser.heard_frequency();
        assert_eq!(
            f.map(|f| (f / 10.0).round() * 10.0),
            heard,
            "after {action}: {:?}",
            browser.seen
        );
    }
    browser.ok(serde_json::json!({"cmd": "hangup"}));
    let (cdr, rec) = recording_of(&pbx, &call_id);

    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert_eq!(cdr["hangupReason"], "byCaller", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().unwrap();
    assert_eq!(tracks[0]["webrtc"], "connected", "{cdr}");
    assert!(tracks[0]["srtp"].is_string(), "DTLS-SRTP suite: {cdr}");
    assert!(tracks[0]["rtp"]["packets"].as_u64() > Some(50), "{cdr}");
    assert!(tracks[1]["webrtc"].is_null(), "{cdr}");
    assert!(
        tracks[1]["srtp"].is_null(),
        "plain toward the softphone: {cdr}"
    );
    let (left, right) = read_wav(&rec);
    assert!(
        tone_is(&left, 440.0, 1000.0),
        "recording: the browser's tone on the left"
    );
    assert!(
        tone_is(&right, 1000.0, 440.0),
        "recording: the softphone's on the right"
    );
    assert!(
        tone_is(&heard_by(&callee_dir), 440.0, 1000.0),
        "the softphone heard the browser:\n{}",
        log_of(&callee_dir)
    );
}

#[test]
fn a_udp_softphone_calls_the_browser_which_answers() {
    let pbx = pbx_wss();
    let mut browser = Browser::start(&pbx, "1001", &browser_tone(&pbx, 440.0), &["--raw-audio"]);
    // The browser's binding is on its WebSocket.
    let regs = pbx.cli(&["registrations", "list", "--aor", "1001", "--json"]);
    assert!(
        String::from_utf8_lossy(&regs.stdout).contains("\"WSS\""),
        "{}",
        String::from_utf8_lossy(&regs.stdout)
    );
    let (caller_dir, _caller) = softphone_calls_browser(&pbx, &mut browser, Via::Udp);
    let call_id = active_call_id(&pbx).expect("an active call");
    std::thread::sleep(Duration::from_secs(3));
    assert_browser_media(&mut browser, 1000.0);
    browser.ok(serde_json::json!({"cmd": "hangup"}));
    let (cdr, rec) = recording_of(&pbx, &call_id);

    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert_eq!(cdr["hangupReason"], "byCallee", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().unwrap();
    assert!(tracks[0]["webrtc"].is_null(), "{cdr}");
    assert_eq!(tracks[1]["webrtc"], "connected", "{cdr}");
    assert!(tracks[1]["srtp"].is_string(), "{cdr}");
    let (left, right) = read_wav(&rec);
    assert!(
        tone_is(&left, 1000.0, 440.0),
        "recording: the softphone's tone on the left"
    );
    assert!(
        tone_is(&right, 440.0, 1000.0),
        "recording: the browser's on the right"
    );
    assert!(
        tone_is(&heard_by(&caller_dir), 440.0, 1000.0),
        "the softphone heard the browser:\n{}",
        log_of(&caller_dir)
    );
}

/// A softphone with SDES-SRTP over TLS (baresip, `srtp-mand`) calls the
/// browser: the relay decrypts one leg's SDES-SRTP and encrypts the other's
/// DTLS-SRTP, each with its own keys. Each hears the other.
#[test]
fn an_sdes_srtp_softphone_calls_the_browser() {
    let tls_port = free_port();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!("wss_port = {}\ntls_port = {tls_port}", free_port()),
        ..PbxOptions::default()
    });
    let mut browser = Browser::start(&pbx, "1001", &browser_tone(&pbx, 440.0), &["--raw-audio"]);
    let (caller_dir, _caller) = softphone_calls_browser(&pbx, &mut browser, Via::TlsSrtp(tls_port));
    let call_id = active_call_id(&pbx).expect("an active call");
    std::thread::sleep(Duration::from_secs(3));
    assert_browser_media(&mut browser, 1000.0);
    browser.ok(serde_json::json!({"cmd": "hangup"}));
    let cdr = wait_cdr(&pbx, &call_id);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().unwrap();
    assert_eq!(tracks[0]["srtp"], "AES_CM_128_HMAC_SHA1_80", "SDES: {cdr}");
    assert!(tracks[0]["webrtc"].is_null(), "{cdr}");
    assert_eq!(tracks[1]["webrtc"], "connected", "{cdr}");
    assert!(tracks[1]["srtp"].is_string(), "DTLS-SRTP: {cdr}");
    assert!(
        tone_is(&heard_by(&caller_dir), 440.0, 1000.0),
        "the SRTP softphone heard the browser:\n{}",
        log_of(&caller_dir)
    );
}

/// The browser offers Opus only, the softphone takes G.711 only: the
/// callee is offered G.711 too, answers PCMU, and the relay transcodes
/// (Opus <-> PCMU) on the call's shard. Each hears the other; the browser
/// was answered with Opus.
#[test]
fn an_opus_only_browser_and_a_g711_only_softphone_are_transcoded() {
    let pbx = pbx_wss();
    let (callee_dir, _callee) = softphone_1002(&pbx);
    let mut browser = Browser::start(
        &pbx,
        "1001",
        &browser_tone(&pbx, 440.0),
        &["--raw-audio", "--codecs", "opus"],
    );
    browser.ok(serde_json::json!({"cmd": "dial", "target": "1002"}));
    browser.wait_call("in call", Duration::from_secs(15));
    let call_id = active_call_id(&pbx).expect("an active call");
    std::thread::sleep(Duration::from_secs(3));
    assert_browser_media(&mut browser, 1000.0);
    assert_eq!(browser.stats()["codec"], "opus");
    browser.ok(serde_json::json!({"cmd": "hangup"}));
    let (cdr, rec) = recording_of(&pbx, &call_id);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    let tracks = cdr["metadata"]["tracks"].as_array().unwrap();
    assert_eq!(tracks[0]["transcode"], "opus->PCMU", "{cdr}");
    assert_eq!(tracks[1]["transcode"], "PCMU->opus", "{cdr}");
    let (left, right) = read_wav(&rec);
    assert!(
        tone_is(&left, 440.0, 1000.0),
        "recording: the browser's Opus decoded"
    );
    assert!(
        tone_is(&right, 1000.0, 440.0),
        "recording: the softphone's PCMU"
    );
    assert!(
        tone_is(&heard_by(&callee_dir), 440.0, 1000.0),
        "the softphone heard the browser through the transcoder:\n{}",
        log_of(&callee_dir)
    );
}

/// A browser that vanishes mid-call (Chromium killed: no BYE, its
/// WebSocket and its media gone) stops its consent checks: 30 s after the
/// last one the relay ends the call, the CDR says `consent_expired`, and
/// the softphone, which kept sending, is sent a BYE.
#[test]
fn a_browser_that_vanishes_mid_call_ends_the_call_when_its_consent_expires() {
    let pbx = pbx_wss();
    let (callee_dir, _callee) = softphone_1002(&pbx);
    let mut browser = Browser::start(&pbx, "1001", &browser_tone(&pbx, 440.0), &["--raw-audio"]);
    browser.ok(serde_json::json!({"cmd": "dial", "target": "1002"}));
    browser.wait_call("in call", Duration::from_secs(15));
    let call_id = active_call_id(&pbx).expect("an active call");
    std::thread::sleep(Duration::from_secs(2));
    browser.ok(serde_json::json!({"cmd": "crash"}));
    let cdr = wait_cdr_within(&pbx, &call_id, Duration::from_secs(45));
    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert_eq!(
        cdr["metadata"]["tracks"][0]["webrtc"], "consent_expired",
        "{cdr}"
    );
    assert_eq!(cdr["metadata"]["hangupMessage"], "consent_expired", "{cdr}");
    let log = log_of(&callee_dir);
    assert!(
        log.contains("BYE sip:"),
        "the softphone was not hung up:\n{log}"
    );
}

/// The value of `a=<name>:` in `sdp`.
fn sdp_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    let key = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .unwrap_or_else(|| panic!("no a={name} in {sdp}"))
        .trim()
}

/// A call from a test client that sends a browser's offer (WebRTC SDP)
/// but is no browser, to `phone`: the caller, the answer it got, and what
/// the phone was offered.
fn webrtc_offer_call(
    pbx: &Pbx,
    phone: &mut Phone,
    call_id: &str,
    ringing: Duration,
) -> (Caller, String, String) {
    let mut caller = Caller::new(pbx, call_id);
    let offer = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
         a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n",
        fp = ["AB"; 32].join(":")
    );
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || {
        if ringing.is_zero() {
            invite = phone.answer(&answer);
            return;
        }
        invite = phone
            .wait_request("INVITE", Duration::from_secs(10))
            .expect("the phone got no INVITE");
        phone.ring(&invite);
        std::thread::sleep(ringing);
        let contact = format!("sip:1002@{}", phone.sip.local);
        phone
            .sip
            .send(&sip_response(&invite, 200, "OK", "ph1", &contact, &answer));
        phone
            .wait_request("ACK", Duration::from_secs(5))
            .expect("no ACK for the phone's 200");
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    let to_caller = r.raw.split_once("\r\n\r\n").unwrap().1.to_string();
    let to_callee = invite.split_once("\r\n\r\n").unwrap().1.to_string();
    (caller, to_caller, to_callee)
}

/// The STUN messages `sock` gets within `limit`.
fn stun_answers(sock: &std::net::UdpSocket, limit: Duration) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    while std::time::Instant::now() < deadline {
        let mut buf = [0u8; 1500];
        if let Ok(n) = sock.recv(&mut buf) {
            if buf[0] < 4 {
                got.push(buf[..n].to_vec());
            }
        }
    }
    got
}

/// A caller that sends a browser's offer but never proves it holds the
/// ICE password: its forged checks (a guessed password, another session's
/// ufrag) get no answer at all (no amplification, no oracle), its RTP in
/// clear is not relayed, and 10 s on the call ends with a CDR that says
/// `ice_timeout`. The SIP side was offered plain RTP, and the caller was
/// answered with ICE-lite and DTLS.
#[test]
fn a_webrtc_leg_whose_ice_never_completes_ends_the_call_with_its_reason() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let (caller, to_caller, to_callee) =
        webrtc_offer_call(&pbx, &mut phone, "webrtc-no-ice@test", Duration::ZERO);
    // What the SIP side was offered: plain RTP, no WebRTC attribute.
    assert!(to_callee.contains(" RTP/AVP 111 0"), "{to_callee}");
    for attr in ["fingerprint", "ice-", "setup", "rtcp-mux", "group", "mid"] {
        assert!(
            !to_callee.contains(&format!("a={attr}")),
            "{attr}: {to_callee}"
        );
    }
    // What the caller was answered: ours, ICE-lite and DTLS.
    for line in [
        "a=ice-lite",
        "UDP/TLS/RTP/SAVPF 0",
        "a=setup:passive",
        "a=mid:0",
        "a=rtcp-mux",
        "a=fingerprint:sha-256 ",
        "typ host",
    ] {
        assert!(to_caller.contains(line), "{line}: {to_caller}");
    }
    let relay = sdp_audio(&to_caller);
    let ours = sdp_attr(&to_caller, "ice-ufrag");
    for i in 0..100u8 {
        let forged = if i % 2 == 0 {
            stun_check(&format!("{ours}:abcd"), "not-the-password-at-all!", [i; 12])
        } else {
            stun_check("zzzz:abcd", "0123456789abcdefghijkl", [i; 12])
        };
        caller.rtp.send_to(&forged, relay).unwrap();
    }
    // RTP in clear, as if keys were out.
    for seq in 0..20u16 {
        let p = rtp_packet(0, false, seq, u32::from(seq) * 160, 7, &[0xff; 160]);
        caller.rtp.send_to(&p, relay).unwrap();
    }
    assert!(
        stun_answers(&caller.rtp, Duration::from_secs(1)).is_empty(),
        "a forged check was answered"
    );
    let rtp = receive(
        &phone.rtp,
        Duration::from_millis(300),
        Duration::from_secs(1),
    );
    assert!(rtp.is_empty(), "RTP relayed from a leg without keys");
    assert!(
        phone.accept_bye(Duration::from_secs(16)),
        "the callee was not hung up after the ICE timeout"
    );
    let cdr = wait_cdr(&pbx, "webrtc-no-ice@test");
    assert_eq!(
        cdr["metadata"]["tracks"][0]["webrtc"], "ice_timeout",
        "{cdr}"
    );
}

/// A caller that passes ICE (a check signed with the password our answer
/// gave it is answered, once, no larger than the check) but never does
/// DTLS: the call ends 10 s later with a CDR that says `dtls_timeout`. The
/// callee rang for 11 s first: ICE's 10 s run from our answer, not from
/// the caller's offer.
#[test]
fn a_webrtc_leg_whose_dtls_never_completes_ends_the_call_with_its_reason() {
    let pbx = Pbx::start(PbxOptions::default());
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let (caller, to_caller, _) = webrtc_offer_call(
        &pbx,
        &mut phone,
        "webrtc-no-dtls@test",
        Duration::from_secs(11),
    );
    let relay = sdp_audio(&to_caller);
    let (ours, pwd) = (
        sdp_attr(&to_caller, "ice-ufrag"),
        sdp_attr(&to_caller, "ice-pwd"),
    );
    let check = stun_check(&format!("{ours}:abcd"), pwd, [9; 12]);
    caller.rtp.send_to(&check, relay).unwrap();
    let answers = stun_answers(&caller.rtp, Duration::from_secs(1));
    assert_eq!(answers.len(), 1, "the genuine check is answered once");
    let a = &answers[0];
    assert_eq!(&a[..2], &[0x01, 0x01], "a Binding success response");
    assert_eq!(&a[8..20], &[9; 12], "for our transaction");
    assert!(
        a.len() <= check.len(),
        "amplified: {} > {}",
        a.len(),
        check.len()
    );
    assert!(
        phone.accept_bye(Duration::from_secs(16)),
        "the callee was not hung up after the DTLS timeout"
    );
    let cdr = wait_cdr(&pbx, "webrtc-no-dtls@test");
    assert_eq!(
        cdr["metadata"]["tracks"][0]["webrtc"], "dtls_timeout",
        "{cdr}"
    );
}
