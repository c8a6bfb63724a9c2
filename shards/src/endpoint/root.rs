//! The shard root: [`SipEndpoint`] as the runtime's [`ShardLogic`]. One
//! turn is a datagram (parsed once, handed to its owner shard or admitted
//! here), a message from the control core, or a deadline; the endpoint, the
//! call engine and the relay sit side by side in it. What leaves a turn:
//! datagrams for the runtime's send queue, socket work for the runtime
//! (the relay's binds and closes), records and flows for the control core,
//! counters and gauges.
//!
//! Timers: `poll_timeout` is the earliest of the engine's deadlines
//! (transactions, rings, max durations, flow lingers), the parked
//! requests' and spam list's deadlines, the relay's upkeep while it has
//! sessions and the caches' sweep; `handle_timeout` fires what is due.

use std::net::SocketAddr;

use crate::transport::{Link, Peer, StreamKind};

use super::admission::ShedReason;
use super::{is_keepalive, Answer, Reply, Req, SipEndpoint};
use crate::call::{Command, Handled, Input, Output as CallOutput};
use crate::cdr::CallStatus;
use crate::control_link::ControlRequest;
use crate::media::relay::{MediaInput, MediaOutput, SocketOp};
use crate::runtime::inbox::CallCommand;
use crate::runtime::owner::owner_of;
use crate::runtime::{Backlog, Output, ShardGauges, ShardLogic, ShardMsg, ShardStats};
use crate::security::Verdict;
use crate::sip::Message;
use crate::time::Now;

/// The caches (transactions answered, nonces seen) are swept this often (ms).
const HOUSEKEEPING_MS: u64 = 1_000;
/// The relay's upkeep (recordings flushed, RTP timeouts) while it has
/// sessions (ms).
const MEDIA_TICK_MS: u64 = 100;

impl SipEndpoint {
    /// When the caches (transactions answered, nonces) are swept next.
    pub(super) fn housekeeping_due(&self) -> u64 {
        self.last_housekeeping_ms + HOUSEKEEPING_MS
    }

    pub(super) fn count_call(&self, status: CallStatus) {
        let s = &self.ctx.stats;
        let counter = match status {
            CallStatus::Completed => &s.calls_completed,
            CallStatus::Missed => &s.calls_missed,
            CallStatus::Rejected => &s.calls_rejected,
            CallStatus::Spam => &s.calls_spam,
            CallStatus::Failed => &s.calls_failed,
        };
        ShardStats::add(counter, 1);
    }

    /// Moves what the engine made into the shard's output (datagrams) and
    /// to the control core (records, flows); updates counters and gauges.
    pub(super) fn flush_calls(&mut self, out: &mut Output) {
        while let Some(o) = self.calls.poll_output() {
            match o {
                CallOutput::Transmit { dest, data } => match dest.link {
                    // A trunk over TLS: the connection may have to be made,
                    // verified as the trunk's settings say.
                    Link::Dial(StreamKind::Tls) => {
                        let dial = self.routing.trunks.tls_dial(dest.addr).cloned();
                        out.send_dial(dest, dial, &data);
                    }
                    _ => out.send(dest, &data),
                },
                CallOutput::Cdr(cdr) => {
                    self.count_call(cdr.status);
                    let _ = self.control.send(ControlRequest::StoreCdr(cdr));
                }
                CallOutput::Flow { call_id, json } => {
                    let _ = self.control.send(ControlRequest::StoreFlow(call_id, json));
                }
            }
        }
        let refused = self.calls.take_refused();
        ShardStats::add(&self.ctx.stats.sip_dialog_mismatch, refused.dialog_mismatch);
        ShardStats::add(
            &self.ctx.stats.sip_cseq_out_of_order,
            refused.cseq_out_of_order,
        );
        ShardStats::add(&self.ctx.stats.sdp_address_refused, refused.media_address);
        ShardStats::add(&self.ctx.stats.sdp_srtp_refused, refused.srtp);
        if let Some(now) = self.relay.as_ref().map(|m| m.counters) {
            let (was, stats) = (self.media_reported, &self.ctx.stats);
            ShardStats::add(&stats.rtp_lost, now.lost - was.lost);
            ShardStats::add(
                &stats.rtp_foreign_source,
                now.foreign_source - was.foreign_source,
            );
            ShardStats::add(
                &stats.rtp_unlatched_source,
                now.unlatched_source - was.unlatched_source,
            );
            ShardStats::add(&stats.rtp_malformed, now.malformed - was.malformed);
            ShardStats::add(
                &stats.rtp_srtp_rejected,
                now.srtp_rejected - was.srtp_rejected,
            );
            ShardStats::add(
                &stats.rtp_untranscodable,
                now.untranscodable - was.untranscodable,
            );
            // What the kernel relayed counts as received and relayed too.
            let fast = now.fast_forwarded - was.fast_forwarded;
            ShardStats::add(&stats.rtp_rx, fast);
            ShardStats::add(&stats.rtp_tx, fast);
            ShardStats::add(&stats.rtp_kernel, fast);
            self.media_reported = now;
        }
        let evicted = self.calls.tx_evicted();
        ShardStats::add(
            &self.ctx.stats.tx_evicted,
            evicted - self.tx_evicted_reported,
        );
        self.tx_evicted_reported = evicted;
        // Levels for AMI health and the drain of a graceful shutdown.
        let gauges = &self.ctx.stats.gauges;
        ShardGauges::set(&gauges.active_calls, self.calls.active_calls() as u64);
        ShardGauges::set(
            &gauges.rtp_sessions,
            self.relay
                .as_ref()
                .map_or(0, crate::media::relay::MediaRelay::sessions) as u64,
        );
    }
}

