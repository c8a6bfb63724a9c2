//! A phone on one SIP stream connection (TCP, or TLS through rustls, or a
//! WebSocket over either through tungstenite) for the transport tests: it
//! registers with digest, answers calls, and tells when the server closed
//! its connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{branch, digest_auth, Response};

/// A connection a phone talks over: plain TCP, or TLS over TCP, or a
/// WebSocket over one of those (message-oriented: it is not read or written
/// as bytes).
pub enum Wire {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Ws(Box<tungstenite::WebSocket<Wire>>),
}

impl Wire {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Tcp(s) => s,
            Wire::Tls(s) => &s.sock,
            Wire::Ws(w) => w.get_ref().tcp(),
        }
    }

    /// A TLS connection to `server`, verified as `name`, handshake done.
    pub fn tls(server: SocketAddr, name: &str, config: Arc<rustls::ClientConfig>) -> Wire {
        let stream = TcpStream::connect(server).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        Wire::Tls(Box::new(tls))
    }
}

fn message_oriented() -> std::io::Error {
    std::io::Error::other("a WebSocket carries messages, not bytes")
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
            Wire::Ws(_) => Err(message_oriented()),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
            Wire::Ws(_) => Err(message_oriented()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Tcp(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
            Wire::Ws(_) => Err(message_oriented()),
        }
    }
}

/// A client config that trusts exactly the PEM certificate at `ca`.
pub fn trusting(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("a certificate")).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A phone on one stream connection: messages framed by Content-Length.
pub struct StreamPhone {
    pub wire: Wire,
    buf: Vec<u8>,
    pub local: SocketAddr,
    /// `TCP` or `TLS`, for its Via.
    pub transport: &'static str,
    /// The last message sent (what an eavesdropper could replay).
    pub last_sent: String,
}

impl StreamPhone {
    pub fn connect(server: SocketAddr) -> StreamPhone {
        let stream = TcpStream::connect(server).expect("connect");
        let local = stream.local_addr().unwrap();
        StreamPhone {
            wire: Wire::Tcp(stream),
            buf: Vec::new(),
            local,
            transport: "TCP",
            last_sent: String::new(),
        }
    }

    /// A TLS connection verifying the server as `name` with `config`; the
    /// handshake is done before it returns.
    pub fn connect_tls(
        server: SocketAddr,
        name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> StreamPhone {
        let wire = Wire::tls(server, name, config);
        StreamPhone {
            local: wire.tcp().local_addr().unwrap(),
            wire,
            buf: Vec::new(),
            transport: "TLS",
            last_sent: String::new(),
        }
    }

    /// A SIP WebSocket (RFC 7118) on `wire`, asking for `url` with
    /// subprotocol `sip` and `origin` (as a browser's page would); the
    /// server's HTTP refusal when it does not upgrade.
    pub fn connect_ws(wire: Wire, url: &str, origin: Option<&str>) -> Result<StreamPhone, u16> {
        use tungstenite::client::IntoClientRequest;
        let secure = matches!(wire, Wire::Tls(_));
        let local = wire.tcp().local_addr().unwrap();
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        match tungstenite::client::client(req, wire) {
            Ok((ws, resp)) => {
                let proto = resp.headers().get("Sec-WebSocket-Protocol");
                assert_eq!(
                    proto.map(tungstenite::http::HeaderValue::as_bytes),
                    Some(&b"sip"[..])
                );
                Ok(StreamPhone {
                    wire: Wire::Ws(Box::new(ws)),
                    buf: Vec::new(),
                    local,
                    transport: if secure { "WSS" } else { "WS" },
                    last_sent: String::new(),
                })
            }
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                Err(r.status().as_u16())
            }
            Err(e) => panic!("websocket handshake: {e}"),
        }
    }

    /// The server's certificate (DER), on a TLS connection.
    pub fn server_cert(&self) -> Option<Vec<u8>> {
        match &self.wire {
            Wire::Tls(s) => s.conn.peer_certificates()?.first().map(|c| c.to_vec()),
            Wire::Tcp(_) | Wire::Ws(_) => None,
        }
    }

    pub fn send(&mut self, msg: &str) {
        if let Wire::Ws(ws) = &mut self.wire {
            ws.send(tungstenite::Message::text(msg)).unwrap();
            self.last_sent = msg.to_string();
            return;
        }
        self.wire.write_all(msg.as_bytes()).unwrap();
        self.wire.flush().unwrap();
        self.last_sent = msg.to_string();
    }

