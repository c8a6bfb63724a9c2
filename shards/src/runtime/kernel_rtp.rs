//! Relaying steady RTP streams inside the kernel.
//!
//! Each relayed packet costs a user-space relay a receive, a wake and a
//! send; a TC program on the interfaces' ingress (`shards/bpf/rtp_fwd.bpf.c`)
//! rewrites and sends on the packets of streams the relay handed over, in
//! the softirq that received them. The relay stays the judge (see
//! [`crate::media::fastpath`]): it hands a stream over only while it is
//! steady, and gets every other packet on its socket as before.
//!
//! This module owns loading the program, attaching it (TCX links: they
//! belong to this process, so nothing stays attached when it exits), the
//! map of handed-over streams ([`KernelFastPath`], one per shard, each
//! with its own duplicate of the map's fd), and the program's counters.
//! Where the program is missing (built without clang) or the kernel
//! refuses it (no `CAP_BPF`/`CAP_NET_ADMIN`, a kernel before 6.6, a
//! container), every packet is relayed in user space; the reason is
//! logged once at start and shown in `/metrics`. IPv4 only: IPv6 streams
//! stay in user space.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::tc::TcAttachOptions;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};

use super::KernelMode;
use crate::media::fastpath::{FastPath, Handover, Progress};
use crate::time::Now;

/// The compiled program (empty when clang was missing at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rtp_fwd.bpf.o"));

/// Where the relay's ports are, for the program's first check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRtpConfig {
    pub mode: KernelMode,
    /// The address media sockets bind (unspecified: any of ours).
    pub bind_ip: IpAddr,
    pub port_start: u16,
    pub port_end: u16,
}

/// How steady RTP streams are relayed.
pub enum RtpPath {
    /// In the kernel; the program, its links and maps live as long as this.
    Kernel(Box<KernelRtp>),
    /// In user space, and why.
    UserSpace(String),
}

/// The loaded, attached program.
pub struct KernelRtp {
    _ebpf: Ebpf,
    fwd: MapData,
    stats: PerCpuArray<MapData, u64>,
    /// The interfaces it is attached to.
    pub interfaces: Vec<String>,
}

/// What the program counted since start (all CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelRtpCounts {
    /// Packets relayed to one of our own addresses.
    pub local: u64,
    /// Packets relayed out of an interface.
    pub out: u64,
    /// Packets for a handed-over port left to user space: not the next
    /// packet of the steady stream.
    pub unsteady: u64,
}

impl RtpPath {
    /// Loads and attaches the program, or says why RTP is relayed in user
    /// space only.
    pub fn start(cfg: &KernelRtpConfig) -> RtpPath {
        if cfg.mode == KernelMode::Off {
            return RtpPath::UserSpace("media.kernel_forwarding = \"off\"".into());
        }
        if OBJECT.is_empty() {
            return RtpPath::UserSpace("built without clang: no RTP program in the binary".into());
        }
        let bind = match cfg.bind_ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) if ip.is_unspecified() => Ipv4Addr::UNSPECIFIED,
            IpAddr::V6(_) => {
                return RtpPath::UserSpace("media binds an IPv6 address (IPv4 only)".into())
            }
        };
        match load(cfg, bind) {
            Ok(k) => RtpPath::Kernel(Box::new(k)),
            Err(why) => RtpPath::UserSpace(why),
        }
    }

    /// `"kernel"` or `"user"`, for logs and `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            RtpPath::Kernel(_) => "kernel",
            RtpPath::UserSpace(_) => "user",
        }
    }

    /// A shard's handle on the map of handed-over streams (`None` in user
    /// space, or when the fd cannot be duplicated: logged).
    pub fn fast_path(&self) -> Option<KernelFastPath> {
        let RtpPath::Kernel(k) = self else {
            return None;
        };
        match k.fwd.fd().as_fd().try_clone_to_owned() {
            Ok(fd) => Some(KernelFastPath::new(fd)),
            Err(e) => {
                tracing::warn!("a shard relays RTP in user space: the map fd: {e}");
                None
            }
        }
    }

    /// The program's counters (`None` in user space).
    pub fn counts(&self) -> Option<KernelRtpCounts> {
        let RtpPath::Kernel(k) = self else {
            return None;
        };
        let sum = |i: u32| super::steer::per_cpu_sum(&k.stats, i);
        Some(KernelRtpCounts {
            local: sum(0),
            out: sum(1),
            unsteady: sum(2),
        })
    }
}

