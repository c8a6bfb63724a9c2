//! The data of a call: what the endpoint hands the engine to place one
//! ([`NewCall`], [`Originate`], [`Target`]), what decides its media path
//! ([`MediaPolicy`]), and the engine's own record of it ([`Call`]: the
//! caller leg, the callee legs, the phase). No behaviour beyond accessors.

use crate::transport::Peer;
use std::collections::VecDeque;

use super::dialog::Dialog;
use super::flow::Flow;
use crate::cdr::Direction;
use crate::media::secure::SrtpPolicy;
use crate::routing::CallPermit;
use crate::sip::Message;
use crate::transaction::TxId;

/// One place a call is sent to.
#[derive(Debug)]
pub struct Target {
    /// Request-URI of the callee leg.
    pub uri: String,
    /// Where its INVITE goes.
    pub dest: Peer,
    /// Credentials to answer a 401/407 from this target with (a trunk's).
    pub credentials: Option<(String, String)>,
    /// The trunk's call slot, held while the leg lives.
    pub permit: Option<CallPermit>,
    /// The To of the leg's INVITE when not the caller's (a transfer target).
    pub to: Option<String>,
    /// The trunk the leg goes through (what the CDR names once it answers).
    pub trunk: Option<String>,
    /// SRTP with the callee (its extension's or trunk's policy).
    pub srtp: SrtpPolicy,
}

impl Target {
    /// A target with SRTP off (what the endpoint sets for an extension or
    /// a trunk).
    pub fn new(uri: String, dest: Peer) -> Target {
        Target {
            uri,
            dest,
            credentials: None,
            permit: None,
            to: None,
            trunk: None,
            srtp: SrtpPolicy::Off,
        }
    }
}

/// A new call, as the endpoint decided it.
pub struct NewCall<'a> {
    pub invite: &'a Message<'a>,
    pub src: Peer,
    /// The INVITE's server transaction (from [`super::Handled::Request`]).
    pub tx: TxId,
    pub targets: Vec<Target>,
    /// Try the targets one after the other (failover) instead of all at once.
    pub sequential: bool,
    /// Ring timeout per target when sequential, ms.
    pub per_target_ms: Option<u64>,
    pub direction: Direction,
    pub ring_ms: Option<u64>,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub media: MediaPolicy,
    pub extras: CallExtras,
    /// The user whose digest credentials placed the call (None: from a
    /// trunk's inbound hosts, or a guest).
    pub auth_user: Option<String>,
    /// SRTP with the caller (its extension's or trunk's policy).
    pub caller_srtp: SrtpPolicy,
}

impl<'a> NewCall<'a> {
    /// A call that rings every target at once within the overall ring
    /// timeout, with no route, trunk or extras; callers change the rest.
    pub fn new(
        invite: &'a Message<'a>,
        src: Peer,
        tx: TxId,
        targets: Vec<Target>,
        direction: Direction,
        media: MediaPolicy,
    ) -> Self {
        NewCall {
            invite,
            src,
            tx,
            targets,
            sequential: false,
            per_target_ms: None,
            direction,
            ring_ms: None,
            route: None,
            trunk: None,
            media,
            extras: CallExtras::default(),
            auth_user: None,
            caller_srtp: SrtpPolicy::Off,
        }
    }
}

/// What an HTTP router may add to a call (API.md 2.1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallExtras {
    /// Added to every INVITE sent to a target.
    pub headers: Vec<(String, String)>,
    /// Copied into the CDR's `metadata`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Hang up this long after the answer (`bySystem`), ms.
    pub max_duration_ms: Option<u64>,
}

/// `media_proxy` (API.md section 1): when a call's media goes through us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MediaMode {
    /// Proxy when an endpoint looks NATed, the call is recorded or crosses a trunk.
    #[default]
    Auto,
    Always,
    /// SDP untouched, media end to end.
    None,
    /// Proxy when an endpoint looks NATed.
    Nat,
}

/// What decides whether a call's media is proxied.
#[derive(Clone, Copy, Debug, Default)]
pub struct MediaPolicy {
    pub mode: MediaMode,
    pub record: bool,
    /// A callee is a binding whose Contact address is not where it registered from.
    pub callee_natted: bool,
    /// The call comes from or goes to a trunk.
    pub via_trunk: bool,
}

