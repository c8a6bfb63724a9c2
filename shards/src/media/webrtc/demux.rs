//! Which protocol a datagram on a WebRTC media port belongs to: STUN, DTLS,
//! RTP or RTCP share one port (RFC 7983 first-byte ranges, RTP and RTCP
//! told apart as RFC 5761 does for rtcp-mux).

/// The protocol of a datagram, as [`classify`] tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// STUN (first byte 0..=3): ICE connectivity checks.
    Stun,
    /// DTLS (first byte 20..=63): the DTLS-SRTP handshake.
    Dtls,
    /// RTP (first byte 128..=191, second byte not an RTCP packet type).
    Rtp,
    /// RTCP (first byte 128..=191, second byte 192..=223).
    Rtcp,
    /// Anything else: empty, ZRTP (16..=19), TURN channel data (64..=79),
    /// an RTP-range byte with nothing after it, or unassigned ranges.
    Other,
}

/// Classifies `buf` by its first byte (RFC 7983 section 7); an RTP-range
/// datagram is RTCP when its second byte, the RTCP packet type, is in
/// 192..=223 (RFC 5761 section 4: RTP payload types 64..=95, which would
/// read as those with the marker bit set, are not used with rtcp-mux).
pub fn classify(buf: &[u8]) -> Kind {
    match buf {
        [0..=3, ..] => Kind::Stun,
        [20..=63, ..] => Kind::Dtls,
        [128..=191, 192..=223, ..] => Kind::Rtcp,
        [128..=191, _, ..] => Kind::Rtp,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, Kind};

    #[test]
    fn first_byte_ranges() {
        assert_eq!(classify(&[]), Kind::Other);
        for b in 0..=255u8 {
            let want = match b {
                0..=3 => Kind::Stun,
                20..=63 => Kind::Dtls,
                128..=191 => Kind::Rtp,
                _ => Kind::Other,
            };
            assert_eq!(classify(&[b, 0, 0, 0]), want, "first byte {b}");
        }
    }

    #[test]
    fn rtp_and_rtcp_by_second_byte() {
        assert_eq!(classify(&[0x80, 0]), Kind::Rtp);
        assert_eq!(classify(&[0x80, 111]), Kind::Rtp);
        // Opus PT 111 with the marker bit: 239, still RTP.
        assert_eq!(classify(&[0x80, 0x80 | 111]), Kind::Rtp);
        assert_eq!(classify(&[0x80, 191]), Kind::Rtp);
        for pt in 192..=223u8 {
            assert_eq!(classify(&[0x81, pt, 0, 7]), Kind::Rtcp, "type {pt}");
        }
        assert_eq!(classify(&[0x80, 224]), Kind::Rtp);
        // One RTP-range byte alone is nothing we know.
        assert_eq!(classify(&[0x80]), Kind::Other);
    }
}
