//! Work of `serve` that must yield to the put path: the embedded broker, the gate's sessions
//! and the publisher. On a busy machine a crowd's fan-out (a thousand deliveries a tick) would
//! otherwise delay an editor's put: not only for the CPU, but in the kernel's loopback path,
//! where the put's packets queue behind the deliveries sent from the same core. So the
//! background threads run at a lower priority and, when the process may use more than one
//! CPU, never on the first of them, which stays the put path's. In the deployed stack the
//! fan-out runs in AWS IoT Core, away from the put; this keeps the local stack's put path as
//! quiet as that.

/// How much lower than the process the background threads run: the nice value added (Linux;
/// other systems keep one priority per process, so there the threads run as the rest).
pub const NICE: i32 = 10;

/// Moves the calling thread to the background: [`NICE`] below the process, and off the first
/// CPU the process may use when it may use several. Threads it starts afterwards inherit both.
/// Calling it again changes nothing; failure (a sandbox refusing it) only leaves the thread as
/// it was. Linux only; elsewhere it does nothing.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread and on a local CPU set; no memory is shared.
    unsafe {
        // On Linux the nice value and the CPU set belong to each thread: PRIO_PROCESS with a
        // thread id, and sched_setaffinity(0), change only the calling thread. The process's
        // own (its main thread's) are the reference, so a second call lowers nothing more.
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let pid = libc::getpid();
        let base = libc::getpriority(libc::PRIO_PROCESS, pid as libc::id_t);
        libc::setpriority(libc::PRIO_PROCESS, tid, (base + NICE).min(19));
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, size, &mut set) == 0 && libc::CPU_COUNT(&set) > 1 {
            if let Some(first) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set))
            {
                libc::CPU_CLR(first, &mut set);
                libc::sched_setaffinity(0, size, &set);
            }
        }
    }
}

/// A runtime whose worker and blocking threads all run in the background
/// ([`lower_this_thread`]), named `realtime`.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("realtime")
        .on_thread_start(lower_this_thread)
        .enable_all()
        .build()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This thread's nice value and the CPUs it may run on.
    fn placement() -> (i32, Vec<usize>) {
        // SAFETY: as above.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            let cpus = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            (nice, cpus)
        }
    }

    #[test]
    fn only_the_calling_thread_and_its_children_move_and_only_once() {
        let (nice, cpus) = placement();
        let (lowered, again, inherited) = std::thread::spawn(move || {
            lower_this_thread();
            let lowered = placement();
            lower_this_thread();
            let again = placement();
            let inherited = std::thread::spawn(placement).join().unwrap();
            (lowered, again, inherited)
        })
        .join()
        .unwrap();
        assert_eq!(lowered.0, (nice + NICE).min(19));
        let expected: Vec<usize> = if cpus.len() > 1 {
            cpus[1..].to_vec()
        } else {
            cpus.clone()
        };
        assert_eq!(
            lowered.1, expected,
            "off the first CPU when there are several"
        );
        assert_eq!(again, lowered, "a second call changes nothing");
        assert_eq!(inherited, lowered, "a thread started later inherits it");
        assert_eq!(placement(), (nice, cpus), "other threads keep theirs");
    }

    #[test]
    fn the_runtime_runs_its_tasks_in_the_background() {
        let (nice, _) = placement();
        let rt = runtime().unwrap();
        let (task_nice, _) = rt
            .block_on(async { tokio::spawn(async { placement() }).await })
            .unwrap();
        assert_eq!(task_nice, (nice + NICE).min(19));
    }
}
