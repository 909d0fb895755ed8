//! Commands over many images (`classify`, `eval`, calibration): a file that cannot be read
//! is reported on stderr and the command goes on with the rest, then fails at the end
//! naming how many were skipped; `--strict` stops at the first instead.

use anyhow::{anyhow, Result};
use indicatif::ProgressBar;

/// Counts the files of one batch that failed, and decides whether to go on.
pub struct Batch {
    strict: bool,
    what: &'static str,
    failed: usize,
    seen: usize,
}

impl Batch {
    /// A batch of `total` `what` (e.g. "images"); `strict` (or a batch of one) makes the
    /// first failure final.
    pub fn new(what: &'static str, total: usize, strict: bool) -> Batch {
        Batch {
            strict: strict || total <= 1,
            what,
            failed: 0,
            seen: 0,
        }
    }

    /// The result of reading one file: `Some` to use it, `None` when it failed and was
    /// reported (above `bar`, if one is drawn), an error under `--strict`.
    pub fn take<T>(&mut self, r: Result<T>, bar: Option<&ProgressBar>) -> Result<Option<T>> {
        self.seen += 1;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.strict => Err(e),
            Err(e) => {
                self.failed += 1;
                let say = || eprintln!("error: {e:#} (skipped)");
                match bar {
                    Some(b) => b.suspend(say),
                    None => say(),
                }
                Ok(None)
            }
        }
    }

    /// An error naming the skipped files, if any, once the batch is done.
    pub fn finish(&self) -> Result<()> {
        match self.failed {
            0 => Ok(()),
            n => Err(skipped_error(self.what, n, self.seen)),
        }
    }
}

/// The error a command over many files ends with when `failed` of the `seen` `what` (e.g.
/// "images") could not be read and were skipped.
pub fn skipped_error(what: &str, failed: usize, seen: usize) -> anyhow::Error {
    if failed == seen {
        return anyhow!("none of the {seen} {what} could be read (each is named above)");
    }
    anyhow!(
        "{failed} of {seen} {what} could not be read (each is named above); \
         the others were processed (--strict stops at the first)"
    )
}
