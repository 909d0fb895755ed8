//! Scalar kernels against naive references written here (NCHW loops, hand-computed values).

use ferrolite_runtime::kernels::f32_conv::{ConvArgs, ConvGeom};
use ferrolite_runtime::kernels::f32_gemm::{pack_b, GemmParams};
use ferrolite_runtime::kernels::walk::{row_major_strides, Walk};
use ferrolite_runtime::kernels::{self, cpu, Act, BinOp, CpuFeatures, Isa};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn v(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    fn u(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

fn relu6(v: f32) -> f32 {
    v.clamp(0.0, 6.0)
}

#[test]
fn gemm_matches_naive() {
    let k = kernels::generic();
    let mut r = Rng(1);
    for &(m, n, kk) in &[
        (0, 3, 4),
        (1, 1, 1),
        (5, 17, 33),
        (67, 9, 7),
        (130, 33, 65),
        (3, 8, 0),
        (4, 16, 2),
    ] {
        let a = r.v(m * kk);
        let b = r.v(kk * n);
        let bias = r.v(n);
        let res = r.v(m * n);
        let mut c = vec![0.0; m * n];
        (k.f32_gemm.f)(GemmParams {
            m,
            n,
            k: kk,
            a: &a,
            lda: kk,
            b: &pack_b(kk, n, &b),
            bias: Some(&bias),
            residual: Some(&res),
            c: (&mut c[..]).into(),
            ldc: n,
            act: Act::Clip { min: 0.0, max: 6.0 },
        });
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[j] + res[i * n + j];
                for p in 0..kk {
                    s += a[i * kk + p] * b[p * n + j];
                }
                want[i * n + j] = relu6(s);
            }
        }
        close(&c, &want, &format!("gemm {m}x{n}x{kk}"));
    }
}

/// Naive NCHW convolution (7 nested loops) returning NCHW.
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f32],
    g: &ConvGeom,
    pb: usize,
    pr: usize,
    w: &[f32],
    bias: &[f32],
    res: Option<&[f32]>,
    act: fn(f32) -> f32,
) -> Vec<f32> {
    let _ = (pb, pr);
    let (cg, og) = (g.c / g.groups, g.o / g.groups);
    let mut y = vec![0.0; g.n * g.o * g.oh * g.ow];
    for n in 0..g.n {
        for o in 0..g.o {
            let grp = o / og;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = bias[o];
                    for ic in 0..cg {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                                let ix = (ox * g.sw + kx * g.dw) as isize - g.pl as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let c = grp * cg + ic;
                                let xv = x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                s += xv * w[((o * cg + ic) * g.kh + ky) * g.kw + kx];
                            }
                        }
                    }
                    let i = ((n * g.o + o) * g.oh + oy) * g.ow + ox;
                    if let Some(r) = res {
                        s += r[i];
                    }
                    y[i] = act(s);
                }
            }
        }
    }
    y
}

fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h * w {
                y[(b * h * w + i) * c + ch] = x[(b * c + ch) * h * w + i];
            }
        }
    }
    y
}

fn random_geom(r: &mut Rng, depthwise: bool) -> (ConvGeom, usize, usize) {
    let chans = [1, 3, 5, 17, 33];
    let ks = [1, 3, 5, 7];
    let groups = if depthwise { 0 } else { [1, 1, 2, 3][r.u(4)] };
    let c = if depthwise {
        chans[r.u(5)]
    } else {
        groups * chans[r.u(4)]
    };
    let groups = if depthwise { c } else { groups };
    let o = if depthwise { c } else { groups * chans[r.u(4)] };
    let (kh, kw) = (ks[r.u(4)], ks[r.u(4)]);
    let (sh, sw, dh, dw) = (1 + r.u(2), 1 + r.u(2), 1 + r.u(2), 1 + r.u(2));
    let (pt, pl, pb, pr) = (r.u(3), r.u(3), r.u(4), r.u(2));
    let h = (kh - 1) * dh + 1 + r.u(7);
    let w = (kw - 1) * dw + 1 + r.u(6);
    let oh = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
    let ow = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
    let g = ConvGeom {
        n: 1 + r.u(2),
        h,
        w,
        c,
        oh,
        ow,
        o,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        pt,
        pl,
        groups,
    };
    (g, pb, pr)
}