impl SipEndpoint {
    /// A new INVITE (no To tag, no call of ours) while the shard sheds
    /// (`admission`): 503 with Retry-After, statelessly, before it costs a
    /// transaction, a call or a record (API.md: a CDR is for an INVITE that
    /// reached routing). True when it was shed. A retransmission of an
    /// INVITE this shard took passes (its transaction answers it). One another shard received and
    /// handed over is also shed while any shard's socket is behind (the
    /// receiver is the likely one; which one it was is not said).
    fn shed_new_invite(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: Peer,
        handed_off: bool,
        out: &mut Output,
    ) -> bool {
        self.admission.observe_peers(self.calls.stalled_invites());
        let own = self.admission.admit(self.control.len());
        ShardGauges::set(&self.ctx.stats.gauges.shedding, ShedReason::code(own.err()));
        let verdict = match own {
            Ok(()) if handed_off && self.settings.overload.any_behind() => {
                Err(ShedReason::RecvBacklog)
            }
            other => other,
        };
        let Err(reason) = verdict else {
            return false;
        };
        if msg.to().map_or(true, |t| t.tag().is_some())
            || msg.call_id().is_some_and(|c| self.calls.knows_call_id(c))
            || msg.check().is_err()
            || self.calls.has_transaction(msg)
        {
            // In a dialog, of a call we took, malformed (the usual path
            // answers it) or a retransmission of an INVITE we took.
            return false;
        }
        let stats = &self.ctx.stats;
        let counter = match reason {
            ShedReason::RecvBacklog => &stats.overload_shed_recv_backlog,
            ShedReason::StoreBacklog => &stats.overload_shed_store_backlog,
            ShedReason::PeerBacklog => &stats.overload_shed_peer_backlog,
        };
        ShardStats::add(counter, 1);
        let retry = [("Retry-After", self.admission.retry_after_secs().to_string())];
        self.respond(
            Req::new(now, msg, src),
            Answer::Stateless,
            Reply::new(503).headers(&retry),
            out,
        );
        true
    }
}

impl ShardLogic for SipEndpoint {
    fn use_fast_path(&mut self, fast: Box<dyn crate::media::fastpath::FastPath>) {
        if let Some(relay) = self.relay.as_mut() {
            relay.set_fast_path(fast);
        }
    }

