//! Interruption, resumption, determinism, caches, full disks and logs, end to end on the tiny
//! llama: an interrupted run leaves no temporary and exits 130, its rerun resumes to the plan
//! an uninterrupted run makes, any thread count gives the same bytes, a cache that cannot be
//! trusted is rebuilt with a warning, a full disk or an unwritable folder gets one line and no
//! file, and a log (stderr not a terminal) shows the progress of long work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::one_line_error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triage-hardening-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    let text: String =
        (0..400).map(|i| format!("In year {i} the nation was at peace and Congress met in December. ")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// `triage CMD` on the tiny llama with the small settings of tests/plan.rs, the cache in
/// `cache`, and `env` set.
fn triage(cmd: &str, dir: &Path, cache: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let text = long_text(dir);
    Command::new(env!("CARGO_BIN_EXE_triage"))
        .args([cmd, "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--calib")
        .arg(&text)
        .args([
            "--ctx",
            "32",
            "--tokens",
            "128",
            "--search-windows",
            "3",
            "--holdout-windows",
            "2",
            "--generations",
            "4",
        ])
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "triage failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A plan or profile without its wall-clock timings: what must be the same bytes run to run.
fn without_timings(p: &Path) -> String {
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    j.as_object_mut().unwrap().remove("timings");
    serde_json::to_string_pretty(&j).unwrap()
}

/// Every file under `dir` whose name marks a temporary (`.NAME.tmp-PID`).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(".tmp-") {
            found.push(p.clone());
        }
        if p.is_dir() {
            found.extend(temporaries(&p));
        }
    }
    found
}

