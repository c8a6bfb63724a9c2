//! What one sleep/wake cycle costs on this machine, in CPU: a glommio
//! executor sleeping on its timer (what a shard pays per wake-up when it is
//! not busy) against a plain thread sleeping. This sets the floor under any
//! per-operation CPU figure at low rates, and is why a busy shard polls on a
//! beat (`runtime::pacer`) instead of waking per datagram.
//!
//! Run: `cargo bench --bench wake_cost` (about 20 s).

#![allow(unsafe_code)] // Reads CPU clocks with libc.

use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(5);

/// utime + stime of this process, seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: plain sysconf query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn report(what: &str, wakes: u64, cpu: f64) {
    println!(
        "{what:<32} {wakes:>6} wakes in {:.0} s, {:>5.1} µs CPU per wake",
        RUN.as_secs_f64(),
        cpu * 1e6 / wakes.max(1) as f64
    );
}

fn glommio_timer(period: Duration) -> (u64, f64) {
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let mut wakes = 0u64;
            while t0.elapsed() < RUN {
                glommio::timer::sleep(period).await;
                wakes += 1;
            }
            (wakes, cpu_seconds() - c0)
        })
        .expect("executor");
    handle.join().expect("executor ran")
}

fn thread_sleep(period: Duration) -> (u64, f64) {
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut wakes = 0u64;
    while t0.elapsed() < RUN {
        std::thread::sleep(period);
        wakes += 1;
    }
    (wakes, cpu_seconds() - c0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // we need: run a short smoke pass there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for us in [1000u64, 250] {
        let p = Duration::from_micros(us);
        let (w, c) = glommio_timer(p);
        report(&format!("glommio timer, {us} µs"), w, c);
        let (w, c) = thread_sleep(p);
        report(&format!("std::thread::sleep, {us} µs"), w, c);
    }
}
