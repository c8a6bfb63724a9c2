//! Which shard owns a message: `hash(Call-ID) % shards`, the same on every
//! shard and stable across restarts (FNV-1a, no per-process seed).

/// FNV-1a 64 of `call_id`.
pub fn call_id_hash(call_id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The owner shard of a Call-ID.
pub fn owner_of(call_id: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    (call_id_hash(call_id) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_stable_and_spread() {
        assert_eq!(owner_of(b"abc@host", 1), 0);
        let a = owner_of(b"abc@host", 4);
        assert_eq!(a, owner_of(b"abc@host", 4));
        let mut seen = [0usize; 4];
        for i in 0..400 {
            seen[owner_of(format!("call-{i}@x").as_bytes(), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven spread: {seen:?}");
    }
}
