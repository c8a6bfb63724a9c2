//! The serde form of trunks and routes: what a trunk or route file holds (API.md
//! section 1, "Static trunks and routes") and what a REST body will hold, before
//! validation. `RoutingSnapshot::build` turns these into the tables the shards use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::media::secure::SrtpPolicy;

/// How calls to a trunk are sent. Default `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// One trunk as written (its name is the table key, `[trunks.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkSpec {
    /// `sip:`/`sips:` URI calls to this trunk go to; absent (or "") for an
    /// inbound-only trunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    pub transport: Transport,
    /// Credentials for a carrier that challenges us; "" = none.
    pub username: String,
    pub password: String,
    /// Sources whose INVITEs come from this trunk: IP, CIDR or ip:port.
    pub inbound_hosts: Vec<String>,
    /// Concurrent calls through the trunk; 0 = unlimited.
    pub max_calls: u32,
    /// Calls started per second; 0 = unlimited.
    pub max_cps: u32,
    /// `transport = "tls"`: a PEM file of the CA(s) the trunk's certificate
    /// must chain to (a pinned CA); "" = the public web PKI roots.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_ca: String,
    /// `transport = "tls"`: the name the trunk's certificate must carry;
    /// "" = the host of `dest`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_name: String,
    /// SRTP with this trunk: `off` (default), `optional` (best-effort
    /// offers, SRTP when it offers keys) or `required`; keys only ever
    /// cross a TLS trunk.
    #[serde(skip_serializing_if = "SrtpPolicy::is_off")]
    pub srtp: SrtpPolicy,
}

/// `action = "forward" | "reject"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Forward,
    Reject,
}

/// How a forward route orders its `dest` trunks. Default `failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// In `dest` order; the next one when a trunk fails.
    #[default]
    Failover,
    /// The first trunk rotates per call; the others follow in `dest` order.
    RoundRobin,
    /// Smooth weighted round robin picks the first; the others follow by weight.
    Weighted,
    /// All at once; the first 2xx wins.
    Parallel,
}

/// `reject = { code = 403, reason = "Blocked" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectSpec {
    /// 400-699.
    pub code: u16,
    /// Reason phrase; absent = the standard phrase for `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    /// Higher is tried first; equal priorities keep file order. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Key (`to.user`, `header.X-Foo`, ...) -> exact value or regex. Empty = any call.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    /// Key -> template (`{n}` = capture n of that key's match).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rewrite: BTreeMap<String, String>,
    pub action: ActionKind,
    /// Trunk names (forward).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dest: Vec<String>,
    /// Forward only; default failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// `select = "weighted"` only: one weight per `dest` entry, in order; absent =
    /// equal weights. Not in API.md; a ShardPBX extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<u32>>,
    /// Reject only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<RejectSpec>,
}
