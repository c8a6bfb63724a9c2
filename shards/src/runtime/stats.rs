//! Per-shard counters. Each shard writes only its own (relaxed atomics on a
//! cache line of their own); the control core reads them for /metrics.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Counters of one shard.
        #[repr(align(128))]
        #[derive(Default, Debug)]
        pub struct ShardStats {
            $(#[doc = $help] pub $name: AtomicU64,)*
            /// Levels (not counters).
            pub gauges: ShardGauges,
        }

        impl ShardStats {
            /// `(name, help, value)` of every counter, for exposition.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    rx_datagrams: "SIP datagrams received on this shard's socket",
    rx_bytes: "SIP bytes received on this shard's socket",
    tx_datagrams: "SIP datagrams sent",
    tx_errors: "SIP datagrams the kernel refused to send",
    handoff_out: "datagrams handed to their owner shard",
    handoff_in: "datagrams received from another shard",
    handoff_dropped: "datagrams dropped because the owner shard's inbox was full",
    handled: "SIP messages handled by this shard as owner",
    parse_errors: "malformed SIP messages (answered 400 or dropped)",
    dropped: "SIP messages dropped without a response",
    bad_requests: "400 responses sent",
    retransmissions: "retransmitted requests absorbed or answered from the transaction cache",
    registers: "REGISTER requests handled",
    registrations_ok: "REGISTER requests answered 200",
    auth_challenges: "digest challenges sent (401/407)",
    auth_failures: "digest failures (403)",
    options: "OPTIONS answered",
    rtp_rx: "RTP/RTCP datagrams received on this shard's media ports",
    rtp_tx: "RTP/RTCP datagrams relayed",
    rtp_dropped: "RTP/RTCP datagrams not relayed (unknown source, muted, no destination, send failed)",
}

/// Levels one shard reports (set, not added), kept apart from the counters.
#[derive(Default, Debug)]
pub struct ShardGauges {
    /// Calls this shard owns now.
    pub active_calls: AtomicU64,
    /// Media sessions (proxied calls) of this shard now.
    pub rtp_sessions: AtomicU64,
    /// The shard thread's Linux thread id (0 until it runs), for its CPU time.
    pub tid: AtomicU64,
}

impl ShardGauges {
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    pub fn get(gauge: &AtomicU64) -> u64 {
        gauge.load(Ordering::Relaxed)
    }
}

impl ShardStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
