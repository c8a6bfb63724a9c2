//! A tiny scripted SIP user agent (one call at a time) for the harness: as a
//! caller it sends an INVITE, ACKs every final (again for each
//! retransmission), CANCELs and sends BYE or any in-dialog request, tweaked
//! on purpose when a test wants a wrong tag or CSeq; as a callee it answers
//! an INVITE as its [`Answering`] says (180, then 200 with SDP or a final
//! error), answers CANCEL with 200 + 487, and 200 to BYE and anything else
//! in a dialog. It records every datagram it receives. It is not a
//! transaction layer: it never retransmits on its own.
//!
//! Media: its SDP offers or answers PCMU on its own RTP address
//! ([`Ua::rtp_addr`]); it learns where to send from the peer's SDP (the
//! INVITE it answers, the 2xx to its INVITE) and, once told to, sends a
//! G.711 packet every 20 ms of virtual time there ([`RtpStream`]),
//! recording what it sends and receives.

use std::net::SocketAddr;

use super::media::{RtpPacket, RtpStream};
use crate::media::sdp;
use crate::sip::{Contact, HeaderName, Message, Method, Writer};

/// How a UA answers a new INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answering {
    /// 180 at once, 200 with SDP `ring_ms` later.
    Accept { ring_ms: u64 },
    /// 180 at once, then nothing (until CANCEL, or [`Ua::answer`]).
    Ring,
    /// This final status at once (486, 603...).
    Reject(u16),
    /// Nothing at all (a host that is down).
    Silent,
}

/// A datagram a UA received, as text.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) at_ms: u64,
    pub(crate) from: SocketAddr,
    pub(crate) text: String,
}

impl Seen {
    fn msg(&self) -> Option<Message<'_>> {
        Message::parse(self.text.as_bytes()).ok()
    }

    /// The status code of a response.
    pub(crate) fn status(&self) -> Option<u16> {
        self.msg()?.status_code()
    }

    /// The method of a request.
    pub(crate) fn method(&self) -> Option<String> {
        Some(self.msg()?.method()?.as_str().to_string())
    }

    /// The method its CSeq names.
    pub(crate) fn cseq_method(&self) -> Option<String> {
        Some(self.msg()?.cseq().ok()?.method.as_str().to_string())
    }
}

/// What a test changes in an in-dialog request it sends on purpose wrong.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tweak {
    /// The To tag instead of the dialog's remote tag.
    pub(crate) to_tag: Option<String>,
    /// This CSeq number instead of the next one (the dialog's count stays).
    pub(crate) cseq: Option<u32>,
}

/// The dialog of the call, as this UA sees it.
#[derive(Debug)]
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// From/To values without tags.
    local_uri: String,
    remote_uri: String,
    /// Request-URI of in-dialog requests (the peer's Contact).
    remote_target: String,
    cseq: u32,
}

/// The INVITE this UA sent and its ACK.
#[derive(Debug)]
struct Outgoing {
    ruri: String,
    branch: String,
    call_id: String,
    /// From (with our tag) and To (without a tag) as sent.
    from: String,
    to: String,
    cseq: u32,
    /// The ACK of the final response, sent again for each retransmission.
    ack: Option<Vec<u8>>,
}

/// The INVITE this UA received and the last response it sent to it.
#[derive(Debug)]
struct Incoming {
    request: Vec<u8>,
    src: SocketAddr,
    branch: String,
    tag: String,
    last: Option<Vec<u8>>,
    final_sent: bool,
}

/// One scripted user agent.
#[derive(Debug)]
pub(crate) struct Ua {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    user: String,
    /// Where requests this UA starts go (the proxy under test).
    proxy: SocketAddr,
    answering: Answering,
    seen: Vec<Seen>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// When the ringing INVITE gets its 200 (mono ms).
    answer_at: Option<u64>,
    dialog: Option<Dialog>,
    outgoing: Option<Outgoing>,
    incoming: Option<Incoming>,
    counter: u32,
    /// Where its RTP goes: the address and port of the peer's last SDP.
    media_peer: Option<SocketAddr>,
    media_outbox: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// The SDP bodies received, in order.
    sdps: Vec<String>,
    rtp: RtpStream,
}

