//! SDP between a browser's leg (WebRTC: `UDP/TLS/RTP/SAVPF`, ICE, DTLS,
//! rtcp-mux, BUNDLE) and a SIP leg (plain RTP, or SDES-SRTP), for a body
//! already [`rewrite`](super::rewrite)n to the relay: [`is_webrtc`] tells
//! them apart, [`to_plain`] takes the WebRTC attributes out of what goes
//! to a SIP leg, [`to_webrtc`] puts ours into what goes to a browser.
//! Codecs, directions and everything else are kept, in order.

use std::fmt::Write as _;

use super::{attribute, sdp_text, walk, SdpError, Section};
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
        WEBRTC_ATTRIBUTES
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
