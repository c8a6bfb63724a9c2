//! The relay's WebRTC sides (a browser's leg): our ICE credentials for the
//! side and, once its SDP is known, its [`Transport`] (ICE-lite and
//! DTLS-SRTP). STUN and DTLS on the side's port go to the transport; what
//! it sends leaves as [`SocketOp::Send`]; what it tells the relay is
//! applied to the side: the address ICE selected becomes the only one its
//! media is taken from and sent to, the DTLS keys become its SRTP
//! contexts, a failure hangs the call up (its CDR says which).
//!
//! Until the keys are out, nothing but STUN and DTLS is taken from a
//! WebRTC side: no RTP is relayed in clear, in either direction.

use std::net::SocketAddr;
use std::sync::Arc;

use rand_chacha::rand_core::RngCore;

use super::{canonical, SideState};
use super::{MediaOutput, MediaRelay, Side, SocketOp};
use crate::media::webrtc::{
    Event, Failure, Fingerprint, IceCreds, Identity, RemoteParams, Role, Setup, State, Transport,
};

/// The WebRTC end of one side.
pub(crate) struct WebRtcSide {
    /// Our ICE credentials toward it (the same for every offer and answer
    /// of the session, so a re-offer is no ICE restart).
    local: IceCreds,
    /// The transport, once its SDP is known, with the parameters it was
    /// made from (a re-offer with the same ones keeps it).
    transport: Option<(Box<Transport>, RemoteParams, Role)>,
    /// Our SDP went to it: it can do ICE. (A browser caller's offer makes
    /// its transport, but ICE waits for our answer, which may come only
    /// when the callee answers, after ringing.)
    sent: bool,
}

impl WebRtcSide {
    fn new(local: IceCreds, sent: bool) -> Box<WebRtcSide> {
        Box::new(WebRtcSide {
            local,
            transport: None,
            sent,
        })
    }
}

/// What our SDP toward a WebRTC side says of our end.
#[derive(Clone, Debug)]
pub struct WebRtcLocal {
    pub creds: IceCreds,
    pub fingerprint: Fingerprint,
    /// `actpass` in an offer (no transport yet), else our role's.
    pub setup: Setup,
    /// The `a=mid` to echo (the peer's), if it gave one.
    pub mid: Option<String>,
    /// Our host candidate: the advertised address, the side's port.
    pub candidate: SocketAddr,
}

/// Why a WebRTC side could not be set up (the SDP is refused, 488).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebRtcError {
    /// No DTLS identity on this shard (its certificate could not be made).
    NoIdentity,
    /// The peer's parameters cannot make a transport (role conflict, the
    /// peer is ICE-lite too).
    Transport,
}

impl MediaRelay {
    /// This shard's DTLS identity (made on first use); `None` when it
    /// cannot be made.
    fn identity(&mut self) -> Option<Arc<Identity>> {
        if self.identity.is_none() {
            let rng = &mut self.keys;
            match Identity::generate(&mut |b| rng.fill_bytes(b)) {
                Ok(id) => self.identity = Some(Arc::new(id)),
                Err(e) => tracing::error!(shard = self.shard, "no DTLS certificate: {e}"),
            }
        }
        self.identity.clone()
    }

    /// What our SDP toward `side` of session `id`, sent at `now_ms`, says
    /// of our WebRTC end; makes the side a WebRTC one (our credentials) if
    /// it was not. The side's ICE deadline runs from here.
    pub fn webrtc_local(
        &mut self,
        now_ms: u64,
        id: u64,
        side: Side,
    ) -> Result<WebRtcLocal, WebRtcError> {
        let advertise = self.cfg.advertise;
        let (st, identity) = self.webrtc_side(id, side)?;
        let port = st.port;
        let Some(w) = st.webrtc.as_mut() else {
            return Err(WebRtcError::Transport);
        };
        w.sent = true;
        let (setup, mid) = match &mut w.transport {
            None => (Setup::ActPass, None),
            Some((t, remote, role)) => {
                t.arm_ice(now_ms);
                (role.setup(), remote.mid.clone())
            }
        };
        Ok(WebRtcLocal {
            creds: w.local.clone(),
            fingerprint: *identity.fingerprint(),
            setup,
            mid,
            candidate: SocketAddr::new(advertise, port),
        })
    }

