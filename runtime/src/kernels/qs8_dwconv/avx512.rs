//! AVX-512 VNNI int8 depthwise convolution: `vpdpbusd`, four taps per 32-bit lane, on
//! 512-bit registers for 64-channel blocks and 256-bit ones (AVX-512VL) for a remainder of
//! up to 32 channels.
//!
//! **Arithmetic.** Each lane of a `vpdpbusd` accumulates the four products of a channel's four
//! input bytes (unsigned) and four weights (signed) in exact, wrapping int32 arithmetic. Every
//! tap reads a byte, the padding taps the input zero point, and the bias is reduced once per
//! call by `x_zero_point · Σ w` (computed with `vpdpbusd` too), which gives the scalar
//! kernel's `bias + Σ_valid (x - x_zero_point) · w` modulo 2^32, so the output bytes are the
//! same. The output stage is [`crate::kernels::requant`]'s rule, in the order it specifies.
//!
//! **Layout.** A block is one register of bytes per input row: 64 channels (`Z`) or 32
//! (`Y`). Four rows' bytes are interleaved into quads with two `unpack*_epi8` and two
//! `unpack*_epi16`, which work within 128-bit lanes: a block splits into two halves of two
//! registers each (half 0 holds channels 0-7 of each 16-channel lane, half 1 channels 8-15,
//! four per register and lane). The weights get the same interleave at each call (about
//! 20 instructions per block and group of four taps: a few microseconds for a 5x5 kernel on
//! 1152 channels), bias and scale the same channel order, and `packs_epi32` /
//! `packus_epi16` of the two halves' results undo the permutation, so a block's output
//! bytes are stored in order with one store. Channels go in 64-channel blocks, the last one
//! overlapping its predecessor when more than 32 remain, else a 32-channel block (which
//! also overlaps when fewer remain): overlapped channels are recomputed to the same bytes.
//! Fewer than 32 channels run on a channel-padded copy. On Zen 4, which executes 512-bit
//! operations as two 256-bit halves, the 512-bit blocks have the 256-bit ones' throughput
//! and win by needing half the instructions.
//!
//! **Tiled row path** (3x3 and 5x5 kernels at column stride 1 or 2 without column dilation).
//! A tap group is four kernel rows of one kernel column, so a 3x3 kernel needs one
//! `vpdpbusd` per column and register, a 5x5 kernel two. A tile is `P` output pixels of `R`
//! output rows: for each group and each input column the tile needs, it builds the quads
//! once and feeds every output pixel that uses that column (up to `KW` of them at stride
//! 1), with the group's weights held in registers when they fit. With row stride and
//! dilation 1, on images of at least `PAIR_MIN_PIXELS` (100) output pixels (below,
//! preparing the extra weight quads at each call costs more than it saves), two output rows
//! share one quad (their kernel rows are the quad's rows 0-2 and 1-3 for 3x3, 0-4 and 1-5
//! for 5x5, each with its own weight quads), which halves the interleave work. Padding
//! columns of edge tiles are a splat of the zero point; padding rows point at a row of
//! zero-point bytes. Rows narrower than a tile go pixel by pixel; a row whose width is not
//! a multiple of `P` ends with an overlapping tile. The tile shapes were chosen by
//! measurement on Zen 4.
//!
//! **Generic path** (other kernels, strides and dilations, and [`qdwconv_generic_64c`]): per
//! output pixel, the taps in `(ky, kx)` order are grouped by four.

use core::arch::x86_64::*;

use super::{check_lengths, opaque, pad_channels, simd_exact, ConvGeom, QDwArgs, UNROLL_MAX};
use crate::kernels::f32_conv::interior;

/// Channels of the narrow (256-bit) block, the smallest this kernel computes.
const MIN_BLOCK: usize = 32;
/// Taps per 32-bit lane (`vpdpbusd`).
const G: usize = 4;
/// Input-row slots of a tile (kernel rows plus the second output row's extra row, rounded up
/// to whole groups).
const SLOTS: usize = 8;
/// Vectors per tap group and block in the repacked weights: two halves of two registers.
const UV: usize = 4;
/// Registers a group's kept weights may take (see [`half`]).
const KEEP_MAX: usize = 12;
/// Registers kept weights and accumulators may take together (32 minus the group being
/// built and the input rows it is built from; measured: 3x3 kernels on two rows of four
/// pixels, 28 registers, gain 5-8% from keeping their weights).
const ACC_MAX: usize = 28;

/// Quantized depthwise convolution for any kernel, stride, dilation and padding; 3x3 and 5x5
/// kernels at column stride 1 or 2 take the tiled row path (see the module documentation).
/// Gives the bytes of [`super::scalar::qdwconv_generic`].
///
/// Needs AVX-512F, BW, VL and VNNI; without them it runs [`super::avx2::qdwconv_32c`]
/// (which itself falls back to the scalar kernel), so calling it is always sound. Arguments
/// outside [`simd_exact`] also go to the scalar kernel. Panics (like the scalar kernel) when
/// a slice is too short for the geometry.
pub fn qdwconv_64c(a: QDwArgs<'_>) {
    run(a, true)
}

