//! Image bytes → the runtime's decoder as the CLI builds it (libjpeg, then the `image`
//! crate; `ferrolite_runtime::image`) → the bundle preprocessing to a 224x224 input.
#![no_main]

use std::sync::Once;

use ferrolite_runtime::meta::Preprocess;
use ferrolite_runtime::image::decode_bytes;
use ferrolite_runtime::preprocess::prepare_into;
use libfuzzer_sys::fuzz_target;

fn limit_pixels() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var("FERROLITE_MAX_IMAGE_PIXELS", "4000000"));
}

fuzz_target!(|data: &[u8]| {
    limit_pixels();
    let Ok(image) = decode_bytes(data, "fuzz input") else {
        return;
    };
    let pre = Preprocess {
        resize_shorter: Some(256),
        crop: Some([224, 224]),
        ..Preprocess::default()
    };
    let shape = [1, 3, 224, 224];
    let mut input = vec![0f32; 3 * 224 * 224];
    let _ = prepare_into(&image.view(), &pre, &shape, &mut input);
});
