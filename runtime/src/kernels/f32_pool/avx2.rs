//! AVX2 pooling: the channel-innermost portable loops compiled with AVX2 enabled, which the
//! compiler vectorises eight channels at a time (pooling is bound by memory, not
//! arithmetic, so hand-written intrinsics would add nothing).

use super::{scalar, ConvGeom};

fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Max pooling (see [`super::MaxPoolFn`]).
pub fn maxpool_8c(g: &ConvGeom, x: &[f32], y: &mut [f32]) {
    if !has_avx2() {
        return scalar::maxpool(g, x, y);
    }
    // SAFETY: avx2 was detected just above.
    unsafe { maxpool_avx2(g, x, y) }
}

#[target_feature(enable = "avx2")]
fn maxpool_avx2(g: &ConvGeom, x: &[f32], y: &mut [f32]) {
    scalar::maxpool(g, x, y)
}

/// Average pooling (see [`super::AvgPoolFn`]).
pub fn avgpool_8c(g: &ConvGeom, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    if !has_avx2() {
        return scalar::avgpool(g, count_include_pad, x, y);
    }
    // SAFETY: avx2 was detected just above.
    unsafe { avgpool_avx2(g, count_include_pad, x, y) }
}

#[target_feature(enable = "avx2")]
fn avgpool_avx2(g: &ConvGeom, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    scalar::avgpool(g, count_include_pad, x, y)
}

/// Global average pooling (see [`super::GlobalAvgFn`]).
pub fn global_avg_8c(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    if !has_avx2() {
        return scalar::global_avg(n, hw, c, x, y);
    }
    // SAFETY: avx2 was detected just above.
    unsafe { global_avg_avx2(n, hw, c, x, y) }
}

#[target_feature(enable = "avx2")]
fn global_avg_avx2(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    scalar::global_avg(n, hw, c, x, y)
}
