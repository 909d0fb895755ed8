//! f32 GEMM `C[m,n] = act(A[m,k] · B[k,n] + bias[n] + residual[m,n])` with B prepacked.
//!
//! B is packed once (at plan time for weights) into panels of [`NR`] columns:
//! `packed[p*k*NR + kk*NR + j] = B[kk][p*NR + j]`, zero-padded. Every ISA file uses this
//! layout, so packing is shared.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
pub mod neon;
pub mod scalar;

use super::Act;

/// Width of a packed B panel.
pub const NR: usize = 16;

/// Arguments of a GEMM call. Rows of A, C and residual are strided (`lda`, `ldc`).
pub struct GemmParams<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `A`, row `i` at `a[i*lda..][..k]`.
    pub a: &'a [f32],
    pub lda: usize,
    /// B packed by [`pack_b`].
    pub b: &'a [f32],
    /// Optional bias of length `n`.
    pub bias: Option<&'a [f32]>,
    /// Optional residual with the same geometry as `c` (`ldc`), added before `act`.
    pub residual: Option<&'a [f32]>,
    /// Output, row `i` at `c[i*ldc..][..n]`.
    pub c: super::OutMat<'a, f32>,
    pub ldc: usize,
    pub act: Act,
}

/// Signature of a GEMM kernel.
pub type GemmFn = fn(GemmParams<'_>);

/// Assert that every slice covers the region a SIMD kernel touches (its pointer
/// arithmetic relies on it).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_neon))]
pub(super) fn check_lengths(p: &GemmParams<'_>) {
    let rows = |ld: usize, cols: usize| {
        (p.m - 1)
            .checked_mul(ld)
            .and_then(|v| v.checked_add(cols))
            .expect("gemm: matrix extent overflows usize")
    };
    if p.k > 0 {
        assert!(p.a.len() >= rows(p.lda, p.k), "gemm: A too short");
        assert!(
            p.b.len() >= packed_len(p.k, p.n),
            "gemm: packed B too short"
        );
    }
    assert!(p.c.len() >= rows(p.ldc, p.n), "gemm: C too short");
    if let Some(r) = p.residual {
        assert!(r.len() >= rows(p.ldc, p.n), "gemm: residual too short");
    }
    if let Some(b) = p.bias {
        assert!(b.len() >= p.n, "gemm: bias too short");
    }
}

/// Raw view of the operands (pointers proven in range by [`check_lengths`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_neon))]
pub(super) struct Ops {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) a: *const f32,
    pub(super) lda: usize,
    pub(super) b: *const f32,
    pub(super) bias: Option<*const f32>,
    pub(super) residual: Option<*const f32>,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) act: Act,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_neon))]
impl Ops {
    /// The raw view of `p` (check it with [`check_lengths`] before dereferencing).
    pub(super) fn new(mut p: GemmParams<'_>) -> Ops {
        Ops {
            m: p.m,
            n: p.n,
            k: p.k,
            a: p.a.as_ptr(),
            lda: p.lda,
            b: p.b.as_ptr(),
            bias: p.bias.map(|b| b.as_ptr()),
            residual: p.residual.map(|r| r.as_ptr()),
            c: p.c.as_mut_ptr(),
            ldc: p.ldc,
            act: p.act,
        }
    }
}

/// Number of floats of a packed B for `k x n`.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k * NR
}

/// Pack a row-major `B[k][n]` (element `(kk, j)` at `b[kk*ldb + j]`) into `out`
/// (length [`packed_len`]).
pub fn pack_b_into(k: usize, n: usize, b: &[f32], ldb: usize, out: &mut [f32]) {
    if k == 0 {
        return;
    }
    for (p, panel) in out
        .chunks_exact_mut(k * NR)
        .enumerate()
        .take(n.div_ceil(NR))
    {
        let j0 = p * NR;
        let w = NR.min(n - j0);
        for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
            let src = &b[kk * ldb + j0..kk * ldb + j0 + w];
            dst[..w].copy_from_slice(src);
            dst[w..].fill(0.0);
        }
    }
}

/// Pack a row-major `B[k][n]` into a new buffer.
pub fn pack_b(k: usize, n: usize, b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; packed_len(k, n)];
    pack_b_into(k, n, b, n, &mut out);
    out
}

/// Pack `W[n][k]` (an FC / 1x1-conv weight, output-major) as B = Wᵀ.
pub fn pack_b_transposed(k: usize, n: usize, w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; packed_len(k, n)];
    for j in 0..n {
        let (p, jj) = (j / NR, j % NR);
        for kk in 0..k {
            out[p * k * NR + kk * NR + jj] = w[j * k + kk];
        }
    }
    out
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// Whether the 512-bit GEMM tiles are preferred: not on cores that split 512-bit operations.
#[cfg(target_arch = "x86_64")]
fn not_split_512(cpu: &super::CpuFeatures) -> bool {
    !cpu.split_512
}

/// The GEMM kernels, best first (see [`super::registry::select`]): on cores that split 512-bit
/// operations in two (Zen 4) the AVX-512 tier keeps the faster 256-bit tiles.
pub static GEMM: &[Entry<GemmFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(
        f32_gemm::avx512::gemm_8x32,
        needs = [Avx512f],
        preferred = not_split_512
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_gemm::avx2::gemm_6x16, needs = [Avx2, Fma]),
    #[cfg(target_arch = "aarch64")]
    kernel!(f32_gemm::neon::gemm_6x16, needs = [Neon]),
    #[cfg(all(target_arch = "arm", ferrolite_arm_neon))]
    kernel!(f32_gemm::neon::gemm_4x8, needs = [Neon]),
    kernel!(f32_gemm::scalar::gemm_4x16),
];
