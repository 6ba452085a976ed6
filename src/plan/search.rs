//! The genome of quantization and sparsity budgets — a level per tensor of a layer database —
//! with its budget-preserving mutations (the depth genome is in [`super::depth`]).

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::Tensor;

use super::database::Database;
use super::evo::{Candidate, Genome};
use super::lagrange::Curve;
use super::removal::Removal;
use crate::model::{Model, Result, TensorId};
use crate::stats::Rng;

/// The search's view of the database: tensors in a fixed order, their costs in budget units,
/// and the variants' weights decoded on use and kept while they are among the most recently
/// used — up to [`DECODED_SHARE`] times one whole model's worth. A child shares its parent's
/// decoded weights ([`Genome::realize_child`]) and decodes only the few tensors it changes,
/// which are what the cache keeps (a mutation often moves a tensor back to a recent level).
pub struct QuantSpace<'a> {
    pub base: &'a Model,
    pub db: &'a Database,
    pub names: Vec<String>,
    pub curves: Vec<Curve>,
    /// Tensors of the same shape share their levels and costs: swapping two of their levels
    /// keeps the budget exactly.
    pub group: Vec<usize>,
    pub budget: u64,
    decoded: Mutex<Decoded>,
}

/// How many times the f32 bytes of one variant of every tensor the decoded variants may take.
const DECODED_SHARE: f64 = 0.25;

/// Decoded variants by (tensor, level), least recently used dropped first past `capacity` bytes.
struct Decoded {
    map: HashMap<(usize, usize), (Tensor, u64)>,
    bytes: usize,
    capacity: usize,
    tick: u64,
}

impl Decoded {
    fn get(&mut self, key: (usize, usize)) -> Option<Tensor> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&key).map(|(t, used)| {
            *used = tick;
            t.clone()
        })
    }

    fn insert(&mut self, key: (usize, usize), t: Tensor) {
        self.tick += 1;
        self.bytes += 4 * t.elem_count();
        if let Some((old, _)) = self.map.insert(key, (t, self.tick)) {
            self.bytes -= 4 * old.elem_count();
        }
        while self.bytes > self.capacity && self.map.len() > 1 {
            let oldest = *self.map.iter().min_by_key(|(_, (_, used))| *used).expect("not empty").0;
            let (t, _) = self.map.remove(&oldest).expect("present");
            self.bytes -= 4 * t.elem_count();
        }
    }
}

impl<'a> QuantSpace<'a> {
    pub fn new(base: &'a Model, db: &'a Database, curves: Vec<Curve>, budget: u64) -> Self {
        let names: Vec<String> = db.tensors.keys().cloned().collect();
        let shapes: Vec<(usize, usize)> = db.tensors.values().map(|t| (t.rows, t.cols)).collect();
        let mut ids: Vec<(usize, usize)> = Vec::new();
        let group = shapes
            .iter()
            .map(|s| match ids.iter().position(|x| x == s) {
                Some(i) => i,
                None => {
                    ids.push(*s);
                    ids.len() - 1
                }
            })
            .collect();
        let whole: usize = db.tensors.values().map(|t| 4 * t.rows * t.cols).sum();
        let decoded =
            Decoded { map: HashMap::new(), bytes: 0, capacity: (DECODED_SHARE * whole as f64) as usize, tick: 0 };
        QuantSpace { base, db, names, curves, group, budget, decoded: Mutex::new(decoded) }
    }

    fn weight(&self, t: usize, level: usize) -> Result<Tensor> {
        if let Some(w) = self.decoded.lock().expect("not poisoned").get((t, level)) {
            return Ok(w);
        }
        let w = self.db.decoded(&self.names[t], level)?;
        self.decoded.lock().expect("not poisoned").insert((t, level), w.clone());
        Ok(w)
    }

    /// The base model with every tensor at its level in `levels`.
    pub fn model(&self, levels: &[usize]) -> Result<Model> {
        let mut m = self.base.clone();
        for (t, &l) in levels.iter().enumerate() {
            set_weight(&mut m, &self.names[t], self.weight(t, l)?);
        }
        Ok(m)
    }

    fn block_of(&self, t: usize) -> usize {
        super::sensitivity::block_of(&self.names[t], self.base.blocks.len())
    }

    pub fn cost(&self, levels: &[usize]) -> u64 {
        super::lagrange::total_cost(&self.curves, levels)
    }
}

/// Drops `m`'s weights of every tensor of `db`, leaving empty tensors in their place: a
/// candidate replaces them all ([`QuantSpace::model`]), so the search holds only the rest of
/// the original (the norms) besides the variants. A dropped weight left in a model fails its
/// first matmul on the shape.
pub fn drop_planned_weights(m: &mut Model, db: &Database) {
    for name in db.tensors.keys() {
        set_weight(
            m,
            name,
            Tensor::zeros(0, candle_core::DType::F32, &candle_core::Device::Cpu).expect("an empty tensor"),
        );
    }
}

