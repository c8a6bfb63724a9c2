//! [`set_crypto`] and the `a=crypto` lines [`parse`] keeps.

use super::*;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:2 AEAD_AES_128_GCM inline:Ym9ndXMgYm9ndXMgYm9ndXMgYm9ndXM=\r\n\
a=sendrecv\r\nm=video 5000 RTP/SAVPF 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:dmlkZW8=\r\n";

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

#[test]
fn parse_keeps_the_first_audio_streams_crypto_values() {
    let a = parse(OFFER.as_bytes()).unwrap().audio.unwrap();
    assert!(a.is_savp());
    assert_eq!(a.crypto.len(), 2);
    assert!(a.crypto[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
}

#[test]
fn parse_bounds_what_it_keeps() {
    let mut body = String::from("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 0\r\n");
    for i in 0..100 {
        body.push_str(&format!(
            "a=crypto:{i} AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n"
        ));
    }
    body.push_str(&format!("a=crypto:1 {}\r\n", "x".repeat(10_000)));
    let a = parse(body.as_bytes()).unwrap().audio.unwrap();
    assert_eq!(a.crypto.len(), MAX_CRYPTO);
}

#[test]
fn plain_drops_every_key_and_the_secure_profile_of_the_first_audio_stream() {
    let out = text(set_crypto(OFFER.as_bytes(), CryptoOut::Plain).unwrap());
    assert!(out.contains("m=audio 4000 RTP/AVP 0 101\r\n"), "{out}");
    let audio = out.split("m=video").next().unwrap();
    assert!(!audio.contains("a=crypto"), "{out}");
    // Another stream keeps its profile, not its keys: no key is passed on.
    assert!(out.contains("m=video 5000 RTP/SAVPF 96\r\n"), "{out}");
    assert!(!out.contains("a=crypto"), "{out}");
    assert!(
        out.contains("a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"),
        "{out}"
    );
}

#[test]
fn keys_end_the_audio_section_under_the_profile_asked_for() {
    let values = vec!["7 AEAD_AES_128_GCM inline:QUJD".to_string()];
    let plain = OFFER.replace("RTP/SAVP 0 101", "RTP/AVP 0 101");
    for (body, savp, proto) in [
        (OFFER, true, "RTP/SAVP"),
        (OFFER, false, "RTP/AVP"),
        (plain.as_str(), true, "RTP/SAVP"),
    ] {
        let out = text(
            set_crypto(
                body.as_bytes(),
                CryptoOut::Keys {
                    savp,
                    values: &values,
                },
            )
            .unwrap(),
        );
        assert!(
            out.contains(&format!("m=audio 4000 {proto} 0 101\r\n")),
            "{out}"
        );
        assert!(
            out.contains("a=sendrecv\r\na=crypto:7 AEAD_AES_128_GCM inline:QUJD\r\nm=video"),
            "{out}"
        );
        assert_eq!(out.matches("a=crypto").count(), 1, "{out}");
    }
    // An audio stream that ends the body gets its keys at the end.
    let only_audio = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVPF 0\r\n";
    let out = text(
        set_crypto(
            only_audio.as_bytes(),
            CryptoOut::Keys {
                savp: true,
                values: &values,
            },
        )
        .unwrap(),
    );
    assert!(
        out.ends_with("m=audio 4000 RTP/SAVPF 0\r\na=crypto:7 AEAD_AES_128_GCM inline:QUJD\r\n"),
        "{out}"
    );
}

#[test]
fn other_profiles_are_left_alone() {
    let body = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 111\r\n";
    let out = text(set_crypto(body.as_bytes(), CryptoOut::Plain).unwrap());
    assert!(out.contains("UDP/TLS/RTP/SAVPF 111"), "{out}");
    assert!(set_crypto(b"garbage", CryptoOut::Plain).is_err());
}

#[test]
fn key_lines_go_from_bodies_that_are_not_sdp() {
    let multipart = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD\r\na=Crypto :2 X INLINE:REVG\r\nm=audio 4 RTP/AVP 0\r\n--b--\r\n";
    assert!(mentions_keys(multipart.as_bytes()));
    assert!(set_crypto(multipart.as_bytes(), CryptoOut::Plain).is_err());
    let out = String::from_utf8(strip_key_lines(multipart.as_bytes())).unwrap();
    assert!(!out.to_ascii_lowercase().contains("inline:"), "{out}");
    assert!(out.contains("m=audio 4 RTP/AVP 0\r\n--b--\r\n"), "{out}");
    assert!(!mentions_keys(b"v=0\r\nm=audio 4 RTP/AVP 0\r\n"));
}
