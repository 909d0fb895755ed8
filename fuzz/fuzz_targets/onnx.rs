//! ONNX bytes → import (tract, under its guard) → convert to a bundle in memory. Run with
//! `--sanitizer none` (tract is large; the guard's `catch_unwind` needs unwinding panics).
#![no_main]

use std::io::Write;
use std::sync::Once;

use ferrolite_quantize::{convert_onnx, ConvertOptions};
use libfuzzer_sys::fuzz_target;

fn limit_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(ferrolite_runtime::limits::MEMORY_ENV, "256M"));
}

fuzz_target!(|data: &[u8]| {
    limit_memory();
    // tract reads ONNX from a path (external data is resolved beside it).
    let path = std::env::temp_dir().join(format!("ferrolite-fuzz-{}.onnx", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    if let Ok(model) = convert_onnx(&path, &ConvertOptions::default()) {
        let _ =
            ferrolite_runtime::bundle::to_bytes(&model.meta, &model.graph, model.weights.bytes());
    }
});
