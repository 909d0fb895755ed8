//! ResNet-18/50 and its descendants: ResNeXt-50 32×4d (grouped 3×3), Wide ResNet-50-2 and
//! SE-ResNet-50 (squeeze-excite before the shortcut sum), in the torchvision layouts.

use super::{pool_classifier, Act, Arch, Config, ConvOpts, Net, Value, MIN_RESOLUTION};

pub(super) const ARCHS: [Arch; 5] = [
    Arch {
        name: "resnet18",
        paper: "He et al. 2015, Deep Residual Learning (arXiv:1512.03385)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| resnet(n, x, c, &Variant::basic()),
    },
    Arch {
        name: "resnet50",
        paper: "He et al. 2015, Deep Residual Learning (arXiv:1512.03385)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| resnet(n, x, c, &Variant::bottleneck(1, 64, false)),
    },
    Arch {
        name: "resnext50_32x4d",
        paper: "Xie et al. 2016, Aggregated Residual Transformations (arXiv:1611.05431)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| resnet(n, x, c, &Variant::bottleneck(32, 4, false)),
    },
    Arch {
        name: "wide_resnet50_2",
        paper: "Zagoruyko & Komodakis 2016, Wide Residual Networks (arXiv:1605.07146)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| resnet(n, x, c, &Variant::bottleneck(1, 128, false)),
    },
    Arch {
        name: "se_resnet50",
        paper: "Hu et al. 2017, Squeeze-and-Excitation Networks (arXiv:1709.01507)",
        resolution: 224,
        has_width: false,
        min_resolution: Some(MIN_RESOLUTION),
        build: |n, x, c| resnet(n, x, c, &Variant::bottleneck(1, 64, true)),
    },
];

/// Block type and widths of one ResNet family member.
struct Variant {
    bottleneck: bool,
    layers: [usize; 4],
    groups: usize,
    width_per_group: usize,
    squeeze_excite: bool,
}

impl Variant {
    fn basic() -> Variant {
        Variant {
            bottleneck: false,
            layers: [2, 2, 2, 2],
            groups: 1,
            width_per_group: 64,
            squeeze_excite: false,
        }
    }

    fn bottleneck(groups: usize, width_per_group: usize, squeeze_excite: bool) -> Variant {
        Variant {
            bottleneck: true,
            layers: [3, 4, 6, 3],
            groups,
            width_per_group,
            squeeze_excite,
        }
    }
}

fn opts(stride: usize, groups: usize) -> ConvOpts {
    ConvOpts {
        stride,
        groups,
        ..ConvOpts::default()
    }
}

fn resnet(net: &mut Net, x: Value, cfg: &Config, v: &Variant) -> Value {
    let mut y = net.conv_bn(&x, 64, 7, opts(2, 1), Some(Act::Relu));
    y = net.max_pool(&y, 3, 2, 1, false);
    for (stage, &blocks) in v.layers.iter().enumerate() {
        let planes = 64 << stage;
        for i in 0..blocks {
            let s = if i == 0 && stage > 0 { 2 } else { 1 };
            y = block(net, &y, planes, s, v);
        }
    }
    pool_classifier(net, &y, cfg.classes)
}

fn block(net: &mut Net, x: &Value, planes: usize, stride: usize, v: &Variant) -> Value {
    let (out, mut y) = if v.bottleneck {
        let width = planes * v.width_per_group / 64 * v.groups;
        let y = net.conv_bn(x, width, 1, opts(1, 1), Some(Act::Relu));
        let y = net.conv_bn(&y, width, 3, opts(stride, v.groups), Some(Act::Relu));
        (planes * 4, net.conv_bn(&y, planes * 4, 1, opts(1, 1), None))
    } else {
        let y = net.conv_bn(x, planes, 3, opts(stride, 1), Some(Act::Relu));
        (planes, net.conv_bn(&y, planes, 3, opts(1, 1), None))
    };
    if v.squeeze_excite {
        y = net.squeeze_excite(&y, out / 16, Act::Relu, Act::Sigmoid);
    }
    let shortcut = if stride != 1 || x.channels() != out {
        net.conv_bn(x, out, 1, opts(stride, 1), None)
    } else {
        x.clone()
    };
    let sum = net.add(&y, &shortcut);
    net.act(&sum, Act::Relu)
}