fn check_conv(depthwise: bool, seed: u64, iters: usize) {
    let k = kernels::generic();
    let mut r = Rng(seed);
    for it in 0..iters {
        let (g, pb, pr) = random_geom(&mut r, depthwise);
        let x = r.v(g.n * g.c * g.h * g.w);
        let w = r.v(g.o * (g.c / g.groups) * g.kh * g.kw);
        let bias = r.v(g.o);
        let res = r.v(g.n * g.o * g.oh * g.ow);
        let want = conv_ref(&x, &g, pb, pr, &w, &bias, Some(&res), relu6);
        let want = nchw_to_nhwc(&want, g.n, g.o, g.oh, g.ow);
        let xn = nchw_to_nhwc(&x, g.n, g.c, g.h, g.w);
        let resn = nchw_to_nhwc(&res, g.n, g.o, g.oh, g.ow);
        let mut y = vec![f32::NAN; want.len()];
        let packed = if depthwise {
            kernels::f32_dwconv::pack_weights(&g, &w)
        } else {
            kernels::f32_conv::pack_weights(&g, &w)
        };
        let args = ConvArgs {
            g: &g,
            x: &xn,
            w: &packed,
            bias: &bias,
            residual: Some(&resn),
            y: &mut y,
            act: Act::Clip { min: 0.0, max: 6.0 },
        };
        if depthwise {
            (k.f32_dwconv.f)(args)
        } else {
            (k.f32_conv.f)(args)
        }
        close(&y, &want, &format!("conv {it} {g:?}"));
    }
}

#[test]
fn conv_direct_matches_naive_on_random_shapes() {
    check_conv(false, 7, 60);
}

#[test]
fn dwconv_matches_naive_on_random_shapes() {
    check_conv(true, 11, 60);
}

#[test]
fn conv_size_one_and_zero_channels() {
    let k = kernels::generic();
    let g = ConvGeom {
        n: 1,
        h: 1,
        w: 1,
        c: 1,
        oh: 1,
        ow: 1,
        o: 1,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        pt: 0,
        pl: 0,
        groups: 1,
    };
    let mut y = [0.0];
    (k.f32_conv.f)(ConvArgs {
        g: &g,
        x: &[2.0],
        w: &[3.0],
        bias: &[0.5],
        residual: None,
        y: &mut y,
        act: Act::None,
    });
    assert_eq!(y, [6.5]);
    let g0 = ConvGeom { c: 0, o: 0, ..g };
    (k.f32_conv.f)(ConvArgs {
        g: &g0,
        x: &[],
        w: &[],
        bias: &[],
        residual: None,
        y: &mut [],
        act: Act::None,
    });
    (k.f32_dwconv.f)(ConvArgs {
        g: &g0,
        x: &[],
        w: &[],
        bias: &[],
        residual: None,
        y: &mut [],
        act: Act::None,
    });
}

