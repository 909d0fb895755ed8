//! AVX2 int8 depthwise convolution: `vpmaddwd` on 256-bit registers, two taps per 32-bit
//! lane, 32-channel blocks.
//!
//! **Arithmetic.** Each lane of a `vpmaddwd` multiplies a channel's two input bytes (widened
//! to 16 bits) by its two weights (sign-extended) and adds both products, exactly, into a
//! 32-bit value that `vpaddd` accumulates (wrapping). Every tap reads a byte, the padding
//! taps the input zero point, and the bias is reduced once per call by `x_zero_point · Σ w`
//! (computed with `vpmaddwd` too), which gives the scalar kernel's
//! `bias + Σ_valid (x - x_zero_point) · w` modulo 2^32, so the output bytes are the same.
//! The output stage is [`crate::kernels::requant`]'s rule, in the order it specifies.
//!
//! Without VNNI this path has the multiply-add rate of the f32 kernel (a `vpmaddwd` and a
//! `vpaddd` per 16 multiply-adds, like one 8-lane FMA per 8); the int8 tensors are a quarter
//! of the f32 ones, which is what it gains on layers that do not fit in the caches.
//!
//! **Layout.** A block is 32 channels, one 256-bit load per input row. Two rows' bytes are
//! interleaved into pairs with `unpack*_epi8`, and widened with `unpack*_epi8` against zero,
//! which work within 128-bit lanes: a block splits into two halves of two registers each
//! (half 0 holds channels 0-7 and 16-23, half 1 channels 8-15 and 24-31, four per register
//! and lane). The weights get the same interleave at each call (sign-extended instead of
//! zero-extended), bias and scale the same channel order, and `packs_epi32` /
//! `packus_epi16` of the two halves' results undo the permutation, so the 32 output bytes
//! are stored in order with one store. A channel count that is not a multiple of 32 ends
//! with a block overlapping its predecessor (recomputing the same bytes); fewer than 32
//! channels run on a channel-padded copy.
//!
//! **Tiled row path** (3x3 and 5x5 kernels at column stride 1 or 2 without column dilation).
//! A tap group is two kernel rows of one kernel column (a 3x3 kernel needs two groups per
//! column, a 5x5 kernel three). A tile is `P` output pixels of `R` output rows: for each
//! input column it needs, the tile interleaves each group once and feeds every output pixel
//! that uses that column (up to `KW` of them at stride 1). With row stride and dilation 1,
//! two output rows share their groups (kernel rows 0-2 and 1-3 of a 4-row window for 3x3,
//! 0-4 and 1-5 for 5x5, each with its own weight pairs), which halves the interleave work.
//! Padding columns of edge tiles are a splat of the zero point; padding rows point at a row
//! of zero-point bytes. Rows narrower than a tile go pixel by pixel; a row whose width is
//! not a multiple of `P` ends with an overlapping tile. The tiles are smaller than the
//! AVX-512 kernel's: AVX2 has 16 registers.
//!
//! **Generic path** (other kernels, strides and dilations, and [`qdwconv_generic_32c`]): per
//! output pixel, the taps in `(ky, kx)` order are grouped by two.

use core::arch::x86_64::*;

use super::{check_lengths, opaque, pad_channels, simd_exact, ConvGeom, QDwArgs, UNROLL_MAX};
use crate::kernels::f32_conv::interior;

/// Channels of a block: one 256-bit register of bytes.
const BLOCK: usize = 32;
/// Taps per 32-bit lane (`vpmaddwd`).
const G: usize = 2;
/// Input-row slots of a tile (kernel rows plus the second output row's extra row, rounded up
/// to whole groups).
const SLOTS: usize = 8;
/// Vectors per tap group and block in the repacked weights: two halves of two registers.
const UV: usize = 4;
/// Registers a group's kept weights may take (see [`half`]).
const KEEP_MAX: usize = 6;
/// Registers kept weights and accumulators may take together (16 minus the group being
/// built, its input rows and temporaries).
const ACC_MAX: usize = 11;