/// Interfaces whose frames start with an Ethernet header (Ethernet and
/// loopback) and are up: where media can arrive.
fn media_interfaces() -> Vec<String> {
    const ARPHRD_ETHER: &str = "1";
    const ARPHRD_LOOPBACK: &str = "772";
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
            let kind = read("type")?;
            let flags = read("flags")?;
            let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
            let up = flags & libc::IFF_UP as u32 != 0;
            let ether = matches!(kind.trim(), ARPHRD_ETHER | ARPHRD_LOOPBACK);
            (up && ether).then_some(name)
        })
        .collect();
    out.sort();
    out
}

fn load(cfg: &KernelRtpConfig, bind: Ipv4Addr) -> Result<KernelRtp, String> {
    let mut ebpf = EbpfLoader::new()
        .load(OBJECT)
        .map_err(|e| format!("load: {e}"))?;
    {
        let map = ebpf.map_mut("CONFIG").ok_or("no CONFIG map")?;
        let mut config: Array<_, u32> =
            Array::try_from(map).map_err(|e| format!("CONFIG map: {e}"))?;
        let values = [
            u32::from_ne_bytes(bind.octets()),
            u32::from(cfg.port_start),
            u32::from(cfg.port_end),
        ];
        for (i, v) in (0u32..).zip(values) {
            config
                .set(i, v, 0)
                .map_err(|e| format!("CONFIG[{i}]: {e}"))?;
        }
    }
    let Map::HashMap(fwd) = ebpf.take_map("FWD").ok_or("no FWD map")? else {
        return Err("FWD is not a hash map".into());
    };
    let stats = ebpf.take_map("STATS").ok_or("no STATS map")?;
    let stats = PerCpuArray::try_from(stats).map_err(|e| format!("STATS map: {e}"))?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut("rtp_fwd")
        .ok_or("no rtp_fwd program")?
        .try_into()
        .map_err(|e| format!("rtp_fwd program: {e}"))?;
    prog.load()
        .map_err(|e| super::steer::verifier_says(&format!("{e:?}")))?;
    let mut interfaces = Vec::new();
    let mut refused = Vec::new();
    for name in media_interfaces() {
        let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
        match prog.attach_with_options(&name, TcAttachType::Ingress, tcx) {
            Ok(_) => interfaces.push(name),
            Err(e) => refused.push(format!("{name}: {e}")),
        }
    }
    if interfaces.is_empty() {
        return Err(if refused.is_empty() {
            "no Ethernet or loopback interface is up".into()
        } else {
            format!("attach (TCX, kernel 6.6+): {}", refused.join("; "))
        });
    }
    if !refused.is_empty() {
        tracing::warn!(
            "the RTP program is not attached to every interface: {}",
            refused.join("; ")
        );
    }
    Ok(KernelRtp {
        _ebpf: ebpf,
        fwd,
        stats,
        interfaces,
    })
}

/// One stream in the program's map (`struct fwd` of `rtp_fwd.bpf.c`):
/// addresses, ports and the SSRC as on the wire, the rest in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FwdEntry {
    src_ip: u32,
    src_port: u16,
    out_port: u16,
    dst_ip: u32,
    dst_port: u16,
    seq_offset: u16,
    ssrc: u32,
    clock_rate: u32,
    pt: u8,
    have_transit: u8,
    last_seq: u16,
    last_ts: u32,
    last_transit: u32,
    out_ifindex: u32,
    jitter16: u64,
    last_ns: u64,
    packets: u64,
    bytes: u64,
}

const _: () = assert!(std::mem::size_of::<FwdEntry>() == 72);

fn wire_ip(a: &SocketAddrV4) -> u32 {
    u32::from_ne_bytes(a.ip().octets())
}

fn wire_port(port: u16) -> u16 {
    u16::from_ne_bytes(port.to_be_bytes())
}

impl FwdEntry {
    /// The entry for `h`; `mono_offset_ms` puts the relay's clock on the
    /// kernel's, where the first jitter sample is taken.
    fn from_handover(h: &Handover, out_ifindex: u32, mono_offset_ms: u64) -> FwdEntry {
        let arrival_us = (h.last_ms + mono_offset_ms) * 1000;
        let arrival = (arrival_us * u64::from(h.clock_rate) / 1_000_000) as u32;
        FwdEntry {
            src_ip: wire_ip(&h.from),
            src_port: wire_port(h.from.port()),
            out_port: wire_port(h.out_port),
            dst_ip: wire_ip(&h.to),
            dst_port: wire_port(h.to.port()),
            seq_offset: h.seq_offset,
            ssrc: u32::from_ne_bytes(h.ssrc.to_be_bytes()),
            clock_rate: h.clock_rate,
            pt: h.payload_type & 0x7f,
            last_seq: h.last_seq,
            last_ts: h.last_ts,
            last_transit: arrival.wrapping_sub(h.last_ts),
            have_transit: 1,
            out_ifindex,
            jitter16: (h.jitter * 16.0).round().max(0.0) as u64,
            ..FwdEntry::default()
        }
    }
}

