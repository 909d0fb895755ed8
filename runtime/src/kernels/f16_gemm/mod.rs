//! GEMM with fp16 weights `C[m,n] = act(A[m,k] · B[k,n] + bias[n] + residual[m,n])`: A, C,
//! bias and residual are f32, B is f16 (an fp16 bundle's pointwise weights, kept in half
//! precision at half the memory).
//!
//! B is packed once at load into panels of [`NR`] columns with k padded to a multiple of
//! [`KU`] (zero rows), so vector kernels always consume whole groups of eight k:
//! `packed[p*kp*NR + kk*NR + j] = B[kk][p*NR + j]`, `kp = padded_k(k)`, zero-padded.

#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

use super::Act;
pub use half::f16;

/// Width of a packed B panel (two `.8h` vectors).
pub const NR: usize = 16;
/// k of a packed panel is padded to a multiple of this (the lanes of one `.8h` vector).
pub const KU: usize = 8;

/// Arguments of an f16-weight GEMM call. Rows of A, C and residual are strided (`lda`,
/// `ldc`).
pub struct F16GemmParams<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `A`, row `i` at `a[i*lda..][..k]`.
    pub a: &'a [f32],
    pub lda: usize,
    /// B packed by [`pack_b`] / [`pack_b_transposed`].
    pub b: &'a [f16],
    /// Optional bias of length `n`.
    pub bias: Option<&'a [f32]>,
    /// Optional residual with the same geometry as `c` (`ldc`), added before `act`.
    pub residual: Option<&'a [f32]>,
    /// Output, row `i` at `c[i*ldc..][..n]`.
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub act: Act,
}

/// Signature of an f16-weight GEMM kernel.
pub type F16GemmFn = fn(F16GemmParams<'_>);

/// k rounded up to a multiple of [`KU`]: the row count of a packed panel.
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(KU) * KU
}

/// Number of halves of a packed B for `k x n`.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * padded_k(k) * NR
}

/// Pack a row-major `B[k][n]` into a new buffer (length [`packed_len`]).
pub fn pack_b(k: usize, n: usize, b: &[f16]) -> Vec<f16> {
    let kp = padded_k(k);
    let mut out = vec![f16::ZERO; packed_len(k, n)];
    for kk in 0..k {
        for j in 0..n {
            out[(j / NR) * kp * NR + kk * NR + j % NR] = b[kk * n + j];
        }
    }
    out
}

/// Pack `W[n][k]` (a 1x1-conv weight, output-major) as B = Wᵀ.
pub fn pack_b_transposed(k: usize, n: usize, w: &[f16]) -> Vec<f16> {
    let kp = padded_k(k);
    let mut out = vec![f16::ZERO; packed_len(k, n)];
    for j in 0..n {
        let (p, jj) = (j / NR, j % NR);
        for kk in 0..k {
            out[p * kp * NR + kk * NR + jj] = w[j * k + kk];
        }
    }
    out
}

/// Assert that every slice covers the region a SIMD kernel touches (its pointer
/// arithmetic relies on it).
#[cfg(target_arch = "aarch64")]
pub(super) fn check_lengths(p: &F16GemmParams<'_>) {
    let rows = |ld: usize, cols: usize| {
        (p.m - 1)
            .checked_mul(ld)
            .and_then(|v| v.checked_add(cols))
            .expect("f16 gemm: matrix extent overflows usize")
    };
    if p.k > 0 {
        assert!(p.a.len() >= rows(p.lda, p.k), "f16 gemm: A too short");
        assert!(
            p.b.len() >= packed_len(p.k, p.n),
            "f16 gemm: packed B too short"
        );
    }
    assert!(p.c.len() >= rows(p.ldc, p.n), "f16 gemm: C too short");
    if let Some(r) = p.residual {
        assert!(r.len() >= rows(p.ldc, p.n), "f16 gemm: residual too short");
    }
    if let Some(b) = p.bias {
        assert!(b.len() >= p.n, "f16 gemm: bias too short");
    }
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The f16-weight GEMM kernels, best first (see [`super::registry::select`]): the fp16-arithmetic
/// ones need FEAT_FP16.
pub static GEMM: &[Entry<F16GemmFn>] = &[
    #[cfg(target_arch = "aarch64")]
    kernel!(f16_gemm::neon::gemm_4x16, needs = [Neon, Fp16]),
    kernel!(f16_gemm::scalar::gemm_4x16),
];
