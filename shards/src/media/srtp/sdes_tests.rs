//! RFC 4568 `a=crypto` parsing and formatting.

use super::{format, parse, Crypto};
use crate::media::srtp::{MasterKey, Suite};

/// The key of RFC 4568's examples (30 octets).
const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn key_of(b64: &str, suite: Suite) -> MasterKey {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    MasterKey::new(suite, &raw).unwrap()
}

#[test]
fn rfc4568_examples() {
    // Section 4 and 5.1 examples, less the MKI.
    let c = parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20")).unwrap();
    assert_eq!(
        c,
        Crypto {
            tag: 1,
            suite: Some(Suite::AesCm128HmacSha1_80),
            suite_name: "AES_CM_128_HMAC_SHA1_80".into(),
            key: Some(key_of(KEY, Suite::AesCm128HmacSha1_80)),
        }
    );
    let c = parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap();
    assert_eq!(c.key, Some(key_of(KEY, Suite::AesCm128HmacSha1_80)));
    // Decimal lifetime, FEC_ORDER and WSH, KDR=0: all fine.
    let c = parse(&format!(
        "7 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1048576 FEC_ORDER=FEC_SRTP WSH=64 KDR=0 -X_FOO"
    ))
    .unwrap();
    assert_eq!(c.tag, 7);
    // Tabs and repeated spaces separate too.
    assert!(parse(&format!("1\tAES_CM_128_HMAC_SHA1_80  inline:{KEY}")).is_some());
}

#[test]
fn mki_is_not_supported() {
    assert_eq!(
        parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4")),
        None
    );
    assert_eq!(
        parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4")),
        None
    );
    assert_eq!(
        parse("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4"),
        None
    );
}

#[test]
fn gcm_key() {
    let raw: Vec<u8> = (0..28).collect();
    let k = MasterKey::new(Suite::AeadAes128Gcm, &raw).unwrap();
    let line = format(42, &k);
    assert_eq!(
        line,
        "42 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw=="
    );
    let c = parse(&line).unwrap();
    assert_eq!(
        (c.tag, c.suite, c.key),
        (42, Some(Suite::AeadAes128Gcm), Some(k.clone()))
    );
    // Without padding too.
    let c = parse("42 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw").unwrap();
    assert_eq!(c.key, Some(k));
    // A 30-octet key is wrong for GCM.
    assert_eq!(parse(&format!("1 AEAD_AES_128_GCM inline:{KEY}")), None);
}

/// RFC 7714 section 14.1: AEAD_AES_256_GCM, a 32-octet key and a 12-octet
/// salt (44 octets, 60 base64 characters).
#[test]
fn gcm_256_key() {
    let raw: Vec<u8> = (0..44).collect();
    let k = MasterKey::new(Suite::AeadAes256Gcm, &raw).unwrap();
    let line = format(7, &k);
    assert_eq!(
        line,
        "7 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKis="
    );
    let c = parse(&line).unwrap();
    assert_eq!(
        (c.tag, c.suite, c.suite_name.as_str(), c.key),
        (
            7,
            Some(Suite::AeadAes256Gcm),
            "AEAD_AES_256_GCM",
            Some(k.clone())
        )
    );
    // Without padding, with a lifetime and an ignorable parameter.
    let c = parse(
        "7 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKis|2^31 WSH=64",
    )
    .unwrap();
    assert_eq!(c.key, Some(k));
    // The key-salt of AEAD_AES_128_GCM (28 octets) or of an AES-256 suite
    // with a 14-octet salt (46 octets) is wrong for it.
    assert_eq!(
        parse("1 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw=="),
        None
    );
    assert_eq!(
        parse("1 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLQ=="),
        None
    );
    assert_eq!(
        parse(&std::format!("1 AEAD_AES_256_GCM inline:{KEY}")),
        None
    );
    // Names are case-sensitive.
    let c = parse(
        "1 aead_aes_256_gcm inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKis=",
    )
    .unwrap();
    assert_eq!((c.suite, c.key), (None, None));
}

#[test]
fn format_parse_round_trip() {
    for suite in Suite::EVERY {
        let mut n = 100u8;
        let k = MasterKey::random(suite, &mut |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_mul(31).wrapping_add(7);
                *x = n;
            }
        });
        let line = format(999_999_999, &k);
        assert!(
            line.starts_with(&std::format!("999999999 {} inline:", suite.name())),
            "{line}"
        );
        let c = parse(&line).unwrap();
        assert_eq!(
            (c.tag, c.suite, c.suite_name.as_str()),
            (999_999_999, Some(suite), suite.name())
        );
        assert_eq!(c.key, Some(k));
    }
}

#[test]
fn bad_tags() {
    for tag in [
        "0",
        "1000000000",
        "0000000000",
        "-1",
        "+1",
        "a",
        "1a",
        "4294967297",
        "",
    ] {
        assert_eq!(
            parse(&std::format!("{tag} AES_CM_128_HMAC_SHA1_80 inline:{KEY}")),
            None,
            "{tag:?}"
        );
    }
    assert_eq!(
        parse(&std::format!(
            "000000001 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"
        ))
        .unwrap()
        .tag,
        1
    );
    assert_eq!(
        parse(&std::format!(
            "999999999 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"
        ))
        .unwrap()
        .tag,
        999_999_999
    );
}

#[test]
fn malformed() {
    let bad = [
        String::new(),
        "1".into(),
        "1 AES_CM_128_HMAC_SHA1_80".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline".into(),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 {KEY}"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}"),
        // Bad base64: bad character, bad length, bad padding.
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV*".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzA".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubG=z".into(),
        // Wrong length: 29 and 31 octets.
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubA==".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzQQ==".into(),
        // Two key-params.
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}"),
        // Bad lifetimes, two lifetimes.
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|x"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|2^20"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|"),
        // Session parameters we must not ignore.
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTCP"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNAUTHENTICATED_SRTP"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=24"),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR="),
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} WSH=64 SOMETHING_NEW"),
        // Bad suite names.
        std::format!("1 AES-CM inline:{KEY}"),
        std::format!("1 {} inline:{KEY}", "A".repeat(65)),
        // A huge key.
        std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", "A".repeat(200)),
    ];
    for line in &bad {
        assert_eq!(parse(line), None, "{line:?}");
    }
}

#[test]
fn unknown_suites() {
    let c = parse(&std::format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31")).unwrap();
    assert_eq!(
        (c.tag, c.suite, c.suite_name.as_str(), c.key),
        (2, None, "AES_CM_128_HMAC_SHA1_32", None)
    );
    // Any length of key is syntactically fine for a suite we do not know.
    let c =
        parse("3 AES_256_CM_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==").unwrap();
    assert_eq!((c.suite, c.key), (None, None));
    // Names are case-sensitive.
    assert_eq!(
        parse(&std::format!("2 aes_cm_128_hmac_sha1_80 inline:{KEY}"))
            .unwrap()
            .suite,
        None
    );
    // But the base64 must still be valid.
    assert_eq!(parse("2 F8_128_HMAC_SHA1_80 inline:!!!!"), None);
}

#[test]
fn no_panic_on_odd_input() {
    let samples = [
        "1 AES_CM_128_HMAC_SHA1_80 inline:é",
        "é é é",
        "1 é inline:AAAA",
        "1 A inline:AAAA|2^é",
        "1 A inline:AAAA KDR=é",
        "1 A inline:AAAA é",
        "\u{0} \u{0} \u{0}",
    ];
    for s in samples {
        let _ = parse(s);
    }
    let full = std::format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20 KDR=0 WSH=128");
    for n in 0..full.len() {
        let _ = parse(&full[..n]);
    }
}
