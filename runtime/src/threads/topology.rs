//! CPU topology: which logical CPUs are online, how fast each one is relative to the others,
//! and pinning threads to them.
//!
//! Mobile SoCs mix slow efficiency cores with fast performance cores (big.LITTLE, DynamIQ).
//! A session runs by default on the big cores only, one pinned worker per big core: spreading
//! a model over little cores makes the slowest worker the critical path. The topology comes
//! from Linux sysfs (`/sys/devices/system/cpu`), which Android exposes too. Every reader takes
//! a root path so tests can point it at fixture trees, and no file content, however malformed,
//! makes it panic: unreadable or unparsable values count as missing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// Highest CPU id accepted anywhere (sysfs, `--cpus`, pinning requests): 4096 CPUs in all,
/// the kernel's largest `NR_CPUS` on arm64.
const MAX_CPU_ID: usize = 4095;

/// Largest sysfs value read, in bytes: a sysfs attribute is at most a page, and the ones read
/// here are a few bytes. A longer file is not a real attribute and counts as missing.
const MAX_FILE_BYTES: u64 = 4096;

/// Most directory entries looked at when listing `cpuN` directories (a real `cpu` directory
/// has the CPUs plus a dozen or so other entries).
const MAX_DIR_ENTRIES: usize = 16 * 1024;

/// With `cpu_capacity`, a CPU counts as big when its capacity is at least this percentage of
/// the highest.
const BIG_CAPACITY_PERCENT: u128 = 60;

/// With only `cpuinfo_max_freq`, a CPU counts as big when its clock is at least this
/// percentage of the highest. Stricter than [`BIG_CAPACITY_PERCENT`] because a little core's
/// clock hides its lower IPC: an A55 at 1.8 GHz next to an A76 at 2.4 GHz has 75 % of the
/// clock but well under half the throughput, while cores of one cluster (or one die binned a
/// little differently) stay within a few percent of each other.
const BIG_FREQ_PERCENT: u128 = 80;

/// Where a CPU's relative speed came from.
///
/// Recorded so `inspect`/`bench` can say how much to trust the big/little split:
/// `cpu_capacity` is the scheduler's own figure, the maximum frequency ignores
/// micro-architecture, and `Uniform` means nothing was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacitySource {
    /// `cpuN/cpu_capacity`: the kernel's capacity scale (the fastest CPU is 1024), which the
    /// scheduler itself uses and which accounts for micro-architecture as well as clock.
    CpuCapacity,
    /// `cpuN/cpufreq/cpuinfo_max_freq` in kHz: the highest clock, used when some CPU has no
    /// `cpu_capacity` (older or x86 kernels).
    MaxFreq,
    /// Neither was available for every CPU: all CPUs count as equal (capacity 1).
    Uniform,
}

/// One online logical CPU and its relative capacity (cpu_capacity, else cpuinfo_max_freq in
/// kHz, else 1).
///
/// Capacities are only comparable within one [`Topology`], whose `source` says which unit
/// they are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// The kernel's logical CPU number, as used by `sched_setaffinity` and `--cpus`.
    pub id: usize,
    /// Relative speed in the unit of the topology's [`CapacitySource`]; larger is faster.
    pub capacity: u64,
}

/// The online CPUs of a machine.
///
/// Built by [`Topology::read`] (any root, for tests) or [`Topology::detect`] (this machine),
/// and used to choose the default worker CPUs ([`Topology::big_cores`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The online CPUs, ascending by id, each id once.
    pub cpus: Vec<Cpu>,
    /// Where every CPU's `capacity` came from (one source for all, so they compare).
    pub source: CapacitySource,
}

