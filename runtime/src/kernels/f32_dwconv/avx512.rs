//! AVX-512 depthwise NHWC convolution, vectorised over channels (16 lanes, masked channel
//! tail).
//!
//! **Tiled row path** (3x3 and 5x5 kernels at column stride 1 or 2 without column dilation:
//! the depthwise layers of MobileNet, EfficientNet and ShuffleNet). Each output row is cut
//! into tiles of `P` output pixels, and a tile computes all its channel blocks before the
//! next tile. For one tile and channel block, each kernel row's `KW` weight vectors are
//! loaded into registers once, and each of the `(P-1)*S + KW` input columns the tile needs
//! is loaded once and fed to every output pixel that uses it (up to `KW` of them at stride
//! 1). That is well under one load per FMA, where the per-pixel path below loads a weight
//! and an input vector for nearly every FMA and is load-bound; the accumulators (`P` pixels
//! x the block's registers) are independent chains that hide the FMA latency.
//!
//! The shape, 7 pixels x 32 channels (two registers) for both kernel sizes, was chosen by
//! measurement on Zen 4, which executes a 512-bit FMA as two 256-bit halves, so this path
//! has the FLOP rate of the AVX2 one and wins by needing half the instructions and having
//! 32 registers: 14 accumulators + 2*KW weights + inputs fit, a channel block reads whole
//! 64-byte lines, and 7 divides the usual feature-map widths 112, 56, 28, 14 and 7.
//! Tile-major order keeps the input lines of a tile in L1 from one channel block to the
//! next.
//!
//! Tiles touching the padding skip the missing input columns, and output rows skip the
//! missing kernel rows, exactly as the per-pixel path skips padded taps. A row whose width
//! is not a multiple of `P` ends with a tile overlapping its predecessor (those pixels are
//! recomputed to the same values). The accumulation order is the per-pixel path's (bias,
//! taps by kernel row then column, residual, activation), so both give identical bits.
//!
//! **Per-pixel path** (other kernels, strides and dilations, and [`dwconv_generic_16c`]):
//! each output pixel gathers a list of `(input offset, weight offset)` taps, up to 4
//! registers of channels per pass; interior pixels (all taps inside the image) reuse one
//! precomputed list, border pixels build theirs skipping padded taps.
//!
//! In both paths bias starts the accumulators and the residual is added in registers. The
//! per-pixel path applies the cheap activations in registers too; the tiled path only
//! ReLU and Clip (a call to a non-inlined activation would spill its accumulators) and
//! applies the other vectorised ones to each finished output row. The remaining
//! activations go through the scalar `activation` on the stored output.

use core::arch::x86_64::*;

use super::{ConvArgs, ConvGeom};
use crate::kernels::f32_conv::interior;
use crate::kernels::f32_eltwise::avx512::{activation_16c, apply_act, vectorised};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::Act;

/// Lanes of a register.
const LANES: usize = 16;
/// Registers (channel vectors) accumulated per pass over the taps (per-pixel path).
const REGS: usize = 4;

/// Depthwise convolution for any kernel, stride, dilation and padding; 3x3 and 5x5 kernels
/// at column stride 1 or 2 take the tiled row path (see the module documentation).
///
/// Falls back to the scalar kernel when the CPU lacks AVX-512F, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx512` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the geometry.
pub fn dwconv_16c(a: ConvArgs<'_>) {
    run(a, true)
}

/// Same results (bit for bit) as [`dwconv_16c`] without the fast paths: every pixel builds
/// its tap list (kept public so tests and benchmarks can compare both paths).
pub fn dwconv_generic_16c(a: ConvArgs<'_>) {
    run(a, false)
}

fn run(a: ConvArgs<'_>, fast: bool) {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return super::scalar::dwconv_generic(a);
    }
    if !check_lengths(&a) {
        return;
    }
    // SAFETY: avx512f was detected just above (the slot invariant of `for_isa` is that this
    // tier is only chosen when `CpuFeatures::supports(Isa::Avx512)`, the check makes the
    // function sound even if called directly). `check_lengths` proved x, w, bias, residual
    // and y cover the full geometry.
    unsafe { dw(a, fast) }
}

