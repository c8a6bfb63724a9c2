//! Payload decoders for recording: G.711 µ-law/A-law (256-entry tables),
//! Opus (libopus at 8 kHz with packet-loss concealment) and the G.722 lower
//! sub-band (8 kHz output). Everything decodes to 8 kHz mono `i16`.

use super::RecordingError;

/// Output sample rate of every decoder, in Hz.
pub(super) const SAMPLE_RATE: u32 = 8000;

/// Largest Opus packet: 120 ms at 8 kHz.
const OPUS_MAX_FRAME: usize = 960;
/// Default frame for concealment before any packet told us better: 20 ms.
const DEFAULT_FRAME: usize = 160;

/// A payload format the recorder can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
    G722,
}

impl Codec {
    /// Maps an SDP encoding name (case-insensitive) to a codec.
    pub fn from_name(name: &str) -> Option<Codec> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("opus") {
            Some(Codec::Opus)
        } else if name.eq_ignore_ascii_case("G722") {
            Some(Codec::G722)
        } else {
            None
        }
    }

    /// The RTP timestamp rate the codec really uses, whatever the SDP says
    /// (Opus is always 48 kHz, G.722 always 8 kHz per RFC 3551/7587).
    pub(crate) fn rtp_clock(self, signalled: u32) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::G722 => 8_000,
            Codec::Pcmu | Codec::Pcma if signalled == 0 => 8_000,
            Codec::Pcmu | Codec::Pcma => signalled,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
            Codec::G722 => "G722",
        })
    }
}

// ---------------------------------------------------------------- G.711 --

/// ITU-T G.711 µ-law expansion of one code word.
const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0F) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// ITU-T G.711 A-law expansion of one code word.
const fn alaw_expand(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    table
}

/// µ-law code word → linear sample.
pub(crate) static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law code word → linear sample.
pub(crate) static ALAW_TABLE: [i16; 256] = build_table(true);

// ---------------------------------------------------------------- G.722 --
//
// Lower sub-band of the ITU-T G.722 SB-ADPCM decoder (64 kbit/s mode: six
// bits of every octet). The lower band is the 0–4 kHz signal sampled at
// 8 kHz, which is exactly what the recording needs, so the upper band and
// the QMF synthesis are skipped. Tables are those of the Recommendation.

const G722_QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
const G722_QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
const G722_WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const G722_RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const G722_ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn sat16(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// Adaptive predictor and scale factor of the G.722 lower sub-band
/// (blocks 2L–4L, 5L, 6L of the Recommendation).
#[derive(Debug, Clone)]
pub(crate) struct G722Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    ap: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    bp: [i32; 7],
    sg: [i32; 7],
    nb: i32,
    det: i32,
}

