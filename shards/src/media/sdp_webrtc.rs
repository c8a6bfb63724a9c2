//! SDP between a browser's leg (WebRTC: `UDP/TLS/RTP/SAVPF`, ICE, DTLS,
//! rtcp-mux, BUNDLE) and a SIP leg (plain RTP, or SDES-SRTP), for a body
//! already [`rewrite`](super::rewrite)n to the relay: [`is_webrtc`] tells
//! them apart, [`to_plain`] takes the WebRTC attributes out of what goes
//! to a SIP leg, [`to_webrtc`] puts ours into what goes to a browser.
//! Codecs, directions and everything else are kept, in order.

use std::fmt::Write as _;

use super::{attribute, is_ice_attribute, sdp_text, walk, SdpError, Section};
use crate::media::webrtc::{self, LocalParams};

/// The profile of a WebRTC media section (RFC 5764, JSEP).
pub const WEBRTC_PROTO: &str = "UDP/TLS/RTP/SAVPF";

/// Attributes that belong to a WebRTC transport or bundle, not to RTP:
/// dropped from what goes to a SIP leg, and replaced by ours in what goes
/// to a browser. (ICE attributes are dropped by `rewrite` already.)
const WEBRTC_ATTRIBUTES: [&str; 16] = [
    "fingerprint",
    "setup",
    "mid",
    "group",
    "msid-semantic",
    "msid",
    "ssrc",
    "ssrc-group",
    "rtcp-fb",
    "extmap",
    "extmap-allow-mixed",
    "rtcp-rsize",
    "rtcp-mux",
    "rtcp-mux-only",
    "crypto",
    "tls-id",
];

/// Whether an audio stream's profile is a DTLS one (a browser's leg).
pub fn is_webrtc(proto: &str) -> bool {
    let p = proto.to_ascii_uppercase();
    p == WEBRTC_PROTO || p == "UDP/TLS/RTP/SAVP"
}

fn dropped(line: &str, also: &[&str]) -> bool {
    attribute(line).is_some_and(|(name, _)| {
        is_ice_attribute(name)
            || WEBRTC_ATTRIBUTES
                .iter()
                .chain(also)
                .any(|n| name.eq_ignore_ascii_case(n))
    })
}

