//! Read-only memory map of a bundle file, so weights are used in place without a copy.

use crate::error::{Error, Result};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use std::ffi::c_void;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::Path;
use std::ptr::NonNull;

/// A private read-only mapping of a whole file, unmapped on drop.
///
/// The mapping is page-aligned, so a section at a 64-byte-aligned file offset is 64-byte
/// aligned in memory. If another process truncates the file while it is mapped, reading the
/// lost pages raises SIGBUS: bundles must not be rewritten in place (`bundle::save` renames).
pub struct Mmap {
    ptr: NonNull<c_void>,
    len: usize,
}

// SAFETY: the mapping is read-only and never mutated through this handle; it is only unmapped
// in `Drop`, which requires exclusive ownership, so sharing `&Mmap` across threads or moving
// it to another thread cannot cause a data race.
unsafe impl Send for Mmap {}
// SAFETY: see `Send` above: all access through `&Mmap` is read-only.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Map the whole of `file` (`path` is only used in error messages).
    pub fn map(file: &File, path: &Path) -> Result<Mmap> {
        let io = |context: String, cause: std::io::Error| Error::Io { context, cause };
        let meta = file
            .metadata()
            .map_err(|e| io(format!("cannot stat {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::Bundle(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let len = usize::try_from(meta.len())
            .map_err(|_| Error::Bundle(format!("{} is too large to map", path.display())))?;
        let nz = NonZeroUsize::new(len)
            .ok_or_else(|| Error::Bundle(format!("{} is empty", path.display())))?;
        // SAFETY: we request a fresh read-only private mapping at an address chosen by the
        // kernel, of exactly the file's length, from offset 0; nothing else aliases it.
        let ptr = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ,
                MapFlags::MAP_PRIVATE,
                file,
                0,
            )
        }
        .map_err(|e| io(format!("cannot map {}", path.display()), e.into()))?;
        Ok(Mmap { ptr, len })
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes owned by `self` until drop,
        // and the borrow of `self` bounds the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr() as *const u8, self.len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping created in `map`, and no slice borrowed from
        // it can outlive `self`. A failure cannot be reported from drop and leaks the mapping.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

impl std::fmt::Debug for Mmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mmap({} bytes)", self.len)
    }
}
