//! The WebRTC transport of one media leg: owns the ICE-lite agent's state
//! (which addresses passed a check, which one the peer nominated, consent
//! freshness), the gate that lets DTLS in only from checked addresses, the
//! deadlines (ICE, DTLS, consent), and the events the relay acts on. The
//! STUN messages are `stun`'s, the DTLS association `dtls`'s.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::demux::{classify, Kind};
use super::dtls::{Identity, Leg, Role};
use super::sdp::{IceCreds, RemoteParams, Setup};
use super::stun;
use crate::media::srtp::MasterKey;

/// ICE must select an address within this long of `Transport::new`.
pub const ICE_TIMEOUT_MS: u64 = 10_000;
/// DTLS must complete within this long of its start.
pub const DTLS_TIMEOUT_MS: u64 = 10_000;
/// Once connected, the leg ends when the selected address has sent no
/// valid check for this long (RFC 7675: browsers send one every ~5 s).
pub const CONSENT_TIMEOUT_MS: u64 = 30_000;
/// Most addresses remembered as having passed a check.
const MAX_CHECKED: usize = 8;
/// Most datagrams queued for sending; beyond, new ones are dropped (STUN
/// is retried by the peer, DTLS by either end).
const MAX_TRANSMITS: usize = 64;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: SocketAddr,
    /// The datagram.
    pub data: Vec<u8>,
}

/// Why a leg failed; [`Failure::as_str`] names it for CDRs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No address was nominated within [`ICE_TIMEOUT_MS`].
    IceTimeout,
    /// DTLS did not complete within [`DTLS_TIMEOUT_MS`].
    DtlsTimeout,
    /// DTLS failed (alert, protocol error, or an SRTP profile we lack).
    DtlsError,
    /// The peer's certificate does not match its SDP fingerprint.
    Fingerprint,
    /// No check from the selected address for [`CONSENT_TIMEOUT_MS`].
    ConsentExpired,
}

impl Failure {
    /// The name for CDRs.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::IceTimeout => "ice_timeout",
            Failure::DtlsTimeout => "dtls_timeout",
            Failure::DtlsError => "dtls_failed",
            Failure::Fingerprint => "fingerprint_mismatch",
            Failure::ConsentExpired => "consent_expired",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a leg is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the peer to nominate an address.
    Checking,
    /// An address is selected; DTLS is under way.
    Handshaking,
    /// DTLS completed, the fingerprint matched, the keys are out.
    Connected,
    /// The leg is over.
    Failed(Failure),
}

/// What the relay is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// ICE selected this address (the source of a valid check carrying
    /// USE-CANDIDATE): media goes there. A later nomination of another
    /// address switches it, and this comes again, until DTLS completed
    /// (DTLS flights go to the selected address, so the handshake proves
    /// the peer holds it; after that the selection stays).
    Selected(SocketAddr),
    /// DTLS completed and the peer's certificate matched its fingerprint:
    /// the SRTP master keys, ours to send with (`local`) and the peer's
    /// (`remote`, to receive with). Once.
    Keys {
        /// Protects what we send.
        local: MasterKey,
        /// Unprotects what we receive.
        remote: MasterKey,
    },
    /// The leg failed; nothing more happens on it.
    Failed(Failure),
}

/// Why a transport could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The certificate or key could not be made or loaded.
    Certificate,
    /// The DTLS configuration was refused.
    Config,
    /// Our role contradicts the peer's `a=setup` (both active or both
    /// passive).
    SetupConflict,
    /// The peer is ICE-lite too: nobody would send checks.
    IceLitePeer,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Certificate => "DTLS certificate could not be made or loaded",
            Error::Config => "DTLS configuration refused",
            Error::SetupConflict => "our DTLS role contradicts the peer's a=setup",
            Error::IceLitePeer => "the peer is ICE-lite too",
        })
    }
}

impl std::error::Error for Error {}