/// Assert that every slice covers the geometry; `false` when there is nothing to compute.
fn check_lengths(a: &ConvArgs<'_>) -> bool {
    let g = a.g;
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .expect("dwconv: tensor size overflows usize")
    };
    let out = prod(&[g.n, g.oh, g.ow, g.c]);
    if out == 0 {
        return false;
    }
    assert!(
        a.x.len() >= prod(&[g.n, g.h, g.w, g.c]),
        "dwconv: x too short"
    );
    assert!(
        a.w.len() >= prod(&[g.kh, g.kw, g.c]),
        "dwconv: weights too short"
    );
    assert!(a.bias.len() >= g.c, "dwconv: bias too short");
    assert!(a.y.len() >= out, "dwconv: y too short");
    if let Some(r) = a.residual {
        assert!(r.len() >= out, "dwconv: residual too short");
    }
    true
}

/// Raw view of the operands (pointers proven in range by [`check_lengths`]).
struct Ops {
    c: usize,
    w: *const f32,
    bias: *const f32,
    residual: Option<*const f32>,
    y: *mut f32,
    act: Act,
}

/// Row kernel of the tiled path: computes output row `oy` of image `n` (all channels).
type RowFn = unsafe fn(&Ops, &ConvGeom, *const f32, usize, usize, (usize, usize));

/// The tiled row kernel for this geometry, if there is one: 3x3 and 5x5 kernels, column
/// stride 1 or 2, no column dilation (rows may have any stride and dilation).
fn tiled_row(g: &ConvGeom) -> Option<RowFn> {
    if g.dw != 1 {
        return None;
    }
    let f: RowFn = match (g.kh, g.kw, g.sw) {
        (3, 3, 1) => row_3x3s1_7px_32c,
        (3, 3, 2) => row_3x3s2_7px_32c,
        (5, 5, 1) => row_5x5s1_7px_32c,
        (5, 5, 2) => row_5x5s2_7px_32c,
        _ => return None,
    };
    Some(f)
}