/// Quantized depthwise convolution for any kernel, stride, dilation and padding; 3x3 and 5x5
/// kernels at column stride 1 or 2 take the tiled row path (see the module documentation).
/// Gives the bytes of [`super::scalar::qdwconv_generic`].
///
/// Needs AVX2; without it it runs the scalar kernel, so calling it is always sound. Arguments
/// outside [`simd_exact`] also go to the scalar kernel. Panics (like the scalar kernel) when
/// a slice is too short for the geometry.
pub fn qdwconv_32c(a: QDwArgs<'_>) {
    run(a, true)
}

/// The bytes of [`qdwconv_32c`] without the tiled path: every geometry takes the generic
/// per-pixel path (public so that tests and benchmarks can compare both).
pub fn qdwconv_generic_32c(a: QDwArgs<'_>) {
    run(a, false)
}

/// Whether this CPU runs this file's kernels.
pub fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

fn run(a: QDwArgs<'_>, fast: bool) {
    if !supported() {
        return super::scalar::qdwconv_generic(a);
    }
    if !check_lengths(&a) {
        return;
    }
    if !simd_exact(&a) {
        return super::scalar::qdwconv_generic(a);
    }
    if a.g.c < BLOCK {
        let f = if fast {
            qdwconv_32c
        } else {
            qdwconv_generic_32c
        };
        return pad_channels(a, BLOCK, f);
    }
    // SAFETY: avx2 was detected just above (`for_isa` only installs this kernel for a CPU
    // that has it; the check makes a direct call sound too). `check_lengths`
    // proved that x, w, bias, scale and y cover the geometry, and c >= BLOCK.
    unsafe { dw(a, fast) }
}

/// Repacked weights and the per-block bias and scale, in the channel order of the halves.
struct Prep {
    /// `[block][group][half][register]`.
    wq: Vec<__m256i>,
    /// `[block][half][register]`: bias minus `x_zero_point · Σ w`.
    bias: Vec<__m256i>,
    /// `[block][half][register]`.
    scale: Vec<__m256>,
}

/// Raw view of the operands of one call, shared by the row and pixel functions.
struct Ctx {
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
    wq: *const __m256i,
    bias: *const __m256i,
    scale: *const __m256,
    /// The input zero point in every 16-bit lane (a padding column's pairs).
    zp: __m256i,
    /// Requantization clamp bounds and the output zero point in every 16-bit lane.
    lo: __m256,
    hi: __m256,
    ozp: __m256i,
}

/// A row function of the tiled path: all output pixels and channels of `R` output rows
/// (`y[r]` points at row `r`'s first byte) from the input rows `rows` (row `i` of the tile
/// at `rows[i]`, column 0, channel 0; slots past the tile's rows repeat its last row).
type RowFn = unsafe fn(&Ctx, &[*const u8; SLOTS], &[*mut u8; 2]);

/// The tiled path's row functions for one geometry: one output row, and two output rows
/// sharing their tap pairs when the row stride and dilation are 1.
struct Tiled {
    one: RowFn,
    two: Option<RowFn>,
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
        #[target_feature(enable = "avx2")]
        unsafe fn $name(cx: &Ctx, rows: &[*const u8; SLOTS], y: &[*mut u8; 2]) {
            // SAFETY: forwarded contract.
            unsafe { row::<$k, $k2, $s, $r, $p>(cx, rows, y) }
        }
    )*};
}

rows! {
    row_3x3s1_1r_4px = 3 x 3 s 1, 1 rows, 4 px;
    row_3x3s1_2r_2px = 3 x 3 s 1, 2 rows, 2 px;
    row_3x3s2_1r_4px = 3 x 3 s 2, 1 rows, 4 px;
    row_5x5s1_1r_4px = 5 x 5 s 1, 1 rows, 4 px;
    row_5x5s1_2r_2px = 5 x 5 s 1, 2 rows, 2 px;
    row_5x5s2_1r_4px = 5 x 5 s 2, 1 rows, 4 px;
}

