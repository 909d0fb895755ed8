//! Compute kernels, one folder per dtype + op family. Families ported to the vector trait
//! ([`simd`]: f32 depthwise and element-wise so far) have one generic body instantiated per
//! ISA by a macro in the family's `mod.rs`; the others still keep one file per ISA.
//!
//! Kernels take slices and plain dimensions (no IR types) so they can be tested and
//! benchmarked on their own. Each family folder lists its kernels once per slot in a
//! registry ([`registry`]: `f32_gemm::GEMM`, ...), and the planner picks one function pointer
//! per slot once from those lists ([`best`], [`for_isa`]); [`generic`] is the scalar set.

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
pub mod registry;
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

/// Declares [`Kernels`] from one list of slots, each with its field docs, function type and
/// family registry, and derives from that list the selection ([`for_cpu`]), the names
/// ([`Kernels::names`]) and the listing ([`catalog`]): a slot is named once.
macro_rules! kernel_slots {
    ($($(#[$doc:meta])* $slot:ident: $ty:ty = $registry:path,)*) => {
        /// The set of kernels a plan dispatches to, chosen once for this CPU.
        #[derive(Debug, Clone, Copy)]
        pub struct Kernels {
            /// Tier the slots were chosen for.
            pub isa: Isa,
            /// fp16 arithmetic is native on this tier (the f16 slots hold fp16-arithmetic
            /// kernels): the planner then keeps an fp16 bundle's pointwise and depthwise
            /// weights in f16 and runs them through [`Kernels::f16_gemm`] /
            /// [`Kernels::f16_dwconv`].
            pub f16_native: bool,
            $($(#[$doc])* pub $slot: Slot<$ty>,)*
        }

        /// The kernels of tier `isa` for a CPU with features `cpu`: every slot holds the
        /// [`registry::select`] pick of its family's registry (the first dispatched entry
        /// serving the tier that `cpu` runs and prefers, else the scalar entry).
        /// [`for_isa`] is this with the detected features.
        pub fn for_cpu(isa: Isa, cpu: &CpuFeatures) -> Kernels {
            let k = Kernels {
                isa,
                f16_native: false,
                $($slot: registry::select($registry, isa, cpu).slot(),)*
            };
            Kernels {
                f16_native: f16_native(isa, cpu),
                ..k
            }
        }

        impl Kernels {
            /// `(slot, kernel name)` for every slot, for logs and `inspect`.
            pub fn names(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($slot), self.$slot.name),)*]
            }
        }

        /// Every slot with its registry's entries (functions erased), best first: what
        /// dispatch chooses from, for listings and tests.
        pub fn catalog() -> Vec<(&'static str, Vec<registry::Entry<()>>)> {
            vec![$((
                stringify!($slot),
                $registry.iter().map(registry::Entry::erased).collect(),
            ),)*]
        }
    };
}

kernel_slots! {
    /// Packed-B GEMM with fused bias, residual and activation (pointwise conv, FC, MatMul).
    f32_gemm: f32_gemm::GemmFn = f32_gemm::GEMM,
    /// Depthwise convolution, NHWC.
    f32_dwconv: f32_dwconv::DwConvFn = f32_dwconv::DWCONV,
    /// General dense / grouped convolution, NHWC.
    f32_conv: f32_conv::ConvFn = f32_conv::CONV,
    /// Max pooling, NHWC.
    f32_maxpool: f32_pool::MaxPoolFn = f32_pool::MAXPOOL,
    /// Average pooling, NHWC.
    f32_avgpool: f32_pool::AvgPoolFn = f32_pool::AVGPOOL,
    /// Global average pooling, NHWC.
    f32_global_avg: f32_pool::GlobalAvgFn = f32_pool::GLOBAL_AVG,
    /// Same-shape binary op.
    f32_binary: f32_eltwise::BinaryFn = f32_eltwise::BINARY,
    /// Binary op with a per-channel (channels-last) operand.
    f32_binary_channel: f32_eltwise::BinaryChannelFn = f32_eltwise::BINARY_CHANNEL,
    /// Binary op on one strided row (generic broadcasting).
    f32_binary_strided: f32_eltwise::BinaryStridedFn = f32_eltwise::BINARY_STRIDED,
    /// Activation in place.
    f32_activation: f32_eltwise::ActivationFn = f32_eltwise::ACTIVATION,
    /// Per-channel affine (BatchNorm).
    f32_affine: f32_eltwise::AffineFn = f32_eltwise::AFFINE,
    /// Layer normalization of one strided row.
    f32_layer_norm: f32_norm::LayerNormFn = f32_norm::LAYER_NORM,
    /// Softmax over one strided row.
    f32_softmax: f32_softmax::SoftmaxFn = f32_softmax::SOFTMAX,
    /// Strided row copy (data movement).
    f32_copy: f32_copy::CopyFn = f32_copy::COPY,
    /// Pairwise interleave of strided rows (two-group channel shuffle).
    f32_interleave2: f32_copy::Interleave2Fn = f32_copy::INTERLEAVE2,
    /// Packed-B GEMM with f16 weights, f32 activations (fp16 bundles' pointwise convs).
    f16_gemm: f16_gemm::F16GemmFn = f16_gemm::GEMM,
    /// Depthwise convolution with f16 weights, f32 activations, NHWC.
    f16_dwconv: f16_dwconv::F16DwConvFn = f16_dwconv::DWCONV,
    /// int8 packed-B GEMM with requantization (pointwise conv, FC, im2col conv).
    qs8_gemm: qs8_gemm::QGemmFn = qs8_gemm::GEMM,
    /// int8 depthwise convolution, NHWC.
    qs8_dwconv: qs8_dwconv::QDwConvFn = qs8_dwconv::DWCONV,
    /// f32 -> 8-bit per-tensor quantization (model inputs).
    qs8_quantize: qs8_convert::QuantizeFn = qs8_convert::QUANTIZE,
    /// int8 add / multiply with rescaling.
    qs8_binary: qs8_eltwise::QBinaryFn = qs8_eltwise::BINARY,
}

/// Whether tier `isa` on `cpu` runs fp16 arithmetic: both f16 slots hold a non-scalar
/// (fp16-arithmetic) kernel.
fn f16_native(isa: Isa, cpu: &CpuFeatures) -> bool {
    registry::select(f16_gemm::GEMM, isa, cpu).isa != Isa::Scalar
        && registry::select(f16_dwconv::DWCONV, isa, cpu).isa != Isa::Scalar
}

/// The portable scalar kernels: always available, the fallback and the test oracle.
pub fn generic() -> Kernels {
    for_cpu(Isa::Scalar, &CpuFeatures::default())
}

/// Kernels for a given tier on this CPU ([`for_cpu`] with the detected features): each slot
/// holds its registry's best kernel for the tier, or the scalar one.
pub fn for_isa(isa: Isa) -> Kernels {
    for_cpu(isa, &CpuFeatures::detect())
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

#[cfg(test)]
mod tests {
    use super::*;

    type Names = Vec<(&'static str, &'static str)>;

    /// The hand-written dispatch that the registries replaced, as names: the oracle that the
    /// data-driven [`for_cpu`] must reproduce on every tier and CPU.
    fn legacy(isa: Isa, cpu: &CpuFeatures) -> (bool, Names) {
        let mut v: Names = vec![
            ("f32_gemm", "f32_gemm::scalar::gemm_4x16"),
            ("f32_dwconv", "f32_dwconv::scalar::dwconv_generic"),
            ("f32_conv", "f32_conv::scalar::conv_direct"),
            ("f32_maxpool", "f32_pool::scalar::maxpool"),
            ("f32_avgpool", "f32_pool::scalar::avgpool"),
            ("f32_global_avg", "f32_pool::scalar::global_avg"),
            ("f32_binary", "f32_eltwise::scalar::binary"),
            ("f32_binary_channel", "f32_eltwise::scalar::binary_channel"),
            ("f32_binary_strided", "f32_eltwise::scalar::binary_strided"),
            ("f32_activation", "f32_eltwise::scalar::activation"),
            ("f32_affine", "f32_eltwise::scalar::affine"),
            ("f32_layer_norm", "f32_norm::scalar::layer_norm_strided"),
            ("f32_softmax", "f32_softmax::scalar::softmax_strided"),
            ("f32_copy", "f32_copy::scalar::copy_strided"),
            ("f32_interleave2", "f32_copy::scalar::interleave2"),
            ("f16_gemm", "f16_gemm::scalar::gemm_4x16"),
            ("f16_dwconv", "f16_dwconv::scalar::dwconv_generic"),
            ("qs8_gemm", "qs8_gemm::scalar::qgemm_1x16"),
            ("qs8_dwconv", "qs8_dwconv::scalar::qdwconv_generic"),
            ("qs8_quantize", "qs8_convert::scalar::quantize"),
            ("qs8_binary", "qs8_eltwise::scalar::binary"),
        ];
        #[allow(unused_mut)]
        let mut f16_native = false;
        #[allow(unused_mut, unused_variables)]
        let mut set = |slot: &str, name: &'static str| {
            let e = v.iter_mut().find(|(s, _)| *s == slot).expect(slot);
            e.1 = name;
        };
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx2 | Isa::Avx512 => {
                let wide = isa == Isa::Avx512;
                set("f32_conv", "f32_conv::avx2::conv_direct_6x16");
                set("f32_gemm", "f32_gemm::avx2::gemm_6x16");
                set("f32_dwconv", "f32_dwconv::avx2::dwconv_8c");
                set("f32_activation", "f32_eltwise::avx2::activation_8c");
                set("f32_maxpool", "f32_pool::avx2::maxpool_8c");
                set("f32_avgpool", "f32_pool::avx2::avgpool_8c");
                set("f32_global_avg", "f32_pool::avx2::global_avg_8c");
                set("f32_interleave2", "f32_copy::avx2::interleave2_8c");
                set("f32_binary", "f32_eltwise::avx2::binary_8c");
                set("f32_binary_channel", "f32_eltwise::avx2::binary_channel_8c");
                set("f32_layer_norm", "f32_norm::avx2::layer_norm_8c");
                set("qs8_dwconv", "qs8_dwconv::avx2::qdwconv_32c");
                set("qs8_quantize", "qs8_convert::avx2::quantize_8x");
                set("qs8_binary", "qs8_eltwise::avx2::binary_8x");
                set("qs8_gemm", "qs8_gemm::avx2::qgemm_6x8");
                if wide {
                    set("f32_conv", "f32_conv::avx512::conv_direct_8x32");
                    if !cpu.split_512 {
                        set("f32_gemm", "f32_gemm::avx512::gemm_8x32");
                    }
                    set("f32_dwconv", "f32_dwconv::avx512::dwconv_16c");
                    set("f32_activation", "f32_eltwise::avx512::activation_16c");
                    set("f32_binary", "f32_eltwise::avx512::binary_16c");
                    set(
                        "f32_binary_channel",
                        "f32_eltwise::avx512::binary_channel_16c",
                    );
                    set("f32_layer_norm", "f32_norm::avx512::layer_norm_16c");
                    if cpu.avx512vnni {
                        set("qs8_dwconv", "qs8_dwconv::avx512::qdwconv_64c");
                        set("qs8_gemm", "qs8_gemm::avx512::qgemm_8x32");
                    }
                }
            }
            _ => {}
        }
        #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
        if isa == Isa::Neon {
            #[cfg(target_arch = "aarch64")]
            {
                set("f32_gemm", "f32_gemm::neon::gemm_6x16");
                set("f32_conv", "f32_conv::neon::conv_direct_6x16");
            }
            #[cfg(target_arch = "arm")]
            {
                set("f32_gemm", "f32_gemm::neon::gemm_4x8");
                set("f32_conv", "f32_conv::neon::conv_direct_4x8");
            }
            set("f32_dwconv", "f32_dwconv::neon::dwconv_4c");
            set("f32_activation", "f32_eltwise::neon::activation_4c");
            set("f32_binary", "f32_eltwise::neon::binary_4c");
            set("f32_binary_channel", "f32_eltwise::neon::binary_channel_4c");
            #[cfg(target_arch = "aarch64")]
            {
                set(
                    "qs8_gemm",
                    if cpu.dotprod {
                        "qs8_gemm::neon::qgemm_4x16_dot"
                    } else {
                        "qs8_gemm::neon::qgemm_2x16_mull"
                    },
                );
                set("qs8_dwconv", "qs8_dwconv::neon::qdwconv_8c");
                set("qs8_quantize", "qs8_convert::neon::quantize_16x");
                set("qs8_binary", "qs8_eltwise::neon::binary_16x");
                if cpu.fp16 {
                    f16_native = true;
                    set("f16_gemm", "f16_gemm::neon::gemm_4x16");
                    set("f16_dwconv", "f16_dwconv::neon::dwconv_16c");
                }
            }
        }
        let _ = (isa, cpu);
        (f16_native, v)
    }

    /// Every combination of the features dispatch looks at, on CPUs of this architecture
    /// that run `isa` (an AVX-512 core always has AVX2 and FMA).
    fn cpus(isa: Isa) -> Vec<CpuFeatures> {
        let mut v = Vec::new();
        for bits in 0..16u32 {
            let on = |b: u32| bits & (1 << b) != 0;
            let cpu = if cfg!(target_arch = "x86_64") {
                CpuFeatures {
                    avx2: true,
                    fma: true,
                    f16c: true,
                    avx512f: on(0),
                    avx512bw: on(0),
                    avx512vnni: on(0) && on(1),
                    split_512: on(0) && on(2),
                    ..CpuFeatures::default()
                }
            } else {
                CpuFeatures {
                    neon: cfg!(any(target_arch = "aarch64", ferrolite_arm_neon)),
                    dotprod: cfg!(target_arch = "aarch64") && on(0),
                    fp16: cfg!(target_arch = "aarch64") && on(1),
                    ..CpuFeatures::default()
                }
            };
            if cpu.supports(isa) && !v.contains(&cpu) {
                v.push(cpu);
            }
        }
        v
    }

    #[test]
    fn registries_reproduce_the_hand_written_dispatch() {
        let mut checked = 0;
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
            for cpu in cpus(isa) {
                let k = for_cpu(isa, &cpu);
                let (f16_native, names) = legacy(isa, &cpu);
                assert_eq!(k.names(), names, "{isa:?} on {cpu:?}");
                assert_eq!(k.f16_native, f16_native, "{isa:?} on {cpu:?}");
                assert_eq!(k.isa, isa);
                checked += 1;
            }
        }
        // Every CPU variant on the scalar tier and on each SIMD tier of this architecture.
        let variants = if cfg!(target_arch = "x86_64") {
            5 + 5 + 4
        } else if cfg!(target_arch = "aarch64") {
            4 + 4
        } else if cfg!(ferrolite_arm_neon) {
            1 + 1
        } else {
            1
        };
        assert_eq!(checked, variants, "tier / CPU combinations checked");
        // This CPU, on every tier it runs.
        let cpu = CpuFeatures::detect();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
            if cpu.supports(isa) {
                assert_eq!(for_isa(isa).names(), legacy(isa, &cpu).1, "{isa:?}");
            }
        }
        assert_eq!(generic().names(), legacy(Isa::Scalar, &cpu).1);
        assert!(!generic().f16_native);
    }

    #[test]
    fn every_registry_is_well_formed() {
        let catalog = catalog();
        let slots: Vec<_> = catalog.iter().map(|(s, _)| *s).collect();
        let named: Vec<_> = generic().names().iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, named);
        let mut seen = std::collections::HashSet::new();
        for (slot, entries) in &catalog {
            let scalars = entries
                .iter()
                .filter(|e| e.isa == Isa::Scalar && e.dispatched())
                .count();
            assert_eq!(scalars, 1, "{slot}: {scalars} scalar entries");
            for e in entries {
                let parts: Vec<_> = e.name.split("::").collect();
                assert_eq!(parts.len(), 3, "{}", e.name);
                assert_eq!(parts[1], e.isa.name(), "{}", e.name);
                assert!(seen.insert(e.name), "{} registered twice", e.name);
                if let Some(t) = e.twin_of {
                    let of = entries.iter().find(|d| d.name == t);
                    assert!(
                        of.is_some_and(|d| d.dispatched() && d.isa == e.isa),
                        "{}: twin of {t}, not a dispatched entry of {slot}",
                        e.name
                    );
                }
                // The tile that the planner splits work by is the one the name carries.
                if let Some((rows, _)) = e.tile() {
                    assert_eq!(
                        Slot {
                            f: (),
                            name: e.name
                        }
                        .tile_rows(),
                        rows,
                        "{}",
                        e.name
                    );
                }
            }
        }
    }
}
