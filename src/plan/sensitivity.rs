//! Error curves for the Lagrangian solver, after HIGGS's linearity theorem: the end-to-end KL
//! grows as Σ_l a_l·t_l², with t_l tensor l's relative error. The database gives t_l at every
//! level (GPTQ's ‖(W − Ŵ)X‖/‖WX‖); a_l is measured once per tensor by putting only that tensor
//! at its worst level and measuring KL(original ‖ model) on calibration windows, rerunning only
//! the blocks from the tensor's own on (the variant decoded into its block as the block runs:
//! the base may be streamed). In a sampled database a linear's worst level holds only its
//! sampled rows: the probe puts those over the original weights.

use super::database::{probe_level, Database};
use super::fitness::{full_layout, Probe};
use super::lagrange::Curve;
use super::planned::Planned;
use crate::model::{Blocks, Result, TensorId};
use crate::progress::Progress;

/// How each tensor's ΔKL at its worst level is measured (`--sensitivity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// One pass: each block's gain measured end to end on its anchor tensor, every other
    /// tensor's ΔKL its gain times its change of the block's output ([`super::gain`]).
    Gain,
    /// One probe per tensor through the rest of the model.
    Probe,
}

impl Method {
    /// How its cache file is named: `sensitivity-{tag}{key}-{windows}.json`.
    pub fn tag(self) -> &'static str {
        match self {
            Method::Gain => "gain-",
            Method::Probe => "",
        }
    }
}

/// The cache file of the sensitivities by `method` of the database of `key` on `windows` windows.
pub fn cache_name(method: Method, key: &str, windows: usize) -> String {
    format!("sensitivity-{}{key}-{windows}.json", method.tag())
}

/// Every database tensor's ΔKL at its worst level (in name order), by `method`, uncached.
pub fn measure(
    base: &dyn Blocks,
    db: &Database,
    probe: &Probe,
    windows: &[usize],
    method: Method,
    progress: &mut dyn Progress,
) -> Result<Vec<f64>> {
    match method {
        Method::Probe => Ok(error_curves(base, db, probe, windows, &|b| b, None, progress)?.1),
        Method::Gain => super::gain::block_gain_dkl(base, db, probe, windows, progress),
    }
}

/// Saves `dkl` (in `db`'s name order) as a sealed sensitivity file at `path`.
pub fn save(path: &std::path::Path, db: &Database, dkl: &[f64]) -> std::io::Result<()> {
    write_map(path, &db.tensors.keys().cloned().zip(dkl.iter().copied()).collect())
}

/// The ΔKL a sealed sensitivity file at `path` holds, by tensor name.
pub fn read(path: &std::path::Path) -> std::result::Result<std::collections::BTreeMap<String, f64>, String> {
    super::sealed::open(&std::fs::read_to_string(path).map_err(|e| e.to_string())?)
}

/// The block a tensor first affects (the block count for the output matrix: only the head).
pub fn block_of(name: &str, n_blocks: usize) -> usize {
    match TensorId::parse_gguf(name) {
        Some(TensorId { block: Some(i), .. }) => i,
        Some(id) if id == TensorId::TOKEN_EMBD => 0,
        _ => n_blocks,
    }
}

/// [`error_curves`], or its measured ΔKL read back from `cache` (a JSON file of name → ΔKL made
/// for this database and these windows, sealed with its sha256: [`super::sealed`]) and written
/// there when measured; a cache that cannot be trusted is measured again. While measuring,
/// the ΔKL found so far are kept beside it (`….partial.json`, rewritten after every tensor),
/// and an interrupted run's are taken from there. Returns whether it came from the cache.
#[allow(clippy::too_many_arguments)]
pub fn load_or_measure(
    base: &dyn Blocks,
    db: &Database,
    probe: &Probe,
    windows: &[usize],
    method: Method,
    cost: &dyn Fn(u64) -> u64,
    cache: Option<&std::path::Path>,
    progress: &mut dyn Progress,
) -> Result<(Vec<Curve>, Vec<f64>, bool)> {
    if let Some(p) = cache.filter(|p| p.exists()) {
        match read_cache(p, db) {
            Ok(dkl) => return Ok((curves_from(db, &dkl, cost), dkl, true)),
            Err(why) => eprintln!(
                "warning: the cached sensitivities {} are not used ({why}); measuring them again",
                p.display()
            ),
        }
    }
    let partial = cache.map(|p| p.with_extension("partial.json"));
    let (curves, dkl) = match method {
        Method::Probe => error_curves(base, db, probe, windows, cost, partial.as_deref(), progress)?,
        Method::Gain => {
            let dkl = measure(base, db, probe, windows, method, progress)?;
            (curves_from(db, &dkl, cost), dkl)
        }
    };
    if let Some(p) = cache {
        match save(p, db, &dkl) {
            Ok(()) => {
                if let Some(partial) = &partial {
                    let _ = std::fs::remove_file(partial);
                }
            }
            Err(e) => eprintln!("warning: could not cache the sensitivities at {}: {e}", p.display()),
        }
    }
    Ok((curves, dkl, false))
}