/// The tiled path for this geometry, if it has one.
fn tiled(g: &ConvGeom) -> Option<Tiled> {
    if g.dw != 1 {
        return None;
    }
    let pair = g.sh == 1 && g.dh == 1;
    let (one, two): (RowFn, Option<RowFn>) = match (g.kh, g.kw, g.sw) {
        (3, 3, 1) => (row_3x3s1_1r_4px, Some(row_3x3s1_2r_2px)),
        (3, 3, 2) => (row_3x3s2_1r_4px, None),
        (5, 5, 1) => (row_5x5s1_1r_4px, Some(row_5x5s1_2r_2px)),
        (5, 5, 2) => (row_5x5s2_1r_4px, None),
        _ => return None,
    };
    Some(Tiled {
        one,
        two: two.filter(|_| pair),
    })
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

/// Tap groups of the generic path: the taps in `(ky, kx)` order, two at a time.
fn flat_groups(taps: usize) -> Vec<[Option<usize>; G]> {
    (0..taps.div_ceil(G))
        .map(|gi| std::array::from_fn(|s| Some(gi * G + s).filter(|&t| t < taps)))
        .collect()
}

/// # Safety
/// The features of [`supported`] must be available, `check_lengths(&a)` must have returned
/// `true`, and `a.g.c >= BLOCK`.
#[target_feature(enable = "avx2")]
unsafe fn dw(a: QDwArgs<'_>, fast: bool) {
    let g = *a.g;
    let c = g.c;
    let blocks: Vec<usize> = (0..c / BLOCK)
        .map(|b| b * BLOCK)
        .chain((!c.is_multiple_of(BLOCK)).then_some(c - BLOCK))
        .collect();
    let tiled = tiled(&g).filter(|_| fast);
    let (groups, cover) = match &tiled {
        Some(t) => {
            let rows = if t.two.is_some() { 2 } else { 1 };
            let ng = (g.kh + rows - 1).div_ceil(G);
            (tile_groups(g.kh, g.kw, rows), ng * g.kw)
        }
        None => {
            let gr = flat_groups(g.kh * g.kw);
            let n = gr.len();
            (gr, n)
        }
    };
    // SAFETY: c >= BLOCK and every block start is <= c - BLOCK, so the weight, bias and
    // scale reads are inside the slices (`check_lengths`).
    let prep = unsafe { prepare(&a, &blocks, &groups, cover) };
    // A row of zero-point bytes for padding rows (with a block of slack for the pixel path,
    // which reads it at channel offsets).
    let zprow = vec![a.x_zero_point as u8; g.w * c + BLOCK];
    let (ox0, ox1) = interior(g.ow, g.sw, 1, g.kw, g.pl, g.w);
    let cx = Ctx {
        c,
        w: g.w,
        pl: g.pl,
        ow: g.ow,
        ox0,
        ox1,
        blocks: blocks.as_ptr(),
        nblocks: blocks.len(),
        groups: groups.len(),
        wq: prep.wq.as_ptr(),
        bias: prep.bias.as_ptr(),
        scale: prep.scale.as_ptr(),
        zp: _mm256_set1_epi16(a.x_zero_point as i16),
        lo: _mm256_set1_ps(a.rq.lo),
        hi: _mm256_set1_ps(a.rq.hi),
        ozp: _mm256_set1_epi16(a.rq.zero_point as i16),
    };
    let x = a.x.as_ptr();
    let yp = a.y.as_mut_ptr();
    let in_row = |n: usize, iy: usize| {
        (iy < g.h).then(|| {
            // SAFETY: n < g.n and iy < g.h, so the row start is inside x.
            unsafe { x.add((n * g.h + iy) * g.w * c) }
        })
    };
    if let Some(t) = tiled {
        for n in 0..g.n {
            let mut oy = 0;
            while oy < g.oh {
                let (f, r) = match t.two {
                    Some(f) if oy + 1 < g.oh => (f, 2),
                    _ => (t.one, 1),
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
                // row (both w*c bytes long), the output rows are inside y, and cx describes
                // this geometry, which is the contract of the row functions.
                unsafe { f(&cx, &rows, &y) };
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
                // (w*c + BLOCK bytes), and the output pixel is inside y.
                unsafe { pixel(&cx, &ptrs, yp.add(((n * g.oh + oy) * g.ow + ox) * c)) };
            }
        }
    }
}

/// Interleave two rows of 32 bytes into the 16-bit pairs of half `H` (two registers:
/// channels `8H..8H+8` and `16+8H..16+8H+8`, four per register and 128-bit lane, row 0 in
/// the low 16 bits of a channel's 32-bit lane), zero-extending the bytes (inputs) or, with
/// `SIGNED`, sign-extending them (weights).
#[target_feature(enable = "avx2")]
#[inline]
fn build<const H: usize, const SIGNED: bool>(r: [__m256i; G]) -> [__m256i; 2] {
    let p = if H == 0 {
        _mm256_unpacklo_epi8(r[0], r[1])
    } else {
        _mm256_unpackhi_epi8(r[0], r[1])
    };
    let ext = if SIGNED {
        _mm256_cmpgt_epi8(_mm256_setzero_si256(), p)
    } else {
        _mm256_setzero_si256()
    };
    [_mm256_unpacklo_epi8(p, ext), _mm256_unpackhi_epi8(p, ext)]
}

/// `acc + vpmaddwd(x, w)`: two taps of each channel.
#[target_feature(enable = "avx2")]
#[inline]
fn madd(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
}

/// Both registers of a group as computed (no instruction is emitted): keeps LLVM from
/// delaying the second register's last shuffle, which would keep (spill) its inputs.
#[target_feature(enable = "avx2")]
#[inline]
fn pin(mut v: [__m256i; 2]) -> [__m256i; 2] {
    // SAFETY: an empty template that only claims to redefine two registers; it touches no
    // memory, flags or stack.
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

/// 32 bytes at `p`.
///
/// # Safety
/// `p..p+32` must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: caller contract (unaligned load).
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The 32 bytes at `off` of the `G` rows of group `gi` in `rows`.
///
/// # Safety
/// Each `rows[gi*G + s] + off .. + 32` must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_group(rows: &[*const u8], gi: usize, off: usize) -> [__m256i; G] {
    let mut r = [_mm256_setzero_si256(); G];
    for (s, v) in r.iter_mut().enumerate() {
        // SAFETY: caller contract.
        *v = unsafe { load(rows[gi * G + s].wrapping_add(off)) };
    }
    r
}

/// Repack the weights of `groups` for every block, and the blocks' bias (minus
/// `x_zero_point` times the sum of the first `cover` groups' weights, which must hold every
/// tap once) and scale, all in the channel order of [`build`].
///
/// # Safety
/// The features of [`supported`]; `check_lengths(a)` held and every block start is at most
/// `c - BLOCK`.
#[target_feature(enable = "avx2")]
unsafe fn prepare(
    a: &QDwArgs<'_>,
    blocks: &[usize],
    groups: &[[Option<usize>; G]],
    cover: usize,
) -> Prep {
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
    let zp = _mm256_set1_epi16(a.x_zero_point as i16);
    // SAFETY: every tap row (or the zero row) has c bytes and channels ch..ch+32 <= c, so
    // the weight loads are inside w or zeros; wq has room for the nw vectors written (then
    // set_len); register k = 2*half + reg of a block holds channels ch + 8*half + 4*reg =
    // ch + 4k, the next three and the same 16 channels further (lo + 16 + 4 <= ch + 32 <= c),
    // inside bias and scale.
    unsafe {
        let mut dst: *mut __m256i = p.wq.as_mut_ptr();
        for &ch in blocks {
            let mut corr = [_mm256_setzero_si256(); UV];
            for (gi, t) in taps.iter().enumerate() {
                let mut rows = [_mm256_setzero_si256(); G];
                for (r, &t) in rows.iter_mut().zip(t) {
                    *r = load(t.add(ch).cast());
                }
                let (h0, h1) = (build::<0, true>(rows), build::<1, true>(rows));
                let v = [h0[0], h0[1], h1[0], h1[1]];
                if gi < cover {
                    for (s, &w) in corr.iter_mut().zip(&v) {
                        *s = madd(*s, zp, w);
                    }
                }
                for w in v {
                    dst.write(w);
                    dst = dst.add(1);
                }
            }
            for (k, s) in corr.iter().enumerate() {
                let lo = ch + 4 * k;
                let b = _mm256_loadu2_m128i(
                    a.bias.as_ptr().add(lo + 16).cast(),
                    a.bias.as_ptr().add(lo).cast(),
                );
                p.bias.push(_mm256_sub_epi32(b, *s));
                p.scale.push(_mm256_loadu2_m128(
                    a.scale.as_ptr().add(lo + 16),
                    a.scale.as_ptr().add(lo),
                ));
            }
        }
        p.wq.set_len(nw);
    }
    p
}

/// Requantize a half's two accumulators ([`crate::kernels::requant`]'s rule: convert,
/// multiply by the scale, clamp, round to nearest even) into 16 channels of 16-bit values
/// plus the output zero point.
///
/// # Safety
/// `sc..sc+2` are the half's scale registers.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn requant(cx: &Ctx, acc: [__m256i; 2], sc: *const __m256) -> __m256i {
    // SAFETY: caller contract.
    let (s0, s1) = unsafe { (*sc, *sc.add(1)) };
    let (a, b) = (requant8(cx, acc[0], s0), requant8(cx, acc[1], s1));
    _mm256_add_epi16(_mm256_packs_epi32(a, b), cx.ozp)
}

/// The rule for 8 lanes: `round_half_even(min(max(f32(acc) * scale, lo), hi))`.
#[target_feature(enable = "avx2")]
#[inline]
fn requant8(cx: &Ctx, acc: __m256i, scale: __m256) -> __m256i {
    let t = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
    _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(t, cx.lo), cx.hi))
}

