//! f32 softmax over one strided row (the axis may be innermost or not in memory).

pub mod scalar;

/// `y[i*sy] = exp(x[i*sx] - max) / sum` for `i < n`.
pub type SoftmaxFn = fn(n: usize, x: &[f32], sx: usize, y: &mut [f32], sy: usize);

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The softmax kernels, best first (see [`super::registry::select`]).
pub static SOFTMAX: &[Entry<SoftmaxFn>] = &[kernel!(f32_softmax::scalar::softmax_strided)];