/// The WebRTC transport of one media leg: an ICE-lite agent (it answers
/// the peer's checks and never sends any) and a DTLS-SRTP association, in
/// the sans-IO style of quinn-proto or str0m: no sockets, no clock.
///
/// Drive it, on every datagram and timer, in this order:
/// 1. [`handle`](Self::handle) a datagram (STUN and DTLS are taken; RTP
///    and RTCP are the relay's), or [`handle_timeout`](Self::handle_timeout)
///    when the timer fires;
/// 2. send everything [`poll_transmit`](Self::poll_transmit) gives;
/// 3. act on everything [`poll_event`](Self::poll_event) gives;
/// 4. arm the timer at [`poll_timeout`](Self::poll_timeout).
///
/// Rules: DTLS is accepted only from an address that passed a valid check
/// (others are dropped and counted in [`dropped`](Self::dropped)); as DTLS
/// server we wait for the ClientHello, as client we send it once ICE has
/// selected an address. Deadlines: an address selected within
/// [`ICE_TIMEOUT_MS`] of `new`, DTLS complete within [`DTLS_TIMEOUT_MS`]
/// of its start (the selection or the first DTLS datagram, whichever
/// comes first), and once connected a valid check from the selected
/// address at least every [`CONSENT_TIMEOUT_MS`]. Should DTLS complete
/// before any nomination, the address DTLS came from is selected.
pub struct Transport {
    local: IceCreds,
    /// `<our ufrag>:<their ufrag>`: the USERNAME of the peer's checks.
    username: Vec<u8>,
    dtls: Leg,
    state: State,
    ice_deadline: u64,
    dtls_deadline: Option<u64>,
    /// Sources of valid checks, least recently seen first.
    checked: Vec<SocketAddr>,
    selected: Option<SocketAddr>,
    /// Source of the latest DTLS datagram: where DTLS goes while no
    /// address is selected.
    dtls_peer: Option<SocketAddr>,
    /// When the selected address last sent a valid check.
    last_consent_ms: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    dropped: u64,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("state", &self.state)
            .field("role", &self.dtls.role())
            .field("selected", &self.selected)
            .field("checked", &self.checked)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// Queues `data` for `dest`, within the bound.
fn queue(q: &mut VecDeque<Transmit>, dest: Option<SocketAddr>, data: &[u8]) {
    if let Some(dest) = dest {
        if q.len() < MAX_TRANSMITS {
            q.push_back(Transmit {
                dest,
                data: data.to_vec(),
            });
        }
    }
}

impl Transport {
    /// A transport at `now_ms` with our ICE credentials `local`, the peer's
    /// SDP parameters `remote`, our DTLS `identity` and `role` (see
    /// `Setup::our_role`). Fails if `role` contradicts the peer's
    /// `a=setup` or the peer is ICE-lite too.
    pub fn new(
        now_ms: u64,
        local: IceCreds,
        remote: RemoteParams,
        identity: Arc<Identity>,
        role: Role,
    ) -> Result<Transport, Error> {
        if remote.ice_lite {
            return Err(Error::IceLitePeer);
        }
        if matches!(
            (remote.setup, role),
            (Setup::Active, Role::Client) | (Setup::Passive, Role::Server)
        ) {
            return Err(Error::SetupConflict);
        }
        let username = format!("{}:{}", local.ufrag(), remote.creds.ufrag()).into_bytes();
        Ok(Transport {
            local,
            username,
            dtls: Leg::new(now_ms, &identity, role, remote.fingerprint),
            state: State::Checking,
            ice_deadline: now_ms.saturating_add(ICE_TIMEOUT_MS),
            dtls_deadline: None,
            checked: Vec::with_capacity(MAX_CHECKED),
            selected: None,
            dtls_peer: None,
            last_consent_ms: now_ms,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
        })
    }

    /// Takes a datagram that came from `src` at `now_ms` if it is STUN or
    /// DTLS (RFC 7983), and returns whether it was; RTP, RTCP and anything
    /// else are left to the caller (`false`). A STUN or DTLS datagram that
    /// is invalid, unauthenticated, from an unchecked address, or arrives
    /// after failure is dropped (and counted).
    pub fn handle(&mut self, now_ms: u64, src: SocketAddr, buf: &[u8]) -> bool {
        let kind = classify(buf);
        if !matches!(kind, Kind::Stun | Kind::Dtls) {
            return false;
        }
        // Deadlines that passed come first.
        self.handle_timeout(now_ms);
        if matches!(self.state, State::Failed(_)) {
            self.dropped += 1;
        } else if kind == Kind::Stun {
            self.on_stun(now_ms, src, buf);
        } else {
            self.on_dtls(now_ms, src, buf);
        }
        true
    }

    fn on_stun(&mut self, now_ms: u64, src: SocketAddr, buf: &[u8]) {
        let pwd = self.local.pwd().as_bytes();
        let Some(req) = stun::check_request(buf, &self.username, pwd) else {
            self.dropped += 1;
            return;
        };
        let response = stun::success_response(&req.txid, src, pwd);
        if response.len() > buf.len() {
            // No answer larger than its check (a minimal check from an
            // IPv6 source would get 8 bytes more): a browser's checks
            // carry PRIORITY and ICE-CONTROLLING and are larger anyway.
            self.dropped += 1;
            return;
        }
        queue(&mut self.transmits, Some(src), &response);
        self.remember(src);
        if self.selected == Some(src) {
            self.last_consent_ms = now_ms;
        }
        // A lite agent is controlled: only a controlling peer nominates.
        // Once DTLS completed, the selection is the address the handshake
        // went to and came back from: a later nomination (which anyone
        // with the password could spoof from a third party's address) does
        // not move the media.
        if req.use_candidate
            && req.controlling
            && self.selected != Some(src)
            && self.state != State::Connected
        {
            self.select(now_ms, src);
            if self.dtls.role() == Role::Client && !self.dtls.is_started() {
                let dest = self.selected;
                let Transport {
                    dtls, transmits, ..
                } = self;
                let r = dtls.start(now_ms, &mut |p| queue(transmits, dest, p));
                self.after_dtls(now_ms, r);
            }
        }
    }