#[test]
fn pools_match_naive() {
    let k = kernels::generic();
    let mut r = Rng(5);
    for _ in 0..40 {
        let (mut g, _, _) = random_geom(&mut r, true);
        // pads smaller than the window
        g.pt = g.pt.min(g.kh - 1);
        g.pl = g.pl.min(g.kw - 1);
        g.oh = (g.h + 2 * g.pt - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
        g.ow = (g.w + 2 * g.pl - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
        let x = r.v(g.n * g.c * g.h * g.w);
        let xn = nchw_to_nhwc(&x, g.n, g.c, g.h, g.w);
        for mode in 0..3 {
            let mut want = vec![0.0; g.n * g.c * g.oh * g.ow];
            for n in 0..g.n {
                for c in 0..g.c {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let (mut mx, mut s, mut cnt) = (f32::NEG_INFINITY, 0.0, 0);
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                                    let ix = (ox * g.sw + kx * g.dw) as isize - g.pl as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let v =
                                        x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                    mx = mx.max(v);
                                    s += v;
                                    cnt += 1;
                                }
                            }
                            want[((n * g.c + c) * g.oh + oy) * g.ow + ox] = match mode {
                                0 => mx,
                                1 => s / cnt as f32,
                                _ => s / (g.kh * g.kw) as f32,
                            };
                        }
                    }
                }
            }
            let mut y = vec![0.0; want.len()];
            match mode {
                0 => (k.f32_maxpool.f)(&g, &xn, &mut y),
                m => (k.f32_avgpool.f)(&g, m == 2, &xn, &mut y),
            }
            close(
                &y,
                &nchw_to_nhwc(&want, g.n, g.c, g.oh, g.ow),
                &format!("pool mode {mode} {g:?}"),
            );
        }
    }
    // global average: 2 images, 3 pixels, 2 channels
    let x = [
        1.0, 10.0, 2.0, 20.0, 3.0, 30.0, -1.0, 0.0, -2.0, 0.0, -3.0, 3.0,
    ];
    let mut y = [0.0; 4];
    (k.f32_global_avg.f)(2, 3, 2, &x, &mut y);
    close(&y, &[2.0, 20.0, -2.0, 1.0], "global avg");
}

#[test]
fn activations_hand_computed() {
    let k = kernels::generic();
    let xs = [-2.0f32, -0.5, 0.0, 1.0, 4.0];
    let cases: Vec<(Act, [f32; 5])> = vec![
        (Act::None, xs),
        (Act::Relu, [0.0, 0.0, 0.0, 1.0, 4.0]),
        (
            Act::Clip {
                min: -1.0,
                max: 2.0,
            },
            [-1.0, -0.5, 0.0, 1.0, 2.0],
        ),
        (Act::LeakyRelu { alpha: 0.1 }, [-0.2, -0.05, 0.0, 1.0, 4.0]),
        (
            Act::HardSwish,
            [
                -2.0 * 1.0 / 6.0,
                -0.5 * 2.5 / 6.0,
                0.0,
                1.0 * 4.0 / 6.0,
                4.0,
            ],
        ),
        (
            Act::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            [0.1, 0.4, 0.5, 0.7, 1.0],
        ),
        (
            Act::Sigmoid,
            [0.119_202_92, 0.377_540_67, 0.5, 0.731_058_6, 0.982_013_8],
        ),
        (
            Act::Silu,
            [-0.238_405_84, -0.188_770_33, 0.0, 0.731_058_6, 3.928_055],
        ),
        (
            Act::Tanh,
            [-0.964_027_6, -0.462_117_16, 0.0, 0.761_594_2, 0.999_329_3],
        ),
        (
            Act::Gelu,
            [-0.045_500_26, -0.154_268_5, 0.0, 0.841_344_7, 3.999_873_3],
        ),
        (
            Act::Exp,
            [
                0.135_335_28,
                0.606_530_66,
                1.0,
                std::f32::consts::E,
                54.598_15,
            ],
        ),
        (Act::Abs, [2.0, 0.5, 0.0, 1.0, 4.0]),
        (Act::Neg, [2.0, 0.5, 0.0, -1.0, -4.0]),
        (
            Act::Erf,
            [-0.995_322_3, -0.520_499_9, 0.0, 0.842_700_8, 1.0],
        ),
    ];
    for (act, want) in cases {
        let mut v = xs;
        (k.f32_activation.f)(act, &mut v);
        close(&v, &want, &format!("{act:?}"));
    }
    let pos = [0.25f32, 1.0, 4.0];
    for (act, want) in [
        (Act::Log, [-1.386_294_4, 0.0, 1.386_294_4]),
        (Act::Sqrt, [0.5, 1.0, 2.0]),
        (Act::Rsqrt, [2.0, 1.0, 0.5]),
        (Act::Reciprocal, [4.0, 1.0, 0.25]),
    ] {
        let mut v = pos;
        (k.f32_activation.f)(act, &mut v);
        close(&v, &want, &format!("{act:?}"));
    }
}

