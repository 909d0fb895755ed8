//! Thread hand-off cost: `cargo bench -p ferrolite-bench --bench threads`.
//!
//! Each iteration is one job of two parts that each spin for 5 µs of work. On one thread it
//! takes 10 µs; on two threads 5 µs plus the hand-off (publish, wake-up of a spinning
//! worker, claiming, completion). The difference between `two_threads` and 5 µs is the
//! per-dispatch overhead quoted in docs/threads.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolite_runtime::threads::Pool;

const WORK: Duration = Duration::from_micros(5);

fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Two claimed parts of `WORK` each.
fn job(pool: &Pool) {
    let claimed = AtomicU64::new(0);
    pool.run(&|_| {
        for p in 0..2 {
            if claimed.fetch_or(1 << p, Ordering::AcqRel) & (1 << p) == 0 {
                busy(WORK);
            }
        }
    })
    .expect("job");
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_dispatch");
    let one = Pool::new(1, None);
    g.bench_function("one_thread_two_parts_of_5us", |b| b.iter(|| job(&one)));
    let two = Pool::new(2, None);
    g.bench_function("two_threads_two_parts_of_5us", |b| b.iter(|| job(&two)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = dispatch
}
criterion_main!(benches);