impl MediaPolicy {
    /// Whether the media goes through the relay, given whether the caller
    /// looks NATed.
    pub fn proxies(&self, caller_natted: bool) -> bool {
        match self.mode {
            MediaMode::None => false,
            MediaMode::Always => true,
            MediaMode::Nat => caller_natted || self.callee_natted,
            MediaMode::Auto => caller_natted || self.callee_natted || self.via_trunk || self.record,
        }
    }
}

/// A click-to-dial call, as the endpoint resolved it.
pub struct Originate {
    /// The first party (an extension's contact), rung first.
    pub first: Target,
    pub from_user: String,
    /// Where the call goes once the first party answers.
    pub targets: Vec<Target>,
    pub to_user: String,
    /// The domain in the From/To we show.
    pub realm: String,
    pub direction: Direction,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub record: bool,
}

/// One leg of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leg {
    Caller,
    Callee(usize),
}

impl Leg {
    /// The leg's name in a call's SIP flow.
    pub(super) fn label(self) -> &'static str {
        match self {
            Leg::Caller => "caller",
            Leg::Callee(_) => "callee",
        }
    }
}

/// How a call began.
pub(super) enum Origin {
    /// An INVITE from the caller: our server dialog, answered through its
    /// server transaction. `head`: what every response to it copies from
    /// it ([`crate::sip::response_head`], with our To tag), written once.
    Invite { request: Vec<u8>, head: Vec<u8> },
    /// Click-to-dial: we called the first party (our client dialog on the
    /// caller leg); it is up once it answered.
    ClickToDial,
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Click-to-dial: the first party is ringing; the callee legs start
    /// when it answers.
    Originating,
    Ringing,
    /// Callee leg i answered.
    Answered(usize),
    /// We answered the caller ourselves (REST `accept`); no callee leg.
    Accepted,
}

impl Phase {
    /// Ringing, or the first party of a click-to-dial call ringing.
    pub(super) fn is_ringing(self) -> bool {
        matches!(self, Phase::Ringing | Phase::Originating)
    }

    /// Answered by a callee or by us.
    pub(super) fn is_up(self) -> bool {
        matches!(self, Phase::Answered(_) | Phase::Accepted)
    }
}

/// One callee leg (our client dialog).
pub(super) struct CalleeLeg {
    pub(super) dialog: Dialog,
    pub(super) invite_tx: Option<TxId>,
    /// Final status, once one came.
    pub(super) final_code: Option<u16>,
    pub(super) target: Target,
    pub(super) cseq: u32,
    pub(super) auth_tried: bool,
    /// Ring deadline of this leg (sequential forking, transfer), mono ms.
    pub(super) deadline_ms: Option<u64>,
    /// The caller's identity we assert to a trunk (P-Asserted-Identity).
    pub(super) asserted: Option<String>,
    /// Our SRTP keys offered to this leg alone (one per suite), once its
    /// INVITE offered SRTP.
    pub(super) srtp_keys: Vec<crate::media::srtp::MasterKey>,
    /// Our ICE credentials toward this leg when it is a browser's (its
    /// own: another fork never learns them).
    pub(super) ice: Option<crate::media::webrtc::IceCreds>,
    /// How its INVITE offered media (set by the first one).
    pub(super) srtp_mode: Option<crate::media::secure::OfferMode>,
    /// A best-effort offer was refused (488) and `RTP/SAVP` offered since.
    pub(super) srtp_retried: bool,
}

impl CalleeLeg {
    /// The leg ended with `code` (timeout, refusal): its trunk slot goes.
    pub(super) fn fail(&mut self, code: u16) {
        self.final_code.get_or_insert(code);
        self.target.permit = None;
    }
}

