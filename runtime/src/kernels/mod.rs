//! Compute kernels, one folder per dtype + op family. Families ported to the vector trait
//! ([`simd`]: f32 depthwise and element-wise so far) have one generic body instantiated per
//! ISA by a macro in the family's `mod.rs`; the others still keep one file per ISA.
//!
//! Kernels take slices and plain dimensions (no IR types) so they can be tested and
//! benchmarked on their own. The planner picks one function pointer per slot once
//! ([`best`]); SIMD files will overwrite slots of the scalar set ([`generic`]).

pub mod cpu;
pub mod f16_dwconv;
pub mod f16_gemm;
pub mod f32_conv;
pub mod f32_copy;
pub mod f32_dwconv;
pub mod f32_eltwise;
pub mod f32_gemm;
pub mod f32_norm;
pub mod f32_pool;
pub mod f32_softmax;
#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
pub mod neon_ops;
pub mod qs8_convert;
pub mod qs8_dwconv;
pub mod qs8_eltwise;
pub mod qs8_gemm;
pub mod requant;
pub mod simd;
pub mod walk;

use crate::error::Result;
pub use cpu::{CpuFeatures, Isa};

/// Element-wise function applied by kernels (mirrors `ir::Activation` without depending on it).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Act {
    /// Identity.
    #[default]
    None,
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    HardSwish,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Sigmoid,
    Silu,
    Tanh,
    Gelu,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Reciprocal,
    Abs,
    Neg,
    Erf,
}

/// Binary element-wise operator (mirrors `ir::BinaryOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
}

/// The output of a GEMM call: a row-major matrix, row `i` of the call at `i * ldc`. A raw
/// view rather than a slice because threads sharing one output matrix write disjoint
/// columns of the same rows: a kernel writes only its own `n` columns of each of its rows.
pub struct OutMat<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T> From<&'a mut [T]> for OutMat<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        OutMat {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: std::marker::PhantomData,
        }
    }
}

impl<T> OutMat<'_, T> {
    /// A view of `len` elements from `ptr`.
    ///
    /// # Safety
    /// The elements must be valid for writes while the view lives, and the ones the kernel
    /// call writes (its rows, its columns) must not be accessed by anyone else meanwhile.
    pub unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        OutMat {
            ptr,
            len,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Elements in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first element, for kernels' pointer arithmetic (within [`OutMat::len`], on the
    /// call's own rows and columns only).
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }

    /// Elements `off..off + n`: part of one row the call writes. Panics out of bounds.
    pub fn span(&mut self, off: usize, n: usize) -> &mut [T] {
        assert!(
            off.checked_add(n).is_some_and(|e| e <= self.len),
            "gemm output {off}+{n} beyond {}",
            self.len
        );
        // SAFETY: in bounds (checked); the elements are the call's own (a row segment within
        // its columns, the contract of `from_raw`, or part of an exclusively borrowed slice).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), n) }
    }
}

/// A kernel slot: the chosen function and its qualified name (for `inspect` and profiles).
#[derive(Clone, Copy)]
pub struct Slot<F> {
    /// The function to call.
    pub f: F,
    /// `family::isa::function`, e.g. `f32_dwconv::scalar::dwconv_generic`.
    pub name: &'static str,
}

impl<F> Slot<F> {
    /// Rows of the kernel's register tile, read from its name (`gemm_8x32` -> 8); 1 when the
    /// name carries no tile. Work is split across threads in multiples of it.
    pub fn tile_rows(&self) -> usize {
        let f = self.name.rsplit("::").next().unwrap_or("");
        f.split('_')
            .find_map(|part| part.split_once('x').and_then(|(r, _)| r.parse().ok()))
            .filter(|&r: &usize| r > 0)
            .unwrap_or(1)
    }
}

