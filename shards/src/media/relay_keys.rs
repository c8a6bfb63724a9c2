//! The relay's SRTP keys per session side: the keys we send with (made
//! from the relay's key generator on first use), the key a side sends
//! with once its SDP named one, and what an answer to that side repeats.

use rand_chacha::rand_core::RngCore;

use super::{MediaRelay, Side};
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
    /// with our key of the same suite; `None`: plain RTP both ways.
    pub fn set_srtp(&mut self, id: u64, side: Side, theirs: Option<(u32, MasterKey, bool)>) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        // Never relayed by the fast path while (or once) it is encrypted.
        s.take_back_both(&mut self.fast, &mut self.counters);
        let rng = &mut self.keys;
        s.sides[side as usize]
            .crypto
            .set(theirs, &mut |b| rng.fill_bytes(b));
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