/// One call of the engine.
pub(super) struct Call {
    pub(super) caller_call_id: String,
    pub(super) caller: Dialog,
    /// The caller's INVITE server transaction, or (click-to-dial) our
    /// INVITE client transaction to the first party.
    pub(super) caller_tx: TxId,
    pub(super) origin: Origin,
    /// Where the caller's signalling comes from (the first party's address
    /// for click-to-dial).
    pub(super) caller_addr: Peer,
    pub(super) legs: Vec<CalleeLeg>,
    /// Targets not tried yet (sequential forking; click-to-dial's targets
    /// until the first party answers).
    pub(super) pending: VecDeque<Target>,
    pub(super) per_target_ms: Option<u64>,
    pub(super) max_forwards: u8,
    pub(super) content_type: Option<String>,
    /// The body the callee legs' INVITEs carry.
    pub(super) body: Vec<u8>,
    pub(super) phase: Phase,
    pub(super) ring_deadline_ms: u64,
    /// Answer time + max duration (a router's `max_duration`), mono ms.
    pub(super) max_end_ms: Option<u64>,
    pub(super) start_ms: u64,
    pub(super) ring_ms: Option<u64>,
    pub(super) answer_ms: Option<u64>,
    pub(super) direction: Direction,
    pub(super) route: Option<String>,
    pub(super) trunk: Option<String>,
    pub(super) from_number: String,
    pub(super) to_number: String,
    pub(super) caller_uri: String,
    pub(super) callee_uri: String,
    /// Media goes through the shard's relay (session id = the call's id).
    pub(super) proxied: bool,
    /// Why the system hung the call up (a REST hangup's `reason`).
    pub(super) hangup_message: Option<String>,
    /// A blind transfer under way: the callee leg ringing in place of the
    /// answered one.
    pub(super) transfer_leg: Option<usize>,
    /// Every SIP message of both legs so far.
    pub(super) flow: Flow,
    pub(super) extras: CallExtras,
    /// See [`NewCall::auth_user`].
    pub(super) auth_user: Option<String>,
    /// See [`NewCall::caller_srtp`].
    pub(super) caller_srtp: SrtpPolicy,
}

impl Call {
    /// The dialog of one leg of this call.
    pub(super) fn dialog_mut(&mut self, leg: Leg) -> Option<&mut Dialog> {
        match leg {
            Leg::Caller => Some(&mut self.caller),
            Leg::Callee(i) => self.legs.get_mut(i).map(|l| &mut l.dialog),
        }
    }

    /// Where one leg is reached: its dialog's peer, else (a callee leg
    /// before any answer) its target.
    pub(super) fn peer_of(&self, leg: Leg) -> Option<Peer> {
        match leg {
            Leg::Caller => self.caller.dest.or(Some(self.caller_addr)),
            Leg::Callee(i) => self
                .legs
                .get(i)
                .map(|l| l.dialog.dest.unwrap_or(l.target.dest)),
        }
    }

    /// The SRTP policy of `leg`'s party, and whether it is on TLS.
    pub(super) fn srtp_of(&self, leg: Leg) -> (SrtpPolicy, bool) {
        let tls = self.peer_of(leg).is_some_and(|p| p.is_tls());
        let policy = match leg {
            Leg::Caller => self.caller_srtp,
            Leg::Callee(i) => self.legs.get(i).map_or(SrtpPolicy::Off, |l| l.target.srtp),
        };
        (policy, tls)
    }

    /// The leg of `side`: the caller, or the callee leg that answered (the
    /// first before an answer).
    pub(super) fn leg_of_side(&self, side: crate::media::side::Side) -> Leg {
        match (side, self.phase) {
            (crate::media::side::Side::Caller, _) => Leg::Caller,
            (_, Phase::Answered(i)) => Leg::Callee(i),
            _ => Leg::Callee(0),
        }
    }

    /// Where one side is reached: the caller, or the callee leg that
    /// answered (the first leg before an answer).
    pub(super) fn peer_of_side(&self, side: crate::media::side::Side) -> Option<Peer> {
        match side {
            crate::media::side::Side::Caller => self.peer_of(Leg::Caller),
            crate::media::side::Side::Callee => match self.phase {
                Phase::Answered(i) => self.peer_of(Leg::Callee(i)),
                _ => self.peer_of(Leg::Callee(0)),
            },
        }
    }

    pub(super) fn is_click_to_dial(&self) -> bool {
        matches!(self.origin, Origin::ClickToDial)
    }

    /// The caller's INVITE, when the call began with one.
    /// The response head of the caller's INVITE (see [`Origin::Invite`]).
    pub(super) fn invite_response_head(&self) -> Option<&[u8]> {
        match &self.origin {
            Origin::Invite { head, .. } => Some(head),
            Origin::ClickToDial => None,
        }
    }

    pub(super) fn invite(&self) -> Option<&[u8]> {
        match &self.origin {
            Origin::Invite { request, .. } => Some(request),
            Origin::ClickToDial => None,
        }
    }
}
