//! Known-answer tests of the SRTP transforms: RFC 3711 Appendix B.2 and
//! B.3, RFC 6188 sections 7.1 and 7.2 (AES-256 counter mode and key
//! derivation), RFC 7714 sections 16.1.1, 16.1.2, 16.2.1, 16.2.2 and 17.1
//! to 17.4, and packets protected by libsrtp 2 (through pylibsrtp) with the
//! master key of RFC 3711 B.3 (libsrtp's 46-octet test key for AES-256):
//! every suite, CSRCs and a header extension, SRTCP, and a sequence number
//! wrap. Every vector here was checked against libsrtp or an independent
//! AES implementation (Python `cryptography`).

use super::crypto::{self, Transform, AUTH_KEY_LEN};
use super::{Context, MasterKey, SrtpError, Suite};

pub(super) fn h(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// RFC 3711 B.3 master key and salt (libsrtp's srtp_driver uses them too).
pub(super) const MASTER: &str = "e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6";
/// libsrtp's 46-octet AES-256 test key and salt: AEAD_AES_256_GCM takes the
/// first 32 octets as the key and the next 12 as the salt.
pub(super) const MASTER_256: &str =
    "e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6c173 \
                                     c317f2dabe357793b6960b3aabe6";

/// The test master key of `suite`: the first `key_len() + salt_len()`
/// octets of [`MASTER`], or of [`MASTER_256`] for a 32-octet key.
pub(super) fn master(suite: Suite) -> MasterKey {
    let ks = h(if suite.key_len() == 32 {
        MASTER_256
    } else {
        MASTER
    });
    MasterKey::new(suite, &ks[..suite.key_len() + suite.salt_len()]).unwrap()
}

/// Protects `plain` with `ctx` and checks the result is `expected`.
fn protect_is(ctx: &mut Context, plain: &[u8], expected: &[u8], rtcp: bool) {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = if rtcp {
        ctx.protect_rtcp(&mut buf, plain.len())
    } else {
        ctx.protect_rtp(&mut buf, plain.len())
    }
    .unwrap();
    assert_eq!(hex(&buf[..n]), hex(expected));
}

/// Unprotects `protected` with `ctx` and checks the result is `plain`.
fn unprotect_is(ctx: &mut Context, protected: &[u8], plain: &[u8], rtcp: bool) {
    let mut buf = protected.to_vec();
    let n = if rtcp {
        ctx.unprotect_rtcp(&mut buf, protected.len())
    } else {
        ctx.unprotect_rtp(&mut buf, protected.len())
    }
    .unwrap();
    assert_eq!(hex(&buf[..n]), hex(plain));
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    use aes::cipher::KeyInit;
    let key: [u8; 16] = h("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
    let cipher = aes::Aes128Enc::new(&key.into());
    let mut ks = [0u8; 48];
    crypto::ctr_xor(&cipher, 0xf0f1f2f3f4f5f6f7f8f9fafbfcfd0000, &mut ks);
    assert_eq!(
        hex(&ks),
        "e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab\
         41e95b3bb0a2e8dd477901e4fca894c0"
    );
    // The counter runs on across the 16-bit boundary of the block counter.
    let mut ks = [0u8; 48];
    crypto::ctr_xor(&cipher, 0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff, &mut ks);
    assert_eq!(
        hex(&ks),
        "ec8cdf7398607cb0f2d21675ea9ea1e4362b7c3c6773516318a077d7fc5073ae\
         6a2cc3787889374fbeb4c81b17ba6c44"
    );
}

#[test]
fn rfc3711_b3_key_derivation() {
    let m = master(Suite::AesCm128HmacSha1_80);
    let derive = |label: u8, n: usize| {
        let mut out = vec![0u8; n];
        crypto::derive(&m, label, &mut out);
        hex(&out)
    };
    assert_eq!(derive(0, 16), "c61e7a93744f39ee10734afe3ff7a087");
    assert_eq!(derive(2, 14), "30cbbc08863d8c85d49db34a9ae1");
    assert_eq!(derive(1, 20), "cebe321f6ff7716b6fd4ab49af256a156d38baa4");
    // SRTCP labels (checked with an independent AES-CTR).
    assert_eq!(derive(3, 16), "4c1aa45a81f73d61c800bbb00fbb1eaa");
    assert_eq!(derive(4, 20), "8d54534feb49ae8e7993a6bd0b844fc323a93dfd");
    assert_eq!(derive(5, 14), "9581c7ad87b3e530bf3e4454a8b3");
}

#[test]
fn rfc6188_7_1_aes_256_cm_keystream() {
    use aes::cipher::KeyInit;
    let key: [u8; 32] = h("57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98")
        .try_into()
        .unwrap();
    let cipher = aes::Aes256Enc::new(&key.into());
    let mut ks = [0u8; 48];
    crypto::ctr_xor(&cipher, 0xf0f1f2f3f4f5f6f7f8f9fafbfcfd0000, &mut ks);
    assert_eq!(
        hex(&ks),
        "92bdd28a93c3f52511c677d08b5515a49da71b2378a854f67050756ded165bac\
         63c4868b7096d88421b563b8c94c9a31"
    );
}

#[test]
fn rfc6188_7_2_aes_256_key_derivation() {
    // AES_256_CM_PRF, which AEAD_AES_256_GCM uses (RFC 7714 section 11),
    // with RFC 6188's 14-octet master salt (the GCM suites use the first
    // 12 octets of the same 112-bit field, the rest zero).
    let key: [u8; 32] = h("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6")
        .try_into()
        .unwrap();
    let salt: [u8; 14] = h("3b04803de51ee7c96423ab5b78d2").try_into().unwrap();
    let m = MasterKey {
        suite: Suite::AeadAes256Gcm,
        key,
        salt,
    };
    let derive = |label: u8, n: usize| {
        let mut out = vec![0u8; n];
        crypto::derive(&m, label, &mut out);
        hex(&out)
    };
    assert_eq!(
        derive(0, 32),
        "5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4"
    );
    assert_eq!(derive(1, 20), "fd9c32d39ed5fbb5a9dc96b30818454d1313dc05");
    assert_eq!(derive(2, 14), "fa31791685ca444a9e07c6c64e93");
    // SRTCP labels (checked with an independent AES-256-CTR).
    assert_eq!(
        derive(3, 32),
        "8ee75f2de53606ebfb9aabce0b530213ce0966976277ff918700903dcc406073"
    );
    assert_eq!(derive(4, 20), "0235c1262ca7178cf9d8180fa6574a1d997fdc7a");
    assert_eq!(derive(5, 14), "b174376e041b45cd4031056e44ba");
    // Every octet of the 32-octet key counts: the last one changes it all.
    let mut m2 = m.clone();
    m2.key[31] ^= 1;
    let mut out = [0u8; 32];
    crypto::derive(&m2, 0, &mut out);
    assert_ne!(hex(&out), derive(0, 32));
}

/// libsrtp's srtp_driver packet: AES_CM_128_HMAC_SHA1_80.
const PLAIN: &str = "800f1234decafbadcafebabe abababababababababababababababab";
const CM_SRTP: &str =
    "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb";
const GCM_SRTP: &str = "800f1234decafbadcafebabe 0eca0cf95ee955b26cd3d288b49f6ca9 \
                        59171450975f4144da9cdd7ae989a277";
const GCM256_SRTP: &str = "800f1234decafbadcafebabe 2b5dc6b4376e60ac30e0ee8a34d6d018 \
                           e8490cf2d078f41540c047919141e1c5";

#[test]
fn libsrtp_rtp_packets() {
    for (suite, srtp) in [
        (Suite::AesCm128HmacSha1_80, CM_SRTP),
        (Suite::AeadAes128Gcm, GCM_SRTP),
        (Suite::AeadAes256Gcm, GCM256_SRTP),
    ] {
        protect_is(
            &mut Context::new(&master(suite)),
            &h(PLAIN),
            &h(srtp),
            false,
        );
        unprotect_is(
            &mut Context::new(&master(suite)),
            &h(srtp),
            &h(PLAIN),
            false,
        );
    }
}

/// Two CSRCs, a one-word header extension, the P bit (padding is payload).
const EXT_PLAIN: &str = "b2601235decafbadcafebabe1111111122222222bede0001aabbccdd\
     000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262700000004";
const EXT_CM: &str = "b2601235decafbadcafebabe1111111122222222bede0001aabbccdd\
     ba933651fe6d4d9a5b7c864965d846440fdfa4278cc28108860309f8f3532051641c80f1062c2f28\
     6235d111c935a9939e1c005aa84c";
const EXT_GCM: &str = "b2601235decafbadcafebabe1111111122222222bede0001aabbccdd\
     66fe78faf7fee747add1a7d4d619f669a054f9495d23cb7bff7a34557aaa7333b903ec358307f623\
     eb2a62b367a60d52f6ff06f1b82ff3c955556730";
const EXT_GCM256: &str = "b2601235decafbadcafebabe1111111122222222bede0001aabbccdd\
     0cc741f0943e2e6b6f12e69f11b344321f04233d0713036700a52f74e769223941a78a2148f48039\
     7756ab0a1575d9743fd21ce977b1cfb2a7d0056c";

#[test]
fn libsrtp_rtp_with_csrcs_and_extension() {
    for (suite, srtp) in [
        (Suite::AesCm128HmacSha1_80, EXT_CM),
        (Suite::AeadAes128Gcm, EXT_GCM),
        (Suite::AeadAes256Gcm, EXT_GCM256),
    ] {
        protect_is(
            &mut Context::new(&master(suite)),
            &h(EXT_PLAIN),
            &h(srtp),
            false,
        );
        unprotect_is(
            &mut Context::new(&master(suite)),
            &h(srtp),
            &h(EXT_PLAIN),
            false,
        );
    }
}

const RTCP_PLAIN: &str = "80c80006cafebabe000102030405060708090a0b0c0d0e0f10111213";

#[test]
fn libsrtp_srtcp_packets() {
    // libsrtp numbers its first SRTCP packet 1; we start at 0 (RFC 3711
    // 3.4), so the sender here is moved to 1 to compare bytes.
    let cases = [
        (
            Suite::AesCm128HmacSha1_80,
            "80c80006cafebabeda82aaf34b2914111d5a31e15ed1000c6e550139 80000001 323b6a241a6ce15eb70c",
            "80c80006cafebabec9b39d4230d6217671371205b57e19fb84e184a4 80000002 cd00715e321974a88f7a",
        ),
        (
            Suite::AeadAes128Gcm,
            "80c80006cafebabe41c4f71b68f2eb8ca3573f1f39e818ea29764f49d1f97b5495798a75f6e5fafabaa32dc7 80000001",
            "80c80006cafebabee5fbb36e452a57d7de38538579986cbf202ba864748c57a7df4641dd6d2ad37368fd279c 80000002",
        ),
        (
            Suite::AeadAes256Gcm,
            "80c80006cafebabe26be2a348aeb09980d94a7c42bb2c5c4351d5e9659882e0f3a3a9435f239ebc183d8c16e 80000001",
            "80c80006cafebabeec522df03b1081bbef88d0974612073866d983a9629b9c536391f193e88513104feffda8 80000002",
        ),
    ];
    for (suite, first, second) in cases {
        let mut tx = Context::new(&master(suite));
        tx.rtcp_tx_next = 1;
        protect_is(&mut tx, &h(RTCP_PLAIN), &h(first), true);
        protect_is(&mut tx, &h(RTCP_PLAIN), &h(second), true);
        let mut rx = Context::new(&master(suite));
        unprotect_is(&mut rx, &h(first), &h(RTCP_PLAIN), true);
        unprotect_is(&mut rx, &h(second), &h(RTCP_PLAIN), true);
    }
}

#[test]
fn srtcp_unencrypted_aes_cm() {
    // E = 0, index 7, tag computed with an independent HMAC-SHA1 and the
    // SRTCP authentication key of RFC 3711 B.3's master key.
    let srtcp = format!("{RTCP_PLAIN} 00000007 8962edf030506868e73d");
    let mut rx = Context::new(&master(Suite::AesCm128HmacSha1_80));
    unprotect_is(&mut rx, &h(&srtcp), &h(RTCP_PLAIN), true);
}

/// libsrtp protecting seq 65530..=65535 then 0..=5 (ROC 0 then 1); the
/// payload is 20 times the low byte of the sequence number.
const WRAP_CM: [&str; 12] = [
    "681184c9be85ac85a280ea2516c3b21349fa2ee11c68b4f93722a8ec0cf9",
    "0e5ab44d7cb93654d1900186ffbb84d400e690e75e5a9fe64a8739a62838",
    "a6f29725ed011018a06b16d0d81fc2d4cad5444d3e38b69f0ecb4d470883",
    "da69759bb50be4179322387dc31df2c46007969623260f6495b03e99b2e3",
    "49372bac615839d5f35928fc1028e6a31902581cf738efb7486f328e7d94",
    "43ddbec595b96cc2ed7ea5cd3d7ebfbcd8140736ab783efb7f324f9f37da",
    "491cd7a125c6239a7fe81db94a41b0545d4bfc2c586373c5ecf4355f8a47",
    "d488fe5f4f54dba935e0a74d9a16d4f486b849c1792719a0e7c5358a6abc",
    "68193354bb45235b17fe6db0620f90e7fad197295cb6e5d2db97e44fed4d",
    "b978e2ec501f8a90cba0dcd0159b8af848d30bfccb98cfaa453e6713bd4f",
    "ce1c68c81408a358693da2c6be1233a4b4a00d9e361fee53bb30a142be96",
    "e192fcf5546a38af021e0aaa05ccc36614ceaa929ad07f0e84c4b542dd90",
];
const WRAP_GCM: [&str; 12] = [
    "25078cf27b99e2466f4ace2e15044fa92a5a71f8f4b57818cb495a8e3c85a39a7ae4ddde",
    "2ca2d6e45792c18e9a69d9afe543fdc8e6084c9e0f0f0a75403f45a249d2b7ffc2927ae6",
    "b7c70381a605d97e2a5b3ffdff7bdcd9d1719d4298a7076a033852e8a4ec0051f10cce4c",
    "48ba62d9307bf8f23f90add5be3b5734f8f9d30a7b32fa8a6c330674950ca19791d8f81a",
    "0babef047cb2020abee5322977e264e9fc6d818f1ab38394e50321d71af2e81af8c48e43",
    "ba633a8c6cdba4dc4004478203bf51f7360b231995c3cfa4e8449b4381b04d893f0b137d",
    "75c9b5706d07e40c76297b0a8f3fe0686311dc16eb4f0aa9606b0897d0ba480bb51b4f1f",
    "7fba38326e74bfa5425a6ece77e2961176d69c5bdd096655f9a3a0a33378404c3d9b5873",
    "fad7434152386b20315dd84a3b1a0b6b82dcc973cc96dee2fc46dcd51027219f76193eee",
    "235550e429c14a59f83718316e4bab7ad314036615f3c255ac0142c294bab34f006dc468",
    "e58f96daa818f21d7ed66ac3deaae7f2254b6b3192be7174f089bd0655f08f9a251c812a",
    "c921e9b4d888c8323a5f3741e6aafdff2a48e6e86f8fea09c9d38b54422ff09fa0db0b67",
];
const WRAP_GCM256: [&str; 12] = [
    "cdd2d4980a93ff8e54f647dd4fb3dd8495fef42daedc7e9b85f38367cbf86be41806323f",
    "867420cb276148544db295d78ad4763b468581f2436707be0a2494a86d45a7216001beab",
    "d6348017748d5b3f30d371e05f843789480166b47dd15d384507cd5eca01761a529e17a3",
    "cf5450f53bada18b75d200aca0e01fe2766ce5b30afb6edb42ce3a5225b4fa4a8a92b8ff",
    "d2b0bbbfc2617eaaadee20e93522df09290c5477b8b16b47e4856a756bd0e391133aeaf2",
    "85123df1ea975bebd9ace365b4230d9631cb6155dadee1cb2b094feda3a229d4961b00e2",
    "8b322de799697dac43b2f01b77dccdb4ed813b21f45a7f3d86813b28ebb77c4a8a3c47fc",
    "116dcdd3e7a16f4242debbf9820b31a7164f722bdb08ddb15d9b4160433434d8a23ffb9d",
    "4d547836a11462ee1d7342586a67a9ac78b562983ebc3c89dbb487db81c295d698e3153f",
    "b9441a7ece062a14860f3dad1becfe754274eacfc640cdae9b28e23e3a18cfa6111491e5",
    "b946d2560826b15374bc61cfc10de6493bfb7e609a48d27543a665c2e561fcbd654d7ca5",
    "73d030b1eda028270e7b5ac79ba5aba4eb9d0160f4520811e8d111e2d04e8930b63a17b2",
];

pub(super) fn wrap_packet(seq: u16) -> Vec<u8> {
    let mut p = h("80000000000000a0deadbeef");
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend(std::iter::repeat_n(seq as u8, 20));
    p
}

#[test]
fn libsrtp_roc_across_a_wrap() {
    let seqs: Vec<u16> = (65530..=65535).chain(0..=5).collect();
    for (suite, vectors) in [
        (Suite::AesCm128HmacSha1_80, WRAP_CM),
        (Suite::AeadAes128Gcm, WRAP_GCM),
        (Suite::AeadAes256Gcm, WRAP_GCM256),
    ] {
        let mut tx = Context::new(&master(suite));
        let mut rx = Context::new(&master(suite));
        for (seq, body) in seqs.iter().zip(vectors) {
            let plain = wrap_packet(*seq);
            let mut srtp = plain[..12].to_vec();
            srtp.extend(h(body));
            protect_is(&mut tx, &plain, &srtp, false);
            unprotect_is(&mut rx, &srtp, &plain, false);
        }
        assert_eq!(rx.rtp_rx.get(0xdeadbeef).unwrap().highest(), 0x1_0005);
    }
}

/// RFC 7714 sections 16 and 17: session keys given directly, the key
/// 00 01 02 .. 0f (AEAD_AES_128_GCM) or .. 1f (AEAD_AES_256_GCM), the salt
/// "Quid pro quo".
fn rfc7714_context_of(suite: Suite) -> Context {
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate().take(suite.key_len()) {
        *k = i as u8;
    }
    let salt = h("517569642070726f2071756f");
    let t = || Transform::from_session_keys(suite, &key, &salt, &[0; AUTH_KEY_LEN]);
    Context::with_transforms(suite, t(), t())
}

fn rfc7714_context() -> Context {
    rfc7714_context_of(Suite::AeadAes128Gcm)
}

fn rfc7714_rtp() -> Vec<u8> {
    [
        h("8040f17b8041f8d35501a0b2"),
        b"Gallia est omnis divisa in partes tres".to_vec(),
    ]
    .concat()
}

#[test]
fn rfc7714_16_1_1_rtp() {
    let srtp = h(
        "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a\
                  51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
    );
    protect_is(&mut rfc7714_context(), &rfc7714_rtp(), &srtp, false);
    unprotect_is(&mut rfc7714_context(), &srtp, &rfc7714_rtp(), false);
}

/// Sections 16.2.1 (encryption) and 16.2.2 (decryption): AEAD_AES_256_GCM.
#[test]
fn rfc7714_16_2_rtp_aes_256() {
    let srtp = h("8040f17b8041f8d35501a0b2 32b1de78a822fe12ef9f78fa332e33aa\
                  b18012389a58e2f3b50b2a0276ffae0f1ba63799b87b 7aa3db36dfffd6b0f9bb7878d7a76c13");
    let mut tx = rfc7714_context_of(Suite::AeadAes256Gcm);
    protect_is(&mut tx, &rfc7714_rtp(), &srtp, false);
    let mut rx = rfc7714_context_of(Suite::AeadAes256Gcm);
    unprotect_is(&mut rx, &srtp, &rfc7714_rtp(), false);
    // AES-128 with the first half of the key does not read it.
    let mut buf = srtp.clone();
    assert_eq!(
        rfc7714_context().unprotect_rtp(&mut buf, srtp.len()),
        Err(SrtpError::AuthFailed)
    );
}

const RFC7714_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61\
                            deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

#[test]
fn rfc7714_17_1_srtcp() {
    let srtcp = h(
        "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda\
                   4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
    );
    let mut tx = rfc7714_context();
    tx.rtcp_tx_next = 0x5d4;
    protect_is(&mut tx, &h(RFC7714_RTCP), &srtcp, true);
    unprotect_is(&mut rfc7714_context(), &srtcp, &h(RFC7714_RTCP), true);
}

#[test]
fn rfc7714_17_3_srtcp_unencrypted() {
    let srtcp = format!("{RFC7714_RTCP} 841dd9683dd78ec92ae58790125f62b3 000005d4");
    unprotect_is(&mut rfc7714_context(), &h(&srtcp), &h(RFC7714_RTCP), true);
    // A flipped bit anywhere fails, and the buffer is left as it was.
    let good = h(&srtcp);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let copy = bad.clone();
        let r = rfc7714_context().unprotect_rtcp(&mut bad, copy.len());
        assert!(r.is_err(), "byte {i}");
        if i < 8 || i >= good.len() - 20 {
            continue;
        }
        assert_eq!(bad, copy, "byte {i}: buffer restored");
    }
}

/// Section 17.2: AEAD_AES_256_GCM SRTCP, encrypted (E = 1), index 0x5d4.
#[test]
fn rfc7714_17_2_srtcp_aes_256() {
    let srtcp = h(
        "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be\
                   8415f658c61de047 6f1b6fad1d1eb30c4446839f57ff6f6c b26ac3be 800005d4",
    );
    let mut tx = rfc7714_context_of(Suite::AeadAes256Gcm);
    tx.rtcp_tx_next = 0x5d4;
    protect_is(&mut tx, &h(RFC7714_RTCP), &srtcp, true);
    let mut rx = rfc7714_context_of(Suite::AeadAes256Gcm);
    unprotect_is(&mut rx, &srtcp, &h(RFC7714_RTCP), true);
}

/// Section 17.4: AEAD_AES_256_GCM SRTCP, authenticated only (E = 0).
#[test]
fn rfc7714_17_4_srtcp_unencrypted_aes_256() {
    let srtcp = format!("{RFC7714_RTCP} 91db4afbfeee5a978fab4393ed2615fe 000005d4");
    let mut rx = rfc7714_context_of(Suite::AeadAes256Gcm);
    unprotect_is(&mut rx, &h(&srtcp), &h(RFC7714_RTCP), true);
    let mut bad = h(&srtcp);
    let n = bad.len();
    bad[n - 5] ^= 0x80;
    let mut rx = rfc7714_context_of(Suite::AeadAes256Gcm);
    assert_eq!(rx.unprotect_rtcp(&mut bad, n), Err(SrtpError::AuthFailed));
}
