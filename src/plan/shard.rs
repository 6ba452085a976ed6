//! Shards: a quantization plan's layer database and sensitivities split over independent
//! processes — a Slurm job array's tasks, a Kubernetes Indexed Job's pods, or a shell loop —
//! that share only the cache folder.
//!
//! `--shard prepare` runs the calibration windows through the model once and saves the state
//! entering every block (`STATES`); `--shard I/N` builds the database's units that index I of N
//! owns (whole blocks, and the token embedding or output matrix) into the database's partial
//! folder, starting from the saved state of its first block, measures its tensors'
//! sensitivities, and leaves a mark (`done-I-of-N.json`); the final run (no `--shard`) finds
//! every shard's mark, takes their blocks and sensitivities as its own interrupted build's, and
//! solves. Each unit is written atomically under a content-addressed name, so a shard killed
//! midway and run again redoes only what it had not saved, and any machine can finish another's.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::database::{self, Database, Kind};
use super::fitness::Probe;
use super::{digest, sensitivity, setup, PlanError, PlanOptions, Setup, Solver};
use crate::calib::Windows;
use crate::model::tensor_id::gguf_block;
use crate::model::{Blocks, Weights};
use crate::progress::Progress;

/// What one run of a sharded plan does (`--shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shard {
    /// Save the calibration states entering every block.
    Prepare,
    /// Build the units index `index` of `count` owns.
    Part { index: usize, count: usize },
}

/// The environment variables an index is read from by `--shard auto/N`, in order: Slurm's job
/// array and Kubernetes' Indexed Job.
pub const INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

impl Shard {
    /// `prepare`, `I/N` or `auto/N` (I from [`INDEX_VARIABLES`], read through `var`).
    pub fn parse(s: &str, var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        if s == "prepare" {
            return Ok(Shard::Prepare);
        }
        let Some((i, n)) = s.split_once('/') else {
            return Err(format!("'{s}' is not a shard: give prepare, I/N (0 ≤ I < N) or auto/N"));
        };
        let count: usize = n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("'{n}' in '{s}' is not a shard count of at least 1"))?;
        let index = if i == "auto" {
            let (name, value) = INDEX_VARIABLES
                .iter()
                .find_map(|v| var(v).filter(|x| !x.is_empty()).map(|x| (*v, x)))
                .ok_or_else(|| {
                    format!(
                        "--shard auto/{count} reads the index from {}, and neither is set",
                        INDEX_VARIABLES.join(" or ")
                    )
                })?;
            value.trim().parse::<usize>().map_err(|_| format!("{name}={value} is not a shard index"))?
        } else {
            i.parse::<usize>().map_err(|_| format!("'{i}' in '{s}' is not a shard index"))?
        };
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count} (indexes run from 0; a Slurm array is --array=0-{})",
                count - 1
            ));
        }
        Ok(Shard::Part { index, count })
    }
}

/// What a shard builds: whole blocks and matrices outside the blocks, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub blocks: std::collections::BTreeSet<usize>,
    pub matrices: std::collections::BTreeSet<String>,
}

impl Owned {
    /// Whether the database tensor `name` is this shard's.
    pub fn has(&self, name: &str) -> bool {
        match gguf_block(name) {
            Some(b) => self.blocks.contains(&b),
            None => self.matrices.contains(name),
        }
    }
}

/// The units of a database of `tensors` (name → rows, cols) that shard `index` of `count` owns:
/// the blocks in order, then the matrices outside them in name order, cut into `count`
/// contiguous runs of about equal weights (a unit goes to the shard its middle weight falls in).
pub fn owned(tensors: &BTreeMap<String, (usize, usize)>, n_blocks: usize, index: usize, count: usize) -> Owned {
    let mut weights: Vec<(Option<usize>, Option<&str>, usize)> = (0..n_blocks).map(|b| (Some(b), None, 0)).collect();
    for (name, &(r, c)) in tensors {
        match gguf_block(name) {
            Some(b) => weights[b].2 += r * c,
            None => weights.push((None, Some(name), r * c)),
        }
    }
    let total: usize = weights.iter().map(|w| w.2).sum::<usize>().max(1);
    let mut owned = Owned::default();
    let mut before = 0usize;
    for (block, matrix, w) in weights {
        // The shard of the unit's middle weight: ⌊(before + w/2)·count / total⌋ in integers.
        let shard = ((2 * before + w) * count / (2 * total)).min(count - 1);
        before += w;
        if shard != index {
            continue;
        }
        match (block, matrix) {
            (Some(b), _) => {
                owned.blocks.insert(b);
            }
            (_, Some(m)) => {
                owned.matrices.insert(m.to_string());
            }
            _ => unreachable!("a unit is a block or a matrix"),
        }
    }
    owned
}

