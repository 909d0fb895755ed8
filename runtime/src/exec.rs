//! The executor: a [`Session`] owns a model, its [`Plan`], the activation arena, per-thread
//! scratch and output buffers (all allocated once when it is made) and a thread pool, and
//! runs the plan's steps. A step big enough to pay for a hand-off is split into as many
//! parts as there are threads, each a contiguous range of its work units; smaller steps run
//! on the calling thread. Units compute the same bytes whichever range they run in, so the
//! results do not depend on the thread count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ir::DType;
use crate::kernels::f32_copy::copy_view;
use crate::kernels::f32_copy::scalar::planar_to_interleaved;
use crate::kernels::walk::{row_major_strides, Walk};
use crate::kernels::{self, Kernels};
use crate::plan::arena::{Arena, Buf, Cx, Outs, ALIGN};
use crate::plan::step::Work;
use crate::plan::{Plan, Planned};
use crate::threads::{topology, Placement, Pool};
use crate::weights::Model;

/// Estimated single-thread time a part of a split step should have at least: below it the
/// hand-off to a worker (about a microsecond each way) costs more than the thread saves.
pub const MIN_PART_NS: u64 = 4000;

/// One input or output of a model, as [`Session::inputs`] and [`Session::outputs`] give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name in the source model.
    pub name: String,
    /// Logical (NCHW for images) row-major shape, batch first.
    pub shape: Vec<usize>,
    /// Element type the model computes in; the session takes and gives f32 values (8-bit
    /// tensors as their integer values).
    pub dtype: DType,
}

/// How a [`Session`] runs: its threads, their cores and its kernels.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Threads in all, the calling thread included. `None`: one per CPU of `cpus`, which by
    /// default are the big cores.
    pub threads: Option<usize>,
    /// CPUs to run on. `None`: the big cores (by `cpu_capacity`, else maximum frequency)
    /// this process may use.
    pub cpus: Option<Vec<usize>>,
    /// Pin each worker thread to a CPU of its own (when there are at least as many CPUs as
    /// threads); else workers run anywhere in the CPU set.
    pub pin: bool,
    /// Pin the thread that calls [`Session::run`] to the first (fastest) CPU too, for the
    /// duration of each run (its own mask is put back afterwards). Without it the caller
    /// keeps its affinity and, so that it can never share a core with a pinned worker, the
    /// workers run anywhere in the set.
    pub pin_caller: bool,
    /// Use this pool instead of making one: sessions that share a pool share its workers
    /// (a session that finds it busy runs on its calling thread meanwhile).
    pub pool: Option<Arc<Pool>>,
    /// An explicit kernel set (tests, benchmarks, forced tiers). `None`: `FERROLITE_ISA`
    /// if set, else the best tier of this CPU.
    pub kernels: Option<Kernels>,
    /// Smallest estimated part of a split step, in nanoseconds (default [`MIN_PART_NS`]); 0
    /// splits every step that has several units (tests use it to exercise every split).
    pub min_part_ns: u64,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: None,
            cpus: None,
            pin: true,
            pin_caller: true,
            pool: None,
            kernels: None,
            min_part_ns: MIN_PART_NS,
        }
    }
}

impl SessionOptions {
    /// Run on `n` threads (the caller included).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Run on these CPUs.
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Use an explicit kernel set.
    pub fn kernels(mut self, k: Kernels) -> Self {
        self.kernels = Some(k);
        self
    }

    /// One thread, no pool, no pinning: what a session ran before threads existed.
    pub fn single_thread() -> Self {
        SessionOptions {
            threads: Some(1),
            pin: false,
            pin_caller: false,
            ..SessionOptions::default()
        }
    }
}

