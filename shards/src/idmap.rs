//! Maps and sets keyed by what a shard mints itself (call numbers,
//! transaction handles), hashed with foldhash: a lookup costs a few
//! nanoseconds instead of SipHash's tens. A key that comes off the wire
//! (Call-ID, branch, address) keeps std's SipHash with its random key:
//! an attacker chooses those, and only a keyed PRF stands up to chosen
//! collisions.

/// A map keyed by an id we minted.
pub type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of ids we minted.
pub type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
