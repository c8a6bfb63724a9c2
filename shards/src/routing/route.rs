//! [`Route`] and [`RouteTable`]: validated routes in the order they are tried,
//! and [`RouteTable::decide`], the per-call lookup (no I/O, no locks; the only
//! mutable state is the caller's [`SelectState`]).
//!
//! Rewrites: `rewrite = { "to.user" = "+{1}" }` sets `to.user` to `+` and capture
//! 1 of the route's match on `to.user` itself. `{n}` always refers to the match
//! on the key being rewritten (a rewrite of `request_uri.user` with `{1}` needs a
//! regex on `request_uri.user`); `{0}` is the whole match (for an exact match,
//! the value). A rewrite of a key the route does not match is literal text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{check_header_text, check_name, field_key, RoutingError};
use super::matcher::{MatchKey, Matcher, RouteInput, Template, SOURCE_EXTENSION};
use super::select::{Plan, SelectState};
use super::spec::{ActionKind, RouteSpec, Select};
use super::trunk::TrunkTable;

/// What a route does with a call it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward {
        /// Trunk names, each a trunk with a `dest`.
        dest: Vec<Arc<str>>,
        select: Select,
        /// As configured (`weighted` only; `None` = equal weights).
        weights: Option<Vec<u32>>,
    },
    Reject {
        /// 400-699.
        code: u16,
        reason: Arc<str>,
    },
}

/// One rewrite of a route.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub key: MatchKey,
    pub template: Template,
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    pub priority: i32,
    /// All must match.
    pub matchers: Vec<Matcher>,
    pub rewrite: Vec<Rewrite>,
    pub action: Action,
    /// Per matcher: the rewrite of the same key, if any.
    rewrite_of: Vec<Option<usize>>,
    /// Rewrites of keys the route does not match (literal text).
    literal: Vec<usize>,
    plan: Plan,
}

/// The outcome of routing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The route that matched (CDR `routeId`).
    pub route: Arc<str>,
    /// New values for request fields, to apply before the call goes on.
    pub rewrites: Vec<(MatchKey, String)>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with this final response.
    Reject { code: u16, reason: Arc<str> },
    /// Trunk names in the order to try; all at once when `parallel`.
    Forward {
        targets: Vec<Arc<str>>,
        parallel: bool,
    },
}

/// Routes in the order they are tried: priority, higher first; equal priorities
/// in the order given (files sorted by path, entries in file order).
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Unique per built table, so a shard's `SelectState` notices a new table.
    id: u64,
    routes: Vec<Route>,
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

impl RouteTable {
    /// Validates routes against `trunks`; error indexes are positions in `specs`.
    pub fn build(specs: &[RouteSpec], trunks: &TrunkTable) -> Result<RouteTable, RoutingError> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut routes = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let name = spec.name.as_str();
            check_name(name).map_err(|e| RoutingError::route(i, name, "name").because(e))?;
            if let Some(&first) = names.get(name) {
                return Err(RoutingError::route(i, name, "name").duplicate_of(first));
            }
            names.insert(name, i);
            routes.push(build_route(i, spec, trunks)?);
        }
        // Stable: equal priorities keep their order.
        routes.sort_by_key(|r: &Route| std::cmp::Reverse(r.priority));
        Ok(RouteTable {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            routes,
        })
    }

    /// The first route (in priority order) whose matchers all match `input`, and
    /// what it does. `None` = no route claims the call (local AORs, 404/480).
    pub fn decide<I: RouteInput + ?Sized>(
        &self,
        input: &I,
        state: &mut SelectState,
    ) -> Option<Decision> {
        state.sync(self.id, self.routes.len());
        // A call from a trunk is forwarded only by routes that name that
        // trunk as their source: nobody hairpins from one carrier to another
        // through routes written for the extensions. Rejects apply to all.
        let from_trunk = input
            .value(&MatchKey::Source)
            .is_some_and(|s| s != SOURCE_EXTENSION);
        'routes: for (index, route) in self.routes.iter().enumerate() {
            if from_trunk
                && matches!(route.action, Action::Forward { .. })
                && !route.matchers.iter().any(|m| m.key == MatchKey::Source)
            {
                continue;
            }
            let mut rewrites = Vec::new();
            for (m, matcher) in route.matchers.iter().enumerate() {
                let Some(value) = input.value(&matcher.key) else {
                    continue 'routes;
                };
                match route.rewrite_of[m] {
                    Some(w) => {
                        let rw = &route.rewrite[w];
                        match matcher.match_and_expand(&value, &rw.template) {
                            Some(new) => rewrites.push((rw.key.clone(), new)),
                            None => continue 'routes,
                        }
                    }
                    None if matcher.is_match(&value) => {}
                    None => continue 'routes,
                }
            }
            for &w in &route.literal {
                let rw = &route.rewrite[w];
                rewrites.push((rw.key.clone(), rw.template.expand(|_| "")));
            }
            let outcome = match &route.action {
                Action::Reject { code, reason } => Outcome::Reject {
                    code: *code,
                    reason: Arc::clone(reason),
                },
                Action::Forward { dest, .. } => {
                    let (targets, parallel) = route.plan.order(dest, index, state);
                    Outcome::Forward { targets, parallel }
                }
            };
            return Some(Decision {
                route: Arc::clone(&route.name),
                rewrites,
                outcome,
            });
        }
        None
    }

    /// In the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn by_name(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| &*r.name == name)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn build_route(i: usize, spec: &RouteSpec, trunks: &TrunkTable) -> Result<Route, RoutingError> {
    let name = spec.name.as_str();
    let err = |field: String, reason: String| RoutingError::route(i, name, field).because(reason);

    let mut matchers: Vec<Matcher> = Vec::with_capacity(spec.matchers.len());
    for (k, v) in &spec.matchers {
        let field = field_key("match", k);
        let key = MatchKey::parse(k).map_err(|e| err(field.clone(), e.to_string()))?;
        if matchers.iter().any(|m| m.key == key) {
            return Err(err(field, format!("{key} is matched twice")));
        }
        matchers.push(Matcher::new(key, v).map_err(|e| err(field, e.to_string()))?);
    }

    let mut rewrite: Vec<Rewrite> = Vec::with_capacity(spec.rewrite.len());
    let mut rewrite_of = vec![None; matchers.len()];
    let mut literal = Vec::new();
    for (k, v) in &spec.rewrite {
        let field = field_key("rewrite", k);
        let key = MatchKey::parse(k).map_err(|e| err(field.clone(), e.to_string()))?;
        if key == MatchKey::Source {
            return Err(err(field, "source is matched, never rewritten".into()));
        }
        if rewrite.iter().any(|r| r.key == key) {
            return Err(err(field, format!("{key} is rewritten twice")));
        }
        let template = Template::parse(v).map_err(|e| err(field.clone(), e.to_string()))?;
        let at = rewrite.len();
        match (
            matchers.iter().position(|m| m.key == key),
            template.max_group(),
        ) {
            (Some(m), Some(n)) if n > matchers[m].max_group() => {
                let have = matchers[m].max_group();
                return Err(err(
                    field,
                    if have == 0 {
                        format!("{{{n}}}: the match on {key} has no capture groups (only {{0}}, the whole value)")
                    } else {
                        format!("{{{n}}}: the match on {key} has only {have} capture group(s)")
                    },
                ));
            }
            (Some(m), _) => rewrite_of[m] = Some(at),
            (None, Some(n)) => {
                return Err(err(
                    field,
                    format!("{{{n}}} needs a match on {key} to take it from"),
                ))
            }
            (None, None) => literal.push(at),
        }
        rewrite.push(Rewrite { key, template });
    }

    let (action, plan) = match spec.action {
        ActionKind::Forward => forward(spec, trunks, &err)?,
        ActionKind::Reject => (reject(spec, &err)?, Plan::new(Select::Failover, Vec::new())),
    };
    Ok(Route {
        name: name.into(),
        priority: spec.priority,
        matchers,
        rewrite,
        action,
        rewrite_of,
        literal,
        plan,
    })
}