/// [`tile`] along one row group: tiles of `P` pixels (the last one overlapping its
/// predecessor when `P` does not divide the width), or pixel by pixel in rows narrower
/// than `P`. Only tiles inside `[ox0, ox1)` skip the padding checks.
///
/// # Safety
/// The features of [`supported`]; `cx` describes a geometry with a `KH`x`KW` kernel, column
/// stride `S` and column dilation 1 whose slices passed `check_lengths`; `rows` holds the
/// `KH + R - 1` input rows of the group (each `w*c` readable bytes) and repeats the last
/// one; `y[..R]` are output rows of `ow*c` bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn row<const KH: usize, const KW: usize, const S: usize, const R: usize, const P: usize>(
    cx: &Ctx,
    rows: &[*const u8; SLOTS],
    y: &[*mut u8; 2],
) {
    if cx.ow < P {
        for ox in 0..cx.ow {
            // SAFETY: pixel ox is inside the row.
            unsafe { tile::<KH, KW, S, R, 1, true>(cx, rows, y, ox) };
        }
        return;
    }
    let mut ox = 0;
    loop {
        // SAFETY: pixels ox..ox+P are inside the row, and inside [ox0, ox1) for the
        // unchecked tile.
        unsafe {
            if ox >= cx.ox0 && ox + P <= cx.ox1 {
                tile::<KH, KW, S, R, P, false>(cx, rows, y, ox);
            } else {
                tile::<KH, KW, S, R, P, true>(cx, rows, y, ox);
            }
        }
        if ox + P == cx.ow {
            return;
        }
        ox = (ox + P).min(cx.ow - P);
    }
}