/// A browser's SDP (rewritten to the relay) as it goes to a SIP leg:
/// `RTP/AVP`, without the WebRTC transport attributes (ICE, DTLS, BUNDLE,
/// rtcp-mux, feedback, header extensions, SSRC and stream ids).
///
/// # Errors
///
/// The same as [`super::parse`].
pub fn to_plain(body: &[u8]) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len());
    walk(text, |_, line, m| {
        if let Some(m) = m {
            let proto = if is_webrtc(m.proto) {
                "RTP/AVP"
            } else {
                m.proto
            };
            let _ = write!(out, "m={} {} {proto}{}\r\n", m.media, m.port, m.fmts);
            return;
        }
        if dropped(line, &[]) {
            return;
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    Ok(out.into_bytes())
}

/// A SIP leg's SDP (rewritten to the relay) as it goes to a browser:
/// `UDP/TLS/RTP/SAVPF`, with our ICE-lite, DTLS and rtcp-mux attributes
/// (`local`), the audio stream bundled alone (its `a=mid`), no SDES key
/// and no separate RTCP port. Every other stream stays rejected.
///
/// # Errors
///
/// The same as [`super::parse`].
pub fn to_webrtc(body: &[u8], local: &LocalParams<'_>) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len() + 512);
    let mid = local.mid.unwrap_or("0");
    let mut in_audio = false;
    let mut session_done = false;
    walk(text, |section, line, m| {
        if in_audio && section != Section::FirstAudio {
            in_audio = false;
            webrtc::write_media(&mut out, &with_mid(local, mid));
        }
        if let Some(m) = m {
            if !session_done {
                session_done = true;
                session_attributes(&mut out, mid);
            }
            if section == Section::FirstAudio {
                in_audio = true;
                let _ = write!(out, "m={} {} {WEBRTC_PROTO}{}\r\n", m.media, m.port, m.fmts);
                return;
            }
            out.push_str(line);
            out.push_str("\r\n");
            return;
        }
        if dropped(
            line,
            if section == Section::Other {
                &[]
            } else {
                &["rtcp"]
            },
        ) {
            return;
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    if in_audio {
        webrtc::write_media(&mut out, &with_mid(local, mid));
    }
    Ok(out.into_bytes())
}

fn with_mid<'a>(local: &LocalParams<'a>, mid: &'a str) -> LocalParams<'a> {
    LocalParams {
        mid: Some(mid),
        ..*local
    }
}

/// Our session-level lines: ICE-lite, and the audio stream as the one
/// bundle (a browser with `max-bundle` wants a group).
fn session_attributes(out: &mut String, mid: &str) {
    webrtc::write_session(out);
    let _ = write!(out, "a=group:BUNDLE {mid}\r\na=msid-semantic: WMS\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::webrtc::{Fingerprint, IceCreds, Setup};

    const BROWSER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\na=msid-semantic: WMS s\r\na=ice-options:trickle\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\na=ice-pacing:50\r\n\
        a=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:x\r\n\
        a=sendrecv\r\na=msid:s t\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\na=ssrc:1 cname:x\r\n\
        a=candidate:1 1 udp 1 192.168.1.9 5000 typ host\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=candidate:1 1 udp 1 192.168.1.9 5002 typ host\r\n";

    #[test]
    fn a_browsers_sdp_reaches_a_sip_leg_without_webrtc_attributes() {
        let plain = String::from_utf8(to_plain(BROWSER.as_bytes()).unwrap()).unwrap();
        assert!(plain.contains("m=audio 9 RTP/AVP 111 0\r\n"), "{plain}");
        assert!(plain.contains("a=rtpmap:111 opus/48000/2\r\n"), "{plain}");
        assert!(plain.contains("a=sendrecv\r\n"), "{plain}");
        for gone in [
            "a=ice-",
            "a=fingerprint",
            "a=setup",
            "a=mid",
            "a=group",
            "a=msid",
            "a=extmap",
            "a=rtcp-fb",
            "a=rtcp-mux",
            "a=ssrc",
            "a=candidate",
        ] {
            assert!(!plain.contains(gone), "{gone} in {plain}");
        }
    }

    #[test]
    fn a_sip_legs_sdp_reaches_a_browser_with_ours() {
        let plain = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0 101\r\na=rtcp:4001\r\na=rtpmap:0 PCMU/8000\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\na=sendrecv\r\n";
        let creds = IceCreds::new("wxyz", "0123456789abcdefghijkl").unwrap();
        let fp = Fingerprint::parse(&format!("sha-256 {}", ["AB"; 32].join(":"))).unwrap();
        let local = LocalParams {
            creds: &creds,
            fingerprint: &fp,
            setup: Setup::Passive,
            mid: Some("0"),
            candidate: "192.0.2.1:4000".parse().unwrap(),
        };
        let out = String::from_utf8(to_webrtc(plain.as_bytes(), &local).unwrap()).unwrap();
        assert!(
            out.contains("m=audio 4000 UDP/TLS/RTP/SAVPF 0 101\r\n"),
            "{out}"
        );
        for line in [
            "a=ice-lite\r\n",
            "a=group:BUNDLE 0\r\n",
            "a=ice-ufrag:wxyz\r\n",
            "a=setup:passive\r\n",
            "a=mid:0\r\n",
            "a=rtcp-mux\r\n",
            "typ host",
        ] {
            assert!(out.contains(line), "{line} not in {out}");
        }
        assert!(!out.contains("a=crypto"), "{out}");
        assert!(!out.contains("a=rtcp:"), "{out}");
        let back = crate::media::webrtc::parse_remote(&out).unwrap();
        assert_eq!(back.creds, creds);
        assert_eq!(back.setup, Setup::Passive);
    }
}