    fn on_datagram(
        &mut self,
        now: Now,
        data: &[u8],
        src: Peer,
        handed_off: bool,
        out: &mut Output,
    ) {
        if !handed_off {
            // Bans and the flood limit, before anything is parsed.
            let request = !data.starts_with(b"SIP/2.0 ");
            match self.guard.check(now.unix, now.mono_ms, src.addr, request) {
                Verdict::Pass => {}
                Verdict::Banned => {
                    ShardStats::add(&self.ctx.stats.banned_dropped, 1);
                    return;
                }
                Verdict::Flood => {
                    ShardStats::add(&self.ctx.stats.flood_dropped, 1);
                    return;
                }
            }
        }
        // Parsed once here (lazily: the owner lookup reads one header) and
        // passed on as it is.
        let parsed = Message::parse(data);
        // A REGISTER on a stream connection stays on the connection's shard:
        // its answer goes over this connection anyway, bindings are shared
        // through the store, and nonces are per shard (`shard_nonce_key`),
        // so replay protection holds (two inbox hops saved).
        let local = src.is_reliable() && data.starts_with(b"REGISTER ");
        if let (false, true, false, Ok(msg)) = (handed_off, self.ctx.shards > 1, local, &parsed) {
            if let Some(cid) = msg.call_id() {
                let owner = owner_of(cid.trim().as_bytes(), self.ctx.shards);
                if owner != self.ctx.id {
                    out.handoffs.push((owner, data.to_vec(), src));
                    return;
                }
            }
        }
        // Overload: a new INVITE is judged by its owner shard (which can
        // tell a retransmission of a call it took), before it costs a
        // transaction.
        if let Ok(msg) = &parsed {
            if data.starts_with(b"INVITE ") && self.shed_new_invite(now, msg, src, handed_off, out)
            {
                return;
            }
        }
        ShardStats::add(&self.stats().handled, 1);
        match parsed {
            Ok(mut msg) => {
                let checked = msg.check_and_keep();
                self.handle(now, &msg, checked, src, out);
            }
            Err(e) => {
                if !is_keepalive(data) {
                    ShardStats::add(&self.ctx.stats.parse_errors, 1);
                    self.drop_message(now, src, &e.to_string());
                }
            }
        }
    }

    fn on_stream_closed(
        &mut self,
        now: Now,
        peer: Peer,
        why: crate::runtime::CloseReason,
        out: &mut Output,
    ) {
        tracing::debug!(%peer, ?why, "SIP connection closed");
        match peer.link {
            // One we dialled (a trunk): what waits for an answer there fails.
            Link::Dial(_) => {
                self.calls.transport_failed(now, peer, self.relay.as_mut());
                self.flush_calls(out);
            }
            _ => {
                if let Some(conn) = peer.conn() {
                    let _ = self.control.send(ControlRequest::ConnClosed(conn));
                }
            }
        }
    }

    fn on_backlog(&mut self, now: Now, backlog: Backlog) {
        let was = self.admission.shedding(0);
        self.admission.observe(now.unix_ms, backlog);
        let gauges = &self.ctx.stats.gauges;
        ShardGauges::set(&gauges.recv_delay_ms, self.admission.delay_ms());
        let is = self.admission.shedding(0);
        if was != is {
            self.settings.overload.set(self.ctx.id, is.is_some());
            ShardGauges::set(&gauges.shedding, ShedReason::code(is));
            tracing::debug!(shard = self.ctx.id, delay_ms = self.admission.delay_ms(), shedding = ?is, "overload admission changed");
        }
    }

    fn on_message(&mut self, now: Now, msg: ShardMsg, out: &mut Output) {
        match msg {
            ShardMsg::Registered { token, result } => self.on_registered(now, token, result, out),
            // The atomic swap: calls already routed keep what they decided.
            ShardMsg::Routing(snapshot) => self.routing = snapshot,
            ShardMsg::CallCommand {
                call_id,
                command,
                reply,
            } => {
                let command = match command {
                    CallCommand::Transfer { target } => self
                        .calls
                        .transfer_check(&call_id)
                        .and_then(|()| {
                            self.resolve_target(now, &target)
                                .map_err(|e| e.to_string())
                                .map_err(crate::call::CommandError::BadRequest)
                        })
                        .map(|target| Command::Transfer { target }),
                    CallCommand::Accept { sdp } => Ok(Command::Accept { sdp }),
                    CallCommand::Hangup { reason } => Ok(Command::Hangup { reason }),
                    CallCommand::Mute { track } => Ok(Command::Mute { track, muted: true }),
                    CallCommand::Unmute { track } => Ok(Command::Mute {
                        track,
                        muted: false,
                    }),
                };
                let result = command.and_then(|command| {
                    let input = Input::Command {
                        call_id: &call_id,
                        command,
                    };
                    match self.calls.handle(now, input, self.relay.as_mut()) {
                        Handled::Command(result) => result,
                        _ => Err(crate::call::CommandError::Unavailable(
                            "the command did not run".into(),
                        )),
                    }
                });
                let _ = reply.try_send(result);
                self.flush_calls(out);
            }
            ShardMsg::Acl(acl) => self.acl = acl.0,
            ShardMsg::Ban { ip, until } => self.guard.ban(ip, until),
            ShardMsg::Unban(ip) => self.guard.lift(ip),
            ShardMsg::UserAnswer {
                key,
                answer,
                ttl_secs,
            } => self.on_user_answer(now, key, answer, ttl_secs, out),
            ShardMsg::RouteAnswer { token, decision } => {
                self.on_route_answer(now, token, decision, out);
            }
            ShardMsg::Originate { from, to, reply } => {
                let result = self.originate(now, &from, &to);
                let _ = reply.try_send(result);
                self.flush_calls(out);
            }
            ShardMsg::ListDialogs { reply } => {
                let _ = reply.try_send(self.calls.dialogs_summary(now));
            }
            ShardMsg::ListCalls { reply } => {
                let _ = reply.try_send(self.calls.calls_summary(self.ctx.id));
            }
            ShardMsg::Sync { reply } => {
                let _ = reply.try_send(Vec::new());
            }
            ShardMsg::Datagram { .. }
            | ShardMsg::StreamSend { .. }
            | ShardMsg::TlsConfig(_)
            | ShardMsg::Stop => {}
        }
    }

