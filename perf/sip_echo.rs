//! Baseline for the per-wake cost: a blocking std UDP "SIP 200 OK" reflector,
//! one recv_from and one send_to per request, no runtime. It answers sipp's
//! OPTIONS scenario (bench-scenarios/options.xml) by echoing the request's
//! headers under a 200 status line.
//!
//! Build and run (no dependencies): `rustc -O perf/sip_echo.rs -o /tmp/sip_echo && /tmp/sip_echo 45070`
use std::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(45070);
    let sock = match UdpSocket::bind(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sip_echo: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    let mut buf = [0u8; 65536];
    let mut out = Vec::with_capacity(2048);
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf) else { continue };
        let req = &buf[..n];
        let Some(eol) = req.windows(2).position(|w| w == b"\r\n") else { continue };
        out.clear();
        out.extend_from_slice(b"SIP/2.0 200 OK");
        out.extend_from_slice(&req[eol..]);
        let _ = sock.send_to(&out, src);
    }
}
