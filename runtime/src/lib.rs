//! Ferrolite device runtime: the IR, the `.flb` bundle format, the planner, the executor and
//! the kernels. It depends on neither tract nor prost so it stays small enough for devices.
#![cfg_attr(ferrolite_arm_neon, feature(stdarch_arm_neon_intrinsics))]

pub mod bundle;
#[cfg(feature = "capi")]
pub mod capi;
pub mod error;
pub mod exec;
pub mod ir;
pub mod kernels;
pub mod limits;
pub mod meta;
pub mod plan;
pub mod preprocess;
pub mod stats;
pub mod summary;
pub mod threads;
pub mod validate;
pub mod weights;

pub use error::{Error, Result};
pub use exec::{Session, SessionOptions};
pub use ir::{Activation, BinaryOp, DType, Graph, Node, Op, Tensor, TensorId};
pub use meta::{Metadata, Precision, Preprocess};
pub use weights::{AlignedBytes, Model, Weights};
