//! The relay with SRTP sides, injected time: what an encrypted side sends
//! is authenticated and decrypted before anything else counts it, what
//! goes to an encrypted side leaves encrypted with our key, forgeries and
//! replays are dropped without touching the latch, and an encrypted
//! stream is never handed to the fast path.

use super::tests::{addr, local, relay, run_sockets, seq_of, session, sig, t};
use super::*;
use crate::media::fastpath::{Handover, Progress};
use crate::media::srtp::{Context, MasterKey, Suite};

/// Room for a tag after a packet.
const ROOM: usize = 64;

fn key(suite: Suite, fill: u8) -> MasterKey {
    MasterKey::random(suite, &mut |b| b.fill(fill))
}

fn plain(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x5e, 0xed, 0, 1];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// `pkt` protected with `ctx`, in a buffer with room to spare.
fn sealed(ctx: &mut Context, pkt: &[u8]) -> (Vec<u8>, usize) {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + ROOM, 0);
    let len = ctx.protect_rtp(&mut buf, pkt.len()).unwrap();
    (buf, len)
}

/// One datagram through the relay: where it went and what left.
fn through(
    r: &mut MediaRelay,
    ms: u64,
    port: u16,
    src: &str,
    buf: &mut [u8],
    len: usize,
) -> Option<(Forward, Vec<u8>)> {
    let f = r.on_datagram(t(ms), port, addr(src), buf, len)?;
    Some((f, buf[..f.len].to_vec()))
}

#[test]
fn an_srtp_caller_reaches_a_plain_callee_and_back() {
    for suite in Suite::ALL {
        let mut r = relay(30000);
        let (a, b) = session(&mut r, 1);
        run_sockets(&mut r);
        let theirs = key(suite, 3);
        r.set_srtp(1, Side::Caller, Some((5, theirs.clone(), true)), None);
        let mut phone = Context::new(&theirs);
        for seq in 0..5u16 {
            let (mut buf, len) = sealed(&mut phone, &plain(seq));
            let (f, out) = through(
                &mut r,
                20 * u64::from(seq),
                a,
                "127.0.0.1:7000",
                &mut buf,
                len,
            )
            .unwrap();
            assert_eq!((f.out_port, f.dest), (b, addr("127.0.0.1:8000")));
            assert_eq!(
                out,
                plain(seq),
                "{suite:?}: the plain side gets the plaintext"
            );
        }
        // Back: the plain callee's RTP leaves encrypted with our key, which
        // an answer to the caller carries under the caller's tag.
        let answer = r.srtp_answer(1, Side::Caller).unwrap();
        assert_eq!(
            (answer.tag, answer.savp, answer.key.suite()),
            (5, true, suite)
        );
        assert_ne!(answer.key, theirs, "our key is our own");
        let mut phone_rx = Context::new(&answer.key);
        for seq in 100..105u16 {
            let mut buf = plain(seq);
            let len = buf.len();
            buf.resize(len + ROOM, 0);
            let (f, mut out) = through(&mut r, 200, b, "127.0.0.1:8000", &mut buf, len).unwrap();
            assert_eq!((f.out_port, f.dest), (a, addr("127.0.0.1:7000")));
            assert_eq!(out.len(), len + suite.rtp_overhead());
            assert_ne!(out[12..172], plain(seq)[12..], "encrypted");
            let n = out.len();
            let n = phone_rx.unprotect_rtp(&mut out, n).unwrap();
            assert_eq!(out[..n], plain(seq)[..]);
        }
        let report = r.close(1, 1000).unwrap();
        assert_eq!(report.stats[0]["srtp"], suite.name());
        assert!(report.stats[1]["srtp"].is_null());
    }
}

#[test]
fn two_srtp_sides_are_decrypted_and_encrypted_again_each_with_its_keys() {
    let mut r = relay(30000);
    let (a, b) = session(&mut r, 1);
    run_sockets(&mut r);
    let caller_key = key(Suite::AesCm128HmacSha1_80, 1);
    let callee_key = key(Suite::AeadAes128Gcm, 2);
    r.set_srtp(1, Side::Caller, Some((1, caller_key.clone(), true)), None);
    r.set_srtp(1, Side::Callee, Some((2, callee_key, true)), None);
    let to_callee = r.srtp_answer(1, Side::Callee).unwrap().key;
    assert_eq!(to_callee.suite(), Suite::AeadAes128Gcm);
    let mut caller = Context::new(&caller_key);
    let mut callee_rx = Context::new(&to_callee);
    let (mut buf, len) = sealed(&mut caller, &plain(9));
    let (f, mut out) = through(&mut r, 0, a, "127.0.0.1:7000", &mut buf, len).unwrap();
    assert_eq!(f.out_port, b);
    assert_eq!(out.len(), plain(9).len() + 16, "GCM tag toward the callee");
    let n = out.len();
    let n = callee_rx.unprotect_rtp(&mut out, n).unwrap();
    assert_eq!(out[..n], plain(9)[..]);
}