/// All channels of output pixels `ox..ox+P` of `R` output rows, block by block, each block
/// in two halves whose 16-bit results are packed together into the 32 output bytes.
///
/// # Safety
/// As [`row`], with `ox + P <= ow`, and without `CHECK` all the tile's input columns inside
/// the image.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const R: usize,
    const P: usize,
    const CHECK: bool,
>(
    cx: &Ctx,
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
            let a = half::<KH, KW, S, R, P, CHECK, 0>(cx, rows, bi, ch, ix0, cols);
            let b = half::<KH, KW, S, R, P, CHECK, 1>(cx, rows, bi, ch, ix0, cols);
            for r in 0..R {
                for q in 0..P {
                    let dst = y[r].add((ox + q) * cx.c + ch);
                    _mm256_storeu_si256(dst.cast(), _mm256_packus_epi16(a[r][q], b[r][q]));
                }
            }
        }
    }
}

/// Half `H` of block `bi` (first channel `ch`) for the tile's `R x P` pixels, requantized
/// to 16-bit values. For each of the tile's input columns, each group of two input rows is
/// interleaved once (or is the zero-point splat for a padding column) and multiplied into
/// every output pixel and row that uses it, with the weights of its kernel column.
///
/// # Safety
/// As [`tile`], `bi < nblocks`, `ch` its first channel; `ix0` and `cols` as [`tile`]
/// computes them.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn half<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const R: usize,
    const P: usize,
    const CHECK: bool,
    const H: usize,
