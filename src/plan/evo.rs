//! EvoPress (Sieberling et al., "EvoPress: Towards Optimal Dynamic Model Compression via
//! Evolutionary Search"): a (1 + λ) evolutionary search over genomes — a level per tensor, or a
//! set of removed blocks — with fitness KL(original ‖ candidate) on calibration windows and
//! selection in stages: every offspring is scored on a small fresh minibatch, the best few (with
//! the parent re-entered) on a larger fresh one, and the winner becomes the next parent.
//!
//! Scaled for a 2-core machine: the paper's quantization search used 128 → 16 → 4 → 1
//! candidates at 2k → 16k → 131k tokens on GPUs; our defaults (`EvoSettings::default`) use
//! 6 offspring on one 512-token window, then 2 survivors and the parent on two more. Offspring
//! run only from the first block where they differ from the parent, on the parent's states,
//! which are computed once per parent and window (a parent often survives many generations)
//! and wait in a spill file: a new parent brings its states on the final stage's windows, and
//! on the windows its own parent knew it runs only from the first block where the two differ.

use std::path::PathBuf;

use crate::model::{BlockOpts, Model, Result};
use crate::progress::Progress;
use crate::stats::Rng;

use super::fitness::{Probe, States};
use super::removal::Removal;

#[derive(Debug, Clone, serde::Serialize)]
pub struct EvoSettings {
    pub generations: usize,
    pub offspring: usize,
    pub survivors: usize,
    /// Windows per selection stage: (first stage, final stage).
    pub stage_windows: (usize, usize),
    pub seed: u64,
}

impl Default for EvoSettings {
    fn default() -> Self {
        EvoSettings { generations: 30, offspring: 6, survivors: 2, stage_windows: (1, 2), seed: 0 }
    }
}

/// A genome made runnable: the model with its variants swapped in and the blocks or
/// sublayers it removes.
pub struct Candidate {
    pub model: Model,
    pub removal: Removal,
}

impl Candidate {
    pub fn layout(&self) -> impl Fn(usize) -> Option<BlockOpts> + '_ {
        |i| self.removal.layout(i)
    }
}

/// What the search needs to know about a genome type.
pub trait Genome: Clone + PartialEq {
    /// A budget-preserving random change.
    fn mutate(&self, rng: &mut Rng) -> Self;
    /// The runnable candidate.
    fn realize(&self) -> Result<Candidate>;
    /// The runnable candidate of `self`, a child of `parent` whose candidate is `parent_c`:
    /// the same model as [`Genome::realize`], made by changing the parent's where that is cheaper.
    fn realize_child(&self, _parent: &Self, _parent_c: &Candidate) -> Result<Candidate> {
        self.realize()
    }
    /// The first block whose computation differs between two genomes (0: the embedding; the
    /// block count: only the head).
    fn first_change(&self, other: &Self) -> usize;
    /// The genome as numbers (levels per tensor, or removed units), for the saved state.
    fn genes(&self) -> Vec<usize>;
    /// A genome of the same space as `self` from [`Genome::genes`]; None when they cannot be
    /// one (another length, a level or unit out of range, another budget).
    fn with_genes(&self, genes: &[usize]) -> Option<Self>;
}

/// The search's state after a generation: enough to continue exactly where it stopped. Saved
/// sealed with its sha256 ([`super::sealed`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchState {
    /// Generations done.
    pub generation: usize,
    /// The random generator's state.
    pub rng: u64,
    /// The parent's genes ([`Genome::genes`]).
    pub parent: Vec<usize>,
    /// The parent's fitness on its final-stage windows.
    pub parent_fit: f64,
}

/// Where the search saves its state after every generation (atomically), and whether a run
/// continues from the state found there. A state that cannot be trusted (unreadable, damaged,
/// of another search) is not continued: the run warns and searches from the start, as a run
/// without --resume does — all that a user could do about it.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub resume: bool,
}

impl Checkpoint {
    /// The saved state when resuming (None when there is none, or with a warning when it cannot
    /// be trusted); without `resume`, a note that an unfinished search of `generations` could
    /// be continued.
    fn load(&self, generations: usize) -> Option<SearchState> {
        if !self.path.exists() {
            return None;
        }
        let read = std::fs::read_to_string(&self.path).map_err(|e| e.to_string()).and_then(|t| parse_state(&t));
        if self.resume {
            return read.map_err(|why| self.not_resumed(&why)).ok();
        }
        if read.is_ok_and(|s| s.generation < generations) {
            eprintln!(
                "note: {} holds an interrupted search with these settings; --resume continues it",
                self.path.display()
            );
        }
        None
    }

    /// The saved search's parent, generator, fitness and generations done, when resuming.
    fn resume<G: Genome>(&self, start: &G, generations: usize) -> Option<(G, Rng, f64, usize)> {
        let state = self.load(generations)?;
        let Some(parent) = start.with_genes(&state.parent) else {
            self.not_resumed("its parent is not a genome of this search: it was saved by a search of another space");
            return None;
        };
        Some((parent, Rng::new(state.rng), state.parent_fit, state.generation.min(generations)))
    }