/// A shard's handle on the map of handed-over streams: a [`FastPath`].
pub struct KernelFastPath {
    fd: OwnedFd,
    /// The interface of each of our IPv4 addresses (refreshed on a miss).
    interfaces: HashMap<Ipv4Addr, u32>,
    /// `CLOCK_MONOTONIC` ms minus `Now::mono_ms`, to put the program's
    /// arrival times on the relay's clock.
    mono_offset_ms: u64,
}

/// `BPF_MAP_*_ELEM` attributes (`union bpf_attr`).
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl KernelFastPath {
    fn new(fd: OwnedFd) -> KernelFastPath {
        let mono_offset_ms = monotonic_ms().saturating_sub(Now::read().mono_ms);
        KernelFastPath {
            fd,
            interfaces: HashMap::new(),
            mono_offset_ms,
        }
    }

    /// One map command on `port`'s entry; false when the kernel said no.
    fn elem(&self, cmd: libc::c_long, port: u16, value: &mut FwdEntry) -> bool {
        let key = u32::from(port);
        let attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            pad: 0,
            key: &key as *const u32 as u64,
            value: value as *mut FwdEntry as u64,
            flags: 0,
        };
        // SAFETY: attr points at a key and a value that outlive the call,
        // of the sizes the map was made with.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &attr as *const ElemAttr,
                std::mem::size_of::<ElemAttr>(),
            )
        };
        rc == 0
    }

    /// Where packets to `dest` leave: `Some(0)` when it is one of our own
    /// addresses (the stack delivers them), else the index of the
    /// interface the route to it goes through; `None` without a route.
    /// The kernel's own choice: the source address a socket connected to
    /// `dest` gets, and the interface holding that address.
    fn egress(&mut self, dest: SocketAddrV4) -> Option<u32> {
        let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        probe.connect(dest).ok()?;
        let std::net::SocketAddr::V4(src) = probe.local_addr().ok()? else {
            return None;
        };
        if src.ip() == dest.ip() {
            return Some(0);
        }
        if !self.interfaces.contains_key(src.ip()) {
            self.interfaces = ipv4_interfaces();
        }
        self.interfaces.get(src.ip()).copied()
    }

    fn progress(&self, e: &FwdEntry) -> Progress {
        Progress {
            packets: e.packets,
            bytes: e.bytes,
            last_seq: e.last_seq,
            last_ts: e.last_ts,
            last_ms: (e.last_ns / 1_000_000).saturating_sub(self.mono_offset_ms),
            jitter: e.jitter16 as f64 / 16.0,
        }
    }
}

impl FastPath for KernelFastPath {
    fn hand_over(&mut self, port: u16, handover: &Handover) -> bool {
        let Some(out_ifindex) = self.egress(handover.to) else {
            tracing::debug!(port, to = %handover.to, "no route: the stream stays in user space");
            return false;
        };
        if out_ifindex == 0 && self.egress(handover.from) != Some(0) {
            // From the wire to one of our own addresses: the kernel can
            // deliver only what came in on lo (the program would punt).
            return false;
        }
        let mut entry = FwdEntry::from_handover(handover, out_ifindex, self.mono_offset_ms);
        let done = self.elem(BPF_MAP_UPDATE_ELEM, port, &mut entry);
        if !done {
            tracing::debug!(
                port,
                "the kernel refused a stream: {}",
                std::io::Error::last_os_error()
            );
        }
        done
    }

    fn progress(&mut self, port: u16) -> Option<Progress> {
        let mut entry = FwdEntry::default();
        self.elem(BPF_MAP_LOOKUP_ELEM, port, &mut entry)
            .then(|| KernelFastPath::progress(self, &entry))
    }

    fn take(&mut self, port: u16) -> Option<Progress> {
        let mut entry = FwdEntry::default();
        self.elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, port, &mut entry)
            .then(|| KernelFastPath::progress(self, &entry))
    }
}

/// Each IPv4 address of the host and the index of its interface.
fn ipv4_interfaces() -> HashMap<Ipv4Addr, u32> {
    super::netif::interfaces()
        .into_iter()
        .filter_map(|(ip, index)| match ip {
            IpAddr::V4(v4) if index != 0 => Some((v4, index)),
            _ => None,
        })
        .collect()
}

/// Shared by the runtime (counters for `/metrics`) and the shards.
pub type SharedRtpPath = Arc<RtpPath>;
