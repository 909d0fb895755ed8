//! The vector abstraction the f32 kernels are written against, once for every ISA.
//!
//! [`SimdF32`] is implemented by a zero-sized *token* per instruction set ([`Avx2`],
//! [`Avx512`], [`Neon`]): holding one proves the CPU runs that set (it is only handed out by
//! `detect`), so the arithmetic methods are safe and only the memory accesses are `unsafe`. A kernel body is a generic
//! `#[inline(always)]` function over `S: SimdF32`; [`simd_kernels!`] emits its per-ISA entry
//! points, each a `#[target_feature]` function the body is inlined into (every method here
//! is `#[inline(always)]`, so the intrinsics end up compiled with the tier's features).
//!
//! The activation set ([`apply_act`]), `exp` and the sigmoid are written here once on top of
//! the trait; their operation order is the scalar kernels' (bit-identical for the
//! piecewise-linear activations, a few ulp for the exponential ones).

#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
pub use neon::Neon;
#[cfg(target_arch = "x86_64")]
pub use x86::{avx2, avx512, Avx2, Avx512};

use crate::kernels::Act;

/// An f32 vector instruction set, as a token type (see the module documentation).
///
/// Lanes beyond a tail's length are never read or written by the `_tail` accesses, and
/// load as zero.
pub trait SimdF32: Copy {
    /// A register of [`SimdF32::LANES`] floats.
    type V: Copy;
    /// The lanes of a partial access (a channel tail), made by [`SimdF32::tail`].
    type Tail: Copy;
    /// Floats per register.
    const LANES: usize;

