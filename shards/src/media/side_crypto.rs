//! The SRTP state of one side of a relay session: our keys toward it (one
//! per suite, made on first use and kept for the session, so an answer or
//! a re-offer names the key it offered), and, once the side uses SRTP, the
//! contexts that decrypt what it sends and encrypt what it is sent.

use super::srtp::{Context, MasterKey, Suite};

/// A side that uses SRTP.
pub(super) struct Active {
    /// The key it sends with.
    theirs: MasterKey,
    /// The `a=crypto` tag its key came under (an answer repeats it).
    pub(super) tag: u32,
    /// Its profile was `RTP/SAVP` (answers keep it).
    pub(super) savp: bool,
    /// Decrypts what it sends.
    pub(super) inbound: Context,
    /// Encrypts what it is sent.
    pub(super) outbound: Context,
}

impl Active {
    pub(super) fn suite(&self) -> Suite {
        self.theirs.suite()
    }
}

#[derive(Default)]
pub(super) struct SideCrypto {
    /// Our key toward the side, per suite (`Suite::ALL` order).
    ours: [Option<MasterKey>; 2],
    pub(super) active: Option<Active>,
}

fn slot(suite: Suite) -> usize {
    Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0)
}

impl SideCrypto {
    /// Our key toward the side for `suite`, made with `rng` on first use.
    pub(super) fn local_key(&mut self, suite: Suite, rng: &mut impl FnMut(&mut [u8])) -> MasterKey {
        self.ours[slot(suite)]
            .get_or_insert_with(|| MasterKey::random(suite, rng))
            .clone()
    }

    /// Our key toward the side for `suite`, if one was made.
    pub(super) fn made_key(&self, suite: Suite) -> Option<MasterKey> {
        self.ours[slot(suite)].clone()
    }

    /// The side sends with `theirs` (under `tag`, profile `savp`) and is
    /// sent with our key of the same suite; `None`: plain RTP. Contexts
    /// are kept when the keys did not change (a re-INVITE repeating them),
    /// so rollover counters and replay lists carry on.
    pub(super) fn set(
        &mut self,
        theirs: Option<(u32, MasterKey, bool)>,
        rng: &mut impl FnMut(&mut [u8]),
    ) {
        let Some((tag, theirs, savp)) = theirs else {
            self.active = None;
            return;
        };
        if let Some(a) = self.active.as_mut().filter(|a| a.theirs == theirs) {
            a.tag = tag;
            a.savp = savp;
            return;
        }
        let ours = self.local_key(theirs.suite(), rng);
        self.active = Some(Active {
            inbound: Context::new(&theirs),
            outbound: Context::new(&ours),
            theirs,
            tag,
            savp,
        });
    }

    /// The suite in use, if any.
    pub(super) fn suite(&self) -> Option<Suite> {
        self.active.as_ref().map(Active::suite)
    }
}
