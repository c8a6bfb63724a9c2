//! Identifiers a shard mints for the legs it originates: Call-IDs that hash
//! back to the minting shard (so every message of a call lands on its owner),
//! tags, RFC 3261 branches and digest cnonces.
//!
//! Every id carries at least 64 bits from a CSPRNG (ChaCha20) seeded from the
//! OS, independent of the nonce key: seeing any number of ids on the wire
//! tells nothing about the next one, so nobody can forge a response to a
//! branch, a request into a dialog, or guess a Call-ID.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::runtime::owner::owner_of;

/// Magic cookie every branch we mint starts with (RFC 3261 8.1.1.7).
pub const BRANCH_PREFIX: &str = "z9hG4bK";

/// The id source of one shard.
pub struct IdGen {
    rng: ChaCha20Rng,
    shard: usize,
    shards: usize,
}

impl IdGen {
    /// Seeded from the OS; fails only when the OS has no randomness to give.
    pub fn from_os(shard: usize, shards: usize) -> Result<IdGen, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)?;
        Ok(IdGen::from_seed(seed, shard, shards))
    }

    /// A fixed seed: reproducible ids for tests.
    pub fn from_seed(seed: [u8; 32], shard: usize, shards: usize) -> IdGen {
        IdGen {
            rng: ChaCha20Rng::from_seed(seed),
            shard,
            shards: shards.max(1),
        }
    }

    fn next(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A Call-ID for a leg we originate, `<hex>@<host>` (128 random bits),
    /// owned by this shard. About `shards` draws on average; bounded, and
    /// the last draw is used anyway (it is still unique, only its owner
    /// would differ).
    pub fn call_id(&mut self, host: &str) -> String {
        let mut id = String::with_capacity(33 + host.len());
        for _ in 0..(64 * self.shards) {
            id.clear();
            push_hex(&mut id, self.next());
            push_hex(&mut id, self.next());
            id.push('@');
            id.push_str(host);
            if owner_of(id.as_bytes(), self.shards) == self.shard {
                break;
            }
        }
        id
    }

    /// A To/From tag (64 random bits).
    pub fn tag(&mut self) -> String {
        let mut tag = String::with_capacity(16);
        push_hex(&mut tag, self.next());
        tag
    }

    /// A Via branch with the magic cookie (64 random bits). The engine
    /// appends one to its Via with [`IdGen::push_branch`].
    #[cfg(test)]
    pub fn branch(&mut self) -> String {
        let mut branch = String::with_capacity(BRANCH_PREFIX.len() + 17);
        self.push_branch(&mut branch);
        branch
    }

    /// Appends a new [`IdGen::branch`] to `out`.
    pub fn push_branch(&mut self, out: &mut String) {
        out.push_str(BRANCH_PREFIX);
        out.push('-');
        push_hex(out, self.next());
    }

    /// A digest client nonce (128 random bits).
    pub fn cnonce(&mut self) -> String {
        let mut cnonce = String::with_capacity(32);
        push_hex(&mut cnonce, self.next());
        push_hex(&mut cnonce, self.next());
        cnonce
    }
}

/// Appends `v` as 16 lowercase hex digits (`{:016x}`).
fn push_hex(out: &mut String, v: u64) {
    crate::auth::digest::push_hex(out, &v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn call_ids_hash_to_the_minting_shard_and_are_unique() {
        for shards in [1, 2, 3, 8] {
            for shard in 0..shards {
                let mut g = IdGen::from_seed([42 + shard as u8; 32], shard, shards);
                let mut seen = HashSet::new();
                for _ in 0..200 {
                    let id = g.call_id("10.0.0.1");
                    assert_eq!(owner_of(id.as_bytes(), shards), shard);
                    assert!(id.ends_with("@10.0.0.1"));
                    assert!(seen.insert(id));
                }
            }
        }
    }

    #[test]
    fn hex_digits_are_those_of_the_formatter() {
        for v in [0, 1, 0xf, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut out = String::new();
            push_hex(&mut out, v);
            assert_eq!(out, format!("{v:016x}"));
        }
    }

    #[test]
    fn branches_carry_the_cookie_and_tags_differ() {
        let mut g = IdGen::from_seed([7; 32], 0, 1);
        let b = g.branch();
        assert!(b.starts_with("z9hG4bK-"));
        assert_eq!(b.len(), "z9hG4bK-".len() + 16);
        assert_ne!(g.tag(), g.tag());
        assert_eq!(g.cnonce().len(), 32);
    }

    #[test]
    fn two_generators_from_the_os_share_nothing() {
        // The old generator was a function of the nonce key: two shards
        // (or two restarts) with one key minted related ids. OS seeds differ.
        let mut a = IdGen::from_os(0, 1).unwrap();
        let mut b = IdGen::from_os(0, 1).unwrap();
        let xs: HashSet<String> = (0..64).map(|_| a.branch()).collect();
        assert!((0..64).all(|_| !xs.contains(&b.branch())));
    }

    #[test]
    fn consecutive_ids_are_not_a_function_of_the_previous_one() {
        // xorshift: next = f(previous), so one id seen on the wire gives
        // every later one. Here equal outputs do not repeat their successors.
        let mut g = IdGen::from_seed([1; 32], 0, 1);
        let ids: Vec<u64> = (0..10_000).map(|_| g.next()).collect();
        let distinct: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
        // Bits are balanced (a broken generator shows a bias quickly).
        let ones: u32 = ids.iter().map(|x| x.count_ones()).sum();
        let mean = f64::from(ones) / ids.len() as f64;
        assert!((31.0..33.0).contains(&mean), "mean ones per id {mean}");
    }
}