    /// Notes `src` as checked, most recently; beyond the bound the least
    /// recently seen address other than the selected one is forgotten.
    fn remember(&mut self, src: SocketAddr) {
        self.checked.retain(|a| *a != src);
        if self.checked.len() >= MAX_CHECKED {
            if let Some(i) = self.checked.iter().position(|a| Some(*a) != self.selected) {
                self.checked.remove(i);
            }
        }
        self.checked.push(src);
    }

    /// Makes `addr` the selected address.
    fn select(&mut self, now_ms: u64, addr: SocketAddr) {
        self.selected = Some(addr);
        self.last_consent_ms = now_ms;
        // Only the latest selection matters to whoever has not polled yet.
        self.events.retain(|e| !matches!(e, Event::Selected(_)));
        self.events.push_back(Event::Selected(addr));
        if self.state == State::Checking {
            self.state = State::Handshaking;
            self.dtls_deadline
                .get_or_insert(now_ms.saturating_add(DTLS_TIMEOUT_MS));
        }
    }

    fn on_dtls(&mut self, now_ms: u64, src: SocketAddr, buf: &[u8]) {
        // DTLS only from an address that passed a check, and only what
        // the association can take now (`Leg::accepts`).
        if !self.checked.contains(&src) || !self.dtls.accepts(buf) {
            self.dropped += 1;
            return;
        }
        self.dtls_peer = Some(src);
        self.dtls_deadline
            .get_or_insert(now_ms.saturating_add(DTLS_TIMEOUT_MS));
        let dest = self.selected.or(self.dtls_peer);
        let Transport {
            dtls, transmits, ..
        } = self;
        let r = dtls.handle_packet(now_ms, buf, &mut |p| queue(transmits, dest, p));
        self.after_dtls(now_ms, r);
    }

    /// Acts on what the DTLS association said.
    fn after_dtls(&mut self, now_ms: u64, r: Result<Option<(MasterKey, MasterKey)>, Failure>) {
        match r {
            Err(failure) => self.fail(failure),
            Ok(None) => {}
            Ok(Some((local, remote))) => {
                if self.selected.is_none() {
                    if let Some(addr) = self.dtls_peer {
                        self.select(now_ms, addr);
                    }
                }
                self.state = State::Connected;
                self.events.push_back(Event::Keys { local, remote });
            }
        }
    }

    fn fail(&mut self, failure: Failure) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.state = State::Failed(failure);
        self.transmits.clear();
        self.events.push_back(Event::Failed(failure));
    }

    /// Advances time to `now_ms`: fails the leg if a deadline passed, and
    /// lets DTLS retransmit. Call it when [`poll_timeout`](Self::poll_timeout)
    /// is due (calling it early, or more often, is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        if self.selected.is_none() && now_ms >= self.ice_deadline {
            return self.fail(Failure::IceTimeout);
        }
        if self.state != State::Connected && self.dtls_deadline.is_some_and(|d| now_ms >= d) {
            return self.fail(Failure::DtlsTimeout);
        }
        if self.state == State::Connected
            && now_ms >= self.last_consent_ms.saturating_add(CONSENT_TIMEOUT_MS)
        {
            return self.fail(Failure::ConsentExpired);
        }
        let dest = self.selected.or(self.dtls_peer);
        let Transport {
            dtls, transmits, ..
        } = self;
        let r = dtls.handle_timeout(now_ms, &mut |p| queue(transmits, dest, p));
        self.after_dtls(now_ms, r);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, in the
    /// milliseconds of `now_ms`; `None` once failed.
    pub fn poll_timeout(&self) -> Option<u64> {
        let deadline = match self.state {
            State::Failed(_) => return None,
            State::Checking => Some(
                self.ice_deadline
                    .min(self.dtls_deadline.unwrap_or(u64::MAX)),
            ),
            State::Handshaking => self.dtls_deadline,
            State::Connected => Some(self.last_consent_ms.saturating_add(CONSENT_TIMEOUT_MS)),
        };
        match (deadline, self.dtls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The peer cannot start ICE yet (it has not been sent our
    /// credentials: a caller whose offer is being answered only when the
    /// callee answers): no ICE deadline runs until [`Transport::arm_ice`].
    pub fn defer_ice(&mut self) {
        if self.state == State::Checking {
            self.ice_deadline = u64::MAX;
        }
    }

    /// Our credentials went to the peer at `now_ms`: it has
    /// [`ICE_TIMEOUT_MS`] from now to nominate an address.
    pub fn arm_ice(&mut self, now_ms: u64) {
        if self.state == State::Checking {
            self.ice_deadline = now_ms.saturating_add(ICE_TIMEOUT_MS);
        }
    }

    /// Where the leg is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The address ICE selected, if any.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// STUN and DTLS datagrams dropped: invalid or unauthenticated checks,
    /// DTLS from addresses that passed no check, anything after failure.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Test hook: the DTLS association.
    #[cfg(test)]
    pub(super) fn leg(&self) -> &Leg {
        &self.dtls
    }
}
