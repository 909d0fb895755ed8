//! One count everywhere ([`Counts`]): the zoo's own counts (`zoo list`), the counts a
//! conversion records (`summary`, `inspect`) and torchvision's parameter counts agree
//! exactly; the papers' figures within 1 %; the zoo's MACs equal the real pretrained
//! models'.

mod common;

use common::shared_model;
use ferrolite_models::zoo;
use ferrolite_quantize::{convert_onnx, source_counts, ConvertOptions};
use ferrolite_runtime::summary::{model_counts, summarize, Counts, CountsSource};
use tract_onnx::prelude::Framework;

/// (zoo name, published params, published MACs, source).
///
/// EfficientNet-Lite0 is checked against 385 M MACs, not the 407 M "MAdds" of TensorFlow's
/// EfficientNet-Lite README: Lite0 is EfficientNet-B0 without squeeze-excite (same stem, head
/// and stage table), and B0 itself is 0.39 B FLOPs in the paper (Tan & Le 2019, Table 2), so
/// 407 M counts more than multiply-accumulates. The real pretrained Lite0 in `../shared`
/// sums to the zoo's count exactly (`real_models_have_the_zoo_mac_counts`).
const PUBLISHED: [(&str, f64, f64, &str); 9] = [
    (
        "mobilenet_v2",
        3.50e6,
        300e6,
        "Sandler et al. 2018, arXiv:1801.04381, Table 4 (300 M MAdds); params: torchvision \
         mobilenet_v2 model card (3,504,872)",
    ),
    (
        "resnet50",
        25.6e6,
        4.1e9,
        "torchvision resnet50 model card (25,557,032 params, 4.09 GFLOPS = MACs); He et al. \
         2015 Table 1 (3.8e9 FLOPs for the v1 stride placement)",
    ),
    (
        "shufflenet_v2_x1_0",
        2.28e6,
        146e6,
        "Ma et al. 2018, arXiv:1807.11164, Table 5 (146 MFLOPs = MACs, 2.3 M params); \
         torchvision shufflenet_v2_x1_0 (2,278,604)",
    ),
    (
        "mobilenet_v3_large",
        5.48e6,
        217e6,
        "Howard et al. 2019, arXiv:1905.02244, Table 3 (217 M MAdds, 5.4 M params); \
         torchvision mobilenet_v3_large (5,483,032)",
    ),
    (
        "mobilenet_v3_small",
        2.54e6,
        56e6,
        "Howard et al. 2019, Table 4 (56 M MAdds, 2.5 M); torchvision (2,542,856)",
    ),
    (
        "mobilenet_v1",
        4.2e6,
        569e6,
        "Howard et al. 2017, arXiv:1704.04861, Table 8 (569 M Mult-Adds, 4.2 M params)",
    ),
    (
        "resnet18",
        11.69e6,
        1.81e9,
        "torchvision resnet18 model card (11,689,512 params, 1.81 GFLOPS = MACs)",
    ),
    (
        "vgg16",
        138.36e6,
        15.47e9,
        "torchvision vgg16 model card (138,357,544 params, 15.47 GFLOPS = MACs)",
    ),
    (
        "efficientnet_lite0",
        4.65e6,
        385e6,
        "TensorFlow EfficientNet-Lite README (4.7 M params); PyTorch port \
         d-li14/efficientnet-lite.pytorch README (4.652 M params, 0.385 GFLOPs = MACs)",
    ),
];

/// torchvision's parameter counts (`sum(p.numel() for p in model.parameters())`, the
/// `num_params` of its model cards) for every zoo architecture torchvision has.
/// `googlenet` is left out: torchvision's Inception modules use a 3×3 convolution where the
/// paper (and the zoo) has 5×5, 380,928 parameters fewer (6,624,904).
const TORCHVISION_PARAMS: [(&str, u64); 17] = [
    ("alexnet", 61_100_840),
    ("vgg16", 138_357_544),
    ("densenet121", 7_978_856),
    ("squeezenet1_1", 1_235_496),
    ("resnet18", 11_689_512),
    ("resnet50", 25_557_032),
    ("resnext50_32x4d", 25_028_904),
    ("wide_resnet50_2", 68_883_240),
    ("mobilenet_v2", 3_504_872),
    ("mobilenet_v3_small", 2_542_856),
    ("mobilenet_v3_large", 5_483_032),
    ("shufflenet_v2_x0_5", 1_366_792),
    ("shufflenet_v2_x1_0", 2_278_604),
    ("shufflenet_v2_x1_5", 3_503_624),
    ("shufflenet_v2_x2_0", 7_393_996),
    ("mnasnet1_0", 4_383_312),
    ("efficientnet_b0", 5_288_548),
];

