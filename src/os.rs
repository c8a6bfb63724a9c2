//! The control core's few direct calls into the OS (libc), in one place:
//! the only module of the binary's library besides `netif` allowed
//! `unsafe` code. Each function is safe to call and says what it reads.
#![allow(unsafe_code)]

/// The CPUs this process may run on (`sched_getaffinity`); empty when it
/// cannot be read.
#[cfg(target_os = "linux")]
pub fn affinity_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it, and CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
pub fn affinity_cpus() -> Vec<usize> {
    Vec::new()
}

/// Sets the nice value of the calling thread (threads it starts inherit it).
pub fn set_thread_nice(nice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscalls on this thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Clock ticks per second of `/proc` CPU times (`_SC_CLK_TCK`), 100 when
/// the system does not say.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: plain libc query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Holds SIGTERM and SIGINT pending on the calling thread and every thread
/// it starts from now on (they inherit the mask), until a thread that
/// watches for them calls [`release_stop_signals`]: a stop that arrives
/// while the appliance starts is acted on once it can be, instead of
/// killing the process half-started.
pub fn hold_stop_signals() {
    stop_signals(libc::SIG_BLOCK);
}

/// Lets SIGTERM and SIGINT reach the calling thread (one held meanwhile
/// arrives now).
pub fn release_stop_signals() {
    stop_signals(libc::SIG_UNBLOCK);
}

fn stop_signals(how: libc::c_int) {
    // SAFETY: a sigset_t built with sigemptyset/sigaddset, passed by
    // pointer to pthread_sigmask, which only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
