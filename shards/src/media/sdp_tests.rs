use super::*;
use std::error::Error as _;
use std::net::Ipv6Addr;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Joins lines with CRLF, ending with CRLF.
fn crlf(lines: &[&str]) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s.into_bytes()
}

fn relay4() -> Relay {
    Relay {
        addr: v4(203, 0, 113, 5),
        rtp_port: 30000,
    }
}

fn rewritten_lines(body: &[u8], relay: &Relay) -> Vec<String> {
    let out = rewrite(body, relay).expect("rewrite");
    let text = String::from_utf8(out).expect("utf8 output");
    assert!(
        text.ends_with("\r\n"),
        "output must end with CRLF: {text:?}"
    );
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in output: {text:?}"
    );
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn audio_of(body: &[u8]) -> AudioStream {
    parse(body).expect("parse").audio.expect("audio stream")
}

const PHONE_OFFER: &[&str] = &[
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 192.168.1.10",
    "s=-",
    "c=IN IP4 192.168.1.10",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
];

#[test]
fn typical_phone_offer_parsed() {
    let sdp = parse(&crlf(PHONE_OFFER)).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(192, 168, 1, 10)));
    assert_eq!(sdp.other_media, 0);
    let a = sdp.audio.unwrap();
    assert_eq!(a.conn, Some(v4(192, 168, 1, 10)));
    assert_eq!(a.port, 49170);
    assert_eq!(a.proto, "RTP/AVP");
    assert_eq!(a.payload_types, vec![0, 8, 101]);
    assert_eq!(
        a.rtpmaps,
        vec![
            RtpMap {
                pt: 0,
                name: "PCMU".into(),
                clock_rate: 8000,
                channels: 1
            },
            RtpMap {
                pt: 8,
                name: "PCMA".into(),
                clock_rate: 8000,
                channels: 1
            },
            RtpMap {
                pt: 101,
                name: "telephone-event".into(),
                clock_rate: 8000,
                channels: 1
            },
        ]
    );
    assert_eq!(a.rtcp_port, None);
    assert!(!a.rtcp_mux);
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(a.ptime, Some(20));
    assert!(!a.is_hold());
    assert_eq!(a.codec_of(101), Some(("telephone-event", 8000)));
}

#[test]
fn typical_phone_offer_rewritten() {
    let out = rewrite(&crlf(PHONE_OFFER), &relay4()).unwrap();
    let expected = crlf(&[
        "v=0",
        "o=user1 53655765 2353687637 IN IP4 203.0.113.5",
        "s=-",
        "c=IN IP4 203.0.113.5",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[test]
fn rewritten_offer_reparses_to_relay() {
    let out = rewrite(&crlf(PHONE_OFFER), &relay4()).unwrap();
    let sdp = parse(&out).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(203, 0, 113, 5)));
    let a = sdp.audio.unwrap();
    assert_eq!(a.conn, Some(v4(203, 0, 113, 5)));
    assert_eq!(a.port, 30000);
    assert_eq!(a.payload_types, vec![0, 8, 101]);
}

#[test]
fn media_level_conn_overrides_session_level() {
    let body = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 10.0.0.2",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(10, 0, 0, 1)));
    assert_eq!(sdp.audio.unwrap().conn, Some(v4(10, 0, 0, 2)));

    // Both c= lines are rewritten.
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[3], "c=IN IP4 203.0.113.5");
    assert_eq!(lines[5], "m=audio 30000 RTP/AVP 0");
    assert_eq!(lines[6], "c=IN IP4 203.0.113.5");
    assert_eq!(lines.len(), 7);
}

#[test]
fn media_level_only_conn() {
    let body = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 10.0.0.2",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, None);
    assert_eq!(sdp.audio.unwrap().conn, Some(v4(10, 0, 0, 2)));
}

