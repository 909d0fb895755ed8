//! Storage for constant tensor data: an owned 64-byte-aligned buffer (models converted in
//! memory) or a read-only memory map of a bundle file (models loaded from disk).

use crate::error::{Error, Result};
use crate::ir::{DType, DataRef, Tensor};

/// Alignment of every constant inside the weights blob.
pub const WEIGHT_ALIGN: usize = 64;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; WEIGHT_ALIGN]);

/// A growable byte buffer whose start is 64-byte aligned.
#[derive(Default, Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy `bytes` into a new aligned buffer.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut b = Self::new();
        b.extend_from_slice(bytes);
        b
    }

    /// Number of bytes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append bytes at the end.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let new_len = self.len + bytes.len();
        self.blocks
            .resize(new_len.div_ceil(WEIGHT_ALIGN), Block([0; WEIGHT_ALIGN]));
        let start = self.len;
        self.len = new_len;
        self.as_mut_slice()[start..].copy_from_slice(bytes);
    }

    /// Pad with zeros up to the next multiple of 64 bytes.
    pub fn align(&mut self) {
        let padded = self.len.div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
        self.len = padded;
    }

    /// Append `bytes` at the next 64-byte boundary and return where they landed.
    pub fn push_aligned(&mut self, bytes: &[u8]) -> DataRef {
        self.align();
        let offset = self.len as u64;
        self.extend_from_slice(bytes);
        DataRef {
            offset,
            len: bytes.len() as u64,
        }
    }

    /// The stored bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `blocks` owns at least `len` initialised bytes laid out contiguously
        // (Block is a plain byte array with no padding), and the borrow ties the slice to self.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr() as *const u8, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr() as *mut u8, self.len) }
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

/// Backing storage of a model's constants.
pub enum Weights {
    /// Built in memory (by the converter or by copying).
    Owned(AlignedBytes),
    /// A shared read-only mapping of a bundle file; `offset..offset+len` is the weights section.
    Mapped {
        /// The mapping of the whole file.
        map: crate::bundle::Mmap,
        /// Where the weights section starts in it.
        offset: usize,
        /// Its length in bytes.
        len: usize,
    },
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weights::Owned(b) => write!(f, "Weights::Owned({} bytes)", b.len()),
            Weights::Mapped { len, .. } => write!(f, "Weights::Mapped({len} bytes)"),
        }
    }
}

impl Weights {
    /// The whole weights blob.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Weights::Owned(b) => b.as_slice(),
            Weights::Mapped { map, offset, len } => &map.as_slice()[*offset..*offset + *len],
        }
    }

    /// The bytes of one constant, bounds-checked.
    pub fn get(&self, r: DataRef) -> Result<&[u8]> {
        let bytes = self.bytes();
        let start =
            usize::try_from(r.offset).map_err(|_| Error::Bundle("offset overflow".into()))?;
        let len = usize::try_from(r.len).map_err(|_| Error::Bundle("length overflow".into()))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| Error::Bundle("constant range overflows".into()))?;
        bytes.get(start..end).ok_or_else(|| {
            Error::Bundle(format!(
                "constant range {start}..{end} outside the {}-byte weights section",
                bytes.len()
            ))
        })
    }

    /// A constant tensor's data viewed as `f32`.
    pub fn f32s(&self, t: &Tensor) -> Result<&[f32]> {
        let r = t
            .data
            .ok_or_else(|| Error::graph(&t.name, "tensor has no constant data"))?;
        if t.dtype != DType::F32 {
            return Err(Error::graph(
                &t.name,
                format!("expected f32 data, found {:?}", t.dtype),
            ));
        }
        let b = self.get(r)?;
        if b.len() != t.numel() * 4 {
            return Err(Error::graph(
                &t.name,
                "constant length does not match its shape",
            ));
        }
        if !(b.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            return Err(Error::Bundle(format!(
                "constant {:?} is misaligned",
                t.name
            )));
        }
        // SAFETY: the slice is in bounds, 4-byte aligned (checked above), its length is a
        // multiple of 4, and every bit pattern is a valid f32.
        Ok(unsafe { std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len() / 4) })
    }
}

/// A complete model: metadata, graph and constants. Open one with [`Model::open`] (a
/// memory-mapped `.flb` file) or [`Model::from_bytes`], wrap it in an `Arc` and make
/// [`crate::Session`]s (or a [`crate::Classifier`]) from it; one model serves any number of
/// sessions and threads.
#[derive(Debug)]
pub struct Model {
    /// Name, precision, inputs and outputs (with preprocessing), labels and records.
    pub meta: crate::meta::Metadata,
    /// The operator graph.
    pub graph: crate::ir::Graph,
    /// Constant tensor bytes (mapped from the file or owned).
    pub weights: Weights,
}

impl Model {
    /// Open a `.flb` bundle file through a read-only memory map, fully validated.
    pub fn open(path: impl AsRef<std::path::Path>) -> crate::Result<Model> {
        crate::bundle::load(path.as_ref())
    }

    /// Load a bundle held in memory (copied into an aligned buffer), fully validated.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Model> {
        crate::bundle::from_bytes(bytes)
    }
}