    /// The next whole message, or None when the time runs out or the
    /// server closed the connection.
    pub fn recv(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(msg) = self.take_message() {
                return Some(msg);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.wire
                .tcp()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Wire::Ws(ws) = &mut self.wire {
                match ws.read() {
                    Ok(tungstenite::Message::Text(t)) => return Some(t.to_string()),
                    Ok(tungstenite::Message::Binary(b)) => {
                        return Some(String::from_utf8_lossy(&b).into_owned())
                    }
                    Ok(tungstenite::Message::Close(_)) => return None,
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(e)) if timed_out(&e) => continue,
                    Err(_) => return None,
                }
            }
            let mut chunk = [0u8; 8192];
            match self.wire.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    fn take_message(&mut self) -> Option<String> {
        if matches!(self.wire, Wire::Ws(_)) {
            return None;
        }
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let head_end = text.find("\r\n\r\n")? + 4;
        let len = headers(&text[..head_end], "Content-Length")
            .first()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if self.buf.len() < head_end + len {
            return None;
        }
        let msg: Vec<u8> = self.buf.drain(..head_end + len).collect();
        Some(String::from_utf8_lossy(&msg).into_owned())
    }

    /// Sends a request; returns the first final response.
    pub fn request(&mut self, msg: &str) -> Response {
        self.send(msg);
        loop {
            let text = self.recv(Duration::from_secs(5)).expect("a response");
            let r = Response::parse(&text);
            if r.code >= 200 {
                return r;
            }
        }
    }

    /// OPTIONS over this connection; the final response.
    pub fn options(&mut self, call_id: &str) -> Response {
        let msg = format!(
            "OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/{t} {me};branch={b}\r\nMax-Forwards: 70\r\n\
             From: <sip:1001@pbx.test>;tag=o1\r\nTo: <sip:pbx.test>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            t = self.transport,
            me = self.local,
            b = branch()
        );
        self.request(&msg)
    }

    /// On a thread: answers the next call (180, then 200 with
    /// [`ANSWER_SDP`]) and its BYE; gives the phone back with every message
    /// it received.
    pub fn answer_a_call(mut self) -> std::thread::JoinHandle<(StreamPhone, Vec<String>)> {
        std::thread::spawn(move || {
            let me = self.local;
            let mut got = Vec::new();
            while let Some(msg) = self.recv(Duration::from_secs(20)) {
                if msg.starts_with("INVITE ") {
                    self.send(&reply(&msg, 180, "Ringing", None, me));
                    self.send(&reply(&msg, 200, "OK", Some(ANSWER_SDP), me));
                }
                let bye = msg.starts_with("BYE ");
                if bye {
                    self.send(&reply(&msg, 200, "OK", None, me));
                }
                got.push(msg);
                if bye {
                    break;
                }
            }
            (self, got)
        })
    }

    /// True when the server closed the connection within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.wire
                .tcp()
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            if let Wire::Ws(ws) = &mut self.wire {
                match ws.read() {
                    Ok(tungstenite::Message::Close(_)) => return true,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if timed_out(&e) => {}
                    Err(_) => return true,
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            match self.wire.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }

    pub fn register(&mut self, user: &str, contact: &str) -> Response {
        let transport = self.transport;
        let build = |cseq: u32, auth: Option<&str>, local: SocketAddr| {
            let mut s = format!(
                "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={b};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@pbx.test>;tag=t{cseq}\r\nTo: <sip:{user}@pbx.test>\r\n\
                 Call-ID: tcp-reg-{user}-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n\
                 Expires: 600\r\nUser-Agent: tcp-phone\r\n",
                b = branch(),
                port = local.port(),
                t = transport
            );
            if let Some(a) = auth {
                s.push_str(&format!("Authorization: {a}\r\n"));
            }
            s.push_str("Content-Length: 0\r\n\r\n");
            s
        };
        let first = self.request(&build(1, None, self.local));
        assert_eq!(first.code, 401, "{}", first.raw);
        let ch = first.header("WWW-Authenticate").unwrap().to_string();
        let auth = digest_auth(
            &ch,
            user,
            &format!("secret{user}"),
            "REGISTER",
            "sip:pbx.test",
            1,
        );
        self.request(&build(2, Some(&auth), self.local))
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A response to `req` (its Via, From, To, Call-ID and CSeq), with a To
/// tag and an optional SDP body.
pub fn reply(req: &str, code: u16, reason: &str, sdp: Option<&str>, me: SocketAddr) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in headers(req, "Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        let v = headers(req, name).first().cloned().unwrap_or_default();
        s.push_str(&format!("{name}: {v}\r\n"));
    }
    let to = headers(req, "To").first().cloned().unwrap_or_default();
    if to.contains("tag=") {
        s.push_str(&format!("To: {to}\r\n"));
    } else {
        s.push_str(&format!("To: {to};tag=phone1\r\n"));
    }
    s.push_str(&format!("Contact: <sip:1002@{me};transport=tcp>\r\n"));
    match sdp {
        Some(body) => s.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

/// The values of header `name` in a message's head (no folding here).
pub fn headers(msg: &str, name: &str) -> Vec<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}

pub const ANSWER_SDP: &str = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
