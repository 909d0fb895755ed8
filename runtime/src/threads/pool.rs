//! The worker pool: threads made once, woken for each parallel step, the calling thread
//! working too. Between jobs a worker spins for a short window (steps of one run follow each
//! other within microseconds), then parks on a condition variable, so an idle session uses
//! no CPU.
//!
//! A job is one closure called with a thread's index: always on the caller (index 0), and on
//! each worker that joins it in time. The caller publishes the job and opens it, bumps a
//! generation counter, runs its own call, then closes the job and waits only for the workers
//! that entered it: a worker that wakes late (parked, preempted, on a slow core) skips the
//! job instead of holding the caller up. Jobs therefore share their work by claiming it
//! (an atomic counter over parts) rather than by thread index, so whoever runs does it all.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before it parks.
const SPIN: Duration = Duration::from_micros(200);
/// After this much spinning, waiters also yield their time slice on every check, so an
/// oversubscribed machine (more threads than cores) still makes progress.
const YIELD_AFTER: Duration = Duration::from_micros(20);

/// A job: called with the index of each thread that runs it.
type Job = dyn Fn(usize) + Sync;

/// The bit of `Shared::inside` that marks the current job closed to new workers.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// State shared between the owner and the workers.
struct Shared {
    /// Generation of the current job; a change means "run the job".
    epoch: AtomicU64,
    /// Generation of wake-ups (a wake without a job starts the spin window early).
    wakes: AtomicU64,
    /// The current job, valid while the job is open or a worker is inside it.
    job: UnsafeCell<Option<*const Job>>,
    /// The epoch the current job was published for.
    tag: AtomicU64,
    /// Workers inside the current job, plus [`CLOSED`] once the caller is done with it.
    inside: AtomicUsize,
    /// Workers parked (or about to park) on `cv`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    stop: AtomicBool,
    /// The first panic message of the current job, if a worker panicked.
    panic: Mutex<Option<String>>,
}

// SAFETY: `job` is written only by the dispatching thread while the job is closed and no
// worker is inside it, and read only by a worker that entered the open job (see `worker`);
// the pointee is `Sync`. Every other field is a sync primitive.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A pool of worker threads for one session (or several that share it).
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises jobs: a session that finds a shared pool busy runs its job alone.
    dispatch: Mutex<()>,
    /// The CPU each thread is pinned to, caller first (empty when unpinned).
    cpus: Vec<usize>,
    note: Option<String>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .field("cpus", &self.cpus)
            .finish()
    }
}

impl Pool {
    /// A pool of `threads` threads in all (the caller plus `threads - 1` workers). With
    /// `pin`, worker `i` pins itself to `pin[i]` (entry 0 is the caller's CPU, which the pool
    /// leaves to its owner); a refusal is recorded in [`Pool::note`] and the workers run
    /// unpinned.
    pub fn new(threads: usize, pin: Option<&[usize]>) -> Pool {
        Pool::start(threads, pin, &[])
    }

    /// The pool of a [`super::Placement`]: its threads, each worker pinned to its own CPU
    /// when the placement pins, else allowed on the placement's whole CPU set (so workers
    /// do not inherit the creating thread's narrower affinity).
    pub fn placed(p: &super::Placement) -> Pool {
        let pin = (!p.pin.is_empty()).then_some(p.pin.as_slice());
        Pool::start(p.threads, pin, &p.cpus)
    }

