//! tract's multi-threaded executor for the tools that run tract as a peer (`ferrolite bench
//! --compare tract`, the `compare` bench binary) on as many threads as Ferrolite.

use anyhow::{anyhow, Context, Result};
use ferrolite_runtime::threads::topology::pin_current_thread;
use tract_onnx::prelude::multithread::Executor;

/// A rayon pool of `threads` workers for tract (it uses it when tract-linalg's
/// `multithread-mm` feature is on, which the callers turn on; tract's default is one thread),
/// started from a helper thread confined to `cpus` so that the workers inherit that CPU set
/// and not the affinity of the calling thread (which a Ferrolite session pins to one CPU).
pub fn tract_executor(threads: usize, cpus: &[usize]) -> Result<Executor> {
    let cpus = cpus.to_vec();
    std::thread::Builder::new()
        .name("tract-pool-start".into())
        .spawn(move || {
            if !cpus.is_empty() {
                // A refusal leaves the workers where the OS puts them.
                let _ = pin_current_thread(&cpus);
            }
            Executor::multithread_with_name(threads, "tract")
        })
        .context("cannot start tract's thread pool")?
        .join()
        .map_err(|_| anyhow!("tract could not start a {threads}-thread pool"))
}