#[test]
fn forgeries_and_replays_are_dropped_before_they_count_or_latch() {
    let mut r = relay(30000);
    let (a, _) = session(&mut r, 1);
    run_sockets(&mut r);
    let theirs = key(Suite::AesCm128HmacSha1_80, 3);
    r.set_srtp(1, Side::Caller, Some((1, theirs.clone(), true)), None);
    let mut phone = Context::new(&theirs);
    // Plain RTP on an SRTP side, a wrong key, a flipped bit: dropped.
    let mut p = plain(1);
    let len = p.len();
    p.resize(len + ROOM, 0);
    assert!(through(&mut r, 0, a, "127.0.0.1:7000", &mut p, len).is_none());
    let mut wrong = Context::new(&key(Suite::AesCm128HmacSha1_80, 4));
    let (mut buf, len) = sealed(&mut wrong, &plain(2));
    assert!(through(&mut r, 0, a, "127.0.0.1:7000", &mut buf, len).is_none());
    let (mut good, len) = sealed(&mut phone, &plain(3));
    let mut flipped = good.clone();
    flipped[20] ^= 1;
    assert!(through(&mut r, 0, a, "127.0.0.1:7000", &mut flipped, len).is_none());
    assert_eq!(r.counters.srtp_rejected, 3);
    assert_eq!(r.counters.forwarded, 0);
    let s = r.sessions.get(&1).unwrap();
    assert!(s.sides[0].candidate.is_none() && s.sides[0].stats.summary().packets == 0);
    // The genuine packet passes once; its replay does not.
    let mut again = good.clone();
    assert!(through(&mut r, 0, a, "127.0.0.1:7000", &mut good, len).is_some());
    assert!(through(&mut r, 0, a, "127.0.0.1:7000", &mut again, len).is_none());
    assert_eq!(r.counters.srtp_rejected, 4);
    // A forger on another IP is foreign before any crypto is spent.
    let (mut buf, len) = sealed(&mut phone, &plain(4));
    assert!(through(&mut r, 0, a, "192.0.2.66:7000", &mut buf, len).is_none());
    assert_eq!(r.counters.srtp_rejected, 4);
    assert_eq!(r.counters.foreign_source, 1);
}

#[test]
fn a_packet_with_no_room_for_its_tag_is_dropped() {
    let mut r = relay(30000);
    let (_, b) = session(&mut r, 1);
    run_sockets(&mut r);
    r.set_srtp(
        1,
        Side::Caller,
        Some((1, key(Suite::AeadAes128Gcm, 3), false)),
        None,
    );
    let mut p = plain(1);
    let len = p.len();
    assert!(through(&mut r, 0, b, "127.0.0.1:8000", &mut p, len).is_none());
    assert_eq!(r.counters.malformed, 1);
}

#[test]
fn mute_renumbers_before_encryption() {
    let mut r = relay(30000);
    let (a, b) = session(&mut r, 1);
    run_sockets(&mut r);
    r.set_srtp(
        1,
        Side::Callee,
        Some((1, key(Suite::AesCm128HmacSha1_80, 6), true)),
        None,
    );
    let mut rx = Context::new(&r.srtp_answer(1, Side::Callee).unwrap().key);
    let mut seqs = Vec::new();
    for seq in 0..30u16 {
        r.set_muted(1, Side::Caller, (10..20).contains(&seq));
        let mut buf = plain(seq);
        let len = buf.len();
        buf.resize(len + ROOM, 0);
        if let Some((f, mut out)) = through(
            &mut r,
            20 * u64::from(seq),
            a,
            "127.0.0.1:7000",
            &mut buf,
            len,
        ) {
            assert_eq!(f.out_port, b);
            let n = out.len();
            rx.unprotect_rtp(&mut out, n)
                .expect("authentic after renumbering");
            seqs.push(seq_of(&out));
        }
    }
    assert_eq!(
        seqs,
        (0..20).collect::<Vec<u16>>(),
        "no gap the callee sees"
    );
}

/// A fast path that takes anything.
#[derive(Default)]
struct Greedy(Vec<u16>);

impl FastPath for Greedy {
    fn hand_over(&mut self, port: u16, _: &Handover) -> bool {
        self.0.push(port);
        true
    }
    fn progress(&mut self, _: u16) -> Option<Progress> {
        None
    }
    fn take(&mut self, _: u16) -> Option<Progress> {
        None
    }
}