    /// The token, when this CPU runs the instruction set.
    fn detect() -> Option<Self>;
    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Loads `LANES` floats.
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Stores `LANES` floats.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// The first `n` lanes (`n >= LANES` selects all of them).
    fn tail(self, n: usize) -> Self::Tail;
    /// Loads the lanes of `t`, the others zero.
    ///
    /// # Safety
    /// The selected lanes `p..p + n` must be readable.
    unsafe fn load_tail(self, p: *const f32, t: Self::Tail) -> Self::V;
    /// Stores the lanes of `t`.
    ///
    /// # Safety
    /// The selected lanes `p..p + n` must be writable.
    unsafe fn store_tail(self, p: *mut f32, t: Self::Tail, v: Self::V);
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// The ISA's lane-wise maximum; a NaN lane of `a` gives `b` (as `f32::max`) on x86 and
    /// aarch64.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// The ISA's lane-wise minimum; a NaN lane of `a` gives `b` (as `f32::min`) on x86 and
    /// aarch64.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `v` clamped to `[lo, hi]`, a NaN lane of `v` staying NaN (as `f32::clamp`).
    fn clamp(self, v: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// `a * b + c`, fused where the ISA has it (not on 32-bit ARM).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c - a * b`, fused where the ISA has it.
    fn neg_mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `if_neg` where `v < 0`, else `v`.
    fn select_neg(self, v: Self::V, if_neg: Self::V) -> Self::V;
    /// `|v|` (clears the sign bit).
    fn abs(self, v: Self::V) -> Self::V;
    /// `-v` (flips the sign bit).
    fn neg(self, v: Self::V) -> Self::V;
    /// Each lane rounded to the nearest integer (used for range reduction only).
    fn round(self, v: Self::V) -> Self::V;
    /// `p * 2^n` for integral `n` with `2^n` a normal float.
    fn scale_pow2(self, p: Self::V, n: Self::V) -> Self::V;
    /// `1 / d`, from a refined reciprocal estimate where a division costs more.
    fn recip(self, d: Self::V) -> Self::V;
}

/// Per-ISA entry points of kernels written once as generic bodies.
///
/// `simd_kernels!(Avx2, #[target_feature(enable = "avx2,fma")]; fn name(args) => body,
/// else fallback; ...)` makes each `pub fn name(args)`: with the ISA's token it runs
/// `body(token, args)` inside a function carrying the given attribute (the generic body is
/// inlined there and compiled with the tier's features), without it (a CPU lacking the set:
/// only reachable by calling the kernel directly) `fallback(args)`. NEON passes the no-op
/// `#[cfg(all())]`: it is part of every ARM target built here, so it needs no attribute.
macro_rules! simd_kernels {
    ($isa:ty, #[$feat:meta]; $(
        $(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) => $body:path, else $fallback:path;
    )*) => {$(
        $(#[$m])*
        pub fn $name($($a: $t),*) {
            #[$feat]
            unsafe fn enabled(s: $isa, $($a: $t),*) {
                $body(s, $($a),*)
            }
            match <$isa as $crate::kernels::simd::SimdF32>::detect() {
                // SAFETY: the token exists, so this CPU has the features `enabled` is
                // compiled for.
                Some(s) => unsafe { enabled(s, $($a),*) },
                None => $fallback($($a),*),
            }
        }
    )*};
}
pub(crate) use simd_kernels;

/// Whether [`apply_act`] computes `act` in registers (the others go through the scalar
/// `activation` on the stored values).
pub fn vectorised(act: Act) -> bool {
    matches!(
        act,
        Act::None
            | Act::Relu
            | Act::Clip { .. }
            | Act::LeakyRelu { .. }
            | Act::HardSwish
            | Act::HardSigmoid { .. }
            | Act::Abs
            | Act::Neg
            | Act::Sigmoid
            | Act::Silu
    )
}

/// `act(v)` for a [`vectorised`] activation; other activations return `v` unchanged.
///
/// The piecewise-linear ones ([`apply_linear`]) follow the scalar operation order and NaN
/// behaviour and agree with it bit for bit; sigmoid and SiLU use [`exp`], within a few ulp
/// of the scalar.
#[inline(always)]
pub fn apply_act<S: SimdF32>(s: S, act: Act, v: S::V) -> S::V {
    match act {
        Act::Sigmoid => sigmoid(s, v),
        Act::Silu => s.mul(v, sigmoid(s, v)),
        _ => apply_linear(s, act, v),
    }
}

/// The piecewise-linear part of [`apply_act`] (everything but sigmoid and SiLU, which
/// return `v` here): a few instructions, cheap to inline in a kernel's epilogue.
#[inline(always)]
pub fn apply_linear<S: SimdF32>(s: S, act: Act, v: S::V) -> S::V {
    let zero = s.zero();
    match act {
        Act::Relu => s.max(v, zero),
        Act::Clip { min, max } => s.min(s.max(v, s.splat(min)), s.splat(max)),
        Act::LeakyRelu { alpha } => s.select_neg(v, s.mul(v, s.splat(alpha))),
        Act::HardSwish => {
            let t = s.clamp(s.add(v, s.splat(3.0)), zero, s.splat(6.0));
            s.mul(s.mul(v, t), s.splat(1.0 / 6.0))
        }
        Act::HardSigmoid { alpha, beta } => s.clamp(
            s.add(s.mul(s.splat(alpha), v), s.splat(beta)),
            zero,
            s.splat(1.0),
        ),
        Act::Abs => s.abs(v),
        Act::Neg => s.neg(v),
        _ => v,
    }
}

/// `e^x` per lane: range reduction by `ln 2`, degree-6 Taylor polynomial on
/// `|r| <= ln(2)/2` (relative error about 1.2e-7), scaled by `2^n`. Inputs are clamped to
/// the range where the result is a normal float; a NaN lane stays NaN.
#[inline(always)]
pub fn exp<S: SimdF32>(s: S, x: S::V) -> S::V {
    let x = s.clamp(x, s.splat(-87.33), s.splat(88.37));
    let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
    // x - n*ln2 in two steps (the high part of ln 2 has few bits, so n*C1 is exact).
    let r = s.neg_mul_add(n, s.splat(0.693_145_75), x);
    let r = s.neg_mul_add(n, s.splat(1.428_606_8e-6), r);
    let mut p = s.splat(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = s.mul_add(p, r, s.splat(c));
    }
    s.scale_pow2(p, n)
}

/// `1 / (1 + e^-v)` per lane.
#[inline(always)]
pub fn sigmoid<S: SimdF32>(s: S, v: S::V) -> S::V {
    s.recip(s.add(s.splat(1.0), exp(s, s.neg(v))))
}

/// `act` over a whole slice in place: full registers, then one partial register.
#[inline(always)]
pub fn activation_slice<S: SimdF32>(s: S, act: Act, x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(S::LANES);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr();
        // SAFETY: `chunk` holds exactly LANES floats.
        unsafe { s.store(p, apply_act(s, act, s.load(p))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let t = s.tail(rest.len());
        let p = rest.as_mut_ptr();
        // SAFETY: the tail's lanes are the `rest.len()` floats of `rest`.
        unsafe { s.store_tail(p, t, apply_act(s, act, s.load_tail(p, t))) };
    }
}

/// Hide the value of a pointer from the optimiser (no instruction is emitted).
///
/// Walking a kernel's input columns as `p = opaque(p + c)` keeps one register per row:
/// otherwise LLVM precomputes every `row + j*c` as a separate loop-invariant address, runs
/// out of registers and reloads the addresses from the stack.
#[inline(always)]
#[allow(
    clippy::pointers_in_nomem_asm_block,
    reason = "the template is empty: the pointer is never dereferenced"
)]
pub fn opaque(mut p: *const f32) -> *const f32 {
    // SAFETY: an empty template that only claims to redefine the register holding `p`; it
    // reads and writes no memory and leaves the flags and the stack alone.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags))
    };
    p
}
