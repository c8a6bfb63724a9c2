//! Target order of a forward route, per `select`:
//!
//! * `failover`: `dest` order.
//! * `round_robin`: the first target rotates per call (per route, per shard);
//!   the others follow in `dest` order after it, wrapping around.
//! * `weighted`: a smooth weighted round robin (nginx's: each pick adds every
//!   weight to its running value, takes the largest, first on ties, and subtracts
//!   the total from it) chooses the first target, deterministically and evenly
//!   spread (weights 3,1 give a a b a ...); the others follow by weight, highest
//!   first, ties in `dest` order. A weight of 0 is never first, only a fallback.
//! * `parallel`: all of `dest` at once.
//!
//! [`SelectState`] holds the counters. Each shard has its own (plain integers,
//! no atomics): the rotation is per shard, which spreads evenly overall because
//! calls spread over shards by Call-ID hash.

use std::sync::Arc;

use super::spec::Select;

/// Rotation state of one shard for one route table. A new table (reload) starts
/// it afresh.
#[derive(Debug, Default)]
pub struct SelectState {
    table: u64,
    /// Per route: calls routed by round robin so far.
    rr: Vec<u64>,
    /// Per route: the smooth weighted round robin running values.
    current: Vec<Vec<i64>>,
}

impl SelectState {
    pub fn new() -> SelectState {
        SelectState::default()
    }

    /// Resets when `table` is not the one the counters are for.
    pub(crate) fn sync(&mut self, table: u64, routes: usize) {
        if self.table != table || self.rr.len() != routes {
            self.table = table;
            self.rr = vec![0; routes];
            self.current = vec![Vec::new(); routes];
        }
    }

    fn next_rr(&mut self, route: usize) -> u64 {
        let n = self.rr[route];
        self.rr[route] = n.wrapping_add(1);
        n
    }

    /// One smooth weighted round robin pick for `route`.
    fn weighted_pick(&mut self, route: usize, weights: &[u32]) -> usize {
        let current = &mut self.current[route];
        if current.len() != weights.len() {
            *current = vec![0; weights.len()];
        }
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        best
    }
}

/// How a route's targets are ordered, fixed when the table is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) select: Select,
    /// `weighted`: one weight per target.
    pub(crate) weights: Vec<u32>,
    /// `weighted`: target indexes by weight, highest first, stable.
    pub(crate) by_weight: Vec<usize>,
}

impl Plan {
    pub(crate) fn new(select: Select, weights: Vec<u32>) -> Plan {
        let mut by_weight: Vec<usize> = (0..weights.len()).collect();
        by_weight.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
        Plan {
            select,
            weights,
            by_weight,
        }
    }

    /// The targets for one call, and whether they ring in parallel.
    pub(crate) fn order(
        &self,
        dest: &[Arc<str>],
        route: usize,
        state: &mut SelectState,
    ) -> (Vec<Arc<str>>, bool) {
        if dest.is_empty() || (self.select == Select::Weighted && self.weights.len() != dest.len())
        {
            // Not built by `RouteTable::build`; nothing sensible to rotate.
            return (dest.to_vec(), self.select == Select::Parallel);
        }
        match self.select {
            Select::Failover => (dest.to_vec(), false),
            Select::Parallel => (dest.to_vec(), true),
            Select::RoundRobin => {
                let start = (state.next_rr(route) % dest.len().max(1) as u64) as usize;
                let targets = dest[start..]
                    .iter()
                    .chain(&dest[..start])
                    .cloned()
                    .collect();
                (targets, false)
            }
            Select::Weighted => {
                let first = state.weighted_pick(route, &self.weights);
                let mut targets = Vec::with_capacity(dest.len());
                targets.push(Arc::clone(&dest[first]));
                targets.extend(
                    self.by_weight
                        .iter()
                        .filter(|&&i| i != first)
                        .map(|&i| Arc::clone(&dest[i])),
                );
                (targets, false)
            }
        }
    }
}
