//! Builds the kernel-side datagram steering program (`bpf/steer.bpf.c`)
//! with clang when clang can target BPF. Without it the object is left
//! empty and the runtime steers in user space (logged once at start).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/steer.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=SHARDPBX_CLANG");
    println!("cargo:rustc-check-cfg=cfg(shardpbx_bpf)");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("steer.bpf.o");
    let clang = std::env::var("SHARDPBX_CLANG").unwrap_or_else(|_| "clang".into());
    let built = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-c", src, "-o"])
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success());
    if built {
        println!("cargo:rustc-cfg=shardpbx_bpf");
    } else {
        println!(
            "cargo:warning=clang could not build {src}: SIP datagrams will be steered to their shard in user space (install clang for the kernel path)"
        );
        std::fs::write(&obj, []).expect("OUT_DIR is writable");
    }
}