/// A loaded model ready to run repeatedly without allocating.
pub struct Session {
    model: Arc<Model>,
    plan: Plan,
    arena: Vec<f32>,
    /// Index of the first 64-byte-aligned element of `arena`.
    base: usize,
    /// One region of `plan.scratch_len` slots per thread, from `scratch_base`.
    scratch: Vec<f32>,
    scratch_base: usize,
    outputs: Vec<Vec<f32>>,
    /// Walks `[tensor strides, logical strides]` per input and `[logical, tensor]` per output.
    in_walks: Vec<Walk<2>>,
    out_walks: Vec<Walk<2>>,
    /// Per input: the NCHW -> NHWC layout change of a rank-4 input, and its parts.
    in_layouts: Vec<Option<InputLayout>>,
    in_parts: Vec<usize>,
    pool: Arc<Pool>,
    placement: Placement,
    /// Parts each step splits into on this session's threads.
    parts: Vec<usize>,
    pin_caller: Option<usize>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("arena_bytes", &self.plan.arena_bytes())
            .field("steps", &self.plan.steps().len())
            .field("isa", &self.isa())
            .field("threads", &self.threads())
            .finish()
    }
}

/// Parts a step of `work` splits into on `threads` threads.
fn parts_for(work: &Work, threads: usize, min_part_ns: u64) -> usize {
    if threads <= 1 || work.units <= 1 {
        return 1;
    }
    let chunks = work.units.div_ceil(work.grain.max(1));
    let by_cost = match min_part_ns {
        0 => usize::MAX,
        m => (work.cost_ns / m) as usize,
    };
    (threads * PARTS_PER_THREAD)
        .min(chunks)
        .min(by_cost)
        .clamp(1, MAX_PARTS)
}

/// Parts per thread a large step splits into: several, so that a thread that is late or
/// slow (preempted, on a slower core) leaves most of its share to the others.
const PARTS_PER_THREAD: usize = 2;

/// Most parts a step splits into (the claim mask is one 64-bit word).
const MAX_PARTS: usize = 63;

impl Session {
    /// Plan `model` with the best kernels for this CPU (honouring `FERROLITE_ISA`), on one
    /// thread per big core.
    pub fn new(model: Arc<Model>) -> Result<Session> {
        Session::with_options(model, SessionOptions::default())
    }

    /// Plan `model` with an explicit kernel set (tests, benchmarks, forced tiers).
    pub fn with_kernels(model: Arc<Model>, kernels: Kernels) -> Result<Session> {
        Session::with_options(model, SessionOptions::default().kernels(kernels))
    }

    /// Plan `model` with the given options.
    pub fn with_options(model: Arc<Model>, opts: SessionOptions) -> Result<Session> {
        let k = match opts.kernels {
            Some(k) => k,
            None => kernels::from_env()?,
        };
        let plan = Plan::new(&model, &k)?;
        let (pool, placement) = match &opts.pool {
            Some(pool) => {
                let cpus = pool.cpus().to_vec();
                let p = Placement {
                    threads: pool.threads(),
                    cpus: cpus.clone(),
                    pin: cpus,
                };
                (Arc::clone(pool), p)
            }
            None => {
                let pin_each = opts.pin && opts.pin_caller;
                let p = Placement::detect(opts.threads, opts.cpus.as_deref(), pin_each)
                    .map_err(Error::Input)?;
                (Arc::new(Pool::placed(&p)), p)
            }
        };
        let threads = pool.threads();
        check_memory(&model, &plan, threads)?;
        let arena = vec![0.0f32; plan.arena_len + ALIGN];
        let base = aligned_start(&arena);
        let scratch = vec![0.0f32; plan.scratch_len * threads + ALIGN];
        let scratch_base = aligned_start(&scratch);
        let (in_walks, out_walks, outputs) = io_walks(&model, &plan)?;
        let parts = plan
            .steps
            .iter()
            .map(|s| parts_for(&s.work, threads, opts.min_part_ns))
            .collect();
        let in_layouts: Vec<Option<InputLayout>> = plan
            .inputs
            .iter()
            .map(|&t| plan.places[t].as_ref().and_then(InputLayout::of))
            .collect();
        let in_parts = in_layouts
            .iter()
            .map(|l| {
                l.as_ref()
                    .map_or(1, |l| parts_for(&l.work(), threads, opts.min_part_ns))
            })
            .collect();
        let pin_caller = if opts.pin_caller {
            placement.pin.first().copied()
        } else {
            None
        };
        Ok(Session {
            model,
            plan,
            arena,
            base,
            scratch,
            scratch_base,
            outputs,
            in_walks,
            out_walks,
            in_layouts,
            in_parts,
            pool,
            placement,
            parts,
            pin_caller,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Logical (NCHW) shapes of the model inputs.
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.plan
            .inputs
            .iter()
            .map(|&t| self.plan.shape(t).to_vec())
            .collect()
    }

    /// Logical shapes of the model outputs.
    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.plan
            .outputs
            .iter()
            .map(|&t| self.plan.shape(t).to_vec())
            .collect()
    }

    /// The execution plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Name of the kernel tier in use.
    pub fn isa(&self) -> &'static str {
        self.plan.kernels().isa.name()
    }

