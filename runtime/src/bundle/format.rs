//! Byte layout of a `.flb` file: header, section table and their checks (no JSON here).
//! docs/bundle-format.md describes the same layout byte by byte.

use crate::error::{Error, Result};
use std::ops::Range;

/// First 8 bytes of every bundle (a non-ASCII first byte and CR LF / ^Z / LF catch text-mode
/// transfers, as in PNG).
pub const MAGIC: [u8; 8] = *b"\x89FLB\r\n\x1a\n";
/// Major format version written and accepted; a different major version is rejected.
pub const VERSION_MAJOR: u16 = 1;
/// Minor format version written; readers accept any minor version of their major version.
pub const VERSION_MINOR: u16 = 0;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 64;
/// Size of one section table entry in bytes.
pub const ENTRY_LEN: usize = 32;
/// Most sections a bundle may declare.
pub const MAX_SECTIONS: u32 = 1024;
/// Alignment of the WEIGHTS section's file offset.
pub const SECTION_ALIGN: u64 = 64;

/// Section kind: metadata JSON.
pub const KIND_METADATA: u32 = 1;
/// Section kind: graph JSON.
pub const KIND_GRAPH: u32 = 2;
/// Section kind: raw weights.
pub const KIND_WEIGHTS: u32 = 3;
/// Section flag: a reader that does not know this kind must reject the bundle.
pub const SECTION_FLAG_REQUIRED: u32 = 1;

/// One entry of the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// What the section holds (`SECTION_*`).
    pub kind: u32,
    /// `SECTION_FLAG_*` bits.
    pub flags: u32,
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
}

/// Byte ranges of the three known sections inside a verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The JSON metadata.
    pub metadata: Range<usize>,
    /// The serialized graph.
    pub graph: Range<usize>,
    /// The aligned weight bytes.
    pub weights: Range<usize>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Bundle(msg.into())
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn kind_name(kind: u32) -> String {
    match kind {
        KIND_METADATA => "METADATA".into(),
        KIND_GRAPH => "GRAPH".into(),
        KIND_WEIGHTS => "WEIGHTS".into(),
        k => format!("kind {k}"),
    }
}

/// Whether `prefix` starts with the bundle magic.
pub fn has_magic(prefix: &[u8]) -> bool {
    prefix.starts_with(&MAGIC)
}

