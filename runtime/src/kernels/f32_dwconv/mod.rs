//! f32 depthwise 2-D convolution on NHWC (groups == channels == outputs), weights packed
//! `[kh*kw][c]` ([`pack_weights`]) so every tap is a contiguous channel vector.
//!
//! One kernel body ([`body`], over the SIMD trait) serves every ISA; `dwconv_tier!` below
//! instantiates it per tier with that tier's tile shapes and names the results
//! (`avx2::dwconv_8c`, `avx512::dwconv_16c`, `neon::dwconv_4c`).

mod body;
pub mod scalar;

pub use super::f32_conv::{ConvArgs, ConvGeom};

/// Signature of a depthwise kernel.
pub type DwConvFn = fn(ConvArgs<'_>);

/// Pack depthwise OIHW weights (`[c][1][kh][kw]`) into `[kh*kw][c]`.
pub fn pack_weights(g: &ConvGeom, oihw: &[f32]) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut out = vec![0.0; oihw.len()];
    for ch in 0..g.c {
        for t in 0..taps {
            out[t * g.c + ch] = oihw[ch * taps + t];
        }
    }
    out
}

/// One ISA's instance of [`body`]: the named row kernels of the tiled path (kernel `KHxKW`,
/// column stride, channel registers per block, pixels per tile and per half tile), the
/// dispatching entry point and its per-pixel twin (same bits without the fast paths, for
/// tests and benchmarks).
macro_rules! dwconv_tier {
    ($(#[$doc:meta])* mod $isa:ident: $simd:ty, #[$feat:meta]; fn $entry:ident, $generic:ident; $(
        $row:ident = $kh:literal x $kw:literal s $s:literal, $v:literal reg, $px:literal px, $hx:literal px;
    )*) => {
        $(#[$doc])*
        pub mod $isa {
            use super::body::{self, Ops, Row, RowFn, TileBlocks};
            use super::{scalar, ConvArgs, ConvGeom};

            $(
                #[doc = concat!("The tiled row for ", stringify!($kh), "x", stringify!($kw),
                    " kernels at column stride ", stringify!($s), ": ", stringify!($px),
                    "-pixel tiles of ", stringify!($v), "-register channel blocks.")]
                ///
                /// # Safety
                /// As `body::row`.
                #[$feat]
                unsafe fn $row(
                    s: $simd,
                    o: &Ops,
                    g: &ConvGeom,
                    x: *const f32,
                    n: usize,
                    oy: usize,
                    cols: (usize, usize),
                ) {
                    // SAFETY: forwarded contract.
                    unsafe {
                        body::row::<_, Tiles, $kh, $kw, $s, $v, $px, $hx>(s, o, g, x, n, oy, cols)
                    }
                }
            )*

            /// This tier's out-of-line tile blocks.
            struct Tiles;

            impl TileBlocks<$simd> for Tiles {
                #[$feat]
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
                    s: $simd,
                    o: &Ops,
                    r: &Row<$simd, KH>,
                    ox: usize,
                ) {
                    // SAFETY: forwarded contract.
                    unsafe { body::blocks::<_, KH, KW, S, V, P, CHECK, A>(s, o, r, ox) }
                }
            }

            /// The tiled row kernel for this geometry, if there is one (no column dilation;
            /// rows may have any stride and dilation).
            fn tiled_row(g: &ConvGeom) -> Option<RowFn<$simd>> {
                if g.dw != 1 {
                    return None;
                }
                match (g.kh, g.kw, g.sw) {
                    $(($kh, $kw, $s) => Some($row as RowFn<$simd>),)*
                    _ => None,
                }
            }

            #[inline(always)]
            fn fast(s: $simd, a: ConvArgs<'_>) {
                body::run(s, a, Some(tiled_row))
            }

            #[inline(always)]
            fn per_pixel(s: $simd, a: ConvArgs<'_>) {
                body::run(s, a, None)
            }

            crate::kernels::simd::simd_kernels! { $simd, #[$feat];
                /// Depthwise convolution for any kernel, stride, dilation and padding; 3x3
                /// and 5x5 kernels at column stride 1 or 2 take the tiled row path. Falls
                /// back to the scalar kernel on a CPU without this ISA. Panics (like the
                /// scalar kernel) when a slice is too short for the geometry.
                fn $entry(a: ConvArgs<'_>) => fast, else scalar::dwconv_generic;
                /// The same bits without the fast paths: every pixel builds its tap list.
                fn $generic(a: ConvArgs<'_>) => per_pixel, else scalar::dwconv_generic;
            }
        }
    };
}

