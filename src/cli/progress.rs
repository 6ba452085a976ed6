//! Progress of long work on stderr: a bar when stderr is a terminal; otherwise (a log file, a
//! pipe, CI) one plain line at a steady pace — stage, done/total, elapsed, estimate — so that a
//! log shows a job that runs for minutes is alive and how far it is.
//!
//! Plain lines start only once a job has run for one interval (short jobs print nothing), then
//! come every interval whether or not the work reported anything, from a ticker thread. The
//! interval is 10 s; `TRIAGE_PROGRESS_SECONDS` sets another (0 turns the lines off).

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

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
        format!("{}{msg}: {}/{} ({pct}%), elapsed {}{eta}", self.what, self.done, self.total, clock(elapsed.as_secs_f64()))
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

/// A progress display for one job; see the module's documentation.
pub struct Progress {
    sink: Sink,
}

fn interval() -> Option<Duration> {
    match std::env::var("TRIAGE_PROGRESS_SECONDS").ok().and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(s) if s <= 0.0 || !s.is_finite() => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => Some(Duration::from_secs(10)),
    }
}

pub fn bar(len: usize, what: &str) -> Progress {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len as u64);
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {{msg}} (eta {{eta}})"
            ))
            .expect("valid template"),
        );
        return Progress { sink: Sink::Bar(pb) };
    }
    let Some(every) = interval() else { return Progress { sink: Sink::Silent } };
    let now = Instant::now();
    let state = Arc::new(Mutex::new(State { what: what.to_string(), message: String::new(), done: 0, total: len as u64, started: now, stage_started: now }));
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
    Progress { sink: Sink::Lines { state, stop, ticker: Some(ticker) } }
}

impl Progress {
    fn with_state(&self, f: impl FnOnce(&mut State)) {
        if let Sink::Lines { state, .. } = &self.sink {
            if let Ok(mut s) = state.lock() {
                f(&mut s);
            }
        }
    }

    pub fn set_position(&self, done: u64) {
        match &self.sink {
            Sink::Bar(pb) => pb.set_position(done),
            _ => self.with_state(|s| s.done = done),
        }
    }

    /// Starts a new stage of `total` steps, counted from zero.
    pub fn set_stage(&self, total: u64) {
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

    pub fn set_message(&self, msg: String) {
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

impl Drop for Progress {
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
        let s = State { what: "plan".into(), message: "database".into(), done: 5, total: 30, started: t, stage_started: t };
        // 125 s for 5 steps: 25 s a step, 25 steps left.
        assert_eq!(s.line(), "plan database: 5/30 (16%), elapsed 2:05, about 10:25 left");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
