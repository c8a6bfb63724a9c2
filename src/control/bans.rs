//! Bans of source addresses that fail digest authentication too often
//! (Kamailio's pike plus fail2ban, built in). Shards report each failed
//! digest response's source IP; [`BanBook`] (sans-IO, time is an input)
//! counts them per IP in a fixed window and bans an IP that reaches
//! `[security] ban_after_failures`; the [`Guard`] thread owns the flow and
//! tells every shard (`ShardMsg::Ban` / `Unban`), which drop what a banned
//! IP sends before parsing it. AMI lists and lifts bans
//! (`GET /ami/v1/bans`, `DELETE /ami/v1/bans/{ip}`); bans expire.
//!
//! A ban is of an address, never of a user: the user keeps working from
//! anywhere else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::json;
use shards::routing::HostPattern;
use shards::runtime::{Inbox, ShardMsg};

use super::api_error::ApiError;
use super::http::HttpState;
use crate::config::SecurityConfig;

/// At most this many addresses are counted or banned at once.
pub const MAX_TRACKED: usize = shards::security::MAX_BANS;

/// One ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    /// Unix s.
    pub since: u64,
    pub until: u64,
    /// Failed digests that led to it.
    pub failures: u32,
}

/// Failure counts and bans (sans-IO).
pub struct BanBook {
    after: u32,
    window_secs: u64,
    ban_secs: u64,
    trusted: Vec<HostPattern>,
    /// IP -> (window start, failures in it).
    failures: HashMap<IpAddr, (u64, u32)>,
    bans: HashMap<IpAddr, Ban>,
}

impl BanBook {
    pub fn new(cfg: &SecurityConfig) -> BanBook {
        BanBook {
            after: cfg.ban_after_failures,
            window_secs: cfg.ban_window_secs.max(1),
            ban_secs: cfg.ban_secs,
            trusted: cfg
                .trusted
                .iter()
                .filter_map(|t| HostPattern::parse(t).ok())
                .collect(),
            failures: HashMap::new(),
            bans: HashMap::new(),
        }
    }

    /// A digest failed from `ip` at `now` (unix s): the new ban, if this
    /// failure makes one.
    pub fn failure(&mut self, now: u64, ip: IpAddr) -> Option<Ban> {
        if self.after == 0
            || self.bans.get(&ip).is_some_and(|b| b.until > now)
            || self
                .trusted
                .iter()
                .any(|p| p.matches(SocketAddr::new(ip, 0)))
        {
            return None;
        }
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_TRACKED {
            let window = self.window_secs;
            self.failures.retain(|_, (start, _)| *start + window > now);
            if self.failures.len() >= MAX_TRACKED {
                return None;
            }
        }
        let entry = self.failures.entry(ip).or_insert((now, 0));
        if entry.0 + self.window_secs <= now {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 < self.after {
            return None;
        }
        let failures = entry.1;
        self.failures.remove(&ip);
        if self.bans.len() >= MAX_TRACKED {
            self.expire(now);
            if self.bans.len() >= MAX_TRACKED {
                return None;
            }
        }
        let ban = Ban {
            since: now,
            until: now.saturating_add(self.ban_secs),
            failures,
        };
        self.bans.insert(ip, ban);
        Some(ban)
    }

    /// Lifts the ban of `ip`; false when there was none.
    pub fn lift(&mut self, ip: IpAddr) -> bool {
        self.failures.remove(&ip);
        self.bans.remove(&ip).is_some()
    }

    /// Forgets ended bans and stale counts.
    pub fn expire(&mut self, now: u64) {
        self.bans.retain(|_, b| b.until > now);
        let window = self.window_secs;
        self.failures.retain(|_, (start, _)| *start + window > now);
    }

    /// Bans in force at `now`, by address.
    pub fn list(&self, now: u64) -> Vec<(IpAddr, Ban)> {
        let mut v: Vec<(IpAddr, Ban)> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(ip, b)| (*ip, *b))
            .collect();
        v.sort_by_key(|(ip, _)| *ip);
        v
    }
}

/// The ban book, the thread that feeds it and the shards it tells.
pub struct Guard {
    book: Mutex<BanBook>,
    inboxes: Arc<Vec<Arc<Inbox>>>,
}