>(
    cx: &Ctx,
    rows: &[*const u8; SLOTS],
    bi: usize,
    ch: usize,
    ix0: isize,
    (jlo, jhi): (usize, usize),
) -> [[__m256i; P]; R] {
    let ng = (KH + R - 1).div_ceil(G);
    let c = cx.c;
    // SAFETY: block bi's vectors are inside bias, scale and wq.
    let (bias, wb) = unsafe {
        let b = cx.bias.add(bi * UV + H * 2);
        ([*b, *b.add(1)], cx.wq.add(bi * cx.groups * UV + H * 2))
    };
    let mut acc = [[bias; P]; R];
    // With few enough weights, a group's weights stay in registers for the whole column walk
    // (otherwise each use loads its weight, and the loads limit the tile).
    let keep = R * KW * 2 <= KEEP_MAX && R * KW * 2 + R * P * 2 <= ACC_MAX;
    unroll!(@ GI < ng => {
        let gi = GI;
        // Weights of group gi for each output row and kernel column (when kept).
        let mut wk = [[[_mm256_setzero_si256(); 2]; KW]; R];
        if keep {
            for (r, wr) in wk.iter_mut().enumerate() {
                if gi * G >= r + KH || r >= gi * G + G {
                    continue;
                }
                for (kx, wv) in wr.iter_mut().enumerate() {
                    for (k, v) in wv.iter_mut().enumerate() {
                        // SAFETY: group (r*ng + gi)*KW + kx < groups of block bi.
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
            let wj = opaque(wb as usize) as *const __m256i;
            let grp = if inside {
                // SAFETY: column ix0 + J is inside the image, so off + 32 <= w*c in each
                // row (channels ch..ch+32 <= c).
                pin(build::<H, false>(unsafe { load_group(rows, gi, off) }))
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
                        let w = if keep {
                            wk[r][kx][k]
                        } else {
                            // SAFETY: group u < groups of block bi.
                            unsafe { *wj.add(u * UV + k) }
                        };
                        *s = madd(*s, grp[k], w);
                    }
                }
            }
            off = opaque(off.wrapping_add(c));
        });
        // The last column's step is not used.
        let _ = off;
    }; 0 1 2);
    // SAFETY: block bi's scale registers.
    let sc = unsafe { cx.scale.add(bi * UV + H * 2) };
    let mut out = [[_mm256_setzero_si256(); P]; R];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, &a) in o.iter_mut().zip(a) {
            // SAFETY: as above.
            *o = unsafe { requant(cx, a, sc) };
        }
    }
    out
}

/// All channels of one output pixel from its taps' input pixels (`ptrs`, padded to whole
/// groups; padding taps point at zero-point bytes).
///
/// # Safety
/// Generic-path `cx`; each pointer has `c` readable bytes (`c + BLOCK` for the zero-point
/// row), `y` points at an output pixel's `c` bytes.
#[target_feature(enable = "avx2")]
unsafe fn pixel(cx: &Ctx, ptrs: &[*const u8], y: *mut u8) {
    for bi in 0..cx.nblocks {
        // SAFETY: forwarded contract; bi < nblocks.
        unsafe {
            let ch = *cx.blocks.add(bi);
            let a = pixel_half::<0>(cx, ptrs, bi, ch);
            let b = pixel_half::<1>(cx, ptrs, bi, ch);
            _mm256_storeu_si256(y.add(ch).cast(), _mm256_packus_epi16(a, b));
        }
    }
}

/// Half `H` of block `bi` for one pixel, requantized to 16-bit values.
///
/// # Safety
/// As [`pixel`].
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pixel_half<const H: usize>(
    cx: &Ctx,
    ptrs: &[*const u8],
    bi: usize,
    ch: usize,
) -> __m256i {
    // SAFETY: block bi's vectors are inside bias, scale and wq; every group's pointers have
    // channels ch..ch+32 readable.
    unsafe {
        let b = cx.bias.add(bi * UV + H * 2);
        let mut acc = [*b, *b.add(1)];
        let wb = cx.wq.add(bi * cx.groups * UV + H * 2);
        for (gi, p) in ptrs.chunks_exact(G).enumerate() {
            let grp = build::<H, false>(load_group(p, 0, ch));
            for (k, s) in acc.iter_mut().enumerate() {
                *s = madd(*s, grp[k], *wb.add(gi * UV + k));
            }
        }
        requant(cx, acc, cx.scale.add(bi * UV + H * 2))
    }
}
