//! Media through the relay (real binary, real RTP over loopback UDP): both
//! directions with exact counts and continuous seq/ts for PCMU and PCMA,
//! telephone-events untouched, `media_proxy = "none"`, NAT latching, the
//! RTP timeout, hold and resume, mute over REST, and recordings (G.711 tones
//! and Opus) checked by frequency.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::media::*;
use common::*;

const GAP: Duration = Duration::from_millis(10);

fn pbx(proxy_extra: &str, extra_tables: &str) -> Pbx {
    Pbx::start(PbxOptions {
        proxy_extra: proxy_extra.into(),
        extra_tables: extra_tables.into(),
        ..PbxOptions::default()
    })
}

fn in_relay_range(a: SocketAddr) -> bool {
    a.ip().is_loopback() && (61000..61998).contains(&a.port())
}

/// A proxied call from 1001 to a registered 1002: returns (caller, phone,
/// where the caller sends RTP, where the phone sends RTP).
fn proxied_call(
    pbx: &Pbx,
    call_id: &str,
    codec: (u8, &str),
) -> (Caller, Phone, SocketAddr, SocketAddr) {
    let mut phone = Phone::register(pbx, "1002", "secret1002");
    let (caller, to_a, to_b) = call_phone(pbx, &mut phone, call_id, codec);
    (caller, phone, to_a, to_b)
}

/// A proxied call from 1001 to `phone`: (caller, where the caller sends
/// RTP, where the phone sends RTP).
fn call_phone(
    pbx: &Pbx,
    phone: &mut Phone,
    call_id: &str,
    codec: (u8, &str),
) -> (Caller, SocketAddr, SocketAddr) {
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(
        caller.rtp_port(),
        &[codec, (101, "telephone-event/8000")],
        "a=sendrecv\r\n",
    );
    let answer = sdp(
        phone.rtp_port(),
        &[codec, (101, "telephone-event/8000")],
        "a=sendrecv\r\n",
    );
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let offer_seen = invite.split_once("\r\n\r\n").unwrap().1.to_string();
    let phone_sends_to = sdp_audio(&offer_seen);
    let caller_sends_to = sdp_audio(&caller.answer);
    assert!(
        in_relay_range(phone_sends_to),
        "offer not rewritten: {offer_seen}"
    );
    assert!(
        in_relay_range(caller_sends_to),
        "answer not rewritten: {}",
        caller.answer
    );
    assert_ne!(
        phone_sends_to, caller_sends_to,
        "each side has its own port"
    );
    for kept in [
        "a=rtpmap:101 telephone-event/8000",
        "a=ptime:20",
        "a=sendrecv",
    ] {
        assert!(offer_seen.contains(kept), "{kept} lost: {offer_seen}");
        assert!(
            caller.answer.contains(kept),
            "{kept} lost: {}",
            caller.answer
        );
    }
    (caller, caller_sends_to, phone_sends_to)
}

