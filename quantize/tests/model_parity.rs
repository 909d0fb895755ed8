//! Whole-model parity on the shared real ONNX models: Ferrolite vs tract on the same file,
//! max |diff| / max |ref| ≤ 1e-4, with every kernel tier this CPU can run. The models live in `../shared/models` beside the repo
//! (not in git); without them these tests print why they skip.

mod common;

use common::{
    ferrolite_model, ferrolite_run_tier, random, relative_error, runnable_tiers, shared_model,
    tract_run,
};

fn parity(name: &str) {
    let Some(path) = shared_model(name) else {
        return;
    };
    let input = vec![(vec![1, 3, 224, 224], random(3 * 224 * 224, 42))];
    let reference = tract_run(&path, &input);
    let model = std::sync::Arc::new(ferrolite_model(&path, None));
    for isa in runnable_tiers() {
        let ours = ferrolite_run_tier(model.clone(), isa, &input);
        let err = relative_error(&ours[0], &reference[0]);
        eprintln!("{name} [{}]: relative error {err:e}", isa.name());
        assert!(
            err <= 1e-4,
            "{name} [{}]: relative error {err:e}",
            isa.name()
        );
    }
}

#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn efficientnet_lite0() {
    parity("efficientnet_lite0.onnx");
}

#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn mobilenet_v2() {
    parity("mobilenet_v2.onnx");
}

#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn mobilenet_v3_small() {
    parity("mobilenet_v3_small.onnx");
}

#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn shufflenet_v2() {
    parity("shufflenet_v2_x1_0.onnx");
}
