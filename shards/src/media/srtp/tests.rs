//! Behaviour of `Context`: round trips, tampering, replay, rollover,
//! the SSRC bound, and hostile lengths (never a panic).

use super::tests_vectors::{h, master, wrap_packet};
use super::{Context, MasterKey, SrtpError, Suite, MAX_SSRCS};

fn rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend(seq.to_be_bytes());
    p.extend(u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn rtcp(ssrc: u32) -> Vec<u8> {
    // RR with one report block.
    let mut p = vec![0x81, 201, 0, 7];
    p.extend(ssrc.to_be_bytes());
    p.extend((0..24).map(|i| i as u8));
    p
}

fn protect(ctx: &mut Context, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.suite().rtp_overhead(), 0);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn unprotect(ctx: &mut Context, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = srtp.to_vec();
    let n = ctx.unprotect_rtp(&mut buf, srtp.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn protect_rtcp(ctx: &mut Context, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.suite().rtcp_overhead(), 0);
    let n = ctx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn unprotect_rtcp(ctx: &mut Context, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = srtcp.to_vec();
    let n = ctx.unprotect_rtcp(&mut buf, srtcp.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn pair(suite: Suite) -> (Context, Context) {
    (Context::new(&master(suite)), Context::new(&master(suite)))
}

#[test]
fn suite_names_and_sizes() {
    // `ALL` is what SDES offers; `EVERY` adds AEAD_AES_256_GCM at the end.
    assert_eq!(
        Suite::ALL,
        [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm]
    );
    assert_eq!(Suite::EVERY[..2], Suite::ALL);
    assert_eq!(Suite::EVERY[2], Suite::AeadAes256Gcm);
    for (i, s) in Suite::EVERY.into_iter().enumerate() {
        assert_eq!(s.index(), i);
        assert_eq!(Suite::from_name(s.name()), Some(s));
    }
    let sizes = |s: Suite| {
        (
            s.key_len(),
            s.salt_len(),
            s.rtp_overhead(),
            s.rtcp_overhead(),
        )
    };
    assert_eq!(sizes(Suite::AesCm128HmacSha1_80), (16, 14, 10, 14));
    assert_eq!(sizes(Suite::AeadAes128Gcm), (16, 12, 16, 20));
    assert_eq!(sizes(Suite::AeadAes256Gcm), (32, 12, 16, 20));
    assert_eq!(Suite::AeadAes256Gcm.name(), "AEAD_AES_256_GCM");
    assert_eq!(Suite::from_name("aes_cm_128_hmac_sha1_80"), None);
    assert_eq!(Suite::from_name("AES_CM_128_HMAC_SHA1_32"), None);
    assert_eq!(Suite::from_name("AES_256_CM_HMAC_SHA1_80"), None);
    assert_eq!(Suite::from_name("aead_aes_256_gcm"), None);
}

#[test]
fn master_key_lengths_random_and_debug() {
    assert!(MasterKey::new(Suite::AesCm128HmacSha1_80, &[7; 30]).is_some());
    assert!(MasterKey::new(Suite::AesCm128HmacSha1_80, &[7; 28]).is_none());
    assert!(MasterKey::new(Suite::AeadAes128Gcm, &[7; 28]).is_some());
    assert!(MasterKey::new(Suite::AeadAes128Gcm, &[7; 30]).is_none());
    assert!(MasterKey::new(Suite::AeadAes256Gcm, &[7; 44]).is_some());
    for n in [28, 30, 43, 45, 46] {
        assert!(MasterKey::new(Suite::AeadAes256Gcm, &vec![7; n]).is_none());
    }
    let mut n = 0u8;
    let mut rng = |b: &mut [u8]| {
        for x in b {
            n = n.wrapping_add(1);
            *x = n;
        }
    };
    let k = MasterKey::random(Suite::AeadAes128Gcm, &mut rng);
    assert_eq!(k.suite(), Suite::AeadAes128Gcm);
    assert_eq!(k.key_and_salt(), (1..=28).collect::<Vec<u8>>());
    let dbg = format!("{k:?}");
    assert!(dbg.contains("AeadAes128Gcm"), "{dbg}");
    assert!(!dbg.contains("key:") && !dbg.contains("[1"), "{dbg}");
    assert_ne!(k, MasterKey::random(Suite::AeadAes128Gcm, &mut rng));
    let k = MasterKey::random(Suite::AeadAes256Gcm, &mut rng);
    assert_eq!(k.key_and_salt(), (57..=100).collect::<Vec<u8>>());
    assert_eq!(
        MasterKey::new(Suite::AeadAes256Gcm, &k.key_and_salt()),
        Some(k.clone())
    );
    let dbg = format!("{k:?}");
    assert!(
        dbg.contains("AeadAes256Gcm") && !dbg.contains("57"),
        "{dbg}"
    );
}

#[test]
fn round_trips_rtp_and_rtcp() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        for seq in 1000..1010 {
            let plain = rtp(0x1234, seq, 160);
            let srtp = protect(&mut tx, &plain);
            assert_ne!(srtp[12..172], plain[12..], "encrypted");
            assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain);
            let plain = rtcp(0x1234);
            let srtcp = protect_rtcp(&mut tx, &plain);
            assert_ne!(srtcp[8..32], plain[8..], "encrypted");
            assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), plain);
        }
        // Empty payload and a header-only RTCP packet.
        let plain = rtp(0x1234, 2000, 0);
        assert_eq!(
            unprotect(&mut rx, &protect(&mut tx, &plain)).unwrap(),
            plain
        );
        let plain = rtcp(0x1234)[..8].to_vec();
        assert_eq!(
            unprotect_rtcp(&mut rx, &protect_rtcp(&mut tx, &plain)).unwrap(),
            plain
        );
    }
}