    /// Says that the saved state is not continued, and `why`.
    fn not_resumed(&self, why: &str) {
        eprintln!("warning: --resume: the saved search {} is not continued ({why}); searching from the start, as a run without --resume does", self.path.display());
    }

    fn save(&self, s: &SearchState) {
        let text = super::sealed::seal(s);
        if let Err(e) = crate::temp::write_atomic(&self.path, |w| std::io::Write::write_all(w, text.as_bytes())) {
            eprintln!("warning: could not save the search's state at {}: {e}", self.path.display());
        }
    }
}

/// Runs the search from `start`; windows are drawn from `pool` (indices into `probe`).
/// A step of `progress`'s stage "search" (of generations) after every generation, with the best
/// fitness. With a `checkpoint`, the state is saved after every generation, and a resumed run
/// continues from the saved one: the same result as a run that was never stopped. Returns the last parent and its fitness on its
/// final-stage windows.
pub fn evolve<G: Genome>(
    probe: &Probe,
    pool: &[usize],
    start: G,
    s: &EvoSettings,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn Progress,
) -> Result<(G, f64)> {
    progress.start("search", s.generations);
    let mut rng = Rng::new(s.seed);
    let mut parent = start;
    let mut parent_fit = f64::INFINITY;
    let mut first = 0;
    let resumed = checkpoint.and_then(|c| c.resume(&parent, s.generations));
    if let Some(r) = resumed {
        (parent, rng, parent_fit, first) = r;
        eprintln!("resuming the search after generation {first} of {}", s.generations);
        progress.step(first, Some(parent_fit));
    }
    let mut parent_c = parent.realize()?;
    // The parent's states on the windows it has run on, until a child replaces it; then the
    // child's on the final stage's windows (kept while it was scored), and those of its
    // parent (the ancestor) from which it runs only from its first changed block.
    let mut parent_states = States::new(probe)?;
    let mut ancestor: Option<(States, usize)> = None;
    for g in first..s.generations {
        let stage1 = sample(&mut rng, pool, s.stage_windows.0);
        parent_states.ensure(
            probe,
            &parent_c.model,
            &parent_c.layout(),
            &stage1,
            ancestor.as_ref().map(|(a, f)| (a, *f)),
        )?;
        let mut scored: Vec<(f64, G)> = Vec::with_capacity(s.offspring);
        for _ in 0..s.offspring {
            let child = parent.mutate(&mut rng);
            if child == parent || scored.iter().any(|(_, c)| *c == child) {
                continue;
            }
            let c = child.realize_child(&parent, &parent_c)?;
            let from = child.first_change(&parent);
            let f = probe.kl(&c.model, &stage1, from, &c.layout(), Some(&parent_states))?;
            scored.push((f, child));
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        scored.truncate(s.survivors);
        let stage2 = sample(&mut rng, pool, s.stage_windows.1);
        parent_states.ensure(
            probe,
            &parent_c.model,
            &parent_c.layout(),
            &stage2,
            ancestor.as_ref().map(|(a, f)| (a, *f)),
        )?;
        // The parent is re-entered: its fitness on the final stage costs only the head.
        let n = parent_c.model.blocks.len();
        let mut best_fit = probe.kl(&parent_c.model, &stage2, n, &parent_c.layout(), Some(&parent_states))?;
        let mut best: Option<(G, Candidate, States, usize)> = None;
        for (_, child) in scored {
            let c = child.realize_child(&parent, &parent_c)?;
            let from = child.first_change(&parent);
            let mut states = States::new(probe)?;
            let f = probe.kl_recorded(&c.model, &stage2, from, &c.layout(), &parent_states, &mut states)?;
            if f < best_fit {
                best_fit = f;
                best = Some((child, c, states, from));
            }
        }
        if let Some((child, c, states, from)) = best {
            parent = child;
            parent_c = c;
            ancestor = Some((std::mem::replace(&mut parent_states, states), from));
        }
        parent_fit = best_fit;
        if let Some(c) = checkpoint {
            c.save(&SearchState { generation: g + 1, rng: rng.state(), parent: parent.genes(), parent_fit });
            crate::failpoint::hit("search-generation", g + 1);
        }
        progress.step(g + 1, Some(parent_fit));
    }
    Ok((parent, parent_fit))
}

/// A saved search state from its file's text: sealed with its sha256, else Err(why).
pub fn parse_state(text: &str) -> std::result::Result<SearchState, String> {
    super::sealed::open(text)
}

/// `k` distinct windows from `pool` (all of them when it has no more).
fn sample(rng: &mut Rng, pool: &[usize], k: usize) -> Vec<usize> {
    let mut p = pool.to_vec();
    for i in 0..k.min(p.len()) {
        let j = i + rng.below(p.len() - i);
        p.swap(i, j);
    }
    p.truncate(k.min(pool.len()));
    p
}
