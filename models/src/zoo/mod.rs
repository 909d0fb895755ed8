//! The architecture zoo: classic CNNs (and two small vision transformers) built in code with
//! seeded weights, for benchmarking and testing without downloading anything.
//!
//! A model is named as `NAME` or `NAME?width=W&resolution=R` where the paper defines a width
//! multiplier or input resolution.

pub mod net;

mod classic;
mod efficientnet;
mod mobilenet;
mod resnet;
mod shufflenet;
mod transformer;

use std::fmt;

pub use net::{Act, Built, ConvOpts, Net, Value};

/// The smallest input side any resolution-flexible architecture accepts.
pub const MIN_RESOLUTION: usize = 32;

/// The largest input side accepted.
pub const MAX_RESOLUTION: usize = 1024;

/// The seed of the weights of zoo models opened by name (`zoo:NAME`): the same everywhere,
/// so a model exported on one machine and built on another are the same network.
pub const SEED: u64 = 1;

/// How a built model varies from the paper's reference configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Width (channel) multiplier; 1.0 is the reference.
    pub width: f32,
    /// Input side in pixels (square RGB input).
    pub resolution: usize,
    /// Output classes.
    pub classes: usize,
}

/// One architecture of the zoo.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    /// Name used on the command line (`zoo:NAME`).
    pub name: &'static str,
    /// The paper that introduced it.
    pub paper: &'static str,
    /// Reference input side.
    pub resolution: usize,
    /// Whether `width=` is meaningful (the paper defines a width multiplier).
    pub has_width: bool,
    /// The smallest input side `resolution=` accepts, for architectures that are fully
    /// convolutional up to a global pool; `None`: the resolution is fixed.
    pub min_resolution: Option<usize>,
    build: fn(&mut Net, Value, &Config) -> Value,
}

/// Every architecture, in the order `zoo list` prints them.
pub fn architectures() -> Vec<Arch> {
    let mut v = Vec::new();
    v.extend(classic::ARCHS);
    v.extend(resnet::ARCHS);
    v.extend(mobilenet::ARCHS);
    v.extend(shufflenet::ARCHS);
    v.extend(efficientnet::ARCHS);
    v.extend(transformer::ARCHS);
    v
}

/// One architecture as `ferrolite zoo list` (and Python's `ferrolite.zoo.list()`) shows it:
/// its size and cost at the reference configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listing {
    /// Name used on the command line (`zoo:NAME`).
    pub name: &'static str,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// Input shape (NCHW).
    pub input: Vec<usize>,
    /// The options its name takes (`width`, `resolution`).
    pub options: Vec<&'static str>,
    /// The paper that introduced it.
    pub paper: &'static str,
}

/// Every architecture with its size and cost, in [`architectures`] order.
pub fn catalog() -> Vec<Listing> {
    architectures()
        .into_iter()
        .filter_map(|a| {
            let counts = find(a.name).ok()?.count();
            let mut options = Vec::new();
            if a.has_width {
                options.push("width");
            }
            if a.min_resolution.is_some() {
                options.push("resolution");
            }
            Some(Listing {
                name: a.name,
                params: counts.params,
                macs: counts.macs,
                input: counts.input,
                options,
                paper: a.paper,
            })
        })
        .collect()
}

/// A parsed zoo model name: the architecture and its configuration.
#[derive(Debug, Clone, Copy)]
pub struct ZooModel {
    pub arch: Arch,
    pub config: Config,
}

/// Why a zoo model name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooError(pub String);

impl fmt::Display for ZooError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ZooError {}