impl Ua {
    pub(crate) fn new(
        name: &'static str,
        user: &str,
        addr: SocketAddr,
        proxy: SocketAddr,
        answering: Answering,
    ) -> Ua {
        Ua {
            name,
            addr,
            user: user.to_string(),
            proxy,
            answering,
            seen: Vec::new(),
            outbox: Vec::new(),
            answer_at: None,
            dialog: None,
            outgoing: None,
            incoming: None,
            counter: 0,
            media_peer: None,
            media_outbox: Vec::new(),
            sdps: Vec::new(),
            rtp: RtpStream::new(ssrc_of(addr)),
        }
    }

    /// The address its SDP offers or answers for RTP.
    pub(crate) fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), 40_000 + self.addr.port() % 1000 * 2)
    }

    /// Where its RTP goes (from the peer's SDP), if it learnt one.
    pub(crate) fn media_peer(&self) -> Option<SocketAddr> {
        self.media_peer
    }

    /// The SDP bodies it received, in order.
    pub(crate) fn sdps(&self) -> &[String] {
        &self.sdps
    }

    /// Starts sending RTP (one packet now, then every 20 ms).
    pub(crate) fn start_rtp(&mut self, now_ms: u64) {
        self.rtp.start(now_ms);
    }

    pub(crate) fn stop_rtp(&mut self) {
        self.rtp.stop();
    }

    /// The SSRC of its stream.
    pub(crate) fn ssrc(&self) -> u32 {
        self.rtp.ssrc
    }

    /// The RTP packets it sent, in order.
    pub(crate) fn rtp_sent(&self) -> &[RtpPacket] {
        &self.rtp.sent
    }

    /// The RTP packets it received, in order.
    pub(crate) fn rtp_received(&self) -> &[RtpPacket] {
        &self.rtp.received
    }

    /// Datagrams on its RTP port that were not RTP.
    pub(crate) fn rtp_garbage(&self) -> usize {
        self.rtp.garbage
    }

    /// A datagram on its RTP port.
    pub(crate) fn on_media(&mut self, now_ms: u64, from: SocketAddr, data: &[u8]) {
        self.rtp.on_datagram(now_ms, from, data);
    }

    /// Learns where its media goes from `msg`'s SDP, if it has one.
    fn learn_sdp(&mut self, msg: &Message<'_>) {
        if msg.body().is_empty() {
            return;
        }
        self.sdps
            .push(String::from_utf8_lossy(msg.body()).into_owned());
        let audio = sdp::parse(msg.body()).ok().and_then(|s| s.audio);
        if let Some(a) = audio {
            self.media_peer = a
                .conn
                .filter(|ip| !ip.is_unspecified() && a.port != 0)
                .map(|ip| SocketAddr::new(ip, a.port));
        }
    }

    /// Everything received, in order.
    pub(crate) fn seen(&self) -> &[Seen] {
        &self.seen
    }

    /// Status codes of the responses received to `method` requests, in order
    /// (retransmissions included).
    pub(crate) fn responses(&self, method: &str) -> Vec<u16> {
        self.seen
            .iter()
            .filter(|s| s.cseq_method().as_deref() == Some(method))
            .filter_map(Seen::status)
            .collect()
    }

    /// The `method` requests received, in order (retransmissions included).
    pub(crate) fn requests(&self, method: &str) -> Vec<&Seen> {
        self.seen
            .iter()
            .filter(|s| s.method().as_deref() == Some(method))
            .collect()
    }

    /// Whether a dialog is up (confirmed and not ended by BYE).
    pub(crate) fn in_dialog(&self) -> bool {
        self.dialog.is_some()
    }

    /// The Call-ID of this UA's call (either side).
    pub(crate) fn call_id(&self) -> Option<&str> {
        self.outgoing
            .as_ref()
            .map(|o| o.call_id.as_str())
            .or(self.dialog.as_ref().map(|d| d.call_id.as_str()))
    }

    /// What to send since the last call: `(destination, datagram)`.
    pub(crate) fn take_outbox(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// When this UA next wants [`Ua::handle_timeout`] (mono ms).
    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        [self.answer_at, self.rtp.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now_ms: u64) {
        if self.answer_at.is_some_and(|at| at <= now_ms) {
            self.answer();
        }
        let (from, dest) = (self.rtp_addr(), self.media_peer);
        for packet in self.rtp.due(now_ms, dest) {
            if let Some(dest) = dest {
                self.media_outbox.push((from, dest, packet));
            }
        }
    }

    /// RTP to send since the last call: `(source, destination, datagram)`.
    pub(crate) fn take_media_outbox(&mut self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.media_outbox)
    }

    fn next(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    fn branch(&mut self) -> String {
        // Not `z9hG4bK-`: that spelling is the proxy's own (loop detection).
        let n = self.next();
        format!("z9hG4bK{}{n}", self.name)
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    fn sdp(&self) -> String {
        let ip = self.addr.ip();
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            self.rtp_addr().port()
        )
    }

    /// Calls `to_user` at the proxy: an INVITE with SDP.
    pub(crate) fn invite(&mut self, to_user: &str) {
        let n = self.next();
        let branch = self.branch();
        let host = self.proxy.ip();
        let out = Outgoing {
            ruri: format!("sip:{to_user}@{host}"),
            branch,
            call_id: format!("call-{n}@{}.test", self.name),
            from: format!(
                "<sip:{}@{}>;tag={}-{n}",
                self.user,
                self.addr.ip(),
                self.name
            ),
            to: format!("<sip:{to_user}@{host}>"),
            cseq: 1,
            ack: None,
        };
        let via = self.via(&out.branch);
        let sdp = self.sdp();
        let mut buf = Vec::new();
        let mut w = Writer::request(&mut buf, "INVITE", &out.ruri);
        w.header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &out.from)
            .header("To", &out.to)
            .header("Call-ID", &out.call_id)
            .header("CSeq", &format!("{} INVITE", out.cseq))
            .header("Contact", &self.contact())
            .header("Content-Type", "application/sdp");
        w.finish(sdp.as_bytes());
        self.outbox.push((self.proxy, buf));
        self.outgoing = Some(out);
    }

    /// CANCELs the INVITE this UA sent.
    pub(crate) fn cancel(&mut self) {
        let Some(o) = &self.outgoing else {
            panic!("{}: CANCEL without an INVITE", self.name);
        };
        let mut buf = Vec::new();
        let mut w = Writer::request(&mut buf, "CANCEL", &o.ruri);
        w.header("Via", &self.via(&o.branch))
            .header("Max-Forwards", "70")
            .header("From", &o.from)
            .header("To", &o.to)
            .header("Call-ID", &o.call_id)
            .header("CSeq", &format!("{} CANCEL", o.cseq));
        w.finish(b"");
        self.outbox.push((self.proxy, buf));
    }

    /// Hangs up: BYE in the dialog.
    pub(crate) fn bye(&mut self) {
        self.request("BYE", Tweak::default());
    }

    /// Sends `method` in the dialog, with `tweak` applied.
    pub(crate) fn request(&mut self, method: &str, tweak: Tweak) {
        let branch = self.branch();
        let via = self.via(&branch);
        let contact = self.contact();
        let Some(d) = &mut self.dialog else {
            panic!("{}: {method} without a dialog", self.name);
        };
        let cseq = tweak.cseq.unwrap_or_else(|| {
            d.cseq += 1;
            d.cseq
        });
        let to_tag = tweak.to_tag.as_deref().unwrap_or(&d.remote_tag);
        let mut buf = Vec::new();
        let mut w = Writer::request(&mut buf, method, &d.remote_target);
        w.header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &format!("{};tag={}", d.local_uri, d.local_tag))
            .header("To", &format!("{};tag={to_tag}", d.remote_uri))
            .header("Call-ID", &d.call_id)
            .header("CSeq", &format!("{cseq} {method}"))
            .header("Contact", &contact);
        w.finish(b"");
        self.outbox.push((self.proxy, buf));
    }

    /// Answers the ringing INVITE: 200 with SDP.
    pub(crate) fn answer(&mut self) {
        self.answer_at = None;
        let Some(inc) = &self.incoming else {
            panic!("{}: nothing to answer", self.name);
        };
        if inc.final_sent {
            return;
        }
        let (src, request, tag) = (inc.src, inc.request.clone(), inc.tag.clone());
        if let Ok(req) = Message::parse(&request) {
            self.respond(&req, src, 200, Some(&tag), true);
        }
    }

    fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch={branch};rport", self.addr)
    }

    /// Sends a response to `req`; the last one to the INVITE is kept for
    /// its retransmissions.
    fn respond(
        &mut self,
        req: &Message<'_>,
        to: SocketAddr,
        code: u16,
        tag: Option<&str>,
        sdp: bool,
    ) {
        let mut buf = Vec::new();
        let mut w = Writer::response_to(&mut buf, req, code, None, tag, None);
        w.header("Contact", &self.contact());
        if sdp {
            w.header("Content-Type", "application/sdp");
            w.finish(self.sdp().as_bytes());
        } else {
            w.finish(b"");
        }
        let is_invite = matches!(req.method(), Some(Method::Invite));
        if let Some(inc) = self.incoming.as_mut().filter(|_| is_invite) {
            inc.last = Some(buf.clone());
            inc.final_sent |= code >= 200;
        }
        self.outbox.push((to, buf));
    }

    /// A datagram for this UA.
    pub(crate) fn on_datagram(&mut self, now_ms: u64, from: SocketAddr, data: &[u8]) {
        self.seen.push(Seen {
            at_ms: now_ms,
            from,
            text: String::from_utf8_lossy(data).into_owned(),
        });
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        if msg.is_request() {
            self.on_request(now_ms, from, &msg);
        } else {
            self.on_response(&msg);
        }
    }

    fn on_request(&mut self, now_ms: u64, from: SocketAddr, msg: &Message<'_>) {
        let branch = msg
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or_default()
            .to_string();
        match msg.method() {
            Some(Method::Invite) if msg.to_tag().is_none() => {
                let retransmission = self.incoming.as_ref().filter(|i| i.branch == branch);
                if retransmission.is_some() && self.answering == Answering::Silent {
                    return;
                }
                if let Some(last) = retransmission.and_then(|i| i.last.clone()) {
                    self.outbox.push((from, last));
                    return;
                }
                self.on_new_invite(now_ms, from, msg, branch);
            }
            Some(Method::Invite) => self.respond(msg, from, 200, None, true),
            Some(Method::Ack) => {}
            Some(Method::Cancel) => {
                let tag = self.incoming.as_ref().map(|i| i.tag.clone());
                self.respond(msg, from, 200, tag.as_deref(), false);
                let pending = self
                    .incoming
                    .as_ref()
                    .filter(|i| i.branch == branch && !i.final_sent)
                    .map(|i| (i.request.clone(), i.src, i.tag.clone()));
                if let Some((request, src, tag)) = pending {
                    self.answer_at = None;
                    self.dialog = None;
                    if let Ok(invite) = Message::parse(&request) {
                        self.respond(&invite, src, 487, Some(&tag), false);
                    }
                }
            }
            Some(Method::Bye) => {
                self.respond(msg, from, 200, None, false);
                self.dialog = None;
            }
            _ => self.respond(msg, from, 200, None, false),
        }
    }

    fn on_new_invite(&mut self, now_ms: u64, from: SocketAddr, msg: &Message<'_>, branch: String) {
        self.learn_sdp(msg);
        let n = self.next();
        let tag = format!("{}-{n}", self.name);
        self.dialog = Some(Dialog {
            call_id: msg.call_id().unwrap_or_default().to_string(),
            local_tag: tag.clone(),
            remote_tag: msg.from_tag().unwrap_or_default().to_string(),
            local_uri: strip_tag(msg.header_raw(HeaderName::To).unwrap_or_default()),
            remote_uri: strip_tag(msg.header_raw(HeaderName::From).unwrap_or_default()),
            remote_target: contact_uri(msg).unwrap_or_else(|| format!("sip:{from}")),
            cseq: 100,
        });
        self.incoming = Some(Incoming {
            request: msg.as_bytes().to_vec(),
            src: from,
            branch,
            tag: tag.clone(),
            last: None,
            final_sent: false,
        });
        match self.answering {
            Answering::Accept { ring_ms } => {
                self.respond(msg, from, 180, Some(&tag), false);
                self.answer_at = Some(now_ms + ring_ms);
                if ring_ms == 0 {
                    self.answer();
                }
            }
            Answering::Ring => self.respond(msg, from, 180, Some(&tag), false),
            Answering::Silent => self.dialog = None,
            Answering::Reject(code) => {
                self.dialog = None;
                self.respond(msg, from, code, Some(&tag), false);
            }
        }
    }

    fn on_response(&mut self, msg: &Message<'_>) {
        let (Some(code), Ok(cseq)) = (msg.status_code(), msg.cseq()) else {
            return;
        };
        if !matches!(cseq.method, Method::Invite) || code < 200 {
            return;
        }
        let Some(o) = &self.outgoing else {
            return;
        };
        if let Some(ack) = &o.ack {
            // A retransmitted final: the same ACK again.
            self.outbox.push((self.proxy, ack.clone()));
            return;
        }
        let to = msg
            .header_raw(HeaderName::To)
            .unwrap_or_default()
            .to_string();
        if code < 300 {
            self.learn_sdp(msg);
        }
        let Some(o) = &self.outgoing else {
            return;
        };
        let (ruri, branch) = if code < 300 {
            let target = contact_uri(msg).unwrap_or_else(|| o.ruri.clone());
            self.dialog = Some(Dialog {
                call_id: o.call_id.clone(),
                local_tag: crate::sip::NameAddr::parse(&o.from)
                    .ok()
                    .and_then(|f| f.tag().map(str::to_string))
                    .unwrap_or_default(),
                remote_tag: msg.to_tag().unwrap_or_default().to_string(),
                local_uri: strip_tag(&o.from),
                remote_uri: o.to.clone(),
                remote_target: target.clone(),
                cseq: o.cseq,
            });
            (target, self.branch())
        } else {
            // RFC 3261 17.1.1.3: the ACK of a non-2xx shares the INVITE's branch.
            (o.ruri.clone(), o.branch.clone())
        };
        let Some(o) = &self.outgoing else {
            return;
        };
        let mut buf = Vec::new();
        let mut w = Writer::request(&mut buf, "ACK", &ruri);
        w.header("Via", &self.via(&branch))
            .header("Max-Forwards", "70")
            .header("From", &o.from)
            .header("To", &to)
            .header("Call-ID", &o.call_id)
            .header("CSeq", &format!("{} ACK", o.cseq));
        w.finish(b"");
        self.outbox.push((self.proxy, buf.clone()));
        if let Some(o) = &mut self.outgoing {
            o.ack = Some(buf);
        }
    }
}

/// The URI of a message's first Contact.
fn contact_uri(msg: &Message<'_>) -> Option<String> {
    match msg.contacts().next()?.ok()? {
        Contact::Addr(a) => Some(a.uri.as_str().to_string()),
        Contact::Star => None,
    }
}

/// A From/To value without its `tag` parameter.
fn strip_tag(value: &str) -> String {
    let cut = value
        .rfind('>')
        .map(|i| i + 1)
        .or_else(|| value.find(';'))
        .unwrap_or(value.len());
    let (head, params) = value.split_at(cut);
    let kept: String = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tag="))
        .map(|p| format!(";{p}"))
        .collect();
    format!("{}{kept}", head.trim())
}

/// A UA's SSRC, from its address (distinct per UA, same on every run).
fn ssrc_of(addr: SocketAddr) -> u32 {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => v6.to_bits() as u32,
    };
    ip.rotate_left(11) ^ u32::from(addr.port()) ^ 0x5eed_0000
}
