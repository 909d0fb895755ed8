//! Enables the 32-bit ARM NEON kernels where the compiler allows their intrinsics.
//!
//! `core::arch::arm`'s NEON intrinsics are still unstable, so the armv7 NEON kernels are
//! compiled only for a NEON target (`-C target-feature=+neon`, as the `rpi3` and
//! `android-armv7` profiles set) on a compiler that accepts unstable features (nightly, or
//! `RUSTC_BOOTSTRAP=1`, which `cargo target-build` sets for armv7). Otherwise the build says
//! so and armv7 runs the scalar kernels. aarch64 NEON needs none of this.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferrolite_arm_neon)");
    println!("cargo::rerun-if-env-changed=RUSTC_BOOTSTRAP");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if arch != "arm" || !features.split(',').any(|f| f == "neon") {
        return;
    }
    if unstable_features_allowed() {
        println!("cargo::rustc-cfg=ferrolite_arm_neon");
    } else {
        println!(
            "cargo::warning=armv7 NEON kernels need the unstable core::arch::arm intrinsics \
             (a nightly compiler or RUSTC_BOOTSTRAP=1, which `cargo target-build` sets); \
             this build runs the scalar kernels"
        );
    }
}

/// Whether the compiler building this crate accepts `#![feature(...)]`.
fn unstable_features_allowed() -> bool {
    if env::var("RUSTC_BOOTSTRAP").is_ok_and(|v| v != "0" && !v.is_empty()) {
        return true;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .arg("-V")
        .output()
        .map(|o| {
            let v = String::from_utf8_lossy(&o.stdout);
            v.contains("-nightly") || v.contains("-dev")
        })
        .unwrap_or(false)
}
