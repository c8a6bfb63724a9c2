//! The codec list of the first audio stream of an SDP body, for calls the
//! relay transcodes: [`add_codecs`] offers more (what we can transcode
//! to), [`set_codecs`] answers with other ones (the caller's, when the
//! callee chose one the caller did not offer). Everything else is kept.

use std::fmt::Write as _;

use super::{attribute, sdp_text, walk, SdpError, Section};

/// One codec as `a=rtpmap` names it: payload type, encoding name, clock
/// rate, channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecLine {
    pub pt: u8,
    pub name: String,
    pub clock: u32,
    pub channels: u8,
}

impl CodecLine {
    fn rtpmap(&self) -> String {
        if self.channels > 1 {
            format!(
                "a=rtpmap:{} {}/{}/{}\r\n",
                self.pt, self.name, self.clock, self.channels
            )
        } else {
            format!("a=rtpmap:{} {}/{}\r\n", self.pt, self.name, self.clock)
        }
    }
}

/// `body` with `extra` codecs after those of its first audio stream (a
/// payload type already there is not added twice).
///
/// # Errors
///
/// The same as [`super::parse`].
pub fn add_codecs(body: &[u8], extra: &[CodecLine]) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_audio = false;
    let mut added: Vec<&CodecLine> = Vec::new();
    walk(text, |section, line, m| {
        if in_audio && section != Section::FirstAudio {
            in_audio = false;
            for c in &added {
                out.push_str(&c.rtpmap());
            }
        }
        if let Some(m) = m {
            if section == Section::FirstAudio {
                in_audio = true;
                let have: Vec<&str> = m.fmts.split_whitespace().collect();
                added = extra
                    .iter()
                    .filter(|c| !have.contains(&c.pt.to_string().as_str()))
                    .collect();
                let _ = write!(out, "m={} {} {}{}", m.media, m.port, m.proto, m.fmts);
                for c in &added {
                    let _ = write!(out, " {}", c.pt);
                }
                out.push_str("\r\n");
                return;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    if in_audio {
        for c in &added {
            out.push_str(&c.rtpmap());
        }
    }
    Ok(out.into_bytes())
}

/// `body` whose first audio stream carries exactly `codecs` (its other
/// `a=rtpmap` and `a=fmtp` lines dropped, `fmtp` lines given per payload
/// type kept or added).
///
/// # Errors
///
/// The same as [`super::parse`].
pub fn set_codecs(
    body: &[u8],
    codecs: &[CodecLine],
    fmtp: &[(u8, String)],
) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_audio = false;
    let end = |out: &mut String| {
        for c in codecs {
            out.push_str(&c.rtpmap());
            for (pt, v) in fmtp.iter().filter(|(pt, _)| *pt == c.pt) {
                let _ = write!(out, "a=fmtp:{pt} {v}\r\n");
            }
        }
    };
    walk(text, |section, line, m| {
        if in_audio && section != Section::FirstAudio {
            in_audio = false;
            end(&mut out);
        }
        if let Some(m) = m {
            if section == Section::FirstAudio {
                in_audio = true;
                let _ = write!(out, "m={} {} {}", m.media, m.port, m.proto);
                for c in codecs {
                    let _ = write!(out, " {}", c.pt);
                }
                out.push_str("\r\n");
                return;
            }
        } else if section == Section::FirstAudio
            && attribute(line).is_some_and(|(n, _)| {
                n.eq_ignore_ascii_case("rtpmap") || n.eq_ignore_ascii_case("fmtp")
            })
        {
            return;
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    if in_audio {
        end(&mut out);
    }
    Ok(out.into_bytes())
}
