//! fp16-arithmetic GEMM for aarch64 cores with FEAT_FP16 (Cortex-A76/A78/X1, Raspberry Pi
//! 5). Rows of A are converted to f16 once per row block (`fcvtn`); 4x16 register tiles
//! multiply-accumulate in fp16 (`fmla .8h` by element, 8 lanes per instruction, twice the
//! f32 rate). Partial sums are widened (`fcvtl`) into f32 accumulators every [`KC`] k, so
//! an fp16 chain never sums more than [`KC`] products; bias, residual and the activation
//! are applied in f32 and the result is stored as f32.
//!
//! fp16 intrinsics are unstable in Rust: the fp16 instructions are written with `asm!`
//! inside `#[target_feature(enable = "neon,fp16")]` functions, vectors travel in the
//! stable `uint16x8_t` / `float32x4_t` types.

use super::{check_lengths, f16, padded_k, F16GemmParams, NR};
use crate::kernels::cpu::CpuFeatures;
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::neon_ops::{self as v, F32x4};
use core::arch::aarch64::*;
use core::arch::asm;

/// Rows per register tile (8 fp16 + 16 f32 accumulators, 4 A and 2 B registers).
const MR: usize = 4;
/// Longest fp16 accumulation chain: products summed in fp16 before widening to f32.
pub const KC: usize = 32;
/// Rows of A converted to f16 at a time (their halves stay in L1/L2 across all panels).
const ROW_BLOCK: usize = 64;

/// `acc += b * a[lane]` on eight halves (`a` must sit in v0-v15 for the by-element form).
macro_rules! fmla_lane {
    ($acc:expr, $b:expr, $a:expr, $lane:literal) => {
        asm!(
            concat!("fmla {acc:v}.8h, {b:v}.8h, {a:v}.h[", $lane, "]"),
            acc = inout(vreg) $acc,
            b = in(vreg) $b,
            a = in(vreg_low16) $a,
            options(pure, nomem, nostack)
        )
    };
}

/// Widens the low (`fcvtl`) or high (`fcvtl2`) four halves of a vector to f32.
macro_rules! widen {
    (lo $x:expr) => {{
        let w: float32x4_t;
        asm!("fcvtl {w:v}.4s, {x:v}.4h", w = lateout(vreg) w, x = in(vreg) $x,
             options(pure, nomem, nostack));
        w
    }};
    (hi $x:expr) => {{
        let w: float32x4_t;
        asm!("fcvtl2 {w:v}.4s, {x:v}.8h", w = lateout(vreg) w, x = in(vreg) $x,
             options(pure, nomem, nostack));
        w
    }};
}
pub(crate) use widen;

/// NEON fp16 GEMM with 4x16 tiles (see [`super::F16GemmParams`]). Panics when a slice is
/// too short for the given dimensions, or when the CPU lacks FEAT_FP16 (the dispatcher
/// only installs it where it is present).
pub fn gemm_4x16(mut p: F16GemmParams<'_>) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    check_lengths(&p);
    assert!(
        CpuFeatures::detect().fp16,
        "f16_gemm::neon needs FEAT_FP16 (fp16 arithmetic)"
    );
    let kp = padded_k(p.k);
    let mut ah = vec![0u16; ROW_BLOCK.min(p.m) * kp];
    let mut ib = 0;
    while ib < p.m {
        let ie = (ib + ROW_BLOCK).min(p.m);
        for r in ib..ie {
            let dst = &mut ah[(r - ib) * kp..][..p.k];
            to_f16(&p.a[r * p.lda..][..p.k], dst);
        }
        for panel in 0..p.n.div_ceil(NR) {
            let mut i = ib;
            while i < ie {
                let rows = MR.min(ie - i);
                let t = Tile {
                    a: ah[(i - ib) * kp..].as_ptr(),
                    kp,
                    b: p.b[panel * kp * NR..].as_ptr(),
                };
                // SAFETY: FEAT_FP16 is present (asserted). `ah` holds `rows` rows of kp
                // halves from (i-ib)*kp (the block has ie-ib rows, padded lanes zero); the
                // panel holds kp*NR halves (check_lengths: b covers packed_len).
                let acc = unsafe {
                    match rows {
                        4 => t.run::<4>().map(Some),
                        3 => pad(t.run::<3>()),
                        2 => pad(t.run::<2>()),
                        _ => pad(t.run::<1>()),
                    }
                };
                let j0 = panel * NR;
                for (r, row) in acc.iter().take(rows).enumerate() {
                    if let Some(row) = row {
                        store_row(&mut p, i + r, j0, row);
                    }
                }
                i += rows;
            }
        }
        ib = ie;
    }
}

