//! The classic ImageNet CNNs before residual learning and just after: AlexNet, VGG-16,
//! GoogLeNet (Inception v1), DenseNet-121 and SqueezeNet 1.1.
//!
//! Dropout is an identity at inference and is left out everywhere.

use super::{pool_classifier, Act, Arch, Config, ConvOpts, Net, Value, MIN_RESOLUTION};

pub(super) const ARCHS: [Arch; 5] = [
    Arch {
        name: "alexnet",
        paper: "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs (NeurIPS)",
        resolution: 224,
        has_width: false,
        min_resolution: None,
        build: alexnet,
    },
    Arch {
        name: "vgg16",
        paper: "Simonyan & Zisserman 2014, Very Deep ConvNets (arXiv:1409.1556)",
        resolution: 224,
        has_width: false,
        min_resolution: None,
        build: vgg16,
    },
    Arch {
        name: "googlenet",
        paper: "Szegedy et al. 2014, Going Deeper with Convolutions (arXiv:1409.4842)",
        resolution: 224,
        has_width: false,
        // Below 47 pixels the last 3×3/2 max pool has no room left.
        min_resolution: Some(47),
        build: googlenet,
    },
    Arch {
        name: "densenet121",
        paper: "Huang et al. 2016, Densely Connected Convolutional Networks (arXiv:1608.06993)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: densenet121,
    },
    Arch {
        name: "squeezenet1_1",
        paper: "Iandola et al. 2016, SqueezeNet (arXiv:1602.07360)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: squeezenet1_1,
    },
];

fn stride(s: usize) -> ConvOpts {
    ConvOpts {
        stride: s,
        ..ConvOpts::default()
    }
}

fn padded(s: usize, pad: usize) -> ConvOpts {
    ConvOpts {
        stride: s,
        pads: Some([pad; 4]),
        ..ConvOpts::default()
    }
}

/// Flatten a feature map and run it through dense layers, ReLU between them (the
/// fully connected heads of AlexNet and VGG).
fn dense_head(net: &mut Net, x: &Value, hidden: &[usize], classes: usize) -> Value {
    let mut y = net.flatten(x);
    for &h in hidden {
        y = net.linear(&y, h);
        y = net.act(&y, Act::Relu);
    }
    net.linear(&y, classes)
}

/// AlexNet as a single tower (the two GPU halves merged, 64-192-384-256-256 channels), without
/// local response normalization; the classifier sees the 6×6 map of a 224 input.
fn alexnet(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let mut y = net.conv_act(&x, 64, 11, padded(4, 2), Act::Relu);
    y = net.max_pool(&y, 3, 2, 0, false);
    y = net.conv_act(&y, 192, 5, stride(1), Act::Relu);
    y = net.max_pool(&y, 3, 2, 0, false);
    for out in [384, 256, 256] {
        y = net.conv_act(&y, out, 3, stride(1), Act::Relu);
    }
    y = net.max_pool(&y, 3, 2, 0, false);
    dense_head(net, &y, &[4096, 4096], cfg.classes)
}

/// VGG configuration D: thirteen 3×3 convolutions in five stages, each closed by a 2×2 max
/// pool, then three dense layers on the 7×7 map.
fn vgg16(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let stages: [(usize, usize); 5] = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)];
    let mut y = x;
    for (out, convs) in stages {
        for _ in 0..convs {
            y = net.conv_act(&y, out, 3, stride(1), Act::Relu);
        }
        y = net.max_pool(&y, 2, 2, 0, false);
    }
    dense_head(net, &y, &[4096, 4096], cfg.classes)
}

/// Output channels of the four branches of an Inception module (the columns of the paper's
/// Table 1).
struct Inception {
    one: usize,
    reduce3: usize,
    three: usize,
    reduce5: usize,
    five: usize,
    pool_proj: usize,
}

const fn inception(
    one: usize,
    reduce3: usize,
    three: usize,
    reduce5: usize,
    five: usize,
    pool_proj: usize,
) -> Inception {
    Inception {
        one,
        reduce3,
        three,
        reduce5,
        five,
        pool_proj,
    }
}

fn conv_bn_relu(net: &mut Net, x: &Value, out: usize, k: usize, s: usize) -> Value {
    net.conv_bn(x, out, k, stride(s), Some(Act::Relu))
}

/// One Inception module: 1×1, 1×1→3×3, 1×1→5×5 and 3×3 max pool→1×1 branches, concatenated.
fn inception_module(net: &mut Net, x: &Value, m: &Inception) -> Value {
    let one = conv_bn_relu(net, x, m.one, 1, 1);
    let r3 = conv_bn_relu(net, x, m.reduce3, 1, 1);
    let three = conv_bn_relu(net, &r3, m.three, 3, 1);
    let r5 = conv_bn_relu(net, x, m.reduce5, 1, 1);
    let five = conv_bn_relu(net, &r5, m.five, 5, 1);
    let pooled = net.max_pool(x, 3, 1, 1, true);
    let proj = conv_bn_relu(net, &pooled, m.pool_proj, 1, 1);
    net.concat(&[&one, &three, &five, &proj], 1)
}

