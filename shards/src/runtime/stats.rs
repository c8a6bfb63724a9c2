//! Per-shard counters. Each shard writes only its own (relaxed atomics on a
//! cache line of their own); the control core reads them for /metrics.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Counters of one shard.
        #[repr(align(128))]
        #[derive(Default, Debug)]
        pub struct ShardStats {
            $(#[doc = $help] pub $name: AtomicU64,)*
            /// Levels (not counters).
            pub gauges: ShardGauges,
            /// SIP messages by method and status code, at the socket.
            pub sip: SipCounters,
        }

        impl ShardStats {
            /// `(name, help, value)` of every counter, for exposition.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    rx_datagrams: "SIP datagrams received on this shard's socket",
    rx_bytes: "SIP bytes received on this shard's socket",
    tx_datagrams: "SIP datagrams sent",
    tx_errors: "SIP datagrams the kernel refused to send",
    handoff_out: "datagrams handed to their owner shard",
    handoff_in: "datagrams received from another shard",
    handoff_dropped: "datagrams dropped because the owner shard's inbox was full",
    handled: "SIP messages handled by this shard as owner",
    parse_errors: "malformed SIP messages (answered 400 or dropped)",
    dropped: "SIP messages dropped without a response",
    bad_requests: "400 responses sent",
    retransmissions: "retransmitted requests absorbed or answered from the transaction cache",
    tx_evicted: "finished transactions dropped before their timer to make room (table full)",
    registers: "REGISTER requests handled",
    registrations_ok: "REGISTER requests answered 200",
    auth_challenges: "digest challenges sent (401/407)",
    auth_failures: "digest failures (403)",
    options: "OPTIONS answered",
    calls_completed: "calls ended with status completed",
    calls_missed: "calls ended with status missed",
    calls_failed: "calls ended with status failed",
    calls_rejected: "calls ended with status rejected",
    calls_spam: "calls ended with status spam",
    rtp_lost: "RTP packets lost on the way to the relay (sequence gaps), summed at call end",
    rtp_rx: "RTP/RTCP datagrams received on this shard's media ports",
    rtp_tx: "RTP/RTCP datagrams relayed",
    rtp_kernel: "RTP datagrams relayed by the kernel (steady streams handed over; also counted in rtp_rx and rtp_tx)",
    rtp_dropped: "RTP/RTCP datagrams not relayed (unknown source, muted, no destination, send failed)",
    sip_spoofed_responses: "SIP responses dropped: they matched a transaction but came from another address than its request went to",
    sip_dialog_mismatch: "in-dialog requests answered 481: Call-ID known but tags not those of the dialog",
    sip_cseq_out_of_order: "in-dialog requests answered 500: CSeq not above the last one of that direction",
    rtp_foreign_source: "RTP/RTCP datagrams dropped: from an IP that is not the one the side signalled (or its SIP source when behind NAT)",
    rtp_unlatched_source: "RTP/RTCP datagrams dropped: from the side's IP but not the address its media is latched to",
    rtp_malformed: "datagrams on media ports dropped: neither RTP nor RTCP",
    sdp_address_refused: "SDP media addresses refused (488) or ignored: unspecified, multicast, broadcast, loopback or ours",
    sdp_srtp_refused: "SDPs whose SRTP could not be done: 488 to an offer, or the call hung up after an answer (keys over a transport that is not TLS, SRTP off or required, no supported suite)",
    rtp_srtp_rejected: "SRTP/SRTCP datagrams dropped: not authentic (wrong key, tampered, forged) or replayed",
    rtp_untranscodable: "RTP packets dropped in transcoded calls (Opus <-> G.711): not of the transcoded codec (DTMF, comfort noise), not decodable, over 60 ms of Opus, or over 100 packets a second from one side",
    banned_dropped: "SIP datagrams dropped unanswered: their source is banned after failed digests",
    flood_dropped: "SIP requests dropped unanswered: their source exceeded [security] flood_requests_per_sec",
    auth_failures_reported: "failed digest responses reported to the ban book (unknown user, wrong password, replay)",
    stateless_challenges: "407 challenges sent to INVITEs without credentials, with no transaction (nothing retransmitted)",
    caller_id_refused: "INVITEs refused 403: the From user is not the authenticated user nor one of its allowed_caller_ids",
    tcp_accepted: "SIP TCP connections accepted",
    tcp_dialled: "SIP TCP/TLS connections this shard opened to trunks",
    tcp_refused: "SIP TCP connections closed at accept: over [proxy] tcp_max_connections or tcp_max_connections_per_ip",
    tcp_closed: "SIP TCP connections closed (by the peer, bad framing, idle, slow sender, write backlog)",
    tcp_timed_out: "SIP TCP connections closed for idleness or a message that took too long to arrive (slow sender)",
    tcp_frame_errors: "SIP TCP connections closed for bad framing (no or bad Content-Length, message over the limits)",
    tls_failures: "SIP TLS connections closed for a failed handshake or a bad record",
    ws_refused: "SIP WebSocket handshakes refused (not an upgrade, no `sip` subprotocol, version not 13, Origin not in [proxy] ws_origins)",
    ws_protocol_errors: "SIP WebSocket connections closed for a frame that breaks RFC 6455 or a message over the limits",
    rx_stream_messages: "SIP messages received on stream connections",
    tx_stream_messages: "SIP messages written to stream connections",
    tx_stream_bytes: "SIP bytes written to stream connections",
    stream_sends_lost: "SIP messages for a stream connection that had closed (lost, as a datagram to a peer that left)",
    overload_shed_recv_backlog: "new INVITEs answered 503 (stateless, no call, no CDR): datagrams waited longer than [proxy] overload_max_delay_ms in the shard's socket",
    overload_shed_store_backlog: "new INVITEs answered 503 (stateless, no call, no CDR): more records than [proxy] overload_max_store_queue waited for the store writer",
    overload_shed_peer_backlog: "new INVITEs answered 503 (stateless, no call, no CDR): more of the shard's INVITE transactions than [proxy] overload_max_stalled_invites were resent without the peer answering (callees not answering our INVITE, callers not ACKing our final)",
}

/// Methods counted one by one; anything else counts as `OTHER`.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "UPDATE",
    "INFO",
    "REFER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "OTHER",
];

