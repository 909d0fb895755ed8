//! The depthwise kernel body, written once over [`SimdF32`] and instantiated per ISA by
//! `dwconv_tier!` in the family's `mod.rs`; vectorised over channels (masked channel tail).
//!
//! **Tiled row path** (3x3 and 5x5 kernels at column stride 1 or 2 without column dilation:
//! the depthwise layers of MobileNet, EfficientNet and ShuffleNet). Each output row is cut
//! into tiles of `PX` output pixels, and a tile computes all its channel blocks before the
//! next tile. For one tile and channel block, each kernel row's `KW` weight vectors are
//! loaded into registers once, and each of the `(PX-1)*S + KW` input columns the tile needs
//! is loaded once and fed to every output pixel that uses it (up to `KW` of them at stride
//! 1). That is well under one load per FMA, where the per-pixel path below loads a weight
//! and an input vector for nearly every FMA and is load-bound; the accumulators (`PX`
//! pixels x the block's `V` registers) are independent chains that hide the FMA latency.
//! The tile shapes are per ISA (they depend on its register count), listed with each tier.
//!
//! Tiles touching the padding skip the missing input columns, and output rows skip the
//! missing kernel rows, exactly as the per-pixel path skips padded taps. A row whose width
//! is not a multiple of `PX` ends with a tile overlapping its predecessor (those pixels are
//! recomputed to the same values). The accumulation order is the per-pixel path's (bias,
//! taps by kernel row then column, residual, activation), so both give identical bits.
//!
//! **Per-pixel path** (other kernels, strides and dilations, and the tiers'
//! `dwconv_generic_*`): each output pixel gathers a list of `(input offset, weight offset)`
//! taps, up to 4 registers of channels per pass; interior pixels (all taps inside the image)
//! reuse one precomputed list, border pixels build theirs skipping padded taps.
//!
//! In both paths bias starts the accumulators and the residual is added in registers. The
//! per-pixel path applies the cheap activations in registers too; the tiled path only
//! ReLU and Clip (a full activation in the tile would spill its accumulators) and applies
//! the other vectorised ones to each finished output row. The remaining activations go
//! through the scalar `activation` on the stored output.

use super::{ConvArgs, ConvGeom};
use crate::kernels::f32_conv::interior;
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::simd::{activation_slice, apply_act, opaque, vectorised, SimdF32};
use crate::kernels::Act;

/// Registers (channel vectors) accumulated per pass over the taps (per-pixel path).
const REGS: usize = 4;

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
pub(super) struct Ops {
    c: usize,
    w: *const f32,
    bias: *const f32,
    residual: Option<*const f32>,
    y: *mut f32,
    act: Act,
}

/// Row kernel of the tiled path: computes output row `oy` of image `n` (all channels).
/// Instances are the tiers' named `row_*` functions.
///
/// # Safety
/// As [`row`].
pub(super) type RowFn<S> = unsafe fn(S, &Ops, &ConvGeom, *const f32, usize, usize, (usize, usize));

/// A tier's choice of row kernel for a geometry (`None`: the per-pixel path).
pub(super) type TiledFn<S> = fn(&ConvGeom) -> Option<RowFn<S>>;

/// The whole kernel: the tiled row path where `tiled` has a row kernel for the geometry,
/// else the per-pixel path (with its interior fast path only when `tiled` is given).
///
/// Panics (like the scalar kernel) when a slice is too short for the geometry.
#[inline(always)]
pub(super) fn run<S: SimdF32>(s: S, a: ConvArgs<'_>, tiled: Option<TiledFn<S>>) {
    if !check_lengths(&a) {
        return;
    }
    let g = *a.g;
    let o = Ops {
        c: g.c,
        w: a.w.as_ptr(),
        bias: a.bias.as_ptr(),
        residual: a.residual.map(|r| r.as_ptr()),
        y: a.y.as_mut_ptr(),
        act: a.act,
    };
    let x = a.x.as_ptr();
    // SAFETY (both calls): `check_lengths` proved x, w, bias, residual and y cover the
    // full geometry, the contract of both paths.
    unsafe {
        match tiled.and_then(|t| t(&g)) {
            Some(row) => tiled_rows(s, &o, &g, x, row),
            None => per_pixel(s, &o, &g, x, tiled.is_some()),
        }
    }
}

