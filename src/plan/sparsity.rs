//! Sparsity budgets (`sparsity=S`): a share of weights pruned per linear of the blocks, the
//! kept weights summing to no more than pruning S of every linear would keep. `uniform` prunes
//! S everywhere; `owl` gives each block OWL's share (fewer pruned where outliers are many),
//! shifted so the budget holds; `evo` (EvoPress) searches a share per linear over the sparsity
//! database's levels, starting from uniform. Pruned linears are kept in F16; `triage compress`
//! prunes them (SparseGPT by default) layer by layer.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value as Json};

use super::database::{Database, SPARSITY_LEVELS};
use super::evo::evolve;
use super::fitness::{full_layout, Probe};
use super::lagrange::Curve;
use super::search::{QuantGenome, QuantSpace};
use super::{owl, PlanError, PlanOptions, PlanOutcome, Progress, Result, Solver};
use crate::compress::gptq::Sparsity;
use crate::compress::plan::{plannable_tensors, Plan, TensorSpec};
use crate::ggml::types::QuantType;
use crate::layout::Skeleton;
use crate::model::tensor_id::gguf_block;
use crate::model::Model;
use crate::stats::Rng;

/// The weights of `n` kept when a share `p` is pruned.
fn kept(n: usize, p: f64) -> u64 {
    (n as f64 * (1.0 - p)).round() as u64
}

/// A database level's share as the budget counts it (f32 levels read back exactly: 0.6, not
/// 0.6000000238).
fn share(p: f32) -> f64 {
    (p as f64 * 1e4).round() / 1e4
}

/// The sparsest share a searched plan may give a tensor.
pub fn max_share() -> f64 {
    share(SPARSITY_LEVELS[0])
}

/// Plans a sparsity budget of `target`; `db` (a sparsity database) is needed by `evo` only.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_sparsity(
    base: &Model,
    gguf: &Skeleton,
    db: Option<&Database>,
    probe: &Probe,
    pool: &[usize],
    holdout: &[usize],
    target: f64,
    opts: &PlanOptions,
    timings: &mut serde_json::Map<String, Json>,
    progress: &mut dyn Progress,
) -> Result<PlanOutcome> {
    let linears: BTreeMap<String, usize> = plannable_tensors(&base.config)
        .into_iter()
        .filter(|(n, _)| gguf_block(n).is_some())
        .map(|(n, (r, c))| (n, r * c))
        .collect();
    let budget: u64 = linears.values().map(|&n| kept(n, target)).sum();
    let mut extra = serde_json::Map::new();
    let mut kld = None;
    let shares: BTreeMap<String, f64> = match opts.solver {
        Solver::Uniform => linears.keys().map(|n| (n.clone(), target)).collect(),
        Solver::Owl => {
            let ratios = owl::outlier_ratios(base, probe, pool)?;
            let per_block = owl::block_sparsities(&ratios, target, owl::LAMBDA);
            let block = |name: &str| super::sensitivity::block_of(name, base.blocks.len());
            // Rounding and the clamp to [0, max] can move the kept weights off the budget: one
            // shift of every block's share, bisected, puts them back.
            let at = |c: f64| -> BTreeMap<String, f64> {
                linears.keys().map(|n| (n.clone(), (per_block[block(n)] + c).clamp(0.0, max_share()))).collect()
            };
            let cost = |s: &BTreeMap<String, f64>| -> u64 { s.iter().map(|(n, &p)| kept(linears[n], p)).sum() };
            let (mut lo, mut hi) = (-1.0, 1.0);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if cost(&at(mid)) <= budget {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            extra.insert("outlier_ratio".into(), json!(ratios));
            extra.insert(
                "owl".into(),
                json!({"lambda": owl::LAMBDA, "m": crate::importance::outliers::OUTLIER_M, "shift": hi}),
            );
            at(hi)
        }
        Solver::Evo => {
            let db = db.expect("evo builds the sparsity database");
            let curves: Vec<Curve> = db
                .tensors
                .iter()
                .map(|(n, tv)| Curve {
                    cost: tv.variants.iter().map(|v| kept(linears[n], share(v.sparsity))).collect(),
                    error: tv.variants.iter().map(|v| v.rel_error * v.rel_error).collect(),
                })
                .collect();
            let space = QuantSpace::new(base, db, curves, budget);
            // Uniform start: every tensor at the least sparse level that prunes at least `target`
            // (exactly uniform when `target` is a level), then random steps up while one fits.
            let levels: Vec<usize> = db
                .tensors
                .values()
                .map(|tv| tv.variants.iter().rposition(|v| share(v.sparsity) >= target - 1e-9).unwrap_or(0))
                .collect();
            let mut start = QuantGenome { space: &space, levels };
            start.fill(&mut Rng::new(opts.evo.seed));
            extra.insert(
                "start_kld".into(),
                json!(probe.kl(&space.model(&start.levels)?, holdout, 0, &full_layout, None)?),
            );
            let t = Instant::now();
            let (best, fit) = evolve(probe, pool, start, &opts.evo, opts.checkpoint.as_ref(), progress)?;
            timings.insert("search_s".into(), json!(t.elapsed().as_secs_f64()));
            extra.insert("search_fitness".into(), json!(fit));
            let t = Instant::now();
            kld = Some(probe.kl(&space.model(&best.levels)?, holdout, 0, &full_layout, None)?);
            timings.insert("holdout_s".into(), json!(t.elapsed().as_secs_f64()));
            db.tensors
                .iter()
                .zip(&best.levels)
                .map(|((n, tv), &l)| (n.clone(), share(tv.variants[l].sparsity)))
                .collect()
        }
        s => {
            return Err(PlanError::Budget(
                format!("solver {s:?} does not apply to sparsity budgets; use uniform, owl or evo").to_lowercase(),
            ))
        }
    };
    let total: usize = linears.values().sum();
    let kept_total: u64 = shares.iter().map(|(n, &p)| kept(linears[n], p)).sum();
    let plan = Plan {
        tensors: shares
            .iter()
            .map(|(n, &p)| {
                (
                    n.clone(),
                    TensorSpec {
                        qtype: QuantType::F16,
                        sparsity: (p > 0.0).then_some(Sparsity::Unstructured(p as f32)),
                    },
                )
            })
            .collect(),
        ..Plan::default()
    };
    let all_blocks: Vec<usize> = (0..base.blocks.len()).collect();
    let types = plan.tensors.iter().map(|(n, s)| (n.clone(), s.qtype)).collect();
    let predicted = gguf.predicted_size(&all_blocks, &types)?;
    extra.insert("sparsity".into(), json!({"target": target, "planned": 1.0 - kept_total as f64 / total as f64, "kept_weights": kept_total, "budget_kept_weights": budget, "linear_weights": total}));
    let mut json = plan.to_json();
    json.as_object_mut().expect("an object").extend(extra);
    Ok(PlanOutcome { plan, predicted, kld, json, database: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_weights_round_to_the_nearest() {
        assert_eq!(kept(576 * 576, 0.6), 132_710);
        assert_eq!(kept(10, 0.25), 8);
        assert_eq!(kept(10, 0.0), 10);
    }
}
