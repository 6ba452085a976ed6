//! Progress of long work: the library reports it through [`Progress`] — stages, each of some
//! steps — and the command line shows it (a bar, or plain lines in a log); tests and benches
//! pass [`Silent`].

/// Where long work reports how far it is.
pub trait Progress {
    /// A stage named `stage`, of `total` steps, begins.
    fn start(&mut self, stage: &str, total: usize);
    /// `done` of the current stage's steps are done; `best`: in a search, the best fitness
    /// (KL) found so far.
    fn step(&mut self, done: usize, best: Option<f64>);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _stage: &str, _total: usize) {}
    fn step(&mut self, _done: usize, _best: Option<f64>) {}
}
