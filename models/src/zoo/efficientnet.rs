//! MNASNet 1.0 and EfficientNet-B0 (torchvision layouts) and the EfficientNet-Lite family
//! (the TensorFlow Lite variants: no squeeze-excite, ReLU6, fixed stem and head, TensorFlow
//! "same" padding).

use super::net::make_divisible;
use super::{pool_classifier, Act, Arch, Config, ConvOpts, Net, Value, MIN_RESOLUTION};

const EFFICIENTNET_PAPER: &str = "Tan & Le 2019, EfficientNet (arXiv:1905.11946)";

pub(super) const ARCHS: [Arch; 7] = [
    Arch {
        name: "mnasnet1_0",
        paper: "Tan et al. 2018, MnasNet (arXiv:1807.11626)",
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: mnasnet,
    },
    Arch {
        name: "efficientnet_b0",
        paper: EFFICIENTNET_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: efficientnet_b0,
    },
    Arch {
        name: "efficientnet_lite0",
        paper: EFFICIENTNET_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| efficientnet_lite(n, x, c, 1.0, 1.0),
    },
    Arch {
        name: "efficientnet_lite1",
        paper: EFFICIENTNET_PAPER,
        resolution: 240,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| efficientnet_lite(n, x, c, 1.0, 1.1),
    },
    Arch {
        name: "efficientnet_lite2",
        paper: EFFICIENTNET_PAPER,
        resolution: 260,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| efficientnet_lite(n, x, c, 1.1, 1.2),
    },
    Arch {
        name: "efficientnet_lite3",
        paper: EFFICIENTNET_PAPER,
        resolution: 280,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| efficientnet_lite(n, x, c, 1.2, 1.4),
    },
    Arch {
        name: "efficientnet_lite4",
        paper: EFFICIENTNET_PAPER,
        resolution: 300,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| efficientnet_lite(n, x, c, 1.4, 1.8),
    },
];

/// One stage of mobile inverted bottlenecks: expansion ratio, depthwise kernel, stride of the
/// first block, output channels, blocks.
#[derive(Debug, Clone, Copy)]
struct Stage {
    expand: usize,
    kernel: usize,
    stride: usize,
    out: usize,
    repeats: usize,
}

const fn stage(expand: usize, kernel: usize, stride: usize, out: usize, repeats: usize) -> Stage {
    Stage {
        expand,
        kernel,
        stride,
        out,
        repeats,
    }
}

/// The seven stages of EfficientNet-B0 (and, without squeeze-excite, of Lite0).
const EFFICIENTNET_STAGES: [Stage; 7] = [
    stage(1, 3, 1, 16, 1),
    stage(6, 3, 2, 24, 2),
    stage(6, 5, 2, 40, 2),
    stage(6, 3, 2, 80, 3),
    stage(6, 5, 1, 112, 3),
    stage(6, 5, 2, 192, 4),
    stage(6, 3, 1, 320, 1),
];

/// How the convolutions of a mobile inverted bottleneck are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Padding {
    /// `(k−1)/2` on every side (PyTorch models).
    Symmetric,
    /// TensorFlow "same": total padding to reach `ceil(side / stride)` outputs, the odd
    /// extra pixel at the bottom and right.
    TensorFlowSame,
}

/// A mobile inverted bottleneck (MBConv): 1×1 expansion (skipped when it would not widen),
/// depthwise convolution, optional squeeze-excite, linear 1×1 projection, identity shortcut
/// when the shapes allow.
#[derive(Debug, Clone, Copy)]
struct MbConv {
    kernel: usize,
    stride: usize,
    expanded: usize,
    out: usize,
    act: Act,
    /// Squeeze-excite width (SiLU inside, sigmoid gate), if any.
    squeeze: Option<usize>,
    padding: Padding,
}

fn pads(padding: Padding, side: usize, kernel: usize, stride: usize) -> Option<[usize; 4]> {
    match padding {
        Padding::Symmetric => None,
        Padding::TensorFlowSame => {
            let out = side.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(side);
            let (before, after) = (total / 2, total - total / 2);
            Some([before, before, after, after])
        }
    }
}