impl G722Band {
    pub(crate) fn new() -> G722Band {
        G722Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            ap: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            bp: [0; 7],
            sg: [0; 7],
            nb: 0,
            det: 32,
        }
    }

    /// Predicted signal value for the next sample.
    #[cfg(test)]
    fn predicted(&self) -> i32 {
        self.s
    }

    /// Current quantizer scale factor.
    #[cfg(test)]
    fn scale(&self) -> i32 {
        self.det
    }

    /// Decodes one 6-bit code word to a lower-band sample (±16384 range).
    pub(crate) fn decode(&mut self, ilow: usize) -> i32 {
        let ilow = ilow & 0x3F;
        let dq6 = (self.det * G722_QM6[ilow]) >> 15;
        let rlow = (self.s + dq6).clamp(-16384, 16383);
        self.adapt(ilow >> 2);
        rlow
    }

    /// Updates the state with the 4-bit truncated code word (shared by the
    /// encoder and the decoder, which is what keeps them in step).
    pub(crate) fn adapt(&mut self, ril: usize) {
        let ril = ril & 0x0F;
        // INVQAL
        let dlt = (self.det * G722_QM4[ril]) >> 15;
        // LOGSCL
        let nb = ((self.nb * 127) >> 7) + G722_WL[G722_RL42[ril]];
        self.nb = nb.clamp(0, 18432);
        // SCALEL
        let wd1 = ((self.nb >> 6) & 31) as usize;
        let wd2 = 8 - (self.nb >> 11);
        let wd3 = if wd2 < 0 {
            G722_ILB[wd1] << -wd2
        } else {
            G722_ILB[wd1] >> wd2
        };
        self.det = wd3 << 2;
        self.block4(dlt);
    }

    fn block4(&mut self, d: i32) {
        // RECONS, PARREC
        self.d[0] = d;
        self.r[0] = sat16(self.s + d);
        self.p[0] = sat16(self.sz + d);

        // UPPOL2
        for i in 0..3 {
            self.sg[i] = self.p[i] >> 15;
        }
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if self.sg[0] == self.sg[1] { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = if self.sg[0] == self.sg[2] { 128 } else { -128 };
        wd3 += wd2 >> 7;
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);

        // UPPOL1
        self.sg[0] = self.p[0] >> 15;
        self.sg[1] = self.p[1] >> 15;
        let wd1 = if self.sg[0] == self.sg[1] { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let limit = sat16(15360 - self.ap[2]);
        self.ap[1] = sat16(wd1 + wd2).clamp(-limit, limit);

        // UPZERO
        let wd1 = if d == 0 { 0 } else { 128 };
        self.sg[0] = d >> 15;
        for i in 1..7 {
            self.sg[i] = self.d[i] >> 15;
            let wd2 = if self.sg[i] == self.sg[0] { wd1 } else { -wd1 };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.bp[i] = sat16(wd2 + wd3);
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        self.sp = sat16(wd1 + wd2);

        // FILTEZ
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat16(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat16(sz);

        // PREDIC
        self.s = sat16(self.sp + self.sz);
    }
}

// -------------------------------------------------------------- Decoder --

enum Kind {
    Pcmu,
    Pcma,
    Opus {
        dec: Box<opus::Decoder>,
        buf: Box<[i16; OPUS_MAX_FRAME]>,
    },
    G722(Box<G722Band>),
}

/// Decoder of one RTP stream to 8 kHz mono samples.
pub struct Decoder {
    codec: Codec,
    kind: Kind,
    /// Samples in the last decoded frame (the step used for concealment).
    last_frame: usize,
    errors: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("last_frame", &self.last_frame)
            .field("errors", &self.errors)
            .finish()
    }
}

impl Decoder {
    pub fn new(codec: Codec) -> Result<Decoder, RecordingError> {
        let kind = match codec {
            Codec::Pcmu => Kind::Pcmu,
            Codec::Pcma => Kind::Pcma,
            Codec::G722 => Kind::G722(Box::new(G722Band::new())),
            Codec::Opus => {
                let dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(|e| {
                    RecordingError::DecoderInit {
                        codec,
                        reason: e.to_string(),
                    }
                })?;
                Kind::Opus {
                    dec: Box::new(dec),
                    buf: Box::new([0; OPUS_MAX_FRAME]),
                }
            }
        };
        Ok(Decoder {
            codec,
            kind,
            last_frame: DEFAULT_FRAME,
            errors: 0,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Packets that could not be decoded (replaced by silence) so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Decodes one RTP payload, appending 8 kHz mono samples to `out`.
    /// An undecodable Opus packet becomes silence of its nominal length.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        if payload.is_empty() {
            if self.codec == Codec::Opus {
                // An empty payload is what libopus takes as "lost".
                self.conceal(self.last_frame, out);
            }
            return;
        }
        match &mut self.kind {
            Kind::Pcmu => out.extend(payload.iter().map(|&b| ULAW_TABLE[b as usize])),
            Kind::Pcma => out.extend(payload.iter().map(|&b| ALAW_TABLE[b as usize])),
            Kind::G722(band) => {
                // The lower band runs at half scale: double it back.
                out.extend(
                    payload
                        .iter()
                        .map(|&b| sat16(band.decode((b & 0x3F) as usize) << 1) as i16),
                );
            }
            Kind::Opus { dec, buf } => {
                match dec.decode(payload, &mut buf[..], false) {
                    Ok(n) if n > 0 && n <= OPUS_MAX_FRAME => {
                        out.extend_from_slice(&buf[..n]);
                        self.last_frame = n;
                    }
                    Ok(_) | Err(_) => {
                        self.errors += 1;
                        let n = opus::packet::get_nb_samples(payload, SAMPLE_RATE)
                            .ok()
                            .filter(|&n| n > 0 && n <= OPUS_MAX_FRAME)
                            .unwrap_or(self.last_frame);
                        out.resize(out.len() + n, 0);
                    }
                }
                return;
            }
        }
        self.last_frame = payload.len().min(OPUS_MAX_FRAME);
    }

    /// Appends `samples` samples standing in for lost audio: Opus runs its
    /// packet-loss concealment, the other codecs give silence.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let Kind::Opus { dec, buf } = &mut self.kind else {
            out.resize(out.len() + samples, 0);
            return;
        };
        // libopus conceals in multiples of 2.5 ms (20 samples at 8 kHz).
        let step = (self.last_frame / 20 * 20).clamp(20, OPUS_MAX_FRAME);
        let mut left = samples;
        while left > 0 {
            let want = left.min(step).div_ceil(20) * 20;
            match dec.decode(&[], &mut buf[..want], false) {
                Ok(n) if n > 0 => {
                    let take = n.min(left).min(want);
                    out.extend_from_slice(&buf[..take]);
                    left -= take;
                }
                Ok(_) | Err(_) => {
                    self.errors += 1;
                    out.resize(out.len() + left, 0);
                    left = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulaw_compress(x: i16) -> u8 {
        // ITU-T G.711 µ-law encoder (classic 16-bit formulation).
        let mut v = x as i32;
        let sign = if v < 0 {
            v = -v;
            0x80
        } else {
            0
        };
        v = v.min(32635) + 0x84;
        let mut exp = 7;
        while exp > 0 && v & (0x4000 >> (7 - exp)) == 0 {
            exp -= 1;
        }
        let mant = (v >> (exp + 3)) & 0x0F;
        !(sign | (exp << 4) | mant) as u8
    }

    fn alaw_compress(x: i16) -> u8 {
        // ITU-T G.711 A-law encoder (Sun reference algorithm).
        let mut v = (x as i32) >> 3;
        let mask = if v >= 0 {
            0xD5
        } else {
            v = -v - 1;
            0x55
        };
        const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            (0x7F ^ mask) as u8
        } else {
            let mut aval = seg << 4;
            if seg < 2 {
                aval |= (v >> 1) & 0x0F;
            } else {
                aval |= (v >> seg) & 0x0F;
            }
            (aval ^ mask) as u8
        }
    }

    fn sine(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    fn snr_db(reference: &[i16], decoded: &[i16]) -> f64 {
        let (mut sig, mut noise) = (0f64, 0f64);
        for (&r, &d) in reference.iter().zip(decoded) {
            sig += (r as f64).powi(2);
            noise += (r as f64 - d as f64).powi(2);
        }
        10.0 * (sig / noise.max(1e-9)).log10()
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::from_name("PCMU"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("OPUS"), Some(Codec::Opus));
        assert_eq!(Codec::from_name("opus"), Some(Codec::Opus));
        assert_eq!(Codec::from_name("g722"), Some(Codec::G722));
        assert_eq!(Codec::from_name("telephone-event"), None);
        assert_eq!(Codec::from_name(""), None);
        assert_eq!(Codec::Opus.rtp_clock(8000), 48_000);
        assert_eq!(Codec::G722.rtp_clock(16000), 8_000);
        assert_eq!(Codec::Pcmu.rtp_clock(0), 8_000);
    }

    #[test]
    fn g711_known_values() {
        assert_eq!(ULAW_TABLE[0xFF], 0);
        assert_eq!(ULAW_TABLE[0x7F], 0);
        assert_eq!(ULAW_TABLE[0x00], -32124);
        assert_eq!(ULAW_TABLE[0x80], 32124);
        assert_eq!(ALAW_TABLE[0xD5], 8);
        assert_eq!(ALAW_TABLE[0x55], -8);
        assert_eq!(ALAW_TABLE[0xAA], 32256);
        assert_eq!(ALAW_TABLE[0x2A], -32256);
        // Both tables are odd-symmetric and strictly monotonic per sign half.
        for i in 0..128usize {
            assert_eq!(ULAW_TABLE[i], -ULAW_TABLE[i | 0x80]);
            assert_eq!(ALAW_TABLE[i], -ALAW_TABLE[i | 0x80]);
        }
        for i in 0x80..0xFFusize {
            assert!(ULAW_TABLE[i] > ULAW_TABLE[i + 1], "µ-law {i:#x}");
        }
    }

    #[test]
    fn g711_round_trip_of_sine() {
        let pcm = sine(440.0, 12000.0, 8000);
        let ulaw: Vec<u8> = pcm.iter().map(|&s| ulaw_compress(s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|&s| alaw_compress(s)).collect();
        let mut du = Decoder::new(Codec::Pcmu).expect("pcmu");
        let mut da = Decoder::new(Codec::Pcma).expect("pcma");
        let (mut ou, mut oa) = (Vec::new(), Vec::new());
        du.decode(&ulaw, &mut ou);
        da.decode(&alaw, &mut oa);
        assert_eq!(ou.len(), pcm.len());
        assert_eq!(oa.len(), pcm.len());
        for (i, (&r, (&u, &a))) in pcm.iter().zip(ou.iter().zip(&oa)).enumerate() {
            // 8-bit log PCM: error below ~3.2 % of the magnitude plus a step.
            let tol = (r as i32).abs() / 30 + 40;
            assert!(
                ((r as i32) - (u as i32)).abs() <= tol,
                "µ-law {i}: {r} vs {u}"
            );
            assert!(
                ((r as i32) - (a as i32)).abs() <= tol,
                "A-law {i}: {r} vs {a}"
            );
        }
        assert!(snr_db(&pcm, &ou) > 33.0, "{}", snr_db(&pcm, &ou));
        assert!(snr_db(&pcm, &oa) > 33.0, "{}", snr_db(&pcm, &oa));
        // Encoding a decoded value gives the same code word back.
        for code in 0..=255u8 {
            assert_eq!(
                ULAW_TABLE[ulaw_compress(ULAW_TABLE[code as usize]) as usize],
                ULAW_TABLE[code as usize]
            );
            assert_eq!(alaw_compress(ALAW_TABLE[code as usize]), code);
        }
        let mut silence = Vec::new();
        du.conceal(80, &mut silence);
        assert_eq!(silence, vec![0; 80]);
    }

    /// Lower-band G.722 encoder (ITU-T blocks 1L–4L) for the round trip.
    fn g722_encode_low(pcm: &[i16]) -> Vec<u8> {
        const Q6: [i32; 32] = [
            0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858,
            940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
        ];
        const ILN: [u8; 32] = [
            0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
            12, 11, 10, 9, 8, 7, 6, 5, 4, 0,
        ];
        const ILP: [u8; 32] = [
            0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41,
            40, 39, 38, 37, 36, 35, 34, 33, 32, 0,
        ];
        let mut band = G722Band::new();
        pcm.iter()
            .map(|&x| {
                let xlow = (x as i32) >> 1;
                let el = sat16(xlow - band.predicted());
                let wd = if el >= 0 { el } else { -(el + 1) };
                let mut i = 1;
                while i < 30 && wd >= (Q6[i] * band.scale()) >> 12 {
                    i += 1;
                }
                let ilow = if el < 0 { ILN[i] } else { ILP[i] };
                band.adapt((ilow >> 2) as usize);
                // Upper-band bits set to a fixed pattern: must be ignored.
                ilow | 0xC0
            })
            .collect()
    }

    #[test]
    fn g722_low_band_round_trip() {
        let pcm: Vec<i16> = sine(440.0, 9000.0, 8000)
            .iter()
            .zip(sine(1800.0, 3000.0, 8000))
            .map(|(&a, b)| a + b)
            .collect();
        let coded = g722_encode_low(&pcm);
        let mut dec = Decoder::new(Codec::G722).expect("g722");
        let mut out = Vec::new();
        dec.decode(&coded, &mut out);
        assert_eq!(out.len(), pcm.len());
        // Skip the adaptation warm-up; the decoder has no delay in the
        // lower band so samples line up.
        let snr = snr_db(&pcm[400..], &out[400..]);
        assert!(snr > 20.0, "G.722 low band SNR {snr:.1} dB");
        // Silence in gives (near) silence out.
        let mut dec = Decoder::new(Codec::G722).expect("g722");
        let mut quiet = Vec::new();
        dec.decode(&g722_encode_low(&[0; 800]), &mut quiet);
        assert!(
            quiet[100..].iter().all(|&s| s.abs() < 64),
            "{:?}",
            &quiet[100..120]
        );
    }

    #[test]
    fn opus_decode_conceal_and_garbage() {
        let mut enc = opus::Encoder::new(8000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        let pcm = sine(1000.0, 8000.0, 1600);
        let mut dec = Decoder::new(Codec::Opus).expect("opus");
        let mut out = Vec::new();
        for frame in pcm.chunks(160) {
            let pkt = enc.encode_vec(frame, 4000).expect("encode");
            dec.decode(&pkt, &mut out);
        }
        assert_eq!(out.len(), 1600);
        assert_eq!(dec.errors(), 0);
        // Concealment continues the tone rather than cutting to zero.
        let mut plc = Vec::new();
        dec.conceal(250, &mut plc);
        assert_eq!(plc.len(), 250);
        let energy: f64 = plc[..80].iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 80.0;
        assert!(energy.sqrt() > 500.0, "PLC rms {}", energy.sqrt());
        // A garbage packet becomes silence and is counted.
        let before = out.len();
        dec.decode(&[0xFF, 0xFF, 0xFF], &mut out);
        assert_eq!(dec.errors(), 1);
        assert_eq!(out.len() - before, 160);
        assert!(out[before..].iter().all(|&s| s == 0));
    }
}
