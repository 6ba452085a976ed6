//! A fuzzing harness for every loader and parser: valid files (the test fixtures and files made
//! by our own writers) are damaged by seeded mutations ([`mutate`]) and fed to the parser of
//! their family. Every case must end in `Ok` or in an `Err` with a message; a panic is caught,
//! counted and reported with its case index, which reproduces it alone (`run_family` with
//! `start` = the index and one case). An abort (a failed allocation) ends the process. The
//! caches' families also compare what loads with what was saved: damage read back as other
//! data ([`Loaded::Damaged`]) is a failure as a panic is, for `triage plan` would have planned
//! with it.
//!
//! `tests/fuzz.rs` runs a few thousand cases per family; `examples/fuzz.rs` runs millions.

mod cli;
mod families;
pub mod mutate;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use rayon::prelude::*;

pub use families::families;
use mutate::{Rng, Seed};

/// A parser under test: the bytes of one (damaged) file of seed `seed` → what it loaded, or an
/// error message.
pub type Check = Box<dyn Fn(usize, &[u8]) -> Result<Loaded, String> + Send + Sync>;

/// What a parser made of an input it did not refuse.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// Read as what it holds: the seed itself, or damage that changes nothing that is read.
    Valid,
    /// Read as valid, though it holds other data than its seed (what differs): damage that a
    /// checksummed cache's loader let through.
    Damaged(String),
}

/// A check's result for a parser that returned `_` without refusing: [`Loaded::Valid`].
pub fn valid<T>(_: T) -> Loaded {
    Loaded::Valid
}

/// Inputs of one kind and the parser they are fed to.
pub struct Family {
    pub name: &'static str,
    pub seeds: Vec<Seed>,
    /// Makes the input of a case from its seed file; [`mutate::mutate`] for most families.
    pub input: fn(&Seed, &mut Rng) -> Vec<u8>,
    pub check: Check,
}

/// What happened to one case that failed: its panic, or the damage it loaded as valid.
#[derive(Debug, Clone)]
pub struct Panic {
    pub case: u64,
    pub seed_file: String,
    pub message: String,
}

/// The outcome of a run of one family.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub cases: u64,
    pub ok: u64,
    pub err: u64,
    pub panics: Vec<Panic>,
    /// Cases whose damage loaded as valid data ([`Loaded::Damaged`]).
    pub undetected: Vec<Panic>,
    /// Errors with an empty message (each must say what is wrong).
    pub silent_errors: u64,
    pub seconds: f64,
}

/// The generator of case `case` of a run seeded `seed`: independent of the order cases run in.
pub fn case_rng(seed: u64, family: &str, case: u64) -> Rng {
    let tag = family.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut r = Rng::new(seed ^ tag ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.next_u64();
    r
}

impl Tally {
    /// The tally of two runs together.
    pub fn merge(mut self, other: Tally) -> Tally {
        self.cases += other.cases;
        self.seconds += other.seconds;
        self.ok += other.ok;
        self.err += other.err;
        self.silent_errors += other.silent_errors;
        self.panics.extend(other.panics);
        self.undetected.extend(other.undetected);
        self
    }
}

thread_local! {
    /// Where the last panic on this thread happened, recorded by the run's panic hook.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs one case: its input made from one seed file, fed to the family's parser.
fn run_case(family: &Family, seed: u64, case: u64) -> Tally {
    let mut rng = case_rng(seed, family.name, case);
    let s = rng.below(family.seeds.len());
    let bytes = (family.input)(&family.seeds[s], &mut rng);
    let mut tally = Tally { cases: 1, ..Tally::default() };
    match panic::catch_unwind(AssertUnwindSafe(|| (family.check)(s, &bytes))) {
        Ok(Ok(Loaded::Valid)) => tally.ok = 1,
        Ok(Ok(Loaded::Damaged(what))) => {
            tally.undetected.push(Panic { case, seed_file: family.seeds[s].name.clone(), message: what })
        }
        Ok(Err(m)) => {
            tally.err = 1;
            tally.silent_errors = m.trim().is_empty() as u64;
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let message = match PANIC_AT.with(|at| at.borrow_mut().take()) {
                Some(at) => format!("{what} (at {at})"),
                None => what,
            };
            tally.panics.push(Panic { case, seed_file: family.seeds[s].name.clone(), message });
        }
    }
    tally
}

/// Runs cases `start..start + cases` of `family`, in parallel, with panics caught and counted:
/// for the run, the panic hook records where a panic happened instead of printing it.
pub fn run_family(family: &Family, cases: u64, seed: u64, start: u64) -> Tally {
    let t0 = Instant::now();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_AT.with(|cell| *cell.borrow_mut() = at);
    }));
    let mut tally = (start..start + cases)
        .into_par_iter()
        .map(|case| run_case(family, seed, case))
        .reduce(Tally::default, Tally::merge);
    panic::set_hook(hook);
    tally.panics.sort_by_key(|p| p.case);
    tally.undetected.sort_by_key(|p| p.case);
    tally.seconds = t0.elapsed().as_secs_f64();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_counted_and_located() {
        let family = Family {
            name: "test",
            seeds: vec![Seed::new("x", vec![1, 2, 3], mutate::Layout::Raw)],
            input: mutate::mutate,
            check: Box::new(|_, b| match b.len() {
                4.. => panic!("too long: {}", b.len()),
                3 if b != [1, 2, 3] => Ok(Loaded::Damaged(format!("{b:?}"))),
                _ => Ok(Loaded::Valid),
            }),
        };
        let t = run_family(&family, 200, 1, 0);
        assert_eq!(t.cases, 200);
        assert_eq!(t.ok + t.err + t.panics.len() as u64 + t.undetected.len() as u64, 200);
        assert!(!t.undetected.is_empty(), "{t:?}");
        assert!(!t.panics.is_empty() && t.ok > 0, "{t:?}");
        let p = &t.panics[0];
        assert!(p.message.starts_with("too long: ") && p.message.contains("src/fuzz/mod.rs:"), "{}", p.message);
        // The case reproduces alone.
        assert_eq!(run_family(&family, 1, 1, p.case).panics.len(), 1);
    }
}
