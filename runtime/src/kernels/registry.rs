//! Kernel registries: every family folder lists its kernels once per slot (`f32_gemm::GEMM`,
//! `f32_pool::MAXPOOL`, ...), best first, as [`Entry`] values naming the function, its
//! qualified name, its ISA tier, the CPU features it needs and whether this CPU prefers it.
//! [`select`] picks a slot's kernel from such a list; [`crate::kernels::for_isa`] does so for
//! every slot, and the SIMD-vs-scalar tests and the kernel benchmarks iterate the same lists.
//!
//! Adding a kernel is adding its entry (`kernel!`) at its place in the list: dispatch,
//! `inspect`, the twin tests (`runtime/tests/*_simd.rs`, `simd_kernels.rs`) and
//! `bench/benches/kernels.rs` pick it up.

use super::{CpuFeatures, Isa, Slot};

/// A CPU feature a kernel needs, as [`CpuFeatures`] detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// x86 AVX2.
    Avx2,
    /// x86 FMA3.
    Fma,
    /// x86 AVX-512 Foundation.
    Avx512f,
    /// x86 AVX-512 byte and word instructions.
    Avx512bw,
    /// x86 AVX-512 VNNI (`vpdpbusd`).
    Avx512vnni,
    /// ARM NEON (Advanced SIMD).
    Neon,
    /// ARM dot product (`sdot`, FEAT_DotProd).
    Dotprod,
    /// ARM half-precision arithmetic (FEAT_FP16).
    Fp16,
}

impl Feature {
    /// Lower-case name (`avx512vnni`, `dotprod`), as messages print it.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Avx2 => "avx2",
            Feature::Fma => "fma",
            Feature::Avx512f => "avx512f",
            Feature::Avx512bw => "avx512bw",
            Feature::Avx512vnni => "avx512vnni",
            Feature::Neon => "neon",
            Feature::Dotprod => "dotprod",
            Feature::Fp16 => "fp16",
        }
    }

    /// Whether `cpu` has this feature.
    pub fn on(self, cpu: &CpuFeatures) -> bool {
        match self {
            Feature::Avx2 => cpu.avx2,
            Feature::Fma => cpu.fma,
            Feature::Avx512f => cpu.avx512f,
            Feature::Avx512bw => cpu.avx512bw,
            Feature::Avx512vnni => cpu.avx512vnni,
            Feature::Neon => cpu.neon,
            Feature::Dotprod => cpu.dotprod,
            Feature::Fp16 => cpu.fp16,
        }
    }
}

/// One kernel of a slot's registry.
#[derive(Clone, Copy)]
pub struct Entry<F: 'static> {
    /// `family::isa::function`, e.g. `f32_gemm::avx2::gemm_6x16` (the name `inspect` shows).
    pub name: &'static str,
    /// The function.
    pub f: F,
    /// The tier of its code (the ISA file it lives in).
    pub isa: Isa,
    /// Features the CPU must have to run it (its SIMD code paths; every kernel is sound to
    /// call anyway, falling back to a lower tier inside).
    pub needs: &'static [Feature],
    /// Whether dispatch should pick it on a CPU that runs it (false where another entry of
    /// the list measures faster there, e.g. 512-bit GEMM tiles on cores that split 512-bit
    /// operations in two).
    pub preferred: fn(&CpuFeatures) -> bool,
    /// `Some(kernel)` for a test twin: a slower path of the dispatched entry named `kernel`
    /// (same results, bit for bit), never dispatched, run by the tests and benchmarks.
    pub twin_of: Option<&'static str>,
}

/// The default [`Entry::preferred`]: always.
pub fn always(_: &CpuFeatures) -> bool {
    true
}

impl<F: Copy> Entry<F> {
    /// An entry needing no feature, always preferred, dispatched (the `kernel!` macro
    /// builds them from the function's path).
    pub const fn new(isa: Isa, name: &'static str, f: F) -> Self {
        Entry {
            name,
            f,
            isa,
            needs: &[],
            preferred: always,
            twin_of: None,
        }
    }

    /// Whether `cpu` has every feature the kernel needs.
    pub fn runs_on(&self, cpu: &CpuFeatures) -> bool {
        self.needs.iter().all(|f| f.on(cpu))
    }