#[test]
fn encrypted_streams_are_never_handed_to_the_fast_path() {
    let mut r = relay(30000);
    r.set_fast_path(Box::new(Greedy::default()));
    let (a, b) = session(&mut r, 1);
    run_sockets(&mut r);
    r.signalled(1, Side::Caller, sig("127.0.0.1:7000", false), local());
    let theirs = key(Suite::AesCm128HmacSha1_80, 3);
    r.set_srtp(1, Side::Caller, Some((1, theirs.clone(), true)), None);
    let mut phone = Context::new(&theirs);
    for seq in 0..20u16 {
        let (mut buf, len) = sealed(&mut phone, &plain(seq));
        through(
            &mut r,
            20 * u64::from(seq),
            a,
            "127.0.0.1:7000",
            &mut buf,
            len,
        )
        .unwrap();
        let mut back = plain(seq);
        let len = back.len();
        back.resize(len + ROOM, 0);
        through(
            &mut r,
            20 * u64::from(seq),
            b,
            "127.0.0.1:8000",
            &mut back,
            len,
        )
        .unwrap();
    }
    r.on_tick(10_000);
    let s = r.sessions.get(&1).unwrap();
    assert!(
        s.sides.iter().all(|side| side.handed.is_none()),
        "neither direction: one end is encrypted"
    );
}

#[test]
fn forged_srtp_does_not_keep_a_silent_call_up() {
    let mut r = relay(30000);
    let (a, _) = session(&mut r, 1);
    run_sockets(&mut r);
    r.set_srtp(
        1,
        Side::Caller,
        Some((1, key(Suite::AeadAes128Gcm, 3), true)),
        None,
    );
    // The caller's genuine stream stops at once; a forger on its address
    // sends every 20 ms without the key. The RTP timeout (5 s) still
    // fires: only authentic packets count as media.
    let mut forger = Context::new(&key(Suite::AeadAes128Gcm, 9));
    let mut first_timeout = None;
    for i in 0..400u64 {
        let (mut buf, len) = sealed(&mut forger, &plain(i as u16));
        assert!(through(&mut r, 20 * i, a, "127.0.0.1:7000", &mut buf, len).is_none());
        if i % 50 == 0 && first_timeout.is_none() && r.on_tick(20 * i) == vec![1] {
            first_timeout = Some(20 * i);
        }
    }
    assert_eq!(first_timeout, Some(5_000), "timed out on time");
    assert_eq!(r.counters.srtp_rejected, 400);
}

#[test]
fn a_new_key_from_the_side_never_restarts_our_encryption() {
    // The caller re-keys (a re-INVITE with a new key): what we send it
    // goes on under our key with the same context, so no SRTP or SRTCP
    // index is used twice under one key.
    let mut r = relay(30000);
    let (_, b) = session(&mut r, 1);
    run_sockets(&mut r);
    r.set_srtp(
        1,
        Side::Caller,
        Some((1, key(Suite::AeadAes128Gcm, 3), true)),
        None,
    );
    let ours = r.srtp_answer(1, Side::Caller).unwrap().key;
    let mut rx = Context::new(&ours);
    let mut rtcp_indexes = Vec::new();
    for round in 0..2u8 {
        for seq in 0..3u16 {
            let mut buf = plain(u16::from(round) * 3 + seq);
            let len = buf.len();
            buf.resize(len + ROOM, 0);
            let (_, mut out) = through(&mut r, 0, b, "127.0.0.1:8000", &mut buf, len).unwrap();
            let n = out.len();
            rx.unprotect_rtp(&mut out, n)
                .expect("one context, no replay");
        }
        // An RTCP receiver report from the callee, sealed for the caller.
        let mut rr = vec![0x80, 201, 0, 1, 0, 0, 0, 7];
        let len = rr.len();
        rr.resize(len + ROOM, 0);
        let (_, out) = through(&mut r, 0, b + 1, "127.0.0.1:8001", &mut rr, len).unwrap();
        // GCM (RFC 7714): E || SRTCP index end the packet, after the tag.
        let at = out.len() - 4;
        rtcp_indexes.push(u32::from_be_bytes(out[at..].try_into().unwrap()) & 0x7fff_ffff);
        // The caller's new key.
        r.set_srtp(
            1,
            Side::Caller,
            Some((1, key(Suite::AeadAes128Gcm, 9 + round), true)),
            None,
        );
        assert_eq!(r.srtp_answer(1, Side::Caller).unwrap().key, ours);
    }
    assert_eq!(rtcp_indexes, vec![0, 1], "the SRTCP index goes on");
}

#[test]
fn a_key_given_for_one_party_replaces_ours_for_that_suite() {
    let mut r = relay(30000);
    session(&mut r, 1);
    run_sockets(&mut r);
    let leg_key = r.srtp_fresh_key(Suite::AesCm128HmacSha1_80);
    let other = r.srtp_fresh_key(Suite::AesCm128HmacSha1_80);
    assert_ne!(leg_key, other, "fresh keys differ");
    r.set_srtp(
        1,
        Side::Callee,
        Some((2, key(Suite::AesCm128HmacSha1_80, 4), true)),
        Some(leg_key.clone()),
    );
    assert_eq!(r.srtp_answer(1, Side::Callee).unwrap().key, leg_key);
}
