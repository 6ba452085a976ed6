//! Shards end to end on the tiny llama: a plan's layer database and sensitivities split over
//! 1, 2, 4 and 7 processes (prepared, each index run in any order, then merged) give the
//! single process's plan byte for byte; a shard killed midway (SIGKILL) and run again gives it
//! too; the merge names the shards not done; misuse gets one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{one_line_error, tmp_dir};

fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    let text: String =
        (0..400).map(|i| format!("In year {i} the nation was at peace and Congress met in December. ")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// `triage plan` on the tiny llama (the settings of tests/hardening.rs; budget bpw=5 unless
/// `extra` gives one), the cache in `cache`, with `extra` arguments and `env` set.
fn plan(dir: &Path, cache: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_triage"))
        .arg("plan")
        .arg("--model")
        .arg(common::fixture("tiny-llama.gguf"))
        .arg("--calib")
        .arg(long_text(dir))
        .args(if extra.contains(&"--budget") { &[][..] } else { &["--budget", "bpw=5"][..] })
        .args(["--ctx", "32", "--tokens", "128", "--search-windows", "3", "--holdout-windows", "2"])
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "triage failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn without_timings(p: &Path) -> String {
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    j.as_object_mut().unwrap().remove("timings");
    serde_json::to_string_pretty(&j).unwrap()
}

/// The shards' folder in `cache` (None once the merge has removed it).
fn shards_folder(cache: &Path) -> Option<PathBuf> {
    std::fs::read_dir(cache).ok()?.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".shards"))
}

#[test]
fn sharded_plans_are_the_single_process_plan_byte_for_byte() {
    let d = tmp_dir("shard", "counts");
    let single = d.join("single.json");
    ok(&plan(&d, &d.join("cache-single"), &single, &[], &[]));
    for count in [1usize, 2, 4, 7] {
        let cache = d.join(format!("cache-{count}"));
        let out = d.join(format!("sharded-{count}.json"));
        let log = ok(&plan(&d, &cache, &out, &["--shard", "prepare"], &[]));
        assert!(log.contains("prepared the states entering 3 blocks"), "{log}");
        // Any order: the last index first.
        for i in (0..count).rev() {
            let shard = format!("{i}/{count}");
            let log = ok(&plan(&d, &cache, &out, &["--shard", &shard], &[]));
            assert!(log.contains(&format!("shard {shard}: ")) && log.contains("marked done"), "{log}");
            assert!(!out.exists(), "a shard writes no plan");
        }
        ok(&plan(&d, &cache, &out, &[], &[]));
        assert_eq!(without_timings(&out), without_timings(&single), "{count} shards");
        assert_eq!(shards_folder(&cache), None, "the merge removes the shards' folder");
    }
    // The scheduler's index: Slurm's, then Kubernetes'.
    let cache = d.join("cache-auto");
    let out = d.join("auto.json");
    ok(&plan(&d, &cache, &out, &["--shard", "prepare"], &[]));
    ok(&plan(&d, &cache, &out, &["--shard", "auto/2"], &[("SLURM_ARRAY_TASK_ID", "0")]));
    ok(&plan(&d, &cache, &out, &["--shard", "auto/2"], &[("JOB_COMPLETION_INDEX", "1")]));
    ok(&plan(&d, &cache, &out, &[], &[]));
    assert_eq!(without_timings(&out), without_timings(&single), "auto/2");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_shard_killed_midway_and_run_again_gives_the_same_plan() {
    let d = tmp_dir("shard", "killed");
    let single = d.join("single.json");
    ok(&plan(&d, &d.join("cache-single"), &single, &[], &[]));
    let (cache, out) = (d.join("cache"), d.join("sharded.json"));
    ok(&plan(&d, &cache, &out, &["--shard", "prepare"], &[]));
    // Shard 0 of 2 starts at block 0: killed (no handler, no cleanup) once that block is saved.
    let killed = plan(&d, &cache, &out, &["--shard", "0/2"], &[("TRIAGE_FAILPOINT", "database-block:1:kill")]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed.status), Some(9), "SIGKILL");
    ok(&plan(&d, &cache, &out, &["--shard", "1/2"], &[]));
    let early = plan(&d, &cache, &out, &[], &[]);
    one_line_error(&early, "1 of 2 not done (0/2)");
    assert!(!out.exists(), "no plan while a shard is missing");
    let log = ok(&plan(&d, &cache, &out, &["--shard", "0/2"], &[]));
    assert!(log.contains("resuming the layer database: block 0 was built"), "{log}");
    ok(&plan(&d, &cache, &out, &[], &[]));
    assert_eq!(without_timings(&out), without_timings(&single));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn shard_misuse_gets_one_line() {
    let d = tmp_dir("shard", "misuse");
    let (cache, out) = (d.join("cache"), d.join("plan.json"));
    one_line_error(&plan(&d, &cache, &out, &["--shard", "0/2"], &[]), "run this plan with --shard prepare first");
    one_line_error(&plan(&d, &cache, &out, &["--shard", "prepare", "--no-cache"], &[]), "cannot go with --no-cache");
    one_line_error(&plan(&d, &cache, &out, &["--shard", "prepare", "--budget", "drop-blocks=1"], &[]), "builds none");
    for (shard, says) in [("2/2", "not below the count 2"), ("auto/2", "neither is set"), ("half", "not a shard")] {
        let o = plan(&d, &cache, &out, &["--shard", shard], &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.lines().count() == 1 && stderr.contains(says), "{shard}: {stderr}");
    }
    // A shard writes no plan: its --out's folder need not exist where it runs.
    ok(&plan(&d, &cache, &d.join("elsewhere/plan.json"), &["--shard", "prepare"], &[]));
    one_line_error(&plan(&d, &cache, &out, &[], &[]), "is done: run --shard I/N");
    assert!(!out.exists());
    // A run with other arguments than the shards' says that it builds alone.
    let log = ok(&plan(&d, &cache, &out, &["--damp", "0.02"], &[]));
    assert!(log.contains("are for other arguments than this run's"), "{log}");
    std::fs::remove_dir_all(&d).ok();
}