    /// Threads a run uses, the caller included.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Where the threads run.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Whether the worker threads are pinned, one per CPU (the pool reports what it got,
    /// which is unpinned when the OS refused).
    pub fn pinned(&self) -> bool {
        !self.pool.cpus().is_empty()
    }

    /// The session's pool (to share it with other sessions through [`SessionOptions::pool`]).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Parts step `i` (an index into [`Plan::steps`]) splits into on this session's threads
    /// (0 for a step with nothing to run).
    pub fn step_parts(&self, i: usize) -> usize {
        match self.plan.steps.get(i) {
            Some(s) if s.step.is_some() => self.parts[i],
            _ => 0,
        }
    }

    /// Output `i` of the last run, logical row-major; `None` if the model has no output
    /// `i`. 8-bit outputs hold their integer values as f32.
    pub fn output(&self, i: usize) -> Option<&[f32]> {
        self.outputs.get(i).map(|v| v.as_slice())
    }

    /// The output named `name` (see [`Session::outputs`]) of the last run; `None` if the
    /// model has no output of that name.
    pub fn output_named(&self, name: &str) -> Option<&[f32]> {
        let tensors = &self.model.graph.tensors;
        let i = self
            .plan
            .outputs
            .iter()
            .position(|&t| tensors.get(t).is_some_and(|x| x.name == name))?;
        self.output(i)
    }

    /// The model inputs: name, logical (NCHW) shape and element type, in the order
    /// [`Session::run`] takes them.
    pub fn inputs(&self) -> Vec<TensorInfo> {
        self.describe(&self.plan.inputs)
    }

    /// The model outputs: name, logical shape and element type, in output index order.
    pub fn outputs(&self) -> Vec<TensorInfo> {
        self.describe(&self.plan.outputs)
    }

    fn describe(&self, ids: &[usize]) -> Vec<TensorInfo> {
        ids.iter()
            .map(|&t| {
                let tensor = self.model.graph.tensors.get(t);
                TensorInfo {
                    name: tensor.map(|x| x.name.clone()).unwrap_or_default(),
                    shape: self.plan.shape(t).to_vec(),
                    dtype: tensor.map_or(DType::F32, |x| x.dtype),
                }
            })
            .collect()
    }

    /// Run the model on logical row-major inputs (one slice per model input).
    pub fn run(&mut self, inputs: &[&[f32]]) -> Result<()> {
        self.run_inner(inputs, None)
    }

