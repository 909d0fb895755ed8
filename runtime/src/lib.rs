//! Ferrolite device runtime: the IR, the `.flb` bundle format, the planner, the executor and
//! the kernels. It depends on neither tract nor prost so it stays small enough for devices.
//!
//! The high-level API, which the CLI, the C API and the Python package wrap:
//! [`Model::open`] (or [`Model::from_bytes`]) loads a bundle, a [`Session`] runs it with
//! [`SessionOptions`] (threads, cores, kernels) and describes its [`Session::inputs`] and
//! [`Session::outputs`], and a [`Classifier`] adds the bundle's image preprocessing,
//! softmax and top-k. With the `decode` feature (`libjpeg` for PIL's exact JPEG pixels),
//! [`image::decode_file`] reads image files the way the CLI does.
//!
//! ```
//! use std::sync::Arc;
//! use ferrolite_runtime::{Classifier, Model, Session, SessionOptions};
//!
//! # fn main() -> ferrolite_runtime::Result<()> {
//! let model = Arc::new(Model::open("../models/efficientnet_lite0.flb")?);
//!
//! // Any tensor in, every output out: inputs are logical (NCHW) f32 values.
//! let mut session = Session::with_options(model.clone(), SessionOptions::default().threads(2))?;
//! let input = &session.inputs()[0];
//! assert_eq!(input.shape, [1, 3, 224, 224]);
//! let x = vec![0.0f32; input.shape.iter().product()];
//! session.run(&[&x])?;
//! let name = session.outputs()[0].name.clone();
//! assert_eq!(session.output_named(&name).map(<[f32]>::len), Some(1000));
//! assert!(session.output(1).is_none());
//!
//! // An image (RGB8 pixels) through the bundle's own preprocessing.
//! let mut classifier = Classifier::new(model, SessionOptions::default())?;
//! let gray = vec![128u8; 320 * 240 * 3];
//! let image = ferrolite_runtime::preprocess::RgbImage { width: 320, height: 240, pixels: &gray };
//! let top = classifier.classify(&image, 5)?;
//! assert_eq!(top.len(), 5);
//! assert!(top[0].score >= top[4].score);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(ferrolite_arm_neon, feature(stdarch_arm_neon_intrinsics))]
#![warn(missing_docs)]

pub mod bundle;
#[cfg(feature = "capi")]
pub mod capi;
pub mod classifier;
pub mod error;
pub mod exec;
#[cfg(feature = "decode")]
pub mod image;
#[doc(hidden)]
pub mod ir;
#[doc(hidden)]
pub mod kernels;
pub mod limits;
pub mod meta;
#[doc(hidden)]
pub mod plan;
pub mod preprocess;
pub mod stats;
#[doc(hidden)]
pub mod summary;
pub mod threads;
#[doc(hidden)]
pub mod validate;
pub mod weights;

pub use classifier::{Class, Classifier};
pub use error::{Error, Result};
pub use exec::{Session, SessionOptions, TensorInfo};
pub use ir::DType;
/// The graph IR, for the converter and tools (not needed to run a model).
#[doc(hidden)]
pub use ir::{Activation, BinaryOp, Graph, Node, Op, Tensor, TensorId};
pub use meta::{Metadata, Precision, Preprocess};
pub use stats::{bench, BenchReport, LatencyStats};
pub use weights::{AlignedBytes, Model, Weights};
