//! What crossed the loopback wire: tcpdump (Debian's, run as root, as the
//! tests are) writes a pcap file; [`Capture::stop`] reads the UDP
//! datagrams back out of it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One UDP datagram seen on `lo`.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// A running tcpdump on `lo`.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing what matches `filter` (a pcap filter) into a file
    /// in `dir`; returns once tcpdump listens.
    pub fn start(dir: &Path, filter: &str) -> Capture {
        let file = dir.join("lo.pcap");
        let log = dir.join("tcpdump.log");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "2048", "-w"])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("tcpdump (scripts/install-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("tcpdump exited ({st}): {text}");
            }
            assert!(Instant::now() < deadline, "tcpdump did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Capture { child, file }
    }

    /// The UDP datagrams written so far (tcpdump writes each as it comes).
    pub fn seen(&self) -> Vec<Datagram> {
        parse_pcap(&std::fs::read(&self.file).unwrap_or_default())
    }

    /// Stops tcpdump and returns the UDP datagrams it saw, in order.
    pub fn stop(mut self) -> Vec<Datagram> {
        // SIGINT: tcpdump flushes and closes the file.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).unwrap();
        parse_pcap(&bytes)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The IPv4/UDP datagrams of a pcap file of link type Ethernet (what
/// tcpdump writes for `lo`).
fn parse_pcap(bytes: &[u8]) -> Vec<Datagram> {
    if bytes.len() < 24 {
        return Vec::new();
    }
    let le = match bytes[0..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |at: usize| {
        let w = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8) as usize;
        if at + 16 + len > bytes.len() {
            // Still being written.
            break;
        }
        let frame = &bytes[at + 16..at + 16 + len];
        at += 16 + len;
        if frame.len() < 14 + 20 || u16_at(frame, 12) != 0x0800 {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..];
        let udp_len = usize::from(u16_at(udp, 4)).clamp(8, udp.len());
        out.push(Datagram {
            from: SocketAddrV4::new(src, u16_at(udp, 0)),
            to: SocketAddrV4::new(dst, u16_at(udp, 2)),
            payload: udp[8..udp_len].to_vec(),
        });
    }
    out
}