    fn start(threads: usize, pin: Option<&[usize]>, set: &[usize]) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            tag: AtomicU64::new(0),
            inside: AtomicUsize::new(CLOSED),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        let pin = pin.filter(|p| p.len() >= threads);
        // Each worker reports whether it could pin itself: (reports so far, first refusal).
        let reports = Arc::new((Mutex::new((0usize, None::<String>)), Condvar::new()));
        let mut workers = Vec::with_capacity(threads - 1);
        let mut note = None;
        for t in 1..threads {
            let sh = Arc::clone(&shared);
            let cpus: Option<Vec<usize>> = match pin {
                Some(p) => Some(vec![p[t]]),
                None if !set.is_empty() => Some(set.to_vec()),
                None => None,
            };
            let rep = Arc::clone(&reports);
            let spawned = std::thread::Builder::new()
                .name(format!("ferrolite-{t}"))
                .spawn(move || {
                    let pinned = match &cpus {
                        Some(c) => super::topology::pin_current_thread(c),
                        None => Ok(()),
                    };
                    let (lock, cv) = &*rep;
                    let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
                    r.0 += 1;
                    if let Err(e) = pinned {
                        r.1.get_or_insert(e);
                    }
                    drop(r);
                    cv.notify_all();
                    drop(rep);
                    worker(&sh, t);
                });
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    note = Some(format!("could not start worker thread {t}: {e}"));
                    break;
                }
            }
        }
        let (lock, cv) = &*reports;
        let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
        while r.0 < workers.len() {
            r = cv.wait(r).unwrap_or_else(|e| e.into_inner());
        }
        let refused = r.1.take();
        drop(r);
        if let Some(e) = refused {
            note = note.or(Some(format!("{e}; running unpinned")));
        }
        let cpus = match (pin, &note) {
            (Some(p), None) => p[..workers.len() + 1].to_vec(),
            _ => Vec::new(),
        };
        Pool {
            shared,
            workers,
            dispatch: Mutex::new(()),
            cpus,
            note,
        }
    }

    /// Threads a job runs on, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// The CPU of each thread, caller first, when the workers are pinned (else empty).
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Why the pool runs with fewer threads or unpinned, if it does.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Start the workers' spin window now, ahead of the first job of a run, so that waking
    /// parked threads overlaps the caller's own work.
    pub fn wake(&self) {
        if self.workers.is_empty() {
            return;
        }
        self.shared.wakes.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
    }

    /// Call `f(0)` on the calling thread and `f(t)` on each worker `t` that joins in time
    /// (at most once per index), concurrently; returns when every call has returned. Work
    /// must be shared by claiming, not by index: a worker that is late runs nothing. A panic
    /// in any call becomes `Err` with its message. When another session is using a shared
    /// pool at the moment, only `f(0)` runs, on the calling thread, instead of waiting.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        let guard = match self.dispatch.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if self.workers.is_empty() || guard.is_none() {
            return catch_unwind(AssertUnwindSafe(|| f(0))).map_err(panic_text);
        }
        let sh = &*self.shared;
        let job: *const (dyn Fn(usize) + Sync + '_) = f;
        // SAFETY: only the lifetime of `f` is erased (same layout). The pointer is
        // dereferenced only by workers inside the open job, and this function does not return
        // before the job is closed and no worker is inside, so `f` outlives every use.
        let job: *const Job =
            unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(job) };
        let epoch = sh.epoch.load(Ordering::SeqCst) + 1;
        // SAFETY: the previous job is closed and drained (no worker reads `job`), and the
        // dispatch lock excludes other callers.
        unsafe { *sh.job.get() = Some(job) };
        sh.tag.store(epoch, Ordering::SeqCst);
        sh.inside.fetch_and(!CLOSED, Ordering::SeqCst);
        sh.epoch.store(epoch, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.cv.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0))).map_err(panic_text);
        sh.inside.fetch_or(CLOSED, Ordering::SeqCst);
        wait_until(|| sh.inside.load(Ordering::Acquire) & !CLOSED == 0);
        // SAFETY: the job is closed and no worker is inside it.
        unsafe { *sh.job.get() = None };
        let theirs = sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(guard);
        mine?;
        theirs.map_or(Ok(()), Err)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The message of a caught panic.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("a kernel thread panicked: {msg}")
}

/// Spin (then spin and yield) until `done()`.
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !done() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && start.elapsed() > YIELD_AFTER {
            std::thread::yield_now();
        }
    }
}

/// A worker: wait for a new epoch (spinning, then parked), run the job, report back.
fn worker(sh: &Shared, t: usize) {
    // No job can be dispatched before `Pool::new` returns, so both counters start at 0.
    let (mut seen, mut woken) = (0u64, 0u64);
    loop {
        let mut start = Instant::now();
        let mut spins = 0u32;
        loop {
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            let e = sh.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                let waited = start.elapsed();
                if waited >= SPIN {
                    park(sh, seen, &mut woken);
                    start = Instant::now();
                } else if waited > YIELD_AFTER {
                    std::thread::yield_now();
                }
            }
        }
        // Enter the job unless it is closed already or is not the one this epoch announced
        // (a newer job published while this worker was late).
        let prev = sh.inside.fetch_add(1, Ordering::SeqCst);
        if prev & CLOSED == 0 && sh.tag.load(Ordering::SeqCst) == seen {
            // SAFETY: the job was stored before it was opened, and the dispatcher keeps it
            // alive until no worker is inside; this worker is inside until the decrement.
            if let Some(job) = unsafe { *sh.job.get() } {
                // SAFETY: as above, the pointee is alive for the duration of this call.
                let f = unsafe { &*job };
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(t))) {
                    let mut slot = sh.panic.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(panic_text(p));
                }
            }
        }
        sh.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Park until a new epoch, a wake-up or stop.
fn park(sh: &Shared, seen: u64, woken: &mut u64) {
    let mut g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
    sh.sleepers.fetch_add(1, Ordering::SeqCst);
    while sh.epoch.load(Ordering::SeqCst) == seen
        && sh.wakes.load(Ordering::SeqCst) == *woken
        && !sh.stop.load(Ordering::SeqCst)
    {
        g = sh.cv.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    *woken = sh.wakes.load(Ordering::SeqCst);
    sh.sleepers.fetch_sub(1, Ordering::SeqCst);
}
