//! Strided N-d iteration shared by data-movement and broadcasting kernels.
//!
//! A [`Walk`] visits every element of a shape through `K` strided views at once, one
//! innermost row at a time, after dropping unit axes, ordering axes so view 0 is
//! traversed as sequentially as possible and merging axes contiguous in every view.

// Views are parallel fixed-size arrays indexed by view number; index loops read clearest.
#![allow(clippy::needless_range_loop)]

/// Highest rank a walk supports (IR rank 8 plus one split axis for channel shuffle).
pub const MAX_WALK_RANK: usize = 10;

/// A prepared iteration over `K` strided views of one shape.
#[derive(Debug, Clone, Copy)]
pub struct Walk<const K: usize> {
    rank: usize,
    empty: bool,
    dims: [usize; MAX_WALK_RANK],
    strides: [[usize; MAX_WALK_RANK]; K],
}

impl<const K: usize> Walk<K> {
    /// Prepare a walk; `None` if the rank exceeds [`MAX_WALK_RANK`] or lengths differ.
    pub fn new(shape: &[usize], strides: [&[usize]; K]) -> Option<Self> {
        if shape.len() > MAX_WALK_RANK || strides.iter().any(|s| s.len() != shape.len()) {
            return None;
        }
        let mut axes: [usize; MAX_WALK_RANK] = [0; MAX_WALK_RANK];
        let mut n = 0;
        for (a, &d) in shape.iter().enumerate() {
            if d != 1 {
                axes[n] = a;
                n += 1;
            }
        }
        // Outer-to-inner by decreasing stride of view 0 (stable: keeps logical order on ties).
        axes[..n].sort_by(|&x, &y| strides[0][y].cmp(&strides[0][x]));
        // Rows shorter than this cost a kernel call each for a handful of elements (an
        // NCHW -> NHWC input with 3 channels would run 50 176 calls of 3): then the axis
        // another view reads contiguously, if longer, becomes the innermost instead.
        const SHORT_ROW: usize = 8;
        if n >= 2 && shape[axes[n - 1]] < SHORT_ROW {
            let long_contiguous = (1..K).find_map(|v| {
                (0..n - 1).find(|&i| strides[v][axes[i]] == 1 && shape[axes[i]] >= SHORT_ROW)
            });
            if let Some(i) = long_contiguous {
                axes[i..n].rotate_left(1);
            }
        }
        let mut w = Walk {
            rank: 0,
            empty: shape.contains(&0),
            dims: [1; MAX_WALK_RANK],
            strides: [[0; MAX_WALK_RANK]; K],
        };
        for &a in &axes[..n] {
            let d = shape[a];
            if w.rank > 0 {
                let r = w.rank - 1;
                let mergeable = (0..K).all(|v| w.strides[v][r] == strides[v][a] * d);
                if mergeable {
                    w.dims[r] *= d;
                    for v in 0..K {
                        w.strides[v][r] = strides[v][a];
                    }
                    continue;
                }
            }
            w.dims[w.rank] = d;
            for v in 0..K {
                w.strides[v][w.rank] = strides[v][a];
            }
            w.rank += 1;
        }
        Some(w)
    }

    /// Largest offset (exclusive) touched in each view, for bounds checks at plan time.
    pub fn extent(&self) -> [usize; K] {
        let mut e = [0; K];
        if self.empty {
            return e;
        }
        for (v, ev) in e.iter_mut().enumerate() {
            *ev = 1
                + (0..self.rank)
                    .map(|r| (self.dims[r] - 1) * self.strides[v][r])
                    .sum::<usize>();
        }
        e
    }

    /// Call `f(offsets, len, inner_strides)` once per innermost row.
    pub fn run(&self, mut f: impl FnMut([usize; K], usize, [usize; K])) {
        if self.empty {
            return;
        }
        if self.rank == 0 {
            f([0; K], 1, [0; K]);
            return;
        }
        let inner = self.rank - 1;
        let n = self.dims[inner];
        let mut inner_strides = [0; K];
        for v in 0..K {
            inner_strides[v] = self.strides[v][inner];
        }
        let mut idx = [0usize; MAX_WALK_RANK];
        let mut off = [0usize; K];
        loop {
            f(off, n, inner_strides);
            // Increment the outer counter (axes 0..inner).
            let mut r = inner;
            loop {
                if r == 0 {
                    return;
                }
                r -= 1;
                idx[r] += 1;
                for v in 0..K {
                    off[v] += self.strides[v][r];
                }
                if idx[r] < self.dims[r] {
                    break;
                }
                for v in 0..K {
                    off[v] -= self.strides[v][r] * self.dims[r];
                }
                idx[r] = 0;
            }
        }
    }
}

/// Row-major strides of `shape`.
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::Walk;

    /// NCHW -> NHWC with 3 channels: every element once, in rows along W (not C).
    #[test]
    fn short_innermost_rows_give_way_to_a_long_contiguous_axis() {
        let (c, h, w) = (3, 5, 11);
        let dst = [h * w * c, 1, w * c, c]; // NHWC strides indexed by NCHW axes
        let src = [c * h * w, h * w, w, 1];
        let walk = Walk::new(&[1, c, h, w], [&dst, &src]).unwrap();
        let mut seen = vec![usize::MAX; c * h * w];
        let mut rows = 0;
        walk.run(|[d, s], n, [sd, ss]| {
            rows += 1;
            assert_eq!((n, ss), (w, 1));
            for i in 0..n {
                seen[d + i * sd] = s + i * ss;
            }
        });
        assert_eq!(rows, c * h);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(seen[(y * w + x) * c + ch], (ch * h + y) * w + x);
                }
            }
        }
    }
}