impl<F> std::fmt::Debug for Slot<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The set of kernels a plan dispatches to, chosen once for this CPU.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// Tier the slots were chosen for.
    pub isa: Isa,
    /// fp16 arithmetic is native on this tier (the f16 slots hold fp16-arithmetic kernels):
    /// the planner then keeps an fp16 bundle's pointwise and depthwise weights in f16 and
    /// runs them through [`Kernels::f16_gemm`] / [`Kernels::f16_dwconv`].
    pub f16_native: bool,
    /// Packed-B GEMM with fused bias, residual and activation (pointwise conv, FC, MatMul).
    pub f32_gemm: Slot<f32_gemm::GemmFn>,
    /// Depthwise convolution, NHWC.
    pub f32_dwconv: Slot<f32_dwconv::DwConvFn>,
    /// General dense / grouped convolution, NHWC.
    pub f32_conv: Slot<f32_conv::ConvFn>,
    /// Max pooling, NHWC.
    pub f32_maxpool: Slot<f32_pool::MaxPoolFn>,
    /// Average pooling, NHWC.
    pub f32_avgpool: Slot<f32_pool::AvgPoolFn>,
    /// Global average pooling, NHWC.
    pub f32_global_avg: Slot<f32_pool::GlobalAvgFn>,
    /// Same-shape binary op.
    pub f32_binary: Slot<f32_eltwise::BinaryFn>,
    /// Binary op with a per-channel (channels-last) operand.
    pub f32_binary_channel: Slot<f32_eltwise::BinaryChannelFn>,
    /// Binary op on one strided row (generic broadcasting).
    pub f32_binary_strided: Slot<f32_eltwise::BinaryStridedFn>,
    /// Activation in place.
    pub f32_activation: Slot<f32_eltwise::ActivationFn>,
    /// Per-channel affine (BatchNorm).
    pub f32_affine: Slot<f32_eltwise::AffineFn>,
    /// Layer normalization of one strided row.
    pub f32_layer_norm: Slot<f32_norm::LayerNormFn>,
    /// Softmax over one strided row.
    pub f32_softmax: Slot<f32_softmax::SoftmaxFn>,
    /// Strided row copy (data movement).
    pub f32_copy: Slot<f32_copy::CopyFn>,
    /// Pairwise interleave of strided rows (two-group channel shuffle).
    pub f32_interleave2: Slot<f32_copy::Interleave2Fn>,
    /// Packed-B GEMM with f16 weights, f32 activations (fp16 bundles' pointwise convs).
    pub f16_gemm: Slot<f16_gemm::F16GemmFn>,
    /// Depthwise convolution with f16 weights, f32 activations, NHWC.
    pub f16_dwconv: Slot<f16_dwconv::F16DwConvFn>,
    /// int8 packed-B GEMM with requantization (pointwise conv, FC, im2col conv).
    pub qs8_gemm: Slot<qs8_gemm::QGemmFn>,
    /// int8 depthwise convolution, NHWC.
    pub qs8_dwconv: Slot<qs8_dwconv::QDwConvFn>,
    /// f32 -> 8-bit per-tensor quantization (model inputs).
    pub qs8_quantize: Slot<qs8_convert::QuantizeFn>,
    /// int8 add / multiply with rescaling.
    pub qs8_binary: Slot<qs8_eltwise::QBinaryFn>,
}

macro_rules! slot {
    ($family:ident :: $isa:ident :: $f:ident) => {
        Slot {
            f: $family::$isa::$f,
            name: concat!(
                stringify!($family),
                "::",
                stringify!($isa),
                "::",
                stringify!($f)
            ),
        }
    };
}

