//! The worker pool: every thread index runs once per job, the caller included; panics come
//! back as errors; a busy shared pool runs the job on the caller; oversubscribed pools
//! (more threads than cores) finish; idle workers park and use no CPU.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolite_runtime::threads::Pool;

#[test]
fn index_zero_runs_once_and_workers_at_most_once_per_job() {
    for threads in [1, 2, 3, 5] {
        let pool = Pool::new(threads, None);
        assert_eq!(pool.threads(), threads);
        let mut joined = 0;
        for _ in 0..500 {
            let seen: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|t| {
                seen[t].fetch_add(1, Ordering::Relaxed);
                // Give the workers time to join.
                std::thread::sleep(Duration::from_micros(20));
            })
            .expect("job");
            let n: Vec<usize> = seen.iter().map(|s| s.load(Ordering::Relaxed)).collect();
            assert_eq!(n[0], 1);
            assert!(n.iter().all(|&c| c <= 1), "{n:?}");
            joined += n[1..].iter().sum::<usize>();
        }
        // Workers spin between jobs and join most of them on an idle machine; on a loaded
        // one (parallel tests, a build) they may miss many, so only ask that they join.
        assert!(
            threads == 1 || joined > 0,
            "no worker joined any of 500 jobs"
        );
    }
}

#[test]
fn claimed_work_is_done_exactly_once_whoever_joins() {
    let pool = Pool::new(3, None);
    for _ in 0..200 {
        let next = AtomicUsize::new(0);
        let done: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        pool.run(&|_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= done.len() {
                return;
            }
            done[i].fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert!(done.iter().all(|d| d.load(Ordering::Relaxed) == 1));
    }
}

#[test]
fn index_zero_runs_on_the_calling_thread() {
    let pool = Pool::new(3, None);
    let me = std::thread::current().id();
    let ids = Mutex::new(vec![None; 3]);
    pool.run(&|t| {
        ids.lock().unwrap()[t] = Some(std::thread::current().id());
        // Long enough for both workers to join.
        std::thread::sleep(Duration::from_millis(50));
    })
    .unwrap();
    let ids = ids.into_inner().unwrap();
    assert_eq!(ids[0], Some(me));
    assert!(ids[1..].iter().all(|i| i.is_some() && *i != Some(me)));
    assert_ne!(ids[1], ids[2]);
}

#[test]
fn a_panic_in_a_worker_is_an_error_and_the_pool_goes_on() {
    let pool = Pool::new(2, None);
    let e = pool
        .run(&|t| {
            if t == 1 {
                panic!("boom in worker");
            }
            std::thread::sleep(Duration::from_millis(50));
        })
        .unwrap_err();
    assert!(e.contains("boom in worker"), "{e}");
    let e = pool
        .run(&|t| assert!(t != 0, "boom in caller"))
        .unwrap_err();
    assert!(e.contains("boom in caller"), "{e}");
    let n = AtomicUsize::new(0);
    pool.run(&|_| {
        n.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    })
    .unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 2);
}

#[test]
fn oversubscribed_pools_finish_every_job() {
    // Eight threads on however few cores this machine has, two pools at once.
    let pools: Vec<Arc<Pool>> = (0..2).map(|_| Arc::new(Pool::new(8, None))).collect();
    let total = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = pools
        .iter()
        .map(|p| {
            let (p, total) = (Arc::clone(p), Arc::clone(&total));
            std::thread::spawn(move || {
                for _ in 0..300 {
                    p.run(&|_| {
                        total.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Index 0 always runs; workers run when they join in time.
    let t = total.load(Ordering::Relaxed);
    assert!((2 * 300..=2 * 300 * 8).contains(&t), "{t}");
}

#[test]
fn a_busy_shared_pool_runs_the_job_on_the_caller() {
    let pool = Arc::new(Pool::new(2, None));
    let inner = AtomicUsize::new(0);
    let p2 = Arc::clone(&pool);
    // While the outer job holds the pool, a nested job from its thread 0 cannot wait for
    // the workers: it runs index 0 on the calling thread.
    pool.run(&|t| {
        if t == 0 {
            let me = std::thread::current().id();
            p2.run(&|_| {
                assert_eq!(std::thread::current().id(), me);
                inner.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
    })
    .unwrap();
    assert_eq!(inner.load(Ordering::Relaxed), 1);
}

/// The `/proc/self/task/<tid>` directory of the calling thread.
#[cfg(target_os = "linux")]
fn own_task() -> std::path::PathBuf {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().expect("tid").to_owned();
    std::path::Path::new("/proc/self/task").join(tid)
}

/// CPU time (user + system, in clock ticks) of the given threads.
#[cfg(target_os = "linux")]
fn ticks(tasks: &[std::path::PathBuf]) -> u64 {
    let mut sum = 0;
    for t in tasks {
        let stat = std::fs::read_to_string(t.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        sum += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        sum += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    sum
}

#[cfg(target_os = "linux")]
#[test]
fn idle_workers_park_and_use_no_cpu() {
    let pool = Pool::new(3, None);
    let tasks = Mutex::new(vec![std::path::PathBuf::new(); 3]);
    pool.run(&|t| {
        tasks.lock().unwrap()[t] = own_task();
        // Long enough for both workers to join.
        std::thread::sleep(Duration::from_millis(50));
    })
    .unwrap();
    let workers = tasks.into_inner().unwrap()[1..].to_vec();
    assert!(workers.iter().all(|w| w.exists()), "{workers:?}");
    for _ in 0..1000 {
        pool.run(&|_| std::hint::black_box(())).unwrap();
    }
    // The spin window is a fraction of a millisecond; then the workers park.
    std::thread::sleep(Duration::from_millis(50));
    let before = ticks(&workers);
    std::thread::sleep(Duration::from_millis(600));
    let after = ticks(&workers);
    // Two spinning workers would have used about 120 ticks (at 100 Hz); parked, none.
    assert!(
        after - before <= 1,
        "idle workers used {} ticks",
        after - before
    );
    // And they wake up for the next job.
    let n = AtomicUsize::new(0);
    pool.run(&|_| {
        n.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert!((1..=3).contains(&n.load(Ordering::Relaxed)));
}
