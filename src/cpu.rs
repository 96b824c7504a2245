//! Keeping the pipeline on one CPU.
//!
//! With SQLite, sqlx runs every statement on a worker thread of its own, so
//! each statement is a hand-off between that thread and ours. When the two
//! sit on different CPUs, each hand-off wakes an idle CPU, which on virtual
//! machines costs tens of microseconds; on one CPU it is a cheap switch.
//! Ingest is serial anyway (one writer), so pinning loses nothing: measured
//! here, 1,100 → 4,000 messages/s (benches/ingest.rs).

/// Pins the calling thread, and every thread it spawns afterwards (the
/// database worker included), to the CPU it is running on. Best effort: on
/// failure, or off Linux, nothing changes.
pub fn pin_to_current_cpu() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_getcpu has no preconditions; the cpu_set_t is zeroed
    // and filled with CPU_SET before sched_setaffinity reads it, and 0
    // names the calling thread.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::debug!("could not pin to CPU {cpu}");
        }
    }
}

/// Lets the calling thread run on every CPU again: for helper threads
/// (blocking file writes) that should not compete with the pinned pair.
pub fn allow_all_cpus() {
    #[cfg(target_os = "linux")]
    // SAFETY: as above; the set holds every CPU the process may know of.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