/// The folder a sharded plan shares for the database of `key` in the cache folder `cache`.
pub fn folder(cache: &Path, key: &str) -> PathBuf {
    cache.join(format!("database-{key}.shards"))
}

/// Where `--shard prepare` saves the states entering every block.
pub const STATES: &str = "states";

fn mark(dir: &Path, index: usize, count: usize) -> PathBuf {
    dir.join(format!("done-{index}-of-{count}.json"))
}

/// Marks shard `index` of `count` done, with what it built and how long it took.
pub fn mark_done(dir: &Path, index: usize, count: usize, report: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).expect("a report serializes");
    crate::temp::write_atomic(&mark(dir, index, count), |w| w.write_all(text.as_bytes()))
}

/// The shard count N whose every index has left its mark in `dir` (the largest, if several).
pub fn complete_count(dir: &Path) -> Option<usize> {
    done_marks(dir).into_iter().filter(|(n, d)| d.len() == *n).map(|(n, _)| n).max()
}

/// The indexes marked done in `dir`, by count.
fn done_marks(dir: &Path) -> BTreeMap<usize, std::collections::BTreeSet<usize>> {
    let mut done: BTreeMap<usize, std::collections::BTreeSet<usize>> = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let parsed = name
            .strip_prefix("done-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|r| r.split_once("-of-"))
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
        if let Some((i, n)) = parsed.filter(|(i, n)| i < n) {
            done.entry(n).or_default().insert(i);
        }
    }
    done
}

/// Why the shards in `dir` are not all done (None: some count N has every index's mark): the
/// indexes missing, for each count a shard ran with.
pub fn missing(dir: &Path) -> Option<String> {
    let done = done_marks(dir);
    if done.iter().any(|(&n, d)| d.len() == n) {
        return None;
    }
    if done.is_empty() {
        return Some(format!(
            "no shard prepared in {} is done: run --shard I/N for every index I of your count N, then this again (or remove that folder to build here)",
            dir.display()
        ));
    }
    let why: Vec<String> = done
        .iter()
        .map(|(&n, d)| {
            let left: Vec<String> = (0..n).filter(|i| !d.contains(i)).map(|i| format!("{i}/{n}")).collect();
            format!("{} of {n} not done ({})", left.len(), left.join(", "))
        })
        .collect();
    Some(format!(
        "the shards in {} are not all done: {}; run them with --shard I/N, then this again (or remove that folder to build here)",
        dir.display(),
        why.join("; ")
    ))
}

/// Warns when the cache folder `cache` holds shards' folders other than `ours`: shards run with
/// other arguments (another --tokens, --types, …) make another database, which this run, not
/// finding its own, then builds alone.
pub fn warn_of_others(cache: &Path, ours: &Path) {
    let others: Vec<PathBuf> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.to_string_lossy().ends_with(".shards") && p != ours)
        .collect();
    if let Some(first) = others.first() {
        eprintln!(
            "warning: {} shards' folder(s) in {} (e.g. {}) are for other arguments than this run's; it builds its layer database alone (give every step the same arguments to use them)",
            others.len(),
            cache.display(),
            first.file_name().unwrap_or_default().to_string_lossy()
        );
    }
}

/// The file of the state entering block `i`.
pub fn state_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(STATES).join(format!("block-{i}.f32"))
}

