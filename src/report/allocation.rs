//! The allocation report: one self-contained HTML page showing what a budgeted compression chose
//! — the type of every tensor by block, each tensor's measured sensitivity, the bytes per type —
//! and what it cost in quality (KL on hold-out calibration windows; on evaluation text when
//! measured).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::fmt::{esc, seconds, sig};
use crate::ggml::types::QuantType;
use crate::eval::EvalReport;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#222;\
margin:0 auto;max-width:1200px;padding:12px 20px 40px;background:#fafafa}h1{font-size:24px}\
h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ccc}p.note{font-size:13px;color:#444;max-width:1000px}\
table{border-collapse:collapse;font-size:13px;background:#fff;margin:4px 0 8px}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}\
td.c{text-align:center;font-family:ui-monospace,monospace;font-size:12px}";

const KINDS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
/// The linears of a block whose q/k/v and gate/up are fused (Phi-3).
const FUSED_KINDS: [&str; 4] = ["attn_qkv", "attn_output", "ffn_up", "ffn_down"];

/// The columns of the per-block tables: fused when the plan names a fused linear.
fn kinds<'a>(names: impl IntoIterator<Item = &'a String>) -> &'static [&'static str] {
    if names.into_iter().any(|n| n.contains(".attn_qkv.")) { &FUSED_KINDS } else { &KINDS }
}

/// Background for a cell: light (few bits) to dark blue (many), `t` in [0, 1].
fn shade(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let (r, g, b) = (235.0 - 170.0 * t, 242.0 - 120.0 * t, 255.0 - 60.0 * t);
    format!("rgb({},{},{})", r as u8, g as u8, b as u8)
}

