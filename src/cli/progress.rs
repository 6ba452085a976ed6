//! Progress of long work on stderr: a bar when stderr is a terminal; otherwise (a log file, a
//! pipe, CI) one plain line at a steady pace — stage, done/total, elapsed, estimate — so that a
//! log shows a job that runs for minutes is alive and how far it is.
//!
//! Plain lines start only once a job has run for one interval (short jobs print nothing), then
//! come every interval whether or not the work reported anything, from a ticker thread. The
//! interval is 10 s; `TRIAGE_PROGRESS_SECONDS` sets another (0 turns the lines off).
//!
//! A [`Meter`] is what the command line passes as the library's [`Progress`].

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Progress;

/// What a plain line reports.
struct State {
    what: String,
    message: String,
    done: u64,
    total: u64,
    started: Instant,
    /// When the current stage (length) began: the estimate extrapolates from it.
    stage_started: Instant,
}

impl State {
    fn line(&self) -> String {
        let elapsed = self.started.elapsed();
        let stage = self.stage_started.elapsed().as_secs_f64();
        let eta = if self.done > 0 && self.done < self.total {
            let rest = stage / self.done as f64 * (self.total - self.done) as f64;
            format!(", about {} left", clock(rest))
        } else {
            String::new()
        };
        let pct = (100 * self.done).checked_div(self.total).unwrap_or(0);
        let msg = if self.message.is_empty() { String::new() } else { format!(" {}", self.message) };
        format!(
            "{}{msg}: {}/{} ({pct}%), elapsed {}{eta}",
            self.what,
            self.done,
            self.total,
            clock(elapsed.as_secs_f64())
        )
    }
}

/// `h:mm:ss` or `m:ss`.
fn clock(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

enum Sink {
    Bar(ProgressBar),
    Lines { state: Arc<Mutex<State>>, stop: mpsc::Sender<()>, ticker: Option<JoinHandle<()>> },
    Silent,
}

/// How the stages the work reports show.
#[derive(Clone, Copy)]
enum Stages {
    /// One count over all the stages, each going on from where the one before ended (the
    /// display's length is their sum); the stage is the message when `shown`.
    Joined { shown: bool },
    /// Each stage counted on its own, from zero, and named in the message (with a search's best
    /// fitness).
    Each,
}

/// A progress display for one job; see the module's documentation.
pub struct Meter {
    sink: Sink,
    stages: Stages,
    /// The current stage and its steps.
    stage: String,
    stage_total: usize,
    /// The steps of the stages before the current one (under [`Stages::Joined`]).
    offset: usize,
}

fn interval() -> Option<Duration> {
    match std::env::var("TRIAGE_PROGRESS_SECONDS").ok().and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(s) if s <= 0.0 || !s.is_finite() => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => Some(Duration::from_secs(10)),
    }
}

/// A display of `len` steps, over all the stages the work reports, the stages not named.
pub fn bar(len: usize, what: &str) -> Meter {
    Meter::new(sink(len, what), Stages::Joined { shown: false })
}

/// A display whose count starts again with each stage the work reports, naming it.
pub fn staged(what: &str) -> Meter {
    Meter::new(sink(1, what), Stages::Each)
}

fn sink(len: usize, what: &str) -> Sink {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len as u64);
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {{msg}} (eta {{eta}})"
            ))
            .expect("valid template"),
        );
        return Sink::Bar(pb);
    }
    let Some(every) = interval() else { return Sink::Silent };
    let now = Instant::now();
    let state = Arc::new(Mutex::new(State {
        what: what.to_string(),
        message: String::new(),
        done: 0,
        total: len as u64,
        started: now,
        stage_started: now,
    }));
    let (stop, stopped) = mpsc::channel::<()>();
    let shared = Arc::clone(&state);
    let ticker = std::thread::spawn(move || loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {
                let line = shared.lock().map(|s| s.line()).unwrap_or_default();
                eprintln!("{line}");
            }
            _ => return,
        }
    });
    Sink::Lines { state, stop, ticker: Some(ticker) }
}

impl Meter {
    fn new(sink: Sink, stages: Stages) -> Meter {
        Meter { sink, stages, stage: String::new(), stage_total: 0, offset: 0 }
    }

