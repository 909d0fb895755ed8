//! ONNX bytes → import (tract, under its guard) → convert to a bundle in memory. Run with
//! `--sanitizer none` (tract is large; the guard's `catch_unwind` needs unwinding panics).
#![no_main]

mod common;

use std::io::Write;

use ferrolite_quantize::{convert_onnx, ConvertOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::limit_memory("256M");
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
