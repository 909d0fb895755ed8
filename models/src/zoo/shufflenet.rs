//! ShuffleNet V1 (grouped 1×1 convolutions with channel shuffle, groups 3 and 8) and
//! ShuffleNet V2 (channel split, concat and shuffle; torchvision layouts).

use super::net::make_divisible;
use super::{pool_classifier, Act, Arch, Config, ConvOpts, Net, Value, MIN_RESOLUTION};

const V1_PAPER: &str = "Zhang et al. 2017, ShuffleNet (arXiv:1707.01083)";
const V2_PAPER: &str = "Ma et al. 2018, ShuffleNet V2 (arXiv:1807.11164)";

pub(super) const ARCHS: [Arch; 6] = [
    Arch {
        name: "shufflenet_v1_g3",
        paper: V1_PAPER,
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v1(n, x, c, 3, [240, 480, 960]),
    },
    Arch {
        name: "shufflenet_v1_g8",
        paper: V1_PAPER,
        resolution: 224,
        has_width: true,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v1(n, x, c, 8, [384, 768, 1536]),
    },
    Arch {
        name: "shufflenet_v2_x0_5",
        paper: V2_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v2(n, x, c, [48, 96, 192], 1024),
    },
    Arch {
        name: "shufflenet_v2_x1_0",
        paper: V2_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v2(n, x, c, [116, 232, 464], 1024),
    },
    Arch {
        name: "shufflenet_v2_x1_5",
        paper: V2_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v2(n, x, c, [176, 352, 704], 1024),
    },
    Arch {
        name: "shufflenet_v2_x2_0",
        paper: V2_PAPER,
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| shufflenet_v2(n, x, c, [244, 488, 976], 2048),
    },
];

/// Units per stage (stages 2, 3 and 4), the first of each with stride 2; both versions.
const STAGE_UNITS: [usize; 3] = [4, 8, 4];

/// Stem channels of both versions at width 1.
const STEM: usize = 24;

fn opts(stride: usize, groups: usize) -> ConvOpts {
    ConvOpts {
        stride,
        groups,
        ..ConvOpts::default()
    }
}

/// The 3×3/2 convolution and 3×3/2 max pool that reduce the input 4× before the stages.
fn stem(net: &mut Net, x: &Value, channels: usize) -> Value {
    let y = net.conv_bn(x, channels, 3, opts(2, 1), Some(Act::Relu));
    net.max_pool(&y, 3, 2, 1, false)
}

/// ShuffleNet V1 with `groups` groups and the 1× stage output channels of the paper's Table 1.
///
/// The width multiplier (the paper's scale factor `s`) scales every channel count: stage
/// outputs are rounded to a multiple of `4·groups` so the quarter-width bottleneck stays
/// divisible by the groups, the stem to a multiple of `groups` so the stride-2 residual
/// branch (output minus input channels) does too.
fn shufflenet_v1(
    net: &mut Net,
    x: Value,
    cfg: &Config,
    groups: usize,
    stage_out: [usize; 3],
) -> Value {
    let stem_out = make_divisible(STEM as f32 * cfg.width, groups);
    let mut y = stem(net, &x, stem_out);
    for (stage, (&units, &out)) in STAGE_UNITS.iter().zip(&stage_out).enumerate() {
        let out = make_divisible(out as f32 * cfg.width, 4 * groups);
        for i in 0..units {
            // Stage 2's first 1×1 sees only the stem's few channels: the paper keeps it dense.
            let first_groups = if stage == 0 && i == 0 { 1 } else { groups };
            y = shuffle_unit_v1(net, &y, out, i == 0, first_groups, groups);
        }
    }
    pool_classifier(net, &y, cfg.classes)
}

/// One ShuffleNet V1 unit: grouped 1×1 to a quarter of `out`, channel shuffle, 3×3
/// depthwise, grouped 1×1; summed with the input, or (when `downsample`) computed at
/// stride 2 and concatenated after a 3×3/2 average pool of the input; ReLU after the merge.
fn shuffle_unit_v1(
    net: &mut Net,
    x: &Value,
    out: usize,
    downsample: bool,
    first_groups: usize,
    groups: usize,
) -> Value {
    let bottleneck = out / 4;
    let (stride, branch_out) = if downsample {
        (2, out - x.channels())
    } else {
        (1, out)
    };
    let mut y = net.conv_bn(x, bottleneck, 1, opts(1, first_groups), Some(Act::Relu));
    if first_groups > 1 {
        y = net.channel_shuffle(&y, first_groups);
    }
    y = net.conv_bn(&y, bottleneck, 3, opts(stride, bottleneck), None);
    y = net.conv_bn(&y, branch_out, 1, opts(1, groups), None);
    let merged = if downsample {
        let shortcut = net.avg_pool(x, 3, 2, 1, false);
        net.concat(&[&shortcut, &y], 1)
    } else {
        net.add(x, &y)
    };
    net.act(&merged, Act::Relu)
}

/// ShuffleNet V2 with the given stage output channels and final 1×1 convolution width.
fn shufflenet_v2(
    net: &mut Net,
    x: Value,
    cfg: &Config,
    stage_out: [usize; 3],
    last: usize,
) -> Value {
    let mut y = stem(net, &x, STEM);
    for (&units, &out) in STAGE_UNITS.iter().zip(&stage_out) {
        y = downsample_unit_v2(net, &y, out);
        for _ in 1..units {
            y = basic_unit_v2(net, &y);
        }
    }
    y = net.conv_bn(&y, last, 1, ConvOpts::default(), Some(Act::Relu));
    pool_classifier(net, &y, cfg.classes)
}

/// The V2 branch that carries the computation: 1×1, 3×3 depthwise at `stride`, 1×1.
fn main_branch_v2(net: &mut Net, x: &Value, out: usize, stride: usize) -> Value {
    let y = net.conv_bn(x, out, 1, ConvOpts::default(), Some(Act::Relu));
    let y = net.conv_bn(&y, out, 3, opts(stride, out), None);
    net.conv_bn(&y, out, 1, ConvOpts::default(), Some(Act::Relu))
}

/// V2 basic unit: split the channels in half, transform one half, concat, shuffle.
fn basic_unit_v2(net: &mut Net, x: &Value) -> Value {
    let half = x.channels() / 2;
    let parts = net.split(x, 1, &[half, half]);
    let y = main_branch_v2(net, &parts[1], half, 1);
    let merged = net.concat(&[&parts[0], &y], 1);
    net.channel_shuffle(&merged, 2)
}

/// V2 spatial down-sampling unit: both branches see the whole input at stride 2 (the
/// second one a 3×3 depthwise then a 1×1), each produces half of `out`; concat, shuffle.
fn downsample_unit_v2(net: &mut Net, x: &Value, out: usize) -> Value {
    let half = out / 2;
    let c = x.channels();
    let side = net.conv_bn(x, c, 3, opts(2, c), None);
    let side = net.conv_bn(&side, half, 1, ConvOpts::default(), Some(Act::Relu));
    let y = main_branch_v2(net, x, half, 2);
    let merged = net.concat(&[&side, &y], 1);
    net.channel_shuffle(&merged, 2)
}
