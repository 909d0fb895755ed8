//! The `.flb` bundle format: one little-endian file with a checksummed header, a section
//! table, METADATA and GRAPH JSON sections and a 64-byte-aligned WEIGHTS section that is used
//! in place from a memory map. Layout: docs/bundle-format.md and [`format`].
//!
//! A bundle is untrusted input: loading checks header bounds, table bounds and overlaps, every
//! CRC, then parses the JSON and runs [`crate::validate::validate_model`] before returning.

pub mod format;
mod mmap;

pub use mmap::Mmap;

use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::meta::Metadata;
use crate::validate::{validate_graph, validate_meta, validate_model};
use crate::weights::{AlignedBytes, Model, Weights};
use format::{KIND_GRAPH, KIND_METADATA, KIND_WEIGHTS, SECTION_FLAG_REQUIRED};
use std::io::Write;
use std::path::Path;

/// Whether `prefix` (the first bytes of a file) looks like a bundle: it starts with the magic.
pub fn looks_like_bundle(prefix: &[u8]) -> bool {
    format::has_magic(prefix)
}

/// Whether the file at `path` starts like a bundle (rather than, say, an ONNX model), read
/// from its first bytes; a missing or unreadable file or a directory is an error.
pub fn is_bundle_file(path: &Path) -> Result<bool> {
    use std::io::Read;
    let io = |cause| Error::Io {
        context: format!("cannot open model {}", path.display()),
        cause,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.is_dir() {
        return Err(Error::Input(format!(
            "{} is a directory, not a model file",
            path.display()
        )));
    }
    let mut head = [0u8; 16];
    let n = f.read(&mut head).map_err(io)?;
    Ok(looks_like_bundle(&head[..n]))
}

/// Serialize a model to bundle bytes, after validating graph and metadata so an invalid
/// model is never written.
pub fn to_bytes(meta: &Metadata, graph: &Graph, weights: &[u8]) -> Result<Vec<u8>> {
    validate_graph(graph, weights.len())?;
    validate_meta(meta, graph)?;
    let json = |what: &str, r: serde_json::Result<Vec<u8>>| {
        r.map_err(|e| Error::Bundle(format!("cannot serialize {what}: {e}")))
    };
    let m = json("metadata", serde_json::to_vec(meta))?;
    let g = json("graph", serde_json::to_vec(graph))?;
    assemble(&m, &g, weights)
}

/// Lay out raw METADATA, GRAPH and WEIGHTS payloads into a bundle with fresh checksums,
/// without any validation of their contents (for tools and tests that craft bundles).
pub fn assemble(metadata_json: &[u8], graph_json: &[u8], weights: &[u8]) -> Result<Vec<u8>> {
    format::write(&[
        (KIND_METADATA, SECTION_FLAG_REQUIRED, metadata_json),
        (KIND_GRAPH, SECTION_FLAG_REQUIRED, graph_json),
        (KIND_WEIGHTS, SECTION_FLAG_REQUIRED, weights),
    ])
}

/// Refuse to write `output` over one of `inputs` (the same file by another name included):
/// writing it would destroy the input. An input error, before anything is written.
pub fn refuse_overwriting(output: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out) = std::fs::canonicalize(output) else {
        return Ok(()); // it does not exist yet
    };
    for input in inputs {
        if std::fs::canonicalize(input).is_ok_and(|i| i == out) {
            return Err(Error::Input(format!(
                "the output {} is the input file {}: writing it would destroy the input; \
                 choose another output path",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Write `model` to `path` atomically (see [`write_atomically`]), so a failure never leaves
/// a partial or clobbered bundle.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let bytes = to_bytes(&model.meta, &model.graph, model.weights.bytes())?;
    write_atomically(path, &bytes)
}

/// Write `bytes` to `path` so that `path` holds either its old content or all of `bytes`,
/// never a part: they go to a temporary file in the same directory, which is synced and
/// renamed over `path`. On a failure (a full disk, a kill mid-write) the temporary file is
/// removed where possible and the old file is untouched; a temporary file left by a killed
/// process is removed by the next write to the same path.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |context: String| move |cause| Error::Io { context, cause };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Bundle(format!("{} has no file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".tmp-");
    remove_stale_temporaries(dir, &prefix);
    let mut tmp_name = prefix;
    tmp_name.push(format!("{}-{n}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(format!(
                "cannot write {} (creating its temporary file {})",
                path.display(),
                tmp.display()
            )))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io(format!("cannot write {}", path.display())))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io(format!(
            "cannot write {} (renaming {} over it)",
            path.display(),
            tmp.display()
        )))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove the temporary files `write_atomically` left in `dir` for this target when the
/// process that wrote them was killed: names `prefix` + `PID-N` whose PID no longer runs.
/// Best effort; only where `/proc` tells which processes run.
fn remove_stale_temporaries(dir: &Path, prefix: &std::ffi::OsStr) {
    let proc_fs = Path::new("/proc/self");
    let (Some(prefix), true) = (prefix.to_str(), proc_fs.exists()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Parse and verify bundle bytes, returning metadata, graph and the weights range.
fn parse(bytes: &[u8]) -> Result<(Metadata, Graph, std::ops::Range<usize>)> {
    let layout = format::parse(bytes)?;
    let meta: Metadata = serde_json::from_slice(&bytes[layout.metadata])
        .map_err(|e| Error::Bundle(format!("METADATA section is not valid metadata JSON: {e}")))?;
    let mut graph: Graph = serde_json::from_slice(&bytes[layout.graph])
        .map_err(|e| Error::Bundle(format!("GRAPH section is not valid graph JSON: {e}")))?;
    for q in graph.tensors.iter_mut().filter_map(|t| t.quant.as_mut()) {
        q.fill_zero_points();
    }
    Ok((meta, graph, layout.weights))
}

/// Load a bundle from memory, copying the weights into an aligned owned buffer (for bundles
/// embedded with `include_bytes!`, which carry no alignment guarantee). Fully validated.
pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
    let (meta, graph, w) = parse(bytes)?;
    let model = Model {
        meta,
        graph,
        weights: Weights::Owned(AlignedBytes::from_slice(&bytes[w])),
    };
    validate_model(&model)?;
    Ok(model)
}

/// Load a bundle file through a read-only memory map; the weights stay in the mapping
/// (`Weights::Mapped`, 64-byte aligned, no copy). Fully validated before returning.
pub fn load(path: &Path) -> Result<Model> {
    // Checked before opening: opening a FIFO would block, a directory cannot be mapped.
    let stat = std::fs::metadata(path).map_err(|cause| Error::Io {
        context: format!("cannot open bundle {}", path.display()),
        cause,
    })?;
    if !stat.is_file() {
        return Err(Error::Bundle(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let file = std::fs::File::open(path).map_err(|cause| Error::Io {
        context: format!("cannot open bundle {}", path.display()),
        cause,
    })?;
    let map = Mmap::map(&file, path)?;
    let with_path = |e: Error| match e {
        Error::Bundle(m) => Error::Bundle(format!("{}: {m}", path.display())),
        Error::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
        other => other,
    };
    let (meta, graph, w) = parse(map.as_slice()).map_err(with_path)?;
    let model = Model {
        meta,
        graph,
        weights: Weights::Mapped {
            map,
            offset: w.start,
            len: w.len(),
        },
    };
    validate_model(&model).map_err(with_path)?;
    Ok(model)
}