#[test]
fn unparsable_conn_gives_none_not_error() {
    let body = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 pbx.example.com",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, None);
    assert_eq!(sdp.audio.unwrap().conn, None);

    // A media-level hostname does not fall back to the session address.
    let body = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 media.example.com",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(10, 0, 0, 1)));
    assert_eq!(sdp.audio.unwrap().conn, None);
    // It is still pointed at the relay.
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[6], "c=IN IP4 203.0.113.5");
}

#[test]
fn conn_with_ttl_suffix() {
    let body = crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 224.2.36.42/127",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 224.2.36.43/127/3",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(224, 2, 36, 42)));
    assert_eq!(sdp.audio.unwrap().conn, Some(v4(224, 2, 36, 43)));
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[3], "c=IN IP4 203.0.113.5");
    assert_eq!(lines[6], "c=IN IP4 203.0.113.5");
}

#[test]
fn ipv6_conn_and_ipv6_relay() {
    let body = crlf(&[
        "v=0",
        "o=alice 2890844526 2890842807 IN IP6 2001:db8::10",
        "s=-",
        "c=IN IP6 2001:db8::10",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0",
        "a=rtcp:5005 IN IP6 2001:db8::10",
    ]);
    let sdp = parse(&body).unwrap();
    let peer: IpAddr = "2001:db8::10".parse().unwrap();
    assert_eq!(sdp.session_conn, Some(peer));
    let a = sdp.audio.unwrap();
    assert_eq!(a.conn, Some(peer));
    assert_eq!(a.rtcp_port, Some(5005));

    let relay = Relay {
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99)),
        rtp_port: 40000,
    };
    assert_eq!(
        rewritten_lines(&body, &relay),
        vec![
            "v=0",
            "o=alice 2890844526 2890842807 IN IP6 2001:db8::99",
            "s=-",
            "c=IN IP6 2001:db8::99",
            "t=0 0",
            "m=audio 40000 RTP/AVP 0",
            "a=rtcp:40001 IN IP6 2001:db8::99",
        ]
    );
}

#[test]
fn ipv4_offer_to_ipv6_relay_switches_addrtype() {
    let relay = Relay {
        addr: "2001:db8::1".parse().unwrap(),
        rtp_port: 20000,
    };
    let lines = rewritten_lines(&crlf(PHONE_OFFER), &relay);
    assert_eq!(lines[1], "o=user1 53655765 2353687637 IN IP6 2001:db8::1");
    assert_eq!(lines[3], "c=IN IP6 2001:db8::1");
}

#[test]
fn hold_sendonly_and_inactive() {
    for (attr, dir) in [
        ("a=sendonly", Direction::SendOnly),
        ("a=inactive", Direction::Inactive),
    ] {
        let body = crlf(&[
            "v=0",
            "o=- 1 2 IN IP4 10.0.0.1",
            "s=-",
            "c=IN IP4 10.0.0.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            attr,
        ]);
        let a = audio_of(&body);
        assert_eq!(a.direction, dir);
        assert!(a.is_hold(), "{attr} should be hold");
        let lines = rewritten_lines(&body, &relay4());
        assert_eq!(lines[6], attr, "direction attribute kept");
    }
}

#[test]
fn recvonly_is_not_hold() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=recvonly",
    ]);
    let a = audio_of(&body);
    assert_eq!(a.direction, Direction::RecvOnly);
    assert!(!a.is_hold());
}

#[test]
fn session_level_direction_inherited_and_overridden() {
    let inherited = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "a=inactive",
        "m=audio 4000 RTP/AVP 0",
    ]);
    assert_eq!(audio_of(&inherited).direction, Direction::Inactive);

    let overridden = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "a=inactive",
        "m=audio 4000 RTP/AVP 0",
        "a=sendrecv",
    ]);
    assert_eq!(audio_of(&overridden).direction, Direction::SendRecv);
}

