//! Error curves for the Lagrangian solver, after HIGGS's linearity theorem: the end-to-end KL
//! grows as Σ_l a_l·t_l², with t_l tensor l's relative error. The database gives t_l at every
//! level (GPTQ's ‖(W − Ŵ)X‖/‖WX‖); a_l is measured once per tensor by putting only that tensor
//! at its worst level and measuring KL(original ‖ model) on calibration windows, rerunning only
//! the blocks from the tensor's own on.

use super::database::Database;
use super::fitness::{full_layout, Probe};
use super::lagrange::Curve;
use super::search::set_weight;
use crate::model::{Model, Result};

/// The block a tensor first affects (the block count for the output matrix: only the head).
pub fn block_of(name: &str, n_blocks: usize) -> usize {
    match name.strip_prefix("blk.").and_then(|r| r.split_once('.')).and_then(|(i, _)| i.parse().ok()) {
        Some(i) => i,
        None if name == "token_embd.weight" => 0,
        None => n_blocks,
    }
}

/// [`error_curves`], or its measured ΔKL read back from `cache` (a JSON file of name → ΔKL made
/// for this database and these windows) and written there when measured. Returns whether it
/// came from the cache.
pub fn load_or_measure(
    base: &Model,
    db: &Database,
    probe: &Probe,
    windows: &[usize],
    cost: &dyn Fn(u64) -> u64,
    cache: Option<&std::path::Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Curve>, Vec<f64>, bool)> {
    let read = cache.and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, f64>>(&t).ok());
    if let Some(m) = read.filter(|m| m.len() == db.tensors.len() && db.tensors.keys().all(|k| m.contains_key(k))) {
        let dkl: Vec<f64> = db.tensors.keys().map(|k| m[k]).collect();
        return Ok((curves_from(db, &dkl, cost), dkl, true));
    }
    let (curves, dkl) = error_curves(base, db, probe, windows, cost, progress)?;
    if let Some(p) = cache {
        let m: std::collections::BTreeMap<&String, f64> = db.tensors.keys().zip(dkl.iter().copied()).collect();
        let written = p.parent().map(std::fs::create_dir_all).transpose().ok().and_then(|_| serde_json::to_string(&m).ok()).map(|t| crate::export::write_atomic(p, |w| std::io::Write::write_all(w, t.as_bytes())));
        if !matches!(written, Some(Ok(()))) {
            eprintln!("warning: could not cache the sensitivities at {}", p.display());
        }
    }
    Ok((curves, dkl, false))
}

/// The curves a·t² from each tensor's ΔKL at its worst level.
fn curves_from(db: &Database, dkl: &[f64], cost: &dyn Fn(u64) -> u64) -> Vec<Curve> {
    db.tensors
        .values()
        .zip(dkl)
        .map(|(tv, &kl)| {
            let t = tv.variants.iter().map(|v| v.rel_error).fold(0.0, f64::max);
            let a = if t > 0.0 { kl / (t * t) } else { 0.0 };
            Curve { cost: tv.variants.iter().map(|v| cost(v.bytes.len() as u64)).collect(), error: tv.variants.iter().map(|v| a * v.rel_error * v.rel_error).collect() }
        })
        .collect()
}

/// One curve per database tensor (in name order): cost of every level by `cost(bytes)`, error
/// a_l·t_l². Also returns the measured ΔKL of every tensor at its worst level.
pub fn error_curves(
    base: &Model,
    db: &Database,
    probe: &Probe,
    windows: &[usize],
    cost: &dyn Fn(u64) -> u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Curve>, Vec<f64>)> {
    let n = db.tensors.len();
    let mut dkl = Vec::with_capacity(n);
    for (k, (name, tv)) in db.tensors.iter().enumerate() {
        progress(k, n);
        let worst = (0..tv.variants.len()).max_by(|&a, &b| tv.variants[a].rel_error.total_cmp(&tv.variants[b].rel_error)).expect("a level");
        let mut m = base.clone();
        set_weight(&mut m, name, tv.decoded(worst)?);
        dkl.push(probe.kl(&m, windows, block_of(name, base.blocks.len()), &full_layout, None)?);
    }
    progress(n, n);
    Ok((curves_from(db, &dkl, cost), dkl))
}