/// The bytes of [`qdwconv_64c`] without the tiled path: every geometry takes the generic
/// per-pixel path (public so that tests and benchmarks can compare both).
pub fn qdwconv_generic_64c(a: QDwArgs<'_>) {
    run(a, false)
}

/// Whether this CPU runs this file's kernels.
pub fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

fn run(a: QDwArgs<'_>, fast: bool) {
    if !supported() {
        return if fast {
            super::avx2::qdwconv_32c(a)
        } else {
            super::avx2::qdwconv_generic_32c(a)
        };
    }
    if !check_lengths(&a) {
        return;
    }
    if !simd_exact(&a) {
        return super::scalar::qdwconv_generic(a);
    }
    if a.g.c < MIN_BLOCK {
        let f = if fast {
            qdwconv_64c
        } else {
            qdwconv_generic_64c
        };
        return pad_channels(a, MIN_BLOCK, f);
    }
    // SAFETY: the features were detected just above (`for_isa` only installs this kernel
    // for a CPU that has them; the check makes a direct call sound too). `check_lengths`
    // proved that x, w, bias, scale and y cover the geometry, and c >= MIN_BLOCK.
    unsafe { dw(a, fast) }
}

// ------------------------------------------------------------------ register widths

/// A register width: [`Y`] (256-bit, 32-channel blocks) or [`Z`] (512-bit, 64 channels).
/// Each method is one instruction, except the lane loads of the per-call preparation.
///
/// # Safety
/// Every method needs the features of [`supported`]; the pointer arguments must be readable
/// (writable for `store`) over the bytes the method documents.
trait Width {
    /// Integer register.
    type I: Copy;
    /// Float register.
    type F: Copy;
    /// Channels of a block (bytes of a register).
    const BLOCK: usize;
    /// `BLOCK` bytes at `p`.
    unsafe fn load(p: *const u8) -> Self::I;
    /// Store `BLOCK` bytes at `p`.
    unsafe fn store(p: *mut u8, v: Self::I);
    unsafe fn zero() -> Self::I;
    unsafe fn splat8(v: u8) -> Self::I;
    unsafe fn splat16(v: i16) -> Self::I;
    unsafe fn splatf(v: f32) -> Self::F;
    /// `unpacklo_epi8` (`H == 0`) or `unpackhi_epi8`.
    unsafe fn unpack8<const H: usize>(a: Self::I, b: Self::I) -> Self::I;
    /// `unpacklo_epi16` (`HI == 0`) or `unpackhi_epi16`.
    unsafe fn unpack16<const HI: usize>(a: Self::I, b: Self::I) -> Self::I;
    /// `acc + vpdpbusd(x, w)`: `x` unsigned, `w` signed bytes.
    unsafe fn dot(acc: Self::I, x: Self::I, w: Self::I) -> Self::I;
    unsafe fn sub32(a: Self::I, b: Self::I) -> Self::I;
    /// The requantization rule on 32-bit lanes: `cvtps_epi32(min(max(f32(acc) * scale, lo),
    /// hi))` (round half to even under the default rounding mode).
    unsafe fn requant(acc: Self::I, scale: Self::F, lo: Self::F, hi: Self::F) -> Self::I;
    unsafe fn packs32(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn add16(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn packus16(a: Self::I, b: Self::I) -> Self::I;
    /// Both registers of a group as computed (no instruction): keeps LLVM from delaying the
    /// second register's last shuffle, which would keep (spill) its inputs.
    unsafe fn pin(v: [Self::I; 2]) -> [Self::I; 2];
    /// Four 32-bit values at `p + 16*lane` for each 128-bit lane.
    unsafe fn lanes_i32(p: *const i32) -> Self::I;
    /// Four floats at `p + 16*lane` for each 128-bit lane.
    unsafe fn lanes_f32(p: *const f32) -> Self::F;
}

/// 256-bit registers, 32-channel blocks.
struct Y;
/// 512-bit registers, 64-channel blocks.
struct Z;

impl Width for Y {
    type I = __m256i;
    type F = __m256;
    const BLOCK: usize = 32;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: caller contract (unaligned load).
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn store(p: *mut u8, v: __m256i) {
        // SAFETY: caller contract (unaligned store).
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn zero() -> __m256i {
        _mm256_setzero_si256()
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splat8(v: u8) -> __m256i {
        _mm256_set1_epi8(v as i8)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splat16(v: i16) -> __m256i {
        _mm256_set1_epi16(v)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splatf(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn unpack8<const H: usize>(a: __m256i, b: __m256i) -> __m256i {
        if H == 0 {
            _mm256_unpacklo_epi8(a, b)
        } else {
            _mm256_unpackhi_epi8(a, b)
        }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn unpack16<const HI: usize>(a: __m256i, b: __m256i) -> __m256i {
        if HI == 0 {
            _mm256_unpacklo_epi16(a, b)
        } else {
            _mm256_unpackhi_epi16(a, b)
        }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn dot(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, x, w)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn sub32(a: __m256i, b: __m256i) -> __m256i {
        _mm256_sub_epi32(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn requant(acc: __m256i, scale: __m256, lo: __m256, hi: __m256) -> __m256i {
        let t = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi))
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn packs32(a: __m256i, b: __m256i) -> __m256i {
        _mm256_packs_epi32(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn add16(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi16(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn packus16(a: __m256i, b: __m256i) -> __m256i {
        _mm256_packus_epi16(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn pin(mut v: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: an empty template that only claims to redefine two registers; it touches
        // no memory, flags or stack.
        unsafe {
            core::arch::asm!(
                "/* {0} {1} */",
                inout(ymm_reg) v[0],
                inout(ymm_reg) v[1],
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        v
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn lanes_i32(p: *const i32) -> __m256i {
        // SAFETY: caller contract: p..p+4 and p+16..p+20 are readable.
        unsafe { _mm256_loadu2_m128i(p.add(16).cast(), p.cast()) }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn lanes_f32(p: *const f32) -> __m256 {
        // SAFETY: caller contract: p..p+4 and p+16..p+20 are readable.
        unsafe { _mm256_loadu2_m128(p.add(16), p) }
    }
}

impl Width for Z {
    type I = __m512i;
    type F = __m512;
    const BLOCK: usize = 64;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: caller contract (unaligned load).
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn store(p: *mut u8, v: __m512i) {
        // SAFETY: caller contract (unaligned store).
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn zero() -> __m512i {
        _mm512_setzero_si512()
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splat8(v: u8) -> __m512i {
        _mm512_set1_epi8(v as i8)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splat16(v: i16) -> __m512i {
        _mm512_set1_epi16(v)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn splatf(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn unpack8<const H: usize>(a: __m512i, b: __m512i) -> __m512i {
        if H == 0 {
            _mm512_unpacklo_epi8(a, b)
        } else {
            _mm512_unpackhi_epi8(a, b)
        }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn unpack16<const HI: usize>(a: __m512i, b: __m512i) -> __m512i {
        if HI == 0 {
            _mm512_unpacklo_epi16(a, b)
        } else {
            _mm512_unpackhi_epi16(a, b)
        }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn dot(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, x, w)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn sub32(a: __m512i, b: __m512i) -> __m512i {
        _mm512_sub_epi32(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn requant(acc: __m512i, scale: __m512, lo: __m512, hi: __m512) -> __m512i {
        let t = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale);
        _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t, lo), hi))
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn packs32(a: __m512i, b: __m512i) -> __m512i {
        _mm512_packs_epi32(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn add16(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi16(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn packus16(a: __m512i, b: __m512i) -> __m512i {
        _mm512_packus_epi16(a, b)
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn pin(mut v: [__m512i; 2]) -> [__m512i; 2] {
        // SAFETY: an empty template that only claims to redefine two registers; it touches
        // no memory, flags or stack.
        unsafe {
            core::arch::asm!(
                "/* {0} {1} */",
                inout(zmm_reg) v[0],
                inout(zmm_reg) v[1],
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        v
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn lanes_i32(p: *const i32) -> __m512i {
        // SAFETY: caller contract: p + 16*lane .. + 4 are readable for lanes 0..4.
        unsafe {
            let v = _mm512_castsi128_si512(_mm_loadu_si128(p.cast()));
            let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(p.add(16).cast()));
            let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(p.add(32).cast()));
            _mm512_inserti32x4::<3>(v, _mm_loadu_si128(p.add(48).cast()))
        }
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn lanes_f32(p: *const f32) -> __m512 {
        // SAFETY: caller contract: p + 16*lane .. + 4 are readable for lanes 0..4.
        unsafe {
            let v = _mm512_castps128_ps512(_mm_loadu_ps(p));
            let v = _mm512_insertf32x4::<1>(v, _mm_loadu_ps(p.add(16)));
            let v = _mm512_insertf32x4::<2>(v, _mm_loadu_ps(p.add(32)));
            _mm512_insertf32x4::<3>(v, _mm_loadu_ps(p.add(48)))
        }
    }
}

// ------------------------------------------------------------------ per call

/// Repacked weights and the per-block bias and scale, in the channel order of the halves.
struct Prep<W: Width> {
    /// `[block][group][half][register]`.
    wq: Vec<W::I>,
    /// `[block][half][register]`: bias minus `x_zero_point · Σ w`.
    bias: Vec<W::I>,
    /// `[block][half][register]`.
    scale: Vec<W::F>,
}

/// Raw view of the operands of one call for the blocks of one width, shared by the row and
/// pixel functions.
struct Ctx<W: Width> {
    /// Channels (the pixel stride of x and y).
    c: usize,
    /// Input width, left padding and output width.
    w: usize,
    pl: usize,
    ow: usize,
    /// Output columns whose taps are all inside the image.
    ox0: usize,
    ox1: usize,
    /// First channel of each block.
    blocks: *const usize,
    nblocks: usize,
    /// Tap groups per block in `wq`.
    groups: usize,
    wq: *const W::I,
    bias: *const W::I,
    scale: *const W::F,
    /// The input zero point in every byte (a padding column's quads).
    zp: W::I,
    /// Requantization clamp bounds and the output zero point in every 16-bit lane.
    lo: W::F,
    hi: W::F,
    ozp: W::I,
}

/// A row function of the tiled path: all output pixels of `R` output rows (`y[r]` points at
/// row `r`'s first byte) for the blocks of `cx`, from the input rows `rows` (row `i` of the
/// tile at `rows[i]`, column 0, channel 0; slots past the tile's rows repeat its last row).
type RowFn<W> = unsafe fn(&Ctx<W>, &[*const u8; SLOTS], &[*mut u8; 2]);

/// The tiled path's row functions for one geometry and width: one output row, and two output
/// rows sharing their quads when the row stride and dilation are 1.
struct Tiled<W: Width> {
    one: RowFn<W>,
    two: Option<RowFn<W>>,
}

/// Named instances of [`row`] (the names show in profiles).
macro_rules! rows {
    ($($name:ident = $k:literal x $k2:literal s $s:literal, $r:literal rows, $p:literal px;)*) => {$(
        #[doc = concat!("[`row`] for ", stringify!($k), "x", stringify!($k),
            " kernels at column stride ", stringify!($s), ": tiles of ", stringify!($r),
            " output rows x ", stringify!($p), " pixels.")]
        ///
        /// # Safety
        /// As [`row`].
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<W: Width>(cx: &Ctx<W>, rows: &[*const u8; SLOTS], y: &[*mut u8; 2]) {
            // SAFETY: forwarded contract.
            unsafe { row::<W, $k, $k2, $s, $r, $p>(cx, rows, y) }
        }
    )*};
}

rows! {
    row_3x3s1_1r_7px = 3 x 3 s 1, 1 rows, 7 px;
    row_3x3s1_2r_4px = 3 x 3 s 1, 2 rows, 4 px;
    row_3x3s2_1r_4px = 3 x 3 s 2, 1 rows, 4 px;
    row_5x5s1_1r_7px = 5 x 5 s 1, 1 rows, 7 px;
    row_5x5s1_2r_4px = 5 x 5 s 1, 2 rows, 4 px;
    row_5x5s2_1r_4px = 5 x 5 s 2, 1 rows, 4 px;
}

/// Output pixels per image from which the tiled path pairs output rows: below, the second
/// set of weight quads costs more to prepare at each call than it saves.
const PAIR_MIN_PIXELS: usize = 100;

/// The tiled path for this geometry, if it has one.
fn tiled<W: Width>(g: &ConvGeom) -> Option<Tiled<W>> {
    if g.dw != 1 {
        return None;
    }
    let pair = g.sh == 1 && g.dh == 1 && g.oh * g.ow >= PAIR_MIN_PIXELS;
    let (one, two): (RowFn<W>, Option<RowFn<W>>) = match (g.kh, g.kw, g.sw) {
        (3, 3, 1) => (row_3x3s1_1r_7px, Some(row_3x3s1_2r_4px)),
        (3, 3, 2) => (row_3x3s2_1r_4px, None),
        (5, 5, 1) => (row_5x5s1_1r_7px, Some(row_5x5s1_2r_4px)),
        (5, 5, 2) => (row_5x5s2_1r_4px, None),
        _ => return None,
    };
    Some(Tiled {
        one,
        two: two.filter(|_| pair),
    })
}

/// Whether the tiled path of `g` computes two output rows at a time.
fn pairs_rows(g: &ConvGeom) -> bool {
    tiled::<Y>(g).is_some_and(|t| t.two.is_some())
}

/// Tap groups of the tiled path, `[r][group][kx]` for output rows `r < rows`: slot `s` of
/// group `gi` is kernel row `gi*G + s - r` (none outside the kernel). The `groups * kw`
/// groups of row 0 hold every tap once.
fn tile_groups(kh: usize, kw: usize, rows: usize) -> Vec<[Option<usize>; G]> {
    let ng = (kh + rows - 1).div_ceil(G);
    let mut out = Vec::with_capacity(rows * ng * kw);
    for r in 0..rows {
        for gi in 0..ng {
            for kx in 0..kw {
                out.push(std::array::from_fn(|s| {
                    (gi * G + s)
                        .checked_sub(r)
                        .filter(|&ky| ky < kh)
                        .map(|ky| ky * kw + kx)
                }));
            }
        }
    }
    out
}

/// Tap groups of the generic path: the taps in `(ky, kx)` order, four at a time.
fn flat_groups(taps: usize) -> Vec<[Option<usize>; G]> {
    (0..taps.div_ceil(G))
        .map(|gi| std::array::from_fn(|s| Some(gi * G + s).filter(|&t| t < taps)))
        .collect()
}

/// Block starts for `c >= MIN_BLOCK` channels: 64-channel blocks, then, for a remainder of
/// more than 32, one more overlapping the last (two 32-channel blocks below 64 channels),
/// or for a remainder of up to 32, one 32-channel block ending at `c`.
fn block_starts(c: usize) -> (Vec<usize>, Vec<usize>) {
    let (zb, yb) = (Z::BLOCK, Y::BLOCK);
    let mut wide: Vec<usize> = (0..c / zb).map(|b| b * zb).collect();
    let mut narrow = Vec::new();
    match c % zb {
        0 => {}
        r if r <= yb => narrow.push(c - yb),
        _ if c > zb => wide.push(c - zb),
        _ => narrow.extend([0, c - yb]),
    }
    (wide, narrow)
}

/// # Safety
/// The features of [`supported`] must be available, `check_lengths(&a)` must have returned
/// `true`, and `a.g.c >= MIN_BLOCK`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dw(a: QDwArgs<'_>, fast: bool) {
    let g = *a.g;
    let c = g.c;
    let (wide, narrow) = block_starts(c);
    let tiled_path = fast && tiled::<Y>(&g).is_some();
    let (groups, cover) = if tiled_path {
        let rows = if pairs_rows(&g) { 2 } else { 1 };
        let ng = (g.kh + rows - 1).div_ceil(G);
        (tile_groups(g.kh, g.kw, rows), ng * g.kw)
    } else {
        let gr = flat_groups(g.kh * g.kw);
        let n = gr.len();
        (gr, n)
    };
    // SAFETY: every block lies inside 0..c, so the weight, bias and scale reads are inside
    // the slices (`check_lengths`).
    let (zprep, yprep) = unsafe {
        (
            prepare::<Z>(&a, &wide, &groups, cover),
            prepare::<Y>(&a, &narrow, &groups, cover),
        )
    };
    // A row of zero-point bytes for padding rows (with a block of slack for the pixel path,
    // which reads it at channel offsets).
    let zprow = vec![a.x_zero_point as u8; g.w * c + Z::BLOCK];
    // SAFETY: the blocks and their preparations outlive the contexts' use below.
    let (zcx, ycx) = unsafe {
        (
            context::<Z>(&a, &wide, &zprep, groups.len()),
            context::<Y>(&a, &narrow, &yprep, groups.len()),
        )
    };
    let x = a.x.as_ptr();
    let yp = a.y.as_mut_ptr();
    let in_row = |n: usize, iy: usize| {
        (iy < g.h).then(|| {
            // SAFETY: n < g.n and iy < g.h, so the row start is inside x.
            unsafe { x.add((n * g.h + iy) * g.w * c) }
        })
    };
    if tiled_path {
        let (tz, ty) = (tiled::<Z>(&g), tiled::<Y>(&g));
        let (Some(tz), Some(ty)) = (tz, ty) else {
            unreachable!("both widths have the same tiled geometries")
        };
        for n in 0..g.n {
            let mut oy = 0;
            while oy < g.oh {
                let (fz, fy, r) = match (tz.two, ty.two) {
                    (Some(fz), Some(fy)) if oy + 1 < g.oh => (fz, fy, 2),
                    _ => (tz.one, ty.one, 1),
                };
                let ni = g.kh + r - 1;
                let mut rows = [zprow.as_ptr(); SLOTS];
                for (i, row) in rows.iter_mut().enumerate().take(ni) {
                    let iy = (oy * g.sh + i * g.dh).checked_sub(g.pt);
                    if let Some(p) = iy.and_then(|iy| in_row(n, iy)) {
                        *row = p;
                    }
                }
                let last = rows[ni - 1];
                rows[ni..].fill(last);
                // SAFETY: rows oy and oy + r - 1 < oh of image n are inside y.
                let y = unsafe {
                    [
                        yp.add((n * g.oh + oy) * g.ow * c),
                        yp.add((n * g.oh + oy + r - 1) * g.ow * c),
                    ]
                };
                // SAFETY: every row pointer is an input row of image n or the zero-point
                // row (both w*c bytes long), the output rows are inside y, and the contexts
                // describe this geometry, which is the contract of the row functions.
                unsafe {
                    if zcx.nblocks > 0 {
                        fz(&zcx, &rows, &y);
                    }
                    if ycx.nblocks > 0 {
                        fy(&ycx, &rows, &y);
                    }
                }
                oy += r;
            }
        }
        return;
    }
    let taps = g.kh * g.kw;
    let mut ptrs = vec![zprow.as_ptr(); taps.div_ceil(G) * G];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for (t, p) in ptrs.iter_mut().enumerate().take(taps) {
                    let (ky, kx) = (t / g.kw, t % g.kw);
                    *p = match (g.in_y(oy, ky).and_then(|iy| in_row(n, iy)), g.in_x(ox, kx)) {
                        // SAFETY: ix < w, so the pixel is inside the input row.
                        (Some(row), Some(ix)) => unsafe { row.add(ix * c) },
                        _ => zprow.as_ptr(),
                    };
                }
                // SAFETY: each pointer is an input pixel (c bytes) or the zero-point row
                // (w*c + 64 bytes), and the output pixel is inside y.
                unsafe {
                    let y = yp.add(((n * g.oh + oy) * g.ow + ox) * c);
                    pixel(&zcx, &ptrs, y);
                    pixel(&ycx, &ptrs, y);
                }
            }
        }
    }
}

/// The context of width `W` for the blocks `blocks` of the call `a`.
///
/// # Safety
/// The features of [`supported`]; `blocks` and `prep` must outlive the context's use.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn context<W: Width>(
    a: &QDwArgs<'_>,
    blocks: &[usize],
    prep: &Prep<W>,
    groups: usize,
) -> Ctx<W> {
    let g = a.g;
    let (ox0, ox1) = interior(g.ow, g.sw, 1, g.kw, g.pl, g.w);
    // SAFETY: register operations only (features: caller contract).
    unsafe {
        Ctx {
            c: g.c,
            w: g.w,
            pl: g.pl,
            ow: g.ow,
            ox0,
            ox1,
            blocks: blocks.as_ptr(),
            nblocks: blocks.len(),
            groups,
            wq: prep.wq.as_ptr(),
            bias: prep.bias.as_ptr(),
            scale: prep.scale.as_ptr(),
            zp: W::splat8(a.x_zero_point as u8),
            lo: W::splatf(a.rq.lo),
            hi: W::splatf(a.rq.hi),
            ozp: W::splat16(a.rq.zero_point as i16),
        }
    }
}

/// Repack the weights of `groups` for every block, and the blocks' bias (minus
/// `x_zero_point` times the sum of the first `cover` groups' weights, which must hold every
/// tap once) and scale, all in the channel order of [`build`].
///
/// # Safety
/// The features of [`supported`]; `check_lengths(a)` held and every block lies inside
/// `0..c`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn prepare<W: Width>(
    a: &QDwArgs<'_>,
    blocks: &[usize],
    groups: &[[Option<usize>; G]],
    cover: usize,
) -> Prep<W> {
    let c = a.g.c;
    // Absent taps read a row of zeros, so the loop below has no branch.
    let zeros = vec![0i8; c];
    let taps: Vec<[*const i8; G]> = groups
        .iter()
        .map(|slots| slots.map(|t| t.map_or(zeros.as_ptr(), |t| a.w[t * c..].as_ptr())))
        .collect();
    let nw = blocks.len() * groups.len() * UV;
    let mut p = Prep {
        wq: Vec::with_capacity(nw),
        bias: Vec::with_capacity(blocks.len() * UV),
        scale: Vec::with_capacity(blocks.len() * UV),
    };
    // SAFETY: every tap row (or the zero row) has c bytes and channels ch..ch+BLOCK <= c,
    // so the weight loads are inside w or zeros; wq has room for the nw vectors written
    // (then set_len); register k = 2*half + reg of a block holds channels ch + 4k +
    // 16*lane .. + 4 for each 128-bit lane, inside bias and scale.
    unsafe {
        let zp = W::splat8(a.x_zero_point as u8);
        let mut dst: *mut W::I = p.wq.as_mut_ptr();
        for &ch in blocks {
            let mut corr = [W::zero(); UV];
            for (gi, t) in taps.iter().enumerate() {
                let mut rows = [W::zero(); G];
                for (r, &t) in rows.iter_mut().zip(t) {
                    *r = W::load(t.add(ch).cast());
                }
                let (h0, h1) = (build::<W, 0>(rows), build::<W, 1>(rows));
                let v = [h0[0], h0[1], h1[0], h1[1]];
                if gi < cover {
                    for (s, &w) in corr.iter_mut().zip(&v) {
                        *s = W::dot(*s, zp, w);
                    }
                }
                for w in v {
                    dst.write(w);
                    dst = dst.add(1);
                }
            }
            for (k, s) in corr.iter().enumerate() {
                let lo = ch + 4 * k;
                p.bias
                    .push(W::sub32(W::lanes_i32(a.bias.as_ptr().add(lo)), *s));
                p.scale.push(W::lanes_f32(a.scale.as_ptr().add(lo)));
            }
        }
        p.wq.set_len(nw);
    }
    p
}

// ------------------------------------------------------------------ shared pieces

/// Interleave four rows of `BLOCK` bytes into the quads of half `H` (two registers: channels
/// `8H..8H+4` and `8H+4..8H+8` of each 16-channel lane, the rows' bytes of one channel in
/// order in its 32-bit lane).
///
/// # Safety
/// The features of [`supported`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn build<W: Width, const H: usize>(r: [W::I; G]) -> [W::I; 2] {
    // SAFETY: register operations only (features: caller contract).
    unsafe {
        let a = W::unpack8::<H>(r[0], r[1]);
        let b = W::unpack8::<H>(r[2], r[3]);
        [W::unpack16::<0>(a, b), W::unpack16::<1>(a, b)]
    }
}

/// The `BLOCK` bytes at `off` of the `G` rows of group `gi` in `rows`.
///
/// # Safety
/// The features of [`supported`]; each `rows[gi*G + s] + off .. + BLOCK` must be readable.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn load_group<W: Width>(rows: &[*const u8], gi: usize, off: usize) -> [W::I; G] {
    // SAFETY: caller contract.
    unsafe {
        let mut r = [W::zero(); G];
        for (s, v) in r.iter_mut().enumerate() {
            *v = W::load(rows[gi * G + s].wrapping_add(off));
        }
        r
    }
}

/// Requantize a half's two accumulators into its channels' 16-bit values plus the output
/// zero point.
///
/// # Safety
/// The features of [`supported`]; `sc..sc+2` are the half's scale registers.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn requant<W: Width>(cx: &Ctx<W>, acc: [W::I; 2], sc: *const W::F) -> W::I {
    // SAFETY: caller contract.
    unsafe {
        let a = W::requant(acc[0], *sc, cx.lo, cx.hi);
        let b = W::requant(acc[1], *sc.add(1), cx.lo, cx.hi);
        W::add16(W::packs32(a, b), cx.ozp)
    }
}

// ------------------------------------------------------------------ tiled row path

/// [`tile`] along one row group: tiles of `P` pixels (the last one overlapping its
/// predecessor when `P` does not divide the width), or pixel by pixel in rows narrower
/// than `P`. Only tiles inside `[ox0, ox1)` skip the padding checks.
///
/// # Safety
/// The features of [`supported`]; `cx` describes a geometry with a `KH`x`KW` kernel, column
/// stride `S` and column dilation 1 whose slices passed `check_lengths`; `rows` holds the
/// `KH + R - 1` input rows of the group (each `w*c` readable bytes) and repeats the last
/// one; `y[..R]` are output rows of `ow*c` bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn row<
    W: Width,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const R: usize,
    const P: usize,
>(
    cx: &Ctx<W>,
    rows: &[*const u8; SLOTS],
    y: &[*mut u8; 2],
) {
    if cx.ow < P {
        for ox in 0..cx.ow {
            // SAFETY: pixel ox is inside the row.
            unsafe { tile::<W, KH, KW, S, R, 1, true>(cx, rows, y, ox) };
        }
        return;
    }
    let mut ox = 0;
    loop {
        // SAFETY: pixels ox..ox+P are inside the row, and inside [ox0, ox1) for the
        // unchecked tile.
        unsafe {
            if ox >= cx.ox0 && ox + P <= cx.ox1 {
                tile::<W, KH, KW, S, R, P, false>(cx, rows, y, ox);
            } else {
                tile::<W, KH, KW, S, R, P, true>(cx, rows, y, ox);
            }
        }
        if ox + P == cx.ow {
            return;
        }
        ox = (ox + P).min(cx.ow - P);
    }
}

/// All blocks of output pixels `ox..ox+P` of `R` output rows, each block in two halves
/// whose 16-bit results are packed together into the block's output bytes.
///
/// # Safety
/// As [`row`], with `ox + P <= ow`, and without `CHECK` all the tile's input columns inside
/// the image.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile<
    W: Width,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const R: usize,
    const P: usize,
    const CHECK: bool,
>(
    cx: &Ctx<W>,
    rows: &[*const u8; SLOTS],
    y: &[*mut u8; 2],
    ox: usize,
) {
    const { assert!((P - 1) * S + KW <= UNROLL_MAX && (KH + R - 1).div_ceil(G) * G <= SLOTS) };
    // First input column of the tile (negative or past the image only when CHECK), and its
    // columns jlo..jhi that are inside the image.
    let ix0 = (ox * S) as isize - cx.pl as isize;
    let cols = (
        (-ix0).max(0) as usize,
        (cx.w as isize - ix0).max(0) as usize,
    );
    for bi in 0..cx.nblocks {
        // SAFETY: bi < nblocks; the rest is the forwarded contract.
        unsafe {
            let ch = *cx.blocks.add(bi);
            let a = half::<W, KH, KW, S, R, P, CHECK, 0>(cx, rows, bi, ch, ix0, cols);
            let b = half::<W, KH, KW, S, R, P, CHECK, 1>(cx, rows, bi, ch, ix0, cols);
            for r in 0..R {
                for q in 0..P {
                    let dst = y[r].add((ox + q) * cx.c + ch);
                    W::store(dst, W::packus16(a[r][q], b[r][q]));
                }
            }
        }
    }
}

/// Half `H` of block `bi` (first channel `ch`) for the tile's `R x P` pixels, requantized
/// to 16-bit values. For each group of four input rows and each of the tile's input
/// columns, the group is interleaved once (or is the zero-point splat for a padding column)
/// and multiplied into every output pixel and row that uses it, with the weights of its
/// kernel column.
///
/// # Safety
/// As [`tile`], `bi < nblocks`, `ch` its first channel; `ix0` and `cols` as [`tile`]
/// computes them.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn half<
    W: Width,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const R: usize,
    const P: usize,
    const CHECK: bool,
    const H: usize,
>(
    cx: &Ctx<W>,
    rows: &[*const u8; SLOTS],
    bi: usize,
    ch: usize,
    ix0: isize,
    (jlo, jhi): (usize, usize),
) -> [[W::I; P]; R] {
    let ng = (KH + R - 1).div_ceil(G);
    let c = cx.c;
    // SAFETY (all blocks below): block bi's vectors are inside bias, scale and wq, group
    // indices u < groups; input loads are at columns inside the image (off + BLOCK <= w*c
    // in each row, channels ch..ch+BLOCK <= c); the rest are register operations.
    let (bias, wb) = unsafe {
        let b = cx.bias.add(bi * UV + H * 2);
        ([*b, *b.add(1)], cx.wq.add(bi * cx.groups * UV + H * 2))
    };
    let mut acc = [[bias; P]; R];
    // With few enough weights, a group's weights stay in registers for the whole column walk
    // (otherwise each use loads its weight).
    let keep = R * KW * 2 <= KEEP_MAX && R * KW * 2 + R * P * 2 <= ACC_MAX;
    unroll!(@ GI < ng => {
        let gi = GI;
        // Weights of group gi for each output row and kernel column (when kept).
        // SAFETY: see above.
        let mut wk = [[[unsafe { W::zero() }; 2]; KW]; R];
        if keep {
            for (r, wr) in wk.iter_mut().enumerate() {
                if gi * G >= r + KH || r >= gi * G + G {
                    continue;
                }
                for (kx, wv) in wr.iter_mut().enumerate() {
                    for (k, v) in wv.iter_mut().enumerate() {
                        // SAFETY: see above.
                        *v = unsafe { *wb.add(((r * ng + gi) * KW + kx) * UV + k) };
                    }
                }
            }
        }
        // Byte offset of the current column in an input row (wraps below zero, then
        // unused).
        let mut off = opaque(((ix0 * c as isize) as usize).wrapping_add(ch));
        unroll!(J < (P - 1) * S + KW => {
            let inside = !CHECK || (jlo..jhi).contains(&J);
            // A new (opaque) weight pointer per column: each weight is used by every pixel
            // of the tile, and LLVM would otherwise load it once and spill it.
            let wj = opaque(wb as usize) as *const W::I;
            let grp = if inside {
                // SAFETY: see above.
                unsafe { W::pin(build::<W, H>(load_group::<W>(rows, gi, off))) }
            } else {
                [cx.zp; 2]
            };
            for (r, accr) in acc.iter_mut().enumerate() {
                // Whether group gi holds any of output row r's kernel rows.
                if gi * G >= r + KH || r >= gi * G + G {
                    continue;
                }
                for (q, accq) in accr.iter_mut().enumerate() {
                    // Whether pixel q uses input column J (kernel column J - q*S).
                    if !(q * S..q * S + KW).contains(&J) {
                        continue;
                    }
                    let kx = J - q * S;
                    let u = (r * ng + gi) * KW + kx;
                    for (k, s) in accq.iter_mut().enumerate() {
                        // SAFETY: see above.
                        unsafe {
                            let w = if keep { wk[r][kx][k] } else { *wj.add(u * UV + k) };
                            *s = W::dot(*s, grp[k], w);
                        }
                    }
                }
            }
            off = opaque(off.wrapping_add(c));
        });
        // The last column's step is not used.
        let _ = off;
    }; 0 1);
    // SAFETY: see above.
    let sc = unsafe { cx.scale.add(bi * UV + H * 2) };
    // SAFETY: see above.
    let mut out = [[unsafe { W::zero() }; P]; R];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, &a) in o.iter_mut().zip(a) {
            // SAFETY: see above.
            *o = unsafe { requant(cx, a, sc) };
        }
    }
    out
}

// ------------------------------------------------------------------ generic path

/// All blocks of `cx` for one output pixel from its taps' input pixels (`ptrs`, padded to
/// whole groups; padding taps point at zero-point bytes).
///
/// # Safety
/// The features of [`supported`]; generic-path `cx`; each pointer has `c` readable bytes
/// (`c + 64` for the zero-point row), `y` points at an output pixel's `c` bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pixel<W: Width>(cx: &Ctx<W>, ptrs: &[*const u8], y: *mut u8) {
    for bi in 0..cx.nblocks {
        // SAFETY: forwarded contract; bi < nblocks.
        unsafe {
            let ch = *cx.blocks.add(bi);
            let a = pixel_half::<W, 0>(cx, ptrs, bi, ch);
            let b = pixel_half::<W, 1>(cx, ptrs, bi, ch);
            W::store(y.add(ch), W::packus16(a, b));
        }
    }
}

/// Half `H` of block `bi` for one pixel, requantized to 16-bit values.
///
/// # Safety
/// As [`pixel`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pixel_half<W: Width, const H: usize>(
    cx: &Ctx<W>,
    ptrs: &[*const u8],
    bi: usize,
    ch: usize,
) -> W::I {
    // SAFETY: block bi's vectors are inside bias, scale and wq; every group's pointers have
    // channels ch..ch+BLOCK readable.
    unsafe {
        let b = cx.bias.add(bi * UV + H * 2);
        let mut acc = [*b, *b.add(1)];
        let wb = cx.wq.add(bi * cx.groups * UV + H * 2);
        for gi in 0..ptrs.len() / G {
            let grp = build::<W, H>(load_group::<W>(ptrs, gi, ch));
            for (k, s) in acc.iter_mut().enumerate() {
                *s = W::dot(*s, grp[k], *wb.add(gi * UV + k));
            }
        }
        requant(cx, acc, cx.scale.add(bi * UV + H * 2))
    }
}