/// Saves `states` (every batch's, in f32) at `path`: per batch its rank, dims and values, then
/// the CRC32 of everything before it (all little-endian).
pub fn save_states(path: &Path, states: &[Tensor]) -> crate::model::Result<()> {
    let mut bytes = Vec::new();
    bytes.extend((states.len() as u32).to_le_bytes());
    for t in states {
        bytes.extend((t.rank() as u32).to_le_bytes());
        bytes.extend(t.dims().iter().flat_map(|&d| (d as u64).to_le_bytes()));
        bytes.extend(t.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()));
    }
    bytes.extend(crc32fast::hash(&bytes).to_le_bytes());
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|error| io_error(path, error))?;
    }
    crate::temp::write_atomic(path, |w| w.write_all(&bytes)).map_err(|error| io_error(path, error))
}

/// The states [`save_states`] wrote at `path`; Err(why) when the file is missing, short or
/// damaged.
pub fn load_states(path: &Path) -> Result<Vec<Tensor>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| e.to_string())?;
    let damaged = || "it is damaged (its checksum does not match)".to_string();
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4).ok_or_else(damaged)?).ok_or_else(damaged)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(damaged());
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = at.checked_add(n).filter(|&e| e <= body.len());
        let s = end.map(|e| &body[at..e]).ok_or_else(|| "it is shorter than its header says".to_string())?;
        at += n;
        Ok(s)
    };
    let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        let rank = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let dims: Vec<usize> = (0..rank)
            .map(|_| take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize))
            .collect::<Result<_, _>>()?;
        let count = dims.iter().try_fold(4usize, |n, &d| n.checked_mul(d)).ok_or("its dims overflow")? / 4;
        let v: Vec<f32> =
            take(4 * count)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
        states.push(Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).map_err(|e| e.to_string())?);
    }
    Ok(states)
}

fn io_error(path: &Path, error: std::io::Error) -> crate::model::ModelError {
    crate::model::ModelError::Io { path: path.to_path_buf(), error }
}

/// The file of shard `index` of `count`'s sensitivities, for the cache file `name`.
pub fn sensitivity_part(dir: &Path, name: &str, index: usize, count: usize) -> PathBuf {
    dir.join(format!("{}.{index}-of-{count}.json", name.trim_end_matches(".json")))
}

/// Joins the sensitivities of a complete set of shards in `dir` into the cache file `cache`
/// for `db`, where every shard measured its own (by the same method, on the same windows); a
/// part missing or not matching says so and leaves them to be measured here.
pub fn merge_sensitivities(dir: &Path, cache: &Path, db: &Database) {
    let Some(count) = complete_count(dir) else { return };
    let name = cache.file_name().expect("a file name").to_string_lossy();
    let mut all = BTreeMap::new();
    for i in 0..count {
        let part = sensitivity_part(dir, &name, i, count);
        match sensitivity::read(&part) {
            Ok(m) => all.extend(m),
            Err(why) => {
                eprintln!(
                    "warning: shard {i}/{count}'s sensitivities {} are not used ({why}); measuring them all here",
                    part.display()
                );
                return;
            }
        }
    }
    if !all.keys().eq(db.tensors.keys()) {
        eprintln!(
            "warning: the shards measured {} sensitivities for a database of {}; measuring them all here",
            all.len(),
            db.tensors.len()
        );
        return;
    }
    let dkl: Vec<f64> = all.into_values().collect();
    if let Err(e) = sensitivity::save(cache, db, &dkl) {
        eprintln!("warning: could not save the shards' sensitivities at {}: {e}", cache.display());
    }
}