/// GoogLeNet per Table 1 of the paper, with BatchNorm after every convolution instead of local
/// response normalization, no auxiliary classifiers, and ceil-rounded 3×3/2 max pools.
fn googlenet(net: &mut Net, x: Value, cfg: &Config) -> Value {
    const STAGE3: [Inception; 2] = [
        inception(64, 96, 128, 16, 32, 32),
        inception(128, 128, 192, 32, 96, 64),
    ];
    const STAGE4: [Inception; 5] = [
        inception(192, 96, 208, 16, 48, 64),
        inception(160, 112, 224, 24, 64, 64),
        inception(128, 128, 256, 24, 64, 64),
        inception(112, 144, 288, 32, 64, 64),
        inception(256, 160, 320, 32, 128, 128),
    ];
    const STAGE5: [Inception; 2] = [
        inception(256, 160, 320, 32, 128, 128),
        inception(384, 192, 384, 48, 128, 128),
    ];
    let mut y = conv_bn_relu(net, &x, 64, 7, 2);
    y = net.max_pool(&y, 3, 2, 0, true);
    y = conv_bn_relu(net, &y, 64, 1, 1);
    y = conv_bn_relu(net, &y, 192, 3, 1);
    y = net.max_pool(&y, 3, 2, 0, true);
    for (i, stage) in [&STAGE3[..], &STAGE4[..], &STAGE5[..]].iter().enumerate() {
        if i > 0 {
            y = net.max_pool(&y, 3, 2, 0, true);
        }
        for m in stage.iter() {
            y = inception_module(net, &y, m);
        }
    }
    pool_classifier(net, &y, cfg.classes)
}

fn bn_relu(net: &mut Net, x: &Value) -> Value {
    let y = net.bn(x);
    net.act(&y, Act::Relu)
}

/// DenseNet-121: four dense blocks of pre-activation bottleneck layers, each layer reading the
/// concatenation of every earlier output of its block, joined by compressing transitions.
fn densenet121(net: &mut Net, x: Value, cfg: &Config) -> Value {
    const GROWTH: usize = 32;
    const BOTTLENECK: usize = 4 * GROWTH;
    const BLOCKS: [usize; 4] = [6, 12, 24, 16];
    let mut y = conv_bn_relu(net, &x, 64, 7, 2);
    y = net.max_pool(&y, 3, 2, 1, false);
    for (i, &layers) in BLOCKS.iter().enumerate() {
        let mut features = vec![y];
        for _ in 0..layers {
            let input = concat_all(net, &features);
            let h = bn_relu(net, &input);
            let h = net.conv(&h, BOTTLENECK, 1, stride(1));
            let h = bn_relu(net, &h);
            features.push(net.conv(&h, GROWTH, 3, stride(1)));
        }
        y = concat_all(net, &features);
        if i + 1 < BLOCKS.len() {
            let t = bn_relu(net, &y);
            let t = net.conv(&t, y.channels() / 2, 1, stride(1));
            y = net.avg_pool(&t, 2, 2, 0, false);
        }
    }
    y = bn_relu(net, &y);
    pool_classifier(net, &y, cfg.classes)
}

/// Channel concatenation of `xs`; a single map is passed through unchanged.
fn concat_all(net: &mut Net, xs: &[Value]) -> Value {
    match xs {
        [one] => one.clone(),
        _ => {
            let refs: Vec<&Value> = xs.iter().collect();
            net.concat(&refs, 1)
        }
    }
}

/// SqueezeNet's fire module: a 1×1 squeeze, then 1×1 and 3×3 expands side by side.
fn fire(net: &mut Net, x: &Value, squeeze: usize, expand: usize) -> Value {
    let s = net.conv_act(x, squeeze, 1, stride(1), Act::Relu);
    let e1 = net.conv_act(&s, expand, 1, stride(1), Act::Relu);
    let e3 = net.conv_act(&s, expand, 3, stride(1), Act::Relu);
    net.concat(&[&e1, &e3], 1)
}

/// SqueezeNet 1.1: a 3×3/2 stem, eight fire modules between ceil-rounded max pools, and a
/// 1×1 convolution to the classes averaged over the map (no dense layer).
fn squeezenet1_1(net: &mut Net, x: Value, cfg: &Config) -> Value {
    let mut y = net.conv_act(&x, 64, 3, padded(2, 0), Act::Relu);
    let stages: [&[(usize, usize)]; 3] = [
        &[(16, 64), (16, 64)],
        &[(32, 128), (32, 128)],
        &[(48, 192), (48, 192), (64, 256), (64, 256)],
    ];
    for stage in stages {
        y = net.max_pool(&y, 3, 2, 0, true);
        for &(squeeze, expand) in stage {
            y = fire(net, &y, squeeze, expand);
        }
    }
    y = net.conv_act(&y, cfg.classes, 1, stride(1), Act::Relu);
    let p = net.global_avg_pool(&y);
    net.flatten(&p)
}
