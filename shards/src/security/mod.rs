//! Per-source defences of one shard, checked on every datagram before it
//! is parsed: bans (decided by the control core from failed digests, see
//! `ShardMsg::Ban`) and the flood limit on requests ([`flood`]). Trusted
//! sources (`[security] trusted`) pass both. Sans-IO: time is an input.

pub mod flood;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::routing::HostPattern;
use flood::FloodLimiter;

/// At most this many bans a shard keeps (the control core keeps no more).
pub const MAX_BANS: usize = 100_000;

/// `[security]` as the shards apply it.
#[derive(Clone, Debug, Default)]
pub struct SecuritySettings {
    /// Requests per second one source address may send (burst: twice
    /// that); 0 = no limit.
    pub flood_per_sec: u32,
    /// Never banned nor throttled.
    pub trusted: Vec<HostPattern>,
    /// Where a failed digest response is reported (the control core's ban
    /// book); None: nobody counts them.
    pub auth_failures: Option<crossbeam_channel::Sender<IpAddr>>,
}

/// What becomes of a datagram from a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The source is banned: dropped unanswered.
    Banned,
    /// Over the flood limit: dropped unanswered.
    Flood,
}

/// The defences of one shard.
pub struct SourceGuard {
    trusted: Vec<HostPattern>,
    /// Banned IP -> until (unix s).
    bans: HashMap<IpAddr, u64>,
    flood: FloodLimiter,
}

impl SourceGuard {
    pub fn new(settings: &SecuritySettings) -> SourceGuard {
        SourceGuard {
            trusted: settings.trusted.clone(),
            bans: HashMap::new(),
            flood: FloodLimiter::new(settings.flood_per_sec),
        }
    }

    /// Whether `src` is exempt from bans and flood limits.
    pub fn is_trusted(&self, src: SocketAddr) -> bool {
        self.trusted.iter().any(|p| p.matches(src))
    }

    /// Checks a datagram from `src` (`request`: not a response) at `now`
    /// (unix s for bans, mono ms for the flood limit).
    pub fn check(&mut self, unix_s: u64, mono_ms: u64, src: SocketAddr, request: bool) -> Verdict {
        if self.bans.is_empty() && (!request || self.flood.is_off()) {
            return Verdict::Pass;
        }
        let ip = src.ip();
        match self.bans.get(&ip) {
            Some(&until) if until > unix_s => {
                if self.is_trusted(src) {
                    return Verdict::Pass;
                }
                return Verdict::Banned;
            }
            Some(_) => {
                self.bans.remove(&ip);
            }
            None => {}
        }
        if request && !self.flood.admit(mono_ms, ip) && !self.is_trusted(src) {
            return Verdict::Flood;
        }
        Verdict::Pass
    }

    /// The control core banned `ip` until `until` (unix s).
    pub fn ban(&mut self, ip: IpAddr, until: u64) {
        if self.bans.len() < MAX_BANS || self.bans.contains_key(&ip) {
            self.bans.insert(ip, until);
        }
    }

    /// The ban of `ip` was lifted.
    pub fn lift(&mut self, ip: IpAddr) {
        self.bans.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_ban_drops_everything_from_that_ip_until_it_expires_or_is_lifted() {
        let mut g = SourceGuard::new(&SecuritySettings::default());
        let evil = addr("192.0.2.66:5060");
        let other = addr("192.0.2.67:5060");
        assert_eq!(g.check(100, 0, evil, true), Verdict::Pass);
        g.ban(evil.ip(), 200);
        assert_eq!(g.check(100, 0, evil, true), Verdict::Banned);
        assert_eq!(
            g.check(100, 0, addr("192.0.2.66:7000"), false),
            Verdict::Banned
        );
        assert_eq!(g.check(100, 0, other, true), Verdict::Pass, "only that IP");
        assert_eq!(g.check(200, 0, evil, true), Verdict::Pass, "expired");
        g.ban(evil.ip(), 300);
        g.lift(evil.ip());
        assert_eq!(g.check(201, 0, evil, true), Verdict::Pass);
    }

    #[test]
    fn trusted_sources_are_never_banned_nor_throttled() {
        let mut g = SourceGuard::new(&SecuritySettings {
            flood_per_sec: 1,
            trusted: vec![HostPattern::parse("10.0.0.0/8").unwrap()],
            auth_failures: None,
        });
        let sbc = addr("10.1.2.3:5060");
        g.ban(sbc.ip(), 1_000);
        for i in 0..100 {
            assert_eq!(g.check(1, i, sbc, true), Verdict::Pass);
        }
        let phone = addr("192.0.2.1:5060");
        assert_eq!(g.check(1, 0, phone, true), Verdict::Pass);
        assert_eq!(g.check(1, 0, phone, true), Verdict::Pass);
        assert_eq!(g.check(1, 0, phone, true), Verdict::Flood);
        // Responses are not requests: never throttled.
        assert_eq!(g.check(1, 0, phone, false), Verdict::Pass);
    }
}