    /// `side` of session `id` sent WebRTC SDP with `remote`: its transport
    /// is made (or kept, when the parameters did not change).
    pub fn webrtc_remote(
        &mut self,
        now_ms: u64,
        id: u64,
        side: Side,
        remote: RemoteParams,
    ) -> Result<(), WebRtcError> {
        let (st, identity) = self.webrtc_side(id, side)?;
        let Some(w) = st.webrtc.as_mut() else {
            return Err(WebRtcError::Transport);
        };
        // The same ICE credentials and certificate: the same transport,
        // whatever else the SDP says (a re-offer for hold says `actpass`
        // where the first answer said `active`; the association stays).
        if w.transport
            .as_ref()
            .is_some_and(|(_, r, _)| r.creds == remote.creds && r.fingerprint == remote.fingerprint)
        {
            return Ok(());
        }
        // New credentials or certificate: an ICE restart or a new DTLS
        // association. The keys of the old one no longer hold.
        let role = remote.setup.our_role();
        let mut t = Transport::new(now_ms, w.local.clone(), remote.clone(), identity, role)
            .map_err(|e| {
                tracing::debug!("webrtc transport refused: {e}");
                WebRtcError::Transport
            })?;
        if !w.sent {
            t.defer_ice();
        }
        w.transport = Some((Box::new(t), remote, role));
        st.crypto.clear();
        st.latched_rtp = None;
        st.latched_rtcp = None;
        st.expect_ip = None;
        Ok(())
    }

    /// `side` of session `id` as a WebRTC side (made one, with fresh
    /// credentials, if it was not), its streams taken back from the fast
    /// path; and this shard's DTLS identity.
    fn webrtc_side(
        &mut self,
        id: u64,
        side: Side,
    ) -> Result<(&mut SideState, Arc<Identity>), WebRtcError> {
        let identity = self.identity().ok_or(WebRtcError::NoIdentity)?;
        let rng = &mut self.keys;
        let s = self.sessions.get_mut(&id).ok_or(WebRtcError::Transport)?;
        s.take_back_both(&mut self.fast, &mut self.counters);
        let st = &mut s.sides[side as usize];
        if st.webrtc.is_none() {
            let creds = IceCreds::random(&mut |b| rng.fill_bytes(b));
            st.webrtc = Some(WebRtcSide::new(creds, false));
        }
        Ok((st, identity))
    }

    /// Fresh ICE credentials, kept nowhere: for one party of a side that
    /// may be several (browser forks, failover and transfer targets of the
    /// callee side), so none learns the password another is sent.
    pub fn webrtc_fresh_creds(&mut self) -> IceCreds {
        let rng = &mut self.keys;
        IceCreds::random(&mut |b| rng.fill_bytes(b))
    }

