//! The relay's SRTP per session side: the keys we send with (made from the
//! relay's key generator on first use), the key a side sends with once its
//! SDP named one, what an answer to that side repeats, and sealing a
//! packet for a side that uses SRTP.

use rand_chacha::rand_core::RngCore;

use super::SideState;
use super::{MediaRelay, RelayCounters, Side};
use crate::media::srtp::{MasterKey, Suite};

/// What an SDP answer to an SRTP side carries: the tag its offer used, its
/// profile (`RTP/SAVP` or not), and our key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtpAnswer {
    pub tag: u32,
    pub savp: bool,
    pub key: MasterKey,
}

impl MediaRelay {
    /// Our key toward `side` of session `id` for `suite` (the same one for
    /// the whole session).
    pub fn srtp_local_key(&mut self, id: u64, side: Side, suite: Suite) -> Option<MasterKey> {
        let s = self.sessions.get_mut(&id)?;
        let rng = &mut self.keys;
        Some(
            s.sides[side as usize]
                .crypto
                .local_key(suite, &mut |b| rng.fill_bytes(b)),
        )
    }

    /// `side` of session `id` sends SRTP with `theirs` (its `a=crypto`
    /// tag, key, and whether its profile was `RTP/SAVP`), and is sent SRTP
    /// with `ours` when given (a key offered to that party alone, see
    /// [`MediaRelay::srtp_fresh_key`]), else with the side's key of the
    /// same suite; `None`: plain RTP both ways.
    pub fn set_srtp(
        &mut self,
        id: u64,
        side: Side,
        theirs: Option<(u32, MasterKey, bool)>,
        ours: Option<MasterKey>,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        // Never relayed by the fast path while (or once) it is encrypted.
        s.take_back_both(&mut self.fast, &mut self.counters);
        let rng = &mut self.keys;
        s.sides[side as usize]
            .crypto
            .set(theirs, ours, &mut |b| rng.fill_bytes(b));
    }

    /// A new key of ours for `suite`, kept nowhere: for one party of a
    /// side that may be several (the forks and failover targets of the
    /// callee side), so none of them learns the key another is sent with.
    pub fn srtp_fresh_key(&mut self, suite: Suite) -> MasterKey {
        let rng = &mut self.keys;
        MasterKey::random(suite, &mut |b| rng.fill_bytes(b))
    }

    /// What an answer to `side` says about SRTP; `None` when the side uses
    /// plain RTP.
    pub fn srtp_answer(&self, id: u64, side: Side) -> Option<SrtpAnswer> {
        let c = &self.sessions.get(&id)?.sides[side as usize].crypto;
        let a = c.active.as_ref()?;
        Some(SrtpAnswer {
            tag: a.tag,
            savp: a.savp,
            key: c.made_key(a.suite())?,
        })
    }

    /// The SRTP suite `side` of session `id` uses, if any.
    pub fn srtp_suite(&self, id: u64, side: Side) -> Option<Suite> {
        self.sessions.get(&id)?.sides[side as usize].crypto.suite()
    }
}

/// Encrypts `buf[..len]` for `to` when it uses SRTP; the new length.
/// None (counted) when the packet has no room for its tag.
pub(super) fn seal_with(
    counters: &mut RelayCounters,
    to: &mut SideState,
    buf: &mut [u8],
    len: usize,
    rtcp: bool,
) -> Option<usize> {
    let Some(c) = to.crypto.outbound() else {
        return Some(len);
    };
    let sealed = if rtcp {
        c.protect_rtcp(buf, len)
    } else {
        c.protect_rtp(buf, len)
    };
    match sealed {
        Ok(n) => Some(n),
        Err(_) => {
            counters.malformed += 1;
            counters.rejected += 1;
            None
        }
    }
}

/// The seed of the SRTP key generator: not the port draws' seed itself, so
/// the ports a peer sees tell it nothing about our keys.
pub(super) fn key_seed(seed: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"shardpbx srtp keys");
    h.update(seed);
    h.finalize().into()
}
