//! Registration bindings (RFC 3261 10.3) and the pure rules that change them.
//!
//! The writer on the control core applies a [`BindingChange`] to the stored set
//! of one AOR inside its write transaction, so concurrent REGISTERs for the same
//! AOR arriving on different shards never lose each other's contacts.

use serde::{Deserialize, Serialize};

/// One contact bound to an address of record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Binding {
    /// Address of record, `sip:user@host` without port.
    pub aor: String,
    /// The Contact header value exactly as sent (name-addr with its params).
    pub contact: String,
    /// The contact URI alone (what a call is sent to).
    pub uri: String,
    /// `ip:port` the REGISTER came from.
    pub source: String,
    /// Transport it came over (`UDP`, `TCP`): the link it arrived on, not
    /// what its Via claims.
    pub transport: String,
    /// The stream connection it came over (TCP): calls to it go over that
    /// connection (RFC 5626 flows, RFC 5923 reuse), and it goes when the
    /// connection closes. `None` over UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<crate::transport::ConnId>,
    /// Unix time the binding lapses.
    pub expires_at: u64,
    /// `q` parameter as sent, if any.
    #[serde(default)]
    pub q: Option<String>,
    /// `+sip.instance` (RFC 5626), if any.
    #[serde(default)]
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), if any.
    #[serde(default)]
    pub reg_id: Option<u32>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Path header values (RFC 3327), in order.
    #[serde(default)]
    pub path: Vec<String>,
    pub call_id: String,
    pub cseq: u32,
    /// Unix time of the last change or refresh.
    pub updated_at: u64,
}

impl Binding {
    /// Seconds left at `now` (0 once lapsed).
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// Same device per RFC 3261 10.3 / RFC 5626: instance + reg-id when both
    /// carry an instance, else the contact URI.
    fn same_contact(&self, instance: Option<&str>, reg_id: Option<u32>, uri: &str) -> bool {
        match (self.instance.as_deref(), instance) {
            (Some(a), Some(b)) => a == b && self.reg_id == reg_id,
            _ => uri_eq(&self.uri, uri),
        }
    }
}

/// Loose RFC 3261 19.1.4 URI comparison: scheme and host are case-insensitive,
/// everything else compares exactly.
fn uri_eq(a: &str, b: &str) -> bool {
    fn split(u: &str) -> (&str, &str, &str) {
        let (scheme, rest) = u.split_once(':').unwrap_or(("", u));
        match rest.rsplit_once('@') {
            Some((user, host)) => (scheme, user, host),
            None => (scheme, "", rest),
        }
    }
    let (sa, ua, ha) = split(a);
    let (sb, ub, hb) = split(b);
    sa.eq_ignore_ascii_case(sb) && ua == ub && ha.eq_ignore_ascii_case(hb)
}

/// What one REGISTER asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BindingOp {
    /// Add or refresh this binding (`expires_at` > now).
    Upsert(Box<Binding>),
    /// Remove the binding for this contact (`expires=0`).
    Remove {
        uri: String,
        instance: Option<String>,
        reg_id: Option<u32>,
    },
    /// `Contact: *` with `Expires: 0`: remove every binding of the AOR.
    RemoveAll,
    /// The stream connection closed: the AOR's bindings on it go
    /// (reported as lapsed: `offline`).
    ConnClosed(crate::transport::ConnId),
    /// After a restart no connection is open: every binding of the AOR
    /// that was on one goes (reported as lapsed: `offline`).
    StaleConns,
}

impl BindingOp {
    /// Whether this op removes `b` because its connection is gone.
    fn conn_gone(&self, b: &Binding) -> bool {
        match self {
            BindingOp::ConnClosed(c) => b.conn == Some(*c),
            BindingOp::StaleConns => b.conn.is_some(),
            _ => false,
        }
    }
}

/// The whole change one REGISTER makes to one AOR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingChange {
    pub aor: String,
    pub call_id: String,
    pub cseq: u32,
    pub now: u64,
    /// Empty: a query (answer with the current bindings).
    pub ops: Vec<BindingOp>,
    /// Most live bindings the AOR may have after the change; 0 = no cap.
    #[serde(default)]
    pub max_contacts: usize,
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// Same Call-ID with a CSeq not above the stored one (RFC 3261 10.3 step 7).
    OutOfOrder,
    /// The change would leave the AOR more live bindings than
    /// `max_contacts` (and more than it had).
    TooManyContacts,
}

/// What a change did, for events (locator webhook) and logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeOutcome {
    /// The bindings after the change, lapsed ones dropped.
    pub bindings: Vec<Binding>,
    /// New or changed bindings.
    pub registered: Vec<Binding>,
    /// Bindings removed on request.
    pub unregistered: Vec<Binding>,
    /// Bindings found lapsed while applying.
    pub expired: Vec<Binding>,
}