/// The counts a conversion of zoo model `name` records (what `summary` and `inspect` print).
fn counts_of(name: &str) -> Counts {
    let m = zoo::find(name).unwrap();
    let built = m.onnx(zoo::SEED);
    let path = std::env::temp_dir().join(format!(
        "ferrolite-published-{}-{name}.onnx",
        std::process::id()
    ));
    std::fs::write(&path, built.onnx.unwrap()).unwrap();
    let model =
        convert_onnx(&path, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    std::fs::remove_file(&path).unwrap();
    let (counts, source) = model_counts(&model.meta, &model.graph);
    assert_eq!(
        source,
        CountsSource::Source,
        "{name}: the conversion records its counts"
    );
    counts
}

#[test]
fn summary_matches_published_figures() {
    let mut failures = Vec::new();
    for (name, params, macs, source) in PUBLISHED {
        let s = counts_of(name);
        let dp = (s.params as f64 - params).abs() / params;
        let dm = (s.macs as f64 - macs).abs() / macs;
        println!(
            "{name:20} params {:>11} ({:+.2} %)  MACs {:>12} ({:+.2} %)",
            s.params,
            100.0 * (s.params as f64 - params) / params,
            s.macs,
            100.0 * (s.macs as f64 - macs) / macs
        );
        if dp > 0.01 || dm > 0.01 {
            failures.push(format!(
                "{name}: params {} vs {params}, MACs {} vs {macs} ({source})",
                s.params, s.macs
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "off by more than 1 %:\n{}",
        failures.join("\n")
    );
}

/// `zoo list`'s count and the count of the exported ONNX file (what a conversion records)
/// are torchvision's, to the parameter.
#[test]
fn zoo_and_file_counts_are_torchvision_s() {
    for (name, want) in TORCHVISION_PARAMS {
        let m = zoo::find(name).unwrap();
        assert_eq!(m.count().params, want, "{name}: zoo list");
        let onnx = m.onnx(zoo::SEED).onnx.unwrap();
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &onnx[..])
            .unwrap();
        let counted = source_counts::parameters(proto.graph.as_ref().unwrap());
        assert_eq!(counted, want, "{name}: the exported ONNX file");
    }
}

/// The zoo's own counts (`zoo list`) and the counts a conversion records agree exactly,
/// parameters and MACs, though tract folds some of these models' BatchNorms on import
/// (ResNet's shortcuts, MobileNet's stem) and the fusions fold the rest.
#[test]
fn zoo_counts_agree_with_the_summary() {
    for name in [
        "mobilenet_v3_small",
        "shufflenet_v2_x0_5",
        "squeezenet1_1",
        "resnet18",
        "mobilenet_v2",
    ] {
        let counted = zoo::find(name).unwrap().count();
        let s = counts_of(name);
        assert_eq!(s.macs, counted.macs, "{name} MACs");
        assert_eq!(s.params, counted.params, "{name} parameters");
    }
}

/// The real pretrained models in `../shared` (exported from other frameworks, BatchNorm
/// already folded) have exactly the multiply-accumulates the zoo counts for the same
/// architecture: an independent check of the builders and of `summary`.
#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn real_models_have_the_zoo_mac_counts() {
    for name in [
        "efficientnet_lite0",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "shufflenet_v2_x1_0",
    ] {
        let Some(path) = shared_model(&format!("{name}.onnx")) else {
            continue;
        };
        let model = convert_onnx(&path, &ConvertOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let real = summarize(&model.graph);
        let counted = zoo::find(name).unwrap().count();
        assert_eq!(real.macs, counted.macs, "{name}: real model vs zoo MACs");
    }
}