    /// Run and time every step (one duration per [`Plan::steps`] entry).
    pub fn run_profiled(&mut self, inputs: &[&[f32]]) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(self.plan.steps.len());
        self.run_inner(inputs, Some(&mut times))?;
        Ok(times)
    }

    fn run_inner(
        &mut self,
        inputs: &[&[f32]],
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<()> {
        let _pinned = self.pin_caller.map(CallerPin::new);
        self.pool.wake();
        self.write_inputs(inputs)?;
        let plan = &self.plan;
        let arena_len = plan.arena_len;
        let arena = Arena::new(&mut self.arena[self.base..self.base + arena_len]);
        let per = plan.scratch_len;
        let scratch = Scratch::new(&mut self.scratch[self.scratch_base..], per);
        for (planned, &parts) in plan.steps.iter().zip(&self.parts) {
            let start = times.as_ref().map(|_| Instant::now());
            if let Some(step) = &planned.step {
                run_step(
                    &plan.kernels,
                    planned,
                    step.as_ref(),
                    parts,
                    arena,
                    &plan.consts,
                    &scratch,
                    &self.pool,
                )?;
            }
            if let (Some(t), Some(s)) = (times.as_deref_mut(), start) {
                t.push(s.elapsed());
            }
        }
        self.read_outputs();
        Ok(())
    }

    /// Copy the inputs into the arena in their physical layouts.
    fn write_inputs(&mut self, inputs: &[&[f32]]) -> Result<()> {
        let plan = &self.plan;
        if inputs.len() != plan.inputs.len() {
            return Err(Error::Input(format!(
                "expected {} inputs, got {}",
                plan.inputs.len(),
                inputs.len()
            )));
        }
        let arena = &mut self.arena[self.base..self.base + plan.arena_len];
        let copy = plan.kernels.f32_copy.f;
        for (i, (&t, data)) in plan.inputs.iter().zip(inputs).enumerate() {
            let Some(p) = plan.places[t].as_ref() else {
                continue;
            };
            if data.len() != p.loc.len {
                let name = self
                    .model
                    .graph
                    .tensors
                    .get(t)
                    .map(|t| t.name.as_str())
                    .unwrap_or("?");
                return Err(Error::Input(format!(
                    "input {i} {name:?} (shape {:?}): expected {} values, got {}",
                    p.shape,
                    p.loc.len,
                    data.len()
                )));
            }
            if let Some(l) = &self.in_layouts[i] {
                let arena = Arena::new(&mut *arena);
                let outs = [crate::plan::arena::Out::f32(p.loc, l.block * l.c)];
                let parts = self.in_parts[i];
                split_run(&self.pool, &l.work(), parts, &|_, units| {
                    // SAFETY: `split_run` hands out disjoint unit ranges, and nothing else
                    // touches the input's region while it is written.
                    let mut out = unsafe { Outs::new(arena, &outs, units.clone()) };
                    l.write(data, units, out.f32(0)?);
                    Ok(())
                })?;
                continue;
            }
            let dst = &mut arena[p.loc.off..p.loc.off + p.loc.len];
            copy_view(copy, &self.in_walks[i], data, 0, dst, 0);
        }
        Ok(())
    }

    /// Copy the outputs out of the arena, logical row-major.
    fn read_outputs(&mut self) {
        let plan = &self.plan;
        let arena = &self.arena[self.base..self.base + plan.arena_len];
        let copy = plan.kernels.f32_copy.f;
        for (i, &t) in plan.outputs.iter().enumerate() {
            let Some(p) = plan.places[t].as_ref() else {
                continue;
            };
            let byte = self
                .model
                .graph
                .tensors
                .get(t)
                .map(|t| (crate::plan::is_byte(t), t.dtype));
            if let (Some((true, dtype)), Buf::Arena) = (byte, p.loc.buf) {
                let bytes: &[u8] = bytemuck::cast_slice(&arena[p.loc.off..]);
                let signed = dtype == crate::ir::DType::I8;
                let out = &mut self.outputs[i];
                self.out_walks[i].run(|[d, s], n, [sd, ss]| {
                    for j in 0..n {
                        let b = bytes[s + j * ss];
                        out[d + j * sd] = if signed { b as i8 as f32 } else { b as f32 };
                    }
                });
                continue;
            }
            let src = match p.loc.buf {
                Buf::Arena => &arena[p.loc.off..p.loc.off + p.loc.len],
                Buf::Const => &plan.consts[p.loc.off..p.loc.off + p.loc.len],
            };
            copy_view(copy, &self.out_walks[i], src, 0, &mut self.outputs[i], 0);
        }
    }
}

/// The calling thread pinned to one CPU for the life of this value, then restored.
struct CallerPin(Option<topology::SavedAffinity>);

impl CallerPin {
    fn new(cpu: usize) -> CallerPin {
        let saved = topology::SavedAffinity::save();
        // A refusal leaves the caller where the OS put it (the pool already reported that
        // pinning is refused); the run goes on.
        let pinned = topology::pin_current_thread(&[cpu]).is_ok();
        CallerPin(saved.filter(|_| pinned))
    }
}

impl Drop for CallerPin {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.restore();
        }
    }
}

