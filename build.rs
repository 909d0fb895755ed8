//! Sets `cfg(no_shared)` when the project's shared models and images (`../shared`, beside
//! the repository) are absent, so the tests that need them are reported as ignored, with
//! the reason, in the test summary (a fresh clone has no `../shared`).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(no_shared)");
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    println!("cargo:rerun-if-changed={}", shared.display());
    if !shared.join("models").is_dir() {
        println!("cargo:rustc-cfg=no_shared");
    }
}