/// Runs `shard` of the plan `opts` of `model` (opened from `model_path`) on calibration
/// `windows`, in the cache folder: `prepare` saves the states entering every block; `I/N`
/// builds its units of the layer database and measures their sensitivities (when the solver
/// uses them), then marks itself done. Returns a line saying what it did.
pub fn run(
    model: Weights,
    model_path: &Path,
    windows: &Windows,
    opts: &PlanOptions,
    shard: Shard,
    progress: &mut dyn Progress,
) -> Result<String, PlanError> {
    let t0 = Instant::now();
    let Setup { kind, sp, .. } = setup(&model, windows, opts)?;
    let Some(kind) = kind else {
        return Err(PlanError::Budget(format!(
            "--shard splits the layer database of quantization budgets (bpw=, size=, kld<=) and of sparsity= with evo; budget {} builds none",
            opts.budget
        )));
    };
    let Some(cache) = &opts.cache_dir else {
        return Err(PlanError::Budget(
            "--shard shares its work through the cache folder (--cache); it cannot go with --no-cache".into(),
        ));
    };
    let inputs = digest::inputs_digest(model_path, &windows.source_digest(), Some(cache))?;
    let key = database::cache_key(&inputs, &opts.database, kind);
    let dir = folder(cache, &key);
    let n = model.n_blocks();
    let (index, count) = match shard {
        Shard::Prepare => {
            database::prepare_states(&model, &sp.database, &opts.database, &dir, progress)?;
            return Ok(format!(
                "prepared the states entering {n} blocks in {} ({:.0} s); now run --shard I/N for I = 0 … N−1",
                dir.join(STATES).display(),
                t0.elapsed().as_secs_f64()
            ));
        }
        Shard::Part { index, count } => (index, count),
    };
    if !state_path(&dir, 0).exists() {
        return Err(PlanError::Budget(format!(
            "no prepared states in {}: run this plan with --shard prepare first (once, before the shards)",
            dir.display()
        )));
    }
    let all = database::database_tensors(model.config(), kind, opts.database.menu());
    let owned = owned(&all, n, index, count);
    let db = database::build_shard(&model, &sp.database, &opts.database, kind, key, cache, &dir, &owned, progress)?;
    let database_s = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    let measures = kind == Kind::Types && opts.solver != Solver::Uniform && !db.tensors.is_empty();
    if measures {
        let windows: Vec<usize> = (0..opts.sensitivity_windows.max(1).min(sp.n_search)).collect();
        let part =
            sensitivity_part(&dir, &sensitivity::cache_name(opts.sensitivity, &db.key, windows.len()), index, count);
        // A run of this index that finished before measured them already.
        let measured = sensitivity::read(&part).is_ok_and(|m| m.keys().eq(db.tensors.keys()));
        if !measured {
            let probe = Probe::new(&model, &sp.probe[..sp.n_search], progress)?;
            let dkl = sensitivity::measure(&model, &db, &probe, &windows, opts.sensitivity, progress)?;
            sensitivity::save(&part, &db, &dkl)?;
        }
    }
    let sensitivity_s = t.elapsed().as_secs_f64();
    let units: Vec<String> =
        owned.blocks.iter().map(|b| format!("blk.{b}")).chain(owned.matrices.iter().cloned()).collect();
    let report = serde_json::json!({
        "shard": format!("{index}/{count}"),
        "units": units,
        "tensors": db.tensors.len(),
        "weights": db.tensors.values().map(|tv| tv.rows * tv.cols).sum::<usize>(),
        "timings": {"database_s": database_s, "sensitivity_s": sensitivity_s, "total_s": t0.elapsed().as_secs_f64()},
    });
    mark_done(&dir, index, count, &report)?;
    let what = match (owned.blocks.first(), owned.blocks.last()) {
        (Some(a), Some(b)) if a == b => format!("block {a}"),
        (Some(a), Some(b)) => format!("blocks {a}–{b}"),
        _ => "no block".to_string(),
    };
    let matrices = owned.matrices.iter().map(|m| format!(" and {m}")).collect::<String>();
    let sens = if measures { format!(", their sensitivities in {sensitivity_s:.0} s") } else { String::new() };
    Ok(format!(
        "shard {index}/{count}: {what}{matrices} ({} tensors) in {database_s:.0} s{sens}; marked done in {}",
        db.tensors.len(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for test `tag`.
    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("triage-shard-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn shards_parse_and_refuse_in_one_line() {
        let none = |_: &str| None;
        assert_eq!(Shard::parse("prepare", none), Ok(Shard::Prepare));
        assert_eq!(Shard::parse("2/7", none), Ok(Shard::Part { index: 2, count: 7 }));
        let slurm = |v: &str| (v == "SLURM_ARRAY_TASK_ID").then(|| "3".to_string());
        assert_eq!(Shard::parse("auto/4", slurm), Ok(Shard::Part { index: 3, count: 4 }));
        let k8s = |v: &str| (v == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert_eq!(Shard::parse("auto/2", k8s), Ok(Shard::Part { index: 0, count: 2 }));
        for (bad, says) in [
            ("7/7", "not below the count 7"),
            ("1/0", "not a shard count"),
            ("x/3", "not a shard index"),
            ("3", "not a shard"),
            ("auto/3", "neither is set"),
        ] {
            let e = Shard::parse(bad, none).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(Shard::parse("auto/4", |_| Some("4".into())).unwrap_err().contains("not below"));
    }

    /// Every unit goes to exactly one shard, in contiguous runs, and the shards' weights are
    /// about equal.
    #[test]
    fn shards_own_every_unit_once_in_balanced_runs() {
        let mut tensors = BTreeMap::new();
        for b in 0..30 {
            tensors.insert(format!("blk.{b}.attn_q.weight"), (576, 576));
            tensors.insert(format!("blk.{b}.ffn_down.weight"), (576, 1536));
        }
        tensors.insert("token_embd.weight".to_string(), (49152, 576));
        for count in [1, 2, 4, 7, 40] {
            let shards: Vec<Owned> = (0..count).map(|i| owned(&tensors, 30, i, count)).collect();
            for name in tensors.keys() {
                assert_eq!(shards.iter().filter(|o| o.has(name)).count(), 1, "{name} of {count}");
            }
            let mut last = None;
            for o in &shards {
                if let (Some(&first), Some(l)) = (o.blocks.first(), last) {
                    assert!(first > l, "contiguous");
                }
                last = o.blocks.last().copied().or(last);
                assert_eq!(o.blocks.len(), o.blocks.last().map_or(0, |l| l + 1 - o.blocks.first().unwrap()));
            }
        }
        // 2 shards: the embedding (28 M of 84 M weights) and the last blocks to one, the rest to the other.
        let two = owned(&tensors, 30, 1, 2);
        assert!(two.matrices.contains("token_embd.weight"));
        assert!(!two.blocks.is_empty() && two.blocks.len() < 15);
    }

    #[test]
    fn states_read_back_exactly_and_damage_is_named() {
        let dir = scratch("states");
        let p = dir.join("s/block-3.f32");
        let a = Tensor::from_vec((0..24).map(|x| x as f32 * 0.37 - 1.0).collect::<Vec<_>>(), (2, 3, 4), &Device::Cpu)
            .unwrap();
        let b = Tensor::from_vec(vec![f32::MIN_POSITIVE, -0.0, 7.5], (1, 1, 3), &Device::Cpu).unwrap();
        save_states(&p, &[a.clone(), b.clone()]).unwrap();
        let back = load_states(&p).unwrap();
        for (x, y) in [a, b].iter().zip(&back) {
            assert_eq!(x.dims(), y.dims());
            let (x, y) = (
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(load_states(&p).unwrap_err().contains("damaged"));
        std::fs::write(&p, [1u8, 2]).unwrap();
        assert!(load_states(&p).unwrap_err().contains("damaged"));
        assert!(load_states(&dir.join("none")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_shards_are_named() {
        let dir = scratch("marks");
        assert!(missing(&dir).unwrap().contains("no shard prepared in"));
        mark_done(&dir, 0, 3, &serde_json::json!({})).unwrap();
        mark_done(&dir, 2, 3, &serde_json::json!({})).unwrap();
        let why = missing(&dir).unwrap();
        assert!(why.contains("1 of 3 not done (1/3)"), "{why}");
        assert_eq!(complete_count(&dir), None);
        mark_done(&dir, 1, 3, &serde_json::json!({})).unwrap();
        assert_eq!(missing(&dir), None);
        assert_eq!(complete_count(&dir), Some(3));
        std::fs::remove_dir_all(&dir).ok();
    }
}
