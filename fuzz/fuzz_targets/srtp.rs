//! SRTP and SDES: the input, as text, goes to the `a=crypto` parser (never a
//! panic; a parsed key formats and parses back to itself). As datagrams
//! (`len`, `flags`, bytes), each goes raw to the unprotect functions of
//! fixed-key contexts of both suites (never a panic, a plaintext never
//! longer than the packet), and through a protect -> unprotect round trip
//! per suite that must give back the input: RTP on one of four SSRCs (so
//! sender and receiver keep the same rollover state; a replayed index is
//! the only allowed refusal), RTCP on any SSRC (always accepted).

use shards::media::srtp::{sdes, Context, MasterKey, SrtpError, Suite};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

struct Pair {
    tx: Context,
    rx: Context,
    /// Receives the raw (forged) datagrams, so that `rx` stays in step.
    forged: Context,
    overhead: usize,
}

fn pair(suite: Suite) -> Pair {
    let key: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
    let master = MasterKey::new(suite, &key[..suite.key_len() + suite.salt_len()])
        .expect("fixed key of the right length");
    Pair {
        tx: Context::new(&master),
        rx: Context::new(&master),
        forged: Context::new(&master),
        overhead: suite.rtcp_overhead().max(suite.rtp_overhead()),
    }
}

fn run(mut data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_sdes(text);
    }
    let mut pairs = [pair(Suite::AesCm128HmacSha1_80), pair(Suite::AeadAes128Gcm)];
    while let [len, flags, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (packet, tail) = rest.split_at(n);
        data = tail;
        for p in &mut pairs {
            datagram(p, packet, *flags);
        }
    }
}

fn check_sdes(text: &str) {
    let Some(c) = sdes::parse(text) else { return };
    assert!((1..=999_999_999).contains(&c.tag), "{c:?}");
    assert!(c.suite_name.len() <= 64);
    assert_eq!(c.suite.is_some(), c.key.is_some(), "{c:?}");
    if let Some(key) = &c.key {
        let again = sdes::parse(&sdes::format(c.tag, key)).expect("formatted a=crypto parses");
        assert_eq!(
            (again.tag, again.suite, again.key.as_ref()),
            (c.tag, c.suite, Some(key))
        );
    }
}

fn datagram(p: &mut Pair, packet: &[u8], flags: u8) {
    // Raw, as if received.
    let mut buf = packet.to_vec();
    if let Ok(n) = p.forged.unprotect_rtp(&mut buf, packet.len()) {
        assert!(n <= packet.len());
    }
    let mut buf = packet.to_vec();
    if let Ok(n) = p.forged.unprotect_rtcp(&mut buf, packet.len()) {
        assert!(n <= packet.len());
    }

    // Round trip.
    let mut plain = packet.to_vec();
    let rtcp = flags & 0x80 != 0;
    if !rtcp {
        if let Some(ssrc) = plain.get_mut(8..12) {
            ssrc.copy_from_slice(&[0, 0, 0, flags & 3]);
        }
    }
    let mut buf = plain.clone();
    buf.resize(plain.len() + p.overhead, 0);
    let sent = if rtcp {
        p.tx.protect_rtcp(&mut buf, plain.len())
    } else {
        p.tx.protect_rtp(&mut buf, plain.len())
    };
    let Ok(sent) = sent else { return };
    let got = if rtcp {
        p.rx.unprotect_rtcp(&mut buf, sent)
    } else {
        p.rx.unprotect_rtp(&mut buf, sent)
    };
    match got {
        Ok(n) => assert_eq!(&buf[..n], &plain[..], "round trip"),
        Err(SrtpError::Replayed) if !rtcp => {}
        Err(e) => panic!("round trip refused: {e:?}"),
    }
}