#[test]
fn different_keys_do_not_authenticate() {
    for suite in Suite::EVERY {
        let mut tx = Context::new(&master(suite));
        let mut rx = Context::new(
            &MasterKey::new(suite, &[9; 44][..suite.key_len() + suite.salt_len()]).unwrap(),
        );
        let srtp = protect(&mut tx, &rtp(1, 1, 20));
        assert_eq!(unprotect(&mut rx, &srtp), Err(SrtpError::AuthFailed));
        let srtcp = protect_rtcp(&mut tx, &rtcp(1));
        assert_eq!(unprotect_rtcp(&mut rx, &srtcp), Err(SrtpError::AuthFailed));
    }
}

#[test]
fn tampering_fails_and_changes_nothing() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let first = protect(&mut tx, &rtp(7, 100, 40));
        unprotect(&mut rx, &first).unwrap();
        let srtp = protect(&mut tx, &rtp(7, 101, 40));
        for i in 0..srtp.len() {
            for bit in [0x01, 0x80] {
                let mut bad = srtp.clone();
                bad[i] ^= bit;
                let r = unprotect(&mut rx, &bad);
                assert!(
                    matches!(
                        r,
                        Err(SrtpError::AuthFailed | SrtpError::TooShort | SrtpError::Replayed)
                    ),
                    "{suite:?} byte {i}: {r:?}"
                );
            }
        }
        assert_eq!(rx.rtp_rx.get(7).unwrap().highest(), 100, "unchanged");
        // A forged packet from a new SSRC creates no state.
        let mut forged = srtp.clone();
        forged[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(unprotect(&mut rx, &forged), Err(SrtpError::AuthFailed));
        assert_eq!(rx.rtp_rx.len(), 1);
        // The genuine packet still passes, once.
        assert_eq!(unprotect(&mut rx, &srtp).unwrap(), rtp(7, 101, 40));
        assert_eq!(unprotect(&mut rx, &srtp), Err(SrtpError::Replayed));

        let srtcp = protect_rtcp(&mut tx, &rtcp(7));
        for i in 0..srtcp.len() {
            let mut bad = srtcp.clone();
            bad[i] ^= 0x04;
            assert!(
                unprotect_rtcp(&mut rx, &bad).is_err(),
                "{suite:?} rtcp byte {i}"
            );
        }
        assert_eq!(rx.rtcp_rx.len(), 0);
        assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), rtcp(7));
    }
}

