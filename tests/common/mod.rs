//! Test harness: starts the real `shardpbx` binary on free loopback ports with
//! a generated config, and talks SIP to it over real UDP.
#![allow(dead_code, unreachable_pub)]

pub mod baresip;
pub mod browser;
pub mod capture;
pub mod media;
pub mod s3;
pub mod stream_phone;
pub mod stun;
pub mod stunnel;
pub mod webhook;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shardpbx");

/// A free UDP port on 127.0.0.1 (free for TCP too, for the HTTP listener),
/// for a server's SIP or HTTP listener. Taken from 62000-65499, above the
/// kernel's ephemeral range (32768-60999 here), so a client socket of a
/// test running alongside cannot take it while a server restarts; a
/// counter keeps the servers of one test process apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 62_000;
    const SPAN: u32 = 3_500;
    let seed = std::process::id().wrapping_mul(97);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (BASE + seed.wrapping_add(n) % SPAN) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in 62000-65499");
}

/// Memory-backend users `name` with password `secret<name>`, as the
/// default 1001 and 1002 have.
pub fn users(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (n.to_string(), format!("secret{n}")))
        .collect()
}

/// What the generated config holds.
pub struct PbxOptions {
    pub shards: usize,
    /// `[proxy] addr`: where SIP and media sockets bind ("127.0.0.1").
    pub addr: String,
    pub users: Vec<(String, String)>,
    /// Extra lines for the `[proxy]` table.
    pub proxy_extra: String,
    /// Extra lines for the `[runtime]` table.
    pub runtime_extra: String,
    /// Extra lines for the `[media]` table.
    pub media_extra: String,
    /// Extra tables at the end of the config (`[recording]` ...).
    pub extra_tables: String,
    /// A program (and its arguments) that starts the binary, e.g. `capsh`
    /// to drop capabilities; empty = the binary itself.
    pub launcher: Vec<String>,
}

impl Default for PbxOptions {
    fn default() -> Self {
        PbxOptions {
            shards: 1,
            addr: "127.0.0.1".into(),
            users: vec![
                ("1001".into(), "secret1001".into()),
                ("1002".into(), "secret1002".into()),
            ],
            proxy_extra: String::new(),
            runtime_extra: String::new(),
            media_extra: String::new(),
            extra_tables: String::new(),
            launcher: Vec::new(),
        }
    }
}

/// A running appliance.
pub struct Pbx {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    log: PathBuf,
    launcher: Vec<String>,
}

impl Pbx {
    pub fn start(opts: PbxOptions) -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        let sip_port = free_port();
        let http_port = free_port();
        let users: Vec<String> = opts
            .users
            .iter()
            .map(|(u, p)| format!("{{ username = \"{u}\", password = \"{p}\" }}"))
            .collect();
        let config = format!(
            r#"http_addr = "127.0.0.1:{http_port}"
data_dir = "{data}"
log_level = "info"

[runtime]
shards = {shards}
{runtime_extra}

[proxy]
addr = "{addr}"
udp_port = {sip_port}
{realms}
{files}
{extra}

[[proxy.user_backends]]
type = "memory"
users = [{users}]

[media]
# Above the kernel's ephemeral range, where the test ports come from.
rtp_port_start = 61000
rtp_port_end = 61998
{media_extra}

{extra_tables}
"#,
            data = dir.path().join("data").display(),
            shards = opts.shards,
            addr = opts.addr,
            extra = opts.proxy_extra,
            runtime_extra = opts.runtime_extra,
            media_extra = opts.media_extra,
            extra_tables = opts.extra_tables,
            realms = if opts.proxy_extra.contains("realms") {
                ""
            } else {
                r#"realms = ["127.0.0.1", "pbx.test"]"#
            },
            users = users.join(", "),
            files = if opts.proxy_extra.contains("routes_files") {
                ""
            } else {
                "routes_files = []\ntrunks_files = []"
            },
        );
        let path = dir.path().join("shardpbx.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("shardpbx.log");
        let mut pbx = Pbx {
            child: None,
            config: path,
            dir,
            sip: format!("127.0.0.1:{sip_port}").parse().unwrap(),
            http: format!("127.0.0.1:{http_port}").parse().unwrap(),
            log,
            launcher: opts.launcher,
        };
        pbx.spawn();
        pbx
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server answers OPTIONS.
    fn wait_ready(&mut self) {
        let uac = Uac::new(self.sip);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("shardpbx exited early ({st}):\n{}", self.log_text());
            }
            uac.send(&options_request(&uac, "ready-probe"));
            if uac.recv(Duration::from_millis(200)).is_some() {
                return;
            }
        }
        panic!(
            "shardpbx did not answer OPTIONS in 20 s:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: a signal to the child we started.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("shardpbx did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the server to exit by itself (e.g. after an AMI shutdown).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "shardpbx did not exit within {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash or a power cut would stop it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again after `crash`.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn restart(&mut self) {
        let st = self.stop();
        assert!(st.success(), "clean stop expected, got {st}");
        self.spawn();
    }

