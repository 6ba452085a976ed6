//! Report tests on a synthetic, Qwen2.5-0.5B-shaped profile (30 blocks, hidden 896, FFN 4864).

use std::collections::BTreeMap;

use super::fmt::ranks;
use super::*;
use crate::importance::profile::{
    AttentionStats, BlockProfile, CalibrationInfo, Correlation, LinearProfile, ModelInfo, SublayerProfile,
    SCHEMA_VERSION,
};

/// Deterministic pseudo-random numbers in [0, 1) (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / 2f64.powi(64)
    }
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a, true), ranks(b, true));
    let n = a.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (x, y) = (*x as f64 - mean, *y as f64 - mean);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt() // NaN for a constant signal, as a real profile may have
}

pub(super) fn synthetic(n_blocks: usize) -> Profile {
    let mut rng = Rng(7);
    let (hidden, ffn) = (896usize, 4864usize);
    let mut blocks = vec![];
    let mut sublayers = vec![];
    let mut linears = vec![];
    for i in 0..n_blocks {
        let depth = i as f64 / n_blocks.max(2).saturating_sub(1) as f64;
        let edge = (-(depth * 12.0)).exp() + (-((1.0 - depth) * 10.0)).exp();
        let kld = if i == n_blocks / 2 && n_blocks > 2 { 0.0 } else { 2e-3 * (1.0 + 9.0 * rng.next()) + 4.0 * edge };
        blocks.push(BlockProfile {
            index: i,
            block_influence: 0.04 + 0.04 * rng.next() + 0.4 * edge,
            ablation_kld: kld,
            weight_norm: 60.0 + 40.0 * depth + 5.0 * rng.next(),
            outlier_ratio: 0.002 + 0.004 * rng.next() + 0.01 * edge,
            attention: AttentionStats {
                row_entropy: 1.0 + 2.0 * depth + 0.3 * rng.next(),
                received_entropy: 0.35 + 0.3 * rng.next(),
                sink_share: 0.2 + 0.6 * depth * rng.next(),
            },
        });
        for (k, kind) in ["attention", "mlp"].iter().enumerate() {
            let kld = if i == 3 && k == 0 { 0.0 } else { 1e-4 * (1.0 + 30.0 * rng.next()) + 2.0 * edge };
            sublayers.push(SublayerProfile {
                block: i,
                kind: kind.to_string(),
                redundancy: 0.85 + 0.14 * rng.next() - 0.2 * edge,
                ablation_kld: kld,
            });
        }
        for (name, rows, cols) in [
            ("attn_q", hidden, hidden),
            ("attn_k", 128, hidden),
            ("attn_v", 128, hidden),
            ("attn_output", hidden, hidden),
            ("ffn_gate", ffn, hidden),
            ("ffn_up", ffn, hidden),
            ("ffn_down", hidden, ffn),
        ] {
            let hard = 1.0 + 2.0 * rng.next() + 3.0 * edge;
            let mut q = BTreeMap::new();
            for bits in 2..=8 {
                q.insert(format!("RTN{bits}"), hard * 0.9 * 2f64.powi(-bits) * 2.2);
            }
            for (t, bpw) in [("Q4_0", 4.5), ("Q4_1", 5.0), ("Q5_0", 5.5), ("Q5_1", 6.0), ("Q8_0", 8.5)] {
                q.insert(t.to_string(), hard * 2f64.powf(-bpw) * 1.6);
            }
            if cols % 256 == 0 {
                for (t, bpw) in [("Q2_K", 2.6), ("Q3_K", 3.4), ("Q4_K", 4.5), ("Q5_K", 5.5), ("Q6_K", 6.6)] {
                    q.insert(t.to_string(), hard * 2f64.powf(-bpw) * 1.3);
                }
            }
            if rng.next() < 0.05 {
                q.remove("Q4_1"); // a measurement that was skipped
            }
            if i == 0 && name == "attn_k" {
                q.insert("RTN8".into(), 0.0); // exact zero must not break the log colour scale
            }
            linears.push(LinearProfile {
                name: format!("blk.{i}.{name}.weight"),
                block: i,
                rows,
                cols,
                weight_norm: 10.0 + 5.0 * rng.next(),
                outlier_ratio: 0.001 + 0.01 * rng.next(),
                imatrix_mean: 0.1 + rng.next(),
                quant_error: q,
                full_kld: BTreeMap::new(),
            });
        }
    }
    // The same signals as `importance::run` correlates.
    let sub = |kind: &str, f: fn(&SublayerProfile) -> f64| -> Vec<f64> {
        sublayers.iter().filter(|s| s.kind == kind).map(f).collect()
    };
    let per_block = |f: fn(&BlockProfile) -> f64| -> Vec<f64> { blocks.iter().map(f).collect() };
    let q4 = |b: usize| {
        let e: Vec<f64> = linears.iter().filter(|l| l.block == b).map(|l| l.quant_error["Q4_0"]).collect();
        e.iter().sum::<f64>() / e.len() as f64
    };
    let named: Vec<(&str, Vec<f64>)> = vec![
        ("block_influence", per_block(|b| b.block_influence)),
        ("ablation_kld", per_block(|b| b.ablation_kld)),
        ("attention_ablation_kld", sub("attention", |s| s.ablation_kld)),
        ("mlp_ablation_kld", sub("mlp", |s| s.ablation_kld)),
        ("attention_redundancy", sub("attention", |s| s.redundancy)),
        ("mlp_redundancy", sub("mlp", |s| s.redundancy)),
        ("weight_norm", per_block(|b| b.weight_norm)),
        ("outlier_ratio", per_block(|b| b.outlier_ratio)),
        ("quant_error_4bit", blocks.iter().map(|b| q4(b.index)).collect()),
        ("attention_entropy", per_block(|b| b.attention.row_entropy)),
        ("sink_share", per_block(|b| b.attention.sink_share)),
    ];
    let series: Vec<Vec<f64>> = named.iter().map(|(_, v)| v.clone()).collect();
    let matrix = series.iter().map(|a| series.iter().map(|b| spearman(a, b)).collect()).collect();
    let timings = [("load<model>", 1.2), ("forward", 35.5), ("ablation", 612.0), ("quant_error", 88.0)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    Profile {
        schema_version: SCHEMA_VERSION,
        model: ModelInfo {
            path: "/models/qwen <0.5B> & \"friends\".gguf".into(),
            architecture: "qwen2<script>".into(),
            n_blocks,
            hidden_size: hidden,
            n_params: 494_032_768,
        },
        calibration: CalibrationInfo {
            path: "assets/wiki.test.raw".into(),
            ctx: 512,
            tokens: 65_536,
            ablation_tokens: 8192,
            attention_tokens: 4096,
        },
        blocks,
        sublayers,
        linears,
        correlation: Correlation { signals: named.iter().map(|(n, _)| n.to_string()).collect(), matrix },
        timings,
    }
}

/// Words that would betray a non-finite number reaching the page.
fn non_finite_words(html: &str) -> Vec<String> {
    html.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| matches!(w.to_ascii_lowercase().as_str(), "nan" | "inf" | "infinity"))
        .map(|w| w.to_string())
        .collect()
}