/// # Safety
/// AVX-512F must be available and `check_lengths(&a)` must have returned `true`.
#[target_feature(enable = "avx512f")]
unsafe fn dw(a: ConvArgs<'_>, fast: bool) {
    let g = *a.g;
    let c = g.c;
    let o = Ops {
        c,
        w: a.w.as_ptr(),
        bias: a.bias.as_ptr(),
        residual: a.residual.map(|r| r.as_ptr()),
        y: a.y.as_mut_ptr(),
        act: a.act,
    };
    let x = a.x.as_ptr();
    if let Some(row) = tiled_row(&g).filter(|_| fast) {
        let cols = interior(g.ow, g.sw, 1, g.kw, g.pl, g.w);
        for n in 0..g.n {
            for oy in 0..g.oh {
                // SAFETY: n < g.n and oy < g.oh, and the slices cover the geometry
                // (`check_lengths`), which is the contract of the row kernels.
                unsafe { row(&o, &g, x, n, oy, cols) };
                if !matches!(o.act, Act::None | Act::Relu | Act::Clip { .. }) {
                    let pix = (n * g.oh + oy) * g.ow;
                    // SAFETY: the row y[pix*c..(pix+ow)*c] is inside y (`check_lengths`)
                    // and was just written; no other reference to it is live.
                    let out = unsafe { std::slice::from_raw_parts_mut(o.y.add(pix * c), g.ow * c) };
                    if vectorised(o.act) {
                        activation_16c(o.act, out);
                    } else {
                        activation(o.act, out);
                    }
                }
            }
        }
        return;
    }
    let taps_n = g.kh * g.kw;
    // Taps of an interior pixel, relative to its top-left input element.
    let full: Vec<(usize, usize)> = (0..g.kh)
        .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
        .map(|(ky, kx)| ((ky * g.dh * g.w + kx * g.dw) * c, (ky * g.kw + kx) * c))
        .collect();
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(taps_n);
    let (oy0, oy1) = interior(g.oh, g.sh, g.dh, g.kh, g.pt, g.h);
    let (ox0, ox1) = interior(g.ow, g.sw, g.dw, g.kw, g.pl, g.w);
    for n in 0..g.n {
        for oy in 0..g.oh {
            let row_inside = fast && (oy0..oy1).contains(&oy);
            let mut ox = 0;
            while ox < g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                if row_inside && (ox0..ox1).contains(&ox) {
                    // Two adjacent interior pixels share each weight load.
                    let pair = ox + 1 < ox1;
                    let (iy, ix) = (oy * g.sh - g.pt, ox * g.sw - g.pl);
                    // SAFETY: interior pixels' taps are all inside image n, so every
                    // offset base + p*dx + tap < n*h*w*c for p < 2 when `pair`.
                    unsafe {
                        let base = x.add(((n * g.h + iy) * g.w + ix) * c);
                        let dx = g.sw * c;
                        match (taps_n, pair) {
                            (9, true) => pixel::<9, 2>(&o, base, dx, &full, pix),
                            (9, false) => pixel::<9, 1>(&o, base, dx, &full, pix),
                            (25, true) => pixel::<25, 2>(&o, base, dx, &full, pix),
                            (25, false) => pixel::<25, 1>(&o, base, dx, &full, pix),
                            (_, true) => pixel::<0, 2>(&o, base, dx, &full, pix),
                            (_, false) => pixel::<0, 1>(&o, base, dx, &full, pix),
                        }
                    }
                    ox += 1 + usize::from(pair);
                } else {
                    taps.clear();
                    for ky in 0..g.kh {
                        let Some(iy) = g.in_y(oy, ky) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = g.in_x(ox, kx) else { continue };
                            taps.push((((n * g.h + iy) * g.w + ix) * c, (ky * g.kw + kx) * c));
                        }
                    }
                    // SAFETY: in_y/in_x return iy < h, ix < w, so the offsets are in x.
                    unsafe { pixel::<0, 1>(&o, x, 0, &taps, pix) };
                    ox += 1;
                }
            }
        }
    }
}

// ------------------------------------------------------------------ tiled row path

/// Named instances of [`row`] (the names show in profiles): kernel, column stride and
/// output pixels per tile.
macro_rules! rows {
    ($($name:ident = $kh:literal x $kw:literal s $s:literal, $v:literal reg, $px:literal px, $hx:literal px;)*) => {$(
        #[doc = concat!("[`row`] for ", stringify!($kh), "x", stringify!($kw),
            " kernels at column stride ", stringify!($s), ": ", stringify!($px),
            "-pixel tiles of ", stringify!($v), "-register channel blocks.")]
        ///
        /// # Safety
        /// As [`row`].
        #[target_feature(enable = "avx512f")]
        unsafe fn $name(
            o: &Ops,
            g: &ConvGeom,
            x: *const f32,
            n: usize,
            oy: usize,
            cols: (usize, usize),
        ) {
            // SAFETY: forwarded contract.
            unsafe { row::<$kh, $kw, $s, $v, $px, $hx>(o, g, x, n, oy, cols) }
        }
    )*};
}

rows! {
    row_3x3s1_7px_32c = 3 x 3 s 1, 2 reg, 7 px, 4 px;
    row_3x3s2_7px_32c = 3 x 3 s 2, 2 reg, 7 px, 4 px;
    row_5x5s1_7px_32c = 5 x 5 s 1, 2 reg, 7 px, 4 px;
    row_5x5s2_7px_32c = 5 x 5 s 2, 2 reg, 7 px, 4 px;
}

/// Expand `$body` once for each `$j` in `0..$n` (`$n <= 19`; a 7-pixel tile of a 5x5 kernel
/// at stride 2 reads 17 columns), `$j` being a `usize` constant there. LLVM does not fully
/// unroll loops of more than 10 iterations whose body only simplifies once unrolled, and
/// a rolled column loop would index the accumulators and weights dynamically (on the stack).
macro_rules! unroll {
    ($j:ident < $n:expr => $body:block) => {
        unroll!(@ $j < $n => $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18)
    };
    (@ $j:ident < $n:expr => $body:block; $($i:literal)*) => {
        $({
            const $j: usize = $i;
            if $j < $n $body
        })*
    };
}