#[test]
fn replay_and_window() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let packets: Vec<Vec<u8>> = (0..200)
            .map(|s| protect(&mut tx, &rtp(5, 1000 + s, 8)))
            .collect();
        unprotect(&mut rx, &packets[10]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[10]), Err(SrtpError::Replayed));
        // Late but inside the window: accepted once.
        unprotect(&mut rx, &packets[3]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[3]), Err(SrtpError::Replayed));
        unprotect(&mut rx, &packets[150]).unwrap();
        // 150 - 64 = 86: index 87 is the oldest still in the window.
        assert_eq!(unprotect(&mut rx, &packets[86]), Err(SrtpError::Replayed));
        unprotect(&mut rx, &packets[87]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[11]), Err(SrtpError::Replayed));

        let rtcps: Vec<Vec<u8>> = (0..100).map(|_| protect_rtcp(&mut tx, &rtcp(5))).collect();
        unprotect_rtcp(&mut rx, &rtcps[90]).unwrap();
        assert_eq!(
            unprotect_rtcp(&mut rx, &rtcps[90]),
            Err(SrtpError::Replayed)
        );
        unprotect_rtcp(&mut rx, &rtcps[40]).unwrap();
        assert_eq!(
            unprotect_rtcp(&mut rx, &rtcps[26]),
            Err(SrtpError::Replayed)
        );
    }
}

#[test]
fn roc_follows_a_wrap_with_reordering() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let seqs: Vec<u16> = (65500..=65535).chain(0..40).collect();
        let srtp: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&s| protect(&mut tx, &wrap_packet(s)))
            .collect();
        // Delivered with the packets around the wrap swapped pairwise.
        let mut order: Vec<usize> = (0..srtp.len()).collect();
        for pair in order[30..44].chunks_mut(2) {
            pair.swap(0, 1);
        }
        for i in order {
            assert_eq!(
                unprotect(&mut rx, &srtp[i]).unwrap(),
                wrap_packet(seqs[i]),
                "{suite:?} {i}"
            );
        }
        assert_eq!(rx.rtp_rx.get(0xdeadbeef).unwrap().highest(), 0x1_0000 + 39);
        // A late packet from before the wrap keeps ROC 0 at the sender too:
        // the same bytes as the first time.
        let late = protect(&mut tx, &wrap_packet(65534));
        assert_eq!(late, srtp[34]);
        assert_eq!(unprotect(&mut rx, &late), Err(SrtpError::Replayed));
        let mut rx2 = Context::new(&master(suite));
        unprotect(&mut rx2, &srtp[0]).unwrap();
        assert_eq!(unprotect(&mut rx2, &late).unwrap(), wrap_packet(65534));
    }
}

#[test]
fn ssrcs_are_bounded_and_the_lru_is_evicted() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let first: Vec<Vec<u8>> = (0..=MAX_SSRCS as u32)
            .map(|s| protect(&mut tx, &rtp(s, 10, 4)))
            .collect();
        let second: Vec<Vec<u8>> = (0..=MAX_SSRCS as u32)
            .map(|s| protect(&mut tx, &rtp(s, 11, 4)))
            .collect();
        assert_eq!(tx.rtp_tx.len(), MAX_SSRCS);
        for p in &first[..MAX_SSRCS] {
            unprotect(&mut rx, p).unwrap();
        }
        assert_eq!(rx.rtp_rx.len(), MAX_SSRCS);
        // The 9th SSRC evicts SSRC 0, the least recently used.
        unprotect(&mut rx, &first[MAX_SSRCS]).unwrap();
        assert_eq!(rx.rtp_rx.len(), MAX_SSRCS);
        assert!(rx.rtp_rx.get(0).is_none());
        assert!(rx.rtp_rx.get(1).is_some());
        // SSRC 0 starts afresh (its replay state is gone) and evicts SSRC 1;
        // the others go on with their windows.
        unprotect(&mut rx, &first[0]).unwrap();
        assert!(rx.rtp_rx.get(1).is_none());
        unprotect(&mut rx, &second[2]).unwrap();
        assert_eq!(unprotect(&mut rx, &first[2]), Err(SrtpError::Replayed));
        assert_eq!(
            unprotect(&mut rx, &second[MAX_SSRCS]).unwrap(),
            rtp(MAX_SSRCS as u32, 11, 4)
        );

        for s in 0..20u32 {
            unprotect_rtcp(&mut rx, &protect_rtcp(&mut tx, &rtcp(s))).unwrap();
        }
        assert_eq!(tx.rtcp_tx.len(), MAX_SSRCS);
        assert_eq!(rx.rtcp_rx.len(), MAX_SSRCS);
    }
}

