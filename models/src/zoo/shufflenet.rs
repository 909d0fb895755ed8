//! Placeholder module list; filled by the architecture work.

use super::Arch;

pub(super) const ARCHS: [Arch; 0] = [];
