//! A real HTTP/1.1 server on loopback that plays a webhook target: it keeps
//! every request it gets and answers each with the status it is set to.
//! It can start listening late (a target that is down, then up).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A query parameter of the path (not percent-decoded).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.path
            .split_once('?')?
            .1
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parts of a `multipart/form-data` body: (name, filename, data).
    pub fn multipart(&self) -> Vec<(String, String, Vec<u8>)> {
        let ct = self.header("content-type").expect("content-type");
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .expect("multipart boundary")
            .trim_matches('"');
        let delim = format!("--{boundary}");
        let mut parts = Vec::new();
        let body = &self.body;
        let mut starts = Vec::new();
        let mut i = 0;
        while let Some(at) = find(&body[i..], delim.as_bytes()) {
            starts.push(i + at);
            i += at + delim.len();
        }
        for w in starts.windows(2) {
            let part = &body[w[0] + delim.len()..w[1]];
            let part = part.strip_prefix(b"\r\n").expect("CRLF after boundary");
            let part = part.strip_suffix(b"\r\n").expect("CRLF before boundary");
            let split = find(part, b"\r\n\r\n").expect("part headers");
            let head = String::from_utf8_lossy(&part[..split]).to_string();
            let param = |key: &str| {
                head.split(&format!("{key}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            parts.push((
                param(" name"),
                param("filename"),
                part[split + 4..].to_vec(),
            ));
        }
        parts
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decides the (status, body) of each request; without one, every request
/// gets `status` and a short body.
pub type Responder = Arc<dyn Fn(&Request) -> (u16, String) + Send + Sync>;

/// The server.
pub struct WebhookServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// The status every request gets.
    pub status: Arc<AtomicU16>,
    responder: Option<Responder>,
    stop: Arc<AtomicBool>,
}

impl WebhookServer {
    /// Listening now on a port the kernel picks (bound at once, so no
    /// other socket can take it between choosing and listening).
    pub fn start() -> WebhookServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("webhook port");
        let s = WebhookServer::on(listener.local_addr().expect("bound").port());
        s.accept_on(listener);
        s
    }

    /// Listening now; `respond` answers each request.
    pub fn start_with(
        respond: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static,
    ) -> WebhookServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("webhook port");
        let mut s = WebhookServer::on(listener.local_addr().expect("bound").port());
        s.responder = Some(Arc::new(respond));
        s.accept_on(listener);
        s
    }

    /// Not listening yet on `port` (connections are refused until `listen`).
    pub fn on(port: u16) -> WebhookServer {
        WebhookServer {
            port,
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            responder: None,
            stop: Arc::default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts listening on the port given to [`WebhookServer::on`].
    pub fn listen(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("webhook port");
        self.accept_on(listener);
    }

    fn accept_on(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (requests, status, stop) = (
            self.requests.clone(),
            self.status.clone(),
            self.stop.clone(),
        );
        let responder = self.responder.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (requests, status) = (requests.clone(), status.clone());
                        let responder = responder.clone();
                        std::thread::spawn(move || {
                            serve(conn, &requests, &status, responder.as_ref());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `done(requests)` holds or `limit` passes; the requests then.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Requests on one connection (keep-alive), until it closes.
fn serve(
    conn: TcpStream,
    requests: &Mutex<Vec<Request>>,
    status: &AtomicU16,
    responder: Option<&Responder>,
) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, path) = (
            it.next().unwrap_or("").to_string(),
            it.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let req = Request {
            method,
            path,
            headers,
            body,
        };
        let (code, body) = match responder {
            Some(f) => f(&req),
            None => (status.load(Ordering::Relaxed), "ok".to_string()),
        };
        requests.lock().unwrap().push(req);
        let reply = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
