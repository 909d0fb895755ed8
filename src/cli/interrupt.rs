//! Ctrl-C during `eval` and `bench`: the first press stops the work at the next image or
//! timed run, the command prints what it measured so far and says it was interrupted, and
//! the process exits with status 130; a second press ends it at once.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Catch Ctrl-C from now on (once per process; later calls do nothing). Where no handler
/// can be installed, Ctrl-C keeps its default effect.
pub fn watch() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
}

/// Whether Ctrl-C was pressed since [`watch`].
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The error a command returns after printing partial figures; `main` exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C): {0}")]
pub struct Interrupted(pub String);