/// Applies `change` to `current`; pure, `now` comes with the change.
pub fn apply(current: Vec<Binding>, change: &BindingChange) -> Result<ChangeOutcome, ChangeError> {
    let now = change.now;
    let mut out = ChangeOutcome::default();
    for b in current {
        if b.expires_at <= now {
            out.expired.push(b);
        } else {
            out.bindings.push(b);
        }
    }
    // Step 7 first, so a refused request changes nothing.
    for op in &change.ops {
        let hit = |b: &Binding| match op {
            BindingOp::Upsert(n) => b.same_contact(n.instance.as_deref(), n.reg_id, &n.uri),
            BindingOp::Remove {
                uri,
                instance,
                reg_id,
            } => b.same_contact(instance.as_deref(), *reg_id, uri),
            BindingOp::RemoveAll => true,
            // Not the phone's request: no CSeq to order.
            BindingOp::ConnClosed(_) | BindingOp::StaleConns => false,
        };
        if out
            .bindings
            .iter()
            .any(|b| hit(b) && b.call_id == change.call_id && b.cseq >= change.cseq)
        {
            return Err(ChangeError::OutOfOrder);
        }
    }
    let live_before = out.bindings.len();
    for op in &change.ops {
        match op {
            BindingOp::RemoveAll => out.unregistered.append(&mut out.bindings),
            BindingOp::ConnClosed(_) | BindingOp::StaleConns => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out.bindings)
                    .into_iter()
                    .partition(|b| op.conn_gone(b));
                out.bindings = kept;
                out.expired.extend(gone);
            }
            BindingOp::Remove {
                uri,
                instance,
                reg_id,
            } => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out.bindings)
                    .into_iter()
                    .partition(|b| b.same_contact(instance.as_deref(), *reg_id, uri));
                out.bindings = kept;
                out.unregistered.extend(gone);
            }
            BindingOp::Upsert(new) => {
                let pos = out
                    .bindings
                    .iter()
                    .position(|b| b.same_contact(new.instance.as_deref(), new.reg_id, &new.uri));
                match pos {
                    Some(i) => {
                        let old = &out.bindings[i];
                        let changed = old.contact != new.contact
                            || old.source != new.source
                            || old.transport != new.transport
                            || old.uri != new.uri;
                        if changed {
                            out.registered.push((**new).clone());
                        }
                        out.bindings[i] = (**new).clone();
                    }
                    None => {
                        out.registered.push((**new).clone());
                        out.bindings.push((**new).clone());
                    }
                }
            }
        }
    }
    // A cap lowered below what an AOR has does not block refreshes: only a
    // change that adds to the count past the cap is refused.
    let n = out.bindings.len();
    if change.max_contacts > 0 && n > change.max_contacts && n > live_before {
        return Err(ChangeError::TooManyContacts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(uri: &str, call_id: &str, cseq: u32, expires_at: u64) -> Binding {
        Binding {
            aor: "sip:1001@example.com".into(),
            contact: format!("<{uri}>"),
            uri: uri.into(),
            source: "127.0.0.1:5070".into(),
            transport: "UDP".into(),
            conn: None,
            expires_at,
            q: None,
            instance: None,
            reg_id: None,
            user_agent: None,
            path: vec![],
            call_id: call_id.into(),
            cseq,
            updated_at: 0,
        }
    }

    fn change(call_id: &str, cseq: u32, now: u64, ops: Vec<BindingOp>) -> BindingChange {
        BindingChange {
            max_contacts: 0,
            aor: "sip:1001@example.com".into(),
            call_id: call_id.into(),
            cseq,
            now,
            ops,
        }
    }

    #[test]
    fn add_refresh_remove() {
        let b = binding("sip:1001@10.0.0.1:5060", "c1", 1, 3700);
        let out = apply(
            vec![],
            &change("c1", 1, 100, vec![BindingOp::Upsert(Box::new(b.clone()))]),
        )
        .unwrap();
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.registered.len(), 1);

        let mut refreshed = b.clone();
        refreshed.cseq = 2;
        refreshed.expires_at = 3800;
        let out = apply(
            out.bindings,
            &change("c1", 2, 200, vec![BindingOp::Upsert(Box::new(refreshed))]),
        )
        .unwrap();
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.bindings[0].expires_at, 3800);
        assert!(
            out.registered.is_empty(),
            "an unchanged refresh is no new registration"
        );

        let remove = BindingOp::Remove {
            uri: "SIP:1001@10.0.0.1:5060".into(),
            instance: None,
            reg_id: None,
        };
        let out = apply(out.bindings, &change("c1", 3, 300, vec![remove])).unwrap();
        assert!(out.bindings.is_empty());
        assert_eq!(out.unregistered.len(), 1);
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let b = binding("sip:1001@10.0.0.1", "c1", 5, 3700);
        let out = apply(
            vec![b.clone()],
            &change("c1", 5, 100, vec![BindingOp::Upsert(Box::new(b.clone()))]),
        );
        assert_eq!(out, Err(ChangeError::OutOfOrder));
        // Another Call-ID may replace it whatever its CSeq.
        let out = apply(
            vec![b.clone()],
            &change("c2", 1, 100, vec![BindingOp::Upsert(Box::new(b))]),
        )
        .unwrap();
        assert_eq!(out.bindings.len(), 1);
    }

    #[test]
    fn wildcard_and_lapsed() {
        let a = binding("sip:a@10.0.0.1", "c1", 1, 3700);
        let b = binding("sip:b@10.0.0.2", "c2", 1, 50);
        let out = apply(
            vec![a, b],
            &change("c3", 1, 100, vec![BindingOp::RemoveAll]),
        )
        .unwrap();
        assert!(out.bindings.is_empty());
        assert_eq!(out.unregistered.len(), 1);
        assert_eq!(out.expired.len(), 1);
    }

    #[test]
    fn instance_identifies_the_device_across_contacts() {
        let mut a = binding("sip:a@10.0.0.1", "c1", 1, 3700);
        a.instance = Some("<urn:uuid:1>".into());
        a.reg_id = Some(1);
        let mut moved = binding("sip:a@10.0.0.9", "c1", 2, 3700);
        moved.instance = Some("<urn:uuid:1>".into());
        moved.reg_id = Some(1);
        let out = apply(
            vec![a],
            &change("c1", 2, 100, vec![BindingOp::Upsert(Box::new(moved))]),
        )
        .unwrap();
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.bindings[0].uri, "sip:a@10.0.0.9");
        assert_eq!(out.registered.len(), 1);
    }

    #[test]
    fn contacts_beyond_the_cap_are_refused_and_change_nothing() {
        let up = |uri: &str, cseq| BindingOp::Upsert(Box::new(binding(uri, "c", cseq, 500)));
        let current: Vec<Binding> = (0..3)
            .map(|i| binding(&format!("sip:p{i}@10.0.0.1"), "old", 1, 500))
            .collect();
        let mut ch = change("c", 1, 100, vec![up("sip:new@10.0.0.9", 1)]);
        ch.max_contacts = 3;
        assert_eq!(
            apply(current.clone(), &ch),
            Err(ChangeError::TooManyContacts)
        );
        // Refreshing one of the three is fine, and so is replacing one.
        let mut refresh = change("c", 1, 100, vec![up("sip:p1@10.0.0.1", 1)]);
        refresh.max_contacts = 3;
        assert_eq!(apply(current.clone(), &refresh).unwrap().bindings.len(), 3);
        let mut swap = change(
            "c",
            1,
            100,
            vec![
                BindingOp::Remove {
                    uri: "sip:p0@10.0.0.1".into(),
                    instance: None,
                    reg_id: None,
                },
                up("sip:new@10.0.0.9", 1),
            ],
        );
        swap.max_contacts = 3;
        assert_eq!(apply(current.clone(), &swap).unwrap().bindings.len(), 3);
        // Lapsed bindings do not count.
        let mut lapsed = current.clone();
        lapsed[0].expires_at = 50;
        assert_eq!(apply(lapsed, &ch).unwrap().bindings.len(), 3);
        // A cap lowered below what an AOR has still lets it refresh.
        let mut lower = change("c", 1, 100, vec![up("sip:p2@10.0.0.1", 1)]);
        lower.max_contacts = 1;
        assert_eq!(apply(current, &lower).unwrap().bindings.len(), 3);
    }

    #[test]
    fn a_closed_connection_takes_its_bindings_and_only_those() {
        let conn = |slot| crate::transport::ConnId {
            shard: 1,
            slot,
            generation: 3,
        };
        let mut on_a = binding("sip:a@192.0.2.1", "c1", 1, 100);
        on_a.conn = Some(conn(7));
        let mut on_b = binding("sip:b@192.0.2.2", "c2", 1, 100);
        on_b.conn = Some(conn(8));
        let udp = binding("sip:c@192.0.2.3", "c3", 1, 100);
        let current = vec![on_a.clone(), on_b.clone(), udp.clone()];
        let out = apply(
            current.clone(),
            &change("", 0, 10, vec![BindingOp::ConnClosed(conn(7))]),
        )
        .unwrap();
        assert_eq!(out.expired, vec![on_a.clone()], "reported as offline");
        assert_eq!(out.bindings, vec![on_b.clone(), udp.clone()]);
        // Another generation of the same slot is another connection.
        let stale_gen = crate::transport::ConnId {
            generation: 4,
            ..conn(7)
        };
        let out = apply(
            current.clone(),
            &change("", 0, 10, vec![BindingOp::ConnClosed(stale_gen)]),
        )
        .unwrap();
        assert!(out.expired.is_empty());
        // After a restart every binding on a connection goes.
        let out = apply(current, &change("", 0, 10, vec![BindingOp::StaleConns])).unwrap();
        assert_eq!(out.expired, vec![on_a, on_b]);
        assert_eq!(out.bindings, vec![udp]);
    }
}
