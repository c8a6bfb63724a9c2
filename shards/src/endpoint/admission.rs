//! Overload admission of new calls, one per shard. Under more load than a
//! shard can serve, taking every new INVITE makes every call late: answers
//! miss the callers' T1, they retransmit, the queue grows and goodput falls.
//! So a new INVITE (out of dialog) is taken only while the shard keeps up;
//! the excess gets a stateless 503 with Retry-After, before it costs a
//! transaction, a call or a record. Everything else (responses, ACK, BYE,
//! CANCEL, in-dialog requests) always passes: it finishes calls and frees
//! state.
//!
//! Two signals, both cheap and honest:
//! * the receive backlog: after each full `recvmmsg` batch the runtime says
//!   when the last datagram it took reached the kernel (`Backlog`); its age
//!   is how late the shard is. Shedding starts at `max_delay_ms` and stops
//!   when the age is under half of that or a batch drains the socket
//!   (hysteresis that still recovers at once when the load drops);
//! * the store writer's queue (records and flows waiting for LMDB, shared by
//!   every shard): over `max_store_queue`, new calls would only add records
//!   the writer cannot keep up with, and memory;
//! * the peers: INVITE transactions whose message the shard resent after T1
//!   without the other side answering: our INVITE to a callee without any
//!   response, our final response to a caller without its ACK
//!   (`TransactionTable::stalled_invites`). A live UA answers within T1, so
//!   many of them mean the callees or the callers (or the way to them) are
//!   not keeping up; each such call would hold its state for timer B or H
//!   (32 s). Over `max_stalled_invites`, new calls are shed until the peers
//!   answer again. A few dead phones never get there.
//!
//! Sans-IO: time and the queue length are inputs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::runtime::Backlog;

/// Which shards' sockets are behind, shared by all shards (one bit per
/// shard, modulo 64): a shard that owns an INVITE another one received
/// sheds it while any is behind.
#[derive(Clone, Debug, Default)]
pub struct Pressure(Arc<AtomicU64>);

impl Pressure {
    pub fn set(&self, shard: usize, behind: bool) {
        let bit = 1u64 << (shard % 64);
        if behind {
            self.0.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.0.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    pub fn any_behind(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }
}

/// `[proxy] overload_*` as the shards apply them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Shed new INVITEs while datagrams wait this long in the socket, ms;
    /// 0 = never on this signal.
    pub max_delay_ms: u64,
    /// Shed new INVITEs while this many records wait for the store writer;
    /// 0 = never on this signal.
    pub max_store_queue: usize,
    /// Shed new INVITEs while this many of the shard's INVITE transactions
    /// were resent without the peer answering; 0 = never on this signal.
    pub max_stalled_invites: usize,
    /// The Retry-After of the 503, s.
    pub retry_after_secs: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_delay_ms: 100,
            max_store_queue: 20_000,
            max_stalled_invites: 200,
            retry_after_secs: 2,
        }
    }
}

/// Why a new INVITE was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// The shard's socket holds datagrams older than `max_delay_ms`.
    RecvBacklog,
    /// The store writer's queue is over `max_store_queue`.
    StoreBacklog,
    /// More INVITE transactions than `max_stalled_invites` were resent
    /// without the peer answering.
    PeerBacklog,
}

impl ShedReason {
    /// The gauge value AMI health and `/metrics` read (0 = admitting).
    pub fn code(reason: Option<ShedReason>) -> u64 {
        match reason {
            None => 0,
            Some(ShedReason::RecvBacklog) => 1,
            Some(ShedReason::StoreBacklog) => 2,
            Some(ShedReason::PeerBacklog) => 3,
        }
    }
}

/// A backlog stamp further from now than this is a clock step, not a delay.
const MAX_CREDIBLE_DELAY_MS: u64 = 60_000;

/// One shard's admission state.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    /// Shedding on the receive backlog (set at `max_delay_ms`, cleared under
    /// half of it or when a batch drains the socket).
    behind: bool,
    /// The age of the last full batch's last datagram, ms.
    delay_ms: u64,
    /// INVITE transactions resent without an answer, as last told.
    stalled_invites: usize,
}

