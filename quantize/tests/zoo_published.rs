//! `ferrolite summary` figures (the runtime's summary of a zoo model converted without
//! fusions) against published parameter and MAC counts, within 1 %; the zoo's own counts
//! against the summary's; and the zoo's MACs against the real pretrained models'.

mod common;

use common::shared_model;
use ferrolite_models::zoo;
use ferrolite_quantize::{convert_onnx, ConvertOptions};
use ferrolite_runtime::summary::{summarize, Summary};

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

fn summary_of(name: &str) -> Summary {
    let m = zoo::find(name).unwrap();
    let built = m.onnx(zoo::SEED);
    let path = std::env::temp_dir().join(format!(
        "ferrolite-published-{}-{name}.onnx",
        std::process::id()
    ));
    std::fs::write(&path, built.onnx.unwrap()).unwrap();
    let opts = ConvertOptions {
        unfused: true,
        ..Default::default()
    };
    let model = convert_onnx(&path, &opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    std::fs::remove_file(&path).unwrap();
    summarize(&model.graph)
}

#[test]
fn summary_matches_published_figures() {
    let mut failures = Vec::new();
    for (name, params, macs, source) in PUBLISHED {
        let s = summary_of(name);
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

/// The zoo's own counts (`zoo list`) and the summary of the converted model agree: MACs
/// exactly; parameters within 0.3 %, because tract's import already folds some BatchNorm
/// scales into the convolution before them (e.g. ResNet's shortcut BatchNorms), leaving C
/// instead of 2C values.
#[test]
fn zoo_counts_agree_with_the_summary() {
    for name in [
        "mobilenet_v3_small",
        "shufflenet_v2_x0_5",
        "squeezenet1_1",
        "resnet18",
    ] {
        let counted = zoo::find(name).unwrap().count();
        let s = summary_of(name);
        assert_eq!(s.macs, counted.macs, "{name} MACs");
        let dp = (s.params as f64 - counted.params as f64).abs() / counted.params as f64;
        assert!(
            dp <= 0.003,
            "{name}: {} vs {} params",
            s.params,
            counted.params
        );
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