/// Runs with `TRIAGE_FAILPOINT=point` (the process sends itself SIGINT there) and checks the
/// interruption: exit 130, one line saying so, no temporary and no output left.
fn interrupted(dir: &Path, cache: &Path, out: &Path, point: &str, extra: &[&str]) {
    let o = triage("plan", dir, cache, out, extra, &[("TRIAGE_FAILPOINT", point)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{point}: {stderr}");
    assert!(stderr.contains("interrupted: removed"), "{point}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "{point}: no plan is written");
    assert_eq!(temporaries(dir), Vec::<PathBuf>::new(), "{point}: temporaries left");
}

#[test]
fn an_interrupted_database_build_resumes_block_by_block_to_the_same_plan() {
    let d = tmp_dir("db");
    let whole = d.join("whole.json");
    ok(&triage("plan", &d, &d.join("cache-a"), &whole, &["--budget", "bpw=5"], &[]));
    let (cache, out) = (d.join("cache-b"), d.join("resumed.json"));
    interrupted(&d, &cache, &out, "database-block:1", &["--budget", "bpw=5"]);
    let partial: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect();
    assert_eq!(partial.len(), 1, "one partial database");
    assert!(
        partial[0].join("block-0.gguf").exists() && !partial[0].join("block-1.gguf").exists(),
        "block 0 was saved, block 1 not yet"
    );
    let log = ok(&triage("plan", &d, &cache, &out, &["--budget", "bpw=5"], &[]));
    assert!(
        log.contains("resuming the layer database: block 0 was built") && !log.contains("block 1 was built"),
        "{log}"
    );
    assert_eq!(without_timings(&out), without_timings(&whole), "the resumed build gives the same plan");
    assert!(!partial[0].exists(), "the partial database is removed once the whole one is saved");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn interrupted_sensitivities_and_search_resume_to_the_same_plan() {
    let d = tmp_dir("search");
    let whole = d.join("whole.json");
    ok(&triage(
        "plan",
        &d,
        &d.join("cache-a"),
        &whole,
        &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe"],
        &[],
    ));
    let (cache, out) = (d.join("cache-b"), d.join("resumed.json"));
    interrupted(&d, &cache, &out, "sensitivity:3", &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe"]);
    let fresh = triage(
        "plan",
        &d,
        &cache,
        &out,
        &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe"],
        &[("TRIAGE_FAILPOINT", "search-generation:2")],
    );
    assert_eq!(fresh.status.code(), Some(130));
    assert!(
        String::from_utf8_lossy(&fresh.stderr).contains("resuming the sensitivities: 3 of "),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    // Without --resume the search starts again, and says that it could continue.
    let fresh = triage(
        "plan",
        &d,
        &cache,
        &out,
        &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe"],
        &[("TRIAGE_FAILPOINT", "search-generation:1")],
    );
    assert!(
        String::from_utf8_lossy(&fresh.stderr).contains("--resume continues it"),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    interrupted(
        &d,
        &cache,
        &out,
        "search-generation:3",
        &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe", "--resume"],
    );
    let log = ok(&triage(
        "plan",
        &d,
        &cache,
        &out,
        &["--budget", "bpw=5", "--solver", "evo", "--sensitivity", "probe", "--resume"],
        &[],
    ));
    assert!(log.contains("resuming the search after generation 3 of 4"), "{log}");
    assert_eq!(without_timings(&out), without_timings(&whole), "the resumed search gives the same plan");
    // The depth genome resumes too.
    let (whole, out) = (d.join("depth-whole.json"), d.join("depth.json"));
    ok(&triage("plan", &d, &d.join("cache-c"), &whole, &["--budget", "drop-blocks=1"], &[]));
    interrupted(&d, &d.join("cache-d"), &out, "search-generation:2", &["--budget", "drop-blocks=1"]);
    ok(&triage("plan", &d, &d.join("cache-d"), &out, &["--budget", "drop-blocks=1", "--resume"], &[]));
    assert_eq!(without_timings(&out), without_timings(&whole));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn one_two_and_seven_threads_give_the_same_bytes() {
    let d = tmp_dir("threads");
    let mut seen: Option<(Vec<u8>, String, String)> = None;
    for threads in ["1", "2", "7"] {
        let out = d.join(format!("t{threads}.gguf"));
        let env = [("RAYON_NUM_THREADS", threads)];
        ok(&triage(
            "compress",
            &d,
            &d.join(format!("cache-{threads}")),
            &out,
            &["--budget", "bpw=5", "--seed", "3"],
            &env,
        ));
        let profile = d.join(format!("profile-{threads}"));
        let o = Command::new(env!("CARGO_BIN_EXE_triage"))
            .args(["profile", "--model"])
            .arg(fixture("tiny-llama.gguf"))
            .arg("--calib")
            .arg(long_text(&d))
            .args(["--ctx", "32", "--tokens", "128", "--ablation-tokens", "64", "--attention-tokens", "64", "--out"])
            .arg(&profile)
            .envs(env)
            .output()
            .unwrap();
        ok(&o);
        let got = (
            std::fs::read(&out).unwrap(),
            without_timings(&out.with_extension("plan.json")),
            without_timings(&profile.join("profile.json")),
        );
        if let Some(first) = &seen {
            assert!(first.0 == got.0, "{threads} threads: another GGUF");
            assert_eq!(first.1, got.1, "{threads} threads: another plan");
            assert_eq!(first.2, got.2, "{threads} threads: another profile");
        }
        seen = Some(got);
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_corrupt_or_stale_cache_is_rebuilt_with_a_warning() {
    let d = tmp_dir("cache");
    let cache = d.join("cache");
    let first = d.join("first.json");
    ok(&triage("plan", &d, &cache, &first, &["--budget", "bpw=5", "--solver", "lagrange"], &[]));
    let file = |prefix: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
    };
    let (db, sens) = (file("database-"), file("sensitivity-"));
    // A truncated database and a sensitivity file with a non-finite value.
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let text = std::fs::read_to_string(&sens).unwrap();
    let (k, _) = text.split_once(':').unwrap();
    std::fs::write(&sens, format!("{k}:-1.0}}")).unwrap();
    let again = d.join("again.json");
    let log = ok(&triage("plan", &d, &cache, &again, &["--budget", "bpw=5", "--solver", "lagrange"], &[]));
    assert!(log.contains("warning: the cached layer database") && log.contains("rebuilding it"), "{log}");
    assert!(log.contains("warning: the cached sensitivities") && log.contains("measuring them again"), "{log}");
    assert_eq!(without_timings(&again), without_timings(&first));
    assert_eq!(std::fs::read(&db).unwrap().len(), bytes.len(), "the rebuilt database replaced the corrupt one");
    let third = ok(&triage("plan", &d, &cache, &again, &["--budget", "bpw=5", "--solver", "lagrange"], &[]));
    assert!(!third.contains("warning"), "the rebuilt cache is used: {third}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_log_shows_progress_lines_with_stage_count_and_estimate() {
    let d = tmp_dir("log");
    let log = ok(&triage(
        "plan",
        &d,
        &d.join("cache"),
        &d.join("p.json"),
        &["--budget", "bpw=5", "--solver", "evo"],
        &[("TRIAGE_PROGRESS_SECONDS", "0.01")],
    ));
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("plan ") && l.contains(", elapsed ")).collect();
    assert!(!lines.is_empty(), "no progress lines in: {log}");
    assert!(lines.iter().any(|l| l.contains("layer database")), "{log}");
    assert!(lines.iter().any(|l| l.contains("search") && l.contains("best KL")), "{log}");
    // Quiet when turned off.
    let quiet = ok(&triage(
        "plan",
        &d,
        &d.join("cache"),
        &d.join("q.json"),
        &["--budget", "bpw=5", "--solver", "evo"],
        &[("TRIAGE_PROGRESS_SECONDS", "0")],
    ));
    assert!(!quiet.contains(", elapsed "), "{quiet}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_full_disk_gives_one_line_and_leaves_no_file() {
    // A 64 KiB tmpfs in a private mount namespace (an unprivileged user namespace, so the test
    // needs no root): the tiny model's F32 GGUF (680 KB) cannot fit.
    let d = tmp_dir("full");
    let disk = d.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let text = long_text(&d);
    let source = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs '{disk}' && '{bin}' compress --model '{model}' --calib '{text}' --ctx 32 --tokens 128 --type F32 --out '{disk}/x.gguf'; rc=$?; ls -A '{disk}' >&2; exit $rc",
        disk = disk.display(),
        bin = env!("CARGO_BIN_EXE_triage"),
        model = fixture("tiny-llama.gguf").display(),
        text = text.display()
    );
    let o =
        Command::new("unshare").args(["--user", "--map-root-user", "--mount", "sh", "-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("mount:") && !stderr.contains("unshare:"),
        "this machine cannot make a private tmpfs: {stderr}"
    );
    one_line_error(&o, "No space left on device");
    assert!(stderr.contains("x.gguf"), "the line names the output: {stderr}");
    assert_eq!(std::fs::read(fixture("tiny-llama.gguf")).unwrap(), source, "the source is untouched");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn an_unwritable_or_wrong_kind_of_output_fails_before_any_work() {
    let d = tmp_dir("unwritable");
    let text = long_text(&d);
    let compress = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_triage"))
            .args(["compress", "--model"])
            .arg(fixture("tiny-llama.gguf"))
            .arg("--calib")
            .arg(&text)
            .args(["--ctx", "32", "--tokens", "128", "--type", "Q8_0", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    // /proc takes no new files, not even from root.
    one_line_error(&compress(Path::new("/proc/triage-out.gguf")), "cannot write");
    let file = d.join("a-file");
    std::fs::write(&file, b"keep me").unwrap();
    one_line_error(&compress(&file), "is a file; Hugging Face output is a folder");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let folder = d.join("x.gguf");
    std::fs::create_dir_all(&folder).unwrap();
    one_line_error(&compress(&folder), "is a folder; GGUF output is a file");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn sigterm_is_an_interruption_too() {
    // The text is a FIFO nobody writes: the run waits on it until the signal comes.
    let d = tmp_dir("sigterm");
    let fifo = d.join("text.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let child = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["eval", "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--text")
        .arg(&fifo)
        .args(["--ctx", "32"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: removed 0 temporary file(s)"), "{stderr}");
    std::fs::remove_dir_all(&d).ok();
}

/// Flips 16 bytes in the middle of the data of the first tensor of the GGUF at `path` whose
/// name starts with `prefix` — after the header: the file stays a well-formed GGUF — and
/// returns the tensor's name.
fn damage_tensor(path: &Path, prefix: &str) -> String {
    let (g, _) = triage::model::gguf_file::GgufFile::read(path).unwrap();
    let t = g
        .tensors
        .iter()
        .find(|t| t.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no tensor {prefix}* in {}", path.display()));
    let at = (g.data_offset + t.offset + g.tensor_bytes(t).unwrap() / 2) as usize;
    let mut b = std::fs::read(path).unwrap();
    for x in &mut b[at..at + 16] {
        *x ^= 0xff;
    }
    std::fs::write(path, b).unwrap();
    t.name.clone()
}

/// Changes the first number that is a JSON value in the file at `path` (its leading digit),
/// leaving valid JSON of the same shape.
fn damage_first_number(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let at = b
        .windows(3)
        .position(|w| w[0] == b'"' && w[1] == b':' && w[2].is_ascii_digit())
        .unwrap_or_else(|| panic!("no number in {}", path.display()))
        + 2;
    b[at] = if b[at] == b'1' { b'2' } else { b'1' };
    serde_json::from_slice::<Value>(&b).unwrap();
    std::fs::write(path, b).unwrap();
}

/// The one file of `dir` whose name starts with `prefix` and ends with `suffix`.
fn cached(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(prefix) && p.to_string_lossy().ends_with(suffix)
        })
        .collect();
    assert_eq!(found.len(), 1, "{prefix}*{suffix} in {}: {found:?}", dir.display());
    found[0].clone()
}

#[test]
fn damaged_bytes_of_a_cached_database_are_found_and_only_their_block_is_rebuilt() {
    let d = tmp_dir("damaged-db");
    let cache = d.join("cache");
    let first = d.join("first.json");
    let lagrange = ["--budget", "bpw=5", "--solver", "lagrange"];
    ok(&triage("plan", &d, &cache, &first, &lagrange, &[]));
    let db = cached(&cache, "database-", ".gguf");
    let original = std::fs::read(&db).unwrap();
    let variant = damage_tensor(&db, "blk.1.");
    // Block 0 is taken from the cached file: the failpoint after building block 0 is never hit.
    let again = d.join("again.json");
    let log = ok(&triage("plan", &d, &cache, &again, &lagrange, &[("TRIAGE_FAILPOINT", "database-block:1")]));
    let warning: Vec<&str> = log.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warning.len(), 1, "{log}");
    assert!(
        warning[0].contains(&db.display().to_string())
            && warning[0].contains(&format!("'{variant}'"))
            && warning[0].contains("rebuilding the blocks that hold them"),
        "{log}"
    );
    assert_eq!(without_timings(&again), without_timings(&first), "the plan of an undamaged database");
    assert!(std::fs::read(&db).unwrap() == original, "the repaired database is the one first built");
    let third = ok(&triage("plan", &d, &cache, &again, &lagrange, &[]));
    assert!(!third.contains("warning"), "the repaired cache is used: {third}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_damaged_block_of_an_interrupted_database_build_is_built_again() {
    let d = tmp_dir("damaged-block");
    let whole = d.join("whole.json");
    ok(&triage("plan", &d, &d.join("cache-a"), &whole, &["--budget", "bpw=5"], &[]));
    let (cache, out) = (d.join("cache-b"), d.join("resumed.json"));
    interrupted(&d, &cache, &out, "database-block:2", &["--budget", "bpw=5"]);
    let partial = cached(&cache, "database-", ".partial");
    let block = partial.join("block-0.gguf");
    let variant = damage_tensor(&block, "blk.0.");
    let log = ok(&triage("plan", &d, &cache, &out, &["--budget", "bpw=5"], &[]));
    let warning: Vec<&str> = log.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warning.len(), 1, "{log}");
    assert!(
        warning[0].contains(&block.display().to_string())
            && warning[0].contains(&format!("'{variant}'"))
            && warning[0].contains("building it again"),
        "{log}"
    );
    assert!(
        log.contains("resuming the layer database: block 1 was built") && !log.contains("block 0 was built"),
        "{log}"
    );
    assert_eq!(without_timings(&out), without_timings(&whole), "the plan of an undamaged build");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn damaged_sensitivities_are_measured_again() {
    let d = tmp_dir("damaged-sensitivity");
    let cache = d.join("cache");
    let first = d.join("first.json");
    // The probes' cache, saved tensor by tensor (the block gain's pass is one step).
    let lagrange = ["--budget", "bpw=5", "--solver", "lagrange", "--sensitivity", "probe"];
    ok(&triage("plan", &d, &cache, &first, &lagrange, &[]));
    let sens = cached(&cache, "sensitivity-", ".json");
    damage_first_number(&sens);
    let again = d.join("again.json");
    let log = ok(&triage("plan", &d, &cache, &again, &lagrange, &[]));
    assert!(
        log.contains(&format!("warning: the cached sensitivities {} are not used", sens.display()))
            && log.contains("sha256")
            && log.contains("measuring them again"),
        "{log}"
    );
    assert_eq!(without_timings(&again), without_timings(&first));
    // Those an interrupted run saved, damaged, are measured again too.
    let (cache, out) = (d.join("cache-b"), d.join("resumed.json"));
    interrupted(&d, &cache, &out, "sensitivity:3", &lagrange);
    let partial = cached(&cache, "sensitivity-", ".partial.json");
    damage_first_number(&partial);
    let log = ok(&triage("plan", &d, &cache, &out, &lagrange, &[]));
    assert!(
        log.contains(&format!(
            "warning: the sensitivities saved by an interrupted run, {}, are not used",
            partial.display()
        )) && log.contains("measuring them all"),
        "{log}"
    );
    assert!(!log.contains("resuming the sensitivities"), "{log}");
    assert_eq!(without_timings(&out), without_timings(&first));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_damaged_search_state_is_not_resumed_and_the_search_starts_again() {
    let d = tmp_dir("damaged-search");
    let evo = ["--budget", "bpw=5", "--solver", "evo", "--resume"];
    let whole = d.join("whole.json");
    ok(&triage("plan", &d, &d.join("cache-a"), &whole, &evo[..4], &[]));
    let (cache, out) = (d.join("cache-b"), d.join("resumed.json"));
    interrupted(&d, &cache, &out, "search-generation:3", &evo[..4]);
    let state = cached(&cache, "search-", ".json");
    damage_first_number(&state);
    let log = ok(&triage("plan", &d, &cache, &out, &evo, &[]));
    let warning: Vec<&str> = log.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warning.len(), 1, "{log}");
    assert!(
        warning[0].contains(&format!("--resume: the saved search {} is not continued", state.display()))
            && warning[0].contains("sha256")
            && warning[0].contains("searching from the start"),
        "{log}"
    );
    assert!(!log.contains("resuming the search") && !log.contains("invalid model configuration"), "{log}");
    assert_eq!(without_timings(&out), without_timings(&whole), "the plan of a search never stopped");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn an_empty_triage_cache_is_unset_and_does_not_cache_in_the_current_folder() {
    let d = tmp_dir("empty-cache-var");
    let (cwd, xdg) = (d.join("cwd"), d.join("xdg"));
    std::fs::create_dir_all(&cwd).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["plan", "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--calib")
        .arg(long_text(&d))
        .args([
            "--ctx",
            "32",
            "--tokens",
            "128",
            "--search-windows",
            "3",
            "--holdout-windows",
            "2",
            "--budget",
            "bpw=5",
            "--solver",
            "uniform",
            "--out",
        ])
        .arg(d.join("p.json"))
        .current_dir(&cwd)
        .env("TRIAGE_CACHE", "")
        .env("XDG_CACHE_HOME", &xdg)
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "nothing is cached in the current folder");
    cached(&xdg.join("triage"), "database-", ".gguf");
    std::fs::remove_dir_all(&d).ok();
}