    /// Runs a CLI subcommand against this server's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// `GET path` on the HTTP listener; returns the body.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// A counter of `/metrics` summed over its series (shards, labels).
    pub fn metric_sum(&self, name: &str) -> u64 {
        self.http_get("/metrics")
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A new console API token with these scopes (`read,write,calls`), made by
/// `shardpbx token create`: the last line of its output.
/// The CDR of `call_id` (`shardpbx cdr list --json`), waiting up to 5 s
/// for the writer to store it.
pub fn wait_cdr(pbx: &Pbx, call_id: &str) -> serde_json::Value {
    wait_cdr_within(pbx, call_id, Duration::from_secs(5))
}

/// The Call-ID of the first active call (REST, a `read` token).
pub fn active_call_id(pbx: &Pbx) -> Option<String> {
    let auth = format!("Authorization: Bearer {}\r\n", api_token(pbx, "read"));
    let (code, body) = http_request(pbx, "GET", "/console/calls/active", &auth, "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["items"][0]["callId"].as_str().map(str::to_string)
}

/// The CDR of `call_id`, once the call ended within `limit`.
pub fn wait_cdr_within(pbx: &Pbx, call_id: &str, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let out = pbx.cli(&["cdr", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(c) = list.into_iter().find(|c| c["callId"] == call_id) {
            return c;
        }
        assert!(Instant::now() < deadline, "no CDR for {call_id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (status, body) of one HTTP/1.1 request to the server's HTTP listener;
/// `extra_headers` are whole lines ending in CRLF.
pub fn http_request(
    pbx: &Pbx,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{extra_headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A call command (`POST /console/calls/active/{id}/commands`) with a
/// `calls` token.
pub fn call_command(pbx: &Pbx, call_id: &str, body: &str) -> (u16, String) {
    let auth = format!("Authorization: Bearer {}\r\n", api_token(pbx, "calls"));
    http_request(
        pbx,
        "POST",
        &format!("/console/calls/active/{call_id}/commands"),
        &auth,
        body,
    )
}

pub fn api_token(pbx: &Pbx, scopes: &str) -> String {
    let out = pbx.cli(&["token", "create", "--name", "t", "--scopes", scopes]);
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout.lines().last().unwrap_or_default().trim().to_string()
}

impl Drop for Pbx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw UDP SIP user agent.
pub struct Uac {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    pub server: SocketAddr,
}

impl Uac {
    pub fn new(server: SocketAddr) -> Uac {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = sock.local_addr().unwrap();
        Uac {
            sock,
            local,
            server,
        }
    }

    pub fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.server).unwrap();
    }

    pub fn send_bytes(&self, msg: &[u8]) {
        self.sock.send_to(msg, self.server).unwrap();
    }

    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 65536];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Sends and waits up to 2 s for the final answer (provisionals skipped).
    pub fn request(&self, msg: &str) -> Response {
        self.send(msg);
        loop {
            let text = self
                .recv(Duration::from_secs(2))
                .unwrap_or_else(|| panic!("no response to:\n{msg}"));
            let r = Response::parse(&text);
            if r.code >= 200 {
                return r;
            }
        }
    }
}

/// A parsed SIP response (test side, deliberately simple).
#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl Response {
    pub fn parse(text: &str) -> Response {
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or_default();
        let mut parts = start.splitn(3, ' ');
        assert_eq!(parts.next(), Some("SIP/2.0"), "not a response: {text}");
        let code = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for l in lines {
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        Response {
            code,
            reason,
            headers,
            raw: text.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub fn branch() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "z9hG4bK-t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn options_request(uac: &Uac, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{srv}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        srv = uac.server,
        me = uac.local,
        b = branch()
    )
}

/// A REGISTER for `user` at realm `pbx.test`.
pub struct Register<'a> {
    pub user: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Contact header value; None = no Contact (query).
    pub contact: Option<String>,
    pub expires: Option<u32>,
    pub authorization: Option<String>,
}

impl Register<'_> {
    pub fn build(&self, uac: &Uac) -> String {
        let mut s = format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@pbx.test>;tag=r{cseq}\r\nTo: <sip:{u}@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nUser-Agent: shardpbx-test\r\n",
            me = uac.local,
            b = branch(),
            u = self.user,
            cid = self.call_id,
            cseq = self.cseq
        );
        if let Some(c) = &self.contact {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = self.expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = &self.authorization {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    }
}

/// Value of `name="..."` or `name=token` in a challenge header.
pub fn param(header: &str, name: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let key = format!("{}=", name.to_ascii_lowercase());
    let mut from = 0;
    while let Some(i) = lower[from..].find(&key) {
        let at = from + i;
        let ok_start = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
        if ok_start {
            let rest = &header[at + key.len()..];
            return Some(if let Some(r) = rest.strip_prefix('"') {
                r[..r.find('"').unwrap_or(r.len())].to_string()
            } else {
                rest.split([',', ' ']).next().unwrap_or("").to_string()
            });
        }
        from = at + key.len();
    }
    None
}

pub fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// An MD5 qop=auth Authorization value answering `challenge`.
pub fn digest_auth(
    challenge: &str,
    user: &str,
    pass: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    digest_auth_with(md5_hex, "MD5", challenge, user, pass, method, uri, nc)
}

/// A qop=auth Authorization value with the given hash.
#[allow(clippy::too_many_arguments)]
pub fn digest_auth_with(
    h: fn(&str) -> String,
    algorithm: &str,
    challenge: &str,
    user: &str,
    pass: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let realm = param(challenge, "realm").expect("realm");
    let nonce = param(challenge, "nonce").expect("nonce");
    let opaque = param(challenge, "opaque");
    let cnonce = "0a4f113b";
    let nc = format!("{nc:08x}");
    let ha1 = h(&format!("{user}:{realm}:{pass}"));
    let ha2 = h(&format!("{method}:{uri}"));
    let resp = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={algorithm}, cnonce=\"{cnonce}\", qop=auth, nc={nc}"
    );
    if let Some(o) = opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// Registers `user` with a Contact at 127.0.0.1:`port` (a sipp peer's).
pub fn register_contact(pbx: &Pbx, user: &str, pass: &str, port: u16) {
    let uac = Uac::new(pbx.sip);
    let r = register_with_auth(
        &uac,
        user,
        pass,
        &format!("reg-{user}-{port}"),
        1,
        &format!("<sip:{user}@127.0.0.1:{port}>"),
        Some(600),
    );
    assert_eq!(r.code, 200, "{}", r.raw);
}

/// Registers `user` (challenge + answer); returns the final response.
pub fn register_with_auth(
    uac: &Uac,
    user: &str,
    pass: &str,
    call_id: &str,
    cseq: u32,
    contact: &str,
    expires: Option<u32>,
) -> Response {
    let mut reg = Register {
        user,
        call_id,
        cseq,
        contact: Some(contact.to_string()),
        expires,
        authorization: None,
    };
    let first = uac.request(&reg.build(uac));
    assert_eq!(first.code, 401, "expected a challenge: {}", first.raw);
    let ch = first
        .header("WWW-Authenticate")
        .expect("challenge header")
        .to_string();
    reg.cseq += 1;
    reg.authorization = Some(digest_auth(&ch, user, pass, "REGISTER", "sip:pbx.test", 1));
    uac.request(&reg.build(uac))
}

/// Runs sipp with a time limit; returns its output.
pub fn sipp(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new("sipp")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp must be installed (scripts/install-deps.sh installs sip-tester)");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sipp ran past {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// INVITE from 1001 to `to` with digest auth, by hand; returns the final
/// response (the ACK of a non-2xx is the transaction's job on our side).
pub fn call_by_hand(pbx: &Pbx, to: &str, call_id: &str) -> Response {
    let uac = Uac::new(pbx.sip);
    let invite = |cseq: u32, auth: Option<String>| {
        format!(
            "INVITE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=h{cseq}\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{me}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
            me = uac.local,
            b = branch(),
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default()
        )
    };
    let ch = uac.request(&invite(1, None));
    assert_eq!(ch.code, 407);
    let auth = digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        &format!("sip:{to}@pbx.test"),
        1,
    );
    uac.send(&invite(2, Some(auth)));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(text) = uac.recv(Duration::from_secs(1)) {
            let r = Response::parse(&text);
            // The 407 is retransmitted until ACKed; only the second INVITE counts.
            if r.code >= 200 && r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
                return r;
            }
        }
    }
    panic!("no final response to the INVITE");
}

/// A peer process (a sipp UAS) that is killed if the test ends early, so a
/// failing test leaves nothing running.
pub struct Peer(pub Option<Child>);

impl Peer {
    /// Waits for the peer to finish within `limit`.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.0.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("peer did not finish in {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The path of a scenario in `tests/sipp/`.
pub fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The caller scenario with digest auth (`bench-scenarios/uac_auth.xml`).
pub const UAC_AUTH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench-scenarios/uac_auth.xml");

/// A sipp peer for one call on `port`: sipp's built-in `uas` when
/// `scenario` is "uas", else the file of that name in `tests/sipp/`.
pub fn sipp_peer(port: u16, dir: &Path, scenario_name: &str) -> Peer {
    sipp_peer_with(port, dir, scenario_name, &[])
}

/// [`sipp_peer`] with more sipp arguments.
pub fn sipp_peer_with(port: u16, dir: &Path, scenario_name: &str, extra: &[&str]) -> Peer {
    let mut cmd = Command::new("sipp");
    cmd.args(extra);
    cmd.current_dir(dir);
    if scenario_name.ends_with(".xml") {
        cmd.args(["-sf", &scenario(scenario_name)]);
    } else {
        cmd.args(["-sn", scenario_name]);
    }
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map(|c| Peer(Some(c)))
    .expect("sipp (scripts/install-deps.sh installs sip-tester)")
}

/// Fails the test with the tail of sipp's report when `out` is not a success.
pub fn assert_sipp_ok(out: &Output, who: &str) {
    assert!(
        out.status.success(),
        "{who} sipp failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One call from 1001 (digest auth) to `dialled` with the caller scenario
/// at `scenario_path`.
pub fn sipp_caller(pbx: &Pbx, scenario_path: &str, dialled: &str) -> Output {
    sipp_caller_to(&pbx.sip.to_string(), &[], scenario_path, dialled)
}

/// The same call sent to `target` with sipp options `extra` (e.g.
/// `["-t", "t1"]` for TCP).
pub fn sipp_caller_to(target: &str, extra: &[&str], scenario_path: &str, dialled: &str) -> Output {
    let mut args = vec![target];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-sf",
        scenario_path,
        "-s",
        dialled,
        "-key",
        "caller",
        "1001",
        "-au",
        "1001",
        "-ap",
        "secret1001",
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "25s",
        "-timeout_error",
    ]);
    sipp(&args, Duration::from_secs(35))
}

/// 1001 registers (digest, `bench-scenarios/register_auth.xml`) at `target`
/// with sipp options `extra`, in realm `domain`; its injection file goes
/// to `dir`.
pub fn sipp_register_to(dir: &Path, target: &str, extra: &[&str], domain: &str) -> Output {
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        format!("SEQUENTIAL\n1001;secret1001;{domain};[authentication username=1001 password=secret1001]\n"),
    )
    .unwrap();
    let users = users.to_string_lossy().into_owned();
    let mut args = vec![target];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-sf",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/bench-scenarios/register_auth.xml"
        ),
        "-inf",
        &users,
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "15s",
        "-timeout_error",
    ]);
    sipp(&args, Duration::from_secs(25))
}

/// The first CDR in the store, waiting up to 5 s for one.
pub fn first_cdr(pbx: &Pbx) -> serde_json::Value {
    wait_until(Duration::from_secs(5), || {
        let out = pbx.cli(&["cdr", "list", "--json"]);
        let l: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        l.into_iter().next()
    })
    .expect("a CDR")
}

/// Polls `probe` every 50 ms until it gives a value or `limit` passes.
pub fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Python tool that `scripts/install-deps.sh` provides: `$env_var`, else
/// its venv under `target/<venv>/bin`, else `PATH`.
pub fn python_tool(env_var: &str, venv: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(venv)
        .join("bin");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(venv)
        .chain(on_path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Where `program` is on PATH.
pub fn which(program: &str) -> Result<String, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .map(|p| p.display().to_string())
        .ok_or(())
}