impl Topology {
    /// Read `<root>/sys/devices/system/cpu`: the online list (`online`, else the cpuN dirs),
    /// and per CPU `cpuN/cpu_capacity`, else `cpuN/cpufreq/cpuinfo_max_freq`.
    ///
    /// The source is `CpuCapacity` only if every online CPU has a usable `cpu_capacity`,
    /// `MaxFreq` if every one has a usable max frequency, else `Uniform` (all capacity 1), so
    /// capacities never mix units. Malformed values (garbage, empty, zero, out of range, over
    /// 4 KiB) count as missing; a malformed `online` file falls back to the `cpuN` dirs.
    /// Errors only if no online CPU can be found at all.
    pub fn read(root: &Path) -> Result<Topology, String> {
        let dir = root.join("sys/devices/system/cpu");
        let ids = match read_small(&dir.join("online")).and_then(|s| parse_cpu_list(&s).ok()) {
            Some(ids) => ids,
            None => list_cpu_dirs(&dir)?,
        };
        if ids.is_empty() {
            return Err(format!("no online CPU found under {}", dir.display()));
        }
        let capacity: Vec<Option<u64>> = ids
            .iter()
            .map(|id| read_u64(&dir.join(format!("cpu{id}/cpu_capacity"))))
            .collect();
        let max_freq: Vec<Option<u64>> = ids
            .iter()
            .map(|id| read_u64(&dir.join(format!("cpu{id}/cpufreq/cpuinfo_max_freq"))))
            .collect();
        let (source, values) = if capacity.iter().all(Option::is_some) {
            (CapacitySource::CpuCapacity, capacity)
        } else if max_freq.iter().all(Option::is_some) {
            (CapacitySource::MaxFreq, max_freq)
        } else {
            (CapacitySource::Uniform, vec![Some(1); ids.len()])
        };
        let cpus = ids
            .iter()
            .zip(values)
            .map(|(&id, capacity)| Cpu {
                id,
                capacity: capacity.unwrap_or(1),
            })
            .collect();
        Ok(Topology { cpus, source })
    }

    /// This machine's topology, read once and cached (OnceLock) from "/"; when /sys is
    /// unreadable (non-Linux, sandbox), `available_parallelism()` uniform CPUs 0..n.
    ///
    /// Cached because the pool asks on every session build and sysfs does not change in a way
    /// that matters for a process's lifetime (hot-plugged CPUs are a scheduling detail).
    pub fn detect() -> &'static Topology {
        static TOPOLOGY: OnceLock<Topology> = OnceLock::new();
        TOPOLOGY.get_or_init(|| {
            Topology::read(Path::new("/")).unwrap_or_else(|_| {
                let n = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .clamp(1, MAX_CPU_ID + 1);
                Topology {
                    cpus: (0..n).map(|id| Cpu { id, capacity: 1 }).collect(),
                    source: CapacitySource::Uniform,
                }
            })
        })
    }

    /// The big cores: CPUs whose capacity is at least 60 % of the highest (80 % when the
    /// capacities are max frequencies; all CPUs when uniform), in ascending id order.
    ///
    /// These are the default worker CPUs. 60 % of `cpu_capacity` keeps mid cores (e.g. A710
    /// at 870/1024) with the prime core and leaves out the little ones (A510 at 325/1024),
    /// whose share of a parallel step would hold back every other worker. Frequencies
    /// understate the big/little gap, hence the stricter 80 % (an A55 at 1.8 GHz beside an
    /// A76 at 2.4 GHz is little).
    pub fn big_cores(&self) -> Vec<usize> {
        let max = self.cpus.iter().map(|c| c.capacity).max().unwrap_or(0);
        let percent = match self.source {
            CapacitySource::CpuCapacity => BIG_CAPACITY_PERCENT,
            CapacitySource::MaxFreq => BIG_FREQ_PERCENT,
            CapacitySource::Uniform => 0,
        };
        let mut ids: Vec<usize> = self
            .cpus
            .iter()
            .filter(|c| u128::from(c.capacity) * 100 >= u128::from(max) * percent)
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Capacity of cpu `id`, if online (in the unit of `self.source`).
    pub fn capacity(&self, id: usize) -> Option<u64> {
        self.cpus.iter().find(|c| c.id == id).map(|c| c.capacity)
    }

    /// Short description for `inspect`/`bench`, e.g.
    /// "8 CPUs, capacities 4x325 3x870 1x1024 (cpu_capacity), big cores 4-7".
    ///
    /// Capacities are grouped by value, ascending; the online list is shown after the count
    /// when it is not simply 0..n; uniform topologies read "uniform capacity".
    pub fn describe(&self) -> String {
        let n = self.cpus.len();
        let ids: Vec<usize> = self.cpus.iter().map(|c| c.id).collect();
        let mut out = format!("{n} CPU{}", if n == 1 { "" } else { "s" });
        if !ids.iter().copied().eq(0..n) {
            out.push_str(&format!(" ({})", format_cpu_list(&ids)));
        }
        match self.source {
            CapacitySource::Uniform => out.push_str(", uniform capacity"),
            source => {
                let mut groups: BTreeMap<u64, usize> = BTreeMap::new();
                for c in &self.cpus {
                    *groups.entry(c.capacity).or_default() += 1;
                }
                let groups: Vec<String> =
                    groups.iter().map(|(cap, k)| format!("{k}x{cap}")).collect();
                let unit = match source {
                    CapacitySource::MaxFreq => "cpuinfo_max_freq kHz",
                    _ => "cpu_capacity",
                };
                out.push_str(&format!(", capacities {} ({unit})", groups.join(" ")));
            }
        }
        let big = self.big_cores();
        out.push_str(&format!(
            ", big core{} {}",
            if big.len() == 1 { "" } else { "s" },
            format_cpu_list(&big)
        ));
        out
    }
}