/// The portable scalar kernels: always available, the fallback and the test oracle.
pub fn generic() -> Kernels {
    Kernels {
        isa: Isa::Scalar,
        f16_native: false,
        f32_gemm: slot!(f32_gemm::scalar::gemm_4x16),
        f32_dwconv: slot!(f32_dwconv::scalar::dwconv_generic),
        f32_conv: slot!(f32_conv::scalar::conv_direct),
        f32_maxpool: slot!(f32_pool::scalar::maxpool),
        f32_avgpool: slot!(f32_pool::scalar::avgpool),
        f32_global_avg: slot!(f32_pool::scalar::global_avg),
        f32_binary: slot!(f32_eltwise::scalar::binary),
        f32_binary_channel: slot!(f32_eltwise::scalar::binary_channel),
        f32_binary_strided: slot!(f32_eltwise::scalar::binary_strided),
        f32_activation: slot!(f32_eltwise::scalar::activation),
        f32_affine: slot!(f32_eltwise::scalar::affine),
        f32_layer_norm: slot!(f32_norm::scalar::layer_norm_strided),
        f32_softmax: slot!(f32_softmax::scalar::softmax_strided),
        f32_copy: slot!(f32_copy::scalar::copy_strided),
        f32_interleave2: slot!(f32_copy::scalar::interleave2),
        f16_gemm: slot!(f16_gemm::scalar::gemm_4x16),
        f16_dwconv: slot!(f16_dwconv::scalar::dwconv_generic),
        qs8_gemm: slot!(qs8_gemm::scalar::qgemm_1x16),
        qs8_dwconv: slot!(qs8_dwconv::scalar::qdwconv_generic),
        qs8_quantize: slot!(qs8_convert::scalar::quantize),
        qs8_binary: slot!(qs8_eltwise::scalar::binary),
    }
}

/// Kernels for a given tier: the scalar set with the slots this tier has SIMD kernels for
/// overwritten.
pub fn for_isa(isa: Isa) -> Kernels {
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_neon)),
        allow(unused_mut)
    )]
    let mut k = Kernels { isa, ..generic() };
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx2 => {
            k.f32_conv = slot!(f32_conv::avx2::conv_direct_6x16);
            k.f32_gemm = slot!(f32_gemm::avx2::gemm_6x16);
            k.f32_dwconv = slot!(f32_dwconv::avx2::dwconv_8c);
            k.f32_activation = slot!(f32_eltwise::avx2::activation_8c);
            k.f32_maxpool = slot!(f32_pool::avx2::maxpool_8c);
            k.f32_avgpool = slot!(f32_pool::avx2::avgpool_8c);
            k.f32_global_avg = slot!(f32_pool::avx2::global_avg_8c);
            k.f32_interleave2 = slot!(f32_copy::avx2::interleave2_8c);
            k.f32_binary = slot!(f32_eltwise::avx2::binary_8c);
            k.f32_binary_channel = slot!(f32_eltwise::avx2::binary_channel_8c);
            k.f32_layer_norm = slot!(f32_norm::avx2::layer_norm_8c);
            k.qs8_dwconv = slot!(qs8_dwconv::avx2::qdwconv_32c);
            k.qs8_quantize = slot!(qs8_convert::avx2::quantize_8x);
            k.qs8_binary = slot!(qs8_eltwise::avx2::binary_8x);
            k.qs8_gemm = slot!(qs8_gemm::avx2::qgemm_6x8);
        }
        Isa::Avx512 => {
            k.f32_conv = slot!(f32_conv::avx512::conv_direct_8x32);
            k.f32_gemm = if CpuFeatures::detect().split_512 {
                slot!(f32_gemm::avx2::gemm_6x16)
            } else {
                slot!(f32_gemm::avx512::gemm_8x32)
            };
            k.f32_dwconv = slot!(f32_dwconv::avx512::dwconv_16c);
            k.f32_activation = slot!(f32_eltwise::avx512::activation_16c);
            k.f32_maxpool = slot!(f32_pool::avx2::maxpool_8c);
            k.f32_avgpool = slot!(f32_pool::avx2::avgpool_8c);
            k.f32_global_avg = slot!(f32_pool::avx2::global_avg_8c);
            k.f32_interleave2 = slot!(f32_copy::avx2::interleave2_8c);
            k.f32_binary = slot!(f32_eltwise::avx512::binary_16c);
            k.f32_binary_channel = slot!(f32_eltwise::avx512::binary_channel_16c);
            k.f32_layer_norm = slot!(f32_norm::avx512::layer_norm_16c);
            k.qs8_quantize = slot!(qs8_convert::avx2::quantize_8x);
            k.qs8_binary = slot!(qs8_eltwise::avx2::binary_8x);
            // The VNNI kernels; AVX-512 cores without VNNI keep the AVX2 ones.
            let vnni = CpuFeatures::detect().avx512vnni;
            k.qs8_dwconv = if vnni {
                slot!(qs8_dwconv::avx512::qdwconv_64c)
            } else {
                slot!(qs8_dwconv::avx2::qdwconv_32c)
            };
            k.qs8_gemm = if vnni {
                slot!(qs8_gemm::avx512::qgemm_8x32)
            } else {
                slot!(qs8_gemm::avx2::qgemm_6x8)
            };
        }
        _ => {}
    }
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    if isa == Isa::Neon {
        #[cfg(target_arch = "aarch64")]
        {
            k.f32_gemm = slot!(f32_gemm::neon::gemm_6x16);
            k.f32_conv = slot!(f32_conv::neon::conv_direct_6x16);
        }
        #[cfg(target_arch = "arm")]
        {
            k.f32_gemm = slot!(f32_gemm::neon::gemm_4x8);
            k.f32_conv = slot!(f32_conv::neon::conv_direct_4x8);
        }
        k.f32_dwconv = slot!(f32_dwconv::neon::dwconv_4c);
        k.f32_activation = slot!(f32_eltwise::neon::activation_4c);
        k.f32_binary = slot!(f32_eltwise::neon::binary_4c);
        k.f32_binary_channel = slot!(f32_eltwise::neon::binary_channel_4c);
        #[cfg(target_arch = "aarch64")]
        {
            k.qs8_gemm = if CpuFeatures::detect().dotprod {
                slot!(qs8_gemm::neon::qgemm_4x16_dot)
            } else {
                slot!(qs8_gemm::neon::qgemm_2x16_mull)
            };
            k.qs8_dwconv = slot!(qs8_dwconv::neon::qdwconv_8c);
            k.qs8_quantize = slot!(qs8_convert::neon::quantize_16x);
            k.qs8_binary = slot!(qs8_eltwise::neon::binary_16x);
            if CpuFeatures::detect().fp16 {
                k.f16_native = true;
                k.f16_gemm = slot!(f16_gemm::neon::gemm_4x16);
                k.f16_dwconv = slot!(f16_dwconv::neon::dwconv_16c);
            }
        }
    }
    k
}

