//! Temporary outputs: every file or folder triage writes is first written under a temporary
//! name beside its final path (`.NAME.tmp-PID-HOST`) and renamed into place when complete. A
//! temporary is removed when the work fails, when the process is interrupted (SIGINT, SIGTERM,
//! SIGHUP: the handler removes every live temporary and exits 130), and — for one left by a
//! process that was killed outright — by the next run on the same machine that writes the
//! same output.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The temporaries this process has open.
static LIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

pub use crate::failpoint::INTERRUPTED;

/// A temporary path, registered for removal until it is [`TempPath::persist`]ed; dropping it
/// removes what was written there.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    done: bool,
}

fn tag(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// The name part of `path` and its folder ("." for a bare file name).
fn split(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// This machine's name, as temporaries carry it (processes of several machines may write in
/// one shared folder, with the same process ids).
fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name: String =
            name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_')).collect();
        if name.is_empty() {
            "host".to_string()
        } else {
            name
        }
    })
}

fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

fn remove(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// Removes the temporaries of `path` that processes no longer running left behind (a killed
/// run). Returns how many were removed.
pub fn clean_stale(path: &Path) -> usize {
    let (dir, name) = split(path);
    let prefix = tag(&name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else { continue };
        // Another machine's temporary (a shared cache folder): whether its writer lives is not
        // for this one to say.
        let (pid, host) = rest.split_once('-').map_or((rest, None), |(p, h)| (p, Some(h)));
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if host.is_none_or(|h| h == hostname()) && !alive(pid) {
            remove(&e.path());
            n += 1;
        }
    }
    n
}

impl TempPath {
    /// The temporary name for the final `path`, registered for removal; stale temporaries of
    /// the same output are removed first.
    pub fn new(path: &Path) -> TempPath {
        let removed = clean_stale(path);
        if removed > 0 {
            eprintln!("note: removed {removed} temporary file(s) of {} left by an interrupted run", path.display());
        }
        let (dir, name) = split(path);
        let tmp = dir.join(format!("{}{}-{}", tag(&name), std::process::id(), hostname()));
        if let Ok(mut live) = LIVE.lock() {
            live.insert(tmp.clone());
        }
        TempPath { path: tmp, done: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary to `path` (the final name given to [`TempPath::new`]).
    pub fn persist(mut self, path: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, path)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.done {
            remove(&self.path);
        }
        if let Ok(mut live) = LIVE.lock() {
            live.remove(&self.path);
        }
    }
}

/// Checks that a file can be made beside `path` (its folder takes a new file), so that an
/// unwritable output fails before the work rather than after it.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let t = TempPath::new(path);
    std::fs::File::create(t.path()).map(drop)
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP: remove every live temporary, say so in
/// one line, exit 130. Called once by the program's `main`.
pub fn remove_on_interrupt() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let paths: Vec<PathBuf> = LIVE.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default();
        for p in &paths {
            remove(p);
        }
        eprintln!("interrupted: removed {} temporary file(s)", paths.len());
        std::process::exit(INTERRUPTED);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("triage-temp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("x.gguf");
        // PID 0 is never a process of ours; /proc/0 does not exist.
        let dead = dir.join(".x.gguf.tmp-0");
        std::fs::write(&dead, b"partial").unwrap();
        let dead_here = dir.join(format!(".x.gguf.tmp-0-{}", hostname()));
        std::fs::write(&dead_here, b"partial").unwrap();
        // Another machine's, in a shared folder: its process 0 may be alive there.
        let elsewhere = dir.join(".x.gguf.tmp-0-elsewhere");
        std::fs::write(&elsewhere, b"being written").unwrap();
        let other = dir.join(".y.gguf.tmp-0");
        std::fs::write(&other, b"another output's").unwrap();
        let t = TempPath::new(&out);
        std::fs::write(t.path(), b"ours").unwrap();
        assert!(!dead.exists() && !dead_here.exists(), "the dead process's temporaries are removed");
        assert!(elsewhere.exists(), "another machine's temporary is kept");
        assert!(other.exists(), "another output's temporaries are not touched");
        assert_eq!(clean_stale(&out), 0, "our own live temporary is kept");
        assert!(t.path().exists());
        let tp = t.path().to_path_buf();
        drop(t);
        assert!(!tp.exists(), "an unpersisted temporary is removed when dropped");
        let t = TempPath::new(&out);
        std::fs::write(t.path(), b"done").unwrap();
        t.persist(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"done");
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Writes `path` through a temporary file in the same folder, renamed into place only once
/// `write` has succeeded: a failure never leaves a partial file under the final name. Errors of
/// the file system name `path`.
pub fn write_atomic<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), E>,
) -> Result<(), E> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let tmp = TempPath::new(path);
    let mut w = std::io::BufWriter::new(std::fs::File::create(tmp.path()).map_err(named)?);
    write(&mut w)?;
    w.flush().map_err(named)?;
    w.into_inner().map_err(|e| named(e.into_error()))?.sync_all().map_err(named)?;
    tmp.persist(path).map_err(named)?;
    Ok(())
}
