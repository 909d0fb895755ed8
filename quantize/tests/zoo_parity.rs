//! Every zoo architecture, emitted as ONNX with seeded weights, converts and matches tract
//! on the same file within 1e-4 relative error.

mod common;

use common::{check_parity, random, scratch};
use ferrolite_models::zoo;

const TOL: f32 = 1e-4;

fn parity(name: &str) {
    let m = zoo::find(name).unwrap();
    let built = m.onnx(7);
    let path = scratch("zoo").join(format!("{name}.onnx"));
    std::fs::write(&path, built.onnx.as_ref().unwrap()).unwrap();
    let shape = m.input_shape();
    let input = random(shape.iter().product(), 11);
    check_parity(&path, &[(shape, input)], TOL);
    std::fs::remove_file(&path).unwrap();
}

/// One test per architecture, and a check that the list covers the whole zoo.
macro_rules! zoo_parity {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                parity(stringify!($name));
            }
        )*

        #[test]
        fn every_architecture_has_a_parity_test() {
            let tested = [$(stringify!($name)),*];
            for a in zoo::architectures() {
                assert!(tested.contains(&a.name), "{} has no parity test", a.name);
            }
        }
    };
}

zoo_parity!(
    alexnet,
    vgg16,
    googlenet,
    densenet121,
    squeezenet1_1,
    resnet18,
    resnet50,
    resnext50_32x4d,
    wide_resnet50_2,
    se_resnet50,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3_small,
    mobilenet_v3_large,
    shufflenet_v1_g3,
    shufflenet_v1_g8,
    shufflenet_v2_x0_5,
    shufflenet_v2_x1_0,
    shufflenet_v2_x1_5,
    shufflenet_v2_x2_0,
    mnasnet1_0,
    efficientnet_b0,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    efficientnet_lite3,
    efficientnet_lite4,
    vit_tiny_16,
    mixer_s16,
);