/// Hide the value of a pointer from the optimiser (no instruction is emitted).
///
/// Walking the input columns of a tile as `p = opaque(p + c)` keeps one register per
/// kernel row: otherwise LLVM precomputes every `row + j*c` as a separate loop-invariant
/// address, runs out of registers and reloads the addresses from the stack.
#[inline(always)]
#[allow(
    clippy::pointers_in_nomem_asm_block,
    reason = "the template is empty: the pointer is never dereferenced"
)]
fn opaque(mut p: *const f32) -> *const f32 {
    // SAFETY: an empty template that only claims to redefine the register holding `p`; it
    // reads and writes no memory and leaves the flags and the stack alone.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags))
    };
    p
}

/// Activation handling of the tiled path, a const parameter so the tile epilogue has no
/// branch: a clamp in registers (ReLU, Clip), or none, the other activations being applied
/// to the whole output row afterwards ([`act_slice`] or the scalar `activation`: in the
/// tile, a call to [`apply_act`] that LLVM does not inline would spill every accumulator).
const ACT_ROW: u8 = 0;
const ACT_CLAMP: u8 = 1;

/// One output row as seen by its tiles.
struct Row<const KH: usize> {
    /// Input row of each kernel row (column 0, channel 0), null where it is padding.
    rows: [*const f32; KH],
    /// First output pixel of the row (index in pixels into y and residual).
    pix: usize,
    /// Output width, left padding, input width.
    ow: usize,
    pl: usize,
    w: usize,
    /// Interior output columns `[ox0, ox1)`: all `KW` tap columns inside the image.
    ox0: usize,
    ox1: usize,
    /// Clamp bounds for `ACT_CLAMP`.
    lo: __m512,
    hi: __m512,
}

/// Output row `oy` of image `n`, all channels, in tiles of `PX` output pixels (see
/// [`row_act`]), each computing all its channel blocks before the next tile so the input
/// lines it reads stay in L1 from one block to the next.
///
/// # Safety
/// AVX-512F available; `check_lengths` held for the arguments `o` and `x` come from;
/// `g.kh == KH`, `g.kw == KW`, `g.sw == S`, `g.dw == 1`, `n < g.n`, `oy < g.oh`, and
/// `cols == interior(g.ow, S, 1, KW, g.pl, g.w)`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const PX: usize,
    const HX: usize,
>(
    o: &Ops,
    g: &ConvGeom,
    x: *const f32,
    n: usize,
    oy: usize,
    cols: (usize, usize),
) {
    let mut rows = [std::ptr::null(); KH];
    for (ky, r) in rows.iter_mut().enumerate() {
        if let Some(iy) = g.in_y(oy, ky) {
            // SAFETY: n < g.n and iy < g.h, so the row start is inside x.
            *r = unsafe { x.add((n * g.h + iy) * g.w * o.c) };
        }
    }
    let (lo, hi) = match o.act {
        Act::Clip { min, max } => (min, max),
        _ => (0.0, f32::INFINITY),
    };
    let r = Row {
        rows,
        pix: (n * g.oh + oy) * g.ow,
        ow: g.ow,
        pl: g.pl,
        w: g.w,
        ox0: cols.0,
        ox1: cols.1,
        lo: _mm512_set1_ps(lo),
        hi: _mm512_set1_ps(hi),
    };
    // SAFETY: forwarded contract.
    unsafe {
        match o.act {
            Act::Relu | Act::Clip { .. } => row_act::<KH, KW, S, V, PX, HX, ACT_CLAMP>(o, &r),
            _ => row_act::<KH, KW, S, V, PX, HX, ACT_ROW>(o, &r),
        }
    }
}

