//! Interruption points for tests: with `TRIAGE_FAILPOINT=NAME:N` in the environment, the process
//! sends itself SIGINT when long work `NAME` has finished and saved step N, so that a test can
//! interrupt it at an exact point — through the same handler as Ctrl-C — and check that no
//! temporary is left and that the rerun resumes. Without the variable a point costs one
//! environment lookup. `NAME:N:kill` sends SIGKILL instead: the process ends at once, with no
//! handler, as a killed job does.
//!
//! Points: `database-block:N` (the layer database, after block N), `sensitivity:N` (after N
//! tensors' sensitivities), `search-generation:N` (EvoPress, after generation N).

use std::time::Duration;

/// The exit status of an interrupted run (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

pub fn hit(name: &str, step: usize) {
    let Ok(v) = std::env::var("TRIAGE_FAILPOINT") else { return };
    let (point, signal) = v.strip_suffix(":kill").map_or((v.as_str(), "-INT"), |p| (p, "-KILL"));
    if !point.split_once(':').is_some_and(|(n, s)| n == name && s.parse() == Ok(step)) {
        return;
    }
    let _ = std::process::Command::new("kill").args([signal, &std::process::id().to_string()]).status();
    // The handler ends the process; should the signal not arrive, end it as the handler would.
    std::thread::sleep(Duration::from_secs(30));
    std::process::exit(INTERRUPTED);
}
