//! The B2BUA of one shard (sans-IO): the calls it owns, each a caller leg
//! (our server dialog) and one or more callee legs (our client dialogs, each
//! with its own Call-ID, tags and CSeq). Messages come in already matched by
//! the transaction table; what to send goes out through it. Time is an input.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::cdr::time_fmt::rfc3339_ms;
use crate::cdr::Cdr;
use crate::sip::{escape_user, unescape, HeaderName, Message, Method, Writer};
use crate::time::Now;
use crate::transaction::{Action, Received, TransactionTable, TxId};

use super::dialog::{Dialog, DialogMatch};
use super::flow::Flow;
use super::ids::IdGen;
use crate::auth::client;
use crate::media::relay::{
    is_private, media_address_allowed, MediaRelay, SdpOrigin, Side, Signalled,
};
use crate::media::sdp;
use crate::routing::CallPermit;
use std::collections::VecDeque;
use std::net::IpAddr;

/// One place a call is sent to.
#[derive(Debug)]
pub struct Target {
    /// Request-URI of the callee leg.
    pub uri: String,
    /// Where its INVITE goes.
    pub dest: SocketAddr,
    /// Credentials to answer a 401/407 from this target with (a trunk's).
    pub credentials: Option<(String, String)>,
    /// The trunk's call slot, held while the leg lives.
    pub permit: Option<CallPermit>,
    /// The To of the leg's INVITE when not the caller's (a transfer target).
    pub to: Option<String>,
}

impl Target {
    pub fn new(uri: String, dest: SocketAddr) -> Target {
        Target {
            uri,
            dest,
            credentials: None,
            permit: None,
            to: None,
        }
    }
}

/// What the engine needs to know about us.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Host and port we put in Via and Contact.
    pub host: String,
    pub port: u16,
    /// Ring timeout of a call with no other, ms.
    pub max_ring_ms: u64,
    pub server_name: String,
    /// Most bytes of a call's stored SIP flow (`[callrecord] max_flow_bytes`).
    pub max_flow_bytes: usize,
    /// Most callee legs one call rings (`[security] max_forks_per_call`);
    /// targets beyond are not dialled.
    pub max_forks: usize,
}

/// A new call, as the endpoint decided it.
pub struct NewCall<'a> {
    pub invite: &'a Message<'a>,
    pub src: SocketAddr,
    pub tx: TxId,
    pub targets: Vec<Target>,
    /// Try the targets one after the other (failover) instead of all at once.
    pub sequential: bool,
    /// Ring timeout per target when sequential, ms.
    pub per_target_ms: Option<u64>,
    pub direction: &'static str,
    pub ring_ms: Option<u64>,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub media: MediaPolicy,
    pub extras: CallExtras,
    /// The user whose digest credentials placed the call (None: from a
    /// trunk's inbound hosts, or a guest).
    pub auth_user: Option<String>,
}

impl<'a> NewCall<'a> {
    /// A call that rings every target at once within the overall ring
    /// timeout, with no route, trunk or extras; callers change the rest.
    pub fn new(
        invite: &'a Message<'a>,
        src: SocketAddr,
        tx: TxId,
        targets: Vec<Target>,
        direction: &'static str,
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

/// Why a call command could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    NotFound,
    Conflict(String),
    BadRequest(String),
    /// No resources now (ports, sockets): 503.
    Unavailable(String),
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
    pub direction: &'static str,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub record: bool,
}

/// An SDP offer from the relay itself (PCMU, PCMA, telephone-event).
fn relay_offer(addr: IpAddr, port: u16, session: u64) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=ShardPBX {session} 1 IN {ip} {addr}\r\ns=ShardPBX\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// An address an endpoint put in its SDP that says it is behind NAT: a
/// private one, or not the one its signalling came from.
fn looks_natted(conn: Option<IpAddr>, signalling: IpAddr) -> bool {
    let Some(ip) = conn else { return false };
    !ip.is_unspecified() && (is_private(ip) || ip != signalling)
}

/// The SDP of a message, when it carries one.
fn sdp_of(msg: &Message<'_>) -> Option<sdp::Sdp> {
    let ct = msg.header(HeaderName::ContentType)?;
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
        || msg.body().is_empty()
    {
        return None;
    }
    sdp::parse(msg.body()).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    Caller,
    Callee(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxRole {
    /// Our INVITE to callee leg i.
    CalleeInvite(usize),
    /// A request we relayed to `to`; answer the server transaction with its final.
    Relay { server: TxId, to: Leg },
    /// Our INVITE to the first party of a click-to-dial call.
    OriginInvite,
    /// A BYE or CANCEL we sent; nothing to do with the answer.
    Ignore,
}

struct CalleeLeg {
    dialog: Dialog,
    invite_tx: Option<TxId>,
    /// Final status, once one came.
    final_code: Option<u16>,
    target: Target,
    cseq: u32,
    auth_tried: bool,
    /// Ring deadline of this leg (sequential forking), monotonic ms.
    deadline_ms: Option<u64>,
    /// The caller's identity we assert to a trunk (P-Asserted-Identity).
    asserted: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Click-to-dial: the first party (our client dialog on the caller
    /// leg) is ringing; the callee legs start when it answers.
    Originating,
    Ringing,
    /// Callee leg i answered.
    Answered(usize),
    /// We answered the caller ourselves (REST `accept`); no callee leg.
    Accepted,
}

/// One dialog (a leg of a call) as AMI `GET /dialogs` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogSummary {
    pub call_id: String,
    /// The caller's Call-ID (the call's id in the API).
    pub call: String,
    pub leg: &'static str,
    pub state: &'static str,
    pub local_tag: String,
    pub remote_tag: String,
    pub local_cseq: u32,
    pub remote_target: String,
    pub remote_address: Option<SocketAddr>,
    pub age_secs: u64,
    pub proxied: bool,
}

impl DialogSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": format!("{};{};{}", self.call_id, self.local_tag, self.remote_tag),
            "callId": self.call_id,
            "call": self.call,
            "leg": self.leg,
            "state": self.state,
            "localTag": self.local_tag,
            "remoteTag": self.remote_tag,
            "localCseq": self.local_cseq,
            "remoteTarget": self.remote_target,
            "remoteAddress": self.remote_address.map(|a| a.to_string()),
            "routeSet": [],
            "ageSecs": self.age_secs,
            "media": if self.proxied { "proxied" } else { "direct" },
        })
    }
}

/// One live call as `GET /console/calls/active` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub direction: &'static str,
    pub ringing: bool,
    /// Unix ms.
    pub start_ms: u64,
    pub answer_ms: Option<u64>,
    pub proxied: bool,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub shard: usize,
}

impl CallSummary {
    /// The listing item of API.md section 4.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "callId": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "direction": self.direction,
            "state": if self.ringing { "ringing" } else { "answered" },
            "startTime": rfc3339_ms(self.start_ms),
            "answerTime": self.answer_ms.map(rfc3339_ms),
            "media": if self.proxied { "proxied" } else { "direct" },
            "tracks": [
                {"id": "audio-0", "leg": "caller"},
                {"id": "audio-1", "leg": "callee"},
            ],
            "routeId": self.route,
            "sipTrunkId": self.trunk,
            "shard": self.shard,
        })
    }
}

struct Call {
    caller_call_id: String,
    caller: Dialog,
    caller_tx: TxId,
    /// The original INVITE, to build responses from.
    invite: Vec<u8>,
    invite_src: SocketAddr,
    legs: Vec<CalleeLeg>,
    /// Targets not tried yet (sequential forking).
    pending: VecDeque<Target>,
    per_target_ms: Option<u64>,
    max_forwards: u8,
    content_type: Option<String>,
    body: Vec<u8>,
    phase: Phase,
    ring_deadline_ms: u64,
    start_ms: u64,
    ring_ms: Option<u64>,
    answer_ms: Option<u64>,
    direction: &'static str,
    route: Option<String>,
    trunk: Option<String>,
    from_number: String,
    to_number: String,
    caller_uri: String,
    callee_uri: String,
    /// Media goes through this shard's relay (session id = the call's id).
    proxied: bool,
    /// Why the system hung the call up (a REST hangup's `reason`).
    hangup_message: Option<String>,
    /// A blind transfer under way: the callee leg ringing in place of the
    /// answered one.
    transfer_leg: Option<usize>,
    /// Every SIP message of both legs so far.
    flow: Flow,
    extras: CallExtras,
    /// See [`NewCall::auth_user`].
    auth_user: Option<String>,
}

/// A finished call's flow, still collecting late messages.
struct Closing {
    until_ms: u64,
    call_id: String,
    leg_ids: Vec<String>,
    flow: Flow,
}