/// The best kernels for this CPU (highest detected tier; ignores `FERROLITE_ISA`).
pub fn best() -> Kernels {
    for_isa(CpuFeatures::detect().best_isa())
}

/// The kernels to use: `FERROLITE_ISA` if set (an invalid value or a tier this CPU lacks is
/// an error), else [`best`]. [`crate::exec::Session::new`] uses this.
pub fn from_env() -> Result<Kernels> {
    Ok(for_isa(cpu::select_isa()?))
}

impl Kernels {
    /// `(slot, kernel name)` for every slot, for logs and `inspect`.
    pub fn names(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("f32_gemm", self.f32_gemm.name),
            ("f32_dwconv", self.f32_dwconv.name),
            ("f32_conv", self.f32_conv.name),
            ("f32_maxpool", self.f32_maxpool.name),
            ("f32_avgpool", self.f32_avgpool.name),
            ("f32_global_avg", self.f32_global_avg.name),
            ("f32_binary", self.f32_binary.name),
            ("f32_binary_channel", self.f32_binary_channel.name),
            ("f32_binary_strided", self.f32_binary_strided.name),
            ("f32_activation", self.f32_activation.name),
            ("f32_affine", self.f32_affine.name),
            ("f32_layer_norm", self.f32_layer_norm.name),
            ("f32_softmax", self.f32_softmax.name),
            ("f32_copy", self.f32_copy.name),
            ("f32_interleave2", self.f32_interleave2.name),
            ("f16_gemm", self.f16_gemm.name),
            ("f16_dwconv", self.f16_dwconv.name),
            ("qs8_gemm", self.qs8_gemm.name),
            ("qs8_dwconv", self.qs8_dwconv.name),
            ("qs8_quantize", self.qs8_quantize.name),
            ("qs8_binary", self.qs8_binary.name),
        ]
    }
}
