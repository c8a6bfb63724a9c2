//! The engine's calls as plain data for the control core's listings
//! (`GET /console/calls/active`, AMI `GET /dialogs`): a copy per call, no
//! serialization on the shard; the control core writes the JSON.

use std::net::SocketAddr;

use super::engine::CallEngine;
use super::model::Phase;
use crate::cdr::Direction;
use crate::time::Now;

/// Where a dialog is (RFC 3261 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    pub fn as_str(self) -> &'static str {
        match self {
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        }
    }
}

/// One dialog (a leg of a call) as AMI `GET /dialogs` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogSummary {
    pub call_id: String,
    /// The caller's Call-ID (the call's id in the API).
    pub call: String,
    pub leg: &'static str,
    pub state: DialogState,
    pub local_tag: String,
    pub remote_tag: String,
    pub local_cseq: u32,
    pub remote_target: String,
    pub remote_address: Option<SocketAddr>,
    pub age_secs: u64,
    pub proxied: bool,
}

/// One live call as `GET /console/calls/active` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub direction: Direction,
    pub ringing: bool,
    /// Unix ms.
    pub start_ms: u64,
    pub answer_ms: Option<u64>,
    pub proxied: bool,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub shard: usize,
}

impl CallEngine {
    /// The live calls (API.md 4, `GET /console/calls/active`).
    pub fn calls_summary(&self, shard: usize) -> Vec<CallSummary> {
        self.calls
            .values()
            .map(|c| CallSummary {
                call_id: c.caller_call_id.clone(),
                caller: c.caller_uri.clone(),
                callee: c.callee_uri.clone(),
                direction: c.direction,
                ringing: c.phase.is_ringing(),
                start_ms: c.start_ms,
                answer_ms: c.answer_ms,
                proxied: c.proxied,
                route: c.route.clone(),
                trunk: c.trunk.clone(),
                shard,
            })
            .collect()
    }

    /// Every dialog of every call (AMI `GET /dialogs`).
    pub fn dialogs_summary(&self, now: Now) -> Vec<DialogSummary> {
        let mut out = Vec::new();
        for c in self.calls.values() {
            let age_secs = now.unix_ms.saturating_sub(c.start_ms) / 1000;
            let answered = match c.phase {
                Phase::Answered(w) => Some(w),
                Phase::Ringing | Phase::Accepted | Phase::Originating => None,
            };
            // The caller's dialog is confirmed once we answered it, or,
            // click-to-dial, once the first party answered us.
            let caller_confirmed =
                !c.phase.is_ringing() || (c.phase == Phase::Ringing && c.is_click_to_dial());
            let legs = std::iter::once(("caller", &c.caller, caller_confirmed, None)).chain(
                c.legs
                    .iter()
                    .enumerate()
                    .map(|(i, l)| ("callee", &l.dialog, answered == Some(i), l.final_code)),
            );
            for (leg, d, confirmed, final_code) in legs {
                out.push(DialogSummary {
                    call_id: d.call_id.clone(),
                    call: c.caller_call_id.clone(),
                    leg,
                    state: match (confirmed, final_code) {
                        (true, _) => DialogState::Confirmed,
                        (false, Some(_)) => DialogState::Terminated,
                        (false, None) => DialogState::Early,
                    },
                    local_tag: d.local_tag.clone(),
                    remote_tag: d.remote_tag.clone(),
                    local_cseq: d.local_cseq,
                    remote_target: d.remote_target.clone(),
                    remote_address: d.dest.map(|p| p.addr),
                    age_secs,
                    proxied: c.proxied,
                });
            }
        }
        out
    }
}
