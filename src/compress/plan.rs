//! A compression plan: the type (and sparsity) of every tensor to change, and the blocks or
//! sublayers to remove. `triage compress` builds a uniform one from its flags or reads one from
//! JSON (what `triage plan` writes):
//!
//! ```json
//! {"tensors": {"blk.0.attn_q.weight": "Q4_0",
//!              "blk.0.ffn_down.weight": {"type": "Q4_K", "sparsity": 0.5}},
//!  "drop_blocks": [12], "drop_attention": [3], "drop_mlp": []}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::gptq::Sparsity;
use crate::ggml::types::QuantType;
use crate::model::tensor_id::gguf_block;
use crate::model::{Config, Sublayer, TensorId};

/// What happens to one weight tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorSpec {
    pub qtype: QuantType,
    pub sparsity: Option<Sparsity>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// By GGUF name in the source model's numbering.
    pub tensors: BTreeMap<String, TensorSpec>,
    pub drop_blocks: BTreeSet<usize>,
    pub drop_attention: BTreeSet<usize>,
    pub drop_mlp: BTreeSet<usize>,
}

/// The keys of a plan that say what to do.
const PLAN_KEYS: [&str; 4] = ["tensors", "drop_blocks", "drop_attention", "drop_mlp"];
/// The keys `triage plan` adds to describe how the plan was found (`src/plan`: budget,
/// solver, settings, prediction, measurements); reading a plan accepts and ignores them.
const REPORT_KEYS: [&str; 17] = [
    "budget",
    "solver",
    "settings",
    "predicted",
    "fitness",
    "timings",
    "sensitivity",
    "estimates",
    "lagrange_kld",
    "search_fitness",
    "frontier",
    "block_influence",
    "sublayer_influence",
    "outlier_ratio",
    "owl",
    "start_kld",
    "sparsity",
];
/// The keys of one tensor's entry.
const TENSOR_KEYS: [&str; 2] = ["type", "sparsity"];

/// Refuses keys of `obj` outside `known`, naming them and the keys `what` holds: a misspelt
/// key must not be ignored.
fn refuse_unknown_keys(
    obj: &serde_json::Map<String, Json>,
    known: &[&str],
    what: &str,
    holds: &[&str],
) -> Result<(), String> {
    let unknown: Vec<String> =
        obj.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("\"{k}\"")).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let s = if unknown.len() > 1 { "s" } else { "" };
    Err(format!("unknown key{s} {} in {what} (it holds {})", unknown.join(", "), holds.join(", ")))
}

/// Parses "0.5" (unstructured share, in [0, 1)) or "2:4" (N of every M pruned, 0 < N < M).
pub fn parse_sparsity(s: &str) -> Result<Sparsity, String> {
    let s = s.trim();
    if let Some((n, m)) = s.split_once(':') {
        let (n, m) = (n.trim().parse::<usize>(), m.trim().parse::<usize>());
        return match (n, m) {
            (Ok(0), Ok(m)) if m > 0 => Err(format!("sparsity '{s}' prunes nothing: N:M needs 0 < N < M, e.g. 2:4")),
            (Ok(n), Ok(m)) if n < m => Ok(Sparsity::NofM(n, m)),
            _ => Err(format!("sparsity '{s}': N:M needs whole numbers with N < M, e.g. 2:4")),
        };
    }
    match s.parse::<f32>() {
        Ok(p) if p.is_nan() => Err(format!("sparsity '{s}' is not a number; give a share in [0, 1) or N:M")),
        // −0 is 0: no pruning.
        Ok(p) if (0.0..1.0).contains(&p) => Ok(Sparsity::Unstructured(p.abs())),
        Ok(p) => Err(format!("sparsity {p} is outside [0, 1)")),
        Err(_) => Err(format!("sparsity '{s}' is neither a share in [0, 1) nor N:M")),
    }
}

