//! The registry side of the SIMD-vs-scalar twin tests: which entries of a family's registry
//! this CPU runs, and the scalar entry they are compared with.
#![allow(dead_code)]

use ferrolite_runtime::kernels::registry::{self, Entry};
use ferrolite_runtime::kernels::{CpuFeatures, Isa};

/// The scalar entry of `family`'s registry: the oracle of its tests. Panics when the
/// registry has none.
pub fn scalar<F: Copy>(family: &str, entries: &'static [Entry<F>]) -> &'static Entry<F> {
    registry::scalar(entries).unwrap_or_else(|| panic!("the {family} registry has no scalar entry"))
}

/// Every non-scalar entry of `family`'s registry this CPU runs (dispatched kernels and test
/// twins, in registry order), printing `SKIP <name>: this CPU lacks <features>` for the
/// others. Panics when the registry has no scalar entry to compare them with.
pub fn simd<F: Copy>(family: &str, entries: &'static [Entry<F>]) -> Vec<&'static Entry<F>> {
    scalar(family, entries);
    let cpu = CpuFeatures::detect();
    let mut v = Vec::new();
    for e in entries.iter().filter(|e| e.isa != Isa::Scalar) {
        if e.runs_on(&cpu) {
            v.push(e);
        } else {
            eprintln!(
                "SKIP {}: this CPU lacks {}",
                e.name,
                e.missing(&cpu).join(", ")
            );
        }
    }
    if v.is_empty() {
        eprintln!("SKIP {family}: no SIMD kernel of its registry runs on this CPU");
    }
    v
}

/// [`simd`] without the test twins: the kernels dispatch may choose.
pub fn simd_dispatched<F: Copy>(
    family: &str,
    entries: &'static [Entry<F>],
) -> Vec<&'static Entry<F>> {
    simd(family, entries)
        .into_iter()
        .filter(|e| e.dispatched())
        .collect()
}

/// The test twin of `kernel` in `entries` (same results, bit for bit, without fast paths),
/// or `kernel` itself when it has none.
pub fn twin<F: Copy>(entries: &'static [Entry<F>], kernel: &'static Entry<F>) -> &'static Entry<F> {
    entries
        .iter()
        .find(|e| e.twin_of == Some(kernel.name))
        .unwrap_or(kernel)
}

/// Register tile `(rows, columns)` of a GEMM-like kernel, from its name.
pub fn tile<F: Copy>(e: &Entry<F>) -> (usize, usize) {
    e.tile()
        .unwrap_or_else(|| panic!("{}: the name carries no tile", e.name))
}
