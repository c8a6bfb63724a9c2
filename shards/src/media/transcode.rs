//! Audio transcoding of one direction of one RTP stream, sans IO: Opus <->
//! G.711 (PCMU, PCMA) and PCMU <-> PCMA. A [`Transcoder`] owns the codec
//! state of that direction (an Opus decoder or encoder, or a G.711
//! translation table), a reused PCM buffer and the timestamp mapping; it
//! rewrites each packet in the caller's buffer. It owns no socket, no timer
//! and no SRTP context: the relay unprotects before and protects after.
//!
//! - Opus in: decoded by libopus straight at 8 kHz mono (libopus resamples),
//!   one G.711 packet out per Opus packet in (20 ms -> 160 bytes).
//! - G.711 in: 80/160/320/480-sample frames (10/20/40/60 ms) encoded by an
//!   8 kHz mono VoIP Opus encoder at [`OPUS_BITRATE`]; other lengths are
//!   dropped. Opus's RTP clock stays 48 kHz (RFC 7587).
//! - Timestamps: the first packet of an SSRC keeps its timestamp; later ones
//!   map as `first + (ts - first) * to_clock / from_clock`, with wrapping
//!   (32-bit) arithmetic, exactly over any stream length, reordering
//!   included. Sequence number, SSRC, marker, CSRCs and header extension are
//!   kept; the payload type is replaced and padding removed.
//! - Packets of another payload type (DTMF, CN...) are not rewritten: the
//!   relay decides what to do with them. No packet-loss concealment: a gap
//!   stays a gap for the receiver's jitter buffer to conceal.
//!
//! State is bounded (one codec state, 960 PCM samples, a few counters) and
//! the steady state does not allocate.

use std::fmt;

use opus::{Application, Bitrate, Channels};

use super::rtp::{parse_rtp, set_timestamp};
use crate::recording::{Codec, Decoder};

/// Bitrate of the Opus encoder (G.711 -> Opus), bit/s.
pub const OPUS_BITRATE: i32 = 24_000;
/// Complexity of the Opus encoder (0..=10; libopus defaults to 9).
pub const OPUS_COMPLEXITY: i32 = 5;
/// Largest Opus payload written (the RFC 6716 limit for one frame).
pub const MAX_OPUS_PAYLOAD: usize = 1275;
/// Samples of the longest Opus packet (120 ms) at 8 kHz: the largest G.711
/// payload written.
pub const MAX_G711_PAYLOAD: usize = 960;
/// G.711 frame lengths (samples) Opus can encode: 10, 20, 40 and 60 ms.
pub const G711_FRAMES: [usize; 4] = [80, 160, 320, 480];

/// Why a [`Transcoder`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscodeError {
    /// No transcoding between these codecs (Opus to Opus, G.722...).
    Unsupported { from: Codec, to: Codec },
    /// A G.711 RTP clock other than 8000 Hz.
    Clock { codec: Codec, clock: u32 },
    /// A payload type above 127.
    PayloadType(u8),
    /// libopus refused to create or configure a codec.
    Init(String),
}

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscodeError::Unsupported { from, to } => {
                write!(f, "no transcoding from {from} to {to}")
            }
            TranscodeError::Clock { codec, clock } => {
                write!(f, "unsupported RTP clock {clock} Hz for {codec}")
            }
            TranscodeError::PayloadType(pt) => write!(f, "invalid payload type {pt}"),
            TranscodeError::Init(reason) => write!(f, "cannot create Opus codec: {reason}"),
        }
    }
}

impl std::error::Error for TranscodeError {}

// ---------------------------------------------------------------- G.711 --

/// ITU-T G.711 µ-law compression of one linear sample.
fn ulaw_encode(x: i16) -> u8 {
    let x = i32::from(x);
    let sign = if x < 0 { 0x80 } else { 0 };
    // At least 0x84, at most 0x7fff: the top bit is bit 7..=14.
    let v = x.abs().min(32635) + 0x84;
    let exp = (31 - v.leading_zeros() as i32 - 7).clamp(0, 7);
    let mant = (v >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mant) as u8
}

/// ITU-T G.711 A-law compression of one linear sample.
fn alaw_encode(x: i16) -> u8 {
    let mut v = i32::from(x) >> 3;
    let mask = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    // 0..=4095: segment 0 up to 0x1f, then one per bit.
    let seg = (32 - v.leading_zeros() as i32 - 5).clamp(0, 7);
    let mant = (if seg < 2 { v >> 1 } else { v >> seg }) & 0x0f;
    (((seg << 4) | mant) ^ mask) as u8
}

/// The G.711 law written for `codec` (Opus and G.722 have none).
fn law(codec: Codec) -> Option<fn(i16) -> u8> {
    match codec {
        Codec::Pcmu => Some(ulaw_encode),
        Codec::Pcma => Some(alaw_encode),
        Codec::Opus | Codec::G722 => None,
    }
}

// ----------------------------------------------------------- Timestamps --