#[test]
fn binary_kernels_and_softmax() {
    let k = kernels::generic();
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [2.0f32, 0.5, 3.0];
    let mut y = [0.0; 6];
    (k.f32_binary_channel.f)(BinOp::Sub, &a, &b, 3, false, &mut y);
    assert_eq!(y, [-1.0, 1.5, 0.0, 2.0, 4.5, 3.0]);
    (k.f32_binary_channel.f)(BinOp::Div, &a, &b, 3, true, &mut y);
    close(&y, &[2.0, 0.25, 1.0, 0.5, 0.1, 0.5], "swap div");
    let mut y2 = [0.0; 3];
    (k.f32_binary.f)(BinOp::Pow, &a[..3], &b, &mut y2);
    close(&y2, &[1.0, 2f32.sqrt(), 27.0], "pow");
    (k.f32_binary_strided.f)(BinOp::Max, 3, &a, 2, &[2.5], 0, &mut y2, 1);
    assert_eq!(y2, [2.5, 3.0, 5.0]);
    // softmax of [1, 2, 3] stored with stride 2
    let x = [1.0f32, 9.0, 2.0, 9.0, 3.0];
    let mut s = [0.0f32; 3];
    (k.f32_softmax.f)(3, &x, 2, &mut s, 1);
    let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
    let t: f32 = e.iter().sum();
    close(&s, &[e[0] / t, e[1] / t, e[2] / t], "softmax");
    // affine channels-first and channels-last
    let mut z = [0.0; 4];
    (k.f32_affine.f)(
        &[1.0, 2.0, 3.0, 4.0],
        &[2.0, 3.0],
        &[1.0, 0.0],
        2,
        2,
        &mut z,
    );
    assert_eq!(z, [3.0, 5.0, 9.0, 12.0]);
    (k.f32_affine.f)(
        &[1.0, 2.0, 3.0, 4.0],
        &[2.0, 3.0],
        &[1.0, 0.0],
        2,
        1,
        &mut z,
    );
    assert_eq!(z, [3.0, 6.0, 7.0, 12.0]);
}

