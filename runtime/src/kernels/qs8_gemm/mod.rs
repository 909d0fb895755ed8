//! int8 GEMM `C[m,n] = requant(bias[n] + A[m,k] · B[k,n])` with unsigned 8-bit activations A,
//! signed 8-bit weights B prepacked, and int32 accumulation (pointwise conv, FC, im2col conv).
//!
//! The activation zero point is folded into `bias` by the caller ([`fold_zero_point`]), so
//! kernels see raw bytes. B is packed once into panels of [`NR`] columns with `k` padded to a
//! multiple of [`KR`], four consecutive `k` of one column adjacent (the operand order of
//! `vpdpbusd` and `sdot`):
//! `packed[p*kp*NR + (kk/KR)*NR*KR + j*KR + kk%KR] = B[kk][p*NR + j]`, zero-padded.
//! The output stage is [`crate::kernels::requant`]'s rule.
//!
//! One file per ISA, all byte-identical to `scalar` (the reference): `avx2` (exact 16-bit
//! products, `vpmaddwd`), `avx512` (VNNI `vpdpbusd`) and `neon` (aarch64: `sdot`, or
//! widening multiplies without dotprod).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

use super::requant::Requant;

/// Width of a packed B panel.
pub const NR: usize = 16;
/// Depth of one packed group of `k`.
pub const KR: usize = 4;

/// A residual added in the output stage: `t += f32(r - zero_point) * scale`.
pub struct QResidual<'a> {
    /// Same geometry as the u8 output (`ldc`).
    pub r: &'a [u8],
    pub zero_point: i32,
    pub scale: f32,
}

/// Where and how a quantized GEMM writes its result.
pub enum QOut<'a> {
    /// Requantized 8-bit output, row `i` at `c[i*ldc..][..n]`.
    U8 {
        c: super::OutMat<'a, u8>,
        ldc: usize,
        /// Per output column: `input scale * weight scale[j] / output scale`.
        scale: &'a [f32],
        rq: Requant,
        residual: Option<QResidual<'a>>,
    },
    /// Dequantized f32 output (`c = f32(acc) * scale[j]`), for a model's last layer.
    F32 {
        c: super::OutMat<'a, f32>,
        ldc: usize,
        /// Per output column: `input scale * weight scale[j]`.
        scale: &'a [f32],
    },
}

/// Arguments of a quantized GEMM call.
pub struct QGemmParams<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Row `i` at `a[i*lda..][..k]`.
    pub a: &'a [u8],
    pub lda: usize,
    /// B packed by [`pack_b_transposed`].
    pub b: &'a [i8],
    /// Length `n`, activation zero point already folded in.
    pub bias: &'a [i32],
    pub out: QOut<'a>,
}

/// Signature of a quantized GEMM kernel.
pub type QGemmFn = fn(QGemmParams<'_>);

/// `k` rounded up to a multiple of [`KR`].
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(KR) * KR
}

/// Number of bytes of a packed B for `k x n`.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * padded_k(k) * NR
}

/// Pack `W[n][k]` (output-major, as conv and FC weights are stored) as B = Wᵀ.
pub fn pack_b_transposed(k: usize, n: usize, w: &[i8]) -> Vec<i8> {
    let kp = padded_k(k);
    let mut out = vec![0i8; packed_len(k, n)];
    for j in 0..n {
        let (p, jj) = (j / NR, j % NR);
        for kk in 0..k {
            out[p * kp * NR + (kk / KR) * NR * KR + jj * KR + kk % KR] = w[j * k + kk];
        }
    }
    out
}

