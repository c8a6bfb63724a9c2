//! Which sides of a call carry SRTP (SDES keys, RFC 4568) and how: the
//! policy of a party ([`SrtpPolicy`]), what an SDP from a side leads to
//! ([`accept`]), and what we offer a side ([`offer_mode`]). Pure rules, in
//! one place; the keys themselves live in the relay's sessions.
//!
//! The rules:
//! - keys go only over TLS: an SDP with keys from a side that is not on a
//!   TLS connection is never used for SRTP, and we never offer keys to
//!   such a side; a side that insists on SRTP there (`RTP/SAVP`) is
//!   refused;
//! - `off`: plain RTP only (an `RTP/SAVP` offer is refused);
//! - `optional`: SRTP when the side offers usable keys, else plain; offers
//!   to it are "best effort" (`RTP/AVP` with `a=crypto`: a phone without
//!   SRTP still answers);
//! - `required`: SRTP or no call (offers to it are `RTP/SAVP`).

use serde::{Deserialize, Serialize};

use super::sdp::AudioStream;
use super::srtp::sdes;
use super::srtp::{MasterKey, Suite};

/// The suites we offer, in our order of preference: AEAD_AES_128_GCM
/// first (one pass over the packet, authenticated encryption; cheaper per
/// packet with AES-NI and carry-less multiply, see `benches/srtp.rs`),
/// then AES_CM_128_HMAC_SHA1_80, which every SDES phone has.
pub const OFFER_ORDER: [Suite; 2] = [Suite::AeadAes128Gcm, Suite::AesCm128HmacSha1_80];

/// Whether a party (an extension, a trunk) uses SRTP. The default (a
/// trunk's) is `off`; extensions have `[media] srtp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Plain RTP only.
    #[default]
    Off,
    /// SRTP when the party offers or accepts it over TLS.
    Optional,
    /// SRTP over TLS, or no call.
    Required,
}

impl SrtpPolicy {
    pub fn is_off(&self) -> bool {
        *self == SrtpPolicy::Off
    }
}

/// The SRTP policies of extensions (`[media] srtp`, `srtp_extensions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionSrtp {
    /// Every extension not named below.
    pub default: SrtpPolicy,
    /// By username.
    pub by_user: std::collections::HashMap<String, SrtpPolicy>,
}

impl ExtensionSrtp {
    /// The policy of extension `user`.
    pub fn of(&self, user: &str) -> SrtpPolicy {
        self.by_user.get(user).copied().unwrap_or(self.default)
    }
}

/// What an SDP from a side leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Plain RTP with this side.
    Plain,
    /// SRTP with this side: it sends with `key`, offered (or answered)
    /// under `tag`, in an `RTP/SAVP` profile (`savp`) or a plain one.
    Srtp {
        tag: u32,
        key: MasterKey,
        savp: bool,
    },
}

/// Why an SDP from a side cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The side asks for SRTP (`RTP/SAVP`, or its policy requires it) but
    /// is not on a TLS connection: keys would cross in clear.
    InsecureTransport,
    /// SRTP is off for the side, and it accepts nothing else.
    Off,
    /// The side offers no suite we support, and accepts nothing else.
    NoSuite,
    /// SRTP is required for the side, and it offers none.
    Required,
    /// The side is a browser (WebRTC) and DTLS-SRTP cannot be set up for
    /// it (no relay for the call, no certificate).
    NoWebRtc,
}

impl Refusal {
    /// The reason phrase of the 488 that refuses such an offer.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::InsecureTransport => "SRTP Needs TLS",
            Refusal::Off => "SRTP Not Allowed",
            Refusal::NoSuite => "No Supported SRTP Suite",
            Refusal::Required => "SRTP Required",
            Refusal::NoWebRtc => "WebRTC Not Available",
        }
    }
}

/// What the SDP `audio` from a side with `policy` leads to; `tls`: its
/// SIP comes over TLS. The first `a=crypto` with a suite we support and a
/// usable key is taken (the offerer lists its preference first).
pub fn accept(policy: SrtpPolicy, tls: bool, audio: &AudioStream) -> Result<Accept, Refusal> {
    let savp = audio.is_savp();
    if policy == SrtpPolicy::Off {
        return if savp {
            Err(Refusal::Off)
        } else {
            Ok(Accept::Plain)
        };
    }
    if !tls {
        return if savp || policy == SrtpPolicy::Required {
            Err(Refusal::InsecureTransport)
        } else {
            Ok(Accept::Plain)
        };
    }
    let usable = audio
        .crypto
        .iter()
        .filter_map(|v| sdes::parse(v))
        .find_map(|c| c.suite.and(c.key).map(|key| (c.tag, key)));
    match usable {
        Some((tag, key)) => Ok(Accept::Srtp { tag, key, savp }),
        None if savp => Err(Refusal::NoSuite),
        None if policy == SrtpPolicy::Required => Err(Refusal::Required),
        None => Ok(Accept::Plain),
    }
}

