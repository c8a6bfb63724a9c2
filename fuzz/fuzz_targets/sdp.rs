//! SDP: `parse` and `rewrite` never panic and agree on what they refuse; a
//! rewritten body parses again, points the first audio stream at the relay and
//! keeps its codecs, rejects every other stream and carries no ICE attribute.

use std::net::IpAddr;

use shards::media::sdp::{self, Relay};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn run(data: &[u8]) {
    let parsed = sdp::parse(data);
    if let Ok(s) = &parsed {
        if let Some(a) = &s.audio {
            let _ = a.is_hold();
            for &pt in &a.payload_types {
                let _ = a.codec_of(pt);
            }
        }
    }
    // The relay port comes from the input so that port 65535 (no room for
    // RTCP on +1) is reached too.
    let port = data
        .first()
        .map_or(40000, |&b| if b & 1 == 1 { 65535 } else { 40000 });
    for addr in ["203.0.113.9", "2001:db8::9"] {
        let relay = Relay {
            addr: addr.parse().expect("literal address"),
            rtp_port: port,
        };
        let out = sdp::rewrite(data, &relay);
        assert_eq!(parsed.is_err(), out.is_err(), "parse and rewrite disagree");
        let (Ok(orig), Ok(out)) = (&parsed, out) else {
            continue;
        };
        let again = match sdp::parse(&out) {
            Ok(s) => s,
            Err(e) => panic!(
                "rewritten SDP does not parse: {e}\n{}",
                String::from_utf8_lossy(&out)
            ),
        };
        let text = std::str::from_utf8(&out).expect("rewrite gives UTF-8");
        assert!(
            text.is_empty() || text.ends_with("\r\n"),
            "output ends with CRLF"
        );
        assert_eq!(
            again.other_media, orig.other_media,
            "other streams:\n{text}"
        );
        assert_eq!(
            again.audio.is_some(),
            orig.audio.is_some(),
            "audio stream:\n{text}"
        );
        if let (Some(a), Some(b)) = (&orig.audio, &again.audio) {
            let expected_port = if a.port == 0 { 0 } else { relay.rtp_port };
            assert_eq!(b.port, expected_port, "audio port:\n{text}");
            assert_eq!(b.payload_types, a.payload_types, "codecs:\n{text}");
            assert_eq!(b.rtpmaps, a.rtpmaps, "rtpmaps:\n{text}");
            assert_eq!(b.direction, a.direction, "direction:\n{text}");
            assert_eq!(b.proto, a.proto, "proto:\n{text}");
            let hold = Some(IpAddr::from([0, 0, 0, 0]));
            if a.conn.is_some() && a.conn != hold {
                assert_eq!(b.conn, Some(relay.addr), "audio address:\n{text}");
            }
        }
    }
}
