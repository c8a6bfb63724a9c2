//! The SRTP state of one side of a relay session: our key toward it per
//! suite, each with the one context that ever encrypts with it (so no
//! index is used twice under one key, whatever the side renegotiates), and,
//! once the side uses SRTP, the context that decrypts what it sends.
//!
//! Our key for a suite is made on first use and kept for the session (an
//! answer or a re-offer names the key it offered), unless the engine gives
//! the side a key of its own ([`SideCrypto::set`] with `ours`): a callee
//! leg's, offered to that leg alone.

use super::srtp::{Context, MasterKey, Suite};

/// One of our keys toward the side and its encrypting context.
struct Ours {
    key: MasterKey,
    outbound: Context,
}

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
}

impl Active {
    pub(super) fn suite(&self) -> Suite {
        self.theirs.suite()
    }
}

#[derive(Default)]
pub(super) struct SideCrypto {
    /// Per suite (`Suite::EVERY` order, [`Suite::index`]).
    ours: [Option<Ours>; Suite::EVERY.len()],
    pub(super) active: Option<Active>,
}

fn slot(suite: Suite) -> usize {
    suite.index()
}

impl SideCrypto {
    /// Our key toward the side for `suite`, made with `rng` on first use.
    pub(super) fn local_key(&mut self, suite: Suite, rng: &mut impl FnMut(&mut [u8])) -> MasterKey {
        self.ours[slot(suite)]
            .get_or_insert_with(|| {
                let key = MasterKey::random(suite, rng);
                Ours {
                    outbound: Context::new(&key),
                    key,
                }
            })
            .key
            .clone()
    }

    /// Our key toward the side for `suite`, if one was made.
    pub(super) fn made_key(&self, suite: Suite) -> Option<MasterKey> {
        self.ours[slot(suite)].as_ref().map(|o| o.key.clone())
    }

    /// The side sends with `theirs` (under `tag`, profile `savp`) and is
    /// sent with `ours` when given (a key offered to it alone), else with
    /// our key of the same suite; `None`: plain RTP. The decrypting context
    /// is kept when their key did not change (a re-INVITE repeating it), so
    /// its rollover counters and replay lists carry on; an encrypting
    /// context lives as long as its key.
    pub(super) fn set(
        &mut self,
        theirs: Option<(u32, MasterKey, bool)>,
        ours: Option<MasterKey>,
        rng: &mut impl FnMut(&mut [u8]),
    ) {
        let Some((tag, theirs, savp)) = theirs else {
            self.clear();
            return;
        };
        let suite = theirs.suite();
        match ours.filter(|k| k.suite() == suite) {
            Some(key) if self.made_key(suite).as_ref() != Some(&key) => {
                self.ours[slot(suite)] = Some(Ours {
                    outbound: Context::new(&key),
                    key,
                });
            }
            _ => {
                self.local_key(suite, rng);
            }
        }
        if let Some(a) = self.active.as_mut().filter(|a| a.theirs == theirs) {
            a.tag = tag;
            a.savp = savp;
            return;
        }
        self.active = Some(Active {
            inbound: Context::new(&theirs),
            theirs,
            tag,
            savp,
        });
    }

    /// Plain RTP both ways from now (its keys no longer hold); our
    /// encrypting contexts stay, so a later key of ours carries on.
    pub(super) fn clear(&mut self) {
        self.active = None;
    }

    /// The context that decrypts what the side sends, when it uses SRTP.
    pub(super) fn inbound(&mut self) -> Option<&mut Context> {
        self.active.as_mut().map(|a| &mut a.inbound)
    }

    /// The context that encrypts what the side is sent, when it uses SRTP.
    pub(super) fn outbound(&mut self) -> Option<&mut Context> {
        let suite = self.active.as_ref()?.suite();
        self.ours[slot(suite)].as_mut().map(|o| &mut o.outbound)
    }

    /// The suite in use, if any.
    pub(super) fn suite(&self) -> Option<Suite> {
        self.active.as_ref().map(Active::suite)
    }
}
