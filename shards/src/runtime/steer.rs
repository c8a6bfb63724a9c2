//! Steering SIP datagrams to their owner shard inside the kernel.
//!
//! The shards share the SIP port through `SO_REUSEPORT`. Left alone, the
//! kernel picks a shard by the datagram's 4-tuple, so everything from one
//! peer (a trunk, a proxy, sipp) lands on one shard, which hands half of it
//! to the other shards through their inboxes: a copy, a queue push and often
//! a wake-up per datagram. When the kernel lets us, an `SK_REUSEPORT` program
//! (`shards/bpf/steer.bpf.c`) reads the Call-ID and picks the owner's socket
//! itself, with the very rule of [`super::owner::owner_of`], so handoffs
//! become the exception (a Call-ID the program cannot read).
//!
//! This module owns loading that program, filling its socket map, and
//! reading its counters. Where the program is missing (built without clang)
//! or the kernel refuses it (no `CAP_BPF`, an old kernel, a container), the
//! shards steer in user space as before; the reason is logged once at start
//! and shown in `/metrics`.

use std::net::UdpSocket;

use aya::maps::{Array, MapData, PerCpuArray, ReusePortSockArray};
use aya::programs::SkReuseport;
use aya::{Ebpf, EbpfLoader};

use super::KernelMode;

/// The compiled program (empty when clang was missing at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

/// Why datagrams are steered in user space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteerError {
    /// `[runtime] steering = "off"`.
    Disabled,
    /// One shard: nothing to steer.
    OneShard,
    /// Built without clang: no program in the binary.
    NotBuilt,
    /// The kernel refused to load or attach the program.
    Refused(String),
}

impl std::fmt::Display for SteerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SteerError::Disabled => f.write_str("runtime.steering = \"off\""),
            SteerError::OneShard => f.write_str("one shard"),
            SteerError::NotBuilt => {
                f.write_str("built without clang: no steering program in the binary")
            }
            SteerError::Refused(why) => write!(f, "the kernel refused the program: {why}"),
        }
    }
}

/// How datagrams reach their owner shard.
pub enum Steering {
    /// The kernel picks the owner's socket; the program and maps live as
    /// long as this value.
    Kernel(Box<KernelSteering>),
    /// The receiving shard hands datagrams on (why not the kernel).
    UserSpace(SteerError),
}

/// The loaded program and the map of its counters.
pub struct KernelSteering {
    _ebpf: Ebpf,
    stats: PerCpuArray<MapData, u64>,
}

/// What the kernel program counted since start (all CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerCounts {
    /// Datagrams sent straight to their owner's socket.
    pub steered: u64,
    /// Datagrams left to the kernel's 4-tuple hash (no readable Call-ID).
    pub unsteered: u64,
}

impl Steering {
    /// Attaches the steering program to the group of `sockets` (socket `i`
    /// = shard `i`, all bound with `SO_REUSEPORT` to one address), or says
    /// why datagrams will be steered in user space.
    pub fn attach(mode: KernelMode, sockets: &[UdpSocket]) -> Steering {
        if mode == KernelMode::Off {
            return Steering::UserSpace(SteerError::Disabled);
        }
        if sockets.len() < 2 {
            return Steering::UserSpace(SteerError::OneShard);
        }
        if OBJECT.is_empty() {
            return Steering::UserSpace(SteerError::NotBuilt);
        }
        match load(sockets) {
            Ok(k) => Steering::Kernel(Box::new(k)),
            Err(why) => Steering::UserSpace(SteerError::Refused(why)),
        }
    }

    /// `"kernel"` or `"user"`, for logs and `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            Steering::Kernel(_) => "kernel",
            Steering::UserSpace(_) => "user",
        }
    }

    /// The kernel program's counters (`None` on the user-space path).
    pub fn counts(&self) -> Option<SteerCounts> {
        let Steering::Kernel(k) = self else {
            return None;
        };
        let sum = |i: u32| per_cpu_sum(&k.stats, i);
        Some(SteerCounts {
            steered: sum(0),
            unsteered: sum(1),
        })
    }
}

/// Counter `i` of a per-CPU array, summed over the CPUs (0 when unreadable).
pub(super) fn per_cpu_sum(stats: &PerCpuArray<MapData, u64>, i: u32) -> u64 {
    stats
        .get(&i, 0)
        .map(|per_cpu| per_cpu.iter().copied().sum())
        .unwrap_or(0)
}

/// The end of a load error: the verifier's whole log is long, its verdict
/// is in the last lines.
pub(super) fn verifier_says(error: &str) -> String {
    let lines: Vec<&str> = error
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    let tail = lines.len().saturating_sub(12);
    format!("load: {}", lines[tail..].join(" / "))
}

fn load(sockets: &[UdpSocket]) -> Result<KernelSteering, String> {
    let shards = u32::try_from(sockets.len()).map_err(|_| "too many shards".to_string())?;
    let mut ebpf = EbpfLoader::new()
        .load(OBJECT)
        .map_err(|e| format!("load: {e}"))?;
    {
        let map = ebpf.map_mut("SOCKS").ok_or("no SOCKS map")?;
        let mut socks = ReusePortSockArray::try_from(map).map_err(|e| format!("SOCKS map: {e}"))?;
        for (i, sock) in (0u32..).zip(sockets) {
            socks
                .set(i, sock, 0)
                .map_err(|e| format!("socket {i} into SOCKS: {e}"))?;
        }
    }
    {
        let map = ebpf.map_mut("CONFIG").ok_or("no CONFIG map")?;
        let mut config: Array<_, u32> =
            Array::try_from(map).map_err(|e| format!("CONFIG map: {e}"))?;
        config
            .set(0, shards, 0)
            .map_err(|e| format!("CONFIG[0]: {e}"))?;
    }
    let stats = ebpf.take_map("STATS").ok_or("no STATS map")?;
    let stats = PerCpuArray::try_from(stats).map_err(|e| format!("STATS map: {e}"))?;
    let prog: &mut SkReuseport = ebpf
        .program_mut("steer")
        .ok_or("no steer program")?
        .try_into()
        .map_err(|e| format!("steer program: {e}"))?;
    prog.load().map_err(|e| verifier_says(&format!("{e:?}")))?;
    prog.attach(&sockets[0])
        .map_err(|e| format!("attach: {e}"))?;
    Ok(KernelSteering { _ebpf: ebpf, stats })
}
