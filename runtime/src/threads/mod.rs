//! Multi-threaded execution: the worker pool a session hands its steps to, and the CPU
//! topology that decides which cores the pool runs on and pins to.
//!
//! By default a session runs one thread per big core (by `cpu_capacity`, else the maximum
//! clock), each pinned to its core; `threads` and `cpus` override. The calling thread is
//! thread 0 and works too.

pub mod pool;
pub mod topology;

pub use pool::Pool;
pub use topology::Topology;

/// Where a session's threads run, resolved from the user's options and the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Threads in all, the caller included.
    pub threads: usize,
    /// The CPUs the threads may use (the big cores, or the ones asked for).
    pub cpus: Vec<usize>,
    /// One CPU per thread, caller first, when every thread gets a core of its own (empty
    /// when unpinned or oversubscribed).
    pub pin: Vec<usize>,
}

/// Most threads a session may ask for.
pub const MAX_THREADS: usize = 256;

impl Placement {
    /// Resolve `threads` / `cpus` (both optional) against `topo` and the CPUs this process
    /// may use (`allowed`, when known). Default: one thread per big core the process may
    /// use. With `pin`, thread `i` is pinned to the `i`-th fastest of those CPUs when there
    /// are at least as many CPUs as threads; more threads than CPUs run unpinned.
    pub fn resolve(
        threads: Option<usize>,
        cpus: Option<&[usize]>,
        pin: bool,
        topo: &Topology,
        allowed: Option<&[usize]>,
    ) -> Result<Placement, String> {
        if threads == Some(0) {
            return Err("--threads 0: at least one thread is needed".into());
        }
        if let Some(t) = threads.filter(|&t| t > MAX_THREADS) {
            return Err(format!("--threads {t}: at most {MAX_THREADS} threads"));
        }
        let usable = |c: &usize| allowed.is_none_or(|a| a.contains(c));
        let set: Vec<usize> = match cpus {
            Some(list) => {
                if list.is_empty() {
                    return Err("--cpus: the list is empty".into());
                }
                let online: Vec<usize> = topo.cpus.iter().map(|c| c.id).collect();
                for c in list {
                    if !online.contains(c) {
                        return Err(format!(
                            "--cpus {}: CPU {c} is not online (online: {})",
                            topology::format_cpu_list(list),
                            topology::format_cpu_list(&online)
                        ));
                    }
                    if !usable(c) {
                        return Err(format!(
                            "--cpus {}: CPU {c} is not available to this process (allowed: {})",
                            topology::format_cpu_list(list),
                            topology::format_cpu_list(allowed.unwrap_or(&[]))
                        ));
                    }
                }
                list.to_vec()
            }
            None => {
                let big: Vec<usize> = topo.big_cores().into_iter().filter(usable).collect();
                if big.is_empty() {
                    // The process is confined to other cores (say, by taskset): use those.
                    match allowed {
                        Some(a) if !a.is_empty() => a.to_vec(),
                        _ => topo.cpus.iter().map(|c| c.id).collect(),
                    }
                } else {
                    big
                }
            }
        };
        let set = if set.is_empty() { vec![0] } else { set };
        let threads = threads.unwrap_or(set.len());
        // Fastest first, then by id: thread 0 (the caller) gets the fastest core.
        let mut order = set.clone();
        order.sort_by_key(|&c| (std::cmp::Reverse(topo.capacity(c).unwrap_or(0)), c));
        let pin = if pin && threads <= order.len() {
            order[..threads].to_vec()
        } else {
            Vec::new()
        };
        Ok(Placement {
            threads,
            cpus: set,
            pin,
        })
    }

    /// This machine's placement for the options.
    pub fn detect(
        threads: Option<usize>,
        cpus: Option<&[usize]>,
        pin: bool,
    ) -> Result<Placement, String> {
        let allowed = topology::allowed_cpus();
        Placement::resolve(threads, cpus, pin, Topology::detect(), allowed.as_deref())
    }

    /// A short description: `2 threads on CPUs 0-1 (pinned)`.
    pub fn describe(&self) -> String {
        let s = if self.threads == 1 { "" } else { "s" };
        let how = if self.pin.is_empty() {
            "unpinned"
        } else {
            "pinned"
        };
        format!(
            "{} thread{s} on CPUs {} ({how})",
            self.threads,
            topology::format_cpu_list(&self.cpus)
        )
    }
}
