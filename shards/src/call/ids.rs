//! Identifiers a shard mints for the legs it originates: Call-IDs that hash
//! back to the minting shard (so every message of a call lands on its owner),
//! tags and RFC 3261 branches. Deterministic given the seed: a shard seeds it
//! from the OS once; tests seed it with a constant.

use crate::runtime::owner::owner_of;

/// Magic cookie every branch we mint starts with (RFC 3261 8.1.1.7).
pub const BRANCH_PREFIX: &str = "z9hG4bK";

/// xorshift64* generator: fast, not cryptographic (nonces use HMAC instead).
pub struct IdGen {
    state: u64,
    shard: usize,
    shards: usize,
}

impl IdGen {
    pub fn new(seed: u64, shard: usize, shards: usize) -> IdGen {
        IdGen {
            state: seed | 1,
            shard,
            shards: shards.max(1),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A Call-ID for a leg we originate, `<hex>@<host>`, owned by this shard.
    /// About `shards` draws on average; bounded, and the last draw is used
    /// anyway (it is still unique, only its owner would differ).
    pub fn call_id(&mut self, host: &str) -> String {
        let mut id = String::new();
        for _ in 0..(64 * self.shards) {
            id = format!("{:016x}{:08x}@{host}", self.next(), self.next() as u32);
            if owner_of(id.as_bytes(), self.shards) == self.shard {
                break;
            }
        }
        id
    }

    /// A To/From tag.
    pub fn tag(&mut self) -> String {
        format!("{:012x}", self.next() & 0xffff_ffff_ffff)
    }

    /// A Via branch with the magic cookie.
    pub fn branch(&mut self) -> String {
        format!("{BRANCH_PREFIX}-{:016x}", self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn call_ids_hash_to_the_minting_shard_and_are_unique() {
        for shards in [1, 2, 3, 8] {
            for shard in 0..shards {
                let mut g = IdGen::new(42 + shard as u64, shard, shards);
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
    fn branches_carry_the_cookie_and_tags_differ() {
        let mut g = IdGen::new(7, 0, 1);
        let b = g.branch();
        assert!(b.starts_with("z9hG4bK-"));
        assert_ne!(g.tag(), g.tag());
    }
}
