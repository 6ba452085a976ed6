//! `triage plan` and `triage compress --budget` end to end on the tiny llama: budgets are met,
//! the predicted size is the written file's size, plans apply, the cache is reused, and bad
//! budgets fail with one line and no output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama.gguf")
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triage-plan-{tag}-{}", std::process::id()));
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

/// Runs triage with the tiny model's small settings: windows of 32 tokens, 128 database tokens,
/// 3 search + 2 hold-out windows, 3 generations, the cache in `dir`.
fn run(dir: &Path, cmd: &str, out: &Path, budget: &str, extra: &[&str]) -> Output {
    let text = long_text(dir);
    let defaults = [
        ("--ctx", "32"),
        ("--tokens", "128"),
        ("--search-windows", "3"),
        ("--holdout-windows", "2"),
        ("--generations", "3"),
    ];
    let settings: Vec<&str> = defaults.iter().filter(|(k, _)| !extra.contains(k)).flat_map(|(k, v)| [*k, *v]).collect();
    Command::new(env!("CARGO_BIN_EXE_triage"))
        .args([cmd, "--model"])
        .arg(tiny())
        .arg("--calib")
        .arg(&text)
        .args(settings)
        .args(["--budget", budget, "--cache"])
        .arg(dir.join("cache"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "triage failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plan.json written by triage, checked to load as `triage compress --plan` reads it (every
/// key triage writes is one the reader knows).
fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap();
    let model = triage::model::Model::load(&tiny()).unwrap();
    triage::compress::plan::Plan::from_json(&text, &model.config).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_size_budget_is_met_and_the_prediction_is_the_file() {
    let d = tmp_dir("size");
    // Between the smallest plan (every tensor IQ4_NL) and the largest (Q8_0), as the errors say.
    let bound = |budget: &str, key: &str| -> u64 {
        let o = run(&d, "plan", &d.join("x.json"), budget, &["--solver", "lagrange"]);
        let msg = String::from_utf8_lossy(&o.stderr).into_owned();
        msg.split(key)
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{msg}"))
    };
    let floor = bound("size=1", "smallest possible plan (");
    let top = bound("size=1GB", "largest possible plan (");
    for (k, solver) in [(0.3, "evo"), (0.6, "lagrange"), (0.9, "uniform")] {
        let budget = floor + (k * (top - floor) as f64) as u64;
        let out = d.join(format!("q-{solver}.gguf"));
        ok(run(&d, "compress", &out, &format!("size={budget}"), &["--solver", solver, "--frontier", "20"]));
        let plan = read_json(&d.join(format!("q-{solver}.plan.json")));
        let predicted = plan["predicted"]["bytes"].as_u64().unwrap();
        let written = std::fs::metadata(&out).unwrap().len();
        assert_eq!(predicted, written, "{solver}: the prediction is the file's size");
        assert!(written <= budget, "{solver}: {written} > {budget}");
        assert_eq!(plan["solver"], solver);
        let html = std::fs::read_to_string(d.join(format!("q-{solver}.report.html"))).unwrap();
        assert!(
            html.contains("Allocation") && html.contains(&format!("size={budget}")),
            "{solver}: the report shows the allocation"
        );
        assert!(plan["fitness"]["kld_mean"].as_f64().unwrap() >= 0.0);
        assert_eq!(plan["tensors"].as_object().unwrap().len(), 3 * 7 + 2, "every linear, the embedding and the output");
        // The file holds the very variants the search scored: the layer database's bytes.
        let (file, mut f) = triage::model::gguf_file::GgufFile::read(&out).unwrap();
        let db_path = std::fs::read_dir(d.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("database-"))
            .unwrap();
        let (db, mut dbf) = triage::model::gguf_file::GgufFile::read(&db_path).unwrap();
        for (name, spec) in plan["tensors"].as_object().unwrap() {
            let variant = db
                .tensor(&format!("{name}#{}", spec["type"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{name}: {spec} is a database level"));
            let written = file.tensor(name).unwrap();
            assert_eq!(
                file.read_data(&mut f, written).unwrap(),
                db.read_data(&mut dbf, variant).unwrap(),
                "{solver}: {name}"
            );
        }
        if solver != "uniform" {
            // Within one step: the smallest upgrade of any tensor (IQ4_NL → Q4_1 of the
            // smallest, 32×64, matrix: 64 bytes) no longer fits.
            assert!(budget - written < 2048, "{solver}: {} bytes left unspent", budget - written);
        }
    }
    // The frontier: every single-type plan (--frontier 20) and the Lagrangian plans of their
    // sizes, by size; the uniform plan is one of them, measured alike.
    let uniform = read_json(&d.join("q-uniform.plan.json"));
    assert!(uniform.get("frontier").is_none(), "uniform measures no frontier");
    for solver in ["evo", "lagrange"] {
        let plan = read_json(&d.join(format!("q-{solver}.plan.json")));
        let points = plan["frontier"].as_array().unwrap_or_else(|| panic!("{solver}: no frontier"));
        let bytes: Vec<u64> = points.iter().map(|p| p["bytes"].as_u64().unwrap()).collect();
        assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{solver}: sorted by size");
        let singles: Vec<&Value> = points.iter().filter(|p| p["solver"] == "single type").collect();
        assert!(singles.len() >= 3 && singles.iter().all(|p| p["type"].is_string()), "{solver}: {points:?}");
        assert!(points.iter().all(|p| p["kld_mean"].as_f64().is_some_and(|k| k.is_finite() && k >= 0.0)));
        let same = singles
            .iter()
            .find(|p| p["bytes"] == uniform["predicted"]["bytes"])
            .unwrap_or_else(|| panic!("{solver}: the uniform plan is on the frontier"));
        assert_eq!(same["kld_mean"], uniform["fitness"]["kld_mean"], "{solver}: measured as the uniform plan is");
        if solver == "evo" {
            assert!(
                points.iter().any(|p| p["solver"] == "lagrange" && p["kld_mean"] == plan["lagrange_kld"]),
                "evo's warm start is on the frontier"
            );
        }
        let html = std::fs::read_to_string(d.join(format!("q-{solver}.report.html"))).unwrap();
        assert!(
            html.contains("Size and quality") && html.contains("one type everywhere"),
            "{solver}: the report draws the frontier"
        );
    }
    // The database was built once and reused.
    let plans: Vec<Value> =
        ["evo", "lagrange"].iter().map(|s| read_json(&d.join(format!("q-{s}.plan.json")))).collect();
    assert_eq!(plans[0]["timings"]["database_cached"], false);
    assert_eq!(plans[1]["timings"]["database_cached"], true);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_bpw_plan_applies_with_compress_plan_and_searches_are_reproducible() {
    let d = tmp_dir("bpw");
    let (a, b) = (d.join("a.json"), d.join("b.json"));
    ok(run(&d, "plan", &a, "bpw=6", &["--seed", "5", "--solver", "evo"]));
    ok(run(&d, "plan", &b, "bpw=6", &["--seed", "5", "--solver", "evo"]));
    let (ja, jb) = (read_json(&a), read_json(&b));
    assert_eq!(ja["tensors"], jb["tensors"], "the same seed gives the same plan");
    assert!(ja["predicted"]["bits_per_weight"].as_f64().unwrap() <= 6.0);
    let text = long_text(&d);
    let out = d.join("c.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["compress", "--model"])
        .arg(tiny())
        .arg("--calib")
        .arg(&text)
        .args(["--ctx", "32", "--tokens", "128", "--plan"])
        .arg(&a)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    ok(o);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), ja["predicted"]["bytes"].as_u64().unwrap());
    // --requantize compresses by the plan as --plan does: the same file.
    let r = d.join("r.gguf");
    ok(run(&d, "compress", &r, "bpw=6", &["--seed", "5", "--solver", "evo", "--requantize"]));
    assert_eq!(std::fs::read(&r).unwrap(), std::fs::read(&out).unwrap(), "--budget --requantize is --plan");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn depth_budgets_remove_that_many_blocks() {
    let d = tmp_dir("depth");
    for solver in ["shortgpt", "evo"] {
        let out = d.join(format!("{solver}.gguf"));
        let text = d.join("long.txt");
        let stdout = ok(run(
            &d,
            "compress",
            &out,
            "drop-blocks=1",
            &["--solver", solver, "--eval-text", text.to_str().unwrap(), "--eval-windows", "2"],
        ));
        let quality: Value =
            serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).expect("the quality JSON")).unwrap();
        assert!(quality["kld_mean"].as_f64().unwrap() > 0.0, "a removed block changes the outputs");
        assert!(std::fs::read_to_string(d.join(format!("{solver}.report.html"))).unwrap().contains("Measured quality"));
        let plan = read_json(&d.join(format!("{solver}.plan.json")));
        assert_eq!(plan["drop_blocks"].as_array().unwrap().len(), 1);
        assert_eq!(plan["fitness"]["windows"], 2, "judged on exactly the hold-out windows");
        assert_eq!(plan["block_influence"].as_array().unwrap().len(), 3);
        let m = triage::model::Model::load(&out).unwrap();
        assert_eq!(m.blocks.len(), 2);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), plan["predicted"]["bytes"].as_u64().unwrap());
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn sparsity_budgets_prune_that_share_of_the_blocks_weights() {
    let d = tmp_dir("sparsity");
    let text = long_text(&d);
    for solver in ["uniform", "owl", "evo"] {
        let out = d.join(format!("{solver}.gguf"));
        let stdout = ok(run(
            &d,
            "compress",
            &out,
            "sparsity=60%",
            &["--solver", solver, "--eval-text", text.to_str().unwrap(), "--eval-windows", "2"],
        ));
        let quality: Value =
            serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).expect("the quality JSON")).unwrap();
        assert!(quality["kld_mean"].as_f64().unwrap() > 0.0, "{solver}: pruning changes the outputs");
        let plan = read_json(&d.join(format!("{solver}.plan.json")));
        let sp = &plan["sparsity"];
        assert!(sp["kept_weights"].as_u64().unwrap() <= sp["budget_kept_weights"].as_u64().unwrap(), "{solver}: {sp}");
        let planned = sp["planned"].as_f64().unwrap();
        assert!((0.6..0.6 + 0.02).contains(&planned), "{solver}: planned sparsity {planned}");
        // The file: every linear of the blocks in F16 with its planned share of exact zeros.
        let m = triage::model::Model::load(&out).unwrap();
        let (mut zeros, mut total) = (0usize, 0usize);
        for b in &m.blocks {
            for l in b.linears() {
                let w: Vec<f32> =
                    l.weight.flatten_all().unwrap().to_dtype(candle_core::DType::F32).unwrap().to_vec1().unwrap();
                zeros += w.iter().filter(|&&x| x == 0.0).count();
                total += w.len();
                assert_eq!(plan["tensors"][&l.name]["type"], "F16");
            }
        }
        let share = zeros as f64 / total as f64;
        assert!((share - planned).abs() < 0.02, "{solver}: {share} of the weights are zero, {planned} planned");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), plan["predicted"]["bytes"].as_u64().unwrap());
        match solver {
            "owl" => assert_eq!(plan["outlier_ratio"].as_array().unwrap().len(), 3),
            "evo" => {
                assert!(plan["fitness"]["kld_mean"].as_f64().unwrap() > 0.0 && plan["start_kld"].as_f64().is_some())
            }
            _ => {}
        }
        assert!(std::fs::read_to_string(d.join(format!("{solver}.report.html"))).unwrap().contains("F16 · "));
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn sublayer_budgets_remove_that_many_attention_or_mlp_sublayers() {
    let d = tmp_dir("sublayers");
    let text = long_text(&d);
    for solver in ["shortgpt", "evo"] {
        let out = d.join(format!("{solver}.gguf"));
        let stdout = ok(run(
            &d,
            "compress",
            &out,
            "drop-sublayers=3",
            &["--solver", solver, "--eval-text", text.to_str().unwrap(), "--eval-windows", "2"],
        ));
        let quality: Value =
            serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).expect("the quality JSON")).unwrap();
        assert!(quality["kld_mean"].as_f64().unwrap() > 0.0);
        let plan = read_json(&d.join(format!("{solver}.plan.json")));
        let len = |k: &str| plan[k].as_array().unwrap().len();
        assert_eq!(2 * len("drop_blocks") + len("drop_attention") + len("drop_mlp"), 3, "{solver}: {plan}");
        assert_eq!(plan["sublayer_influence"]["attention"].as_array().unwrap().len(), 3);
        assert_eq!(plan["sublayer_influence"]["mlp"].as_array().unwrap().len(), 3);
        let m = triage::model::Model::load(&out).unwrap();
        assert_eq!(m.blocks.len(), 3 - len("drop_blocks"));
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            plan["predicted"]["bytes"].as_u64().unwrap(),
            "{solver}: the prediction is the file"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn each_budget_gets_a_solver_that_applies_to_it_when_none_is_named() {
    let d = tmp_dir("default-solver");
    for (budget, solver) in [("bpw=6", "lagrange"), ("kld<=1", "lagrange"), ("drop-blocks=1", "evo")] {
        let out = d.join(format!("{}.json", budget.len()));
        ok(run(&d, "plan", &out, budget, &[]));
        assert_eq!(read_json(&out)["solver"], solver, "{budget}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// One `error:` line naming the problem, exit status 1, and nothing written.
fn fails(budget: &str, extra: &[&str], expect: &str) {
    let d = tmp_dir(&format!("bad-{}", expect.len()));
    let outdir = d.join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let o = run(&d, "compress", &outdir.join("o.gguf"), budget, extra);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("error: ") && stderr.contains(expect), "'{expect}' not in: {stderr}");
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 0, "output left behind");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_budgets_fail_with_one_line_and_no_output() {
    fails("size=1000", &[], "below the smallest possible plan");
    fails("size=1GB", &[], "above the largest possible plan");
    fails("bpw=40", &[], "above the largest possible plan");
    fails("speed=3", &[], "unknown budget 'speed'");
    // A planner that holds the model in f32 (EvoPress, sparsity, or --stream off) refuses a
    // model larger than the memory allowed before anything is loaded, not killed when memory
    // runs out.
    fails(
        "sparsity=0.5",
        &["--memory-limit", "1KB"],
        "planning budget sparsity=0.5 with solver evo holds the whole model in f32",
    );
    fails(
        "bpw=5",
        &["--memory-limit", "1KB", "--stream", "off"],
        "planning budget bpw=5 with solver lagrange holds the whole model in f32",
    );
    fails("size=12 parsecs", &[], "unknown size unit");
    fails("bpw=6", &["--solver", "annealing"], "invalid value 'annealing'");
    fails("bpw=6", &["--solver", "shortgpt"], "does not apply");
    fails("kld<=0.0000000001", &["--solver", "lagrange"], "no plan meets kld<=");
    fails("drop-blocks=3", &["--solver", "shortgpt"], "cannot remove 3 blocks");
    fails("bpw=6", &["--search-windows", "1000"], "planning needs");
    fails("sparsity=1.5", &[], "strictly between 0 and 1");
    fails("drop-sublayers=6", &["--solver", "shortgpt"], "cannot remove 6 sublayers");
    fails("sparsity=0.5", &["--solver", "lagrange"], "does not apply to budget sparsity");
    fails("sparsity=0.95", &["--solver", "evo"], "evo searches shares up to 0.9");
    fails("bpw=6", &["--method", "rtn"], "--method rtn needs --requantize");
    fails("bpw=6", &["--imatrix", "any.imatrix"], "--imatrix needs --requantize");
    fails("bpw=6", &["--types", "Q4_1,F16"], "F16 is not a quantized type");
    fails(
        "bpw=6",
        &["--types", "Q4_K,Q6_K"],
        "--types Q4_K,Q6_K: blk.0.attn_k.weight has rows of 64 weights, which none of them fits",
    );
    fails("sparsity=0.5", &["--types", "Q4_1"], "--types chooses the levels of quantization budgets");
    fails("kld<=0.1", &["--database", "sampled"], "--database sampled serves bpw= and size= budgets");
    fails("bpw=6", &["--database", "sampled", "--solver", "evo"], "with solver evo measures many plans whole");
    fails("bpw=6", &["--sample-rows", "0"], "invalid value '0' for '--sample-rows");
    fails("bpw=6", &["--database", "approximate"], "invalid value 'approximate' for '--database");
    fails("bpw=6", &["--sensitivity", "guess"], "invalid value 'guess' for '--sensitivity");
    fails("bpw=6", &["--token-weights", "loud"], "invalid value 'loud' for '--token-weights");
}

#[test]
fn token_weighted_budgets_build_their_own_database_and_say_so() {
    let d = tmp_dir("token-weights");
    let (equal, weighted) = (d.join("equal.gguf"), d.join("attention.gguf"));
    ok(run(&d, "compress", &equal, "bpw=6", &[]));
    let log = ok(run(&d, "compress", &weighted, "bpw=6", &["--token-weights", "attention"]));
    let settings = |p: &Path| -> Value {
        let j: Value = serde_json::from_str(&std::fs::read_to_string(p.with_extension("plan.json")).unwrap()).unwrap();
        j["settings"]["database"]["token_weights"].clone()
    };
    assert_eq!(settings(&equal), "equal");
    assert_eq!(settings(&weighted), "attention");
    // Another key: the equal database is not taken for the weighted one.
    let databases = std::fs::read_dir(d.join("cache")).unwrap().flatten().filter(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("database-") && n.ends_with(".gguf")
    });
    assert_eq!(databases.count(), 2, "{log}");
    let meta = |p: &Path| {
        let (g, _) = triage::model::gguf_file::GgufFile::read(p).unwrap();
        g.get("triage.token_weights").map(|v| format!("{v:?}"))
    };
    assert_eq!(meta(&equal), None, "equal weights add no key: the file is what it was");
    assert!(meta(&weighted).is_some_and(|v| v.contains("attention")), "{:?}", meta(&weighted));
    // The weights move the bytes of at least one tensor.
    assert_ne!(tensor_bytes(&equal), tensor_bytes(&weighted));
    std::fs::remove_dir_all(&d).ok();
}

/// Every tensor's bytes in the GGUF at `path`, by name.
fn tensor_bytes(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
    let (g, _) = triage::model::gguf_file::GgufFile::read(path).unwrap();
    let b = std::fs::read(path).unwrap();
    g.tensors
        .iter()
        .map(|t| {
            let at = (g.data_offset + t.offset) as usize;
            let len = g.tensor_bytes(t).unwrap() as usize;
            (t.name.clone(), (format!("{:?}", t.qtype()), b[at..at + len].to_vec()))
        })
        .collect()
}

/// A sampled database plans from estimates and writes exact bytes: its file's tensors are the
/// exact database's variants wherever the two plans chose the same type, plan.json says how
/// the database was made and holds each planned level's estimate with its standard error
/// beside the whole tensor's error, and the two plans' KL are close.
#[test]
fn a_sampled_database_writes_the_exact_databases_bytes() {
    let d = tmp_dir("sampled");
    let (exact, sampled) = (d.join("exact.gguf"), d.join("sampled.gguf"));
    ok(run(&d, "compress", &exact, "bpw=6", &["--database", "exact", "--frontier", "0"]));
    ok(run(&d, "compress", &sampled, "bpw=6", &["--database", "sampled", "--sample-rows", "24", "--frontier", "2"]));
    let plan = read_json(&d.join("sampled.plan.json"));
    assert_eq!(plan["settings"]["database"]["mode"], "sampled");
    assert_eq!(plan["settings"]["database"]["sample_rows"], 24);
    assert_eq!(read_json(&d.join("exact.plan.json"))["settings"]["database"]["mode"], "exact");
    let estimates = plan["estimates"].as_object().unwrap();
    assert_eq!(estimates.len(), 3 * 7 + 2, "every planned tensor: {:?}", estimates.keys());
    let mut sampled_rows = 0;
    for (name, e) in estimates {
        let (t, se, whole) =
            (e["rel_error"].as_f64().unwrap(), e["stderr"].as_f64().unwrap(), e["whole"].as_f64().unwrap());
        if e["rows"].as_u64().unwrap() < e["of_rows"].as_u64().unwrap() {
            sampled_rows += 1;
            assert!(se > 0.0 && (t - whole).abs() <= 6.0 * se, "{name}: {t} ± {se} against {whole}");
        } else {
            assert_eq!((t, se), (whole, 0.0), "{name}");
        }
    }
    assert!(sampled_rows >= 15, "{sampled_rows} tensors sampled");
    let (a, b) = (tensor_bytes(&exact), tensor_bytes(&sampled));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let same: Vec<&String> = a.keys().filter(|n| a[*n].0 == b[*n].0).collect();
    assert!(same.len() * 4 >= a.len() * 3, "{} of {} tensors of the same type", same.len(), a.len());
    for n in same {
        assert!(a[n].1 == b[n].1, "{n}: the sampled plan's bytes are not the exact database's");
    }
    let kl = |p: &str| read_json(&d.join(p))["fitness"]["kld_mean"].as_f64().unwrap();
    assert!((kl("sampled.plan.json") - kl("exact.plan.json")).abs() <= 0.2 * kl("exact.plan.json"));
    assert!(plan["frontier"].as_array().unwrap().len() >= 2);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_types_menu_is_the_only_levels_a_plan_takes() {
    let d = tmp_dir("menu");
    let json = d.join("menu.json");
    // In any order, once each: one menu, one cache key.
    ok(run(&d, "plan", &json, "bpw=6", &["--types", "q8_0,Q4_1,Q8_0", "--frontier", "0"]));
    let plan = read_json(&json);
    assert_eq!(plan["settings"]["database"]["types"], serde_json::json!(["Q4_1", "Q8_0"]));
    let types: Vec<&str> = plan["tensors"].as_object().unwrap().values().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(types.len(), 3 * 7 + 2);
    assert!(
        types.contains(&"Q4_1") && types.contains(&"Q8_0") && types.iter().all(|t| ["Q4_1", "Q8_0"].contains(t)),
        "{types:?}"
    );
    assert!(plan["predicted"]["bits_per_weight"].as_f64().unwrap() <= 6.0);
    let databases = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect();
        v.sort();
        v
    };
    let menu_db = databases();
    assert_eq!(menu_db.len(), 1);
    let (db, _) = triage::model::gguf_file::GgufFile::read(&menu_db[0]).unwrap();
    assert_eq!(db.tensors.len(), 2 * (3 * 7 + 2), "two levels of every tensor");
    ok(run(&d, "plan", &d.join("again.json"), "bpw=6", &["--types", "Q4_1,Q8_0", "--frontier", "0"]));
    assert_eq!(read_json(&d.join("again.json"))["timings"]["database_cached"], true);
    // The whole menu is another database.
    ok(run(&d, "plan", &d.join("all.json"), "bpw=6", &["--frontier", "0"]));
    assert_eq!(databases().len(), 2);
    assert!(read_json(&d.join("all.json"))["settings"]["database"].get("types").is_none());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn requantize_without_a_budget_fails_with_one_line() {
    let d = tmp_dir("requantize");
    let out = d.join("o.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["compress", "--model"])
        .arg(tiny())
        .arg("--calib")
        .arg(long_text(&d))
        .args(["--ctx", "32", "--tokens", "128", "--type", "Q8_0", "--requantize", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: --requantize applies to a --budget's plan"), "{stderr}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_uniform_plan_from_a_menu_takes_the_menus_types() {
    let d = tmp_dir("uniform-menu");
    // Q4_0 was asked as IQ4_NL, which the menu lacks: "no single type fits budget bpw=5".
    let json = d.join("uniform.json");
    ok(run(&d, "plan", &json, "bpw=5", &["--solver", "uniform", "--types", "Q4_0,Q8_0", "--frontier", "0"]));
    let plan = read_json(&json);
    let types: Vec<&str> = plan["tensors"].as_object().unwrap().values().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(types.len(), 3 * 7 + 2);
    assert!(types.iter().all(|&t| t == "Q4_0"), "{types:?}");
    std::fs::remove_dir_all(&d).ok();
}