/// `bias[j] - zero_point * Σ_k W[j][k]`: the bias that lets kernels multiply raw activation
/// bytes (`Σ (a - zp)·w = Σ a·w - zp·Σ w`). `w` is `W[n][k]`.
pub fn fold_zero_point(bias: &[i32], w: &[i8], k: usize, zero_point: i32) -> Vec<i32> {
    bias.iter()
        .enumerate()
        .map(|(j, &b)| {
            let sum: i32 = w[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum();
            b.wrapping_sub(zero_point.wrapping_mul(sum))
        })
        .collect()
}

/// Assert that every slice covers the region a kernel touches.
pub fn check_lengths(p: &QGemmParams<'_>) {
    let rows = |ld: usize, cols: usize| {
        (p.m - 1)
            .checked_mul(ld)
            .and_then(|v| v.checked_add(cols))
            .expect("qgemm: matrix extent overflows usize")
    };
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.k > 0 {
        assert!(p.a.len() >= rows(p.lda, p.k), "qgemm: A too short");
        assert!(
            p.b.len() >= packed_len(p.k, p.n),
            "qgemm: packed B too short"
        );
    }
    assert!(p.bias.len() >= p.n, "qgemm: bias too short");
    match &p.out {
        QOut::U8 {
            c,
            ldc,
            scale,
            residual,
            ..
        } => {
            assert!(c.len() >= rows(*ldc, p.n), "qgemm: C too short");
            assert!(scale.len() >= p.n, "qgemm: scale too short");
            if let Some(r) = residual {
                assert!(r.r.len() >= rows(*ldc, p.n), "qgemm: residual too short");
            }
        }
        QOut::F32 { c, ldc, scale } => {
            assert!(c.len() >= rows(*ldc, p.n), "qgemm: C too short");
            assert!(scale.len() >= p.n, "qgemm: scale too short");
        }
    }
}

/// Where a SIMD kernel writes: the raw form of [`QOut`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
pub(super) enum RawOut {
    /// Requantized bytes; `res` is the residual `(r, zero point, scale)`.
    U8 {
        c: *mut u8,
        scale: *const f32,
        rq: Requant,
        res: Option<(*const u8, i32, f32)>,
    },
    /// Dequantized floats.
    F32 { c: *mut f32, scale: *const f32 },
}

/// Raw view of the operands for the SIMD kernels (pointers proven in range by
/// [`check_lengths`]): their tiles address A, B and C by offset, and a shared view lets the
/// AVX2 and AVX-512 files agree on one output stage layout.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) struct QOps {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) a: *const u8,
    pub(super) lda: usize,
    pub(super) b: *const i8,
    pub(super) bias: *const i32,
    pub(super) ldc: usize,
    pub(super) out: RawOut,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl QOps {
    /// The raw view of `p` (check it with [`check_lengths`] before dereferencing).
    pub(super) fn new(p: QGemmParams<'_>) -> QOps {
        let (ldc, out) = match p.out {
            QOut::U8 {
                mut c,
                ldc,
                scale,
                rq,
                residual,
            } => (
                ldc,
                RawOut::U8 {
                    c: c.as_mut_ptr(),
                    scale: scale.as_ptr(),
                    rq,
                    res: residual.map(|r| (r.r.as_ptr(), r.zero_point, r.scale)),
                },
            ),
            QOut::F32 { mut c, ldc, scale } => (
                ldc,
                RawOut::F32 {
                    c: c.as_mut_ptr(),
                    scale: scale.as_ptr(),
                },
            ),
        };
        QOps {
            m: p.m,
            n: p.n,
            k: p.k,
            a: p.a.as_ptr(),
            lda: p.lda,
            b: p.b.as_ptr(),
            bias: p.bias.as_ptr(),
            ldc,
            out,
        }
    }

    /// Bytes between two packed B panels.
    pub(super) fn panel_stride(&self) -> usize {
        padded_k(self.k) * NR
    }

    /// Bytes `4g..4g+4` of row `row` of A as one little-endian word, the tail group
    /// (`4g + 4 > k`) zero-filled without reading past the row.
    ///
    /// # Safety
    /// `row < m` and `4g < k`, with [`check_lengths`] holding.
    #[inline(always)]
    pub(super) unsafe fn a_word(&self, row: usize, g: usize) -> u32 {
        let kk = g * KR;
        // SAFETY: row `row` of A holds `k` bytes at `a + row*lda` (check_lengths); the
        // four-byte read is used only when `kk + 4 <= k`, the tail reads bytes `kk..k`.
        unsafe {
            let src = self.a.add(row * self.lda + kk);
            if kk + KR <= self.k {
                (src as *const u32).read_unaligned()
            } else {
                let mut w = 0u32;
                for t in 0..self.k - kk {
                    w |= (*src.add(t) as u32) << (8 * t);
                }
                w
            }
        }
    }
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The int8 GEMM kernels, best first (see [`super::registry::select`]): VNNI where the CPU has
/// it (else the AVX2 one), `sdot` where it has dotprod (else widening multiplies).
pub static GEMM: &[Entry<QGemmFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(
        qs8_gemm::avx512::qgemm_8x32,
        needs = [Avx512f, Avx512bw, Avx512vnni]
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(qs8_gemm::avx2::qgemm_6x8, needs = [Avx2]),
    #[cfg(target_arch = "aarch64")]
    kernel!(qs8_gemm::neon::qgemm_4x16_dot, needs = [Neon, Dotprod]),
    #[cfg(target_arch = "aarch64")]
    kernel!(qs8_gemm::neon::qgemm_2x16_mull, needs = [Neon]),
    kernel!(qs8_gemm::scalar::qgemm_1x16),
];