    /// The features the kernel needs that `cpu` lacks (empty when it runs).
    pub fn missing(&self, cpu: &CpuFeatures) -> Vec<&'static str> {
        self.needs
            .iter()
            .filter(|f| !f.on(cpu))
            .map(|f| f.name())
            .collect()
    }

    /// Whether dispatch may pick it (it is not a test twin).
    pub fn dispatched(&self) -> bool {
        self.twin_of.is_none()
    }

    /// Whether it may fill a slot of tier `tier` (see [`tier_runs`]).
    pub fn serves(&self, tier: Isa) -> bool {
        tier_runs(tier, self.isa)
    }

    /// The slot holding this kernel.
    pub fn slot(&self) -> Slot<F> {
        Slot {
            f: self.f,
            name: self.name,
        }
    }

    /// Register tile `(rows, columns)` carried by the name (`gemm_8x32` -> `(8, 32)`,
    /// `qgemm_4x16_dot` -> `(4, 16)`); `None` for names without one (`dwconv_16c`).
    pub fn tile(&self) -> Option<(usize, usize)> {
        let function = self.name.rsplit("::").next().unwrap_or("");
        function.split('_').find_map(|part| {
            let (r, c) = part.split_once('x')?;
            Some((r.parse().ok()?, c.parse().ok()?))
        })
    }

    /// The entry without its function, for listings over registries of different types.
    pub fn erased(&self) -> Entry<()> {
        Entry {
            name: self.name,
            f: (),
            isa: self.isa,
            needs: self.needs,
            preferred: self.preferred,
            twin_of: self.twin_of,
        }
    }
}

impl<F> std::fmt::Debug for Entry<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("isa", &self.isa)
            .field("needs", &self.needs)
            .field("twin_of", &self.twin_of)
            .finish()
    }
}

/// Whether a slot of tier `tier` may hold code of tier `code`: its own, the scalar fallback,
/// and on the AVX-512 tier the AVX2 kernels (for slots without a preferred AVX-512 one).
pub fn tier_runs(tier: Isa, code: Isa) -> bool {
    code == tier || code == Isa::Scalar || (tier == Isa::Avx512 && code == Isa::Avx2)
}

/// The registry's dispatched scalar entry: the fallback of every tier and the test oracle.
pub fn scalar<F: Copy>(entries: &[Entry<F>]) -> Option<&Entry<F>> {
    entries
        .iter()
        .find(|e| e.isa == Isa::Scalar && e.dispatched())
}

/// The kernel of a slot of tier `tier` on `cpu`: the first non-scalar entry of `entries`
/// (best first) that is dispatched, serves `tier`, whose features `cpu` has and which `cpu`
/// prefers; else the scalar entry.
///
/// Panics when no entry matches and the list has no scalar entry (every registry has one,
/// as the kernels' unit tests check).
pub fn select<'a, F: Copy>(entries: &'a [Entry<F>], tier: Isa, cpu: &CpuFeatures) -> &'a Entry<F> {
    entries
        .iter()
        .find(|e| {
            e.isa != Isa::Scalar
                && e.dispatched()
                && e.serves(tier)
                && e.runs_on(cpu)
                && (e.preferred)(cpu)
        })
        .or_else(|| scalar(entries))
        .expect("kernel registry without a scalar entry")
}

/// An [`Entry`] from the function's path `family::isa::function` (the name is that path, the
/// tier comes from `isa`), optionally followed by `needs = [Feature, ...]`, `preferred =
/// predicate` and `twin_of = function` (a kernel of the same family and tier).
macro_rules! kernel {
    (@isa scalar) => {
        $crate::kernels::Isa::Scalar
    };
    (@isa avx2) => {
        $crate::kernels::Isa::Avx2
    };
    (@isa avx512) => {
        $crate::kernels::Isa::Avx512
    };
    (@isa neon) => {
        $crate::kernels::Isa::Neon
    };
    ($family:ident :: $isa:ident :: $f:ident
        $(, needs = [$($feature:ident),* $(,)?])?
        $(, preferred = $preferred:expr)?
        $(, twin_of = $twin:ident)? $(,)?) => {
        $crate::kernels::registry::Entry {
            $(needs: &[$($crate::kernels::registry::Feature::$feature),*],)?
            $(preferred: $preferred,)?
            $(twin_of: Some(concat!(
                stringify!($family), "::", stringify!($isa), "::", stringify!($twin)
            )),)?
            ..$crate::kernels::registry::Entry::new(
                $crate::kernels::registry::kernel!(@isa $isa),
                concat!(stringify!($family), "::", stringify!($isa), "::", stringify!($f)),
                $crate::kernels::$family::$isa::$f,
            )
        }
    };
}
pub(crate) use kernel;

