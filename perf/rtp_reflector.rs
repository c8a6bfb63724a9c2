//! The kernel's floor for an RTP relay's packet in+out cost on this machine:
//! one UDP socket on 127.0.0.1:PORT, one thread, blocking `recvmmsg` (batch
//! 64, MSG_WAITFORONE) and one `sendmmsg` that sends every datagram of the
//! batch back to its source. No parsing, no lookups, no runtime.
//!
//! Built as the `rtp-reflector` binary of bench-scenarios/rtp-load (it needs
//! `libc`):
//!
//! ```text
//! cargo build --release --manifest-path bench-scenarios/rtp-load/Cargo.toml
//! bench-scenarios/rtp-load/target/release/rtp-reflector --port 47000 [--seconds S] [--rcvbuf BYTES]
//! ```
//!
//! Runs until SIGTERM/SIGINT (or `--seconds S`), then prints one line to
//! stdout: `reflected <packets in> sent <packets out> batches <recvmmsg calls>
//! send_errors <n>`. `PORT 0` binds any free port; the bound port is printed
//! on stderr as `listening 127.0.0.1:<port>` before the first receive.
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const BUF: usize = 2048;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn usage() -> ! {
    eprintln!("usage: rtp-reflector [--port] PORT [--seconds S] [--rcvbuf BYTES]");
    std::process::exit(2);
}

/// SO_*BUFFORCE (ignores net.core.[rw]mem_max; needs CAP_NET_ADMIN), else the
/// plain option (capped by the sysctl).
fn set_buf(fd: libc::c_int, force: libc::c_int, plain: libc::c_int, bytes: libc::c_int) {
    let p = &bytes as *const libc::c_int as *const libc::c_void;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
        }
    }
}

fn main() {
    let mut port: Option<u16> = None;
    let mut seconds: Option<f64> = None;
    let mut rcvbuf: libc::c_int = 8 << 20;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = Some(val().parse().unwrap_or_else(|_| usage())),
            "--seconds" => seconds = Some(val().parse().unwrap_or_else(|_| usage())),
            "--rcvbuf" => rcvbuf = val().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            p if port.is_none() && p.parse::<u16>().is_ok() => port = p.parse().ok(),
            _ => usage(),
        }
    }
    let Some(port) = port else { usage() };
    let sock = match UdpSocket::bind(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rtp-reflector: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    let fd = sock.as_raw_fd();
    set_buf(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf);
    set_buf(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, rcvbuf);
    // Wake up now and then to see a --seconds deadline; signals interrupt the
    // receive anyway (no SA_RESTART).
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    match sock.local_addr() {
        Ok(addr) => eprintln!("listening {addr}"),
        Err(e) => eprintln!("listening (address unknown: {e})"),
    }
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));

    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: BUF,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let (mut reflected, mut sent, mut batches, mut send_errors) = (0u64, 0u64, 0u64, 0u64);
    while !STOP.load(Ordering::Relaxed) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        for i in 0..BATCH {
            iovs[i].iov_len = BUF;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            msgs[i].msg_len = 0;
        }
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue; // EINTR (signal), EAGAIN (read timeout)
        }
        let n = n as usize;
        batches += 1;
        reflected += n as u64;
        // Send each datagram back to its source: the received length, the
        // received address (msg_namelen as the kernel set it).
        for i in 0..n {
            iovs[i].iov_len = msgs[i].msg_len as usize;
        }
        let mut off = 0;
        while off < n {
            let r = unsafe {
                libc::sendmmsg(fd, msgs.as_mut_ptr().add(off), (n - off) as libc::c_uint, 0)
            };
            if r <= 0 {
                // Skip the datagram the kernel refused, keep the rest.
                send_errors += 1;
                off += 1;
            } else {
                sent += r as u64;
                off += r as usize;
            }
        }
    }
    println!("reflected {reflected} sent {sent} batches {batches} send_errors {send_errors}");
}
