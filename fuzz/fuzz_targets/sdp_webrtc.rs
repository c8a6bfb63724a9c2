//! SDP between browsers and SIP legs: `media::sdp::{parse, rewrite,
//! to_plain, to_webrtc}` and `media::webrtc::parse_remote`, on any body.
//! Checked besides "no panic":
//!
//! - `parse_remote` gives, when it accepts a body, a ufrag of 4..=256 and a
//!   pwd of 22..=256 ICE characters, a token `mid` of at most 64, a
//!   fingerprint that prints and parses back to itself, and only for a body
//!   with an `m=audio` line; CRLF or LF line ends give the same answer;
//! - `to_plain` and `to_webrtc` refuse exactly what `parse` refuses;
//! - for a body `parse` accepts, `rewrite` (relay IPv4 and IPv6) then
//!   `to_plain` and `to_webrtc` (two fixed sets of our parameters) succeed
//!   and their outputs parse, with the same other streams and the same
//!   payload types (and rtpmaps, direction) on the first audio stream;
//! - `to_plain`: the audio profile is `RTP/AVP` for a WebRTC one, else
//!   unchanged; no `a=fingerprint`, `a=ice-*`, `a=setup`, `a=crypto`,
//!   `a=candidate` line anywhere (attribute names compared as `sdp` does:
//!   trimmed, any case);
//! - `to_webrtc`: `UDP/TLS/RTP/SAVPF` on the first audio m-line, exactly
//!   one `a=fingerprint`, `a=ice-ufrag`, `a=ice-pwd`, `a=setup`,
//!   `a=ice-lite` (ours; none without an audio stream), no `a=crypto`,
//!   no `a=rtcp` in the audio stream; `parse_remote` of it reads back
//!   exactly our parameters (when its first `m=audio` line is that first
//!   audio stream: `parse_remote` reads `m=audio` literally).

use shards::media::sdp::{self, Relay};
use shards::media::webrtc::{parse_remote, Fingerprint, IceCreds, LocalParams, Setup};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const FP: &str = "sha-256 8F:2B:6C:0D:4E:3A:11:22:33:44:55:66:77:88:99:AA:\
                  BB:CC:DD:EE:FF:00:01:02:03:04:05:06:07:08:09:0A";

fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_remote(&text);

    let parsed = sdp::parse(data);
    let creds = IceCreds::new("evtj", "VOkJxbRl1RmTxUk/WvJxBt").expect("creds");
    let fingerprint = Fingerprint::parse(FP).expect("fingerprint");
    let locals = [
        LocalParams {
            creds: &creds,
            fingerprint: &fingerprint,
            setup: Setup::Passive,
            mid: None,
            candidate: "203.0.113.9:40000".parse().unwrap(),
        },
        LocalParams {
            creds: &creds,
            fingerprint: &fingerprint,
            setup: Setup::ActPass,
            mid: Some("audio"),
            candidate: "[2001:db8::9]:40002".parse().unwrap(),
        },
    ];
    assert_eq!(sdp::to_plain(data).is_ok(), parsed.is_ok(), "to_plain and parse disagree");
    assert_eq!(
        sdp::to_webrtc(data, &locals[0]).is_ok(),
        parsed.is_ok(),
        "to_webrtc and parse disagree"
    );
    let Ok(orig) = parsed else { return };
    for (addr, local) in ["203.0.113.9", "2001:db8::9"].into_iter().zip(&locals) {
        let relay = Relay {
            addr: addr.parse().expect("literal address"),
            rtp_port: 40000,
        };
        let body = sdp::rewrite(data, &relay).expect("rewrite of a body parse accepts");
        let base = sdp::parse(&body).expect("rewritten body parses");
        assert_eq!(
            base.audio.as_ref().map(|a| &a.payload_types),
            orig.audio.as_ref().map(|a| &a.payload_types),
            "rewrite changed the payload types"
        );

        let plain = sdp::to_plain(&body).expect("to_plain of a rewritten body");
        let p = reparse(&plain, "to_plain");
        same_streams(&base, &p, &plain);
        if let (Some(a), Some(b)) = (&base.audio, &p.audio) {
            let want = if sdp::is_webrtc(&a.proto) {
                "RTP/AVP"
            } else {
                a.proto.as_str()
            };
            assert_eq!(b.proto, want, "to_plain profile:\n{}", show(&plain));
        }
        for (_, name, _) in attributes(&plain) {
            assert!(
                !(matches!(name.as_str(), "fingerprint" | "setup" | "crypto" | "candidate")
                    || name.starts_with("ice-")),
                "to_plain kept a={name}:\n{}",
                show(&plain)
            );
        }

        let web = sdp::to_webrtc(&body, local).expect("to_webrtc of a rewritten body");
        let w = reparse(&web, "to_webrtc");
        same_streams(&base, &w, &web);
        let count = |want: &str| attributes(&web).filter(|(_, n, _)| n == want).count();
        if let Some(a) = &w.audio {
            assert_eq!(a.proto, sdp::WEBRTC_PROTO, "to_webrtc profile:\n{}", show(&web));
            assert_eq!(a.rtcp_port, None, "a=rtcp to a browser:\n{}", show(&web));
            assert!(a.rtcp_mux, "no a=rtcp-mux:\n{}", show(&web));
            assert!(a.crypto.is_empty(), "a=crypto to a browser:\n{}", show(&web));
            for attr in ["fingerprint", "ice-ufrag", "ice-pwd", "setup", "ice-lite"] {
                assert_eq!(count(attr), 1, "a={attr} in to_webrtc:\n{}", show(&web));
            }
            assert_eq!(count("crypto"), 0, "{}", show(&web));
            check_ours(&web, local);
        } else {
            for attr in ["fingerprint", "ice-ufrag", "ice-pwd", "setup", "crypto"] {
                assert_eq!(count(attr), 0, "a={attr} in to_webrtc:\n{}", show(&web));
            }
        }
    }
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn reparse(out: &[u8], what: &str) -> sdp::Sdp {
    match sdp::parse(out) {
        Ok(s) => s,
        Err(e) => panic!("{what} output does not parse: {e}\n{}", show(out)),
    }
}