#[cfg(test)]
mod tests {
    use super::*;

    type Unary = fn(u32) -> u32;

    fn add1(x: u32) -> u32 {
        x + 1
    }
    fn add2(x: u32) -> u32 {
        x + 2
    }
    fn add3(x: u32) -> u32 {
        x + 3
    }
    fn add4(x: u32) -> u32 {
        x + 4
    }
    fn fast_cores(cpu: &CpuFeatures) -> bool {
        !cpu.split_512
    }

    /// A list in the shape of the real ones: a wide kernel not preferred on split cores, its
    /// test twin, a narrower kernel of the tier below, and the scalar fallback.
    fn list() -> Vec<Entry<Unary>> {
        vec![
            Entry {
                needs: &[Feature::Avx512f],
                preferred: fast_cores,
                ..Entry::new(Isa::Avx512, "t::avx512::add1_8x32", add1 as Unary)
            },
            Entry {
                needs: &[Feature::Avx512f],
                twin_of: Some("t::avx512::add1_8x32"),
                ..Entry::new(Isa::Avx512, "t::avx512::add2", add2 as Unary)
            },
            Entry {
                needs: &[Feature::Avx2, Feature::Fma],
                ..Entry::new(Isa::Avx2, "t::avx2::add3_6x16", add3 as Unary)
            },
            Entry::new(Isa::Scalar, "t::scalar::add4", add4 as Unary),
        ]
    }

    fn pick(tier: Isa, cpu: CpuFeatures) -> &'static str {
        select(&list(), tier, &cpu).name
    }

    #[test]
    fn selection_rule() {
        let avx2 = CpuFeatures {
            avx2: true,
            fma: true,
            ..CpuFeatures::default()
        };
        let avx512 = CpuFeatures {
            avx512f: true,
            avx512bw: true,
            ..avx2
        };
        let split = CpuFeatures {
            split_512: true,
            ..avx512
        };
        // The scalar tier takes the scalar entry whatever the CPU has.
        assert_eq!(pick(Isa::Scalar, avx512), "t::scalar::add4");
        // The first entry serving the tier that the CPU runs and prefers.
        assert_eq!(pick(Isa::Avx512, avx512), "t::avx512::add1_8x32");
        // Not preferred: the next one (the twin is never dispatched), here the AVX2 kernel
        // the AVX-512 tier may hold.
        assert_eq!(pick(Isa::Avx512, split), "t::avx2::add3_6x16");
        // The AVX2 tier never holds AVX-512 code.
        assert_eq!(pick(Isa::Avx2, avx512), "t::avx2::add3_6x16");
        // Missing features (no FMA): the scalar fallback.
        let no_fma = CpuFeatures { fma: false, ..avx2 };
        assert_eq!(pick(Isa::Avx2, no_fma), "t::scalar::add4");
        // A tier no entry serves.
        assert_eq!(pick(Isa::Neon, avx512), "t::scalar::add4");
        assert_eq!((select(&list(), Isa::Avx2, &avx2).f)(1), 4);
    }

    #[test]
    fn features_tiles_and_scalar() {
        let l = list();
        let cpu = CpuFeatures {
            avx2: true,
            ..CpuFeatures::default()
        };
        assert!(!l[2].runs_on(&cpu));
        assert_eq!(l[2].missing(&cpu), ["fma"]);
        assert!(l[3].runs_on(&cpu) && l[3].missing(&cpu).is_empty());
        assert_eq!(l[0].tile(), Some((8, 32)));
        assert_eq!(l[1].tile(), None);
        assert_eq!(l[0].slot().tile_rows(), 8);
        assert_eq!(scalar(&l).map(|e| e.name), Some("t::scalar::add4"));
        assert!(scalar(&l[..3]).is_none());
        assert!(!l[1].dispatched() && l[0].dispatched());
        assert_eq!(l[1].erased().twin_of, Some("t::avx512::add1_8x32"));
    }

    #[test]
    #[should_panic(expected = "without a scalar entry")]
    fn selection_needs_a_scalar_entry() {
        select(&list()[..3], Isa::Scalar, &CpuFeatures::default());
    }
}