/// Rows of an R<4 tile as the 4-row array the store loop walks.
fn pad<const R: usize>(acc: [[F32x4; 4]; R]) -> [Option<[F32x4; 4]>; MR] {
    std::array::from_fn(|r| acc.get(r).copied())
}

/// Converts f32 to f16 (round to nearest even, as `fcvtn`); `dst.len() == src.len()`.
pub(crate) fn to_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "to_f16: length mismatch");
    let n8 = src.len() / 8 * 8;
    for (s, d) in src[..n8].chunks_exact(8).zip(dst[..n8].chunks_exact_mut(8)) {
        // SAFETY: `s` holds 8 floats, `d` 8 halves; fcvtn is base ARMv8 NEON.
        unsafe {
            let lo = vld1q_f32(s.as_ptr());
            let hi = vld1q_f32(s.as_ptr().add(4));
            let h: uint16x8_t;
            asm!(
                "fcvtn {h:v}.4h, {lo:v}.4s",
                "fcvtn2 {h:v}.8h, {hi:v}.4s",
                h = out(vreg) h,
                lo = in(vreg) lo,
                hi = in(vreg) hi,
                options(pure, nomem, nostack)
            );
            vst1q_u16(d.as_mut_ptr(), h);
        }
    }
    for (s, d) in src[n8..].iter().zip(&mut dst[n8..]) {
        *d = f16::from_f32(*s).to_bits();
    }
}

/// Operands of one register tile.
struct Tile {
    /// Row 0 of the f16 A block; row r at `a + r*kp`.
    a: *const u16,
    kp: usize,
    /// Start of the packed panel (kp rows of NR halves).
    b: *const f16,
}

impl Tile {
    /// f32 sums of rows `0..R` over the 16 panel columns.
    ///
    /// # Safety
    /// FEAT_FP16 present; `a` readable for R rows of kp halves, `b` for kp*NR halves.
    #[target_feature(enable = "neon,fp16")]
    unsafe fn run<const R: usize>(&self) -> [[F32x4; 4]; R] {
        let kp = self.kp;
        let mut acc32 = [[vdupq_n_f32(0.0); 4]; R];
        // SAFETY: every load stays within the R rows of A (kk + 8 <= kp) and the kp rows of
        // the panel (bp advances NR per k, kp times in all); asm blocks touch registers
        // only.
        unsafe {
            let mut bp = self.b.cast::<u16>();
            let mut kk = 0;
            while kk < kp {
                let kend = (kk + KC).min(kp);
                let mut acc = [[vdupq_n_u16(0); 2]; R];
                while kk < kend {
                    let a: [uint16x8_t; R] =
                        std::array::from_fn(|r| vld1q_u16(self.a.add(r * kp + kk)));
                    macro_rules! step {
                        ($lane:literal) => {
                            let b0 = vld1q_u16(bp);
                            let b1 = vld1q_u16(bp.add(8));
                            for r in 0..R {
                                fmla_lane!(acc[r][0], b0, a[r], $lane);
                                fmla_lane!(acc[r][1], b1, a[r], $lane);
                            }
                            bp = bp.add(NR);
                        };
                    }
                    step!("0");
                    step!("1");
                    step!("2");
                    step!("3");
                    step!("4");
                    step!("5");
                    step!("6");
                    step!("7");
                    kk += 8;
                }
                for r in 0..R {
                    let s = &mut acc32[r];
                    s[0] = vaddq_f32(s[0], widen!(lo acc[r][0]));
                    s[1] = vaddq_f32(s[1], widen!(hi acc[r][0]));
                    s[2] = vaddq_f32(s[2], widen!(lo acc[r][1]));
                    s[3] = vaddq_f32(s[3], widen!(hi acc[r][1]));
                }
            }
        }
        acc32
    }
}

/// Bias, residual and activation for one tile row (in f32), then the store of its
/// columns `j0..min(j0+16, n)`. Panics when C, bias or residual is too short.
#[inline(always)]
fn store_row(p: &mut F16GemmParams<'_>, row: usize, j0: usize, acc: &[F32x4; 4]) {
    let w = NR.min(p.n - j0);
    let off = row * p.ldc + j0;
    let mut tmp = [0f32; NR];
    for (g, &a) in acc.iter().enumerate() {
        // SAFETY: tmp holds 16 floats, four vectors of four (g < 4).
        unsafe { v::store(tmp.as_mut_ptr().add(4 * g), a) };
    }
    let c = &mut p.c[off..off + w];
    c.copy_from_slice(&tmp[..w]);
    if let Some(bias) = p.bias {
        for (x, b) in c.iter_mut().zip(&bias[j0..j0 + w]) {
            *x += b;
        }
    }
    if let Some(res) = p.residual {
        for (x, r) in c.iter_mut().zip(&res[off..off + w]) {
            *x += r;
        }
    }
    activation(p.act, c);
}