/// [`row`] for one activation class `A`: the tile sequence. Tiles of `PX` pixels, then
/// one more ending at the row end, overlapping its predecessor (the overlapped pixels are
/// recomputed, to the same bits). Rows narrower than `PX` take `HX` tiles the same way,
/// and rows narrower than `HX` go pixel by pixel. Only tiles entirely inside `[ox0, ox1)`
/// skip the padding checks.
///
/// # Safety
/// As [`row`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row_act<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const PX: usize,
    const HX: usize,
    const A: u8,
>(
    o: &Ops,
    r: &Row<KH>,
) {
    let tile_px = |ox: usize| {
        // SAFETY: pixels ox..ox+PX are inside 0..ow of this row, and inside [ox0, ox1)
        // for the unchecked tile.
        unsafe {
            if ox >= r.ox0 && ox + PX <= r.ox1 {
                blocks::<KH, KW, S, V, PX, false, A>(o, r, ox);
            } else {
                blocks::<KH, KW, S, V, PX, true, A>(o, r, ox);
            }
        }
    };
    let mut ox = 0;
    while ox + PX <= r.ow {
        tile_px(ox);
        ox += PX;
    }
    if ox == r.ow {
        return;
    }
    if r.ow >= PX {
        tile_px(r.ow - PX);
        return;
    }
    // SAFETY (all calls): every tile covers pixels inside 0..ow of this row.
    unsafe {
        while ox + HX <= r.ow {
            blocks::<KH, KW, S, V, HX, true, A>(o, r, ox);
            ox += HX;
        }
        if ox < r.ow && r.ow >= HX {
            blocks::<KH, KW, S, V, HX, true, A>(o, r, r.ow - HX);
        } else {
            for ox in ox..r.ow {
                blocks::<KH, KW, S, V, 1, true, A>(o, r, ox);
            }
        }
    }
}

/// All channels of the `P` output pixels `ox..ox+P`: blocks of `V` registers, then single
/// registers, then a masked tail.
///
/// # Safety
/// As [`tile`], for every channel.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn blocks<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const P: usize,
    const CHECK: bool,
    const A: u8,
>(
    o: &Ops,
    r: &Row<KH>,
    ox: usize,
) {
    let c = o.c;
    let mut ch = 0;
    // SAFETY: every block covers channels ch..ch+width <= c (forwarded contract).
    unsafe {
        while ch + V * LANES <= c {
            tile::<KH, KW, S, V, P, false, CHECK, A>(o, r, ch, ox);
            ch += V * LANES;
        }
        while ch + LANES <= c {
            tile::<KH, KW, S, 1, P, false, CHECK, A>(o, r, ch, ox);
            ch += LANES;
        }
        if ch < c {
            tile::<KH, KW, S, 1, P, true, CHECK, A>(o, r, ch, ox);
        }
    }
}

/// Load 16 floats, or the lanes of `mask` (others zero) when `MASKED`.
///
/// # Safety
/// The loaded lanes must be readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load<const MASKED: bool>(p: *const f32, mask: __mmask16) -> __m512 {
    // SAFETY: caller contract.
    unsafe {
        if MASKED {
            _mm512_maskz_loadu_ps(mask, p)
        } else {
            _mm512_loadu_ps(p)
        }
    }
}

/// Channels `ch..ch+V*16` (or the `c - ch < 16` tail when `MASKED`) of the `P` output pixels
/// `ox..ox+P`. For each kernel row, its `KW` weight vectors are loaded once and each of the
/// `(P-1)*S + KW` input columns is loaded once and fed to every output that uses it. With
/// `CHECK`, columns outside the image are skipped (the padding taps, exactly as the generic
/// path skips them). Taps are accumulated in the generic path's order (ky, then kx), so
/// results match it bit for bit.
///
/// # Safety
/// As [`row`], with `ox + P <= ow`, the channels inside `0..c`, and without `CHECK`
/// `ox0 <= ox` and `ox + P <= ox1`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const P: usize,
    const MASKED: bool,
    const CHECK: bool,
    const A: u8,
