//! A fast stand-in for an HTTP router (API.md 2.1) for benchmarks: answers
//! every request with the same JSON body, HTTP/1.1 keep-alive, a thread per
//! connection, std only. What it costs is the floor a real router adds.
//!
//! usage: router-hook PORT 'JSON body'   (listens on 127.0.0.1:PORT)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

#[allow(dead_code)]
fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: router-hook PORT 'JSON body'");
            std::process::exit(2);
        }
    };
    let body = args
        .next()
        .unwrap_or_else(|| r#"{"action": "not_handled"}"#.to_string());
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("router-hook: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    serve(listener, body);
}

/// Answers every request on `listener` with `body` until the process ends.
pub(crate) fn serve(listener: TcpListener, body: String) {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for conn in listener.incoming().flatten() {
        let reply = reply.clone();
        std::thread::spawn(move || connection(conn, reply.as_bytes()));
    }
}

fn connection(conn: TcpStream, reply: &[u8]) {
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    loop {
        // Request line and headers, up to the blank line.
        let mut len = 0usize;
        let mut first = true;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() || out.write_all(reply).is_err() {
            return;
        }
    }
}
