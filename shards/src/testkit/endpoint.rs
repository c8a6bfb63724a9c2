//! The SIP endpoint in the harness: [`SipEndpoint`] built in memory as the
//! binary builds it (`src/app.rs`), with the test settings of
//! `endpoint::settings` and static routing: the caller's address is a
//! trunk's inbound host (no digest), and one route sends every call to a
//! trunk whose destination is the callee's address. No store, one shard.
//! Media end to end by default; with [`Media::Proxied`] the RTP relay is
//! on (`media_proxy = always`), its sockets on the proxy's IP, in the
//! harness's socket table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::harness::Harness;
use super::ua::{Answering, Ua};
use crate::call::MediaMode;
use crate::endpoint::settings::test_settings;
use crate::endpoint::{EndpointSettings, SipEndpoint};
use crate::media::relay::RelayConfig;
use crate::routing::{RouteSpec, RoutingSnapshot, TrunkSpec};

/// Where the endpoint listens (the test settings' `sip_host:sip_port`).
pub(crate) const PROXY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5060);
/// The calling UA (TEST-NET-1), inbound host of trunk `carrier`.
pub(crate) const CALLER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060);
/// The called UA, destination of trunk `callee`.
pub(crate) const CALLEE: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)), 5060);
/// The trunk calls come in from, the trunk they go out to, the route.
pub(crate) const IN_TRUNK: &str = "carrier";
pub(crate) const OUT_TRUNK: &str = "callee";
pub(crate) const ROUTE: &str = "to-callee";
/// The relay's RTP ports (`[media] rtp_port_start..rtp_port_end`).
pub(crate) const RTP_PORTS: std::ops::Range<u16> = 30_000..30_100;

/// Where the calls' media flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Media {
    /// No relay: the UAs' SDP passes untouched (the relay is off).
    EndToEnd,
    /// Through the relay (`media_proxy = always`), with `[proxy]
    /// rtp_timeout` in ms (0: never).
    Proxied { rtp_timeout_ms: u64 },
}

/// What a test changes in the set-up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    /// How the callee answers INVITEs.
    pub(crate) callee: Answering,
    /// `[proxy] max_ring_time`, ms.
    pub(crate) max_ring_ms: u64,
    pub(crate) media: Media,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            callee: Answering::Accept { ring_ms: 0 },
            max_ring_ms: 60_000,
            media: Media::EndToEnd,
        }
    }
}

/// The routing of the set-up: `carrier` (inbound from the caller) and
/// `callee` (to the callee), every call from `carrier` forwarded to `callee`
/// (a route forwards a trunk's calls only when it names that trunk as
/// `source`).
fn routing() -> RoutingSnapshot {
    let trunks = [
        (
            IN_TRUNK.to_string(),
            TrunkSpec {
                inbound_hosts: vec![CALLER.ip().to_string()],
                ..TrunkSpec::default()
            },
        ),
        (
            OUT_TRUNK.to_string(),
            TrunkSpec {
                dest: Some(format!("sip:{CALLEE}")),
                ..TrunkSpec::default()
            },
        ),
    ];
    let routes: Vec<RouteSpec> = serde_json::from_value(serde_json::json!([
        {"name": ROUTE, "match": {"source": IN_TRUNK}, "action": "forward", "dest": [OUT_TRUNK]}
    ]))
    .expect("route spec");
    RoutingSnapshot::build(&trunks, &routes).expect("routing")
}

/// The relay's set-up as `src/app.rs` builds it, on the proxy's IP.
fn relay_config(rtp_timeout_ms: u64) -> RelayConfig {
    RelayConfig {
        bind_ip: PROXY.ip(),
        advertise: PROXY.ip(),
        port_start: RTP_PORTS.start,
        port_end: RTP_PORTS.end,
        rtp_timeout_ms,
        recordings_dir: "recordings".into(),
        recordings_cdr_dir: "recordings".into(),
        recording: false,
    }
}

/// A harness with the endpoint, a caller UA at [`CALLER`] (user 1001) and a
/// callee UA at [`CALLEE`] (user 2000).
pub(crate) fn endpoint(setup: Setup) -> Harness<SipEndpoint> {
    let (media, media_mode) = match setup.media {
        Media::EndToEnd => (None, MediaMode::Auto),
        Media::Proxied { rtp_timeout_ms } => {
            (Some(relay_config(rtp_timeout_ms)), MediaMode::Always)
        }
    };
    let settings = Arc::new(EndpointSettings {
        routing: Arc::new(routing()),
        max_ring_ms: setup.max_ring_ms,
        media,
        media_mode,
        ..test_settings()
    });
    assert_eq!(
        (settings.sip_host.as_str(), settings.sip_port),
        ("127.0.0.1", PROXY.port()),
        "PROXY must be the address the endpoint writes in Via and Contact"
    );
    let (control, rx) = crossbeam_channel::unbounded();
    let mut h = Harness::start(PROXY, rx, |ctx| {
        SipEndpoint::new(ctx, settings, control).expect("endpoint")
    });
    h.add_ua(Ua::new(
        "caller",
        "1001",
        CALLER,
        PROXY,
        Answering::Accept { ring_ms: 0 },
    ));
    h.add_ua(Ua::new("callee", "2000", CALLEE, PROXY, setup.callee));
    h
}