    /// Our ICE credentials toward `side` of session `id` are `creds` (the
    /// party's own, see [`MediaRelay::webrtc_fresh_creds`]), sent to it in
    /// our offer: for what is written to it next and for the transport its
    /// answer makes.
    pub fn webrtc_set_local(&mut self, id: u64, side: Side, creds: IceCreds) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let st = &mut s.sides[side as usize];
        match st.webrtc.as_mut() {
            Some(w) => {
                w.local = creds;
                w.sent = true;
            }
            None => st.webrtc = Some(WebRtcSide::new(creds, true)),
        }
    }

    /// `side` of session `id` is not (or no longer) a WebRTC one: its SDP
    /// was plain.
    pub fn webrtc_clear(&mut self, id: u64, side: Side) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.sides[side as usize].webrtc = None;
        }
    }

    /// Whether `side` of session `id` is a WebRTC one.
    pub fn is_webrtc(&self, id: u64, side: Side) -> bool {
        self.sessions
            .get(&id)
            .is_some_and(|s| s.sides[side as usize].webrtc.is_some())
    }

    /// Drives the WebRTC sides' timers; their sends and events follow.
    pub(super) fn webrtc_tick(&mut self, now_ms: u64) {
        let mut failed = Vec::new();
        for (id, s) in &mut self.sessions {
            for st in &mut s.sides {
                let Some(t) = st.webrtc.as_mut().and_then(|w| w.transport.as_mut()) else {
                    continue;
                };
                if t.0.poll_timeout().is_some_and(|due| due <= now_ms) {
                    t.0.handle_timeout(now_ms);
                }
                if let Some(f) = drive(st, &mut self.out, &mut self.keys) {
                    failed.push((*id, f));
                }
            }
        }
        for (id, f) in failed {
            self.fail_session(id, f.as_str());
        }
    }

    /// A STUN or DTLS datagram on the port of a WebRTC side `from` of
    /// session `id`.
    pub(super) fn webrtc_datagram(
        &mut self,
        now_ms: u64,
        id: u64,
        side: Side,
        src: SocketAddr,
        packet: &[u8],
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let st = &mut s.sides[side as usize];
        let Some((t, _, _)) = st.webrtc.as_mut().and_then(|w| w.transport.as_mut()) else {
            // Its SDP is not known yet: nothing to check it against.
            self.counters.rejected += 1;
            return;
        };
        if !t.handle(now_ms, src, packet) {
            self.counters.malformed += 1;
            self.counters.rejected += 1;
            return;
        }
        if let Some(f) = drive(st, &mut self.out, &mut self.keys) {
            self.fail_session(id, f.as_str());
        }
    }
}

/// Sends what `st`'s transport queued (out of the side's port) and
/// applies what it tells; the failure, if it failed.
fn drive(
    st: &mut SideState,
    out: &mut std::collections::VecDeque<MediaOutput>,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Option<Failure> {
    let port = st.port;
    let (t, _, _) = st.webrtc.as_mut()?.transport.as_mut()?;
    while let Some(tx) = t.poll_transmit() {
        out.push_back(MediaOutput::Socket(SocketOp::Send {
            port,
            dest: tx.dest,
            data: tx.data,
        }));
    }
    let mut failure = None;
    let mut events = Vec::new();
    while let Some(e) = t.poll_event() {
        events.push(e);
    }
    for e in events {
        match e {
            Event::Selected(addr) => {
                // The address the browser proved it holds (a check signed
                // with our password): media is taken from there only.
                st.expect_ip = Some(canonical(addr.ip()));
                st.latched_rtp = Some(addr);
                st.latched_rtcp = Some(addr);
                st.candidate = None;
                st.sig.rtp = Some(addr);
                st.sig.rtcp_mux = true;
            }
            Event::Keys { local, remote } => {
                let mut fill = |b: &mut [u8]| rng.fill_bytes(b);
                st.crypto
                    .set(Some((1, remote, true)), Some(local), &mut fill);
            }
            Event::Failed(f) => failure = Some(f),
        }
    }
    failure
}

impl SideState {
    /// The state of a WebRTC side for its CDR track, `None` for another.
    pub(crate) fn webrtc_state(&self) -> Option<&'static str> {
        let w = self.webrtc.as_ref()?;
        Some(match w.transport.as_ref().map(|(t, _, _)| t.state()) {
            None => "new",
            Some(State::Checking) => "checking",
            Some(State::Handshaking) => "dtls",
            Some(State::Connected) => "connected",
            Some(State::Failed(f)) => f.as_str(),
        })
    }
}

impl SideState {
    /// A WebRTC side whose keys are not out yet: no RTP or RTCP is taken
    /// from it nor sent to it.
    pub(super) fn webrtc_pending(&self) -> bool {
        self.webrtc.is_some() && self.crypto.active.is_none()
    }
}
