//! Builds the kernel-side programs with clang when clang can target BPF:
//! `bpf/steer.bpf.c` (SIP datagrams steered to their owner shard) and
//! `bpf/rtp_fwd.bpf.c` (steady RTP streams relayed in the kernel). Without
//! clang the objects are left empty and the runtime does both in user space
//! (logged once at start).

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: [&str; 2] = ["steer", "rtp_fwd"];

fn build(clang: &str, name: &str, out: &Path) -> bool {
    let src = format!("bpf/{name}.bpf.c");
    println!("cargo:rerun-if-changed={src}");
    let obj = out.join(format!("{name}.bpf.o"));
    let built = Command::new(clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-c", &src, "-o"])
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        std::fs::write(&obj, []).expect("OUT_DIR is writable");
    }
    built
}

fn main() {
    println!("cargo:rerun-if-env-changed=SHARDPBX_CLANG");
    println!("cargo:rustc-check-cfg=cfg(shardpbx_bpf)");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("SHARDPBX_CLANG").unwrap_or_else(|_| "clang".into());
    let mut all = true;
    for name in PROGRAMS {
        all &= build(&clang, name, &out);
    }
    if all {
        println!("cargo:rustc-cfg=shardpbx_bpf");
    } else {
        println!(
            "cargo:warning=clang could not build shards/bpf/*.bpf.c: SIP steering and the RTP relay stay in user space (install clang for the kernel paths)"
        );
    }
}