/// Read a small sysfs file as text; `None` if it is missing, unreadable, not UTF-8 or longer
/// than [`MAX_FILE_BYTES`].
fn read_small(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Read a positive decimal integer from a sysfs file; `None` if missing, malformed, zero or
/// beyond `u64`.
fn read_u64(path: &Path) -> Option<u64> {
    let text = read_small(path)?;
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|&v| v > 0)
}

/// The ids of the `cpuN` directories under `dir`, ascending, skipping CPUs whose own
/// `cpuN/online` says `0` (offline). Errors only if `dir` cannot be listed.
fn list_cpu_dirs(dir: &Path) -> Result<Vec<usize>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read CPU topology from {}: {e}", dir.display()))?;
    let mut ids = Vec::new();
    for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(id) = digits.parse::<usize>().ok().filter(|&id| id <= MAX_CPU_ID) else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let offline = read_small(&entry.path().join("online")).is_some_and(|s| s.trim() == "0");
        if !offline {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Parse a Linux CPU list ("0-3,5,7-8", whitespace/newline tolerated) into sorted unique
/// ids.
///
/// This is both the sysfs `online` format and the `--cpus` option's, so errors name the bad
/// part in the user's words, e.g. `--cpus "4-x": "x" is not a CPU number`. Rejects empty lists
/// and entries, descending ranges ("5-3") and ids above 4095.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let whole = s.trim();
    let ctx = |msg: String| format!("--cpus {whole:?}: {msg}");
    if whole.is_empty() {
        return Err(ctx("the CPU list is empty".to_string()));
    }
    let mut seen = vec![false; MAX_CPU_ID + 1];
    for part in whole.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(ctx("empty entry (stray comma)".to_string()));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (lo.trim(), hi.trim());
                if lo.is_empty() || hi.is_empty() {
                    return Err(ctx(format!(
                        "{part:?} is not a CPU range (write \"first-last\")"
                    )));
                }
                (
                    parse_cpu_id(lo).map_err(ctx)?,
                    parse_cpu_id(hi).map_err(ctx)?,
                )
            }
            None => {
                let id = parse_cpu_id(part).map_err(ctx)?;
                (id, id)
            }
        };
        if lo > hi {
            return Err(ctx(format!(
                "{part:?} is a descending range (write \"{hi}-{lo}\")"
            )));
        }
        seen[lo..=hi].iter_mut().for_each(|s| *s = true);
    }
    Ok(seen
        .iter()
        .enumerate()
        .filter_map(|(id, &on)| on.then_some(id))
        .collect())
}