#[test]
fn strided_walk_transposes() {
    let k = kernels::generic();
    let mut r = Rng(3);
    let shape = [2, 3, 4, 5];
    let x = r.v(120);
    let perm = [0, 2, 3, 1];
    let xs = row_major_strides(&shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let src: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    let walk = Walk::new(&out_shape, [&row_major_strides(&out_shape), &src]).unwrap();
    let mut y = vec![0.0; 120];
    kernels::f32_copy::copy_view(k.f32_copy.f, &walk, &x, 0, &mut y, 0);
    for a in 0..2 {
        for b in 0..4 {
            for c in 0..5 {
                for d in 0..3 {
                    assert_eq!(
                        y[((a * 4 + b) * 5 + c) * 3 + d],
                        x[((a * 3 + d) * 4 + b) * 5 + c]
                    );
                }
            }
        }
    }
    assert_eq!(walk.extent(), [120, 120]);
    // empty shapes visit nothing
    let w0 = Walk::new(&[3, 0], [&[1, 1], &[1, 1]]).unwrap();
    w0.run(|_, _, _| panic!("visited an empty shape"));
}

#[test]
fn isa_selection() {
    let f = CpuFeatures::detect();
    assert_eq!(cpu::resolve_isa(Some("scalar"), &f).unwrap(), Isa::Scalar);
    assert!(cpu::resolve_isa(Some("sse9"), &f).is_err());
    let none = CpuFeatures::default();
    assert!(cpu::resolve_isa(Some("avx2"), &none).is_err());
    assert!(cpu::resolve_isa(Some("neon"), &none).is_err());
    assert_eq!(cpu::resolve_isa(None, &none).unwrap(), Isa::Scalar);
    assert_eq!(cpu::resolve_isa(None, &f).unwrap(), f.best_isa());
    let g = kernels::generic();
    assert_eq!(g.f32_dwconv.name, "f32_dwconv::scalar::dwconv_generic");
    assert_eq!(g.names().len(), 21);
}

/// Throughput check (run with `--release -- --ignored`): prints GFLOP/s of the scalar
/// GEMM, direct conv and depthwise conv on MobileNet-like layer sizes.
#[test]
#[ignore]
fn scalar_throughput() {
    let k = kernels::generic();
    let mut r = Rng(9);
    let (m, n, kk) = (56 * 56, 128, 128);
    let a = r.v(m * kk);
    let b = pack_b(kk, n, &r.v(kk * n));
    let mut c = vec![0.0; m * n];
    let t = std::time::Instant::now();
    for _ in 0..5 {
        (k.f32_gemm.f)(GemmParams {
            m,
            n,
            k: kk,
            a: &a,
            lda: kk,
            b: &b,
            bias: None,
            residual: None,
            c: (&mut c[..]).into(),
            ldc: n,
            act: Act::Relu,
        });
    }
    let gf = 5.0 * 2.0 * (m * n * kk) as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!("gemm {m}x{n}x{kk}: {gf:.2} GFLOP/s");
    for (dw, c_, o, kh) in [(false, 32, 64, 3), (true, 128, 128, 3)] {
        let g = ConvGeom {
            n: 1,
            h: 56,
            w: 56,
            c: c_,
            oh: 56,
            ow: 56,
            o,
            kh,
            kw: kh,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 1,
            pl: 1,
            groups: if dw { c_ } else { 1 },
        };
        let x = r.v(56 * 56 * c_);
        let w = r.v(o * (c_ / g.groups) * kh * kh);
        let bias = vec![0.0; o];
        let mut y = vec![0.0; 56 * 56 * o];
        let wp = if dw {
            kernels::f32_dwconv::pack_weights(&g, &w)
        } else {
            kernels::f32_conv::pack_weights(&g, &w)
        };
        let t = std::time::Instant::now();
        for _ in 0..3 {
            let args = ConvArgs {
                g: &g,
                x: &x,
                w: &wp,
                bias: &bias,
                residual: None,
                y: &mut y,
                act: Act::Relu,
            };
            if dw {
                (k.f32_dwconv.f)(args)
            } else {
                (k.f32_conv.f)(args)
            }
        }
        let flops = 3.0 * 2.0 * (56 * 56 * o * (c_ / g.groups) * kh * kh) as f64;
        println!(
            "{} conv: {:.2} GFLOP/s",
            if dw { "depthwise" } else { "dense" },
            flops / t.elapsed().as_secs_f64() / 1e9
        );
    }
}

#[test]
fn best_kernels_record_the_detected_tier() {
    let k = kernels::best();
    assert_eq!(k.isa, CpuFeatures::detect().best_isa());
    // Every slot names a kernel of the chosen tier, of a tier it implies (AVX-512 machines
    // run the AVX2 kernels of memory-bound families), or the scalar fallback.
    let tier = k.isa.name();
    let implied: &[&str] = match k.isa {
        Isa::Avx512 => &["avx2"],
        _ => &[],
    };
    for (slot, n) in k.names() {
        assert!(
            n.contains("::scalar::")
                || n.contains(&format!("::{tier}::"))
                || implied.iter().any(|t| n.contains(&format!("::{t}::"))),
            "slot {slot} runs {n} on tier {tier}"
        );
    }
    assert!(kernels::generic()
        .names()
        .iter()
        .all(|(_, n)| n.contains("::scalar::")));
}