impl Call {
    /// The dialog of one leg of this call.
    fn dialog_mut(&mut self, leg: Leg) -> Option<&mut Dialog> {
        match leg {
            Leg::Caller => Some(&mut self.caller),
            Leg::Callee(i) => self.legs.get_mut(i).map(|l| &mut l.dialog),
        }
    }
}

/// The calls of one shard.
pub struct CallEngine {
    cfg: EngineConfig,
    ids: IdGen,
    calls: HashMap<u64, Call>,
    next_call: u64,
    /// Caller and callee Call-IDs -> (call, leg).
    by_call_id: HashMap<String, (u64, Leg)>,
    /// Client and server transactions we wait on -> (call, role).
    by_tx: HashMap<TxId, (u64, TxRole)>,
    /// The `by_tx` entries of each call that end with it (not `Ignore`).
    txs_of: HashMap<u64, Vec<TxId>>,
    buf: Vec<u8>,
    /// Finished calls, taken by the endpoint.
    pub finished: Vec<Cdr>,
    /// Datagrams outside any transaction (ACKs for 2xx), taken by the endpoint.
    pub direct: Vec<(SocketAddr, Vec<u8>)>,
    /// Requests we relayed, by the server transaction that answers them.
    relayed: HashMap<TxId, Vec<u8>>,
    /// The shard's RTP relay (None: media always end to end).
    pub media: Option<MediaRelay>,
    /// Flows of finished calls that still collect messages, by call.
    closing: HashMap<u64, Closing>,
    /// Call-IDs of both legs of those calls -> call.
    closing_ids: HashMap<String, u64>,
    /// Finished flows (callId, JSON), taken by the endpoint.
    pub finished_flows: Vec<(String, Vec<u8>)>,
    /// In-dialog requests refused since the endpoint last took the counts.
    pub refused: RefusedRequests,
}

/// What [`CallEngine::media_sdp`] does with an SDP address the relay must
/// not send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadAddress {
    /// Refuse the offer (488): an INVITE or re-INVITE.
    Refuse,
    /// Keep the message, learn the side from its SIP source only: an
    /// answer in a response, which cannot be refused.
    Ignore,
}

/// An SDP whose media address was refused.
#[derive(Debug)]
struct RefusedAddress;

/// Counts of requests and SDPs the engine refused, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusedRequests {
    /// SDP media addresses refused (488) or ignored: unspecified,
    /// multicast, broadcast, or loopback/our own for a leg that is not.
    pub media_address: u64,
    /// Tags not those of the dialog the Call-ID names (481).
    pub dialog_mismatch: u64,
    /// CSeq not above the last one of that direction (500).
    pub cseq_out_of_order: u64,
}

fn strip_tag(name_addr: &str) -> String {
    // Keep display name and URI, drop a ;tag= parameter.
    let mut out = String::with_capacity(name_addr.len());
    for (i, part) in name_addr.split(';').enumerate() {
        if i > 0 && part.trim_start().to_ascii_lowercase().starts_with("tag=") {
            continue;
        }
        if i > 0 {
            out.push(';');
        }
        out.push_str(part);
    }
    out.trim().to_string()
}