/// Verify header, section table and section checksums of `file`, and return where the
/// METADATA, GRAPH and WEIGHTS sections are. Unknown optional sections are skipped.
pub fn parse(file: &[u8]) -> Result<Layout> {
    if file.len() < HEADER_LEN {
        return Err(bad(format!(
            "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
            file.len()
        )));
    }
    if !has_magic(file) {
        return Err(bad("not a Ferrolite bundle (bad magic)"));
    }
    let stored = u32_at(file, 60);
    let actual = crc32fast::hash(&file[..60]);
    if stored != actual {
        return Err(bad(format!(
            "header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    let major = u16_at(file, 8);
    let minor = u16_at(file, 10);
    if major != VERSION_MAJOR {
        return Err(Error::Unsupported(format!(
            "bundle format version {major}.{minor}; this runtime reads version {VERSION_MAJOR}.x"
        )));
    }
    let flags = u32_at(file, 12);
    if flags != 0 {
        return Err(Error::Unsupported(format!(
            "unknown header flags {flags:#x}"
        )));
    }
    let header_len = u32_at(file, 16) as usize;
    if header_len != HEADER_LEN {
        return Err(bad(format!(
            "header length {header_len}, expected {HEADER_LEN}"
        )));
    }
    let count = u32_at(file, 20);
    let file_len = u64_at(file, 24);
    let table_off = u64_at(file, 32);
    let table_crc = u32_at(file, 40);
    if file_len != file.len() as u64 {
        return Err(bad(format!(
            "header says the file is {file_len} bytes, it is {} (truncated or extended)",
            file.len()
        )));
    }
    if file[44..60].iter().any(|&b| b != 0) {
        return Err(bad("reserved header bytes 44..60 are not zero"));
    }
    if count == 0 || count > MAX_SECTIONS {
        return Err(bad(format!(
            "section count {count} not in 1..={MAX_SECTIONS}"
        )));
    }
    if table_off != HEADER_LEN as u64 {
        return Err(bad(format!(
            "section table offset {table_off}, expected {HEADER_LEN}"
        )));
    }
    let table_end = HEADER_LEN + count as usize * ENTRY_LEN;
    if table_end > file.len() {
        return Err(bad(format!(
            "section table of {count} entries ends at byte {table_end}, past the end of the {}-byte file",
            file.len()
        )));
    }
    let table = &file[HEADER_LEN..table_end];
    let actual = crc32fast::hash(table);
    if table_crc != actual {
        return Err(bad(format!(
            "section table checksum mismatch (stored {table_crc:#010x}, computed {actual:#010x})"
        )));
    }
    let mut sections: Vec<Section> = table
        .chunks_exact(ENTRY_LEN)
        .map(|e| Section {
            kind: u32_at(e, 0),
            flags: u32_at(e, 4),
            offset: u64_at(e, 8),
            len: u64_at(e, 16),
            crc: u32_at(e, 24),
        })
        .collect();
    for (i, e) in table.chunks_exact(ENTRY_LEN).enumerate() {
        if u32_at(e, 28) != 0 {
            return Err(bad(format!(
                "section entry {i}: reserved bytes are not zero"
            )));
        }
    }
    for s in &sections {
        let name = kind_name(s.kind);
        let end = s.offset.checked_add(s.len);
        if s.offset < table_end as u64 || end.is_none_or(|e| e > file_len) {
            return Err(bad(format!(
                "section {name} at {}+{} is outside the data area {table_end}..{file_len}",
                s.offset, s.len
            )));
        }
        if s.flags & !SECTION_FLAG_REQUIRED != 0 {
            return Err(bad(format!("section {name}: unknown flags {:#x}", s.flags)));
        }
        let known = matches!(s.kind, KIND_METADATA | KIND_GRAPH | KIND_WEIGHTS);
        if !known && s.flags & SECTION_FLAG_REQUIRED != 0 {
            return Err(Error::Unsupported(format!(
                "bundle requires section kind {} which this runtime does not know",
                s.kind
            )));
        }
    }
    sections.sort_by_key(|s| s.offset);
    for w in sections.windows(2) {
        if w[0].offset + w[0].len > w[1].offset {
            return Err(bad(format!(
                "sections {} and {} overlap",
                kind_name(w[0].kind),
                kind_name(w[1].kind)
            )));
        }
    }
    let mut found: [Option<Range<usize>>; 3] = [None, None, None];
    for s in &sections {
        // Bounds were checked against the file length, so these fit in usize.
        let range = s.offset as usize..(s.offset + s.len) as usize;
        let actual = crc32fast::hash(&file[range.clone()]);
        if actual != s.crc {
            return Err(bad(format!(
                "section {} checksum mismatch (stored {:#010x}, computed {actual:#010x})",
                kind_name(s.kind),
                s.crc
            )));
        }
        let Some(slot) = (s.kind as usize)
            .checked_sub(1)
            .and_then(|i| found.get_mut(i))
        else {
            continue; // unknown optional section: skipped
        };
        if slot.replace(range).is_some() {
            return Err(bad(format!("section {} appears twice", kind_name(s.kind))));
        }
    }
    let [metadata, graph, weights] = found;
    let missing = |k| bad(format!("required section {} is missing", kind_name(k)));
    let weights = weights.ok_or_else(|| missing(KIND_WEIGHTS))?;
    if !(weights.start as u64).is_multiple_of(SECTION_ALIGN) {
        return Err(bad(format!(
            "WEIGHTS section offset {} is not a multiple of {SECTION_ALIGN}",
            weights.start
        )));
    }
    Ok(Layout {
        metadata: metadata.ok_or_else(|| missing(KIND_METADATA))?,
        graph: graph.ok_or_else(|| missing(KIND_GRAPH))?,
        weights,
    })
}

/// Assemble a bundle from section payloads `(kind, flags, bytes)`, in file order. The
/// WEIGHTS section (and any section after it) starts at a multiple of 64; others are packed.
pub fn write(sections: &[(u32, u32, &[u8])]) -> Result<Vec<u8>> {
    let count = u32::try_from(sections.len())
        .ok()
        .filter(|&c| c > 0 && c <= MAX_SECTIONS)
        .ok_or_else(|| bad(format!("cannot write {} sections", sections.len())))?;
    let table_end = HEADER_LEN + sections.len() * ENTRY_LEN;
    let mut pos = table_end as u64;
    let mut entries = Vec::with_capacity(sections.len());
    for &(kind, flags, data) in sections {
        if kind == KIND_WEIGHTS {
            pos = pos.div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
        }
        entries.push(Section {
            kind,
            flags,
            offset: pos,
            len: data.len() as u64,
            crc: crc32fast::hash(data),
        });
        pos += data.len() as u64;
    }
    let total = usize::try_from(pos).map_err(|_| bad("bundle too large"))?;
    let mut out = vec![0u8; total];
    for (e, &(_, _, data)) in entries.iter().zip(sections) {
        out[e.offset as usize..][..data.len()].copy_from_slice(data);
    }
    for (i, e) in entries.iter().enumerate() {
        let b = &mut out[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
        b[0..4].copy_from_slice(&e.kind.to_le_bytes());
        b[4..8].copy_from_slice(&e.flags.to_le_bytes());
        b[8..16].copy_from_slice(&e.offset.to_le_bytes());
        b[16..24].copy_from_slice(&e.len.to_le_bytes());
        b[24..28].copy_from_slice(&e.crc.to_le_bytes());
    }
    let table_crc = crc32fast::hash(&out[HEADER_LEN..table_end]);
    let h = &mut out[..HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    h[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    h[16..20].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[20..24].copy_from_slice(&count.to_le_bytes());
    h[24..32].copy_from_slice(&pos.to_le_bytes());
    h[32..40].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
    h[40..44].copy_from_slice(&table_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&header_crc.to_le_bytes());
    Ok(out)
}

/// Recompute the header, table and section checksums of `file` in place after its contents
/// were edited (used by tooling and tests that patch bundles). Entries pointing outside the file
/// keep their stored CRC. Fails if the header or section table is out of bounds.
pub fn refresh_checksums(file: &mut [u8]) -> Result<()> {
    if file.len() < HEADER_LEN || !has_magic(file) {
        return Err(bad("not a bundle"));
    }
    let count = u32_at(file, 20);
    let table_end = (count as usize)
        .checked_mul(ENTRY_LEN)
        .and_then(|t| t.checked_add(HEADER_LEN))
        .filter(|&t| count <= MAX_SECTIONS && t <= file.len())
        .ok_or_else(|| bad("section table out of bounds"))?;
    for i in 0..count as usize {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let off = u64_at(file, at + 8);
        let len = u64_at(file, at + 16);
        let Some(end) = off.checked_add(len).filter(|&e| e <= file.len() as u64) else {
            continue; // out-of-bounds entry: left for `parse` to reject
        };
        let crc = crc32fast::hash(&file[off as usize..end as usize]);
        file[at + 24..at + 28].copy_from_slice(&crc.to_le_bytes());
    }
    let table_crc = crc32fast::hash(&file[HEADER_LEN..table_end]);
    file[40..44].copy_from_slice(&table_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&file[..60]);
    file[60..64].copy_from_slice(&header_crc.to_le_bytes());
    Ok(())
}