#[test]
fn srtcp_index_never_repeats_after_eviction() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let a = protect_rtcp(&mut tx, &rtcp(1));
    for s in 2..20u32 {
        protect_rtcp(&mut tx, &rtcp(s));
    }
    assert!(tx.rtcp_tx.get(1).is_none(), "SSRC 1 evicted");
    let b = protect_rtcp(&mut tx, &rtcp(1));
    assert_ne!(a[a.len() - 14..a.len() - 10], b[b.len() - 14..b.len() - 10]);
    unprotect_rtcp(&mut rx, &a).unwrap();
    unprotect_rtcp(&mut rx, &b).unwrap();
    // Index exhausted: refused rather than reused.
    tx.rtcp_tx.put(1, 0x7fff_ffff);
    protect_rtcp(&mut tx, &rtcp(1));
    let mut buf = rtcp(1);
    let n = buf.len();
    buf.resize(n + 14, 0);
    assert_eq!(tx.protect_rtcp(&mut buf, n), Err(SrtpError::Replayed));
}

#[test]
fn too_short_and_no_room() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let plain = rtp(1, 1, 20);
        let mut buf = plain.clone();
        buf.resize(plain.len() + suite.rtp_overhead() - 1, 0);
        assert_eq!(
            tx.protect_rtp(&mut buf, plain.len()),
            Err(SrtpError::NoRoom)
        );
        let past = buf.len() + 1;
        assert_eq!(tx.protect_rtp(&mut buf, past), Err(SrtpError::NoRoom));
        let mut buf = plain[..11].to_vec();
        buf.resize(40, 0);
        assert_eq!(tx.protect_rtp(&mut buf, 11), Err(SrtpError::TooShort));
        // CSRC count says 15 CSRCs: 72 header octets.
        let mut big = plain.clone();
        big[0] |= 0x0f;
        big.resize(100, 0);
        assert_eq!(tx.protect_rtp(&mut big, 32), Err(SrtpError::TooShort));
        // X bit with an extension longer than the packet.
        let mut ext = plain.clone();
        ext[0] |= 0x10;
        ext[14..16].copy_from_slice(&[0xff, 0xff]);
        ext.resize(100, 0);
        assert_eq!(tx.protect_rtp(&mut ext, 32), Err(SrtpError::TooShort));
        assert_eq!(rx.unprotect_rtp(&mut ext, 32), Err(SrtpError::TooShort));

        let mut buf = vec![0u8; 7 + suite.rtcp_overhead()];
        assert_eq!(tx.protect_rtcp(&mut buf, 7), Err(SrtpError::TooShort));
        assert_eq!(tx.protect_rtcp(&mut buf, 8), Err(SrtpError::NoRoom));
        assert_eq!(rx.unprotect_rtp(&mut [0u8; 4], 5), Err(SrtpError::TooShort));
        assert_eq!(
            rx.unprotect_rtcp(&mut [0u8; 4], 5),
            Err(SrtpError::TooShort)
        );
        assert!(tx.rtp_tx.len() == 0 && tx.rtcp_tx.len() == 0);
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for suite in Suite::EVERY {
        let (mut tx, mut rx) = pair(suite);
        let mut ext = h("b2601235decafbadcafebabe1111111122222222bede0001aabbccdd");
        ext.extend([0x55; 30]);
        for plain in [rtp(3, 9, 160), ext] {
            let srtp = protect(&mut tx, &plain);
            for n in 0..srtp.len() {
                let mut buf = srtp.clone();
                assert!(rx.unprotect_rtp(&mut buf, n).is_err(), "{suite:?} len {n}");
                let mut buf = srtp[..n].to_vec();
                assert!(
                    rx.unprotect_rtcp(&mut buf, n).is_err(),
                    "{suite:?} rtcp len {n}"
                );
                // Protecting a truncated packet never panics either.
                let mut buf = srtp.clone();
                buf.resize(srtp.len() + 32, 0);
                let _ = tx.protect_rtp(&mut buf, n);
                let _ = tx.protect_rtcp(&mut buf, n);
            }
            assert!(rx.unprotect_rtp(&mut srtp.clone(), srtp.len()).is_ok());
        }
        let srtcp = protect_rtcp(&mut tx, &rtcp(3));
        for n in 0..srtcp.len() {
            let mut buf = srtcp.clone();
            assert!(rx.unprotect_rtcp(&mut buf, n).is_err(), "{suite:?} len {n}");
        }
        assert!(unprotect_rtcp(&mut rx, &srtcp).is_ok());
    }
}