/// Every output row through `row`, then the activations the tile does not apply.
///
/// # Safety
/// `check_lengths` held for the arguments `o` and `x` come from, and `row` is the row
/// kernel for `g`'s kernel size and column stride.
#[inline(always)]
unsafe fn tiled_rows<S: SimdF32>(s: S, o: &Ops, g: &ConvGeom, x: *const f32, row: RowFn<S>) {
    let c = o.c;
    let cols = interior(g.ow, g.sw, 1, g.kw, g.pl, g.w);
    for n in 0..g.n {
        for oy in 0..g.oh {
            // SAFETY: n < g.n and oy < g.oh, and the slices cover the geometry, which is
            // the contract of the row kernels.
            unsafe { row(s, o, g, x, n, oy, cols) };
            if !matches!(o.act, Act::None | Act::Relu | Act::Clip { .. }) {
                let pix = (n * g.oh + oy) * g.ow;
                // SAFETY: the row y[pix*c..(pix+ow)*c] is inside y and was just written; no
                // other reference to it is live.
                let out = unsafe { std::slice::from_raw_parts_mut(o.y.add(pix * c), g.ow * c) };
                if vectorised(o.act) {
                    activation_slice(s, o.act, out);
                } else {
                    activation(o.act, out);
                }
            }
        }
    }
}

/// The per-pixel path; `fast` enables the shared tap list of interior pixels.
///
/// # Safety
/// `check_lengths` held for the arguments `o` and `x` come from.
#[inline(always)]
unsafe fn per_pixel<S: SimdF32>(s: S, o: &Ops, g: &ConvGeom, x: *const f32, fast: bool) {
    let c = o.c;
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
                            (9, true) => pixel::<S, 9, 2>(s, o, base, dx, &full, pix),
                            (9, false) => pixel::<S, 9, 1>(s, o, base, dx, &full, pix),
                            (25, true) => pixel::<S, 25, 2>(s, o, base, dx, &full, pix),
                            (25, false) => pixel::<S, 25, 1>(s, o, base, dx, &full, pix),
                            (_, true) => pixel::<S, 0, 2>(s, o, base, dx, &full, pix),
                            (_, false) => pixel::<S, 0, 1>(s, o, base, dx, &full, pix),
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
                    unsafe { pixel::<S, 0, 1>(s, o, x, 0, &taps, pix) };
                    ox += 1;
                }
            }
        }
    }
}

// ------------------------------------------------------------------ tiled row path

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

/// Activation handling of the tiled path, a const parameter so the tile epilogue has no
/// branch: a clamp in registers (ReLU, Clip), or none, the other activations being applied
/// to the whole output row afterwards (in [`tiled_rows`]).
const ACT_ROW: u8 = 0;
const ACT_CLAMP: u8 = 1;

/// A tier's out-of-line instance of [`blocks`]: a `#[target_feature]` function LLVM may
/// keep out of the row kernel (inlining every tile's channel loop into the row measured
/// 6-17 % slower on 3x3 layers).
pub(super) trait TileBlocks<I: SimdF32> {
    /// [`blocks`] for these parameters.
    ///
    /// # Safety
    /// As [`blocks`].
    unsafe fn blocks<
        const KH: usize,
        const KW: usize,
        const S: usize,
        const V: usize,
        const P: usize,
        const CHECK: bool,
        const A: u8,
    >(
        s: I,
        o: &Ops,
        r: &Row<I, KH>,
        ox: usize,
    );
}

/// One output row as seen by its tiles.
pub(super) struct Row<S: SimdF32, const KH: usize> {
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
    lo: S::V,
    hi: S::V,
}

/// Output row `oy` of image `n`, all channels, in tiles of `PX` output pixels (see
/// [`row_act`]), each computing all its channel blocks before the next tile so the input
/// lines it reads stay in L1 from one block to the next.
///
/// # Safety
/// `check_lengths` held for the arguments `o` and `x` come from; `g.kh == KH`,
/// `g.kw == KW`, `g.sw == S`, `g.dw == 1`, `n < g.n`, `oy < g.oh`, and
/// `cols == interior(g.ow, S, 1, KW, g.pl, g.w)`.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "the RowFn signature")]
pub(super) unsafe fn row<
    I: SimdF32,
    B: TileBlocks<I>,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const PX: usize,
    const HX: usize,
