//! Zero-copy RTP/RTCP packet views (RFC 3550): RTP/RTCP demultiplexing on a
//! muxed port (RFC 5761 section 4), RTP fixed-header parsing (CSRCs, header
//! extension and padding skipped), and the in-place header rewriting helpers
//! the relay uses when it renumbers a stream. Nothing here allocates.

/// Length of the RTP fixed header (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// RFC 5761 section 4 demultiplexing of a packet received on an RTP/RTCP
/// muxed port: version 2 and a second byte whose low 7 bits are in 64..=95
/// (RTCP packet types 192..=223, which RTP payload types must not use on a
/// muxed port). Packets shorter than 2 bytes are not RTCP.
///
/// A `true` answer says nothing about the validity of the RTCP packet.
#[inline]
pub fn is_rtcp(packet: &[u8]) -> bool {
    match packet {
        [b0, b1, ..] => b0 >> 6 == 2 && matches!(b1 & 0x7f, 64..=95),
        _ => false,
    }
}

/// Whether `packet` is well-formed (compound) RTCP (RFC 3550 6.1): one or
/// more packets, each version 2 with a type in 192..=223 and a length that
/// fits, which together fill the datagram exactly.
pub fn is_valid_rtcp(packet: &[u8]) -> bool {
    let mut rest = packet;
    if rest.len() < 4 {
        return false;
    }
    while !rest.is_empty() {
        let [b0, b1, l0, l1, ..] = *rest else {
            return false;
        };
        if b0 >> 6 != 2 || !matches!(b1, 192..=223) {
            return false;
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let Some(next) = rest.get(len..) else {
            return false;
        };
        rest = next;
    }
    true
}

/// The fields of an RTP header the relay uses, plus where the payload lies
/// in the packet (`packet[payload_offset..payload_offset + payload_len]`,
/// always in bounds for the packet the header was parsed from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Offset of the payload: after the fixed header, the CSRCs and the
    /// header extension.
    pub payload_offset: usize,
    /// Payload length, padding excluded.
    pub payload_len: usize,
}

/// Parses the RTP header of `packet`. `None` unless the version is 2, the
/// fixed header, the CSRC list and the header extension (X bit: 4-byte
/// header, then `length` 32-bit words) fit in the packet, and, with the P bit
/// set, the padding count in the last byte is non-zero (it counts itself) and
/// no larger than what follows the headers.
///
/// Does not reject RTCP: demultiplex with [`is_rtcp`] first on a muxed port.
#[inline]
pub fn parse_rtp(packet: &[u8]) -> Option<RtpHeader> {
    let [b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3, ..] = *packet else {
        return None;
    };
    if b0 >> 6 != 2 {
        return None;
    }
    let mut offset = RTP_HEADER_LEN + usize::from(b0 & 0x0f) * 4;
    if b0 & 0x10 != 0 {
        let ext = packet.get(offset..offset + 4)?;
        offset += 4 + usize::from(u16::from_be_bytes([ext[2], ext[3]])) * 4;
    }
    let mut rest = packet.len().checked_sub(offset)?;
    if b0 & 0x20 != 0 {
        // packet.len() >= 12 here, so the last byte exists.
        let pad = usize::from(packet[packet.len() - 1]);
        if pad == 0 || pad > rest {
            return None;
        }
        rest -= pad;
    }
    Some(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
        payload_offset: offset,
        payload_len: rest,
    })
}

