//! On-CPU time for the benchmarks (`#[path]`-included by each): a
//! criterion [`Measurement`] of the benchmark thread's CPU time, and the
//! clock it reads.

#![allow(dead_code)]

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// On-CPU time of the benchmark thread (CLOCK_THREAD_CPUTIME_ID): unlike wall
/// time it does not count the time other processes hold the core, so figures
/// stay meaningful on a shared 2-core machine.
pub(crate) struct CpuTime(pub(crate) WallTime);

/// The calling thread's CPU time, ns.
#[allow(unsafe_code)]
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}