/// Maps input timestamps to output timestamps, `out = base + (in - base) *
/// num / den` (floor), over the unwrapped input timeline: the input offset
/// since `out_base` is kept below `den` by moving `out_base` in whole steps
/// of `num`, so nothing overflows however long the stream runs.
#[derive(Debug, Clone)]
struct TsMap {
    num: i64,
    den: i64,
    state: Option<TsState>,
}

#[derive(Debug, Clone, Copy)]
struct TsState {
    ssrc: u32,
    last_in: u32,
    /// Input ticks since `out_base`, in `0..den`.
    ext: i64,
    out_base: u32,
}

impl TsMap {
    fn new(from_clock: u32, to_clock: u32) -> TsMap {
        let (mut a, mut b) = (from_clock, to_clock);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let g = a.max(1);
        TsMap {
            num: i64::from(to_clock / g),
            den: i64::from(from_clock / g).max(1),
            state: None,
        }
    }

    /// The output timestamp of input timestamp `ts` of stream `ssrc`; a new
    /// SSRC starts a new mapping at its first timestamp.
    fn map(&mut self, ssrc: u32, ts: u32) -> u32 {
        let st = match &mut self.state {
            Some(st) if st.ssrc == ssrc => st,
            other => other.insert(TsState {
                ssrc,
                last_in: ts,
                ext: 0,
                out_base: ts,
            }),
        };
        // The signed step since the previous packet: reordering goes back.
        st.ext += i64::from(ts.wrapping_sub(st.last_in) as i32);
        st.last_in = ts;
        let q = st.ext.div_euclid(self.den);
        st.ext -= q * self.den;
        // Truncation to 32 bits is the wrapping of RTP timestamps.
        st.out_base = st.out_base.wrapping_add((q * self.num) as u32);
        st.out_base
            .wrapping_add((st.ext * self.num / self.den) as u32)
    }
}

// ----------------------------------------------------------- Transcoder --

/// The codec work of one direction.
enum Path {
    /// Opus in, G.711 out.
    FromOpus { dec: Decoder, law: fn(i16) -> u8 },
    /// G.711 in, Opus out.
    ToOpus {
        dec: Decoder,
        enc: Box<opus::Encoder>,
    },
    /// G.711 to G.711: one table lookup a byte.
    Table(Box<[u8; 256]>),
}

/// Transcoder of one direction of one RTP audio stream (see the module
/// documentation).
pub struct Transcoder {
    from: Codec,
    to: Codec,
    from_pt: u8,
    to_pt: u8,
    path: Path,
    /// Decoded samples of the packet in hand (capacity [`MAX_G711_PAYLOAD`]).
    pcm: Vec<i16>,
    ts: TsMap,
    dropped: u64,
}

impl fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcoder")
            .field("from", &(self.from, self.from_pt))
            .field("to", &(self.to, self.to_pt))
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

fn decoder(codec: Codec) -> Result<Decoder, TranscodeError> {
    Decoder::new(codec).map_err(|e| TranscodeError::Init(e.to_string()))
}

/// The RTP clock of `codec` signalled as `clock`: 48 kHz for Opus whatever
/// was signalled, 8 kHz (or 0, taken as 8 kHz) for G.711.
fn clock(codec: Codec, signalled: u32) -> Result<u32, TranscodeError> {
    match codec.rtp_clock(signalled) {
        c @ (8_000 | 48_000) => Ok(c),
        _ => Err(TranscodeError::Clock {
            codec,
            clock: signalled,
        }),
    }
}

fn opus_encoder() -> Result<opus::Encoder, opus::Error> {
    let mut enc = opus::Encoder::new(8_000, Channels::Mono, Application::Voip)?;
    enc.set_bitrate(Bitrate::Bits(OPUS_BITRATE))?;
    enc.set_complexity(OPUS_COMPLEXITY)?;
    Ok(enc)
}

impl Transcoder {
    /// Packets of `from` (codec, payload type, RTP clock as signalled) become
    /// packets of `to`. Opus <-> PCMU/PCMA and between PCMU and PCMA (either
    /// way, or to itself with another payload type).
    pub fn new(from: (Codec, u8, u32), to: (Codec, u8, u32)) -> Result<Transcoder, TranscodeError> {
        let unsupported = TranscodeError::Unsupported {
            from: from.0,
            to: to.0,
        };
        for pt in [from.1, to.1] {
            if pt > 127 {
                return Err(TranscodeError::PayloadType(pt));
            }
        }
        let from_clock = clock(from.0, from.2)?;
        let to_clock = clock(to.0, to.2)?;
        let path = match (from.0, law(from.0), law(to.0)) {
            (Codec::Opus, _, Some(law)) => Path::FromOpus {
                dec: decoder(Codec::Opus)?,
                law,
            },
            (_, Some(_), None) if to.0 == Codec::Opus => Path::ToOpus {
                dec: decoder(from.0)?,
                enc: Box::new(opus_encoder().map_err(|e| TranscodeError::Init(e.to_string()))?),
            },
            (_, Some(_), Some(law)) => {
                let mut dec = decoder(from.0)?;
                let codes: [u8; 256] = std::array::from_fn(|i| i as u8);
                let mut pcm = Vec::with_capacity(256);
                dec.decode(&codes, &mut pcm);
                let mut table = Box::new(codes);
                if from.0 != to.0 {
                    for (t, &s) in table.iter_mut().zip(&pcm) {
                        *t = law(s);
                    }
                }
                Path::Table(table)
            }
            _ => return Err(unsupported),
        };
        Ok(Transcoder {
            from: from.0,
            to: to.0,
            from_pt: from.1,
            to_pt: to.1,
            path,
            pcm: Vec::with_capacity(MAX_G711_PAYLOAD),
            ts: TsMap::new(from_clock, to_clock),
            dropped: 0,
        })
    }