#[test]
fn renders_the_synthetic_profile() {
    let p = synthetic(30);
    assert_eq!((p.blocks.len(), p.sublayers.len(), p.linears.len()), (30, 60, 210));
    let html = render(&p);
    let path = std::env::temp_dir().join("triage_report_synthetic.html");
    std::fs::write(&path, &html).unwrap();
    eprintln!("wrote {}", path.display());

    for title in [TITLE_HEADER, TITLE_BLOCKS, TITLE_QUANT, TITLE_CORR, TITLE_CANDIDATES] {
        assert!(html.contains(&format!("{title}</h")), "missing section {title}");
    }
    // 7 per-block plots, 2 sublayer plots, the quantization heatmap, the correlation matrix.
    assert_eq!(html.matches("<svg").count(), 11);
    assert_eq!(html.matches("</svg>").count(), 11);
    assert!(!html.contains("plot failed"));
    // Escaping: nothing from the profile arrives as markup.
    assert!(html.contains("/models/qwen &lt;0.5B&gt; &amp; &quot;friends&quot;.gguf"));
    assert!(html.contains("qwen2&lt;script&gt;"));
    assert!(html.contains("load&lt;model&gt;"));
    assert!(!html.contains("<script") && !html.contains("<0.5B>") && !html.contains("<model>"));
    assert!(non_finite_words(&html).is_empty(), "{:?}", non_finite_words(&html));
    // Self-contained: no external resources.
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("url("));
    // Heatmap columns: only types that occur, in the fixed order.
    let heat = html.split("Relative output error by linear and type").nth(1).unwrap();
    let pos = |t: &str| heat.find(&format!(">\n{t}\n<")).unwrap_or_else(|| panic!("no column {t}"));
    assert!(pos("RTN2") < pos("RTN8") && pos("RTN8") < pos("Q2_K") && pos("Q6_K") < pos("Q8_0"));
    assert!(heat.contains(">\nblk.29\n<"));
    // Removal tables: 8 blocks + 8 sublayers; the zero-KL block and sublayer come first.
    let tables = html.split(TITLE_CANDIDATES).nth(1).unwrap();
    assert_eq!(tables.matches("<tr><td>").count(), 16);
    assert!(tables.contains("<tr><td>15</td><td>0</td><td>1</td>"));
    assert!(tables.contains("<tr><td>3</td><td class=\"l\">attention</td><td>0</td><td>1</td>"));
}

#[test]
fn renders_tiny_and_degenerate_profiles() {
    let one = synthetic(1);
    let html = render(&one);
    assert_eq!(html.matches("<svg").count(), 11);
    assert!(!html.contains("plot failed"));
    assert!(non_finite_words(&html).is_empty(), "{:?}", non_finite_words(&html));

    // Nothing measured at all, and NaNs where numbers should be.
    let mut empty = synthetic(0);
    empty.correlation = Correlation { signals: vec![], matrix: vec![] };
    empty.timings.clear();
    let html = render(&empty);
    assert!(html.contains(TITLE_CANDIDATES) && !html.contains("plot failed"));

    let mut odd = synthetic(4);
    odd.blocks[1].ablation_kld = f64::NAN;
    odd.blocks[2].block_influence = f64::INFINITY;
    odd.blocks.iter_mut().for_each(|b| b.weight_norm = 3.0); // constant series
    odd.sublayers[0].redundancy = f64::NEG_INFINITY;
    odd.linears[0].quant_error.insert("RTN4".into(), f64::NAN);
    odd.correlation.matrix[0][1] = f64::NAN;
    odd.correlation.matrix.pop(); // ragged matrix
    let html = render(&odd);
    assert!(!html.contains("plot failed"));
    assert!(non_finite_words(&html).is_empty(), "{:?}", non_finite_words(&html));
}
