//! Image bytes → the CLI's decoder (libjpeg, then the `image` crate; `src/cli/decode.rs`
//! compiled as the CLI compiles it) → the bundle preprocessing to a 224x224 input.
#![no_main]

use std::sync::Once;

use ferrolite_runtime::meta::Preprocess;
use ferrolite_runtime::preprocess::{prepare_into, RgbImage};
use libfuzzer_sys::fuzz_target;

#[path = "../../src/cli/decode.rs"]
#[allow(dead_code)]
mod decode;

fn limit_pixels() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("FERROLITE_MAX_IMAGE_PIXELS", "4000000"));
}

fuzz_target!(|data: &[u8]| {
    limit_pixels();
    let path = std::env::temp_dir().join(format!("ferrolite-fuzz-{}.img", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(rgb) = decode::decode(&path) else {
        return;
    };
    let view = RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.as_raw(),
    };
    let pre = Preprocess {
        resize_shorter: Some(256),
        crop: Some([224, 224]),
        ..Preprocess::default()
    };
    let shape = [1, 3, 224, 224];
    let mut input = vec![0f32; 3 * 224 * 224];
    let _ = prepare_into(&view, &pre, &shape, &mut input);
});