>(
    s: I,
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
    let r = Row::<I, KH> {
        rows,
        pix: (n * g.oh + oy) * g.ow,
        ow: g.ow,
        pl: g.pl,
        w: g.w,
        ox0: cols.0,
        ox1: cols.1,
        lo: s.splat(lo),
        hi: s.splat(hi),
    };
    // SAFETY: forwarded contract.
    unsafe {
        match o.act {
            Act::Relu | Act::Clip { .. } => {
                row_act::<I, B, KH, KW, S, V, PX, HX, ACT_CLAMP>(s, o, &r)
            }
            _ => row_act::<I, B, KH, KW, S, V, PX, HX, ACT_ROW>(s, o, &r),
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
#[inline(always)]
unsafe fn row_act<
    I: SimdF32,
    B: TileBlocks<I>,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const PX: usize,
    const HX: usize,
    const A: u8,
>(
    s: I,
    o: &Ops,
    r: &Row<I, KH>,
) {
    let mut ox = 0;
    while ox + PX <= r.ow {
        // SAFETY: pixels ox..ox+PX are inside 0..ow of this row.
        unsafe { tile_at::<I, B, KH, KW, S, V, PX, A>(s, o, r, ox) };
        ox += PX;
    }
    if ox == r.ow {
        return;
    }
    if r.ow >= PX {
        // SAFETY: pixels ow-PX..ow are inside the row.
        unsafe { tile_at::<I, B, KH, KW, S, V, PX, A>(s, o, r, r.ow - PX) };
        return;
    }
    // SAFETY (all calls): every tile covers pixels inside 0..ow of this row.
    unsafe {
        while ox + HX <= r.ow {
            B::blocks::<KH, KW, S, V, HX, true, A>(s, o, r, ox);
            ox += HX;
        }
        if ox < r.ow && r.ow >= HX {
            B::blocks::<KH, KW, S, V, HX, true, A>(s, o, r, r.ow - HX);
        } else {
            for ox in ox..r.ow {
                B::blocks::<KH, KW, S, V, 1, true, A>(s, o, r, ox);
            }
        }
    }
}

/// The `PX`-pixel tile at `ox`, without the padding checks when it lies inside `[ox0, ox1)`.
/// (A function, not a closure: a closure would not be inlined into the `#[target_feature]`
/// row kernel and would run without the tier's instructions.)
///
/// # Safety
/// As [`row`], with pixels `ox..ox+PX` inside `0..ow` of this row.
#[inline(always)]
unsafe fn tile_at<
    I: SimdF32,
    B: TileBlocks<I>,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const PX: usize,
    const A: u8,
>(
    s: I,
    o: &Ops,
    r: &Row<I, KH>,
    ox: usize,
) {
    // SAFETY: forwarded contract; the unchecked tile lies inside [ox0, ox1).
    unsafe {
        if ox >= r.ox0 && ox + PX <= r.ox1 {
            B::blocks::<KH, KW, S, V, PX, false, A>(s, o, r, ox);
        } else {
            B::blocks::<KH, KW, S, V, PX, true, A>(s, o, r, ox);
        }
    }
}

/// All channels of the `P` output pixels `ox..ox+P`: blocks of `V` registers, then single
/// registers, then a masked tail.
///
/// # Safety
/// As [`tile`], for every channel.
#[inline(always)]
pub(super) unsafe fn blocks<
    I: SimdF32,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const P: usize,
    const CHECK: bool,
    const A: u8,
>(
    s: I,
    o: &Ops,
    r: &Row<I, KH>,
    ox: usize,
) {
    let (c, lanes) = (o.c, I::LANES);
    let mut ch = 0;
    // SAFETY: every block covers channels ch..ch+width <= c (forwarded contract).
    unsafe {
        while ch + V * lanes <= c {
            tile::<I, KH, KW, S, V, P, false, CHECK, A>(s, o, r, ch, ox);
            ch += V * lanes;
        }
        while ch + lanes <= c {
            tile::<I, KH, KW, S, 1, P, false, CHECK, A>(s, o, r, ch, ox);
            ch += lanes;
        }
        if ch < c {
            tile::<I, KH, KW, S, 1, P, true, CHECK, A>(s, o, r, ch, ox);
        }
    }
}

/// Load a register, or the lanes of `t` (others zero) when `MASKED`.
///
/// # Safety
/// The loaded lanes must be readable.
#[inline(always)]
unsafe fn load<I: SimdF32, const MASKED: bool>(s: I, p: *const f32, t: I::Tail) -> I::V {
    // SAFETY: caller contract.
    unsafe {
        if MASKED {
            s.load_tail(p, t)
        } else {
            s.load(p)
        }
    }
}

/// Store a register, or the lanes of `t` when `MASKED`.
///
/// # Safety
/// The stored lanes must be writable.
#[inline(always)]
unsafe fn store<I: SimdF32, const MASKED: bool>(s: I, p: *mut f32, t: I::Tail, v: I::V) {
    // SAFETY: caller contract.
    unsafe {
        if MASKED {
            s.store_tail(p, t, v)
        } else {
            s.store(p, v)
        }
    }
}

/// Channels `ch..ch+V*LANES` (or the `c - ch < LANES` tail when `MASKED`) of the `P` output
/// pixels `ox..ox+P`. For each kernel row, its `KW` weight vectors are loaded once and each
/// of the `(P-1)*S + KW` input columns is loaded once and fed to every output that uses it.
/// With `CHECK`, columns outside the image are skipped (the padding taps, exactly as the
/// per-pixel path skips them). Taps are accumulated in the per-pixel path's order (ky, then
/// kx), so results match it bit for bit.
///
/// # Safety
/// As [`row`], with `ox + P <= ow`, the channels inside `0..c`, and without `CHECK`
/// `ox0 <= ox` and `ox + P <= ox1`.
#[inline(always)]
unsafe fn tile<
    I: SimdF32,
    const KH: usize,
    const KW: usize,
    const S: usize,
    const V: usize,
    const P: usize,
    const MASKED: bool,
    const CHECK: bool,
    const A: u8,
>(
    s: I,
    o: &Ops,
    r: &Row<I, KH>,
    ch: usize,
    ox: usize,
) {
    const { assert!((P - 1) * S + KW <= 19, "tile wider than `unroll!` expands") };
    let (c, lanes) = (o.c, I::LANES);
    let t = s.tail(c - ch);
    let mut bias = [s.zero(); V];
    for (v, b) in bias.iter_mut().enumerate() {
        // SAFETY: channels ch + v*LANES .. (masked to c) are inside bias.
        *b = unsafe { load::<I, MASKED>(s, o.bias.add(ch + v * lanes), t) };
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
        let mut wk = [[s.zero(); V]; KW];
        // SAFETY: taps ky*KW.. of the packed weights `[kh*kw][c]`, channels inside c.
        let mut wp = opaque(unsafe { o.w.add(ky * KW * c + ch) });
        for wt in wk.iter_mut() {
            for (v, wv) in wt.iter_mut().enumerate() {
                // SAFETY: see above.
                *wv = unsafe { load::<I, MASKED>(s, wp.add(v * lanes), t) };
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
                    let xv = unsafe { load::<I, MASKED>(s, p.add((J % 3) * c + v * lanes), t) };
                    for (q, a) in acc.iter_mut().enumerate() {
                        if (q * S..q * S + KW).contains(&J) {
                            a[v] = s.mul_add(xv, wk[J - q * S][v], a[v]);
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
        unsafe { put::<I, V, MASKED, A>(s, o, (r.pix + ox + q) * c + ch, (t, r.lo, r.hi), a) };
    }
}

/// Residual, activation class `A` (clamp bounds `lo`, `hi`) and store of `V`
/// accumulators to `y[off..]`.
///
/// # Safety
/// The channel block at `off` is inside y (and residual).
#[inline(always)]
unsafe fn put<I: SimdF32, const V: usize, const MASKED: bool, const A: u8>(
    s: I,
    o: &Ops,
    off: usize,
    (t, lo, hi): (I::Tail, I::V, I::V),
    acc: &mut [I::V; V],
) {
    let lanes = I::LANES;
    for (v, a) in acc.iter_mut().enumerate() {
        // SAFETY: caller contract; masked lanes are not accessed.
        unsafe {
            if let Some(res) = o.residual {
                *a = s.add(*a, load::<I, MASKED>(s, res.add(off + v * lanes), t));
            }
            let val = match A {
                ACT_CLAMP => s.min(s.max(*a, lo), hi),
                _ => *a,
            };
            store::<I, MASKED>(s, o.y.add(off + v * lanes), t, val);
        }
    }
}

// ------------------------------------------------------------------ per-pixel path

/// All channels of the `P` output pixels `pix..pix+P` from the taps `(x offset from
/// xb + p*dx, weight offset)`; `T > 0` fixes the tap count at compile time.
///
/// # Safety
/// As [`per_pixel`]; every `xb + p*dx + tap.0 .. + c` must be inside x,
/// `pix + P <= n*oh*ow`.
#[inline(always)]
unsafe fn pixel<I: SimdF32, const T: usize, const P: usize>(
    s: I,
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
) {
    let taps = if T > 0 { &taps[..T] } else { taps };
    let (c, lanes) = (o.c, I::LANES);
    let mut ch = 0;
    // SAFETY: every block covers channels ch..ch+width <= c (forwarded contract).
    unsafe {
        while ch + REGS * lanes <= c {
            block::<I, REGS, false, P>(s, o, xb, dx, taps, pix, ch);
            ch += REGS * lanes;
        }
        match (c - ch) / lanes {
            3 => block::<I, 3, false, P>(s, o, xb, dx, taps, pix, ch),
            2 => block::<I, 2, false, P>(s, o, xb, dx, taps, pix, ch),
            1 => block::<I, 1, false, P>(s, o, xb, dx, taps, pix, ch),
            _ => {}
        }
        ch += (c - ch) / lanes * lanes;
        if ch < c {
            block::<I, 1, true, P>(s, o, xb, dx, taps, pix, ch);
        }
    }
}

/// Channels `ch..ch+V*LANES` (or the `c - ch < LANES` tail when `MASKED`) of `P` output
/// pixels.
///
/// # Safety
/// As [`pixel`], with the channel range inside `0..c`.
#[inline(always)]
unsafe fn block<I: SimdF32, const V: usize, const MASKED: bool, const P: usize>(
    s: I,
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
    ch: usize,
) {
    let lanes = I::LANES;
    let width = if MASKED { o.c - ch } else { V * lanes };
    let t = s.tail(width);
    // SAFETY (all loads/stores below): lanes touched are channels ch..ch+width < c of a
    // row that holds c channels and lies inside its tensor (caller contract); masked lanes
    // are not accessed. (No closure for the loads: it would not be inlined into the
    // `#[target_feature]` entry.)
    let mut acc = [[s.zero(); V]; P];
    for (v, a) in acc[0].iter_mut().enumerate() {
        // SAFETY: see above.
        *a = unsafe { load::<I, MASKED>(s, o.bias.add(ch + v * lanes), t) };
    }
    for p in 1..P {
        acc[p] = acc[0];
    }
    for &(xo, wo) in taps {
        // SAFETY: see above.
        let (xp, wp) = unsafe { (xb.add(xo + ch), o.w.add(wo + ch)) };
        for v in 0..V {
            // SAFETY: see above.
            let wv = unsafe { load::<I, MASKED>(s, wp.add(v * lanes), t) };
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                let xv = unsafe { load::<I, MASKED>(s, xp.add(p * dx + v * lanes), t) };
                a[v] = s.mul_add(xv, wv, a[v]);
            }
        }
    }
    for (p, accp) in acc.iter_mut().enumerate() {
        let off = (pix + p) * o.c + ch;
        if let Some(r) = o.residual {
            for (v, a) in accp.iter_mut().enumerate() {
                // SAFETY: see above.
                *a = s.add(*a, unsafe {
                    load::<I, MASKED>(s, r.add(off + v * lanes), t)
                });
            }
        }
        // SAFETY: y[off..off+width] is inside y (see above).
        unsafe { finish::<I, V, MASKED>(s, o, off, width, t, accp) };
    }
}

/// Activation and store of `V` accumulators to `y[off..off+width]`.
///
/// # Safety
/// As [`block`]: `y[off..off+width]` is inside y.
#[inline(always)]
unsafe fn finish<I: SimdF32, const V: usize, const MASKED: bool>(
    s: I,
    o: &Ops,
    off: usize,
    width: usize,
    t: I::Tail,
    acc: &[I::V; V],
) {
    let vec_act = vectorised(o.act);
    for (v, a) in acc.iter().enumerate() {
        let val = if vec_act { apply_act(s, o.act, *a) } else { *a };
        // SAFETY: the (masked) lanes are inside y[off..off+width] (caller contract).
        unsafe { store::<I, MASKED>(s, o.y.add(off + v * I::LANES), t, val) };
    }
    if !vec_act {
        // SAFETY: y[off..off+width] was just written and is inside y; no other reference to
        // it is live.
        activation(o.act, unsafe {
            std::slice::from_raw_parts_mut(o.y.add(off), width)
        });
    }
}