    /// The stages named in the message, their steps still counted as one (see [`bar`]).
    pub fn naming_stages(mut self) -> Meter {
        self.stages = Stages::Joined { shown: true };
        self
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        if let Sink::Lines { state, .. } = &self.sink {
            if let Ok(mut s) = state.lock() {
                f(&mut s);
            }
        }
    }

    fn set_position(&self, done: u64) {
        match &self.sink {
            Sink::Bar(pb) => pb.set_position(done),
            _ => self.with_state(|s| s.done = done),
        }
    }

    /// Starts a new stage of `total` steps, counted from zero.
    fn set_stage(&self, total: u64) {
        match &self.sink {
            Sink::Bar(pb) => {
                pb.set_length(total);
                pb.reset();
            }
            _ => self.with_state(|s| {
                s.total = total;
                s.done = 0;
                s.stage_started = Instant::now();
            }),
        }
    }

    fn set_message(&self, msg: String) {
        match &self.sink {
            Sink::Bar(pb) => pb.set_message(msg),
            _ => self.with_state(|s| s.message = msg),
        }
    }

    /// Clears the bar, or stops the ticker (printing nothing more).
    pub fn finish_and_clear(self) {
        if let Sink::Bar(pb) = &self.sink {
            pb.finish_and_clear();
        }
    }
}

impl Progress for Meter {
    fn start(&mut self, stage: &str, total: usize) {
        match self.stages {
            Stages::Joined { shown } => {
                self.offset += self.stage_total;
                self.stage_total = total;
                if shown {
                    self.set_message(stage.to_string());
                }
            }
            Stages::Each => {
                // A stage reported again under its name goes on with its count.
                if stage != self.stage {
                    self.set_stage(total as u64);
                }
                self.set_message(stage.to_string());
            }
        }
        self.stage = stage.to_string();
    }

    fn step(&mut self, done: usize, best: Option<f64>) {
        match self.stages {
            Stages::Joined { .. } => self.set_position((self.offset + done) as u64),
            Stages::Each => {
                self.set_position(done as u64);
                match best {
                    Some(f) => self.set_message(format!("{}: best KL {f:.5}", self.stage)),
                    None => self.set_message(self.stage.clone()),
                }
            }
        }
    }
}

impl Drop for Meter {
    /// Stops the ticker when the job ends, also by an error.
    fn drop(&mut self) {
        if let Sink::Lines { stop, ticker, .. } = &mut self.sink {
            let _ = stop.send(());
            if let Some(t) = ticker.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_names_stage_count_elapsed_and_estimate() {
        let t = Instant::now() - Duration::from_secs(125);
        let s =
            State { what: "plan".into(), message: "database".into(), done: 5, total: 30, started: t, stage_started: t };
        // 125 s for 5 steps: 25 s a step, 25 steps left.
        assert_eq!(s.line(), "plan database: 5/30 (16%), elapsed 2:05, about 10:25 left");
        assert_eq!(clock(3725.0), "1:02:05");
    }

    /// A meter writing plain lines, without its ticker: its line read at will.
    fn lines(len: u64, stages: Stages) -> Meter {
        let now = Instant::now();
        let state = Arc::new(Mutex::new(State {
            what: "job".into(),
            message: String::new(),
            done: 0,
            total: len,
            started: now,
            stage_started: now,
        }));
        Meter::new(Sink::Lines { state, stop: mpsc::channel().0, ticker: None }, stages)
    }

    fn shown(m: &Meter) -> (String, u64, u64) {
        let Sink::Lines { state, .. } = &m.sink else { unreachable!() };
        let s = state.lock().unwrap();
        (s.message.clone(), s.done, s.total)
    }

    #[test]
    fn joined_stages_count_on_and_each_stage_counts_from_zero() {
        let mut m = lines(10, Stages::Joined { shown: false });
        m.start("a", 4);
        m.step(4, None);
        m.start("b", 6);
        m.step(2, None);
        assert_eq!(shown(&m), (String::new(), 6, 10));
        let mut m = lines(10, Stages::Joined { shown: true });
        m.start("a", 4);
        m.start("b", 6);
        m.step(1, None);
        assert_eq!(shown(&m), ("b".into(), 5, 10));
        let mut m = lines(1, Stages::Each);
        m.start("search", 30);
        m.step(3, Some(0.125));
        assert_eq!(shown(&m), ("search: best KL 0.12500".into(), 3, 30));
        m.start("frontier", 8);
        m.step(2, None);
        assert_eq!(shown(&m), ("frontier".into(), 2, 8));
    }
}