fn mbconv(net: &mut Net, x: &Value, b: &MbConv) -> Value {
    let mut y = x.clone();
    if b.expanded != x.channels() {
        y = net.conv_bn(&y, b.expanded, 1, ConvOpts::default(), Some(b.act));
    }
    let depthwise = ConvOpts {
        stride: b.stride,
        groups: b.expanded,
        pads: pads(b.padding, y.shape[2], b.kernel, b.stride),
        ..ConvOpts::default()
    };
    y = net.conv_bn(&y, b.expanded, b.kernel, depthwise, Some(b.act));
    if let Some(squeeze) = b.squeeze {
        y = net.squeeze_excite(&y, squeeze, Act::Swish, Act::Sigmoid);
    }
    y = net.conv_bn(&y, b.out, 1, ConvOpts::default(), None);
    if b.stride == 1 && b.out == x.channels() {
        y = net.add(&y, x);
    }
    y
}

/// The 3×3/2 stem convolution.
fn stem(net: &mut Net, x: &Value, out: usize, act: Act, padding: Padding) -> Value {
    let o = ConvOpts {
        stride: 2,
        pads: pads(padding, x.shape[2], 3, 2),
        ..ConvOpts::default()
    };
    net.conv_bn(x, out, 3, o, Some(act))
}

/// MNASNet-A1 without squeeze-excite as torchvision builds it: the width multiplier scales
/// every layer but the 1280-wide head, rounded to multiples of 8.
fn mnasnet(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let ch = |c: usize| make_divisible(c as f32 * cfg.width, 8);
    let mut y = stem(net, &x, ch(32), Act::Relu, Padding::Symmetric);
    let stages = [
        stage(1, 3, 1, 16, 1),
        stage(3, 3, 2, 24, 3),
        stage(3, 5, 2, 40, 3),
        stage(6, 5, 2, 80, 3),
        stage(6, 3, 1, 96, 2),
        stage(6, 5, 2, 192, 4),
        stage(6, 3, 1, 320, 1),
    ];
    for s in stages {
        for i in 0..s.repeats {
            let b = MbConv {
                kernel: s.kernel,
                stride: if i == 0 { s.stride } else { 1 },
                expanded: y.channels() * s.expand,
                out: ch(s.out),
                act: Act::Relu,
                squeeze: None,
                padding: Padding::Symmetric,
            };
            y = mbconv(net, &y, &b);
        }
    }
    y = net.conv_bn(&y, 1280, 1, ConvOpts::default(), Some(Act::Relu));
    pool_classifier(net, &y, cfg.classes)
}

/// EfficientNet-B0: MBConv with SiLU and squeeze-excite to a quarter of the block input.
fn efficientnet_b0(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let mut y = stem(net, &x, 32, Act::Swish, Padding::Symmetric);
    for s in EFFICIENTNET_STAGES {
        for i in 0..s.repeats {
            let c = y.channels();
            let b = MbConv {
                kernel: s.kernel,
                stride: if i == 0 { s.stride } else { 1 },
                expanded: make_divisible((c * s.expand) as f32, 8),
                out: s.out,
                act: Act::Swish,
                squeeze: Some((c / 4).max(1)),
                padding: Padding::Symmetric,
            };
            y = mbconv(net, &y, &b);
        }
    }
    y = net.conv_bn(&y, 1280, 1, ConvOpts::default(), Some(Act::Swish));
    pool_classifier(net, &y, cfg.classes)
}

/// EfficientNet-Lite with the given width and depth coefficients: block channels scaled by
/// `width` (rounded to multiples of 8), block counts by `depth` (rounded up) except in the
/// first and last stages; the 32-channel stem and 1280-channel head stay fixed.
fn efficientnet_lite(net: &mut Net, x: Value, cfg: &Config, width: f32, depth: f32) -> Value {
    let pad = Padding::TensorFlowSame;
    let mut y = stem(net, &x, 32, Act::Relu6, pad);
    let last = EFFICIENTNET_STAGES.len() - 1;
    for (n, s) in EFFICIENTNET_STAGES.iter().enumerate() {
        let repeats = if n == 0 || n == last {
            s.repeats
        } else {
            (s.repeats as f32 * depth).ceil() as usize
        };
        for i in 0..repeats {
            let b = MbConv {
                kernel: s.kernel,
                stride: if i == 0 { s.stride } else { 1 },
                expanded: y.channels() * s.expand,
                out: make_divisible(s.out as f32 * width, 8),
                act: Act::Relu6,
                squeeze: None,
                padding: pad,
            };
            y = mbconv(net, &y, &b);
        }
    }
    y = net.conv_bn(&y, 1280, 1, ConvOpts::default(), Some(Act::Relu6));
    pool_classifier(net, &y, cfg.classes)
}