dwconv_tier! {
    /// AVX2 + FMA, 8 lanes. Shapes measured on Zen 4 (two 256-bit FMAs per cycle, 16
    /// registers): 3x3 kernels 4 pixels x 16 channels (8 accumulators + 6 weights + inputs
    /// fill the 16 registers, a block reads whole 64-byte lines), 5x5 kernels 7 pixels x 8
    /// channels (10 weights per kernel row for 16 channels would not fit; 7 divides the
    /// usual feature-map widths 112, 56, 28, 14 and 7).
    #[cfg(target_arch = "x86_64")]
    mod avx2: crate::kernels::simd::Avx2, #[target_feature(enable = "avx2,fma")];
    fn dwconv_8c, dwconv_generic_8c;
    row_3x3s1_4px_16c = 3 x 3 s 1, 2 reg, 4 px, 2 px;
    row_3x3s2_4px_16c = 3 x 3 s 2, 2 reg, 4 px, 2 px;
    row_5x5s1_7px_8c = 5 x 5 s 1, 1 reg, 7 px, 4 px;
    row_5x5s2_7px_8c = 5 x 5 s 2, 1 reg, 7 px, 4 px;
}

dwconv_tier! {
    /// AVX-512F, 16 lanes. 7 pixels x 32 channels (two registers) for both kernel sizes,
    /// measured on Zen 4 (512-bit FMAs as two halves: the FLOP rate of AVX2, half the
    /// instructions, 32 registers: 14 accumulators + 2*KW weights + inputs fit).
    #[cfg(target_arch = "x86_64")]
    mod avx512: crate::kernels::simd::Avx512, #[target_feature(enable = "avx512f")];
    fn dwconv_16c, dwconv_generic_16c;
    row_3x3s1_7px_32c = 3 x 3 s 1, 2 reg, 7 px, 4 px;
    row_3x3s2_7px_32c = 3 x 3 s 2, 2 reg, 7 px, 4 px;
    row_5x5s1_7px_32c = 5 x 5 s 1, 2 reg, 7 px, 4 px;
    row_5x5s2_7px_32c = 5 x 5 s 2, 2 reg, 7 px, 4 px;
}

dwconv_tier! {
    /// aarch64 NEON, 4 lanes, 32 registers: the AVX-512 register budget, 7 pixels x 8
    /// channels (14 accumulators + 2*KW weights + inputs). Stride-1 rows only: each tiled
    /// row costs ~30 KB of code, and the stride-2 ones (a few layers per model) took the
    /// Pi's device binary past its 3 MB budget; those layers keep the per-pixel path. No
    /// half tiles either (rows narrower than 7 pixels go pixel by pixel), for the same reason.
    #[cfg(target_arch = "aarch64")]
    mod neon: crate::kernels::simd::Neon, #[cfg(all())];
    fn dwconv_4c, dwconv_generic_4c;
    row_3x3s1_7px_8c = 3 x 3 s 1, 2 reg, 7 px, 1 px;
    row_5x5s1_7px_8c = 5 x 5 s 1, 2 reg, 7 px, 1 px;
}

dwconv_tier! {
    /// 32-bit ARM NEON, 4 lanes, 16 registers: the AVX2 register budget (3x3: 4 pixels x 8
    /// channels; 5x5: 7 pixels x 4 channels). Stride-1 rows only, as on aarch64.
    #[cfg(all(target_arch = "arm", ferrolite_arm_neon))]
    mod neon: crate::kernels::simd::Neon, #[cfg(all())];
    fn dwconv_4c, dwconv_generic_4c;
    row_3x3s1_4px_8c = 3 x 3 s 1, 2 reg, 4 px, 1 px;
    row_5x5s1_7px_4c = 5 x 5 s 1, 1 reg, 7 px, 1 px;
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The depthwise kernels, best first (see [`super::registry::select`]); the `generic` twins
/// (every pixel on the per-pixel path) are for tests and benchmarks.
pub static DWCONV: &[Entry<DwConvFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_dwconv::avx512::dwconv_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        f32_dwconv::avx512::dwconv_generic_16c,
        needs = [Avx512f],
        twin_of = dwconv_16c
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_dwconv::avx2::dwconv_8c, needs = [Avx2, Fma]),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        f32_dwconv::avx2::dwconv_generic_8c,
        needs = [Avx2, Fma],
        twin_of = dwconv_8c
    ),
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(f32_dwconv::neon::dwconv_4c, needs = [Neon]),
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(
        f32_dwconv::neon::dwconv_generic_4c,
        needs = [Neon],
        twin_of = dwconv_4c
    ),
    kernel!(f32_dwconv::scalar::dwconv_generic),
];