fn uri_of(msg: &Message<'_>, name: HeaderName<'_>) -> String {
    match name {
        HeaderName::From => msg
            .from()
            .map(|n| n.uri.as_str().to_string())
            .unwrap_or_default(),
        HeaderName::To => msg
            .to()
            .map(|n| n.uri.as_str().to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn contact_uri(msg: &Message<'_>) -> Option<String> {
    msg.contacts().find_map(|c| match c {
        Ok(crate::sip::Contact::Addr(na)) => Some(na.uri.as_str().to_string()),
        _ => None,
    })
}

fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map(|(_, r)| r).unwrap_or(uri);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_string(),
        None => String::new(),
    }
}

impl CallEngine {
    pub fn new(cfg: EngineConfig, ids: IdGen) -> CallEngine {
        CallEngine {
            cfg,
            ids,
            calls: HashMap::new(),
            next_call: 1,
            by_call_id: HashMap::new(),
            by_tx: HashMap::new(),
            txs_of: HashMap::new(),
            buf: Vec::with_capacity(2048),
            finished: Vec::new(),
            direct: Vec::new(),
            relayed: HashMap::new(),
            media: None,
            closing: HashMap::new(),
            closing_ids: HashMap::new(),
            finished_flows: Vec::new(),
            refused: RefusedRequests::default(),
        }
    }

    /// Records a SIP message of one of our calls (or of one that just
    /// ended) in its flow; anything else is ignored.
    pub fn capture(&mut self, unix_ms: u64, inbound: bool, peer: SocketAddr, data: &[u8]) {
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        let Some(cid) = msg.call_id() else { return };
        let cid = cid.trim();
        if let Some(&(call, leg)) = self.by_call_id.get(cid) {
            if let Some(c) = self.calls.get_mut(&call) {
                let label = if leg == Leg::Caller {
                    "caller"
                } else {
                    "callee"
                };
                c.flow.push(unix_ms, inbound, peer, label, data);
            }
        } else if let Some(call) = self.closing_ids.get(cid) {
            if let Some(c) = self.closing.get_mut(call) {
                let label = if cid == c.call_id { "caller" } else { "callee" };
                c.flow.push(unix_ms, inbound, peer, label, data);
            }
        }
    }

    /// Hands over the flows whose linger ran out (all of them with `all`).
    pub fn flush_flows(&mut self, now_ms: u64, all: bool) {
        if self.closing.is_empty() {
            return;
        }
        let local = format!("{}:{}", self.cfg.host, self.cfg.port);
        let due: Vec<u64> = self
            .closing
            .iter()
            .filter(|(_, c)| all || c.until_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.closing.remove(&id) {
                self.closing_ids.remove(&c.call_id);
                for l in &c.leg_ids {
                    self.closing_ids.remove(l);
                }
                self.finished_flows.push((c.call_id, c.flow.encode(&local)));
            }
        }
    }

    /// Rewrites an SDP body `from` one side for the other side of a proxied
    /// call (our relay's address and that side's port); records what `from`
    /// signalled. `nat`: Some when we know whether `from` is behind NAT.
    /// Returns the body to send on (unchanged when not proxied or not SDP).
    /// Tells the relay what `from` signalled in `msg` and gives the SDP
    /// rewritten to the relay (None: no SDP, or media not proxied). An
    /// address the relay must not send to ([`media_address_allowed`]) is
    /// refused with `Refuse`, or dropped from what the relay learns with
    /// `Ignore` (the side is then learnt from its SIP source alone).
    fn media_sdp(
        &mut self,
        call: u64,
        from: Side,
        msg: &Message<'_>,
        origin: SdpOrigin,
        bad_address: BadAddress,
    ) -> Result<Option<Vec<u8>>, RefusedAddress> {
        let Some(c) = self.calls.get(&call).filter(|c| c.proxied) else {
            return Ok(None);
        };
        let leg_ip = match (origin, from) {
            (SdpOrigin::Setup(ip), _) => Some(ip),
            (SdpOrigin::Renegotiation, Side::Caller) => Some(c.invite_src.ip()),
            (SdpOrigin::Renegotiation, Side::Callee) => match c.phase {
                Phase::Answered(w) => c.legs.get(w).map(|l| l.target.dest.ip()),
                _ => None,
            },
        };
        let Some(relay) = self.media.as_mut() else {
            return Ok(None);
        };
        let Some(parsed) = sdp_of(msg) else {
            return Ok(None);
        };
        let Some(audio) = parsed.audio.as_ref() else {
            return Ok(None);
        };
        let mut sig = Signalled::from_audio(audio);
        let allowed = match (audio.conn, leg_ip) {
            (Some(conn), Some(leg_ip)) => media_address_allowed(
                conn,
                leg_ip,
                |ip| relay.is_own(ip),
                matches!(origin, SdpOrigin::Setup(_)),
            ),
            _ => true,
        };
        if !allowed {
            tracing::warn!(call, conn = ?audio.conn, "SDP media address refused");
            self.refused.media_address += 1;
            match bad_address {
                BadAddress::Refuse => return Err(RefusedAddress),
                BadAddress::Ignore => {
                    sig.rtp = None;
                    sig.rtcp = None;
                }
            }
        }
        relay.signalled(call, from, sig, origin);
        let Some(port) = relay.port_of(call, from.other()) else {
            return Ok(None);
        };
        let addr = relay.advertise();
        match sdp::rewrite(
            msg.body(),
            &sdp::Relay {
                addr,
                rtp_port: port,
            },
        ) {
            Ok(body) => Ok(Some(body)),
            Err(e) => {
                tracing::warn!(call, "SDP not rewritten: {e}");
                Ok(None)
            }
        }
    }

    /// Mutes or unmutes a track (`audio-0` caller, `audio-1` callee) of the
    /// call whose caller leg has this Call-ID.
    pub fn set_muted(
        &mut self,
        call_id: &str,
        track: &str,
        muted: bool,
    ) -> Result<(), CommandError> {
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let side = Side::from_track(track).ok_or_else(|| {
            CommandError::BadRequest(format!(
                "track_id: unknown track '{track}' (audio-0 or audio-1)"
            ))
        })?;
        let proxied = self.calls.get(&call).is_some_and(|c| c.proxied);
        match self.media.as_mut() {
            Some(relay) if proxied => {
                relay.set_muted(call, side, muted);
                Ok(())
            }
            _ => Err(CommandError::Conflict(
                "the call's media is not proxied".into(),
            )),
        }
    }

    /// Hangs up every call (the shard is stopping): BYE or 487 + CANCEL as
    /// each call's state needs; CDRs say `bySystem` with `reason`.
    pub fn hangup_all(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        reason: &str,
        out: &mut Vec<Action>,
    ) {
        let ids: Vec<String> = self
            .calls
            .values()
            .map(|c| c.caller_call_id.clone())
            .collect();
        for id in ids {
            let _ = self.hangup(now, table, &id, Some(reason.to_string()), out);
        }
    }

    /// The live calls (API.md 4, `GET /console/calls/active`), as plain
    /// data: the control core makes the JSON, so a dashboard polling the
    /// listing costs the shard a copy per call, not a serialization.
    pub fn calls_summary(&self, shard: usize) -> Vec<CallSummary> {
        self.calls
            .values()
            .map(|c| CallSummary {
                call_id: c.caller_call_id.clone(),
                caller: c.caller_uri.clone(),
                callee: c.callee_uri.clone(),
                direction: c.direction,
                ringing: matches!(c.phase, Phase::Ringing | Phase::Originating),
                start_ms: c.start_ms,
                answer_ms: c.answer_ms,
                proxied: c.proxied,
                route: c.route.clone(),
                trunk: c.trunk.clone(),
                shard,
            })
            .collect()
    }

    /// Every dialog of every call (AMI `GET /dialogs`), as plain data: the
    /// control core makes the JSON.
    pub fn dialogs_summary(&self, now: Now) -> Vec<DialogSummary> {
        let mut out = Vec::new();
        for c in self.calls.values() {
            let age_secs = now.unix_ms.saturating_sub(c.start_ms) / 1000;
            let answered = match c.phase {
                Phase::Answered(w) => Some(w),
                Phase::Ringing | Phase::Accepted | Phase::Originating => None,
            };
            let caller_confirmed = !matches!(c.phase, Phase::Ringing | Phase::Originating)
                || (c.phase == Phase::Ringing && c.invite.is_empty());
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
                        (true, _) => "confirmed",
                        (false, Some(_)) => "terminated",
                        (false, None) => "early",
                    },
                    local_tag: d.local_tag.clone(),
                    remote_tag: d.remote_tag.clone(),
                    local_cseq: d.local_cseq,
                    remote_target: d.remote_target.clone(),
                    remote_address: d.dest,
                    age_secs,
                    proxied: c.proxied,
                });
            }
        }
        out
    }

    /// Blind transfer of an answered call: a new callee leg to `target`; when
    /// it answers, the old callee gets BYE and the caller stays, its audio
    /// re-anchored on the relay (so media must be proxied). If the target
    /// does not answer within the ring timeout or refuses, the call stays.
    pub fn transfer(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call_id: &str,
        target: Target,
        out: &mut Vec<Action>,
    ) -> Result<(), CommandError> {
        self.transfer_check(call_id)?;
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let ring_ms = self.cfg.max_ring_ms;
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(CommandError::NotFound);
        };
        let leg = c.legs.len();
        c.transfer_leg = Some(leg);
        self.add_leg(now, table, call, target, out);
        if let Some(l) = self.calls.get_mut(&call).and_then(|c| c.legs.get_mut(leg)) {
            l.deadline_ms = Some(now.mono_ms + ring_ms);
            if l.final_code.is_some() {
                // Could not even be sent.
                if let Some(c) = self.calls.get_mut(&call) {
                    c.transfer_leg = None;
                }
                return Err(CommandError::Conflict(
                    "the transfer target is unreachable".into(),
                ));
            }
        }
        Ok(())
    }

    /// Click-to-dial: rings `first` (an extension's contact) with an offer
    /// from the relay; when it answers, dials `targets` like any call and
    /// bridges the two through the relay. Returns the call's id (the first
    /// party's Call-ID, which we mint).
    pub fn originate(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        o: Originate,
        out: &mut Vec<Action>,
    ) -> Result<String, CommandError> {
        let host = self.cfg.host.clone();
        let id = self.next_call;
        let call_id = self.ids.call_id(&host);
        let relay = self.media.as_mut().ok_or(CommandError::Conflict(
            "click-to-dial needs the media relay".into(),
        ))?;
        let (a_port, b_port) = relay
            .create(id, &call_id, o.record)
            .map_err(|_| CommandError::Unavailable("no media ports left".into()))?;
        let addr = relay.advertise();
        self.next_call += 1;
        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: self.ids.tag(),
            remote_tag: String::new(),
            local_uri: format!("<sip:{}@{}>", o.to_user, o.realm),
            remote_uri: format!("<sip:{}@{}>", o.from_user, o.realm),
            remote_target: o.first.uri.clone(),
            dest: Some(o.first.dest),
            local_cseq: 1,
            remote_cseq: None,
        };
        let offer_a = relay_offer(addr, a_port, id);
        let via = self.via();
        let contact = self.contact();
        let mut w = Writer::request(&mut self.buf, "INVITE", &o.first.uri);
        w.header("Via", &via);
        w.header("Max-Forwards", "70");
        w.header(
            "From",
            &format!("{};tag={}", dialog.local_uri, dialog.local_tag),
        );
        w.header("To", &dialog.remote_uri);
        w.header("Call-ID", &call_id);
        w.header("CSeq", "1 INVITE");
        w.header("Contact", &contact);
        w.header("User-Agent", &self.cfg.server_name);
        w.header("Content-Type", "application/sdp");
        w.finish(offer_a.as_bytes());
        let tx = match table.send_request(now.mono_ms, &self.buf, o.first.dest, false, out) {
            Ok(tx) => tx,
            Err(e) => {
                if let Some(r) = self.media.as_mut() {
                    r.close(id, now.mono_ms);
                }
                return Err(CommandError::Unavailable(format!(
                    "cannot send the INVITE: {e:?}"
                )));
            }
        };
        let caller_uri = format!("sip:{}@{}", o.from_user, o.realm);
        let callee_uri = format!("sip:{}@{}", o.to_user, o.realm);
        let mut flow = Flow::new(self.cfg.max_flow_bytes);
        flow.push(now.unix_ms, false, o.first.dest, "caller", &self.buf);
        self.calls.insert(
            id,
            Call {
                caller_call_id: call_id.clone(),
                caller: dialog,
                caller_tx: tx,
                invite: Vec::new(),
                invite_src: o.first.dest,
                legs: Vec::new(),
                pending: o.targets.into(),
                per_target_ms: None,
                max_forwards: 70,
                content_type: Some("application/sdp".into()),
                body: relay_offer(addr, b_port, id).into_bytes(),
                phase: Phase::Originating,
                ring_deadline_ms: now.mono_ms + self.cfg.max_ring_ms,
                start_ms: now.unix_ms,
                ring_ms: None,
                answer_ms: None,
                direction: o.direction,
                route: o.route,
                trunk: o.trunk,
                from_number: o.from_user,
                to_number: o.to_user,
                caller_uri,
                callee_uri,
                proxied: true,
                hangup_message: None,
                transfer_leg: None,
                flow,
                extras: CallExtras::default(),
                auth_user: None,
            },
        );
        self.by_call_id.insert(call_id.clone(), (id, Leg::Caller));
        self.watch_tx(tx, id, TxRole::OriginInvite);
        Ok(call_id)
    }

    /// A response from the first party of a click-to-dial call.
    #[allow(clippy::too_many_arguments)]
    fn on_origin_response(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        tx: TxId,
        code: u16,
        msg: &Message<'_>,
        out: &mut Vec<Action>,
    ) {
        if code < 200 {
            return;
        }
        self.by_tx.remove(&tx);
        if code >= 300 {
            let (status, hangup) = match code {
                408 | 480 | 487 => ("missed", "noAnswer"),
                486 | 600 | 603 => ("failed", "rejected"),
                _ => ("failed", "failed"),
            };
            self.end(now, call, code, status, hangup);
            return;
        }
        let request = table.request(tx).map(<[u8]>::to_vec);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Originating {
            // A 2xx retransmission: ACK it again.
            self.ack_2xx(call, msg, request, out);
            return;
        }
        if let Some(tag) = msg.to().ok().and_then(|t| t.tag()) {
            c.caller.remote_tag = tag.to_string();
        }
        if let Some(target) = contact_uri(msg) {
            c.caller.remote_target = target;
        }
        c.phase = Phase::Ringing;
        c.ring_deadline_ms = now.mono_ms + self.cfg.max_ring_ms;
        let first_ip = c.invite_src.ip();
        let targets: Vec<Target> = c.pending.drain(..).collect();
        self.ack_2xx(call, msg, request, out);
        if let Some(audio) = sdp_of(msg).and_then(|s| s.audio) {
            if let Some(relay) = self.media.as_mut() {
                let mut sig = Signalled::from_audio(&audio);
                let allowed = audio.conn.is_none_or(|conn| {
                    media_address_allowed(conn, first_ip, |ip| relay.is_own(ip), true)
                });
                if !allowed {
                    self.refused.media_address += 1;
                    sig.rtp = None;
                    sig.rtcp = None;
                }
                relay.signalled(call, Side::Caller, sig, SdpOrigin::Setup(first_ip));
            }
        }
        for target in targets {
            self.add_leg(now, table, call, target, out);
        }
        self.check_all_failed(now, table, call, out);
    }

    /// May the call whose caller leg has this Call-ID be transferred now?
    pub fn transfer_check(&self, call_id: &str) -> Result<(), CommandError> {
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let Some(c) = self.calls.get(&call) else {
            return Err(CommandError::NotFound);
        };
        if !matches!(c.phase, Phase::Answered(_)) {
            return Err(CommandError::Conflict("the call is not answered".into()));
        }
        if c.transfer_leg.is_some() {
            return Err(CommandError::Conflict(
                "a transfer is already under way".into(),
            ));
        }
        if !c.proxied {
            return Err(CommandError::Conflict(
                "transfer needs the call's media proxied (media_proxy)".into(),
            ));
        }
        Ok(())
    }

    /// Answers a ringing call ourselves (REST `accept`) with `sdp`, or with
    /// the relay's own SDP when none is given; every callee leg is
    /// cancelled. With proxied media a given SDP is treated as the callee
    /// side's (its address is where the caller's audio goes).
    pub fn accept(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call_id: &str,
        sdp_text: Option<String>,
        out: &mut Vec<Action>,
    ) -> Result<(), CommandError> {
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let Some(c) = self.calls.get(&call) else {
            return Err(CommandError::NotFound);
        };
        if c.phase != Phase::Ringing {
            return Err(CommandError::Conflict("the call is not ringing".into()));
        }
        let proxied = c.proxied;
        let body = match (sdp_text, proxied) {
            (Some(text), false) => {
                sdp::parse(text.as_bytes())
                    .map_err(|e| CommandError::BadRequest(format!("sdp: {e}")))?;
                text.into_bytes()
            }
            (Some(text), true) => {
                let parsed = sdp::parse(text.as_bytes())
                    .map_err(|e| CommandError::BadRequest(format!("sdp: {e}")))?;
                let relay = self
                    .media
                    .as_mut()
                    .ok_or(CommandError::Conflict("no relay".into()))?;
                if let Some(audio) = parsed.audio.as_ref() {
                    // The operator's SDP: media comes from where it says.
                    let from = audio
                        .conn
                        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                    relay.signalled(
                        call,
                        Side::Callee,
                        Signalled::from_audio(audio),
                        SdpOrigin::Setup(from),
                    );
                }
                let port = relay.port_of(call, Side::Caller).unwrap_or(0);
                sdp::rewrite(
                    text.as_bytes(),
                    &sdp::Relay {
                        addr: relay.advertise(),
                        rtp_port: port,
                    },
                )
                .map_err(|e| CommandError::BadRequest(format!("sdp: {e}")))?
            }
            (None, true) => self.relay_answer(call).ok_or(CommandError::Conflict(
                "the caller's offer has no audio to answer".into(),
            ))?,
            (None, false) => {
                return Err(CommandError::Conflict(
                    "the call's media is not proxied: accept needs an sdp".into(),
                ))
            }
        };
        self.cancel_others(now, table, call, None, out);
        if let Some(c) = self.calls.get_mut(&call) {
            c.phase = Phase::Accepted;
            c.answer_ms = Some(now.unix_ms);
        }
        if let Some(relay) = self.media.as_mut().filter(|_| proxied) {
            relay.answered(call, now.mono_ms);
        }
        self.respond_caller(
            now,
            table,
            call,
            200,
            None,
            Some(("application/sdp", &body)),
            out,
        );
        Ok(())
    }

    /// An SDP answer from the relay itself: the caller-side port, the first
    /// codec of the caller's offer (and telephone-event when offered).
    fn relay_answer(&self, call: u64) -> Option<Vec<u8>> {
        let c = self.calls.get(&call)?;
        let relay = self.media.as_ref()?;
        let invite = Message::parse(&c.invite).ok()?;
        let offer = sdp_of(&invite)?;
        let audio = offer.audio?;
        let port = relay.port_of(call, Side::Caller)?;
        let addr = relay.advertise();
        let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let first = *audio.payload_types.first()?;
        let mut pts = vec![first];
        let dtmf = audio
            .rtpmaps
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case("telephone-event"))
            .map(|m| m.pt);
        pts.extend(dtmf.filter(|d| *d != first));
        let fmts: Vec<String> = pts.iter().map(u8::to_string).collect();
        let mut out = format!(
            "v=0\r\no=ShardPBX {call} 1 IN {ip} {addr}\r\ns=ShardPBX\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} {} {}\r\n",
            audio.proto,
            fmts.join(" ")
        );
        for pt in pts {
            if let Some(m) = audio.rtpmaps.iter().find(|m| m.pt == pt) {
                let ch = if m.channels > 1 {
                    format!("/{}", m.channels)
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "a=rtpmap:{pt} {}/{}{ch}\r\n",
                    m.name, m.clock_rate
                ));
            }
        }
        out.push_str("a=sendrecv\r\n");
        Some(out.into_bytes())
    }

    /// Hangs up the call whose caller leg has this Call-ID: BYE to both legs
    /// when answered; while ringing, 487 to the caller and CANCEL to every
    /// callee leg. The CDR says `bySystem`, with `reason` in its metadata.
    pub fn hangup(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call_id: &str,
        reason: Option<String>,
        out: &mut Vec<Action>,
    ) -> Result<(), CommandError> {
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(CommandError::NotFound);
        };
        c.hangup_message = Some(reason.unwrap_or_else(|| "hangup requested".into()));
        match c.phase {
            Phase::Answered(w) => {
                self.send_bye(now, table, call, Leg::Caller, out);
                self.send_bye(now, table, call, Leg::Callee(w), out);
                self.cancel_others(now, table, call, Some(w), out);
                self.end(now, call, 200, "completed", "bySystem");
            }
            Phase::Accepted => {
                self.send_bye(now, table, call, Leg::Caller, out);
                self.end(now, call, 200, "completed", "bySystem");
            }
            Phase::Ringing => {
                let originated = c.invite.is_empty();
                self.cancel_others(now, table, call, None, out);
                if originated {
                    // Click-to-dial: the first party already answered.
                    self.send_bye(now, table, call, Leg::Caller, out);
                } else {
                    self.respond_caller(now, table, call, 487, None, None, out);
                }
                self.end(now, call, 487, "missed", "bySystem");
            }
            Phase::Originating => {
                let tx = c.caller_tx;
                if let Ok(Some(cancel)) = table.cancel(now.mono_ms, tx, out) {
                    self.by_tx.insert(cancel, (call, TxRole::Ignore));
                }
                self.end(now, call, 487, "missed", "bySystem");
            }
        }
        Ok(())
    }

    /// Media upkeep: recordings flushed, calls whose RTP stopped hung up.
    pub fn on_media_tick(&mut self, now: Now, table: &mut TransactionTable, out: &mut Vec<Action>) {
        let Some(relay) = self.media.as_mut() else {
            return;
        };
        for call in relay.on_tick(now.mono_ms) {
            let answered = self
                .calls
                .get(&call)
                .filter(|c| matches!(c.phase, Phase::Answered(_) | Phase::Accepted))
                .map(|c| c.caller_call_id.clone());
            if let Some(call_id) = answered {
                tracing::info!(call, "no RTP for rtp_timeout: hanging up");
                let _ = self.hangup(now, table, &call_id, Some("rtp timeout".into()), out);
            }
        }
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// A transaction ended in the table: nothing more will come for it.
    pub fn forget_tx(&mut self, tx: TxId) {
        self.by_tx.remove(&tx);
        self.relayed.remove(&tx);
    }

    /// Is this Call-ID one of our calls (either leg)?
    pub fn knows_call_id(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
    }

    /// Is this Call-ID one of our live calls, or of one that just ended
    /// (its record may not be stored yet)?
    pub fn had_call_id(&self, call_id: &str) -> bool {
        self.knows_call_id(call_id) || self.closing_ids.contains_key(call_id)
    }

    fn contact(&self) -> String {
        format!("<sip:shardpbx@{}:{}>", self.cfg.host, self.cfg.port)
    }

    fn via(&mut self) -> String {
        format!(
            "SIP/2.0/UDP {}:{};branch={};rport",
            self.cfg.host,
            self.cfg.port,
            self.ids.branch()
        )
    }

    /// Answers the caller's server transaction with `code`, copying `body`.
    #[allow(clippy::too_many_arguments)]
    fn respond_caller(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        code: u16,
        reason: Option<&str>,
        body: Option<(&str, &[u8])>,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Ok(invite) = Message::parse(&c.invite) else {
            return;
        };
        let contact = self.contact();
        let mut w = Writer::response_to(
            &mut self.buf,
            &invite,
            code,
            reason,
            Some(&c.caller.local_tag),
            Some(c.invite_src),
        );
        w.header("Server", &self.cfg.server_name);
        if code < 300 {
            w.header("Contact", &contact);
        }
        match body {
            Some((ct, b)) if !b.is_empty() => {
                w.header("Content-Type", ct);
                w.finish(b);
            }
            _ => {
                w.finish(b"");
            }
        }
        let tx = c.caller_tx;
        let _ = table.respond(now.mono_ms, tx, &self.buf, out);
    }

    /// Places a new call: INVITEs to every target (in parallel).
    pub fn start(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        new: NewCall<'_>,
        out: &mut Vec<Action>,
    ) {
        let invite = new.invite;
        let call_id = invite.call_id().unwrap_or_default().to_string();
        let from = invite.from().ok();
        let caller = Dialog {
            call_id: call_id.clone(),
            local_tag: self.ids.tag(),
            remote_tag: from.and_then(|f| f.tag()).unwrap_or_default().to_string(),
            local_uri: invite
                .header_raw(HeaderName::To)
                .map(strip_tag)
                .unwrap_or_default(),
            remote_uri: invite
                .header_raw(HeaderName::From)
                .map(strip_tag)
                .unwrap_or_default(),
            remote_target: contact_uri(invite).unwrap_or_else(|| uri_of(invite, HeaderName::From)),
            dest: Some(new.src),
            local_cseq: 0,
            remote_cseq: invite.cseq().ok().map(|c| c.seq),
        };
        let caller_uri = uri_of(invite, HeaderName::From);
        let callee_uri = uri_of(invite, HeaderName::To);
        let id = self.next_call;
        self.next_call += 1;
        let max_forwards = invite
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let content_type = invite
            .header(HeaderName::ContentType)
            .map(|c| c.trim().to_string());
        let call = Call {
            caller_call_id: call_id.clone(),
            caller,
            caller_tx: new.tx,
            invite: invite.as_bytes().to_vec(),
            invite_src: new.src,
            legs: Vec::new(),
            pending: VecDeque::new(),
            per_target_ms: new.per_target_ms.filter(|_| new.sequential),
            max_forwards,
            content_type,
            body: invite.body().to_vec(),
            phase: Phase::Ringing,
            ring_deadline_ms: now.mono_ms + new.ring_ms.unwrap_or(self.cfg.max_ring_ms),
            start_ms: now.unix_ms,
            ring_ms: None,
            answer_ms: None,
            direction: new.direction,
            route: new.route,
            trunk: new.trunk,
            from_number: user_of(&caller_uri),
            to_number: invite
                .request_uri()
                .ok()
                .and_then(|u| u.user)
                .unwrap_or_default()
                .to_string(),
            caller_uri,
            callee_uri,
            proxied: false,
            hangup_message: None,
            transfer_leg: None,
            flow: Flow::new(self.cfg.max_flow_bytes),
            extras: new.extras,
            auth_user: new.auth_user,
        };
        let offer = sdp_of(invite);
        let proxied = offer
            .as_ref()
            .and_then(|o| o.audio.as_ref())
            .is_some_and(|audio| {
                let caller_nat = looks_natted(audio.conn, new.src.ip());
                let m = new.media;
                match m.mode {
                    MediaMode::None => false,
                    MediaMode::Always => true,
                    MediaMode::Nat => caller_nat || m.callee_natted,
                    MediaMode::Auto => caller_nat || m.callee_natted || m.via_trunk || m.record,
                }
            });
        self.calls.insert(id, call);
        if let Some(c) = self.calls.get_mut(&id) {
            c.flow
                .push(now.unix_ms, true, new.src, "caller", invite.as_bytes());
        }
        if proxied {
            if let Some(relay) = self.media.as_mut() {
                match relay.create(id, &call_id, new.media.record) {
                    Ok(_) => {
                        if let Some(c) = self.calls.get_mut(&id) {
                            c.proxied = true;
                        }
                        match self.media_sdp(
                            id,
                            Side::Caller,
                            invite,
                            SdpOrigin::Setup(new.src.ip()),
                            BadAddress::Refuse,
                        ) {
                            Ok(Some(body)) => {
                                if let Some(c) = self.calls.get_mut(&id) {
                                    c.body = body;
                                }
                            }
                            Err(RefusedAddress) => {
                                self.by_call_id.insert(call_id, (id, Leg::Caller));
                                self.by_tx.insert(new.tx, (id, TxRole::Ignore));
                                self.respond_caller(
                                    now,
                                    table,
                                    id,
                                    488,
                                    Some("Media Address Not Acceptable"),
                                    None,
                                    out,
                                );
                                self.end(now, id, 488, "failed", "failed");
                                return;
                            }
                            Ok(None) => {
                                // Unusable offer: media end to end after all.
                                if let (Some(c), Some(relay)) =
                                    (self.calls.get_mut(&id), self.media.as_mut())
                                {
                                    c.proxied = false;
                                    relay.close(id, now.mono_ms);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(call_id = %call_id, "no media ports: {e:?}");
                        self.by_call_id.insert(call_id, (id, Leg::Caller));
                        self.by_tx.insert(new.tx, (id, TxRole::Ignore));
                        self.respond_caller(now, table, id, 503, Some("No Media Ports"), None, out);
                        self.end(now, id, 503, "failed", "failed");
                        return;
                    }
                }
            }
        }
        self.by_call_id.insert(call_id, (id, Leg::Caller));
        self.by_tx.insert(new.tx, (id, TxRole::Ignore));
        let mut targets: VecDeque<Target> = new.targets.into();
        if targets.len() > self.cfg.max_forks {
            tracing::warn!(
                call_id = %self.calls.get(&id).map_or("", |c| c.caller_call_id.as_str()),
                targets = targets.len(),
                max = self.cfg.max_forks,
                "more targets than [security] max_forks_per_call; the rest are not dialled"
            );
            targets.truncate(self.cfg.max_forks);
        }
        if new.sequential {
            if let Some(first) = targets.pop_front() {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.pending = targets;
                }
                self.add_leg(now, table, id, first, out);
            }
        } else {
            for target in targets {
                self.add_leg(now, table, id, target, out);
            }
        }
        self.check_all_failed(now, table, id, out);
    }

    /// Starts a callee leg to `target`.
    fn add_leg(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        target: Target,
        out: &mut Vec<Action>,
    ) {
        let host = self.cfg.host.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // Out to a trunk, an authenticated caller is who the carrier sees
        // (From and P-Asserted-Identity, RFC 3325), with our host: never
        // what the caller wrote around its verified user.
        let asserted = c
            .auth_user
            .as_ref()
            .filter(|_| target.permit.is_some())
            .map(|_| {
                let user = String::from_utf8_lossy(&unescape(&c.from_number)).into_owned();
                format!("<sip:{}@{host}>", escape_user(&user))
            });
        let dialog = Dialog {
            call_id: self.ids.call_id(&host),
            local_tag: self.ids.tag(),
            remote_tag: String::new(),
            local_uri: asserted
                .clone()
                .unwrap_or_else(|| c.caller.remote_uri.clone()),
            remote_uri: target
                .to
                .clone()
                .unwrap_or_else(|| c.caller.local_uri.clone()),
            remote_target: target.uri.clone(),
            dest: Some(target.dest),
            local_cseq: 1,
            remote_cseq: None,
        };
        let index = c.legs.len();
        let deadline_ms = c.per_target_ms.map(|ms| now.mono_ms + ms);
        self.by_call_id
            .insert(dialog.call_id.clone(), (call, Leg::Callee(index)));
        c.legs.push(CalleeLeg {
            dialog,
            invite_tx: None,
            final_code: None,
            target,
            cseq: 1,
            auth_tried: false,
            deadline_ms,
            asserted,
        });
        self.send_leg_invite(now, table, call, index, None, out);
    }

    /// Sends (or, with credentials, re-sends) the INVITE of callee leg `index`.
    fn send_leg_invite(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        index: usize,
        credentials: Option<(&'static str, String)>,
        out: &mut Vec<Action>,
    ) {
        let via = self.via();
        let contact = self.contact();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (max_forwards, ct) = (c.max_forwards, c.content_type.clone());
        let body = c.body.clone();
        let extra = &c.extras.headers;
        let Some(l) = c.legs.get_mut(index) else {
            return;
        };
        let d = &l.dialog;
        let mut w = Writer::request(&mut self.buf, "INVITE", &l.target.uri);
        w.header("Via", &via);
        w.header("Max-Forwards", &max_forwards.to_string());
        w.header("From", &format!("{};tag={}", d.local_uri, d.local_tag));
        w.header("To", &d.remote_uri);
        w.header("Call-ID", &d.call_id);
        w.header("CSeq", &format!("{} INVITE", l.cseq));
        w.header("Contact", &contact);
        w.header(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER",
        );
        w.header("User-Agent", &self.cfg.server_name);
        if let Some(identity) = &l.asserted {
            w.header("P-Asserted-Identity", identity);
        }
        for (name, value) in extra {
            w.header(name, value);
        }
        if let Some((name, value)) = &credentials {
            w.header(name, value);
        }
        if let Some(ct) = ct.as_deref().filter(|_| !body.is_empty()) {
            w.header("Content-Type", ct);
        }
        w.finish(&body);
        match table.send_request(now.mono_ms, &self.buf, l.target.dest, false, out) {
            Ok(tx) => {
                l.invite_tx = Some(tx);
                self.watch_tx(tx, call, TxRole::CalleeInvite(index));
            }
            Err(e) => {
                tracing::warn!(call_id = %c.caller_call_id, "callee leg not started: {e:?}");
                l.final_code = Some(503);
            }
        }
    }

    /// After a leg failed: the next target (sequential), or, when every leg
    /// has failed, the best final response to the caller.
    fn check_all_failed(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Ringing || !c.legs.iter().all(|l| l.final_code.is_some()) {
            return;
        }
        if let Some(next) = c.pending.pop_front() {
            self.add_leg(now, table, call, next, out);
            return self.check_all_failed(now, table, call, out);
        }
        let best = best_final(c.legs.iter().filter_map(|l| l.final_code));
        let (status, reason) = match best {
            486 | 600 | 603 => ("failed", "rejected"),
            _ => ("failed", "failed"),
        };
        if c.invite.is_empty() {
            // Click-to-dial: the first party is up; tell it it is over.
            self.send_bye(now, table, call, Leg::Caller, out);
        } else {
            self.respond_caller(now, table, call, best, None, None, out);
        }
        self.end(now, call, best, status, reason);
    }

    /// A response the transaction table passed up.
    pub fn on_response(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        tx: TxId,
        msg: &Message<'_>,
        out: &mut Vec<Action>,
    ) {
        let Some(&(call, role)) = self.by_tx.get(&tx) else {
            return;
        };
        let Some(code) = msg.status_code() else {
            return;
        };
        match role {
            TxRole::CalleeInvite(i) => {
                self.on_callee_invite_response(now, table, call, i, code, msg, out)
            }
            TxRole::OriginInvite => self.on_origin_response(now, table, call, tx, code, msg, out),
            TxRole::Relay { server, to } => {
                if code >= 200 {
                    self.by_tx.remove(&tx);
                    // A 2xx to a relayed re-INVITE: we ACK it at once; the
                    // caller's own ACK is absorbed on our side.
                    if code < 300 && matches!(msg.cseq().map(|c| c.method), Ok(Method::Invite)) {
                        self.ack_2xx(call, msg, table.request(tx).map(<[u8]>::to_vec), out);
                    }
                }
                if code > 100 {
                    let side = match to {
                        Leg::Caller => Side::Caller,
                        Leg::Callee(_) => Side::Callee,
                    };
                    self.relay_response(now, table, call, server, code, msg, side, out);
                }
            }
            TxRole::Ignore => {
                if code >= 200 {
                    self.by_tx.remove(&tx);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_callee_invite_response(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        leg: usize,
        code: u16,
        msg: &Message<'_>,
        out: &mut Vec<Action>,
    ) {
        let request = self
            .calls
            .get(&call)
            .and_then(|c| c.legs.get(leg))
            .and_then(|l| l.invite_tx)
            .and_then(|t| table.request(t))
            .map(<[u8]>::to_vec);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(l) = c.legs.get_mut(leg) else { return };
        if let Ok(to) = msg.to() {
            if let Some(tag) = to.tag() {
                l.dialog.remote_tag = tag.to_string();
            }
        }
        if let Some(target) = contact_uri(msg) {
            l.dialog.remote_target = target;
        }
        let ct = msg
            .header(HeaderName::ContentType)
            .map(|c| c.trim().to_string());
        let leg_ip = l.target.dest.ip();
        let body = match code {
            101..=299 => self
                .media_sdp(
                    call,
                    Side::Callee,
                    msg,
                    SdpOrigin::Setup(leg_ip),
                    BadAddress::Ignore,
                )
                .ok()
                .flatten(),
            _ => None,
        }
        .unwrap_or_else(|| msg.body().to_vec());
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(l) = c.legs.get_mut(leg) else { return };
        match code {
            100 => {}
            101..=199 => {
                if c.phase == Phase::Ringing {
                    if c.ring_ms.is_none() && (code == 180 || code == 183) {
                        c.ring_ms = Some(now.unix_ms);
                    }
                    let reason = msg.reason().map(str::to_string);
                    self.respond_caller(
                        now,
                        table,
                        call,
                        code,
                        reason.as_deref(),
                        ct.as_deref().map(|t| (t, &body[..])),
                        out,
                    );
                }
            }
            200..=299 => {
                let phase = c.phase;
                match phase {
                    Phase::Ringing => {
                        c.phase = Phase::Answered(leg);
                        c.answer_ms = Some(now.unix_ms);
                        l.final_code = Some(code);
                        if let Some(relay) = self.media.as_mut().filter(|_| c.proxied) {
                            relay.answered(call, now.mono_ms);
                        }
                        self.ack_2xx(call, msg, request, out);
                        self.respond_caller(
                            now,
                            table,
                            call,
                            200,
                            None,
                            ct.as_deref().map(|t| (t, &body[..])),
                            out,
                        );
                        self.cancel_others(now, table, call, Some(leg), out);
                    }
                    Phase::Answered(w) if w == leg => self.ack_2xx(call, msg, request, out),
                    Phase::Answered(old) if c.transfer_leg == Some(leg) => {
                        // The transfer target answered: it replaces the old
                        // callee (media follows through the relay).
                        c.phase = Phase::Answered(leg);
                        c.transfer_leg = None;
                        l.final_code = Some(code);
                        // From now on the call is with the target (the
                        // active-calls listing and the CDR say so).
                        c.callee_uri = l.target.uri.clone();
                        tracing::info!(call, leg, "transfer answered");
                        self.ack_2xx(call, msg, request, out);
                        self.send_bye(now, table, call, Leg::Callee(old), out);
                    }
                    _ => {
                        // A second 2xx (another fork): ACK and BYE it.
                        self.ack_2xx(call, msg, request, out);
                        self.send_bye(now, table, call, Leg::Callee(leg), out);
                    }
                }
            }
            401 | 407
                if !l.auth_tried && l.target.credentials.is_some() && c.phase == Phase::Ringing =>
            {
                // The carrier challenges us: answer with the trunk's credentials.
                l.auth_tried = true;
                l.cseq += 1;
                let header = if code == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                // Only a qop=auth challenge is answered: without qop the
                // response is a replayable function of the carrier's nonce.
                let cnonce = self.ids.cnonce();
                let answer = msg
                    .header_values(header)
                    .filter_map(|v| client::parse_challenge(&v))
                    .find(|ch| ch.qop_auth)
                    .and_then(|ch| {
                        let (u, p) = l.target.credentials.as_ref()?;
                        client::answer(&ch, u, p, "INVITE", &l.target.uri, &cnonce)
                    });
                match answer {
                    Some(value) => {
                        let name = if code == 401 {
                            "Authorization"
                        } else {
                            "Proxy-Authorization"
                        };
                        self.send_leg_invite(now, table, call, leg, Some((name, value)), out);
                    }
                    None => {
                        l.final_code = Some(code);
                        self.check_all_failed(now, table, call, out);
                    }
                }
            }
            _ => {
                l.final_code = Some(code);
                l.target.permit = None;
                if c.transfer_leg == Some(leg) {
                    tracing::info!(
                        call,
                        code,
                        "transfer target refused; the call stays as it was"
                    );
                    c.transfer_leg = None;
                }
                self.check_all_failed(now, table, call, out);
            }
        }
    }

    /// ACK for a 2xx from a callee (end to end, RFC 3261 13.2.2.4).
    fn ack_2xx(
        &mut self,
        call: u64,
        resp: &Message<'_>,
        request: Option<Vec<u8>>,
        _out: &mut Vec<Action>,
    ) {
        let Some(request) = request else { return };
        let Ok(req) = Message::parse(&request) else {
            return;
        };
        let Some((_, leg)) = resp
            .call_id()
            .and_then(|cid| self.by_call_id.get(cid))
            .copied()
        else {
            return;
        };
        let via = self.via();
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(leg)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        let target = d.remote_target.clone();
        let to = resp
            .header_raw(HeaderName::To)
            .unwrap_or_default()
            .to_string();
        let from = req
            .header_raw(HeaderName::From)
            .unwrap_or_default()
            .to_string();
        let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
        let call_id = d.call_id.clone();
        let mut w = Writer::request(&mut self.buf, "ACK", &target);
        w.header("Via", &via);
        w.header("Max-Forwards", "70");
        w.header("From", &from);
        w.header("To", &to);
        w.header("Call-ID", &call_id);
        w.header("CSeq", &format!("{seq} ACK"));
        w.finish(b"");
        self.direct.push((dest, self.buf.clone()));
    }

    fn cancel_others(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        keep: Option<usize>,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let txs: Vec<TxId> = c
            .legs
            .iter()
            .enumerate()
            .filter(|(i, l)| Some(*i) != keep && l.final_code.is_none())
            .filter_map(|(_, l)| l.invite_tx)
            .collect();
        for tx in txs {
            if let Ok(Some(cancel)) = table.cancel(now.mono_ms, tx, out) {
                self.by_tx.insert(cancel, (call, TxRole::Ignore));
            }
        }
    }

    /// A BYE on one leg's dialog.
    fn send_bye(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        leg: Leg,
        out: &mut Vec<Action>,
    ) {
        let via = self.via();
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(leg)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        let mut w = d.next_request(&mut self.buf, "BYE", &via, 70);
        w.header("User-Agent", &self.cfg.server_name);
        w.finish(b"");
        if let Ok(tx) = table.send_request(now.mono_ms, &self.buf, dest, false, out) {
            self.by_tx.insert(tx, (call, TxRole::Ignore));
        }
    }

    /// A request inside one of our dialogs or for one of our calls (BYE,
    /// CANCEL, re-INVITE, ...). Returns false when it is for no call of ours.
    pub fn on_request(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        tx: TxId,
        msg: &Message<'_>,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(method) = msg.method() else {
            return false;
        };
        if matches!(method, Method::Cancel) {
            let Some(invite_tx) = table.cancel_target_of(tx) else {
                return false;
            };
            self.respond_plain(now, table, tx, msg, 200, out);
            let Some(&(call, _)) = self.by_tx.get(&invite_tx) else {
                return true;
            };
            if self
                .calls
                .get(&call)
                .is_some_and(|c| c.phase == Phase::Ringing)
            {
                self.respond_caller(now, table, call, 487, None, None, out);
                self.cancel_others(now, table, call, None, out);
                self.end(now, call, 487, "missed", "canceled");
            }
            return true;
        }
        let Some(&(call, leg)) = msg.call_id().and_then(|cid| self.by_call_id.get(cid)) else {
            return false;
        };
        let admitted = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog_mut(leg))
            .map_or(DialogMatch::Unknown, |d| d.admit(msg));
        match admitted {
            DialogMatch::InOrder => {}
            DialogMatch::Unknown => {
                self.refused.dialog_mismatch += 1;
                return false;
            }
            DialogMatch::OutOfOrder => {
                self.refused.cseq_out_of_order += 1;
                self.respond_plain(now, table, tx, msg, 500, out);
                return true;
            }
        }
        match method {
            Method::Bye => {
                self.respond_plain(now, table, tx, msg, 200, out);
                let answered = self.calls.get(&call).map(|c| c.phase);
                match (answered, leg) {
                    (Some(Phase::Answered(w)), Leg::Caller) => {
                        self.send_bye(now, table, call, Leg::Callee(w), out);
                        // A transfer target still ringing goes too.
                        self.cancel_others(now, table, call, Some(w), out);
                        self.end(now, call, 200, "completed", "byCaller");
                    }
                    (Some(Phase::Answered(w)), Leg::Callee(_)) => {
                        self.send_bye(now, table, call, Leg::Caller, out);
                        self.cancel_others(now, table, call, Some(w), out);
                        self.end(now, call, 200, "completed", "byCallee");
                    }
                    (Some(Phase::Accepted), Leg::Caller) => {
                        self.end(now, call, 200, "completed", "byCaller");
                    }
                    (Some(Phase::Ringing), Leg::Caller) => {
                        // The first party of a click-to-dial call hung up
                        // before the target answered.
                        self.cancel_others(now, table, call, None, out);
                        self.end(now, call, 487, "missed", "byCaller");
                    }
                    _ => {}
                }
            }
            _ => {
                // Relay to the other leg of an answered call.
                let other = match (self.calls.get(&call).map(|c| c.phase), leg) {
                    (Some(Phase::Answered(w)), Leg::Caller) => Leg::Callee(w),
                    (Some(Phase::Answered(_)), Leg::Callee(_)) => Leg::Caller,
                    _ => {
                        self.respond_plain(now, table, tx, msg, 491, out);
                        return true;
                    }
                };
                self.relay_request(now, table, call, tx, other, msg, out);
            }
        }
        true
    }

    fn respond_plain(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        tx: TxId,
        msg: &Message<'_>,
        code: u16,
        out: &mut Vec<Action>,
    ) {
        let mut w = Writer::response_to(&mut self.buf, msg, code, None, None, None);
        w.header("Server", &self.cfg.server_name);
        w.finish(b"");
        let _ = table.respond(now.mono_ms, tx, &self.buf, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn relay_request(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        server: TxId,
        to: Leg,
        msg: &Message<'_>,
        out: &mut Vec<Action>,
    ) {
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let via = self.via();
        let contact = self.contact();
        let from_side = match to {
            Leg::Caller => Side::Callee,
            Leg::Callee(_) => Side::Caller,
        };
        let body = match self.media_sdp(
            call,
            from_side,
            msg,
            SdpOrigin::Renegotiation,
            BadAddress::Refuse,
        ) {
            Ok(body) => body,
            Err(RefusedAddress) => {
                self.respond_plain(now, table, server, msg, 488, out);
                return;
            }
        };
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(to)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        let max_forwards = msg
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let mut w = d.next_request(&mut self.buf, &method, &via, max_forwards);
        w.header("Contact", &contact);
        for name in [
            HeaderName::ContentType,
            HeaderName::Event,
            HeaderName::ReferTo,
            HeaderName::SessionExpires,
        ] {
            if let Some(v) = msg.header(name) {
                w.header(name.as_str(), v.trim());
            }
        }
        w.finish(body.as_deref().unwrap_or(msg.body()));
        if let Ok(tx) = table.send_request(now.mono_ms, &self.buf, dest, false, out) {
            self.watch_tx(tx, call, TxRole::Relay { server, to });
            self.relayed.insert(server, msg.as_bytes().to_vec());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn relay_response(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        call: u64,
        server: TxId,
        code: u16,
        resp: &Message<'_>,
        from: Side,
        out: &mut Vec<Action>,
    ) {
        let body = self
            .media_sdp(
                call,
                from,
                resp,
                SdpOrigin::Renegotiation,
                BadAddress::Ignore,
            )
            .ok()
            .flatten();
        let req_bytes = if code >= 200 {
            self.relayed.remove(&server)
        } else {
            self.relayed.get(&server).cloned()
        };
        let Some(req_bytes) = req_bytes else {
            tracing::debug!(call, code, "relayed response for a request no longer known");
            return;
        };
        let Ok(req) = Message::parse(&req_bytes) else {
            return;
        };
        let contact = self.contact();
        let mut w = Writer::response_to(&mut self.buf, &req, code, resp.reason(), None, None);
        w.header("Contact", &contact);
        if let Some(ct) = resp.header(HeaderName::ContentType) {
            w.header("Content-Type", ct.trim());
        }
        w.finish(body.as_deref().unwrap_or(resp.body()));
        let _ = table.respond(now.mono_ms, server, &self.buf, out);
    }

    /// Ring timeouts; returns the earliest deadline left.
    pub fn on_timer(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        out: &mut Vec<Action>,
    ) -> Option<u64> {
        self.flush_flows(now.mono_ms, false);
        // A transfer target that rings too long: CANCEL it, the call stays.
        let stale_transfers: Vec<(u64, usize)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| {
                let leg = c.transfer_leg?;
                let l = c.legs.get(leg)?;
                (l.final_code.is_none() && l.deadline_ms.is_some_and(|d| d <= now.mono_ms))
                    .then_some((*id, leg))
            })
            .collect();
        for (id, leg) in stale_transfers {
            let tx = self.calls.get_mut(&id).and_then(|c| {
                c.transfer_leg = None;
                let l = c.legs.get_mut(leg)?;
                l.final_code = Some(408);
                l.target.permit = None;
                l.invite_tx
            });
            if let Some(tx) = tx {
                if let Ok(Some(cancel)) = table.cancel(now.mono_ms, tx, out) {
                    self.by_tx.insert(cancel, (id, TxRole::Ignore));
                }
            }
        }
        // Per-target ring timeouts (sequential forking): CANCEL, then the next.
        let mut expired_legs = Vec::new();
        for (id, c) in &self.calls {
            if c.phase != Phase::Ringing {
                continue;
            }
            for (i, l) in c.legs.iter().enumerate() {
                if l.final_code.is_none() && l.deadline_ms.is_some_and(|d| d <= now.mono_ms) {
                    expired_legs.push((*id, i));
                }
            }
        }
        for (id, i) in expired_legs {
            let tx = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.legs.get_mut(i))
                .and_then(|l| {
                    l.final_code = Some(408);
                    l.target.permit = None;
                    l.invite_tx
                });
            if let Some(tx) = tx {
                if let Ok(Some(cancel)) = table.cancel(now.mono_ms, tx, out) {
                    self.by_tx.insert(cancel, (id, TxRole::Ignore));
                }
            }
            self.check_all_failed(now, table, id, out);
        }
        // A router's max_duration: answered calls that ran their time.
        let overdue: Vec<String> = self
            .calls
            .values()
            .filter(|c| {
                matches!(c.phase, Phase::Answered(_))
                    && c.extras.max_duration_ms.is_some_and(|max| {
                        c.answer_ms
                            .is_some_and(|a| now.unix_ms.saturating_sub(a) >= max)
                    })
            })
            .map(|c| c.caller_call_id.clone())
            .collect();
        for call_id in overdue {
            let _ = self.hangup(now, table, &call_id, Some("max_duration".into()), out);
        }
        let due: Vec<(u64, Phase, bool, TxId)> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Ringing | Phase::Originating)
                    && c.ring_deadline_ms <= now.mono_ms
            })
            .map(|(id, c)| (*id, c.phase, c.invite.is_empty(), c.caller_tx))
            .collect();
        for (id, phase, originated, caller_tx) in due {
            if phase == Phase::Originating {
                // The first party of a click-to-dial call never answered.
                if let Ok(Some(cancel)) = table.cancel(now.mono_ms, caller_tx, out) {
                    self.by_tx.insert(cancel, (id, TxRole::Ignore));
                }
                self.end(now, id, 408, "missed", "noAnswer");
                continue;
            }
            self.cancel_others(now, table, id, None, out);
            if originated {
                self.send_bye(now, table, id, Leg::Caller, out);
            } else {
                self.respond_caller(now, table, id, 408, None, None, out);
            }
            self.end(now, id, 408, "missed", "noAnswer");
        }
        self.calls
            .values()
            .filter(|c| matches!(c.phase, Phase::Ringing | Phase::Originating))
            .map(|c| c.ring_deadline_ms)
            .min()
    }

    /// A callee INVITE that timed out (timer B) counts as 408 on that leg.
    pub fn on_timeout(
        &mut self,
        now: Now,
        table: &mut TransactionTable,
        tx: TxId,
        out: &mut Vec<Action>,
    ) {
        let Some(&(call, TxRole::CalleeInvite(leg))) = self.by_tx.get(&tx) else {
            // Timer L/H on the caller's INVITE: our 2xx was never ACKed, so the
            // caller is gone; hang up the callee too (RFC 3261 13.3.1.4).
            if let Some(&(call, _)) = self.by_tx.get(&tx) {
                match self
                    .calls
                    .get(&call)
                    .filter(|c| c.caller_tx == tx)
                    .map(|c| c.phase)
                {
                    Some(Phase::Answered(w)) => {
                        self.send_bye(now, table, call, Leg::Callee(w), out);
                        self.end(now, call, 200, "completed", "bySystem");
                    }
                    Some(Phase::Accepted) => self.end(now, call, 200, "completed", "bySystem"),
                    Some(Phase::Originating) => self.end(now, call, 408, "missed", "noAnswer"),
                    _ => {}
                }
            }
            self.by_tx.remove(&tx);
            return;
        };
        self.by_tx.remove(&tx);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(l) = c.legs.get_mut(leg) {
            l.final_code.get_or_insert(408);
            l.target.permit = None;
        }
        self.check_all_failed(now, table, call, out);
    }

    /// Ends a call: its CDR goes to `finished`, its ids are forgotten.
    /// Waits on `tx` for `call`; the entry goes when the call ends.
    fn watch_tx(&mut self, tx: TxId, call: u64, role: TxRole) {
        self.by_tx.insert(tx, (call, role));
        self.txs_of.entry(call).or_default().push(tx);
    }

    fn end(&mut self, now: Now, call: u64, code: u16, status: &str, hangup: &str) {
        let Some(mut c) = self.calls.remove(&call) else {
            return;
        };
        self.by_call_id.remove(&c.caller_call_id);
        for l in &c.legs {
            self.by_call_id.remove(&l.dialog.call_id);
        }
        let leg_ids: Vec<String> = c.legs.iter().map(|l| l.dialog.call_id.clone()).collect();
        self.closing_ids.insert(c.caller_call_id.clone(), call);
        for l in &leg_ids {
            self.closing_ids.insert(l.clone(), call);
        }
        self.closing.insert(
            call,
            Closing {
                until_ms: now.mono_ms + crate::call::flow::LINGER_MS,
                call_id: c.caller_call_id.clone(),
                leg_ids,
                flow: std::mem::take(&mut c.flow),
            },
        );
        for tx in self.txs_of.remove(&call).unwrap_or_default() {
            if self
                .by_tx
                .get(&tx)
                .is_some_and(|(id, role)| *id == call && !matches!(role, TxRole::Ignore))
            {
                self.by_tx.remove(&tx);
            }
        }
        let duration = c
            .answer_ms
            .map(|a| now.unix_ms.saturating_sub(a) / 1000)
            .unwrap_or(0);
        let mut metadata = c.extras.metadata;
        let mut recorder = Vec::new();
        metadata.insert(
            "media".into(),
            (if c.proxied { "proxied" } else { "direct" }).into(),
        );
        if let Some(m) = &c.hangup_message {
            metadata.insert("hangupMessage".into(), m.clone().into());
        }
        if let Some(report) = self
            .media
            .as_mut()
            .filter(|_| c.proxied)
            .and_then(|r| r.close(call, now.mono_ms))
        {
            metadata.insert("tracks".into(), report.stats);
            recorder = report.recorder;
        }
        self.finished.push(Cdr {
            call_id: c.caller_call_id.clone(),
            start_time: rfc3339_ms(c.start_ms),
            ring_time: c.ring_ms.map(rfc3339_ms),
            answer_time: c.answer_ms.map(rfc3339_ms),
            end_time: rfc3339_ms(now.unix_ms),
            duration_secs: duration,
            caller: c.caller_uri,
            callee: c.callee_uri,
            from_number: c.from_number,
            to_number: c.to_number,
            direction: c.direction.to_string(),
            status: status.to_string(),
            status_code: code,
            hangup_reason: hangup.to_string(),
            sip_trunk_id: c.trunk,
            route_id: c.route,
            auth_user: c.auth_user,
            recorder,
            recording_url: None,
            metadata,
        });
    }

    /// Handles what the transaction table reported for a message of ours.
    pub fn is_ours(&self, received: &Received) -> bool {
        match received {
            Received::Response(tx) => self.by_tx.contains_key(tx),
            _ => false,
        }
    }
}

/// RFC 3261 16.7 step 6: 6xx wins, else the lowest class, 408 counting as 4xx.
pub fn best_final(codes: impl Iterator<Item = u16>) -> u16 {
    let codes: Vec<u16> = codes.collect();
    if let Some(c) = codes.iter().find(|c| (600..700).contains(*c)) {
        return *c;
    }
    codes
        .into_iter()
        .min_by_key(|c| (c / 100, *c == 408 || *c == 503))
        .unwrap_or(480)
}
