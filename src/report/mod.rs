//! The profile report: one self-contained HTML page with inline SVG plots.
//!
//! [`render`] turns a [`Profile`] into a page with no external resources and no scripts:
//! a header (model, calibration, timings), per-block and per-sublayer line plots, a heatmap of
//! per-linear quantization errors, the signals' correlation matrix, and tables of the blocks and
//! sublayers that are the cheapest to remove. Plots are drawn by `svg` with plotters' SVG
//! backend; every piece of text from the profile is HTML-escaped.

pub mod allocation;
mod fmt;
mod heatmap;
mod size_plot;
mod svg;
mod tables;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use crate::importance::profile::{BlockProfile, Profile};
use crate::model::TensorId;
use fmt::{count, esc, seconds, sig};
use svg::{Line, SERIES};

const TITLE_HEADER: &str = "Importance profile";
const TITLE_BLOCKS: &str = "Per-block and per-sublayer signals";
const TITLE_QUANT: &str = "Quantization error per linear";
const TITLE_CORR: &str = "Agreement between signals";
const TITLE_CANDIDATES: &str = "Top candidates for removal";

/// How many blocks and sublayers the removal tables list.
const TOP_N: usize = 8;

/// Heatmap column order; types not listed here (none today) follow, sorted by name.
const QUANT_ORDER: [&str; 23] = [
    "RTN2", "RTN3", "RTN4", "RTN5", "RTN6", "RTN7", "RTN8", "IQ2_XS", "IQ2_S", "Q2_K", "IQ3_XXS", "Q3_K", "IQ3_S",
    "IQ4_XS", "Q4_0", "IQ4_NL", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0",
];

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#222;\
margin:0 auto;max-width:1400px;padding:12px 20px 40px;background:#fafafa}\
h1{font-size:24px;margin:8px 0 12px}\
h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ccc}\
h3{font-size:14px;margin:0 0 4px}\
p.note{font-size:13px;color:#444;max-width:1000px;margin:4px 0 10px}\
.grid{display:flex;flex-wrap:wrap;gap:14px}\
figure{margin:0;padding:8px;background:#fff;border:1px solid #ddd;border-radius:4px;\
width:min-content}\
figcaption{font-size:12.5px;line-height:1.35;color:#333;margin-top:4px}\
svg{display:block}\
table{border-collapse:collapse;font-size:13px;background:#fff;margin:4px 0 8px}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f0f0f0}\
td.l,th.l{text-align:left}.meta td,.meta th{text-align:left}\
.cols{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}\
.sw{display:inline-block;width:18px;height:4px;vertical-align:middle;margin:0 4px 0 8px}\
.err{color:#b00}code{font-size:12px}";

/// The whole report for `profile`: one self-contained HTML page.
pub fn render(profile: &Profile) -> String {
    let mut h = String::with_capacity(1 << 20);
    let name = profile.model.path.rsplit(['/', '\\']).next().unwrap_or("");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>triage · {} · {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        TITLE_HEADER,
        esc(name)
    );
    header(&mut h, profile);
    blocks(&mut h, profile);
    quant(&mut h, profile);
    correlation(&mut h, profile);
    tables::candidates(&mut h, profile);
    h.push_str("</body>\n</html>\n");
    h
}

fn header(h: &mut String, p: &Profile) {
    let m = &p.model;
    let c = &p.calibration;
    let _ = write!(h, "<h1>{TITLE_HEADER}</h1>\n<div class=\"cols\">\n<table class=\"meta\">\n");
    let rows: [(&str, String); 11] = [
        ("model", format!("<code>{}</code>", esc(&m.path))),
        ("architecture", esc(&m.architecture)),
        ("blocks", m.n_blocks.to_string()),
        ("hidden size", m.hidden_size.to_string()),
        ("parameters", count(m.n_params)),
        ("calibration text", format!("<code>{}</code>", esc(&c.path))),
        ("context", format!("{} tokens", c.ctx)),
        ("calibration tokens", c.tokens.to_string()),
        ("ablation tokens", c.ablation_tokens.to_string()),
        ("attention tokens", c.attention_tokens.to_string()),
        ("schema version", p.schema_version.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>\n<table class=\"meta\">\n<tr><th>stage</th><th>time</th></tr>\n");
    for (stage, s) in &p.timings {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(stage), seconds(*s));
    }
    let total: f64 = p.timings.values().filter(|s| s.is_finite()).sum();
    let _ = writeln!(h, "<tr><th>total</th><th>{}</th></tr>\n</table>\n</div>", seconds(total));
}

/// One `<figure>`: title, the plot (or the error in its place), caption (trusted HTML).
fn figure(h: &mut String, class: &str, title: &str, plot: Result<String, String>, caption: &str) {
    let _ = write!(h, "<figure class=\"{class}\">\n<h3>{}</h3>\n", esc(title));
    match plot {
        Ok(svg) => h.push_str(&svg),
        Err(e) => {
            let _ = write!(h, "<p class=\"err\">{}</p>", esc(&e));
        }
    }
    let _ = write!(h, "\n<figcaption>{caption}</figcaption>\n</figure>\n");
}

fn legend(entries: &[(String, usize)]) -> String {
    let mut s = String::new();
    for (label, i) in entries {
        let _ = write!(
            s,
            "<span class=\"sw\" style=\"background:{}\"></span>{}",
            svg::hex(SERIES[i % SERIES.len()]),
            esc(label)
        );
    }
    s
}

type Signal = fn(&BlockProfile) -> f64;

fn blocks(h: &mut String, p: &Profile) {
    const LOG_NOTE: &str = " Log scale; values ≤ 0 sit on the bottom edge as open circles.";
    let plots: [(&str, &str, Signal, bool, &str); 7] = [
        ("Block influence", "1 − cos(in, out)", |b| b.block_influence, false,
         "ShortGPT's <i>block influence</i> (Men et al., 2024): 1 − mean cosine similarity \
          between a block's input and output hidden states. Low = the block barely changes \
          the hidden state, so it is a candidate for removal."),
        ("Ablation ΔKL", "KL (nats / position)", |b| b.ablation_kld, true,
         "Mean KL(full ‖ model without this block) per calibration position: the direct cost \
          of skipping the block alone. EvoPress (Sieberling et al., 2024) warns that such \
          per-layer errors are not additive: removing several blocks can cost far more than \
          the sum of their single costs."),
        ("Weight norm", "‖W‖_F", |b| b.weight_norm, false,
         "Frobenius norm of all the block's linear weights together. LISA (Pan et al., 2024) \
          observed strongly skewed weight norms across layers and took it as evidence that \
          layers matter unequally."),
        ("Outlier ratio", "share > 5× mean", |b| b.outlier_ratio, false,
         "OWL (Yin et al., 2024): share of the block's Wanda scores \
          |W<sub>ij</sub>|·‖X<sub>j</sub>‖ above 5× their mean. Blocks with more outliers are more sensitive; OWL prunes them \
          less."),
        ("Attention row entropy", "entropy (nats)", |b| b.attention.row_entropy, false,
         "Mean entropy of each query's attention distribution, over heads and windows. Low = \
          sharply focused attention. Q-VLM (Wang et al., 2024) uses entropy as a proxy for how \
          strongly layers depend on one another when quantizing."),
        ("Received-attention entropy", "entropy / ln(tokens)", |b| b.attention.received_entropy,
         false,
         "Entropy of the attention each token receives (RSQ's token importance r<sub>t</sub>, \
          Sung et al., 2025), divided by ln(tokens): 1 = spread evenly, near 0 = concentrated \
          on a few tokens, which RSQ weights most when quantizing."),
        ("Attention sink share", "share of attention", |b| b.attention.sink_share, false,
         "Share of all attention received by the first token of the window (the attention \
          sink). A high share means the block's token importance (RSQ) is dominated by the \
          sink rather than by content tokens."),
    ];
    let _ = write!(
        h,
        "<h2>{TITLE_BLOCKS}</h2>\n<p class=\"note\">x = block index in every plot. The first seven \
         plots take each block whole; the last two split it into its attention and MLP \
         sublayers.</p>\n<div class=\"grid\">\n"
    );
    for (title, y_desc, signal, log, caption) in plots {
        let line = Line { color: SERIES[0], points: p.blocks.iter().map(|b| (b.index as i32, signal(b))).collect() };
        let caption = if log { format!("{caption}{LOG_NOTE}") } else { caption.to_string() };
        figure(h, "small", title, svg::line_plot(&[line], y_desc, log), &caption);
    }
    sublayers(h, p);
    h.push_str("</div>\n");
}

/// The two sublayer figures, inside the per-block grid.
fn sublayers(h: &mut String, p: &Profile) {
    let mut kinds: Vec<&str> = vec![];
    for s in &p.sublayers {
        if !kinds.contains(&s.kind.as_str()) {
            kinds.push(&s.kind);
        }
    }
    let lines = |value: fn(&crate::importance::profile::SublayerProfile) -> f64| -> Vec<Line> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| Line {
                color: SERIES[i % SERIES.len()],
                points: p.sublayers.iter().filter(|s| s.kind == *k).map(|s| (s.block as i32, value(s))).collect(),
            })
            .collect()
    };
    let key = legend(&kinds.iter().enumerate().map(|(i, k)| (k.to_string(), i)).collect::<Vec<_>>());
    figure(
        h,
        "small",
        "Sublayer redundancy",
        svg::line_plot(&lines(|s| s.redundancy), "cos(x, x + f(x))", false),
        &format!(
            "{key}<br>LLM-Drop (He et al., 2024, <i>What Matters in Transformers? Not All \
             Attention Is Needed</i>): mean cos(x, x + f(norm(x))) per sublayer. Near 1 = the \
             sublayer barely changes the residual stream; the paper finds deep attention \
             sublayers especially redundant."
        ),
    );
    figure(
        h,
        "small",
        "Sublayer ablation ΔKL",
        svg::line_plot(&lines(|s| s.ablation_kld), "KL (nats / position)", true),
        &format!(
            "{key}<br>Mean KL(full ‖ model without this sublayer) per position. High redundancy \
             does not guarantee a low cost; as EvoPress (Sieberling et al., 2024) shows, the \
             costs of several removals are not additive. Log scale; values ≤ 0 sit on the bottom \
             edge as open circles."
        ),
    );
}

fn quant(h: &mut String, p: &Profile) {
    let _ = writeln!(h, "<h2>{TITLE_QUANT}</h2>");
    let mut columns: Vec<String> = QUANT_ORDER
        .iter()
        .filter(|t| p.linears.iter().any(|l| l.quant_error.contains_key(**t)))
        .map(|t| t.to_string())
        .collect();
    let mut extra: Vec<String> = p
        .linears
        .iter()
        .flat_map(|l| l.quant_error.keys())
        .filter(|t| !QUANT_ORDER.contains(&t.as_str()))
        .cloned()
        .collect();
    extra.sort();
    extra.dedup();
    columns.extend(extra);
    if columns.is_empty() {
        h.push_str("<p class=\"note\">No quantization errors in this profile.</p>\n");
        return;
    }
    let mut linears: Vec<_> = p.linears.iter().collect();
    linears.sort_by_key(|l| l.block); // stable: profile order within a block
    let rows: Vec<heatmap::HeatRow> = linears
        .iter()
        .map(|l| heatmap::HeatRow {
            block: l.block,
            cells: columns.iter().map(|c| l.quant_error.get(c).copied()).collect(),
        })
        .collect();
    let first_block = linears.first().map(|l| l.block);
    let within: Vec<String> = linears
        .iter()
        .filter(|l| Some(l.block) == first_block)
        .map(|l| {
            // The kind alone for a weight of the block (`ffn_down`), else the whole name.
            let short = match TensorId::parse_gguf(&l.name) {
                Some(id) if id == TensorId::block(l.block, id.kind) => id.kind.gguf_name(),
                _ => &l.name,
            };
            format!("<code>{}</code>", esc(short))
        })
        .collect();
    let caption = format!(
        "Each cell is one linear's relative output error ‖(W − Q(W))X‖ / ‖WX‖ on the calibration \
         inputs X under one quantization type — the layer-wise objective GPTQ (Frantar et al., \
         2023) minimises. Colour is log<sub>10</sub> of the error; grey cells are types the \
         tensor's row width does not allow. RTN<i>k</i>: asymmetric round-to-nearest, <i>k</i> \
         bits, groups of 32. Rows are the {} linears in block order (within a block: {}). These \
         errors are the input to bit allocation: tensors that quantize cheaply can take fewer \
         bits.",
        linears.len(),
        within.join(", ")
    );
    figure(h, "wide", "Relative output error by linear and type", heatmap::quant_heatmap(&rows, &columns), &caption);
    // Per-type summary across linears.
    h.push_str("<table>\n<tr><th class=\"l\">type</th>");
    for c in &columns {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    for (label, q) in [("median", 0.5), ("max", 1.0)] {
        let _ = write!(h, "</tr>\n<tr><th class=\"l\">{label}</th>");
        for c in &columns {
            let mut v: Vec<f64> =
                p.linears.iter().filter_map(|l| l.quant_error.get(c)).copied().filter(|v| v.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let x = if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * q).round() as usize] };
            let _ = write!(h, "<td>{}</td>", sig(x));
        }
    }
    h.push_str("</tr>\n</table>\n");
}

fn correlation(h: &mut String, p: &Profile) {
    let _ = writeln!(h, "<h2>{TITLE_CORR}</h2>");
    let c = &p.correlation;
    if c.signals.is_empty() {
        h.push_str("<p class=\"note\">No correlation matrix in this profile.</p>\n");
        return;
    }
    let caption = "Spearman's ρ between per-block signals, over blocks: +1 = the two signals rank \
        the blocks identically, −1 = in opposite order, near 0 = unrelated. Mind the signs: high \
        block influence, ablation ΔKL or outlier ratio mean \"important\", high redundancy \
        means \"removable\", so a proxy that agrees with ablation correlates negatively there. \
        Cheap proxies are only worth trusting where they agree with the measured ablation ΔKL; \
        EvoPress (Sieberling et al., 2024) shows they often disagree.";
    figure(h, "wide", "Spearman rank correlation", heatmap::corr_heatmap(&c.signals, &c.matrix), caption);
}