#[test]
fn relay_carries_pcmu_and_pcma_both_ways_with_every_packet_in_order() {
    let pbx = pbx(r#"media_proxy = "always""#, "");
    for (i, (codec, enc)) in [(PCMU, ulaw as fn(i16) -> u8), (PCMA, alaw)]
        .into_iter()
        .enumerate()
    {
        let call_id = format!("relay-{i}@test");
        let (mut caller, phone, to_a, to_b) = proxied_call(&pbx, &call_id, codec);
        let (at_caller, at_phone) = exchange(
            &caller.rtp,
            to_a,
            codec.0,
            tone_frames(440.0, 60, enc),
            &phone.rtp,
            to_b,
            codec.0,
            tone_frames(1000.0, 60, enc),
            160,
            GAP,
        );
        assert_eq!(at_phone.len(), 60, "caller -> phone, {}", codec.1);
        assert_eq!(at_caller.len(), 60, "phone -> caller, {}", codec.1);
        assert_continuous(&at_phone, 160, "caller -> phone");
        assert_continuous(&at_caller, 160, "phone -> caller");
        assert!(at_phone
            .iter()
            .all(|p| p.pt == codec.0 && p.payload.len() == 160));
        // The relay sends from the port it gave each side.
        assert!(at_phone.iter().all(|p| p.from == to_b));
        assert!(at_caller.iter().all(|p| p.from == to_a));

        // RFC 4733 events pass untouched (same payload, same timestamp).
        let event = |end: bool, dur: u16| {
            let mut p = vec![5u8, if end { 0x8a } else { 0x0a }];
            p.extend_from_slice(&dur.to_be_bytes());
            p
        };
        for (k, (end, dur)) in [(false, 160u16), (false, 320), (true, 480)]
            .into_iter()
            .enumerate()
        {
            let pkt = rtp_packet(101, k == 0, 500 + k as u16, 777_000, 9, &event(end, dur));
            caller.rtp.send_to(&pkt, to_a).unwrap();
        }
        let events = receive(
            &phone.rtp,
            Duration::from_millis(500),
            Duration::from_secs(3),
        );
        assert_eq!(events.len(), 3, "telephone-events relayed");
        assert!(events.iter().all(|e| e.pt == 101 && e.ts == 777_000));
        assert_eq!(events[2].payload, event(true, 480));

        assert_eq!(caller.bye().code, 200);
        assert!(phone.accept_bye(Duration::from_secs(3)));
        let c = wait_cdr(&pbx, &call_id);
        assert_eq!(c["metadata"]["media"], "proxied", "{c}");
        let tracks = &c["metadata"]["tracks"];
        assert_eq!(tracks[0]["trackId"], "audio-0");
        assert_eq!(tracks[0]["rtp"]["packets"], 63, "{c}");
        assert_eq!(tracks[1]["rtp"]["packets"], 60, "{c}");
        assert_eq!(tracks[1]["rtp"]["lost"], 0, "{c}");
    }
}

#[test]
fn media_proxy_none_leaves_sdp_untouched() {
    let pbx = pbx(r#"media_proxy = "none""#, "");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "none@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let answer = sdp(phone.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let mut invite = String::new();
    assert_eq!(
        caller
            .call("1002", &offer, || invite = phone.answer(&answer))
            .code,
        200
    );
    assert_eq!(invite.split_once("\r\n\r\n").unwrap().1, offer);
    assert_eq!(caller.answer, answer);
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
    assert_eq!(wait_cdr(&pbx, "none@test")["metadata"]["media"], "direct");
}

#[test]
fn nat_latching_sends_back_to_where_packets_really_come_from() {
    let pbx = pbx(r#"media_proxy = "always""#, "");
    let (mut caller, phone, to_a, to_b) = proxied_call(&pbx, "nat@test", PCMU);
    // The caller signalled caller.rtp's port but sends from another socket,
    // as a phone behind a NAT does.
    let natted = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (at_natted, at_phone) = exchange(
        &natted,
        to_a,
        0,
        tone_frames(440.0, 40, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(1000.0, 40, ulaw),
        160,
        GAP,
    );
    assert_eq!(at_phone.len(), 40);
    // Until the relay has seen a few packets of the caller's stream (it
    // latches after 3 of one SSRC from one address), the phone's audio
    // goes to the signalled port; after that, to the latched one.
    assert!(
        at_natted.len() >= 36,
        "only {} packets reached the real port",
        at_natted.len()
    );
    let at_signalled = receive(
        &caller.rtp,
        Duration::from_millis(100),
        Duration::from_millis(300),
    );
    assert!(
        at_signalled.len() <= 4,
        "{} packets went to the signalled port",
        at_signalled.len()
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn rtp_timeout_hangs_up_both_legs() {
    let pbx = pbx("media_proxy = \"always\"\nrtp_timeout = 2", "");
    let (caller, phone, to_a, to_b) = proxied_call(&pbx, "timeout@test", PCMU);
    let started = Instant::now();
    exchange(
        &caller.rtp,
        to_a,
        0,
        tone_frames(440.0, 10, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(440.0, 10, ulaw),
        160,
        GAP,
    );
    let phone_bye = std::thread::spawn(move || phone.accept_bye(Duration::from_secs(8)));
    assert!(
        caller.accept_bye(Duration::from_secs(8)),
        "caller got no BYE"
    );
    assert!(phone_bye.join().unwrap(), "phone got no BYE");
    // The last packet left 0.1 s after `started`; the timeout is 2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "hung up too early"
    );
    let c = wait_cdr(&pbx, "timeout@test");
    assert_eq!(c["hangupReason"], "bySystem", "{c}");
    assert_eq!(c["status"], "completed");
}

#[test]
fn hold_and_resume_with_a_new_port_keeps_media_flowing() {
    let pbx = pbx("media_proxy = \"always\"\nrtp_timeout = 2", "");
    let (mut caller, mut phone, to_a, to_b) = proxied_call(&pbx, "hold@test", PCMU);
    // Hold: sendonly from the caller; the phone answers recvonly.
    let hold = sdp(caller.rtp_port(), &[PCMU], "a=sendonly\r\n");
    let phone_port = phone.rtp_port();
    let mut reinvite = String::new();
    let answer = caller.reinvite(&hold, || {
        reinvite = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .expect("re-INVITE relayed");
        let resp = sdp(phone_port, &[PCMU], "a=recvonly\r\n");
        phone.last_invite = reinvite.clone();
        phone.sip.send(&ok_with_sdp(&reinvite, &resp));
        phone.wait_request("ACK", Duration::from_secs(5));
    });
    assert!(reinvite.contains("a=sendonly"), "{reinvite}");
    assert_eq!(
        sdp_audio(reinvite.split_once("\r\n\r\n").unwrap().1),
        to_b,
        "same relay port"
    );
    assert!(answer.contains("a=recvonly"));
    // On hold for longer than rtp_timeout: no hang-up.
    std::thread::sleep(Duration::from_millis(2500));
    // Resume from a new RTP port.
    let new_rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resume = sdp(
        new_rtp.local_addr().unwrap().port(),
        &[PCMU],
        "a=sendrecv\r\n",
    );
    caller.reinvite(&resume, || {
        let r = phone
            .wait_request("INVITE", Duration::from_secs(5))
            .expect("resume relayed");
        phone.sip.send(&ok_with_sdp(
            &r,
            &sdp(phone_port, &[PCMU], "a=sendrecv\r\n"),
        ));
        phone.wait_request("ACK", Duration::from_secs(5));
    });
    let (at_new, at_phone) = exchange(
        &new_rtp,
        to_a,
        0,
        tone_frames(440.0, 30, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(440.0, 30, ulaw),
        160,
        GAP,
    );
    assert_eq!(at_phone.len(), 30);
    assert!(
        at_new.len() >= 29,
        "after resume {} packets reached the new port",
        at_new.len()
    );
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    assert_eq!(wait_cdr(&pbx, "hold@test")["hangupReason"], "byCaller");
}

fn command(pbx: &Pbx, call_id: &str, body: &str) -> (u16, String) {
    call_command(pbx, call_id, body)
}

#[test]
fn mute_stops_forwarding_and_unmute_resumes_a_continuous_stream() {
    let pbx = pbx(r#"media_proxy = "always""#, "");
    let (mut caller, phone, to_a, _) = proxied_call(&pbx, "mute@test", PCMU);
    let send = |seq0: u16, n: usize| {
        send_stream(
            &caller.rtp,
            to_a,
            0,
            seq0,
            160,
            GAP,
            &tone_frames(440.0, n, ulaw),
        );
    };
    send(1000, 10);
    assert_eq!(
        receive(
            &phone.rtp,
            Duration::from_millis(300),
            Duration::from_secs(2)
        )
        .len(),
        10
    );
    let (code, body) = command(
        &pbx,
        "mute@test",
        r#"{"action":"mute","track_id":"audio-0"}"#,
    );
    assert_eq!(code, 200, "{body}");
    send(1010, 10);
    assert!(
        receive(
            &phone.rtp,
            Duration::from_millis(300),
            Duration::from_secs(1)
        )
        .is_empty(),
        "muted audio forwarded"
    );
    assert_eq!(
        command(
            &pbx,
            "mute@test",
            r#"{"action":"unmute","track_id":"audio-0"}"#
        )
        .0,
        200
    );
    send(1020, 10);
    let after = receive(
        &phone.rtp,
        Duration::from_millis(300),
        Duration::from_secs(2),
    );
    assert_eq!(after.len(), 10);
    // The phone sees seq 1010.. right after 1009: no gap from the mute, and
    // a marker on the first packet after it.
    assert_eq!(after[0].seq, 1010);
    assert!(after[0].marker);
    assert_continuous(&after, 160, "after unmute");

    // Errors: unknown call, unknown track, bad body.
    assert_eq!(
        command(
            &pbx,
            "nope@test",
            r#"{"action":"mute","track_id":"audio-0"}"#
        )
        .0,
        404
    );
    let (code, body) = command(
        &pbx,
        "mute@test",
        r#"{"action":"mute","track_id":"video-7"}"#,
    );
    assert_eq!(code, 400);
    assert!(body.contains("track_id"), "{body}");
    let (code, body) = command(&pbx, "mute@test", r#"{"track_id":"audio-0"}"#);
    assert_eq!(code, 400);
    assert!(body.contains("action"), "{body}");
    assert_eq!(command(&pbx, "mute@test", "not json").0, 400);
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn mute_on_a_call_without_proxied_media_is_409() {
    let pbx = pbx(r#"media_proxy = "none""#, "");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "direct@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    caller.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(
        command(
            &pbx,
            "direct@test",
            r#"{"action":"mute","track_id":"audio-0"}"#
        )
        .0,
        409
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn recording_holds_each_side_on_its_own_channel_for_the_media_time() {
    let pbx = pbx("", "[recording]\nenabled = true\n");
    // Auto mode proxies because the call is recorded.
    let (mut caller, phone, to_a, to_b) = proxied_call(&pbx, "rec-g711@test", PCMU);
    let started = Instant::now();
    exchange(
        &caller.rtp,
        to_a,
        0,
        tone_frames(440.0, 100, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(1000.0, 100, ulaw),
        160,
        Duration::from_millis(20),
    );
    let media_time = started.elapsed();
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
    let (c, path) = recording_of(&pbx, "rec-g711@test");
    assert!(path.to_string_lossy().contains("recordings/"), "{c}");
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("rec-g711@test"));
    let (left, right) = read_wav(&path);
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (1.8..=media_time.as_secs_f64() + 1.0).contains(&secs),
        "recording lasts {secs} s for 2 s of media"
    );
    let mid = |v: &[i16]| v[v.len() / 4..v.len() * 3 / 4].to_vec();
    let (l, r) = (mid(&left), mid(&right));
    assert!(
        goertzel(&l, 440.0) > 100.0 * goertzel(&l, 1000.0),
        "left is the caller's 440 Hz"
    );
    assert!(
        goertzel(&r, 1000.0) > 100.0 * goertzel(&r, 440.0),
        "right is the callee's 1000 Hz"
    );
}

#[test]
fn an_opus_call_is_recorded_decoded() {
    let pbx = pbx("", "[recording]\nenabled = true\n");
    let (mut caller, phone, to_a, _) = proxied_call(&pbx, "rec-opus@test", OPUS);
    // 1.5 s of a 700 Hz tone, Opus at 48 kHz, 20 ms frames.
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let frames: Vec<Vec<u8>> = (0..75)
        .map(|f| {
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    let n = (f * 960 + i) as f64;
                    (8000.0 * (2.0 * std::f64::consts::PI * 700.0 * n / 48000.0).sin()) as i16
                })
                .collect();
            let mut out = vec![0u8; 400];
            let len = enc.encode(&pcm, &mut out).unwrap();
            out.truncate(len);
            out
        })
        .collect();
    send_stream(
        &caller.rtp,
        to_a,
        111,
        7,
        960,
        Duration::from_millis(20),
        &frames,
    );
    assert_eq!(
        receive(
            &phone.rtp,
            Duration::from_millis(300),
            Duration::from_secs(3)
        )
        .len(),
        75
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
    let (_, path) = recording_of(&pbx, "rec-opus@test");
    let (left, right) = read_wav(&path);
    let secs = left.len() as f64 / 8000.0;
    assert!((1.3..=2.6).contains(&secs), "{secs} s");
    let l = &left[left.len() / 4..left.len() * 3 / 4];
    assert!(
        goertzel(l, 700.0) > 50.0 * goertzel(l, 1500.0),
        "700 Hz on the left"
    );
    assert!(right.iter().all(|s| *s == 0), "the callee sent nothing");
}

#[test]
fn sipp_plays_a_pcap_through_the_relay_and_every_packet_arrives() {
    let pbx = pbx(r#"media_proxy = "always""#, "");
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let answer = sdp(phone.rtp_port(), &[PCMA], "");
    let sipp_pbx = pbx.sip.to_string();
    let caller = std::thread::spawn(move || {
        sipp(
            &[
                &sipp_pbx,
                "-sf",
                &scenario("uac_pcap.xml"),
                "-s",
                "1002",
                "-key",
                "caller",
                "1001",
                "-au",
                "1001",
                "-ap",
                "secret1001",
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-mp",
                "0",
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
            ],
            Duration::from_secs(40),
        )
    });
    let invite = phone.answer(&answer);
    assert!(in_relay_range(sdp_audio(
        invite.split_once("\r\n\r\n").unwrap().1
    )));
    let got = receive(
        &phone.rtp,
        Duration::from_millis(1500),
        Duration::from_secs(15),
    );
    assert!(phone.accept_bye(Duration::from_secs(5)));
    let out = caller.join().unwrap();
    assert!(
        out.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // g711a.pcap holds 236 RTP packets of one PCMA stream.
    assert_eq!(got.len(), 236, "packets through the relay");
    assert!(got.iter().all(|p| p.pt == 8));
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "seq continuous");
        assert!(w[1].ts.wrapping_sub(w[0].ts) < 8000, "ts continuous");
    }
}

#[test]
fn a_recording_survives_a_crash_up_to_its_last_flushed_second() {
    let mut pbx = pbx("", "[recording]\nenabled = true\n");
    let (caller, phone, to_a, to_b) = proxied_call(&pbx, "crash@test", PCMU);
    exchange(
        &caller.rtp,
        to_a,
        0,
        tone_frames(440.0, 125, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(1000.0, 125, ulaw),
        160,
        Duration::from_millis(20),
    );
    // 2.5 s of media, the call still up: the power goes.
    pbx.crash();
    pbx.start_again();
    let day_dirs: Vec<_> = std::fs::read_dir(pbx.dir.path().join("data/recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let file = day_dirs[0].join("crash@test.wav");
    let (left, right) = read_wav(&file);
    let secs = left.len() as f64 / 8000.0;
    assert!(secs >= 1.0, "only {secs} s of 2.5 s survived");
    let l = &left[..4000];
    let r = &right[..4000];
    assert!(goertzel(l, 440.0) > 100.0 * goertzel(l, 1000.0));
    assert!(goertzel(r, 1000.0) > 100.0 * goertzel(r, 440.0));
}

#[test]
fn with_two_shards_each_call_gets_ports_of_its_owner_and_media_flows() {
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut ports = Vec::new();
    for i in 0..6 {
        let call_id = format!("two-shards-{i}@test");
        let (mut caller, to_a, to_b) = call_phone(&pbx, &mut phone, &call_id, PCMU);
        let (at_caller, at_phone) = exchange(
            &caller.rtp,
            to_a,
            0,
            tone_frames(440.0, 10, ulaw),
            &phone.rtp,
            to_b,
            0,
            tone_frames(440.0, 10, ulaw),
            160,
            GAP,
        );
        assert_eq!((at_caller.len(), at_phone.len()), (10, 10), "{call_id}");
        assert_eq!(caller.bye().code, 200);
        assert!(phone.accept_bye(Duration::from_secs(3)));
        ports.push(to_a.port());
    }
    // Shard 0 owns 61000..61498, shard 1 61498..61998 (249 pairs each);
    // These fixed Call-IDs hash to both shards.
    let low = ports.iter().filter(|p| **p < 61498).count();
    assert!(low > 0 && low < ports.len(), "ports {ports:?}");
    let metrics = pbx.http_get("/metrics");
    for shard in ["0", "1"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("shardpbx_rtp_tx_total{{shard=\"{shard}\"}}")))
            .unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n > 0, "shard {shard} relayed nothing: {line}");
    }
}
