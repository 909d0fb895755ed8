//! Mutation (fuzz-style) test: thousands of corrupted bundles must each give `Ok` or `Err`,
//! never a panic and never an absurd allocation. Deterministic: seeded SplitMix64.

mod bundle_common;

use bundle_common::{small_model, Rng};
use ferrolite_runtime::bundle::{self, format};
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ferrolite_runtime::exec::Session;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation request, to catch sizes taken from hostile input.
struct MaxAlloc;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only records sizes.
unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: MaxAlloc = MaxAlloc;

const INTERESTING_BYTES: [u8; 6] = [0, 0xFF, 0x7F, 0x80, 0x01, 0x40];
const INTERESTING_U64: [u64; 9] = [
    0,
    1,
    63,
    64,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];
const INTERESTING_JSON_NUMBERS: [&str; 12] = [
    "0",
    "1",
    "-1",
    "7",
    "64",
    "4294967295",
    "4294967296",
    "268435457",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-0.0",
];

/// Outcome counts of one campaign.
#[derive(Default, Debug)]
struct Stats {
    ok: usize,
    bundle_err: usize,
    graph_err: usize,
    other_err: usize,
}

/// Run `bytes` through `from_bytes` under `catch_unwind`, failing with `what` on a panic or an
/// allocation larger than `alloc_cap`.
fn check(bytes: &[u8], what: &str, alloc_cap: usize, stats: &mut Stats) {
    LARGEST.store(0, Ordering::Relaxed);
    let r = catch_unwind(AssertUnwindSafe(|| bundle::from_bytes(bytes)));
    let largest = LARGEST.load(Ordering::Relaxed);
    let r = r.unwrap_or_else(|_| panic!("mutation panicked: {what}"));
    assert!(
        largest <= alloc_cap,
        "mutation {what} allocated {largest} bytes at once (cap {alloc_cap})"
    );
    match r {
        Ok(model) => {
            stats.ok += 1;
            // A bundle that loads must also plan and run without panicking.
            let ran = catch_unwind(AssertUnwindSafe(|| {
                let mut session = Session::new(Arc::new(model))?;
                let inputs: Vec<Vec<f32>> = session
                    .input_shapes()
                    .iter()
                    .map(|s| vec![0.5; s.iter().product()])
                    .collect();
                let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
                session.run(&refs)
            }));
            assert!(ran.is_ok(), "mutation {what} loaded but panicked when run");
        }
        Err(ferrolite_runtime::Error::Bundle(_)) => stats.bundle_err += 1,
        Err(ferrolite_runtime::Error::Graph { .. }) => stats.graph_err += 1,
        Err(_) => stats.other_err += 1,
    }
}

/// Byte-level mutation of a whole bundle; returns a description.
fn mutate_bytes(rng: &mut Rng, orig: &[u8]) -> (Vec<u8>, String) {
    let mut b = orig.to_vec();
    let hot = 64 + 32 * 3; // header + section table
    let pos = |rng: &mut Rng, b: &[u8]| {
        if rng.below(2) == 0 {
            rng.below(hot.min(b.len()))
        } else {
            rng.below(b.len())
        }
    };
    let desc = match rng.below(6) {
        0 => {
            let p = pos(rng, &b);
            let bit = rng.below(8);
            b[p] ^= 1 << bit;
            format!("flip bit {bit} of byte {p}")
        }
        1 => {
            let p = pos(rng, &b);
            let v = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            b[p] = v;
            format!("byte {p} = {v:#x}")
        }
        2 => {
            // A header or table field overwritten with a big value, checksums recomputed so
            // the layout checks (not just the CRCs) see it.
            let fields = [
                8usize, 12, 16, 20, 24, 32, 40, 64, 68, 72, 80, 96, 104, 112, 128, 136, 144,
            ];
            let p = fields[rng.below(fields.len())];
            let v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
            let width = if [8, 12, 16, 20, 40, 64, 68, 96, 128].contains(&p) {
                4
            } else {
                8
            };
            b[p..p + width].copy_from_slice(&v.to_le_bytes()[..width]);
            let fixed = rng.below(4) != 0 && format::refresh_checksums(&mut b).is_ok();
            format!("field @{p} ({width} bytes) = {v:#x}, checksums refreshed: {fixed}")
        }
        3 => {
            let n = rng.below(b.len());
            b.truncate(n);
            let fixed = rng.below(2) == 0 && {
                if b.len() >= 32 {
                    b[24..32].copy_from_slice(&(n as u64).to_le_bytes());
                }
                format::refresh_checksums(&mut b).is_ok()
            };
            format!("truncate to {n}, refreshed: {fixed}")
        }
        4 => {
            let n = 1 + rng.below(200);
            b.extend((0..n).map(|_| rng.next() as u8));
            let fixed = rng.below(2) == 0 && {
                let len = b.len() as u64;
                b[24..32].copy_from_slice(&len.to_le_bytes());
                format::refresh_checksums(&mut b).is_ok()
            };
            format!("extend by {n}, refreshed: {fixed}")
        }
        _ => {
            let k = 1 + rng.below(8);
            for _ in 0..k {
                let p = rng.below(b.len());
                b[p] = rng.next() as u8;
            }
            let fixed = format::refresh_checksums(&mut b).is_ok();
            format!("{k} random bytes, refreshed: {fixed}")
        }
    };
    (b, desc)
}