    fn handle_timeout(&mut self, now: Now, out: &mut Output) {
        self.expire_pending(now, out);
        if now.mono_ms >= self.housekeeping_due() {
            self.last_housekeeping_ms = now.mono_ms;
            self.txs.expire(now.mono_ms);
            self.auth.sweep(now.unix);
        }
        self.calls.handle_timeout(now, self.relay.as_mut());
        self.flush_calls(out);
        if let Some(relay) = self.relay.as_mut().filter(|r| r.sessions() > 0) {
            if now.mono_ms >= self.next_media_ms {
                self.next_media_ms = now.mono_ms + MEDIA_TICK_MS;
                for call in relay.on_tick(now.mono_ms) {
                    self.calls
                        .handle(now, Input::MediaTimeout(call), self.relay.as_mut());
                }
                self.flush_calls(out);
            }
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        let media = self
            .relay
            .as_ref()
            .filter(|r| r.sessions() > 0)
            .map(|_| self.next_media_ms);
        [
            Some(self.housekeeping_due()),
            media,
            self.calls.poll_timeout(),
            self.parked.next_deadline(),
            self.spam.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_stop(&mut self, now: Now, out: &mut Output) {
        let active = self.calls.active_calls();
        if active > 0 {
            tracing::info!(
                shard = self.ctx.id,
                active,
                "stopping: hanging up calls still up"
            );
        }
        let input = Input::Stop { reason: "shutdown" };
        self.calls.handle(now, input, self.relay.as_mut());
        self.flush_calls(out);
    }

    fn on_media(
        &mut self,
        now: Now,
        port: u16,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Option<(u16, SocketAddr, usize)> {
        let relay = self.relay.as_mut()?;
        relay
            .on_datagram(now, port, src, buf, len)
            .map(|f| (f.out_port, f.dest, f.len))
    }

    /// The relay's outputs: socket work goes to the runtime, recording to
    /// the writer, and a call whose media port could not be bound is hung
    /// up (its CDR says so).
    fn poll_socket_op(&mut self, now: Now, out: &mut Output) -> Option<SocketOp> {
        loop {
            match self.relay.as_mut()?.poll_output()? {
                MediaOutput::Socket(op) => return Some(op),
                MediaOutput::Recording(cmd) => {
                    if let Some(tx) = &self.settings.recorder {
                        let _ = tx.send(cmd);
                    }
                }
                MediaOutput::SessionFailed {
                    call_id, reason, ..
                } => {
                    let command = Command::Hangup {
                        reason: Some(reason.to_string()),
                    };
                    let input = Input::Command {
                        call_id: &call_id,
                        command,
                    };
                    let hung = self.calls.handle(now, input, self.relay.as_mut());
                    if hung != Handled::Command(Ok(())) {
                        tracing::debug!(call_id = %call_id, "media failed for a call already ending");
                    }
                    self.flush_calls(out);
                }
            }
        }
    }

    fn on_socket_event(&mut self, event: MediaInput) {
        if let Some(relay) = self.relay.as_mut() {
            relay.handle(event);
        }
    }
}