#[test]
fn old_style_hold_conn_zero_kept() {
    let body = crlf(&[
        "v=0",
        "o=user1 53655765 2353687638 IN IP4 192.168.1.10",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.session_conn, Some(v4(0, 0, 0, 0)));
    let a = sdp.audio.unwrap();
    assert_eq!(a.direction, Direction::SendRecv);
    assert!(a.is_hold());

    assert_eq!(
        rewritten_lines(&body, &relay4()),
        vec![
            "v=0",
            "o=user1 53655765 2353687638 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
        ]
    );
}

#[test]
fn old_style_hold_at_media_level_kept() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 0.0.0.0",
    ]);
    assert!(audio_of(&body).is_hold());
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[3], "c=IN IP4 203.0.113.5");
    assert_eq!(lines[6], "c=IN IP4 0.0.0.0");
}

#[test]
fn rtcp_with_address_rewritten() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtcp:4001 IN IP4 10.0.0.1",
    ]);
    assert_eq!(audio_of(&body).rtcp_port, Some(4001));
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[6], "a=rtcp:30001 IN IP4 203.0.113.5");
}

#[test]
fn rtcp_without_address_rewritten() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtcp:53020",
    ]);
    assert_eq!(audio_of(&body).rtcp_port, Some(53020));
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[6], "a=rtcp:30001");
}

#[test]
fn rtcp_dropped_when_relay_port_is_max() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtcp:4001",
        "a=sendrecv",
    ]);
    let relay = Relay {
        addr: v4(203, 0, 113, 5),
        rtp_port: u16::MAX,
    };
    let lines = rewritten_lines(&body, &relay);
    assert_eq!(lines[5], "m=audio 65535 RTP/AVP 0");
    assert_eq!(lines[6], "a=sendrecv");
    assert_eq!(lines.len(), 7);
}

#[test]
fn rtcp_mux_detected_and_kept() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtcp:4000",
        "a=rtcp-mux",
    ]);
    let a = audio_of(&body);
    assert!(a.rtcp_mux);
    assert_eq!(a.rtcp_port, Some(4000));
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[6], "a=rtcp:30001");
    assert_eq!(lines[7], "a=rtcp-mux");
}

#[test]
fn audio_and_video_offer() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8",
        "a=rtcp:4001",
        "m=video 5000 RTP/AVP 96",
        "c=IN IP4 10.0.0.3",
        "a=rtpmap:96 H264/90000",
        "a=rtcp:5001",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.other_media, 1);
    let a = sdp.audio.unwrap();
    assert_eq!(a.port, 4000);
    // Attributes of the video section do not leak into the audio summary.
    assert_eq!(a.rtpmaps, vec![]);
    assert_eq!(a.rtcp_port, Some(4001));
    assert_eq!(a.conn, Some(v4(10, 0, 0, 1)));

    assert_eq!(
        rewritten_lines(&body, &relay4()),
        vec![
            "v=0",
            "o=- 1 2 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 8",
            "a=rtcp:30001",
            "m=video 0 RTP/AVP 96",
            "c=IN IP4 10.0.0.3",
            "a=rtpmap:96 H264/90000",
            "a=rtcp:5001",
        ]
    );
}

#[test]
fn video_before_audio() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=video 5000 RTP/AVP 96",
        "a=rtpmap:96 VP8/90000",
        "m=audio 4000 RTP/AVP 111",
        "a=rtpmap:111 opus/48000/2",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.other_media, 1);
    let a = sdp.audio.unwrap();
    assert_eq!(a.port, 4000);
    assert_eq!(a.payload_types, vec![111]);
    assert_eq!(a.codec_of(96), None);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[5], "m=video 0 RTP/AVP 96");
    assert_eq!(lines[7], "m=audio 30000 RTP/AVP 111");
}

#[test]
fn second_audio_rejected() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "m=audio 4002 RTP/AVP 8",
        "c=IN IP4 10.0.0.4",
        "a=rtcp:4003",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.other_media, 1);
    let a = sdp.audio.unwrap();
    assert_eq!(a.port, 4000);
    assert_eq!(a.payload_types, vec![0]);
    assert_eq!(a.rtcp_port, None);

    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[5], "m=audio 30000 RTP/AVP 0");
    assert_eq!(lines[6], "m=audio 0 RTP/AVP 8");
    assert_eq!(lines[7], "c=IN IP4 10.0.0.4");
    assert_eq!(lines[8], "a=rtcp:4003");
}