impl Admission {
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            behind: false,
            delay_ms: 0,
            stalled_invites: 0,
        }
    }

    /// A batch from the socket at `now_unix_ms` (wall clock, the kernel's
    /// receive stamps are too).
    pub fn observe(&mut self, now_unix_ms: u64, backlog: Backlog) {
        match backlog {
            Backlog::Drained => {
                self.delay_ms = 0;
                self.behind = false;
            }
            Backlog::Behind { stamp_unix_ms } => {
                let age = now_unix_ms.saturating_sub(stamp_unix_ms);
                self.delay_ms = if age > MAX_CREDIBLE_DELAY_MS { 0 } else { age };
                let limit = self.cfg.max_delay_ms;
                if limit > 0 && self.delay_ms >= limit {
                    self.behind = true;
                } else if self.delay_ms < limit / 2 {
                    self.behind = false;
                }
            }
            // No stamp: the socket is not drained, but how late is unknown;
            // keep what the last stamp said.
            Backlog::Unknown => {}
        }
    }

    /// How many of the shard's INVITE transactions were resent without the
    /// peer answering yet (asked before each admission).
    pub fn observe_peers(&mut self, stalled_invites: usize) {
        self.stalled_invites = stalled_invites;
    }

    /// May a new call start now, with `store_queue` records waiting for
    /// the store writer?
    pub fn admit(&self, store_queue: usize) -> Result<(), ShedReason> {
        if self.behind {
            return Err(ShedReason::RecvBacklog);
        }
        let cap = self.cfg.max_store_queue;
        if cap > 0 && store_queue >= cap {
            return Err(ShedReason::StoreBacklog);
        }
        let cap = self.cfg.max_stalled_invites;
        if cap > 0 && self.stalled_invites >= cap {
            return Err(ShedReason::PeerBacklog);
        }
        Ok(())
    }

    /// Why new calls are refused right now, if they are.
    pub fn shedding(&self, store_queue: usize) -> Option<ShedReason> {
        self.admit(store_queue).err()
    }

    /// The last measured receive delay, ms (0 when the socket was drained).
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }

    pub fn retry_after_secs(&self) -> u32 {
        self.cfg.retry_after_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rig(max_delay_ms: u64, max_store_queue: usize) -> Admission {
        Admission::new(AdmissionConfig {
            max_delay_ms,
            max_store_queue,
            max_stalled_invites: 0,
            retry_after_secs: 2,
        })
    }

    #[test]
    fn unanswered_callees_shed_new_calls_until_they_answer_again() {
        let mut a = Admission::new(AdmissionConfig {
            max_stalled_invites: 50,
            ..AdmissionConfig::default()
        });
        a.observe_peers(3);
        assert!(a.admit(0).is_ok(), "a few dead phones shed nothing");
        a.observe_peers(50);
        assert_eq!(a.admit(0), Err(ShedReason::PeerBacklog));
        assert_eq!(ShedReason::code(a.shedding(0)), 3);
        a.observe_peers(49);
        assert!(a.admit(0).is_ok(), "back at once when they answer");
        let mut off = rig(0, 0);
        off.observe_peers(1_000_000);
        assert!(off.admit(0).is_ok(), "0 = never on this signal");
    }

    fn behind(now: u64, age: u64) -> (u64, Backlog) {
        (
            now,
            Backlog::Behind {
                stamp_unix_ms: now - age,
            },
        )
    }

    #[test]
    fn sheds_from_the_delay_limit_until_under_half_of_it() {
        let mut a = rig(100, 0);
        let t = 1_700_000_000_000;
        for (age, admitted) in [
            (10, true),
            (99, true),
            (100, false), // the limit: shedding starts
            (300, false),
            (60, false), // still over half: hysteresis
            (50, false),
            (49, true), // under half: admitting again
            (99, true),
            (120, false),
        ] {
            let (now, b) = behind(t + age * 7, age);
            a.observe(now, b);
            assert_eq!(a.admit(0).is_ok(), admitted, "age {age}");
            assert_eq!(a.delay_ms(), age);
        }
        assert_eq!(a.admit(0), Err(ShedReason::RecvBacklog));
    }

    #[test]
    fn a_drained_socket_admits_at_once() {
        let mut a = rig(100, 0);
        let (now, b) = behind(5_000_000, 2_000);
        a.observe(now, b);
        assert_eq!(a.shedding(0), Some(ShedReason::RecvBacklog));
        a.observe(now + 1, Backlog::Drained);
        assert_eq!(a.shedding(0), None);
        assert_eq!(a.delay_ms(), 0);
    }

    #[test]
    fn an_unknown_age_keeps_the_last_verdict() {
        let mut a = rig(100, 0);
        let (now, b) = behind(5_000_000, 150);
        a.observe(now, b);
        a.observe(now + 10, Backlog::Unknown);
        assert!(a.admit(0).is_err());
        a.observe(now + 20, Backlog::Drained);
        a.observe(now + 30, Backlog::Unknown);
        assert!(a.admit(0).is_ok());
    }

    #[test]
    fn clock_steps_are_not_delays() {
        let mut a = rig(100, 0);
        // The wall clock went back: the stamp is in the future.
        a.observe(
            1_000,
            Backlog::Behind {
                stamp_unix_ms: 90_000,
            },
        );
        assert!(a.admit(0).is_ok());
        // ...or forward by minutes.
        let (now, b) = behind(10_000_000, 3_600_000);
        a.observe(now, b);
        assert!(a.admit(0).is_ok());
        assert_eq!(a.delay_ms(), 0);
    }

    #[test]
    fn zero_turns_the_delay_signal_off() {
        let mut a = rig(0, 0);
        let (now, b) = behind(10_000_000, 30_000);
        a.observe(now, b);
        assert!(a.admit(usize::MAX).is_ok());
    }

    #[test]
    fn pressure_is_any_shard_behind() {
        let p = Pressure::default();
        let other = p.clone();
        assert!(!p.any_behind());
        p.set(1, true);
        p.set(3, true);
        assert!(other.any_behind());
        p.set(1, false);
        assert!(other.any_behind());
        other.set(3, false);
        assert!(!p.any_behind());
    }

    #[test]
    fn the_store_queue_sheds_at_its_limit() {
        let a = rig(100, 1_000);
        assert!(a.admit(999).is_ok());
        assert_eq!(a.admit(1_000), Err(ShedReason::StoreBacklog));
        assert_eq!(ShedReason::code(a.shedding(5_000)), 2);
        assert_eq!(ShedReason::code(a.shedding(0)), 0);
        assert_eq!(ShedReason::code(Some(ShedReason::RecvBacklog)), 1);
    }
}