/// A sparsity as a plan spells it: 0.5 or 2:4.
fn sparsity_name(s: Sparsity) -> String {
    match s {
        Sparsity::Unstructured(_) => s.share().to_string(),
        Sparsity::NofM(n, m) => format!("{n}:{m}"),
    }
}

/// The weight tensors a plan may name, with their (rows, cols).
pub fn plannable_tensors(config: &Config) -> BTreeMap<String, (usize, usize)> {
    let mut t = BTreeMap::new();
    let (v, h) = (config.vocab_size, config.hidden_size);
    t.insert(TensorId::TOKEN_EMBD.to_string(), (v, h));
    if !config.tie_word_embeddings {
        t.insert(TensorId::OUTPUT.to_string(), (v, h));
    }
    for i in 0..config.n_layers {
        for (kind, rows, cols) in crate::model::block_linears(config) {
            t.insert(TensorId::block(i, kind).to_string(), (rows, cols));
        }
    }
    t
}

impl Plan {
    /// One type (llama-quantize's row-width fall-back where rows do not fit it) and/or one
    /// sparsity for every linear, and `embeddings` for the token embedding and output (as
    /// `llama-quantize --pure` does with the same type). Sparsity without a type keeps pruned
    /// tensors exact in F16.
    pub fn uniform(
        config: &Config,
        qtype: Option<QuantType>,
        sparsity: Option<Sparsity>,
        embeddings: Option<QuantType>,
    ) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for (name, (_, cols)) in plannable_tensors(config) {
            let is_linear = gguf_block(&name).is_some();
            let t = match (is_linear, qtype, embeddings) {
                (true, Some(t), _) | (false, _, Some(t)) => t,
                (true, None, _) if sparsity.is_some() => QuantType::F16,
                _ => continue,
            };
            let t = t.for_row_width(cols).ok_or_else(|| {
                format!("{name}: rows of {cols} fit neither {t} nor its fall-back {}", t.row_fallback())
            })?;
            plan.tensors.insert(name, TensorSpec { qtype: t, sparsity: if is_linear { sparsity } else { None } });
        }
        Ok(plan)
    }

    /// Reads a plan from JSON and checks it against `model`.
    pub fn from_json(text: &str, config: &Config) -> Result<Plan, String> {
        let j: Json = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = j.as_object().ok_or("the plan must be a JSON object")?;
        refuse_unknown_keys(obj, &[&PLAN_KEYS[..], &REPORT_KEYS[..]].concat(), "the plan", &PLAN_KEYS)?;
        let mut plan = Plan::default();
        if let Some(tensors) = obj.get("tensors") {
            let tensors = tensors.as_object().ok_or("\"tensors\" must map tensor names to types")?;
            for (name, spec) in tensors {
                let (t, sp) = match spec {
                    Json::String(t) => (t.as_str(), None),
                    Json::Object(o) => {
                        refuse_unknown_keys(o, &TENSOR_KEYS, name, &TENSOR_KEYS)?;
                        let t = o.get("type").and_then(Json::as_str).ok_or(format!("{name}: no \"type\""))?;
                        let sp = match o.get("sparsity") {
                            None | Some(Json::Null) => None,
                            Some(Json::Number(n)) => {
                                Some(parse_sparsity(&n.to_string()).map_err(|e| format!("{name}: {e}"))?)
                            }
                            Some(Json::String(s)) => Some(parse_sparsity(s).map_err(|e| format!("{name}: {e}"))?),
                            Some(_) => return Err(format!("{name}: \"sparsity\" must be a number or \"N:M\"")),
                        };
                        (t, sp)
                    }
                    _ => return Err(format!("{name}: expected a type name or {{\"type\", \"sparsity\"}}")),
                };
                let qtype = QuantType::parse(t).map_err(|e| format!("{name}: {e}"))?;
                plan.tensors.insert(name.clone(), TensorSpec { qtype, sparsity: sp });
            }
        }
        let list = |key: &str| -> Result<BTreeSet<usize>, String> {
            match obj.get(key) {
                None => Ok(BTreeSet::new()),
                Some(v) => v
                    .as_array()
                    .ok_or(format!("\"{key}\" must be a list of block indices"))?
                    .iter()
                    .map(|x| x.as_u64().map(|i| i as usize).ok_or(format!("\"{key}\" must hold block indices")))
                    .collect(),
            }
        };
        plan.drop_blocks = list("drop_blocks")?;
        plan.drop_attention = list("drop_attention")?;
        plan.drop_mlp = list("drop_mlp")?;
        plan.validate(config)?;
        Ok(plan)
    }

    /// Whether linear `k` of block `block` (q, k, v, o: 0–3; gate, up, down: 4–6) belongs to a
    /// removed sublayer.
    pub fn removes_linear(&self, block: usize, name: &str) -> bool {
        if TensorId::parse_gguf(name).and_then(|id| id.kind.sublayer()) == Some(Sublayer::Attention) {
            self.drop_attention.contains(&block)
        } else {
            self.drop_mlp.contains(&block)
        }
    }

    /// The type a removed sublayer's linear is written in as zeros (the file keeps the tensors
    /// llama.cpp requires): its planned type, else the small Q4_0; F16 where rows fit neither.
    pub fn zeroed_type(&self, name: &str, cols: usize) -> QuantType {
        self.tensors
            .get(name)
            .map(|s| s.qtype)
            .or(Some(QuantType::Q4_0))
            .filter(|t| t.fits(cols))
            .unwrap_or(QuantType::F16)
    }

    /// Every named tensor exists and its rows fit its type; only the blocks' linears are
    /// pruned, N:M only where M divides the rows (else a row's last group, narrower than M,
    /// loses N of its weights — all of them when M exceeds the row, as 64:128 on rows of 64);
    /// every block index exists; at least one block is left.
    pub fn validate(&self, config: &Config) -> Result<(), String> {
        let known = plannable_tensors(config);
        for (name, spec) in &self.tensors {
            let &(_, cols) = known
                .get(name)
                .ok_or_else(|| format!("the plan names tensor '{name}', which the model does not have"))?;
            if !spec.qtype.fits(cols) {
                return Err(format!(
                    "the plan gives {name} type {}, but its rows of {cols} are not a multiple of {}",
                    spec.qtype,
                    spec.qtype.block_size()
                ));
            }
            match spec.sparsity {
                Some(s) if gguf_block(name).is_none() && s.share() > 0.0 => {
                    return Err(format!(
                        "the plan gives {name} sparsity {}, but only the blocks' linears are pruned",
                        sparsity_name(s)
                    ));
                }
                Some(Sparsity::NofM(n, m)) if cols % m != 0 => {
                    return Err(format!(
                        "cannot prune {name} {n}:{m}: its rows of {cols} are not a whole number of groups of {m}"
                    ));
                }
                _ => {}
            }
        }
        let n = config.n_layers;
        for (key, set) in
            [("drop_blocks", &self.drop_blocks), ("drop_attention", &self.drop_attention), ("drop_mlp", &self.drop_mlp)]
        {
            if let Some(&i) = set.iter().find(|&&i| i >= n) {
                return Err(format!("{key}: block {i} does not exist (the model has blocks 0–{})", n - 1));
            }
        }
        if self.drop_blocks.len() >= n {
            return Err(format!("cannot drop {} blocks of a model that has {n}", self.drop_blocks.len()));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Json {
        let tensors: serde_json::Map<String, Json> = self
            .tensors
            .iter()
            .map(|(n, s)| {
                let mut o = serde_json::Map::new();
                o.insert("type".into(), Json::from(s.qtype.name()));
                match s.sparsity {
                    // f32 shares written as the decimals they were given (0.6, not 0.6000000238).
                    Some(sp @ Sparsity::Unstructured(_)) => o.insert("sparsity".into(), Json::from(sp.share())),
                    Some(Sparsity::NofM(a, b)) => o.insert("sparsity".into(), Json::from(format!("{a}:{b}"))),
                    None => None,
                };
                (n.clone(), Json::Object(o))
            })
            .collect();
        serde_json::json!({
            "tensors": tensors,
            "drop_blocks": self.drop_blocks,
            "drop_attention": self.drop_attention,
            "drop_mlp": self.drop_mlp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparsity_specs() {
        assert_eq!(parse_sparsity("0.5"), Ok(Sparsity::Unstructured(0.5)));
        assert_eq!(parse_sparsity("2:4"), Ok(Sparsity::NofM(2, 4)));
        assert!(parse_sparsity("1.0").unwrap_err().contains("outside [0, 1)"));
        assert!(parse_sparsity("-0.1").is_err());
        assert!(parse_sparsity("4:2").is_err());
        assert!(parse_sparsity("half").is_err());
    }

    #[test]
    fn sparsity_edges() {
        assert!(parse_sparsity("NaN").unwrap_err().contains("not a number"));
        assert!(parse_sparsity("nan").unwrap_err().contains("not a number"));
        assert!(parse_sparsity("1").unwrap_err().contains("outside [0, 1)"));
        assert!(parse_sparsity("inf").unwrap_err().contains("outside [0, 1)"));
        assert!(parse_sparsity("-0.5").unwrap_err().contains("outside [0, 1)"));
        assert_eq!(parse_sparsity("-0"), Ok(Sparsity::Unstructured(0.0)));
        assert!(matches!(parse_sparsity("-0"), Ok(Sparsity::Unstructured(p)) if p.is_sign_positive()));
        assert!(parse_sparsity("0:4").unwrap_err().contains("prunes nothing"));
        assert!(parse_sparsity("4:4").unwrap_err().contains("N < M"));
        assert!(parse_sparsity("2:0").unwrap_err().contains("N < M"));
        assert!(parse_sparsity("-2:4").is_err());
    }

    fn tiny_config() -> Config {
        crate::model::Streamed::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny-llama.gguf"
        )))
        .unwrap()
        .config
    }

    #[test]
    fn plans_that_prune_what_cannot_be_pruned_are_refused() {
        let config = tiny_config();
        let plan = |tensors: &str| Plan::from_json(&format!(r#"{{"tensors": {{{tensors}}}}}"#), &config);
        for name in ["token_embd.weight", "output.weight"] {
            let e = plan(&format!(r#""{name}": {{"type": "Q8_0", "sparsity": 0.5}}"#)).unwrap_err();
            assert!(e.contains(name) && e.contains("only the blocks' linears are pruned"), "{e}");
        }
        // No pruning at all is no pruning.
        assert!(plan(r#""token_embd.weight": {"type": "Q8_0", "sparsity": 0}"#).is_ok());
        let e = plan(r#""blk.0.attn_q.weight": {"type": "F16", "sparsity": "64:128"}"#).unwrap_err();
        assert!(e.contains("blk.0.attn_q.weight 64:128") && e.contains("rows of 64"), "{e}");
        // 160 is not a whole number of groups of 64: the last group would lose 32 of 32.
        let e = plan(r#""blk.0.ffn_down.weight": {"type": "F16", "sparsity": "32:64"}"#).unwrap_err();
        assert!(e.contains("blk.0.ffn_down.weight 32:64") && e.contains("rows of 160"), "{e}");
        assert!(plan(r#""blk.0.ffn_down.weight": {"type": "F16", "sparsity": "16:32"}"#).is_ok());
        let e = plan(r#""blk.0.attn_q.weight": {"type": "F16", "sparsity": "0:4"}"#).unwrap_err();
        assert!(e.contains("blk.0.attn_q.weight") && e.contains("prunes nothing"), "{e}");
    }
}