fn same_streams(a: &sdp::Sdp, b: &sdp::Sdp, out: &[u8]) {
    assert_eq!(a.other_media, b.other_media, "other streams:\n{}", show(out));
    assert_eq!(a.audio.is_some(), b.audio.is_some(), "audio:\n{}", show(out));
    if let (Some(x), Some(y)) = (&a.audio, &b.audio) {
        assert_eq!(x.payload_types, y.payload_types, "payload types:\n{}", show(out));
        assert_eq!(x.rtpmaps, y.rtpmaps, "rtpmaps:\n{}", show(out));
        assert_eq!(x.direction, y.direction, "direction:\n{}", show(out));
        assert_eq!(x.port, y.port, "port:\n{}", show(out));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Session,
    FirstAudio,
    Other,
}

/// The lines of an SDP body as `sdp` cuts them (LF, one CR stripped),
/// with the section of each.
fn lines(body: &[u8]) -> Vec<(Section, &str)> {
    let text = std::str::from_utf8(body).expect("SDP output is UTF-8");
    let mut section = Section::Session;
    let mut seen_audio = false;
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix("m=") {
            let media = rest.split(char::is_whitespace).next().unwrap_or("");
            section = if !seen_audio && media.eq_ignore_ascii_case("audio") {
                seen_audio = true;
                Section::FirstAudio
            } else {
                Section::Other
            };
        }
        out.push((section, line));
    }
    out
}

/// The `a=` lines: section, lower-case trimmed name, value.
fn attributes(body: &[u8]) -> impl Iterator<Item = (Section, String, &str)> {
    lines(body).into_iter().filter_map(|(s, l)| {
        let a = l.strip_prefix("a=")?;
        let (n, v) = a.split_once(':').unwrap_or((a, ""));
        Some((s, n.trim().to_ascii_lowercase(), v))
    })
}

/// `parse_remote` of what we send a browser reads our parameters.
fn check_ours(web: &[u8], local: &LocalParams<'_>) {
    let ls = lines(web);
    let first_audio = ls
        .iter()
        .position(|(s, l)| *s == Section::FirstAudio && l.starts_with("m="));
    let first_m_audio = ls.iter().position(|(_, l)| l.starts_with("m=audio"));
    if first_audio != first_m_audio {
        // parse_remote reads `m=audio` literally: another section (or none).
        return;
    }
    let text = std::str::from_utf8(web).expect("UTF-8");
    let p = match parse_remote(text) {
        Ok(p) => p,
        Err(e) => panic!("parse_remote of to_webrtc: {e}\n{text}"),
    };
    assert_eq!(&p.creds, local.creds, "{text}");
    assert_eq!(&p.fingerprint, local.fingerprint, "{text}");
    assert_eq!(p.setup, local.setup, "{text}");
    assert_eq!(p.mid.as_deref(), Some(local.mid.unwrap_or("0")), "{text}");
    assert!(p.rtcp_mux && p.ice_lite, "{text}");
}

fn is_ice(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| ICE_CHARS.contains(&b))
}

fn check_remote(text: &str) {
    let r = parse_remote(text);
    assert_eq!(
        r,
        parse_remote(&text.replace("\r\n", "\n")),
        "CRLF and LF differ"
    );
    let Ok(p) = r else { return };
    assert!(is_ice(p.creds.ufrag(), 4, 256), "ufrag {:?}", p.creds.ufrag());
    assert!(is_ice(p.creds.pwd(), 22, 256), "pwd of {}", p.creds.pwd().len());
    if let Some(mid) = &p.mid {
        assert!(
            (1..=64).contains(&mid.len())
                && mid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b)),
            "mid {mid:?}"
        );
    }
    assert_eq!(
        Fingerprint::parse(&p.fingerprint.to_string()),
        Some(p.fingerprint),
        "fingerprint"
    );
    assert!(
        text.lines().any(|l| l.starts_with("m=audio")),
        "parameters without m=audio"
    );
}