/// Look up `NAME` or `NAME?width=W&resolution=R`.
pub fn find(spec: &str) -> Result<ZooModel, ZooError> {
    let (name, query) = match spec.split_once('?') {
        Some((n, q)) => (n, Some(q)),
        None => (spec, None),
    };
    let archs = architectures();
    let arch = *archs.iter().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = archs.iter().map(|a| a.name).collect();
        ZooError(format!(
            "no zoo model named {name:?}; the zoo has: {}",
            names.join(", ")
        ))
    })?;
    let mut config = Config {
        width: 1.0,
        resolution: arch.resolution,
        classes: 1000,
    };
    for kv in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| ZooError(format!("{kv:?} in {spec:?} is not KEY=VALUE")))?;
        match k {
            "width" if arch.has_width => {
                config.width = v
                    .parse::<f32>()
                    .ok()
                    .filter(|w| *w > 0.0 && *w <= 4.0)
                    .ok_or_else(|| ZooError(format!("width {v:?} must be in (0, 4]")))?;
            }
            "resolution" if arch.min_resolution.is_some() => {
                let min = arch.min_resolution.unwrap_or(MIN_RESOLUTION);
                config.resolution = v
                    .parse::<usize>()
                    .ok()
                    .filter(|r| (min..=MAX_RESOLUTION).contains(r))
                    .ok_or_else(|| {
                        ZooError(format!(
                            "{name}: resolution {v:?} must be {min}..={MAX_RESOLUTION}"
                        ))
                    })?;
            }
            "width" | "resolution" => {
                return Err(ZooError(format!(
                    "{name} has a fixed {k} (its paper defines no {k} option)"
                )))
            }
            _ => {
                return Err(ZooError(format!(
                    "unknown zoo option {k:?} (options: width, resolution)"
                )))
            }
        }
    }
    Ok(ZooModel { arch, config })
}

impl ZooModel {
    /// The input shape, `[1, 3, R, R]`.
    pub fn input_shape(&self) -> Vec<usize> {
        vec![1, 3, self.config.resolution, self.config.resolution]
    }

    /// Count parameters and MACs without generating weights (fast even for VGG).
    pub fn count(&self) -> Built {
        self.build(false, 0)
    }

    /// Build the ONNX model with weights drawn from `seed`.
    pub fn onnx(&self, seed: u64) -> Built {
        self.build(true, seed)
    }

    fn build(&self, weights: bool, seed: u64) -> Built {
        let input = self.input_shape();
        let (mut net, x) = Net::new(&input, seed, weights);
        let y = (self.arch.build)(&mut net, x, &self.config);
        net.finish(&input, &y)
    }

    /// The canonical spelling of this model (name plus non-default options).
    pub fn spec(&self) -> String {
        let mut opts = Vec::new();
        if self.config.width != 1.0 {
            opts.push(format!("width={}", self.config.width));
        }
        if self.config.resolution != self.arch.resolution {
            opts.push(format!("resolution={}", self.config.resolution));
        }
        if opts.is_empty() {
            self.arch.name.to_string()
        } else {
            format!("{}?{}", self.arch.name, opts.join("&"))
        }
    }
}

/// The classifier head shared by most CNNs: global average pool, flatten, dense layer.
pub(crate) fn pool_classifier(net: &mut Net, x: &Value, classes: usize) -> Value {
    let p = net.global_avg_pool(x);
    let f = net.flatten(&p);
    net.linear(&f, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_lists_every_architecture_with_its_counts() {
        let listed = catalog();
        assert_eq!(listed.len(), architectures().len());
        let v2 = listed.iter().find(|l| l.name == "mobilenet_v2").unwrap();
        // The paper's MobileNetV2 1.0 at 224: 3.5 M parameters, 300 M multiply-adds.
        assert!(
            (3.4e6..3.6e6).contains(&(v2.params as f64)),
            "{}",
            v2.params
        );
        assert!((290e6..320e6).contains(&(v2.macs as f64)), "{}", v2.macs);
        assert_eq!(v2.input, [1, 3, 224, 224]);
        assert_eq!(v2.options, ["width", "resolution"]);
    }

    #[test]
    fn every_architecture_builds_at_its_smallest_resolution_and_refuses_below() {
        for a in architectures() {
            let Some(min) = a.min_resolution else {
                continue;
            };
            let m = find(&format!("{}?resolution={min}", a.name)).unwrap();
            assert!(m.count().macs > 0, "{}", a.name);
            let err = find(&format!("{}?resolution={}", a.name, min - 1)).unwrap_err();
            assert!(
                err.0.contains(&format!("must be {min}..=")),
                "{}: {err}",
                a.name
            );
        }
    }
}
