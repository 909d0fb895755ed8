//! tract under `catch_unwind`. tract panics on some malformed models (`todo!()`s, index
//! errors, overflowing shape arithmetic); a panic inside it must reach the user as an error
//! naming the model, not as exit code 101 and a Rust backtrace hint.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs guarded tract code: its panics are reported as errors,
    /// so the panic hook stays quiet for them.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Install, once per process, a panic hook that is silent for guarded code and hands every
/// other panic to the hook that was there before.
fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Run `f` (code that calls into tract), turning a panic into an error that quotes it.
pub fn guarded<T>(f: impl FnOnce() -> T) -> anyhow::Result<T> {
    install_quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        anyhow::anyhow!(
            "the ONNX reader (tract) failed on this model: {msg}; the model is malformed or \
             uses a form tract does not handle"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_values_pass_through() {
        assert_eq!(guarded(|| 7).unwrap(), 7);
        let e = guarded(|| -> i32 { panic!("index out of bounds") }).unwrap_err();
        assert!(e.to_string().contains("index out of bounds"), "{e}");
        assert!(!GUARDED.with(Cell::get));
    }
}
