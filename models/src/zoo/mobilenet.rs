//! MobileNet V1, V2 and V3 (Small and Large), in the torchvision layouts.

use super::net::make_divisible;
use super::{pool_classifier, Act, Arch, Config, ConvOpts, Net, Value, MIN_RESOLUTION};

pub(super) const ARCHS: [Arch; 4] = [
    Arch {
        name: "mobilenet_v1",
        paper: "Howard et al. 2017, MobileNets (arXiv:1704.04861)",
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: mobilenet_v1,
    },
    Arch {
        name: "mobilenet_v2",
        paper: "Sandler et al. 2018, MobileNetV2 (arXiv:1801.04381)",
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: mobilenet_v2,
    },
    Arch {
        name: "mobilenet_v3_small",
        paper: "Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244)",
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: mobilenet_v3_small,
    },
    Arch {
        name: "mobilenet_v3_large",
        paper: "Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244)",
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: mobilenet_v3_large,
    },
];

fn stride(s: usize) -> ConvOpts {
    ConvOpts {
        stride: s,
        ..ConvOpts::default()
    }
}

fn depthwise(c: usize, s: usize) -> ConvOpts {
    ConvOpts {
        stride: s,
        groups: c,
        ..ConvOpts::default()
    }
}

fn mobilenet_v1(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let ch = |c: usize| ((c as f32 * cfg.width) as usize).max(8);
    let mut y = net.conv_bn(&x, ch(32), 3, stride(2), Some(Act::Relu));
    let blocks = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    for (out, s) in blocks {
        let c = y.channels();
        y = net.conv_bn(&y, c, 3, depthwise(c, s), Some(Act::Relu));
        y = net.conv_bn(&y, ch(out), 1, ConvOpts::default(), Some(Act::Relu));
    }
    pool_classifier(net, &y, cfg.classes)
}

/// The inverted residual of MobileNet V2 / V3: expand, depthwise, optional squeeze-excite,
/// linear projection, identity shortcut when shapes allow.
struct InvertedResidual {
    kernel: usize,
    expanded: usize,
    out: usize,
    stride: usize,
    act: Act,
    /// Squeeze-excite width, if any.
    se: Option<usize>,
}

fn inverted_residual(net: &mut Net, x: &Value, b: &InvertedResidual) -> Value {
    let mut y = x.clone();
    if b.expanded != x.channels() {
        y = net.conv_bn(&y, b.expanded, 1, ConvOpts::default(), Some(b.act));
    }
    y = net.conv_bn(
        &y,
        b.expanded,
        b.kernel,
        depthwise(b.expanded, b.stride),
        Some(b.act),
    );
    if let Some(sq) = b.se {
        y = net.squeeze_excite(&y, sq, Act::Relu, Act::HardSigmoid);
    }
    y = net.conv_bn(&y, b.out, 1, ConvOpts::default(), None);
    if b.stride == 1 && b.out == x.channels() {
        y = net.add(&y, x);
    }
    y
}

fn mobilenet_v2(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let ch = |c: usize| make_divisible(c as f32 * cfg.width, 8);
    let mut y = net.conv_bn(&x, ch(32), 3, stride(2), Some(Act::Relu6));
    let settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    for (t, c, n, s) in settings {
        for i in 0..n {
            let b = InvertedResidual {
                kernel: 3,
                expanded: y.channels() * t,
                out: ch(c),
                stride: if i == 0 { s } else { 1 },
                act: Act::Relu6,
                se: None,
            };
            y = inverted_residual(net, &y, &b);
        }
    }
    let last = make_divisible(1280.0 * cfg.width.max(1.0), 8);
    y = net.conv_bn(&y, last, 1, ConvOpts::default(), Some(Act::Relu6));
    pool_classifier(net, &y, cfg.classes)
}

/// One MobileNet V3 block row: kernel, expanded, out, squeeze-excite, hard-swish, stride.
type V3Row = (usize, usize, usize, bool, bool, usize);

fn mobilenet_v3(net: &mut Net, x: Value, cfg: &Config, rows: &[V3Row], head: usize) -> Value {
    let ch = |c: usize| make_divisible(c as f32 * cfg.width, 8);
    let mut y = net.conv_bn(&x, ch(16), 3, stride(2), Some(Act::HardSwish));
    for &(kernel, exp, out, se, hs, s) in rows {
        let expanded = ch(exp);
        let b = InvertedResidual {
            kernel,
            expanded,
            out: ch(out),
            stride: s,
            act: if hs { Act::HardSwish } else { Act::Relu },
            se: se.then(|| make_divisible(expanded as f32 / 4.0, 8)),
        };
        y = inverted_residual(net, &y, &b);
    }
    let last_conv = 6 * y.channels();
    y = net.conv_bn(&y, last_conv, 1, ConvOpts::default(), Some(Act::HardSwish));
    let p = net.global_avg_pool(&y);
    let f = net.flatten(&p);
    let h = net.linear(&f, ch(head));
    let h = net.act(&h, Act::HardSwish);
    net.linear(&h, cfg.classes)
}

fn mobilenet_v3_large(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let rows: [V3Row; 15] = [
        (3, 16, 16, false, false, 1),
        (3, 64, 24, false, false, 2),
        (3, 72, 24, false, false, 1),
        (5, 72, 40, true, false, 2),
        (5, 120, 40, true, false, 1),
        (5, 120, 40, true, false, 1),
        (3, 240, 80, false, true, 2),
        (3, 200, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 480, 112, true, true, 1),
        (3, 672, 112, true, true, 1),
        (5, 672, 160, true, true, 2),
        (5, 960, 160, true, true, 1),
        (5, 960, 160, true, true, 1),
    ];
    mobilenet_v3(net, x, cfg, &rows, 1280)
}

fn mobilenet_v3_small(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let rows: [V3Row; 11] = [
        (3, 16, 16, true, false, 2),
        (3, 72, 24, false, false, 2),
        (3, 88, 24, false, false, 1),
        (5, 96, 40, true, true, 2),
        (5, 240, 40, true, true, 1),
        (5, 240, 40, true, true, 1),
        (5, 120, 48, true, true, 1),
        (5, 144, 48, true, true, 1),
        (5, 288, 96, true, true, 2),
        (5, 576, 96, true, true, 1),
        (5, 576, 96, true, true, 1),
    ];
    mobilenet_v3(net, x, cfg, &rows, 1024)
}