/// How we offer media to a side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferMode {
    Plain,
    /// `RTP/AVP` with keys: SRTP if the side answers with one.
    BestEffort,
    /// `RTP/SAVP` with keys.
    Savp,
}

/// How a side with `policy`, reached over TLS or not (`tls`), is offered
/// media; `Err` when it cannot be called at all (required, no TLS).
pub fn offer_mode(policy: SrtpPolicy, tls: bool) -> Result<OfferMode, Refusal> {
    match (policy, tls) {
        (SrtpPolicy::Off, _) => Ok(OfferMode::Plain),
        (SrtpPolicy::Optional, false) => Ok(OfferMode::Plain),
        (SrtpPolicy::Optional, true) => Ok(OfferMode::BestEffort),
        (SrtpPolicy::Required, false) => Err(Refusal::InsecureTransport),
        (SrtpPolicy::Required, true) => Ok(OfferMode::Savp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sdp;
    use crate::media::srtp::{MasterKey, Suite};

    fn audio(proto: &str, crypto: &[&str]) -> AudioStream {
        let mut body = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 {proto} 0\r\n"
        );
        for c in crypto {
            body.push_str(&format!("a=crypto:{c}\r\n"));
        }
        sdp::parse(body.as_bytes()).unwrap().audio.unwrap()
    }

    fn key_line(tag: u32, suite: Suite) -> String {
        sdes::format(tag, &MasterKey::random(suite, &mut |b| b.fill(7)))
    }

    #[test]
    fn keys_are_used_only_over_tls() {
        let line = key_line(1, Suite::AesCm128HmacSha1_80);
        let best_effort = audio("RTP/AVP", &[&line]);
        let savp = audio("RTP/SAVP", &[&line]);
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Required] {
            assert!(matches!(
                accept(policy, true, &savp),
                Ok(Accept::Srtp {
                    tag: 1,
                    savp: true,
                    ..
                })
            ));
            assert!(matches!(
                accept(policy, true, &best_effort),
                Ok(Accept::Srtp { savp: false, .. })
            ));
            assert_eq!(
                accept(policy, false, &savp),
                Err(Refusal::InsecureTransport)
            );
        }
        // Best effort over UDP: the keys crossed in clear; plain RTP.
        assert_eq!(
            accept(SrtpPolicy::Optional, false, &best_effort),
            Ok(Accept::Plain)
        );
        assert_eq!(
            accept(SrtpPolicy::Required, false, &best_effort),
            Err(Refusal::InsecureTransport)
        );
    }

    #[test]
    fn policy_off_and_required() {
        let line = key_line(3, Suite::AeadAes128Gcm);
        assert_eq!(
            accept(SrtpPolicy::Off, true, &audio("RTP/AVP", &[&line])),
            Ok(Accept::Plain)
        );
        assert_eq!(
            accept(SrtpPolicy::Off, true, &audio("RTP/SAVP", &[&line])),
            Err(Refusal::Off)
        );
        assert_eq!(
            accept(SrtpPolicy::Required, true, &audio("RTP/AVP", &[])),
            Err(Refusal::Required)
        );
        assert_eq!(
            accept(SrtpPolicy::Optional, true, &audio("RTP/AVP", &[])),
            Ok(Accept::Plain)
        );
    }

    #[test]
    fn the_first_supported_suite_is_taken() {
        let unknown =
            "1 AES_256_CM_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20";
        let gcm = key_line(2, Suite::AeadAes128Gcm);
        let cm = key_line(3, Suite::AesCm128HmacSha1_80);
        match accept(
            SrtpPolicy::Optional,
            true,
            &audio("RTP/SAVP", &[unknown, "garbage", &gcm, &cm]),
        ) {
            Ok(Accept::Srtp { tag, key, .. }) => {
                assert_eq!(tag, 2);
                assert_eq!(key.suite(), Suite::AeadAes128Gcm);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            accept(SrtpPolicy::Optional, true, &audio("RTP/SAVP", &[unknown])),
            Err(Refusal::NoSuite)
        );
    }

    #[test]
    fn offers() {
        assert_eq!(
            offer_mode(SrtpPolicy::Optional, true),
            Ok(OfferMode::BestEffort)
        );
        assert_eq!(
            offer_mode(SrtpPolicy::Optional, false),
            Ok(OfferMode::Plain)
        );
        assert_eq!(offer_mode(SrtpPolicy::Required, true), Ok(OfferMode::Savp));
        assert_eq!(
            offer_mode(SrtpPolicy::Required, false),
            Err(Refusal::InsecureTransport)
        );
        assert_eq!(offer_mode(SrtpPolicy::Off, true), Ok(OfferMode::Plain));
    }
}