type ErrFn<'a> = &'a dyn Fn(String, String) -> RoutingError;

fn forward(
    spec: &RouteSpec,
    trunks: &TrunkTable,
    err: ErrFn<'_>,
) -> Result<(Action, Plan), RoutingError> {
    if spec.reject.is_some() {
        return Err(err("reject".into(), "only for action = \"reject\"".into()));
    }
    if spec.dest.is_empty() {
        return Err(err("dest".into(), "must name at least one trunk".into()));
    }
    let mut dest: Vec<Arc<str>> = Vec::with_capacity(spec.dest.len());
    for (j, d) in spec.dest.iter().enumerate() {
        let field = format!("dest[{j}]");
        let trunk = trunks
            .by_name(d)
            .ok_or_else(|| err(field.clone(), format!("unknown trunk \"{d}\"")))?;
        if trunk.dest.is_none() {
            return Err(err(
                field,
                format!("trunk \"{d}\" is inbound-only (it has no dest)"),
            ));
        }
        if dest.iter().any(|t| **t == **d) {
            return Err(err(field, format!("trunk \"{d}\" is listed twice")));
        }
        dest.push(Arc::clone(&trunk.name));
    }
    let select = spec.select.unwrap_or_default();
    let weights = match (&spec.weights, select) {
        (Some(_), s) if s != Select::Weighted => {
            return Err(err(
                "weights".into(),
                "only for select = \"weighted\"".into(),
            ))
        }
        (Some(w), _) if w.len() != dest.len() => {
            return Err(err(
                "weights".into(),
                format!(
                    "has {} entries, dest has {}: one weight per trunk",
                    w.len(),
                    dest.len()
                ),
            ))
        }
        (Some(w), _) if w.iter().all(|&x| x == 0) => {
            return Err(err(
                "weights".into(),
                "at least one weight must be above 0".into(),
            ))
        }
        (Some(w), _) => w.clone(),
        (None, _) => vec![1; dest.len()],
    };
    let plan = Plan::new(select, weights);
    Ok((
        Action::Forward {
            dest,
            select,
            weights: spec.weights.clone(),
        },
        plan,
    ))
}

fn reject(spec: &RouteSpec, err: ErrFn<'_>) -> Result<Action, RoutingError> {
    let only_forward = "only for action = \"forward\"".to_string();
    if !spec.dest.is_empty() {
        return Err(err("dest".into(), only_forward));
    }
    if spec.select.is_some() {
        return Err(err("select".into(), only_forward));
    }
    if spec.weights.is_some() {
        return Err(err("weights".into(), only_forward));
    }
    let r = spec.reject.as_ref().ok_or_else(|| {
        err(
            "reject".into(),
            "action = \"reject\" needs reject = { code = 403, reason = \"...\" }".into(),
        )
    })?;
    if !(400..=699).contains(&r.code) {
        return Err(err(
            "reject.code".into(),
            format!("{} is not 400-699", r.code),
        ));
    }
    let reason = match &r.reason {
        Some(reason) => {
            check_header_text(reason).map_err(|e| err("reject.reason".into(), e.to_string()))?;
            reason.as_str()
        }
        None => crate::sip::reason_phrase(r.code),
    };
    Ok(Action::Reject {
        code: r.code,
        reason: reason.into(),
    })
}
