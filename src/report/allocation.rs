//! The allocation report: one self-contained HTML page showing what a budgeted compression chose
//! and what it bought — KL against file size for the plan, single-type plans and the Lagrangian
//! plans of their sizes (the plan's frontier), the type of every tensor by block, each tensor's
//! measured sensitivity, the tensors per type — as inline SVG pictures, and the quality measured
//! (KL on hold-out calibration windows; on evaluation text when measured).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::fmt::{esc, seconds, sig};
use super::heatmap::{block_grid, GridCell, GridLegend};
use super::size_plot::{size_plot, Series};
use super::svg::{tick, SERIES};
use crate::eval::EvalReport;
use crate::ggml::types::QuantType;
use crate::model::{Sublayer, TensorId, TensorKind};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#222;\
margin:0 auto;max-width:1200px;padding:12px 20px 40px;background:#fafafa}h1{font-size:24px}\
h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ccc}p.note{font-size:13px;color:#444;max-width:1000px}\
table{border-collapse:collapse;font-size:13px;background:#fff;margin:4px 0 8px}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}\
td.c{text-align:center;font-family:ui-monospace,monospace;font-size:12px}\
svg{display:block;margin:6px 0}p.err{color:#a00}summary{cursor:pointer;font-size:13px}";

const KINDS: [TensorKind; 7] = [
    TensorKind::AttnQ,
    TensorKind::AttnK,
    TensorKind::AttnV,
    TensorKind::AttnOutput,
    TensorKind::FfnGate,
    TensorKind::FfnUp,
    TensorKind::FfnDown,
];
/// The linears of a block whose q/k/v and gate/up are fused (Phi-3).
const FUSED_KINDS: [TensorKind; 4] =
    [TensorKind::AttnQkv, TensorKind::AttnOutput, TensorKind::FfnUp, TensorKind::FfnDown];

/// The columns of the per-block tables: fused when the plan names a fused linear.
fn kinds<'a>(names: impl IntoIterator<Item = &'a String>) -> &'static [TensorKind] {
    let fused = names.into_iter().any(|n| TensorId::parse_gguf(n).is_some_and(|id| id.kind == TensorKind::AttnQkv));
    if fused {
        &FUSED_KINDS
    } else {
        &KINDS
    }
}

/// The columns' headings: the kinds' GGUF names.
fn headings(kinds: &[TensorKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.gguf_name()).collect()
}

/// `plan`: plan.json as `triage plan` writes it; `n_blocks`: the source model's block count;
/// `quality`: the compressed model against the original on evaluation text, when measured.
pub fn render(model: &str, plan: &Value, n_blocks: usize, quality: Option<(&str, &EvalReport)>) -> String {
    let mut h = String::with_capacity(1 << 16);
    let _ = write!(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>triage · allocation · {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n", esc(model));
    let _ = writeln!(h, "<h1>Budgeted compression of <code>{}</code></h1>", esc(model));
    let get = |k: &str| plan.get(k).cloned().unwrap_or(Value::Null);
    let pred = get("predicted");
    h.push_str("<table>\n");
    let rows = [
        ("budget", esc(get("budget").as_str().unwrap_or("–"))),
        ("solver", esc(get("solver").as_str().unwrap_or("–"))),
        (
            "predicted file size",
            pred["bytes"].as_u64().map_or("–".into(), |b| format!("{b} bytes ({:.2} MiB)", b as f64 / 1048576.0)),
        ),
        ("bits per weight (all tensors)", pred["bits_per_weight"].as_f64().map_or("–".into(), |b| format!("{b:.3}"))),
        ("KL on hold-out calibration windows", get("fitness")["kld_mean"].as_f64().map_or("–".into(), sig)),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th class=\"l\">{k}</th><td class=\"l\">{v}</td></tr>");
    }
    h.push_str("</table>\n");
    if let Some((text, q)) = quality {
        let _ = writeln!(h, "<h2>Measured quality</h2>\n<p class=\"note\">Against the original model on <code>{}</code>: {} windows of {} tokens, every position scored.</p>", esc(text), q.windows, q.ctx);
        h.push_str(
            "<table>\n<tr><th>PPL</th><th>mean KL</th><th>median KL</th><th>p99 KL</th><th>same top-1</th></tr>\n",
        );
        let f = |x: Option<f64>| x.map_or("–".into(), sig);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n</table>",
            sig(q.ppl),
            f(q.kld_mean),
            f(q.kld_median),
            f(q.kld_p99),
            q.top1_agree.map_or("–".into(), |a| format!("{:.2}%", 100.0 * a))
        );
    }
    frontier(&mut h, plan);
    if let Some(Value::Object(t)) = plan.get("timings") {
        h.push_str("<h2>Time</h2>\n<table>\n");
        for (k, v) in t {
            if let Some(s) = v.as_f64() {
                let _ = writeln!(h, "<tr><th class=\"l\">{}</th><td>{}</td></tr>", esc(k), seconds(s));
            }
        }
        h.push_str("</table>\n");
    }
    let tensors = plan.get("tensors").and_then(Value::as_object).cloned().unwrap_or_default();
    let blocks = |key: &str| -> Vec<usize> {
        plan.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_u64().map(|i| i as usize)).collect())
            .unwrap_or_default()
    };
    let (dropped, no_attention, no_mlp) = (blocks("drop_blocks"), blocks("drop_attention"), blocks("drop_mlp"));
    let type_of = |name: &str| {
        tensors.get(name).and_then(|s| s.get("type")).and_then(Value::as_str).and_then(QuantType::from_name)
    };
    // The share pruned, when the plan prunes (a number; N:M patterns are shown by their type only).
    let share_of = |name: &str| tensors.get(name).and_then(|s| s.get("sparsity")).and_then(Value::as_f64);
    // Bits per weight kept: a pruned tensor's type costs only on the weights it keeps.
    let bits = |name: &str| type_of(name).map(|t| t.bits_per_weight() * (1.0 - share_of(name).unwrap_or(0.0)));
    let bpws: Vec<f64> = tensors.keys().filter_map(|n| bits(n)).collect();
    let (lo, hi) = bpws.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let cols = kinds(tensors.keys());
    let t_of = |b: f64| (b - lo) / span;
    let cell = |name: &str| -> Option<GridCell> {
        let (t, b) = (type_of(name)?, bits(name)?);
        let pruned = share_of(name).map_or(String::new(), |p| format!(" · {:.0}%", 100.0 * p));
        Some(GridCell { t: Some(t_of(b)), text: format!("{}{pruned}", t.name()) })
    };
    let removed = || Some(GridCell { t: None, text: "removed".into() });
    let mut rows: Vec<(String, Vec<Option<GridCell>>)> = (0..n_blocks)
        .map(|b| {
            let cells = cols
                .iter()
                .map(|k| {
                    let gone = dropped.contains(&b)
                        || match k.sublayer() {
                            Some(Sublayer::Attention) => no_attention.contains(&b),
                            Some(Sublayer::Mlp) => no_mlp.contains(&b),
                            None => false,
                        };
                    if gone {
                        removed()
                    } else {
                        cell(&TensorId::block(b, *k).to_string())
                    }
                })
                .collect();
            (b.to_string(), cells)
        })
        .collect();
    for id in [TensorId::TOKEN_EMBD, TensorId::OUTPUT] {
        let name = id.to_string();
        if tensors.contains_key(&name) {
            rows.push((id.kind.gguf_name().into(), vec![cell(&name)]));
        }
    }
    let mut kept: Vec<(QuantType, f64)> = Vec::new();
    for n in tensors.keys() {
        if let (Some(t), Some(b)) = (type_of(n), bits(n)) {
            if !kept.iter().any(|(k, _)| *k == t) {
                kept.push((t, b));
            }
        }
    }
    kept.sort_by(|a, b| a.1.total_cmp(&b.1));
    let swatches = kept
        .iter()
        .map(|(t, _)| (format!("{} · {} bpw", t.name(), tick(t.bits_per_weight())), t_of(t.bits_per_weight())))
        .collect();
    h.push_str("<h2>Allocation</h2>\n<p class=\"note\">The GGUF type of every tensor (and the share of its weights pruned), by block; the colour gives the bits per weight it keeps (yellow most, purple fewest). Grey: removed.</p>\n");
    push_svg(&mut h, block_grid(&headings(cols), &rows, &GridLegend::Swatches(swatches)));
    let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
    for n in tensors.keys() {
        if let Some(t) = type_of(n) {
            *per_type.entry(t.name()).or_default() += 1;
        }
    }
    if !per_type.is_empty() {
        h.push_str("<table>\n<tr><th class=\"l\">type</th><th>tensors</th></tr>\n");
        for (t, c) in per_type {
            let _ = writeln!(h, "<tr><td class=\"l\">{t}</td><td>{c}</td></tr>");
        }
        h.push_str("</table>\n");
    }
    if let Some(Value::Object(s)) = plan.get("sensitivity") {
        h.push_str("<h2>Sensitivity</h2>\n<p class=\"note\">KL(original ‖ model) when only this tensor is at its worst type (one calibration window), on a log scale: the a·t² curves the Lagrangian solver starts from. Yellow is the most sensitive.</p>\n");
        let cols = kinds(s.keys());
        let logs: Vec<f64> = s.values().filter_map(Value::as_f64).filter(|&x| x > 0.0).map(f64::log10).collect();
        let (slo, shi) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let sspan = if shi > slo { shi - slo } else { 1.0 };
        let value = |name: &str| s.get(name).and_then(Value::as_f64);
        let map_rows: Vec<(String, Vec<Option<GridCell>>)> = (0..n_blocks)
            .map(|b| {
                let cells = cols
                    .iter()
                    .map(|&k| {
                        value(&TensorId::block(b, k).to_string()).map(|x| GridCell {
                            t: Some(if x > 0.0 { (x.log10() - slo) / sspan } else { 0.0 }),
                            text: String::new(),
                        })
                    })
                    .collect();
                (b.to_string(), cells)
            })
            .collect();
        let mut ticks: Vec<(f64, String)> = ((slo.ceil() as i32)..=(shi.floor() as i32))
            .map(|e| ((e as f64 - slo) / sspan, tick(10f64.powi(e))))
            .collect();
        if ticks.len() < 2 && !logs.is_empty() {
            ticks = vec![(0.0, tick(10f64.powf(slo))), (1.0, tick(10f64.powf(shi)))];
        }
        push_svg(&mut h, block_grid(&headings(cols), &map_rows, &GridLegend::Bar { title: "KL (nats)".into(), ticks }));
        h.push_str("<details><summary>the numbers</summary>\n<table>\n<tr><th>block</th>");
        for k in headings(cols) {
            let _ = write!(h, "<th>{k}</th>");
        }
        h.push_str("</tr>\n");
        for b in 0..n_blocks {
            let _ = write!(h, "<tr><th>{b}</th>");
            for &k in cols {
                let _ = write!(h, "<td>{}</td>", value(&TensorId::block(b, k).to_string()).map_or(String::new(), sig));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n</details>\n");
    }
    if let Some(Value::Object(e)) = plan.get("estimates") {
        estimates(&mut h, e);
    }
    if let Some(Value::Array(bi)) = plan.get("block_influence") {
        h.push_str("<h2>Block influence</h2>\n<p class=\"note\">ShortGPT's 1 − cos(h<sub>i</sub>, h<sub>i+1</sub>) on the search windows; ShortGPT removes the lowest.</p>\n<table>\n<tr><th>block</th><th>influence</th><th>removed</th></tr>\n");
        for (b, v) in bi.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{b}</td><td>{}</td><td>{}</td></tr>",
                v.as_f64().map_or("–".into(), sig),
                if dropped.contains(&b) { "yes" } else { "" }
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(Value::Object(si)) = plan.get("sublayer_influence") {
        h.push_str("<h2>Sublayer influence</h2>\n<p class=\"note\">1 − cos(input, input + branch) of each block's attention and MLP on the search windows; ShortGPT's rule removes the lowest.</p>\n<table>\n<tr><th>block</th><th>attention</th><th>MLP</th><th>removed</th></tr>\n");
        let col = |k: &str, b: usize| si.get(k).and_then(|v| v.get(b)).and_then(Value::as_f64).map_or("–".into(), sig);
        for b in 0..n_blocks {
            let gone = if dropped.contains(&b) {
                "block"
            } else if no_attention.contains(&b) {
                "attention"
            } else if no_mlp.contains(&b) {
                "MLP"
            } else {
                ""
            };
            let _ = writeln!(
                h,
                "<tr><td>{b}</td><td>{}</td><td>{}</td><td>{gone}</td></tr>",
                col("attention", b),
                col("mlp", b)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// A sampled database's estimates of the plan's levels: each tensor's t̂ ± its standard error on
/// the rows sampled, beside the whole tensor's t once made, with how many standard errors apart
/// they are.
fn estimates(h: &mut String, e: &serde_json::Map<String, Value>) {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let z: Vec<f64> = e
        .values()
        .filter_map(|v| Some((num(v, "rel_error")? - num(v, "whole")?).abs() / num(v, "stderr").filter(|&s| s > 0.0)?))
        .collect();
    let within = |k: f64| z.iter().filter(|&&x| x <= k).count();
    let _ = writeln!(
        h,
        "<h2>Sampled estimates</h2>\n<p class=\"note\">The layer database measured every level on a sample of each tensor's rows (a ratio estimate t̂ of the relative output error, with its standard error); the plan's levels were then made whole. Of {} sampled tensors, the whole tensor's error lies within one standard error of the estimate for {} and within two for {}.</p>",
        z.len(),
        within(1.0),
        within(2.0)
    );
    h.push_str("<details><summary>the numbers</summary>\n<table>\n<tr><th class=\"l\">tensor</th><th class=\"l\">type</th><th>rows sampled</th><th>t̂</th><th>± s.e.</th><th>whole t</th></tr>\n");
    for (name, v) in e {
        let f = |k: &str| num(v, k).map_or("–".into(), sig);
        let rows = |k: &str| v.get(k).and_then(Value::as_u64).map_or("–".into(), |n| n.to_string());
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(v.get("type").and_then(Value::as_str).unwrap_or("")),
            rows("rows"),
            rows("of_rows"),
            f("rel_error"),
            f("stderr"),
            f("whole")
        );
    }
    h.push_str("</table>\n</details>\n");
}

/// A picture in place, or the reason it could not be drawn.
fn push_svg(h: &mut String, svg: Result<String, String>) {
    match svg {
        Ok(svg) => h.push_str(&svg),
        Err(e) => {
            let _ = write!(h, "<p class=\"err\">{}</p>", esc(&e));
        }
    }
    h.push('\n');
}

/// KL against file size: the plan's point beside the frontier plan.json holds (single-type
/// plans and the Lagrangian plans of their sizes), as a picture and a table.
fn frontier(h: &mut String, plan: &Value) {
    let Some(Value::Array(points)) = plan.get("frontier") else { return };
    const MIB: f64 = 1048576.0;
    // Types of one size (Q3_K and IQ3_S) are named once, on the first of their points: two
    // names drawn at one place are unreadable.
    let of = |solver: &str| -> Vec<(f64, f64, Option<String>)> {
        let mut out: Vec<(f64, f64, Option<String>)> = Vec::new();
        for p in points.iter().filter(|p| p["solver"] == solver) {
            let (Some(b), Some(k)) = (p["bytes"].as_f64(), p["kld_mean"].as_f64()) else { continue };
            let mut name = p["type"].as_str().map(String::from);
            if let Some(first) = out.iter_mut().find(|q| q.0 == b / MIB && q.2.is_some()) {
                if let (Some(a), Some(n)) = (first.2.as_mut(), name.take()) {
                    *a = format!("{a}, {n}");
                }
            }
            out.push((b / MIB, k, name));
        }
        out
    };
    let mut series = vec![
        Series {
            label: "one type everywhere".into(),
            color: SERIES[0],
            points: of("single type"),
            joined: true,
            radius: 4,
        },
        Series {
            label: "Lagrangian allocation".into(),
            color: SERIES[2],
            points: of("lagrange"),
            joined: true,
            radius: 4,
        },
    ];
    let own = (plan["predicted"]["bytes"].as_f64(), plan["fitness"]["kld_mean"].as_f64());
    if let (Some(b), Some(k)) = own {
        let solver = plan["solver"].as_str().unwrap_or("this plan");
        series.push(Series {
            label: format!("this plan ({solver})"),
            color: SERIES[1],
            points: vec![(b / MIB, k, None)],
            joined: false,
            radius: 7,
        });
    }
    h.push_str("<h2>Size and quality</h2>\n<p class=\"note\">Mean KL(original ‖ plan) on the hold-out calibration windows against the file's size: this plan, the single-type plans nearest its budget (every planned tensor at one GGUF type, the layer database's GPTQ variants; rows the type cannot take fall back as llama-quantize's do, so a type names the plan, not every tensor), and the Lagrangian allocation at each of their sizes. Lower and to the left is better.</p>\n");
    push_svg(h, size_plot(&series));
    h.push_str("<table>\n<tr><th class=\"l\">plan</th><th>bytes</th><th>bits per weight</th><th>mean KL</th></tr>\n");
    let mut rows: Vec<(String, u64, f64, f64)> = points
        .iter()
        .filter_map(|p| {
            let name = match p["type"].as_str() {
                Some(t) => format!("{} {t}", p["solver"].as_str()?),
                None => p["solver"].as_str()?.to_string(),
            };
            Some((name, p["bytes"].as_u64()?, p["bits_per_weight"].as_f64()?, p["kld_mean"].as_f64()?))
        })
        .collect();
    if let (Some(b), Some(bpw), Some(k)) =
        (plan["predicted"]["bytes"].as_u64(), plan["predicted"]["bits_per_weight"].as_f64(), own.1)
    {
        rows.push((format!("<b>this plan ({})</b>", esc(plan["solver"].as_str().unwrap_or("–"))), b, bpw, k));
    }
    rows.sort_by_key(|r| r.1);
    for (name, b, bpw, k) in rows {
        let name = if name.starts_with("<b>") { name } else { esc(&name) };
        let _ = writeln!(h, "<tr><td class=\"l\">{name}</td><td>{b}</td><td>{bpw:.3}</td><td>{}</td></tr>", sig(k));
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_every_type_escapes_and_marks_removed_blocks() {
        let plan = serde_json::json!({
            "budget": "size=<1>", "solver": "evo",
            "predicted": {"bytes": 2048, "bits_per_weight": 5.5},
            "tensors": {"blk.0.attn_q.weight": {"type": "Q8_0"}, "blk.0.ffn_down.weight": {"type": "Q2_K"}, "blk.0.ffn_up.weight": {"type": "F16", "sparsity": 0.7}, "token_embd.weight": {"type": "IQ4_NL"}},
            "drop_blocks": [1], "drop_attention": [0],
            "sensitivity": {"blk.0.attn_q.weight": 0.01},
        });
        let h = render("m<x>.gguf", &plan, 2, None);
        for s in [
            "Q8_0",
            "Q2_K",
            "IQ4_NL",
            "F16 · 70%",
            "removed",
            "size=&lt;1&gt;",
            "m&lt;x&gt;.gguf",
            "0.0100",
            "\nattn_q\n",
        ] {
            assert!(h.contains(s), "{s} missing");
        }
        assert!(!h.contains("<x>"));
        assert!(!h.contains("attn_qkv"));
        // No frontier in the plan: no size plot.
        assert!(!h.contains("Size and quality"));
        assert!(!h.contains("Sampled estimates"));
    }

    #[test]
    fn shows_a_sampled_databases_estimates_against_the_whole_tensors() {
        let plan = serde_json::json!({
            "budget": "bpw=4.5", "solver": "lagrange",
            "tensors": {"blk.0.attn_q.weight": {"type": "Q4_K"}, "blk.0.ffn_down.weight": {"type": "IQ4_XS"}},
            "estimates": {
                "blk.0.attn_q.weight": {"type": "Q4_K", "rel_error": 0.0210, "stderr": 0.0005, "rows": 256, "of_rows": 4096, "whole": 0.0212},
                "blk.0.ffn_down.weight": {"type": "IQ4_XS", "rel_error": 0.0300, "stderr": 0.0010, "rows": 256, "of_rows": 4096, "whole": 0.0330},
            },
        });
        let h = render("m.gguf", &plan, 1, None);
        assert!(h.contains("Of 2 sampled tensors, the whole tensor's error lies within one standard error of the estimate for 1 and within two for 1."), "{h}");
        assert!(h.contains("256 of 4096") && h.contains("0.0330"));
    }

    #[test]
    fn fused_linears_get_their_own_columns() {
        let plan = serde_json::json!({"tensors": {"blk.0.attn_qkv.weight": {"type": "Q6_K"}, "blk.0.ffn_up.weight": {"type": "Q4_K"}}});
        let h = render("phi3.gguf", &plan, 1, None);
        assert!(h.contains("\nattn_qkv\n") && !h.contains("\nattn_q\n") && !h.contains("\nffn_gate\n"));
        assert!(h.contains("Q6_K") && h.contains("Q4_K"));
    }

    #[test]
    fn draws_the_frontier_with_the_plans_own_point() {
        let plan = serde_json::json!({
            "solver": "evo", "predicted": {"bytes": 3 * 1048576, "bits_per_weight": 4.2}, "fitness": {"kld_mean": 0.02},
            "tensors": {"blk.0.attn_q.weight": {"type": "Q4_K"}},
            "frontier": [
                {"solver": "single type", "type": "Q3_K", "bytes": 2 * 1048576, "bits_per_weight": 3.5, "kld_mean": 0.09},
                {"solver": "single type", "type": "IQ3_S", "bytes": 2 * 1048576, "bits_per_weight": 3.5, "kld_mean": 0.095},
                {"solver": "single type", "type": "Q5_K", "bytes": 4 * 1048576, "bits_per_weight": 5.5, "kld_mean": 0.01},
                {"solver": "lagrange", "type": null, "bytes": 2 * 1048576 - 64, "bits_per_weight": 3.49, "kld_mean": 0.05},
            ],
        });
        let h = render("m.gguf", &plan, 1, None);
        for s in [
            "Size and quality",
            "one type everywhere",
            "Lagrangian allocation",
            "this plan (evo)",
            "single type Q3_K",
            "<b>this plan (evo)</b>",
            "0.0500",
        ] {
            assert!(h.contains(s), "{s} missing");
        }
        // Table rows by size: the Lagrangian plan, Q3_K, this plan, Q5_K.
        let at = |s: &str| h.find(s).unwrap();
        assert!(
            at(">lagrange<") < at("single type Q3_K")
                && at("single type Q3_K") < at("<b>this plan")
                && at("<b>this plan") < at("single type Q5_K")
        );
        // Two types of one size are named once, together, in the picture.
        assert!(h.contains("\nQ3_K, IQ3_S\n") && !h.contains("\nIQ3_S\n"), "one label for the two types of one size");
    }
}