impl Guard {
    /// Starts the thread that takes failed-digest reports from `failures`.
    pub fn start(
        cfg: &SecurityConfig,
        inboxes: Arc<Vec<Arc<Inbox>>>,
        failures: crossbeam_channel::Receiver<IpAddr>,
    ) -> std::io::Result<Arc<Guard>> {
        let guard = Arc::new(Guard {
            book: Mutex::new(BanBook::new(cfg)),
            inboxes,
        });
        let g = Arc::clone(&guard);
        std::thread::Builder::new()
            .name("ban-book".into())
            .spawn(move || loop {
                match failures.recv_timeout(Duration::from_secs(10)) {
                    Ok(ip) => g.on_failure(ip),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if let Ok(mut book) = g.book.lock() {
                            book.expire(unix_now());
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(guard)
    }

    fn on_failure(&self, ip: IpAddr) {
        let ban = match self.book.lock() {
            Ok(mut book) => book.failure(unix_now(), ip),
            Err(_) => None,
        };
        if let Some(ban) = ban {
            tracing::warn!(
                %ip,
                failures = ban.failures,
                secs = ban.until - ban.since,
                "source banned after failed digest authentication"
            );
            self.tell_shards(|| ShardMsg::Ban {
                ip,
                until: ban.until,
            });
        }
    }

    fn lift(&self, ip: IpAddr) -> bool {
        let lifted = self.book.lock().map(|mut b| b.lift(ip)).unwrap_or(false);
        if lifted {
            tracing::info!(%ip, "ban lifted over AMI");
            self.tell_shards(|| ShardMsg::Unban(ip));
        }
        lifted
    }

    fn tell_shards(&self, msg: impl Fn() -> ShardMsg) {
        for inbox in self.inboxes.iter() {
            if !inbox.push(msg()) {
                tracing::error!("a shard's inbox is full: a ban change did not reach it");
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /ami/v1/bans`, `DELETE /ami/v1/bans/{ip}`.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/ami/v1/bans", get(list))
        .route("/ami/v1/bans/{ip}", delete(lift))
}

async fn list(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !(state.ami_allowed)(peer.ip()) {
        return ApiError::not_ami_peer().into_response();
    }
    let now = unix_now();
    let items: Vec<_> = state
        .bans
        .book
        .lock()
        .map(|b| b.list(now))
        .unwrap_or_default()
        .into_iter()
        .map(|(ip, b)| {
            json!({
                "ip": ip.to_string(),
                "since": shards::cdr::time_fmt::rfc3339_ms(b.since * 1000),
                "until": shards::cdr::time_fmt::rfc3339_ms(b.until * 1000),
                "failures": b.failures,
            })
        })
        .collect();
    Json(json!({ "items": items })).into_response()
}

async fn lift(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(ip): Path<String>,
) -> Result<Response, ApiError> {
    if !(state.ami_allowed)(peer.ip()) {
        return Err(ApiError::not_ami_peer());
    }
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Err(
            ApiError::bad_request(format!("\"{ip}\" is not an IP address")).with_field("ip"),
        );
    };
    if state.bans.lift(ip) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("{ip} is not banned")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(after: u32) -> BanBook {
        BanBook::new(&SecurityConfig {
            ban_after_failures: after,
            ban_window_secs: 60,
            ban_secs: 900,
            trusted: vec!["10.0.0.0/8".into()],
            ..SecurityConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_within_the_window_ban_the_address_until_it_expires() {
        let mut b = book(3);
        let evil = ip("192.0.2.66");
        assert_eq!(b.failure(100, evil), None);
        assert_eq!(b.failure(110, evil), None);
        let ban = b.failure(120, evil).expect("the third failure bans");
        assert_eq!((ban.since, ban.until, ban.failures), (120, 1020, 3));
        assert_eq!(b.failure(130, evil), None, "already banned");
        assert_eq!(b.list(500).len(), 1);
        assert!(b.list(1020).is_empty(), "expired");
        b.expire(1020);
        assert!(b.bans.is_empty());
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_add_up() {
        let mut b = book(3);
        let slow = ip("192.0.2.7");
        for t in [0, 50, 100, 150, 200, 250] {
            assert_eq!(b.failure(t, slow), None, "at {t}");
        }
    }

    #[test]
    fn one_address_is_banned_not_its_neighbours_and_trusted_never() {
        let mut b = book(2);
        b.failure(0, ip("192.0.2.1"));
        assert!(b.failure(1, ip("192.0.2.1")).is_some());
        assert_eq!(b.failure(1, ip("192.0.2.2")), None);
        for t in 0..100 {
            assert_eq!(b.failure(t, ip("10.1.1.1")), None);
        }
        assert_eq!(b.list(2).len(), 1);
    }

    #[test]
    fn a_lifted_ban_starts_counting_afresh_and_zero_never_bans() {
        let mut b = book(2);
        let a = ip("192.0.2.1");
        b.failure(0, a);
        b.failure(0, a);
        assert!(b.lift(a));
        assert!(!b.lift(a));
        assert_eq!(b.failure(1, a), None);
        let mut off = book(0);
        for t in 0..1000 {
            assert_eq!(off.failure(t, a), None);
        }
    }

    #[test]
    fn the_counts_are_bounded() {
        let mut b = book(5);
        for i in 0..(MAX_TRACKED as u32 + 10) {
            b.failure(
                0,
                IpAddr::from((0x0a00_0000u32 ^ 0x8000_0000 ^ i).to_be_bytes()),
            );
        }
        assert!(b.failures.len() <= MAX_TRACKED);
    }
}