/// An NCHW model input stored channels-last: its units are blocks of pixels.
#[derive(Debug, Clone, Copy)]
struct InputLayout {
    n: usize,
    c: usize,
    pixels: usize,
    block: usize,
}

impl InputLayout {
    /// The layout change of a rank-4 channels-last input place.
    fn of(p: &crate::plan::arena::Place) -> Option<InputLayout> {
        let [n, c, h, w] = p.shape[..] else {
            return None;
        };
        (p.strides == [h * w * c, 1, w * c, c] && c > 0).then_some(InputLayout {
            n,
            c,
            pixels: h * w,
            block: 1024,
        })
    }

    fn work(&self) -> Work {
        let px = self.n * self.pixels;
        Work::moves(px.div_ceil(self.block), 1, (8 * px * self.c) as u64)
    }

    /// Write the pixels of blocks `units` of the planar `x` into `y` (their interleaved part).
    fn write(&self, x: &[f32], units: std::ops::Range<usize>, y: &mut [f32]) {
        let total = self.n * self.pixels;
        let (mut p, end) = (
            units.start * self.block,
            (units.end * self.block).min(total),
        );
        let mut at = 0;
        while p < end {
            let (img, q) = (p / self.pixels, p % self.pixels);
            let stop = (q + end - p).min(self.pixels);
            let plane = &x[img * self.pixels * self.c..(img + 1) * self.pixels * self.c];
            let len = (stop - q) * self.c;
            planar_to_interleaved(self.c, self.pixels, q..stop, plane, &mut y[at..at + len]);
            at += len;
            p += stop - q;
        }
    }
}

/// The index of the first 64-byte-aligned element of `v` (within its first `ALIGN`).
fn aligned_start(v: &[f32]) -> usize {
    match v.as_ptr().align_offset(64) {
        b if b < ALIGN => b,
        _ => 0,
    }
}

/// The input and output walks of `plan`, and the output buffers.
#[allow(clippy::type_complexity)]
fn io_walks(model: &Model, plan: &Plan) -> Result<(Vec<Walk<2>>, Vec<Walk<2>>, Vec<Vec<f32>>)> {
    let mut in_walks = Vec::new();
    let mut out_walks = Vec::new();
    let mut outputs = Vec::new();
    for (list, walks, is_in) in [
        (&plan.inputs, &mut in_walks, true),
        (&plan.outputs, &mut out_walks, false),
    ] {
        for &t in list.iter() {
            let p = plan.places[t].as_ref().ok_or_else(|| {
                Error::graph("", format!("model input/output tensor {t} has no storage"))
            })?;
            let byte = model.graph.tensors.get(t).is_some_and(crate::plan::is_byte);
            if is_in && byte {
                return Err(Error::Unsupported(
                    "8-bit model inputs (feed f32 and quantize inside the model)".into(),
                ));
            }
            let rm = row_major_strides(&p.shape);
            let w = if is_in {
                Walk::new(&p.shape, [&p.strides, &rm])
            } else {
                Walk::new(&p.shape, [&rm, &p.strides])
            };
            walks.push(w.ok_or_else(|| Error::Unsupported("tensor rank too large".into()))?);
            if !is_in {
                outputs.push(vec![0.0; p.loc.len]);
            }
        }
    }
    Ok((in_walks, out_walks, outputs))
}

/// Per-thread scratch regions of one run.
struct Scratch<'a> {
    ptr: *mut f32,
    per: usize,
    threads: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `Scratch::get` hands region `t` only to the call for thread index `t`, and the
// pool calls each index once per job, so no two threads share a region.
unsafe impl Sync for Scratch<'_> {}