/// ΔKL by tensor name.
type Measured = std::collections::BTreeMap<String, f64>;

fn write_map(path: &std::path::Path, m: &Measured) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let text = super::sealed::seal(m);
    crate::temp::write_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))
}

/// The ΔKL an interrupted measurement saved at `path`, where they belong to `db` (else none,
/// with a warning when there was a file).
fn read_partial(path: &std::path::Path, db: &Database) -> Measured {
    if !path.exists() {
        return Measured::new();
    }
    let read = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| super::sealed::open::<Measured>(&t))
        .and_then(|m| match m.iter().find(|(k, v)| !(db.tensors.contains_key(*k) && v.is_finite() && **v >= 0.0)) {
            Some((k, v)) => {
                Err(format!("'{k}' with ΔKL {v} is not a tensor of the database or not a finite non-negative number"))
            }
            None => Ok(m),
        });
    read.unwrap_or_else(|why| {
        eprintln!(
            "warning: the sensitivities saved by an interrupted run, {}, are not used ({why}); measuring them all",
            path.display()
        );
        Measured::new()
    })
}

fn read_cache(path: &std::path::Path, db: &Database) -> std::result::Result<Vec<f64>, String> {
    parse_cache(&std::fs::read_to_string(path).map_err(|e| e.to_string())?, db)
}

/// The ΔKL of every database tensor (in name order) from a cache file's text: sealed with its
/// sha256, exactly the database's tensors, each a finite non-negative number.
pub fn parse_cache(text: &str, db: &Database) -> std::result::Result<Vec<f64>, String> {
    let m: Measured = super::sealed::open(text)?;
    if !m.keys().eq(db.tensors.keys()) {
        return Err(format!("{} tensors for a database of {}", m.len(), db.tensors.len()));
    }
    match m.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        Some((k, v)) => Err(format!("'{k}' has ΔKL {v}")),
        None => Ok(m.into_values().collect()),
    }
}

/// The curves a·t² from each tensor's ΔKL at its worst level. A sampled worst level was probed
/// over the original weights, its sampled rows only: its output error energy is about its
/// share of the rows times the whole level's, so a = ΔKL / (share·t²).
fn curves_from(db: &Database, dkl: &[f64], cost: &dyn Fn(u64) -> u64) -> Vec<Curve> {
    db.tensors
        .values()
        .zip(dkl)
        .map(|(tv, &kl)| {
            let worst = probe_level(&tv.variants);
            let t2 = tv.variants[worst].rel_error.powi(2) * tv.share_of_rows(worst);
            let a = if t2 > 0.0 { kl / t2 } else { 0.0 };
            Curve {
                cost: (0..tv.variants.len()).map(|l| cost(tv.cost(l) as u64)).collect(),
                error: tv.variants.iter().map(|v| a * v.rel_error * v.rel_error).collect(),
            }
        })
        .collect()
}

/// One curve per database tensor (in name order): cost of every level by `cost(bytes)`, error
/// a_l·t_l². Also returns the measured ΔKL of every tensor at its worst level. With a
/// `partial` file, the ΔKL measured so far are saved there after every tensor, and those
/// found there are not measured again.
pub fn error_curves(
    base: &dyn Blocks,
    db: &Database,
    probe: &Probe,
    windows: &[usize],
    cost: &dyn Fn(u64) -> u64,
    partial: Option<&std::path::Path>,
    progress: &mut dyn Progress,
) -> Result<(Vec<Curve>, Vec<f64>)> {
    let n = db.tensors.len();
    let mut measured = partial.map(|p| read_partial(p, db)).unwrap_or_default();
    if !measured.is_empty() {
        eprintln!("resuming the sensitivities: {} of {n} were measured by an interrupted run", measured.len());
    }
    progress.start("sensitivity", n);
    for (k, (name, tv)) in db.tensors.iter().enumerate() {
        progress.step(k, None);
        if measured.contains_key(name) {
            continue;
        }
        let worst = probe_level(&tv.variants);
        let m = Planned::new(base, db, [(name.as_str(), worst)]);
        measured.insert(name.clone(), probe.kl(&m, windows, block_of(name, base.n_blocks()), &full_layout, None)?);
        if let Some(p) = partial {
            if let Err(e) = write_map(p, &measured) {
                eprintln!("warning: could not save the sensitivities measured so far at {}: {e}", p.display());
            }
            crate::failpoint::hit("sensitivity", measured.len());
        }
    }
    progress.step(n, None);
    let dkl: Vec<f64> = db.tensors.keys().map(|k| measured[k]).collect();
    Ok((curves_from(db, &dkl, cost), dkl))
}