#[test]
fn relay_reencrypts_between_suites() {
    // What the relay does: unprotect with one context, protect with another.
    let mut a_tx = Context::new(&master(Suite::AesCm128HmacSha1_80));
    let mut a_rx = Context::new(&master(Suite::AesCm128HmacSha1_80));
    let mut b_tx = Context::new(&master(Suite::AeadAes128Gcm));
    let mut b_rx = Context::new(&master(Suite::AeadAes128Gcm));
    for seq in 0..50u16 {
        let plain = rtp(77, seq.wrapping_add(65520), 160);
        let mut buf = protect(&mut a_tx, &plain);
        let len = buf.len();
        buf.resize(200, 0);
        let n = a_rx.unprotect_rtp(&mut buf, len).unwrap();
        let n = b_tx.protect_rtp(&mut buf, n).unwrap();
        let out = unprotect(&mut b_rx, &buf[..n]).unwrap();
        assert_eq!(out, plain);
    }
}

#[test]
fn aes_256_and_aes_128_gcm_do_not_mix() {
    // The same key octets as AEAD_AES_128_GCM (the first 16 and the salt)
    // and as AEAD_AES_256_GCM: neither reads the other.
    let raw: Vec<u8> = (1..=44).collect();
    let k256 = MasterKey::new(Suite::AeadAes256Gcm, &raw).unwrap();
    let mut k128_raw = raw[..16].to_vec();
    k128_raw.extend_from_slice(&raw[32..44]);
    let k128 = MasterKey::new(Suite::AeadAes128Gcm, &k128_raw).unwrap();
    let srtp = protect(&mut Context::new(&k256), &rtp(9, 1, 40));
    assert_eq!(
        unprotect(&mut Context::new(&k128), &srtp),
        Err(SrtpError::AuthFailed)
    );
    let srtp = protect(&mut Context::new(&k128), &rtp(9, 1, 40));
    assert_eq!(
        unprotect(&mut Context::new(&k256), &srtp),
        Err(SrtpError::AuthFailed)
    );
    // A relay between the two suites, as between a browser and a phone.
    let (mut a_tx, mut a_rx) = (Context::new(&k256), Context::new(&k256));
    let (mut b_tx, mut b_rx) = (Context::new(&k128), Context::new(&k128));
    for seq in 0..20u16 {
        let plain = rtp(9, seq, 160);
        let mut buf = protect(&mut a_tx, &plain);
        let len = buf.len();
        buf.resize(200, 0);
        let n = a_rx.unprotect_rtp(&mut buf, len).unwrap();
        let n = b_tx.protect_rtp(&mut buf, n).unwrap();
        assert_eq!(unprotect(&mut b_rx, &buf[..n]).unwrap(), plain);
    }
}