impl<'a> Scratch<'a> {
    fn new(s: &'a mut [f32], per: usize) -> Scratch<'a> {
        let threads = s.len().checked_div(per).unwrap_or(usize::MAX);
        Scratch {
            ptr: s.as_mut_ptr(),
            per,
            threads,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Thread `t`'s region.
    ///
    /// # Safety
    /// At most one live slice per `t` at a time (one caller per thread index).
    // Handing out disjoint mutable regions from a shared value is this type's purpose.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, t: usize) -> &'a mut [f32] {
        if self.per == 0 {
            return &mut [];
        }
        assert!(t < self.threads, "scratch for thread {t} not allocated");
        // SAFETY: region `t` lies inside the buffer (`t < threads`); exclusivity is the
        // caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(t * self.per), self.per) }
    }
}

/// Run one step: on the calling thread, or split into `parts` unit ranges on the pool.
#[allow(clippy::too_many_arguments)]
fn run_step(
    k: &Kernels,
    planned: &Planned,
    step: &dyn crate::plan::step::Step,
    parts: usize,
    arena: Arena<'_>,
    consts: &[f32],
    scratch: &Scratch<'_>,
    pool: &Pool,
) -> Result<()> {
    split_run(pool, &planned.work, parts, &|t, units| {
        // SAFETY: thread index `t` runs on one thread only (see `Scratch`).
        let s = unsafe { scratch.get(t) };
        let mut cx = Cx::new(k, arena, consts, &planned.outs, s);
        // SAFETY: `split_run` hands out disjoint unit ranges of this step, and no other code
        // touches the step's outputs while it runs.
        let mut outs = unsafe { Outs::new(arena, &planned.outs, units) };
        step.run(&mut cx, &mut outs)
    })
}

/// Run `f(thread, units)` over `parts` disjoint ranges covering `work`'s units: on the
/// calling thread for one part, else on the pool. Parts are claimed: thread `t` owns a
/// contiguous run of them and takes its own in order first (consecutive steps give a thread
/// the same region of the image, so its cache stays warm), then steals the last free part of
/// the others, so a late or slow thread leaves what it has not started to the rest. The
/// first error wins.
fn split_run(
    pool: &Pool,
    work: &Work,
    parts: usize,
    f: &(dyn Fn(usize, std::ops::Range<usize>) -> Result<()> + Sync),
) -> Result<()> {
    if parts <= 1 {
        return f(0, 0..work.units);
    }
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let claimed = AtomicU64::new(0);
    let claim = |p: usize| claimed.fetch_or(1 << p, Ordering::AcqRel) & (1 << p) == 0;
    let threads = pool.threads();
    let all = (1u64 << parts) - 1;
    pool.run(&|t| {
        let run = |p: usize| {
            if let Err(e) = f(t, work.part(p, parts)) {
                failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        };
        for p in t * parts / threads..(t + 1) * parts / threads {
            if claim(p) {
                run(p);
            }
        }
        loop {
            let free = !claimed.load(Ordering::Acquire) & all;
            if free == 0 {
                return;
            }
            let p = 63 - free.leading_zeros() as usize;
            if claim(p) {
                run(p);
            }
        }
    })
    .map_err(Error::Unsupported)?;
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// A session moves between threads (the C API, Python) and its pool is shared by reference.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Send + Sync>() {}
    send::<Session>();
    sync::<Pool>();
};

/// Refuse a model whose working memory (the activation arena and every thread's scratch)
/// exceeds [`crate::limits::memory_limit`], before allocating it, naming the largest
/// activation.
fn check_memory(model: &Model, plan: &Plan, threads: usize) -> Result<()> {
    let floats = plan
        .arena_len
        .saturating_add(plan.scratch_len.saturating_mul(threads))
        .saturating_add(2 * ALIGN);
    let bytes = (floats as u64).saturating_mul(4);
    let limit = crate::limits::memory_limit().map_err(Error::Limit)?;
    if bytes <= limit {
        return Ok(());
    }
    let largest = model
        .graph
        .tensors
        .iter()
        .filter(|t| t.data.is_none())
        .max_by_key(|t| t.shape.iter().product::<usize>());
    let named = largest.map_or(String::new(), |t| {
        format!(
            " (the largest activation, {}, is {} floats)",
            t.name,
            crate::meta::shape_text(&t.shape)
        )
    });
    Err(Error::Limit(format!(
        "the model needs {} of working memory on {threads} thread(s){named}, over the limit \
         of {}: set {} to raise it",
        crate::limits::bytes_text(bytes),
        crate::limits::bytes_text(limit),
        crate::limits::MEMORY_ENV
    )))
}
