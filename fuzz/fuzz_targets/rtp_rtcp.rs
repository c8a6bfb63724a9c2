//! RTP/RTCP: the input is a stream of datagrams (`len`, `flags`, bytes). Each
//! goes through the muxed-port demultiplexer (`is_rtcp`) and the RTP header
//! parser (payload always in bounds, header rewrites read back), and the RTP
//! ones feed the receive statistics and the relay's sequence renumbering as a
//! relay would (never a panic or an overflow, finite jitter).

use shards::media::rtp::{is_rtcp, parse_rtp, set_marker, set_seq, set_timestamp};
use shards::media::stats::{Renumber, StreamStats};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn run(mut data: &[u8]) {
    let mut stats = StreamStats::default();
    let mut renumber = Renumber::new();
    let mut now_ms: u64 = 1_000;
    while let [len, flags, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (packet, tail) = rest.split_at(n);
        data = tail;
        now_ms += u64::from(flags & 0x3f) * 5;
        let mut packet = packet.to_vec();
        let rtcp = is_rtcp(&packet);
        let Some(h) = parse_rtp(&packet) else {
            continue;
        };
        assert!(h.payload_offset + h.payload_len <= packet.len(), "{h:?}");
        assert!(h.payload_offset >= 12);
        if rtcp {
            continue;
        }
        // Header rewrites read back and touch nothing else.
        let (seq, ts) = (h.seq ^ 0x5a5a, h.timestamp.wrapping_add(160));
        set_seq(&mut packet, seq);
        set_timestamp(&mut packet, ts);
        set_marker(&mut packet, !h.marker);
        let g = parse_rtp(&packet).expect("rewritten header still parses");
        assert_eq!((g.seq, g.timestamp, g.marker), (seq, ts, !h.marker));
        assert_eq!(
            (g.ssrc, g.payload_type, g.payload_offset, g.payload_len),
            (h.ssrc, h.payload_type, h.payload_offset, h.payload_len)
        );
        let clock = match flags >> 6 {
            0 => 8000,
            1 => 48000,
            2 => 16000,
            _ => 0,
        };
        stats.on_packet(&h, now_ms, clock, packet.len());
        if flags & 0x20 != 0 && !renumber.is_stale(h.seq) {
            renumber.drop_packet(h.seq);
        } else {
            let _ = renumber.forward(h.seq);
        }
    }
    let s = stats.summary();
    assert!(s.jitter_ms.is_finite() && s.jitter_ms >= 0.0, "{s:?}");
    let _ = (stats.extended_max_seq(), stats.jitter_rtcp());
}