#[test]
fn t38_image_stream_rejected_with_fmt_kept() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "m=image 4004 udptl t38",
        "a=T38FaxVersion:0",
    ]);
    assert_eq!(parse(&body).unwrap().other_media, 1);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[6], "m=image 0 udptl t38");
    assert_eq!(lines[7], "a=T38FaxVersion:0");
}

#[test]
fn no_audio_stream() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=image 4004 udptl t38",
    ]);
    let sdp = parse(&body).unwrap();
    assert_eq!(sdp.audio, None);
    assert_eq!(sdp.other_media, 1);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[5], "m=image 0 udptl t38");
}

#[test]
fn rejected_audio_port_zero_stays_zero() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 0 RTP/AVP 0 8",
    ]);
    let a = audio_of(&body);
    assert_eq!(a.port, 0);
    assert_eq!(a.payload_types, vec![0, 8]);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[5], "m=audio 0 RTP/AVP 0 8");
}

#[test]
fn port_count_dropped_and_fmt_spacing_kept() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000/2 RTP/AVP 0  8 101",
        "m=video 5000/2 RTP/AVP 96",
    ]);
    let a = audio_of(&body);
    assert_eq!(a.port, 4000);
    assert_eq!(a.payload_types, vec![0, 8, 101]);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[5], "m=audio 30000 RTP/AVP 0  8 101");
    assert_eq!(lines[6], "m=video 0 RTP/AVP 96");
}

#[test]
fn ice_attributes_removed() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "a=ice-lite",
        "a=ice-options:trickle",
        "a=ice-ufrag:sessU",
        "a=ice-pwd:sessP",
        "m=audio 4000 RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=ice-ufrag:F7gI",
        "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
        "a=candidate:1 1 UDP 2130706431 10.0.0.1 4000 typ host",
        "a=candidate:2 1 UDP 1694498815 198.51.100.7 4000 typ srflx raddr 10.0.0.1 rport 4000",
        "a=remote-candidates:1 10.0.0.9 5000",
        "a=end-of-candidates",
        "a=fingerprint:sha-256 AB:CD",
        "a=ssrc:12345 cname:abc",
        "m=video 5000 RTP/SAVPF 96",
        "a=ice-ufrag:V1de",
        "a=candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host",
    ]);
    assert_eq!(
        rewritten_lines(&body, &relay4()),
        vec![
            "v=0",
            "o=- 1 2 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 30000 RTP/SAVPF 111",
            "a=rtpmap:111 opus/48000/2",
            "a=fingerprint:sha-256 AB:CD",
            "a=ssrc:12345 cname:abc",
            // The rejected video section keeps all but its port and its
            // ICE (whose candidates name the peer's addresses).
            "m=video 0 RTP/SAVPF 96",
        ]
    );
}

#[test]
fn bare_lf_input_gives_crlf_output() {
    let body = PHONE_OFFER.join("\n") + "\n";
    let out = rewrite(body.as_bytes(), &relay4()).unwrap();
    assert_eq!(out, rewrite(&crlf(PHONE_OFFER), &relay4()).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("\r\n").count(), PHONE_OFFER.len());
    assert_eq!(text.matches('\n').count(), PHONE_OFFER.len());
    assert!(text.ends_with("a=sendrecv\r\n"));

    assert_eq!(parse(body.as_bytes()), parse(&crlf(PHONE_OFFER)));
}

#[test]
fn missing_final_newline_and_blank_lines_tolerated() {
    // No trailing newline, mixed endings, a stray blank line.
    let body = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\ns=-\r\n\r\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\na=ptime:30";
    let a = audio_of(body.as_bytes());
    assert_eq!(a.ptime, Some(30));
    assert_eq!(a.conn, Some(v4(10, 0, 0, 1)));
    let out = rewrite(body.as_bytes(), &relay4()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "v=0\r\no=- 1 2 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\na=ptime:30\r\n"
    );
}

