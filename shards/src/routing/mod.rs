//! Static routing (API.md section 1, "Static trunks and routes"): trunk and
//! route tables, matching, rewriting, target selection and trunk call limits.
//! Sans-IO: nothing here reads a file, a socket or a clock.
//!
//! * [`http_router`]: the HTTP router's question and decision (API.md 2.1).
//! * [`spec`]: the serde form of trunks and routes (files, REST bodies).
//! * [`trunk`] / [`inbound`]: trunks by name and by source address.
//! * [`limits`]: `max_calls` / `max_cps`, the only cross-shard state.
//! * [`matcher`] / [`route`] / [`select`]: routes, `decide`, target order.
//!
//! # Snapshots and reload
//!
//! A [`RoutingSnapshot`] is immutable once built. The control core builds one
//! (blocking work: reading files, compiling regexes), wraps it in an `Arc` and
//! sends a clone of that `Arc` to every shard by message; a shard swaps it in by
//! replacing its `Arc<RoutingSnapshot>` field between two messages it handles.
//! No lock and no `ArcSwap`: each shard owns its field. A call that already
//! decided keeps its targets (and its `CallPermit`); the old snapshot is freed
//! when the last shard dropped it. Before sending, the control core calls
//! [`RoutingSnapshot::carry_limits_from`] with the snapshot in use, so active
//! call counts survive the reload.

pub mod error;
pub mod http_router;
pub mod inbound;
pub mod limits;
pub mod matcher;
pub mod route;
pub mod select;
pub mod spec;
pub mod trunk;

#[cfg(test)]
mod tests;

pub use error::{RoutingError, Subject};
pub use inbound::{HostPattern, HostPatternError};
pub use limits::{CallPermit, Limit, TrunkLimits};
pub use matcher::{
    MatchError, MatchKey, Matcher, Pattern, RequestFields, RouteInput, Template, SOURCE_EXTENSION,
};
pub use route::{Action, Decision, Outcome, Rewrite, Route, RouteTable};
pub use select::SelectState;
pub use spec::{ActionKind, RejectSpec, RouteSpec, Select, Transport, TrunkSpec};
pub use trunk::{Trunk, TrunkTable};

/// The route and trunk tables a shard routes with, shared as `Arc<RoutingSnapshot>`.
#[derive(Debug, Default)]
pub struct RoutingSnapshot {
    pub routes: RouteTable,
    pub trunks: TrunkTable,
}

impl RoutingSnapshot {
    /// No routes, no trunks (what shards hold before the first load).
    pub fn empty() -> RoutingSnapshot {
        RoutingSnapshot::default()
    }

    /// Validates trunks (name, spec) and routes together. Error indexes are
    /// positions in `trunks` / `routes`; names must be unique within each.
    pub fn build(
        trunks: &[(String, TrunkSpec)],
        routes: &[RouteSpec],
    ) -> Result<RoutingSnapshot, RoutingError> {
        let trunks = TrunkTable::build(trunks)?;
        let routes = RouteTable::build(routes, &trunks)?;
        Ok(RoutingSnapshot { routes, trunks })
    }

    /// Makes each trunk that `previous` also has (by name) count calls in the
    /// previous trunk's `TrunkLimits`, set to this snapshot's limits, so calls in
    /// progress keep counting against `max_calls` after a reload.
    pub fn carry_limits_from(&mut self, previous: &RoutingSnapshot) {
        self.trunks.carry_limits_from(&previous.trunks);
    }
}