fn text_colour(t: f64) -> &'static str {
    if t > 0.65 {
        "#fff"
    } else {
        "#111"
    }
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
        ("predicted file size", pred["bytes"].as_u64().map_or("–".into(), |b| format!("{b} bytes ({:.2} MiB)", b as f64 / 1048576.0))),
        ("bits per weight (all tensors)", pred["bits_per_weight"].as_f64().map_or("–".into(), |b| format!("{b:.3}"))),
        ("KL on hold-out calibration windows", get("fitness")["kld_mean"].as_f64().map_or("–".into(), sig)),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th class=\"l\">{k}</th><td class=\"l\">{v}</td></tr>");
    }
    h.push_str("</table>\n");
    if let Some((text, q)) = quality {
        let _ = writeln!(h, "<h2>Measured quality</h2>\n<p class=\"note\">Against the original model on <code>{}</code>: {} windows of {} tokens, every position scored.</p>", esc(text), q.windows, q.ctx);
        h.push_str("<table>\n<tr><th>PPL</th><th>mean KL</th><th>median KL</th><th>p99 KL</th><th>same top-1</th></tr>\n");
        let f = |x: Option<f64>| x.map_or("–".into(), sig);
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n</table>", sig(q.ppl), f(q.kld_mean), f(q.kld_median), f(q.kld_p99), q.top1_agree.map_or("–".into(), |a| format!("{:.2}%", 100.0 * a)));
    }
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
    let blocks = |key: &str| -> Vec<usize> { plan.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_u64().map(|i| i as usize)).collect()).unwrap_or_default() };
    let (dropped, no_attention, no_mlp) = (blocks("drop_blocks"), blocks("drop_attention"), blocks("drop_mlp"));
    let type_of = |name: &str| tensors.get(name).and_then(|s| s.get("type")).and_then(Value::as_str).and_then(QuantType::from_name);
    // The share pruned, when the plan prunes (a number; N:M patterns are shown by their type only).
    let share_of = |name: &str| tensors.get(name).and_then(|s| s.get("sparsity")).and_then(Value::as_f64);
    // Bits per weight kept: a pruned tensor's type costs only on the weights it keeps.
    let bits = |name: &str| type_of(name).map(|t| t.bits_per_weight() * (1.0 - share_of(name).unwrap_or(0.0)));
    let bpws: Vec<f64> = tensors.keys().filter_map(|n| bits(n)).collect();
    let (lo, hi) = bpws.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    h.push_str("<h2>Allocation</h2>\n<p class=\"note\">The GGUF type of every tensor (and the share of its weights pruned), by block; darker cells keep more bits per weight. Removed blocks are marked.</p>\n<table>\n<tr><th>block</th>");
    let cols = kinds(tensors.keys());
    for k in cols {
        let _ = write!(h, "<th>{k}</th>");
    }
    h.push_str("</tr>\n");
    let cell = |h: &mut String, name: &str| match (type_of(name), bits(name)) {
        (Some(t), Some(b)) => {
            let x = (b - lo) / span;
            let pruned = share_of(name).map_or(String::new(), |p| format!(" · {:.0}%", 100.0 * p));
            let _ = write!(h, "<td class=\"c\" style=\"background:{};color:{}\">{}{pruned}</td>", shade(x), text_colour(x), t.name());
        }
        _ => h.push_str("<td class=\"c\">source</td>"),
    };
    for b in 0..n_blocks {
        let _ = write!(h, "<tr><th>{b}</th>");
        if dropped.contains(&b) {
            let _ = write!(h, "<td class=\"c\" colspan=\"{}\" style=\"background:#eee\">removed</td>", cols.len());
        } else {
            for k in cols {
                if (k.starts_with("attn") && no_attention.contains(&b)) || (k.starts_with("ffn") && no_mlp.contains(&b)) {
                    h.push_str("<td class=\"c\" style=\"background:#eee\">removed</td>");
                } else {
                    cell(&mut h, &format!("blk.{b}.{k}.weight"));
                }
            }
        }
        h.push_str("</tr>\n");
    }
    for name in ["token_embd.weight", "output.weight"] {
        if tensors.contains_key(name) {
            let _ = write!(h, "<tr><th>{}</th>", name.trim_end_matches(".weight"));
            cell(&mut h, name);
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table>\n");
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
        h.push_str("<h2>Sensitivity</h2>\n<p class=\"note\">KL(original ‖ model) when only this tensor is at its worst type (one calibration window): the a·t² curves the Lagrangian solver starts from. Darker is more sensitive.</p>\n<table>\n<tr><th>block</th>");
        let cols = kinds(s.keys());
        for k in cols {
            let _ = write!(h, "<th>{k}</th>");
        }
        h.push_str("</tr>\n");
        let logs: Vec<f64> = s.values().filter_map(Value::as_f64).filter(|&x| x > 0.0).map(f64::log10).collect();
        let (slo, shi) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let sspan = if shi > slo { shi - slo } else { 1.0 };
        for b in 0..n_blocks {
            let _ = write!(h, "<tr><th>{b}</th>");
            for k in cols {
                match s.get(&format!("blk.{b}.{k}.weight")).and_then(Value::as_f64) {
                    Some(x) if x > 0.0 => {
                        let t = (x.log10() - slo) / sspan;
                        let _ = write!(h, "<td style=\"background:{};color:{}\">{}</td>", shade(t), text_colour(t), sig(x));
                    }
                    Some(x) => {
                        let _ = write!(h, "<td>{}</td>", sig(x));
                    }
                    None => h.push_str("<td></td>"),
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if let Some(Value::Array(bi)) = plan.get("block_influence") {
        h.push_str("<h2>Block influence</h2>\n<p class=\"note\">ShortGPT's 1 − cos(h<sub>i</sub>, h<sub>i+1</sub>) on the search windows; ShortGPT removes the lowest.</p>\n<table>\n<tr><th>block</th><th>influence</th><th>removed</th></tr>\n");
        for (b, v) in bi.iter().enumerate() {
            let _ = writeln!(h, "<tr><td>{b}</td><td>{}</td><td>{}</td></tr>", v.as_f64().map_or("–".into(), sig), if dropped.contains(&b) { "yes" } else { "" });
        }
        h.push_str("</table>\n");
    }
    if let Some(Value::Object(si)) = plan.get("sublayer_influence") {
        h.push_str("<h2>Sublayer influence</h2>\n<p class=\"note\">1 − cos(input, input + branch) of each block's attention and MLP on the search windows; ShortGPT's rule removes the lowest.</p>\n<table>\n<tr><th>block</th><th>attention</th><th>MLP</th><th>removed</th></tr>\n");
        let col = |k: &str, b: usize| si.get(k).and_then(|v| v.get(b)).and_then(Value::as_f64).map_or("–".into(), sig);
        for b in 0..n_blocks {
            let gone = if dropped.contains(&b) { "block" } else if no_attention.contains(&b) { "attention" } else if no_mlp.contains(&b) { "MLP" } else { "" };
            let _ = writeln!(h, "<tr><td>{b}</td><td>{}</td><td>{}</td><td>{gone}</td></tr>", col("attention", b), col("mlp", b));
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
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
        for s in ["Q8_0", "Q2_K", "IQ4_NL", "F16 · 70%", "removed", "size=&lt;1&gt;", "m&lt;x&gt;.gguf", "0.0100"] {
            assert!(h.contains(s), "{s} missing");
        }
        assert!(!h.contains("<x>"));
        assert!(h.contains("<th>attn_q</th>") && !h.contains("<th>attn_qkv</th>"));
    }

    #[test]
    fn fused_linears_get_their_own_columns() {
        let plan = serde_json::json!({"tensors": {"blk.0.attn_qkv.weight": {"type": "Q6_K"}, "blk.0.ffn_up.weight": {"type": "Q4_K"}}});
        let h = render("phi3.gguf", &plan, 1, None);
        assert!(h.contains("<th>attn_qkv</th>") && !h.contains("<th>attn_q</th>") && !h.contains("<th>ffn_gate</th>"));
        assert!(h.contains("Q6_K") && h.contains("Q4_K"));
    }
}