/// One CPU number of a CPU list, or what is wrong with it (without the `--cpus` prefix).
fn parse_cpu_id(text: &str) -> Result<usize, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a CPU number"));
    }
    match text.parse::<usize>() {
        Ok(id) if id <= MAX_CPU_ID => Ok(id),
        _ => Err(format!(
            "CPU {text} is above the highest supported CPU {MAX_CPU_ID}"
        )),
    }
}

/// Format ids as a compact list ("0-3,5"), the inverse of [`parse_cpu_list`]: sorted,
/// duplicates dropped, runs of two or more consecutive ids written as ranges (as the kernel
/// does); an empty slice gives "".
pub fn format_cpu_list(ids: &[usize]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    parts.join(",")
}

/// "CPU 4" or "CPUs 4-7", for messages.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn cpus_phrase(ids: &[usize]) -> String {
    let list = format_cpu_list(ids);
    if ids.len() == 1 {
        format!("CPU {list}")
    } else {
        format!("CPUs {list}")
    }
}

/// CPUs this process may run on (sched_getaffinity via the `nix` crate); None where
/// unsupported.
///
/// The big cores of [`Topology::detect`] may include CPUs a cgroup/cpuset or `taskset` has
/// taken away; intersect with this before pinning.
pub fn allowed_cpus() -> Option<Vec<usize>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sched::{sched_getaffinity, CpuSet};
        use nix::unistd::Pid;
        let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let ids: Vec<usize> = (0..CpuSet::count().min(MAX_CPU_ID + 1))
            .filter(|&id| set.is_set(id).unwrap_or(false))
            .collect();
        (!ids.is_empty()).then_some(ids)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// Pin the calling thread to exactly these CPUs (sched_setaffinity(0, ..)), so a worker
/// stays on its big core instead of being migrated to a little one.
///
/// Err explains a refusal (e.g. "sched_setaffinity to CPUs 4-7 refused: EINVAL: ..."), and
/// never panics; the thread's affinity is unchanged on error. On targets without
/// sched_setaffinity (not linux/android) returns Err("pinning is not supported on this OS").
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Err("cannot pin a thread to an empty CPU list".to_string());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::errno::Errno;
        use nix::sched::{sched_setaffinity, CpuSet};
        use nix::unistd::Pid;
        let what = cpus_phrase(cpus);
        let mut set = CpuSet::new();
        for &id in cpus {
            if set.set(id).is_err() {
                return Err(format!(
                    "sched_setaffinity to {what} refused: CPU {id} is beyond the {}-CPU \
                     affinity mask",
                    CpuSet::count()
                ));
            }
        }
        sched_setaffinity(Pid::from_raw(0), &set).map_err(|errno| {
            let hint = match errno {
                Errno::EINVAL => " (none of them is online and allowed for this process)",
                Errno::EPERM => " (not permitted)",
                _ => "",
            };
            format!("sched_setaffinity to {what} refused: {errno}{hint}")
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Err("pinning is not supported on this OS".to_string())
    }
}

/// The calling thread's affinity mask, saved so a temporary pin can be undone (a session
/// pins the thread that calls `run` for the run only). Holds no heap memory.
#[derive(Clone, Copy)]
pub struct SavedAffinity {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    set: nix::sched::CpuSet,
}

impl SavedAffinity {
    /// The calling thread's current mask (`None` where it cannot be read).
    pub fn save() -> Option<SavedAffinity> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::sched::sched_getaffinity;
            use nix::unistd::Pid;
            sched_getaffinity(Pid::from_raw(0))
                .ok()
                .map(|set| SavedAffinity { set })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            None
        }
    }

    /// Put the saved mask back on the calling thread (a failure leaves it as it is).
    pub fn restore(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::sched::sched_setaffinity;
            use nix::unistd::Pid;
            let _ = sched_setaffinity(Pid::from_raw(0), &self.set);
        }
    }
}