/// Paths to every number and array in a JSON tree.
fn collect(
    v: &Value,
    path: &mut Vec<PathStep>,
    nums: &mut Vec<Vec<PathStep>>,
    arrays: &mut Vec<Vec<PathStep>>,
) {
    match v {
        Value::Number(_) => nums.push(path.clone()),
        Value::Array(a) => {
            arrays.push(path.clone());
            for (i, x) in a.iter().enumerate() {
                path.push(PathStep::Index(i));
                collect(x, path, nums, arrays);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                path.push(PathStep::Key(k.clone()));
                collect(x, path, nums, arrays);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// Structured or textual mutation of one JSON document; returns new text and a description.
fn mutate_json(rng: &mut Rng, text: &str) -> (Vec<u8>, String) {
    let mut v: Value = serde_json::from_str(text).unwrap();
    let (mut nums, mut arrays) = (Vec::new(), Vec::new());
    collect(&v, &mut Vec::new(), &mut nums, &mut arrays);
    match rng.below(7) {
        0 | 1 => {
            // A number replaced by an interesting value (placed as raw text to allow
            // out-of-range literals).
            let p = &nums[rng.below(nums.len())];
            let lit = INTERESTING_JSON_NUMBERS[rng.below(INTERESTING_JSON_NUMBERS.len())];
            *at(&mut v, p) = Value::String("@@N@@".into());
            let s = serde_json::to_string(&v).unwrap().replace("\"@@N@@\"", lit);
            (s.into_bytes(), format!("number at {p:?} = {lit}"))
        }
        2 => {
            // Small integer nudge (off-by-one ids, dims, axes).
            let p = &nums[rng.below(nums.len())];
            let x = at(&mut v, p);
            let n = x.as_i64().unwrap_or(0) + [-2, -1, 1, 2, 8][rng.below(5)];
            *x = Value::from(n);
            (
                serde_json::to_vec(&v).unwrap(),
                format!("nudge number at {p:?} to {n}"),
            )
        }
        3 => {
            // Swap two numbers (e.g. tensor ids).
            let p = nums[rng.below(nums.len())].clone();
            let q = nums[rng.below(nums.len())].clone();
            let a = at(&mut v, &p).clone();
            let b = std::mem::replace(at(&mut v, &q), a);
            *at(&mut v, &p) = b;
            (
                serde_json::to_vec(&v).unwrap(),
                format!("swap {p:?} and {q:?}"),
            )
        }
        4 => {
            // Remove or duplicate an array element.
            let p = &arrays[rng.below(arrays.len())];
            let a = at(&mut v, p).as_array_mut().unwrap();
            let d = if a.is_empty() || rng.below(2) == 0 {
                a.push(a.first().cloned().unwrap_or(Value::from(3)));
                "duplicate first element of"
            } else {
                a.remove(rng.below(a.len()));
                "remove an element of"
            };
            (serde_json::to_vec(&v).unwrap(), format!("{d} array {p:?}"))
        }
        5 => {
            // Textual damage: delete a span.
            let bytes = text.as_bytes();
            let s = rng.below(bytes.len());
            let e = (s + 1 + rng.below(16)).min(bytes.len());
            let mut out = bytes[..s].to_vec();
            out.extend_from_slice(&bytes[e..]);
            (out, format!("delete text {s}..{e}"))
        }
        _ => {
            // Textual damage: a structural character.
            let mut out = text.as_bytes().to_vec();
            let p = rng.below(out.len());
            let c = b"{}[]\":,-0e\\"[rng.below(11)];
            out[p] = c;
            (out, format!("text byte {p} = {:?}", c as char))
        }
    }
}

fn campaign(orig: &[u8], seed: u64, byte_mutations: usize, json_mutations: usize) -> Stats {
    let mut stats = Stats::default();
    let cap = 64 * 1024 * 1024 + 2 * orig.len();
    let original = bundle::from_bytes(orig).expect("unmutated bundle must load");
    check(orig, "none", cap, &mut stats);
    let meta = serde_json::to_string(&original.meta).unwrap();
    let graph = serde_json::to_string(&original.graph).unwrap();
    let weights = original.weights.bytes();
    let mut rng = Rng(seed);
    for i in 0..byte_mutations {
        let (b, d) = mutate_bytes(&mut rng, orig);
        check(&b, &format!("#{i}: {d}"), cap, &mut stats);
    }
    for i in 0..json_mutations {
        let (m, g, d) = if rng.below(3) != 0 {
            let (g, d) = mutate_json(&mut rng, &graph);
            (meta.as_bytes().to_vec(), g, format!("graph {d}"))
        } else {
            let (m, d) = mutate_json(&mut rng, &meta);
            (m, graph.as_bytes().to_vec(), format!("metadata {d}"))
        };
        let b = bundle::assemble(&m, &g, weights).unwrap();
        check(&b, &format!("json #{i}: {d}"), cap, &mut stats);
    }
    stats
}

/// `n` natively; a tenth on ARM, where these tests run under qemu (tens of times slower):
/// the loader is the same portable code there, so the full campaigns run on the host.
fn scaled(n: usize) -> usize {
    if cfg!(target_arch = "x86_64") {
        n
    } else {
        n / 10
    }
}

#[test]
fn mutated_small_bundles_never_panic() {
    let m = small_model(42);
    let orig = bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).unwrap();
    let stats = campaign(&orig, 0x5EED_F00D, scaled(3000), scaled(3000));
    println!("small model, {} mutations: {stats:?}", 2 * scaled(3000));
    // The campaign reaches every layer: checksums/layout, JSON parsing, graph validation.
    assert!(stats.bundle_err > scaled(1000), "{stats:?}");
    assert!(stats.graph_err > scaled(300), "{stats:?}");
    assert!(stats.ok > scaled(10), "{stats:?}");
}

#[test]
fn mutated_efficientnet_bundle_never_panics() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/efficientnet_lite0.flb");
    let orig = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} (committed) is unreadable: {e}", path.display()));
    let stats = campaign(&orig, 0xEFF1_C1E7, scaled(200), scaled(100));
    println!("efficientnet_lite0, {} mutations: {stats:?}", scaled(300));
}