#[test]
fn unknown_lines_ignored_and_kept() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "x=whatever",
        "c=IN IP4 10.0.0.1",
        "b=AS:64",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=x-proprietary:1",
        "a=maxptime:40",
        "garbage line",
    ]);
    let a = audio_of(&body);
    assert_eq!(a.port, 4000);
    let lines = rewritten_lines(&body, &relay4());
    assert_eq!(lines[3], "x=whatever");
    assert_eq!(lines[5], "b=AS:64");
    assert_eq!(lines[8], "a=x-proprietary:1");
    assert_eq!(lines[9], "a=maxptime:40");
    assert_eq!(lines[10], "garbage line");
}

#[test]
fn opus_rtpmap_with_channels() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 111 0",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
    ]);
    let a = audio_of(&body);
    assert_eq!(
        a.rtpmaps,
        vec![RtpMap {
            pt: 111,
            name: "opus".into(),
            clock_rate: 48000,
            channels: 2
        }]
    );
    assert_eq!(a.codec_of(111), Some(("opus", 48000)));
    assert_eq!(a.codec_of(0), Some(("PCMU", 8000)));
}

#[test]
fn codec_of_static_and_dynamic() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8 9 18 97 101",
        "a=rtpmap:97 iLBC/8000",
    ]);
    let a = audio_of(&body);
    assert!(a.rtpmaps.iter().all(|m| m.pt == 97));
    assert_eq!(a.codec_of(0), Some(("PCMU", 8000)));
    assert_eq!(a.codec_of(8), Some(("PCMA", 8000)));
    assert_eq!(a.codec_of(9), Some(("G722", 8000)));
    assert_eq!(a.codec_of(18), Some(("G729", 8000)));
    assert_eq!(a.codec_of(3), Some(("GSM", 8000)));
    assert_eq!(a.codec_of(13), Some(("CN", 8000)));
    assert_eq!(a.codec_of(97), Some(("iLBC", 8000)));
    // Dynamic type without rtpmap: unknown.
    assert_eq!(a.codec_of(101), None);
}

#[test]
fn error_not_utf8() {
    let mut body = crlf(PHONE_OFFER);
    body[20] = 0xff;
    let err = parse(&body).unwrap_err();
    assert_eq!(err, SdpError::NotUtf8 { valid_up_to: 20 });
    assert!(err.to_string().contains("UTF-8"), "{err}");
    assert_eq!(rewrite(&body, &relay4()).unwrap_err(), err);
}

#[test]
fn error_missing_version() {
    let body = crlf(&["o=- 1 2 IN IP4 10.0.0.1", "v=0", "s=-"]);
    let err = parse(&body).unwrap_err();
    assert_eq!(err, SdpError::MissingVersion);
    assert!(err.to_string().contains("v="), "{err}");
    assert_eq!(rewrite(&body, &relay4()).unwrap_err(), err);
    assert_eq!(parse(b"").unwrap_err(), SdpError::MissingVersion);
    assert!(err.source().is_none());
}

#[test]
fn error_bad_media_port() {
    let body = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio abc RTP/AVP 0",
    ]);
    let err = parse(&body).unwrap_err();
    assert!(
        matches!(err, SdpError::BadMediaLine { line: 6, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("line 6") && msg.contains("m=") && msg.contains("port"),
        "{msg}"
    );
    assert_eq!(rewrite(&body, &relay4()).unwrap_err(), err);
}

#[test]
fn error_bad_media_lines_variants() {
    for m in [
        "m=audio 70000 RTP/AVP 0",
        "m=audio -1 RTP/AVP 0",
        "m=audio",
        "m=audio 4000",
        "m=audio 4000/x RTP/AVP 0",
        "m=video x RTP/AVP 96",
    ] {
        let body = crlf(&["v=0", "s=-", "m=audio 4000 RTP/AVP 0", m]);
        assert!(
            matches!(parse(&body), Err(SdpError::BadMediaLine { line: 4, .. })),
            "{m} should be rejected"
        );
    }
}