/// Writes the sequence number. No-op on packets shorter than 12 bytes.
#[inline]
pub fn set_seq(packet: &mut [u8], seq: u16) {
    if let Some(h) = packet.get_mut(..RTP_HEADER_LEN) {
        h[2..4].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Writes the timestamp. No-op on packets shorter than 12 bytes.
#[inline]
pub fn set_timestamp(packet: &mut [u8], ts: u32) {
    if let Some(h) = packet.get_mut(..RTP_HEADER_LEN) {
        h[4..8].copy_from_slice(&ts.to_be_bytes());
    }
}

/// Sets or clears the marker bit, keeping the payload type. No-op on packets
/// shorter than 12 bytes.
#[inline]
pub fn set_marker(packet: &mut [u8], marker: bool) {
    if let Some(h) = packet.get_mut(..RTP_HEADER_LEN) {
        h[1] = (h[1] & 0x7f) | (u8::from(marker) << 7);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 header with the given first byte flags (P, X, CC) and
    /// payload type, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304.
    fn header(flags: u8, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80 | flags, pt, 0x12, 0x34];
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        p
    }

    #[test]
    fn minimal_header_with_payload() {
        let mut p = header(0, 0x80 | 8);
        p.extend_from_slice(&[1, 2, 3, 4, 5]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 8,
                seq: 0x1234,
                timestamp: 0xdead_beef,
                ssrc: 0x0102_0304,
                payload_offset: 12,
                payload_len: 5,
            }
        );
        assert_eq!(
            &p[h.payload_offset..h.payload_offset + h.payload_len],
            &[1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn header_only_is_empty_payload() {
        let h = parse_rtp(&header(0, 0)).unwrap();
        assert!(!h.marker);
        assert_eq!((h.payload_offset, h.payload_len), (12, 0));
    }

    #[test]
    fn csrc_count_two() {
        let mut p = header(2, 0);
        p.extend_from_slice(&[0xaa; 8]);
        p.extend_from_slice(&[9, 9, 9]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (20, 3));
        // CSRCs announced but missing
        let mut short = header(2, 0);
        short.extend_from_slice(&[0xaa; 7]);
        assert_eq!(parse_rtp(&short), None);
    }

    #[test]
    fn extension_header() {
        let mut p = header(0x10 | 1, 0);
        p.extend_from_slice(&[0xcc; 4]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02]); // profile, 2 words
        p.extend_from_slice(&[0x11; 8]);
        p.extend_from_slice(&[7; 10]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (12 + 4 + 4 + 8, 10));
        // extension longer than the packet
        let mut bad = header(0x10, 0);
        bad.extend_from_slice(&[0xbe, 0xde, 0x00, 0x03]);
        bad.extend_from_slice(&[0x11; 8]);
        assert_eq!(parse_rtp(&bad), None);
        // X bit set but no room for the extension header
        let mut bad = header(0x10, 0);
        bad.extend_from_slice(&[0xbe, 0xde]);
        assert_eq!(parse_rtp(&bad), None);
    }

    #[test]
    fn padding() {
        let mut p = header(0x20, 0);
        p.extend_from_slice(&[5; 6]);
        p.extend_from_slice(&[0, 0, 3]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (12, 6));
        // padding that is the whole payload
        let mut p = header(0x20, 0);
        p.extend_from_slice(&[0, 0, 0, 4]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload_len, 0);
        // a zero padding count is inconsistent (the count includes itself)
        let mut p = header(0x20, 0);
        p.extend_from_slice(&[1, 0]);
        assert_eq!(parse_rtp(&p), None);
    }

    #[test]
    fn padding_longer_than_payload() {
        let mut p = header(0x20, 0);
        p.extend_from_slice(&[1, 2, 5]);
        assert_eq!(parse_rtp(&p), None);
        // P bit on a header-only packet: the count would be a header byte
        assert_eq!(parse_rtp(&header(0x20, 0)), None);
    }

    #[test]
    fn wrong_version() {
        let mut p = header(0, 0);
        p[0] = 0x40; // version 1
        assert_eq!(parse_rtp(&p), None);
        p[0] = 0x00;
        assert_eq!(parse_rtp(&p), None);
    }

    #[test]
    fn truncated() {
        let p = header(0, 0);
        for n in 0..12 {
            assert_eq!(parse_rtp(&p[..n]), None, "len {n}");
        }
    }

    #[test]
    fn rtcp_demux() {
        // RTCP SR: V=2, RC=0, PT=200, length 6
        let sr = [0x80, 200, 0x00, 0x06, 1, 2, 3, 4];
        assert!(is_rtcp(&sr));
        assert!(is_rtcp(&[0x81, 201, 0, 7])); // RR with one block
        assert!(is_rtcp(&[0x80, 192]));
        assert!(is_rtcp(&[0x80, 223]));
        let pt = |b1: u8| {
            let mut p = header(0, b1);
            p.extend_from_slice(&[0; 20]);
            p
        };
        assert!(!is_rtcp(&pt(0)));
        assert!(!is_rtcp(&pt(96)));
        assert!(!is_rtcp(&pt(0x80 | 96))); // marker set
        assert!(!is_rtcp(&pt(127)));
        assert!(!is_rtcp(&pt(0x80 | 127)));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x40, 200])); // version 1
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn rewrite_round_trip() {
        let mut p = header(0, 0x80 | 18);
        p.extend_from_slice(&[1, 2, 3]);
        set_seq(&mut p, 0xfffe);
        set_timestamp(&mut p, 0x0001_0203);
        set_marker(&mut p, false);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            (h.seq, h.timestamp, h.marker, h.payload_type),
            (0xfffe, 0x0001_0203, false, 18)
        );
        assert_eq!(h.ssrc, 0x0102_0304);
        assert_eq!(&p[12..], &[1, 2, 3]);
        set_marker(&mut p, true);
        let h = parse_rtp(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 18);
        set_marker(&mut p, true);
        assert!(parse_rtp(&p).unwrap().marker);
    }

    #[test]
    fn rewrite_short_packet_is_noop() {
        let mut p = [0x80u8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let before = p;
        set_seq(&mut p, 7);
        set_timestamp(&mut p, 7);
        set_marker(&mut p, true);
        assert_eq!(p, before);
        set_seq(&mut [], 1);
    }
}