    /// Rewrites the RTP packet `buf[..len]` in place: its payload decoded and
    /// encoded again, payload type and timestamp mapped, padding removed,
    /// CSRCs and header extension kept. The payload may grow into `buf`
    /// beyond `len` (up to [`MAX_G711_PAYLOAD`] or [`MAX_OPUS_PAYLOAD`]
    /// bytes; 1500 bytes in all is enough). Returns the new length, or
    /// `None` (counted in [`Transcoder::dropped`], `buf` possibly changed)
    /// for a packet that is not RTP of the `from` payload type or cannot be
    /// transcoded: empty or undecodable Opus, a G.711 frame length Opus
    /// cannot encode, no room in `buf`.
    pub fn transcode(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let out = self.rewrite(buf, len);
        if out.is_none() {
            self.dropped += 1;
        }
        out
    }

    /// Packets [`Transcoder::transcode`] returned `None` for.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The input and output codecs.
    pub fn codecs(&self) -> (Codec, Codec) {
        (self.from, self.to)
    }

    fn rewrite(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let h = parse_rtp(buf.get(..len)?)?;
        if h.payload_type != self.from_pt || h.payload_len == 0 {
            return None;
        }
        let off = h.payload_offset;
        let (head, rest) = buf.split_at_mut_checked(off)?;
        let n = match &mut self.path {
            Path::Table(table) => {
                for b in rest.get_mut(..h.payload_len)? {
                    *b = table[usize::from(*b)];
                }
                h.payload_len
            }
            Path::FromOpus { dec, law } => {
                let payload = rest.get(..h.payload_len)?;
                // At most 60 ms of audio a packet, what senders send: a
                // few bytes of empty frames saying 120 ms would come out
                // as 960 bytes of G.711 (amplification), so more is
                // dropped before it is decoded.
                match opus::packet::get_nb_samples(payload, 48_000) {
                    Ok(n) if n <= MAX_OPUS_SAMPLES_48K => {}
                    _ => return None,
                }
                self.pcm.clear();
                let errors = dec.errors();
                dec.decode(payload, &mut self.pcm);
                if dec.errors() != errors || self.pcm.is_empty() {
                    return None;
                }
                let out = rest.get_mut(..self.pcm.len())?;
                for (o, &s) in out.iter_mut().zip(&self.pcm) {
                    *o = law(s);
                }
                self.pcm.len()
            }
            Path::ToOpus { dec, enc } => {
                if !G711_FRAMES.contains(&h.payload_len) {
                    return None;
                }
                self.pcm.clear();
                dec.decode(rest.get(..h.payload_len)?, &mut self.pcm);
                let cap = rest.len().min(MAX_OPUS_PAYLOAD);
                match enc.encode(&self.pcm, &mut rest[..cap]) {
                    Ok(n) if n > 0 && n <= cap => n,
                    Ok(_) | Err(_) => return None,
                }
            }
        };
        // Clear P (the padding is gone), keep V, X and CC; keep M.
        head[0] &= !0x20;
        head[1] = (head[1] & 0x80) | self.to_pt;
        set_timestamp(head, self.ts.map(h.ssrc, h.timestamp));
        Some(off + n)
    }
}

/// The most audio one Opus packet may carry, in 48 kHz samples (60 ms).
const MAX_OPUS_SAMPLES_48K: usize = 2880;

/// How many packets a second one direction of a transcoded stream may
/// have transcoded (100: 10 ms packets), with a burst of [`BURST`]; a
/// sender beyond that (forcing an encode or decode per packet) has the
/// rest dropped.
pub const PACKETS_PER_SEC: u64 = 100;
const BURST: u64 = 50;

/// A token bucket of transcoded packets, in thousandths of a packet.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    tokens: u64,
    last_ms: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            tokens: BURST * 1000,
            last_ms: None,
        }
    }
}

impl Budget {
    /// Takes one packet's worth at `now_ms`; false when the sender is
    /// over its rate.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = self.last_ms.map_or(0, |last| now_ms.saturating_sub(last));
        self.last_ms = Some(now_ms);
        self.tokens = (self.tokens + elapsed * PACKETS_PER_SEC).min(BURST * 1000);
        if self.tokens >= 1000 {
            self.tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;
