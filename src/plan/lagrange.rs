//! Lagrangian allocation (layer-adaptive pruning by DP; llama.cpp's target-bpw; HIGGS): with an
//! error curve e_l(c) and a cost bytes_l(c) per tensor, minimise Σ e_l(c_l) subject to
//! Σ bytes_l(c_l) ≤ B. For a multiplier λ every tensor takes argmin e_l(c) + λ·bytes_l(c); λ is
//! bisected to the smallest value whose plan fits, and the bytes left over are then spent
//! greedily on the upgrades with the best error saved per byte, so the budget is met to within
//! one step: afterwards no single upgrade fits. Assumes the errors add up.

/// One tensor's choices, sorted by cost: (bytes, error) per level.
#[derive(Debug, Clone)]
pub struct Curve {
    pub cost: Vec<u64>,
    pub error: Vec<f64>,
}

impl Curve {
    pub fn min_cost(&self) -> u64 {
        self.cost.iter().copied().min().unwrap_or(0)
    }
    pub fn max_cost(&self) -> u64 {
        self.cost.iter().copied().max().unwrap_or(0)
    }
}

pub fn total_cost(curves: &[Curve], choice: &[usize]) -> u64 {
    curves.iter().zip(choice).map(|(c, &i)| c.cost[i]).sum()
}

pub fn total_error(curves: &[Curve], choice: &[usize]) -> f64 {
    curves.iter().zip(choice).map(|(c, &i)| c.error[i]).sum()
}

fn choose(curves: &[Curve], lambda: f64) -> Vec<usize> {
    curves
        .iter()
        .map(|c| {
            (0..c.cost.len())
                .min_by(|&a, &b| {
                    let fa = c.error[a] + lambda * c.cost[a] as f64;
                    let fb = c.error[b] + lambda * c.cost[b] as f64;
                    fa.total_cmp(&fb).then(c.cost[a].cmp(&c.cost[b]))
                })
                .expect("every curve has a level")
        })
        .collect()
}

/// The cheapest level of every tensor (ties: the lower error).
pub fn cheapest(curves: &[Curve]) -> Vec<usize> {
    curves
        .iter()
        .map(|c| {
            (0..c.cost.len())
                .min_by(|&a, &b| c.cost[a].cmp(&c.cost[b]).then(c.error[a].total_cmp(&c.error[b])))
                .expect("a level")
        })
        .collect()
}

/// The allocation for `budget` bytes, or None when even the cheapest levels exceed it.
pub fn solve(curves: &[Curve], budget: u64) -> Option<Vec<usize>> {
    let floor = cheapest(curves);
    if total_cost(curves, &floor) > budget {
        return None;
    }
    let mut best = floor;
    let fits = |c: &Vec<usize>| total_cost(curves, c) <= budget;
    let unconstrained = choose(curves, 0.0);
    if fits(&unconstrained) {
        best = unconstrained;
    } else {
        // λ in errors per byte: bisect in log space between "bytes are free" and "bytes are all".
        let (mut lo, mut hi) = (1e-30f64, 1e30f64);
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            let c = choose(curves, mid);
            if fits(&c) {
                hi = mid;
                best = c;
            } else {
                lo = mid;
            }
            if hi / lo < 1.0 + 1e-12 {
                break;
            }
        }
    }
    fill(curves, &mut best, budget);
    Some(best)
}

/// Spends the bytes left under `budget` on the upgrades that save the most error per byte,
/// until no upgrade that lowers the error fits.
pub fn fill(curves: &[Curve], choice: &mut [usize], budget: u64) {
    let mut used = total_cost(curves, choice);
    loop {
        let slack = budget.saturating_sub(used);
        let mut best: Option<(f64, usize, usize)> = None;
        for (t, c) in curves.iter().enumerate() {
            let cur = choice[t];
            for j in 0..c.cost.len() {
                let (dc, de) = (c.cost[j] as i128 - c.cost[cur] as i128, c.error[cur] - c.error[j]);
                if dc <= 0 || dc as u64 > slack || de <= 0.0 {
                    continue;
                }
                let gain = de / dc as f64;
                if best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, t, j));
                }
            }
        }
        let Some((_, t, j)) = best else { return };
        used = used - curves[t].cost[choice[t]] + curves[t].cost[j];
        choice[t] = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Rng;

    /// Random curves with error falling as cost rises (as quantization error does).
    fn random_curves(rng: &mut Rng, n: usize) -> Vec<Curve> {
        (0..n)
            .map(|_| {
                let levels = 2 + rng.below(6);
                let size = 100 + rng.below(5000) as u64;
                let scale = rng.uniform() * 10.0 + 0.01;
                let mut bits: Vec<u64> = (0..levels).map(|_| 2 + rng.below(14) as u64).collect();
                bits.sort();
                bits.dedup();
                Curve {
                    cost: bits.iter().map(|b| b * size / 8).collect(),
                    error: bits.iter().map(|&b| scale * 4f64.powi(-(b as i32))).collect(),
                }
            })
            .collect()
    }

    #[test]
    fn budget_is_met_to_within_one_step_over_random_budgets() {
        let mut rng = Rng::new(7);
        for case in 0..200 {
            let n = 1 + rng.below(60);
            let curves = random_curves(&mut rng, n);
            let lo: u64 = curves.iter().map(Curve::min_cost).sum();
            let hi: u64 = curves.iter().map(Curve::max_cost).sum();
            let budget = lo + (rng.uniform() * (hi - lo) as f64) as u64;
            let choice = solve(&curves, budget).expect("a budget above the floor is feasible");
            let used = total_cost(&curves, &choice);
            assert!(used <= budget, "case {case}: {used} > {budget}");
            let slack = budget - used;
            for (c, &i) in curves.iter().zip(&choice) {
                if let Some(&next) = c.cost.get(i + 1) {
                    assert!(
                        next - c.cost[i] > slack,
                        "case {case}: a step of {} still fits in {slack}",
                        next - c.cost[i]
                    );
                }
            }
        }
    }

    #[test]
    fn below_the_floor_is_infeasible_and_above_the_top_takes_the_best() {
        let mut rng = Rng::new(3);
        let curves = random_curves(&mut rng, 10);
        let lo: u64 = curves.iter().map(Curve::min_cost).sum();
        assert!(solve(&curves, lo - 1).is_none());
        let hi: u64 = curves.iter().map(Curve::max_cost).sum();
        let top = solve(&curves, hi).unwrap();
        assert!(top.iter().zip(&curves).all(|(&i, c)| i == c.cost.len() - 1));
    }

    #[test]
    fn spends_bytes_where_error_falls_most() {
        // Two equal-sized tensors, one 100× more sensitive: with room for one upgrade, it gets it.
        let c = |s: f64| Curve { cost: vec![10, 20], error: vec![s, s / 16.0] };
        let curves = vec![c(1.0), c(100.0)];
        assert_eq!(solve(&curves, 30), Some(vec![0, 1]));
        assert_eq!(solve(&curves, 40), Some(vec![1, 1]));
        assert_eq!(solve(&curves, 19), None);
    }
}
