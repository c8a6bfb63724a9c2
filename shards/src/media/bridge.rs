//! When the two sides of a proxied call share no codec, the relay
//! transcodes between them (Opus <-> G.711, `media::transcode`). The rules,
//! pure: an offer with Opus and no G.711 is offered to the callees with
//! G.711 added ([`offer_extra`]), so a G.711-only callee (a carrier, a desk
//! phone) can answer; when the callee answers with a codec the caller did
//! not offer, [`transcode_pair`] says between which two codecs the relay
//! transcodes, and the caller is answered with its own codec.

use super::sdp::{AudioStream, CodecLine};
use crate::recording::Codec;

/// A codec of one side as the relay's transcoder takes it: codec, payload
/// type, RTP clock.
pub type SideCodec = (Codec, u8, u32);

fn g711() -> [CodecLine; 2] {
    [
        CodecLine {
            pt: 0,
            name: "PCMU".into(),
            clock: 8000,
            channels: 1,
        },
        CodecLine {
            pt: 8,
            name: "PCMA".into(),
            clock: 8000,
            channels: 1,
        },
    ]
}

fn codec_at(a: &AudioStream, pt: u8) -> Option<SideCodec> {
    let (name, clock) = a.codec_of(pt)?;
    Some((Codec::from_name(name)?, pt, clock))
}

/// What the offer to the callees adds: G.711 when the caller offers Opus
/// and neither PCMU nor PCMA (a browser told to use Opus only); nothing
/// otherwise.
pub fn offer_extra(offer: &AudioStream) -> Vec<CodecLine> {
    let codecs: Vec<Codec> = offer
        .payload_types
        .iter()
        .filter_map(|pt| codec_at(offer, *pt).map(|c| c.0))
        .collect();
    let g711_offered = codecs.contains(&Codec::Pcmu) || codecs.contains(&Codec::Pcma);
    if codecs.contains(&Codec::Opus) && !g711_offered {
        g711().to_vec()
    } else {
        Vec::new()
    }
}

/// The caller's codec and the callee's between which the relay
/// transcodes, when the callee answered with a codec (its first) that the
/// caller did not offer (by name and clock) and the pair is one we
/// transcode; `None` when they share it or nothing can be done.
pub fn transcode_pair(
    offer: &[(u8, String, u32)],
    answer: &AudioStream,
) -> Option<(SideCodec, SideCodec)> {
    let first = *answer.payload_types.first()?;
    let callee = codec_at(answer, first)?;
    let (name, clock) = answer.codec_of(first)?;
    if offer
        .iter()
        .any(|(_, n, c)| n.eq_ignore_ascii_case(name) && *c == clock)
    {
        return None;
    }
    let caller = offer.iter().find_map(|(pt, n, c)| {
        let codec = Codec::from_name(n)?;
        let pair_ok = matches!(
            (codec, callee.0),
            (Codec::Opus, Codec::Pcmu | Codec::Pcma) | (Codec::Pcmu | Codec::Pcma, Codec::Opus)
        );
        pair_ok.then_some((codec, *pt, *c))
    })?;
    Some((caller, callee))
}

/// The `a=rtpmap` of the caller's codec `c`, for the answer it is sent.
pub fn answer_line(c: SideCodec) -> CodecLine {
    let (name, channels) = match c.0 {
        Codec::Opus => ("opus", 2),
        Codec::Pcmu => ("PCMU", 1),
        Codec::Pcma => ("PCMA", 1),
        Codec::G722 => ("G722", 1),
    };
    CodecLine {
        pt: c.1,
        name: name.into(),
        clock: c.2,
        channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sdp;

    fn audio(body: &str) -> AudioStream {
        sdp::parse(body.as_bytes()).unwrap().audio.unwrap()
    }

    const OPUS_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 111 126\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n";
    const PCMU_ANSWER: &str =
        "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
        m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn opus_only_offers_get_g711_and_the_answer_is_transcoded() {
        let offer = audio(OPUS_ONLY);
        let extra = offer_extra(&offer);
        assert_eq!(extra.iter().map(|c| c.pt).collect::<Vec<_>>(), [0, 8]);
        let body = sdp::add_codecs(OPUS_ONLY.as_bytes(), &extra).unwrap();
        let to_callee = audio(std::str::from_utf8(&body).unwrap());
        assert_eq!(to_callee.payload_types, [111, 126, 0, 8]);
        assert_eq!(to_callee.codec_of(8), Some(("PCMA", 8000)));
        let sig = crate::media::side::Signalled::from_audio(&offer);
        let pair = transcode_pair(&sig.codecs, &audio(PCMU_ANSWER));
        assert_eq!(
            pair,
            Some(((Codec::Opus, 111, 48000), (Codec::Pcmu, 0, 8000)))
        );
        let to_caller = sdp::set_codecs(
            PCMU_ANSWER.as_bytes(),
            &[answer_line((Codec::Opus, 111, 48000))],
            &[],
        )
        .unwrap();
        let a = audio(std::str::from_utf8(&to_caller).unwrap());
        assert_eq!(a.payload_types, [111]);
        assert_eq!(a.codec_of(111), Some(("opus", 48000)));
    }

    #[test]
    fn a_shared_codec_is_not_transcoded_nor_is_g711_added() {
        let both = OPUS_ONLY.replace("111 126", "111 0 126") + "a=rtpmap:0 PCMU/8000\r\n";
        assert!(offer_extra(&audio(&both)).is_empty());
        let sig = crate::media::side::Signalled::from_audio(&audio(&both));
        assert_eq!(transcode_pair(&sig.codecs, &audio(PCMU_ANSWER)), None);
        // G.722 answered to an Opus offer: nothing we transcode.
        let g722 = PCMU_ANSWER
            .replace("RTP/AVP 0", "RTP/AVP 9")
            .replace("0 PCMU", "9 G722");
        let sig = crate::media::side::Signalled::from_audio(&audio(OPUS_ONLY));
        assert_eq!(transcode_pair(&sig.codecs, &audio(&g722)), None);
    }
}