/// SIP traffic of one shard's socket: requests by method and responses by
/// status code, received and sent. Counted from the first bytes of each
/// datagram (no parse), so malformed ones count too (as `OTHER`).
#[derive(Debug)]
pub struct SipCounters {
    pub requests_in: [AtomicU64; METHODS.len()],
    pub requests_out: [AtomicU64; METHODS.len()],
    /// Index = status code - 100 (100..=699).
    pub responses_in: Box<[AtomicU64]>,
    pub responses_out: Box<[AtomicU64]>,
}

impl Default for SipCounters {
    fn default() -> Self {
        SipCounters {
            requests_in: Default::default(),
            requests_out: Default::default(),
            responses_in: (0..600).map(|_| AtomicU64::new(0)).collect(),
            responses_out: (0..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl SipCounters {
    /// Counts one datagram received (`inbound`) or sent.
    pub fn count(&self, inbound: bool, datagram: &[u8]) {
        if let Some(rest) = datagram.strip_prefix(b"SIP/2.0 ") {
            let code = rest
                .get(..3)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse::<usize>().ok())
                .filter(|c| (100..700).contains(c));
            if let Some(code) = code {
                let table = if inbound {
                    &self.responses_in
                } else {
                    &self.responses_out
                };
                table[code - 100].fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let method = datagram.split(|b| *b == b' ').next().unwrap_or_default();
        let i = METHODS[..METHODS.len() - 1]
            .iter()
            .position(|m| m.as_bytes() == method)
            .unwrap_or(METHODS.len() - 1);
        let table = if inbound {
            &self.requests_in
        } else {
            &self.requests_out
        };
        table[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Levels one shard reports (set, not added), kept apart from the counters.
#[derive(Default, Debug)]
pub struct ShardGauges {
    /// Calls this shard owns now.
    pub active_calls: AtomicU64,
    /// Media sessions (proxied calls) of this shard now.
    pub rtp_sessions: AtomicU64,
    /// SIP TCP connections this shard holds now.
    pub tcp_connections: AtomicU64,
    /// The shard thread's Linux thread id (0 until it runs), for its CPU time.
    pub tid: AtomicU64,
    /// Why new INVITEs are refused: 0 admitting, 1 receive backlog, 2 store
    /// writer backlog (`endpoint::admission::ShedReason::code`).
    pub shedding: AtomicU64,
    /// How long the last full receive batch's last datagram had waited, ms
    /// (0 when the socket was drained).
    pub recv_delay_ms: AtomicU64,
}

impl ShardGauges {
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    pub fn get(gauge: &AtomicU64) -> u64 {
        gauge.load(Ordering::Relaxed)
    }
}

impl ShardStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
