//! `--memory-limit` and what loads a model whole: the limits the commands hold to, checked
//! before anything is loaded.

use std::path::Path;

use anyhow::{bail, Result};

use crate::calib::runner::StateLimits;
use crate::model::Streamed;

/// `--memory-limit` in bytes: the machine's memory when not given.
pub(crate) fn memory_bytes(arg: Option<u64>) -> u64 {
    arg.unwrap_or_else(StateLimits::machine_memory)
}

/// Where the limit of [`memory_bytes`] comes from, as an error names it.
pub(crate) fn limit_is(arg: Option<u64>) -> &'static str {
    if arg.is_some() {
        "--memory-limit"
    } else {
        "the machine's memory (--memory-limit)"
    }
}

/// Fails with one line, before anything is loaded, when the model at `path` cannot be held
/// whole in f32 within `limit` bytes (`limit_is`: where that limit comes from), as `needs` (a
/// command or option that loads it whole) would hold it: the process would otherwise be killed
/// once the memory runs out.
pub(crate) fn check_fits_whole(path: &Path, limit: u64, limit_is: &str, needs: &str) -> Result<()> {
    let s = Streamed::open(path)?;
    let bytes = 4 * s.config.n_params() as u64;
    let size = |b: u64| match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{b} bytes"),
    };
    if bytes > limit {
        bail!(
            "{needs} holds the whole model in f32: {} has {} parameters, {}, more than the {} of {limit_is}",
            path.display(),
            s.config.n_params(),
            size(bytes),
            size(limit)
        );
    }
    Ok(())
}