>(
    o: &Ops,
    r: &Row<KH>,
    ch: usize,
    ox: usize,
) {
    const { assert!((P - 1) * S + KW <= 19, "tile wider than `unroll!` expands") };
    let c = o.c;
    let mask = lane_mask((c - ch).min(LANES));
    let mut bias = [_mm512_setzero_ps(); V];
    for (v, b) in bias.iter_mut().enumerate() {
        // SAFETY: channels ch + v*16 .. (masked to c) are inside bias.
        *b = unsafe { load::<MASKED>(o.bias.add(ch + v * LANES), mask) };
    }
    let mut acc = [bias; P];
    // First input column of the tile; negative or past the image only when `CHECK`.
    let ix0 = (ox * S) as isize - r.pl as isize;
    // Columns jlo..jhi of the tile are inside the image.
    let jlo = (-ix0).max(0) as usize;
    let jhi = (r.w as isize - ix0).max(0) as usize;
    for (ky, &row) in r.rows.iter().enumerate() {
        if row.is_null() {
            continue;
        }
        let mut wk = [[_mm512_setzero_ps(); V]; KW];
        // SAFETY: taps ky*KW.. of the packed weights `[kh*kw][c]`, channels inside c.
        let mut wp = opaque(unsafe { o.w.add(ky * KW * c + ch) });
        for wt in wk.iter_mut() {
            for (v, wv) in wt.iter_mut().enumerate() {
                // SAFETY: see above.
                *wv = unsafe { load::<MASKED>(wp.add(v * LANES), mask) };
            }
            wp = opaque(wp.wrapping_add(c));
        }
        // Column J is read at p + (J % 3)*c (x86 addressing scales c by 4 and 8), and p
        // steps three columns at a time. Not dereferenced unless its column is valid.
        let mut p = opaque(row.wrapping_offset(ix0 * c as isize).wrapping_add(ch));
        unroll!(J < (P - 1) * S + KW => {
            if !CHECK || (jlo..jhi).contains(&J) {
                for v in 0..V {
                    // SAFETY: column ix0 + J is inside the input row, channels inside c.
                    let xv = unsafe { load::<MASKED>(p.add((J % 3) * c + v * LANES), mask) };
                    for (q, a) in acc.iter_mut().enumerate() {
                        if (q * S..q * S + KW).contains(&J) {
                            a[v] = _mm512_fmadd_ps(xv, wk[J - q * S][v], a[v]);
                        }
                    }
                }
            }
            if J % 3 == 2 {
                p = opaque(p.wrapping_add(3 * c));
            }
        });
    }
    for (q, a) in acc.iter_mut().enumerate() {
        // SAFETY: pixel ox + q < ow of this row, channels inside c.
        unsafe { put::<V, MASKED, A>(o, (r.pix + ox + q) * c + ch, (mask, r.lo, r.hi), a) };
    }
}

/// Residual, activation class `A` (clamp bounds `lo`, `hi`) and store of `V`
/// accumulators to `y[off..]`.
///
/// # Safety
/// The channel block at `off` is inside y (and residual).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn put<const V: usize, const MASKED: bool, const A: u8>(
    o: &Ops,
    off: usize,
    (mask, lo, hi): (__mmask16, __m512, __m512),
    acc: &mut [__m512; V],
) {
    for (v, a) in acc.iter_mut().enumerate() {
        // SAFETY: caller contract; masked lanes are not accessed.
        unsafe {
            if let Some(res) = o.residual {
                *a = _mm512_add_ps(*a, load::<MASKED>(res.add(off + v * LANES), mask));
            }
            let val = match A {
                ACT_CLAMP => _mm512_min_ps(_mm512_max_ps(*a, lo), hi),
                _ => *a,
            };
            let dst = o.y.add(off + v * LANES);
            if MASKED {
                _mm512_mask_storeu_ps(dst, mask, val);
            } else {
                _mm512_storeu_ps(dst, val);
            }
        }
    }
}