/// Sets the weight of the tensor called `name` (GGUF naming) in `m`.
pub fn set_weight(m: &mut Model, name: &str, w: Tensor) {
    if TensorId::parse_gguf(name) == Some(TensorId::TOKEN_EMBD) {
        m.embed = w;
        return;
    }
    if let Some(l) = m.lm_head.as_mut().filter(|l| l.name == name) {
        l.weight = w;
        return;
    }
    for b in &mut m.blocks {
        for l in b.linears_mut() {
            if l.name == name {
                l.weight = w;
                return;
            }
        }
    }
}

/// A level per tensor.
#[derive(Clone)]
pub struct QuantGenome<'a> {
    pub space: &'a QuantSpace<'a>,
    pub levels: Vec<usize>,
}

impl PartialEq for QuantGenome<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.levels == other.levels
    }
}

impl QuantGenome<'_> {
    /// Steps tensors up one level, in random order, while a step fits the budget.
    pub fn fill(&mut self, rng: &mut Rng) {
        let s = self.space;
        let mut used = s.cost(&self.levels);
        loop {
            let mut order: Vec<usize> = (0..self.levels.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut moved = false;
            for t in order {
                let (c, l) = (&s.curves[t], self.levels[t]);
                if l + 1 < c.cost.len() && used - c.cost[l] + c.cost[l + 1] <= s.budget {
                    used = used - c.cost[l] + c.cost[l + 1];
                    self.levels[t] = l + 1;
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }
}

impl Genome for QuantGenome<'_> {
    /// EvoPress's level swaps: k = min(U{1..3}, U{1..3}) moves, each either swapping the levels
    /// of two tensors of the same shape (the budget is kept exactly) or moving one tensor a
    /// level up or down; then random steps down until the budget holds and random steps up
    /// while one fits, so every genome sits within one step of the budget.
    fn mutate(&self, rng: &mut Rng) -> Self {
        let s = self.space;
        let mut child = self.clone();
        let n = child.levels.len();
        let k = (1 + rng.below(3)).min(1 + rng.below(3));
        for _ in 0..k {
            let a = rng.below(n);
            if rng.uniform() < 0.5 {
                let mates: Vec<usize> =
                    (0..n).filter(|&b| s.group[b] == s.group[a] && child.levels[b] != child.levels[a]).collect();
                if !mates.is_empty() {
                    let b = mates[rng.below(mates.len())];
                    child.levels.swap(a, b);
                    continue;
                }
            }
            let top = s.curves[a].cost.len() - 1;
            let l = child.levels[a];
            child.levels[a] = if (rng.uniform() < 0.5 && l < top) || l == 0 { (l + 1).min(top) } else { l - 1 };
        }
        let mut used = s.cost(&child.levels);
        let mut guard = 0;
        while used > s.budget && guard < 100 * n {
            guard += 1;
            let t = rng.below(n);
            let l = child.levels[t];
            if l > 0 {
                used = used - s.curves[t].cost[l] + s.curves[t].cost[l - 1];
                child.levels[t] = l - 1;
            }
        }
        if used > s.budget {
            return self.clone();
        }
        child.fill(rng);
        child
    }

    fn realize(&self) -> Result<Candidate> {
        Ok(Candidate { model: self.space.model(&self.levels)?, removal: Removal::default() })
    }

    /// The parent's model with only the tensors whose level differs swapped: the rest of the
    /// weights are the parent's own, shared, not decoded again.
    fn realize_child(&self, parent: &Self, parent_c: &Candidate) -> Result<Candidate> {
        let mut model = parent_c.model.clone();
        for (t, (&l, &p)) in self.levels.iter().zip(&parent.levels).enumerate() {
            if l != p {
                set_weight(&mut model, &self.space.names[t], self.space.weight(t, l)?);
            }
        }
        Ok(Candidate { model, removal: Removal::default() })
    }

    fn first_change(&self, other: &Self) -> usize {
        (0..self.levels.len())
            .filter(|&t| self.levels[t] != other.levels[t])
            .map(|t| self.space.block_of(t))
            .min()
            .unwrap_or(self.space.base.blocks.len())
    }

    fn genes(&self) -> Vec<usize> {
        self.levels.clone()
    }

    fn with_genes(&self, genes: &[usize]) -> Option<Self> {
        let s = self.space;
        let fits = genes.len() == s.curves.len()
            && genes.iter().zip(&s.curves).all(|(&l, c)| l < c.cost.len())
            && s.cost(genes) <= s.budget;
        fits.then(|| QuantGenome { space: s, levels: genes.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_variants_drop_the_least_recently_used_past_capacity() {
        let t = |v: f32| Tensor::from_vec(vec![v; 4], (2, 2), &candle_core::Device::Cpu).unwrap();
        let mut d = Decoded { map: HashMap::new(), bytes: 0, capacity: 2 * 16, tick: 0 };
        d.insert((0, 0), t(0.0));
        d.insert((1, 0), t(1.0));
        assert!(d.get((0, 0)).is_some());
        d.insert((2, 0), t(2.0));
        assert!(d.get((1, 0)).is_none(), "the least recently used goes");
        assert_eq!(d.get((0, 0)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 4]);
        assert!(d.get((2, 0)).is_some());
        assert_eq!(d.bytes, 32);
        d.insert((2, 0), t(3.0));
        assert_eq!((d.bytes, d.map.len()), (32, 2));
    }
}