/// All channels of the `P` output pixels `pix..pix+P` from the taps `(x offset from
/// xb + p*dx, weight offset)`; `T > 0` fixes the tap count at compile time.
///
/// # Safety
/// As [`dw`]; every `xb + p*dx + tap.0 .. + c` must be inside x, `pix + P <= n*oh*ow`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pixel<const T: usize, const P: usize>(
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
) {
    let taps = if T > 0 { &taps[..T] } else { taps };
    let c = o.c;
    let mut ch = 0;
    // SAFETY: every block covers channels ch..ch+width <= c (forwarded contract).
    unsafe {
        while ch + REGS * LANES <= c {
            block::<REGS, false, P>(o, xb, dx, taps, pix, ch);
            ch += REGS * LANES;
        }
        match (c - ch) / LANES {
            3 => block::<3, false, P>(o, xb, dx, taps, pix, ch),
            2 => block::<2, false, P>(o, xb, dx, taps, pix, ch),
            1 => block::<1, false, P>(o, xb, dx, taps, pix, ch),
            _ => {}
        }
        ch += (c - ch) / LANES * LANES;
        if ch < c {
            block::<1, true, P>(o, xb, dx, taps, pix, ch);
        }
    }
}

/// Mask selecting the first `w` (0..=16) lanes.
#[inline]
fn lane_mask(w: usize) -> __mmask16 {
    if w >= LANES {
        0xFFFF
    } else {
        (1u16 << w) - 1
    }
}

/// Channels `ch..ch+V*16` (or the `c - ch < 16` tail when `MASKED`) of `P` output pixels.
///
/// # Safety
/// As [`pixel`], with the channel range inside `0..c`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const V: usize, const MASKED: bool, const P: usize>(
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
    ch: usize,
) {
    let width = if MASKED { o.c - ch } else { V * LANES };
    let mask = lane_mask(width.min(LANES));
    // SAFETY (all loads/stores below): lanes touched are channels ch..ch+width < c of a
    // row that holds c channels and lies inside its tensor (caller contract); masked lanes
    // are not accessed.
    let ld = |p: *const f32| unsafe { _mm512_maskz_loadu_ps(mask, p) };
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for (v, a) in acc[0].iter_mut().enumerate() {
        // SAFETY: see above.
        *a = ld(unsafe { o.bias.add(ch + v * LANES) });
    }
    for p in 1..P {
        acc[p] = acc[0];
    }
    for &(xo, wo) in taps {
        // SAFETY: see above.
        let (xp, wp) = unsafe { (xb.add(xo + ch), o.w.add(wo + ch)) };
        for v in 0..V {
            // SAFETY: see above.
            let wv = ld(unsafe { wp.add(v * LANES) });
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                let xv = ld(unsafe { xp.add(p * dx + v * LANES) });
                a[v] = _mm512_fmadd_ps(xv, wv, a[v]);
            }
        }
    }
    for (p, accp) in acc.iter_mut().enumerate() {
        let off = (pix + p) * o.c + ch;
        if let Some(r) = o.residual {
            for (v, a) in accp.iter_mut().enumerate() {
                // SAFETY: see above.
                *a = _mm512_add_ps(*a, ld(unsafe { r.add(off + v * LANES) }));
            }
        }
        store::<V, MASKED>(o, off, width, mask, accp);
    }
}

/// Activation and store of `V` accumulators to `y[off..off+width]`.
///
/// # Safety
/// As [`block`]: `y[off..off+width]` is inside y.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const V: usize, const MASKED: bool>(
    o: &Ops,
    off: usize,
    width: usize,
    mask: __mmask16,
    acc: &[__m512; V],
) {
    let vec_act = vectorised(o.act);
    for (v, a) in acc.iter().enumerate() {
        let val = if vec_act { apply_act(o.act, *a) } else { *a };
        // SAFETY: the (masked) lanes are inside y[off..off+width] (caller contract).
        unsafe {
            let dst = o.y.add(off + v * LANES);
            _mm512_mask_storeu_ps(dst, mask, val);
        }
    }
    if !vec_act {
        // SAFETY: y[off..off+width] was just written and is inside y; no other reference to
        // it is live.
        activation(o.act, unsafe {
            std::slice::from_raw_parts_mut(o.y.add(off), width)
        });
    }
}
