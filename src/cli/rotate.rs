//! `triage rotate`: the model with its residual stream rotated, the same function in weights
//! whose outliers are spread over every channel (QuaRot, SpinQuant's R1) — for a quantizer to
//! take, triage's or another's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Tensor;
use clap::Args;

use crate::export::hf::{write_folder, FolderWeights, HfOptions};
use crate::export::rotated::write_rotated;
use crate::ggml::types::QuantType;
use crate::model::{Blocks, Model, Streaming, Weights};
use crate::rotate::model::{check_supported, rotate_model};
use crate::rotate::Rotation;

use super::guard::{Files, Input};
use super::progress;

/// Rotate the residual stream: the same function in other weights, outliers spread over all channels
///
/// Folds every RMSNorm weight into the linears that read it and multiplies the residual stream
/// by a random orthogonal Q (a signed Walsh–Hadamard matrix, Kronecker-multiplied by a small
/// random orthogonal one where the hidden size is not a power of two; drawn from --seed). The
/// output projection gets a matrix of its own where the model ties it to the embedding (counted
/// in the bytes). llama.cpp and transformers run the result unchanged; its logits equal the
/// original's up to float round-off (printed for a model held in memory). Llama, Mistral, Qwen2,
/// Qwen3, Phi-3 and SmolLM3; Gemma's norms on the branch outputs do not commute with Q.
///
/// `triage compress --rotate` does this on the way to a quantized file.
///
/// Example: triage rotate --model model.gguf --out model.rotated.gguf
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The model: a .gguf file or a Hugging Face folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The rotated model: a .gguf file, or else a Hugging Face folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Draws Q: one seed, one rotation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The type of the matrices: f32, f16 or bf16 (default f32 for a GGUF, f16 for a folder).
    #[arg(long, value_parser = ["f32", "f16", "bf16"])]
    pub r#type: Option<String>,
    /// Stream the weights from the model's files, one block at a time (GGUF output only).
    #[arg(long, value_enum, default_value_t = Streaming::Auto)]
    pub stream: Streaming,
}

/// Whether `out` names a GGUF file (else a folder).
fn is_gguf(out: &Path) -> bool {
    out.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

pub fn run(args: RotateArgs) -> Result<()> {
    Files::new().input("--model", &args.model, Input::Model).output("--out", &args.out).check()?;
    let gguf = is_gguf(&args.out);
    let matrix_type = match (args.r#type.as_deref(), gguf) {
        (Some("f32"), false) => bail!("--type f32: a Hugging Face folder is written in f16 or bf16"),
        (Some(t), _) => QuantType::from_name(&t.to_uppercase()).expect("the parser's values are types"),
        (None, true) => QuantType::F32,
        (None, false) => QuantType::F16,
    };
    if !gguf && args.stream == Streaming::On {
        bail!("--stream on: a rotated Hugging Face folder is made in memory; write a .gguf to stream");
    }
    let weights = Weights::open(&args.model, if gguf { args.stream } else { Streaming::Off })?;
    let config = weights.config().clone();
    check_supported(&config)?;
    let r = Rotation::new(config.hidden_size, args.seed);
    let t0 = std::time::Instant::now();
    if gguf {
        let mut pb = progress::bar(config.n_layers, "rotate");
        let s = write_rotated(&args.out, &weights, &r, matrix_type, &mut pb)?;
        pb.finish_and_clear();
        println!(
            "wrote {} ({} bytes, {:.2} bits per weight): {}, in {:.1} s",
            args.out.display(),
            s.bytes,
            s.bits_per_weight,
            r.describe(),
            t0.elapsed().as_secs_f64()
        );
    } else {
        let Weights::Resident(original) = &weights else { unreachable!("a folder is written from memory") };
        let mut m = original.clone();
        rotate_model(&mut m, &r)?;
        let dtype = if matrix_type == QuantType::BF16 { candle_core::DType::BF16 } else { candle_core::DType::F16 };
        let kept: Vec<usize> = (0..m.config.n_layers).collect();
        write_folder(&args.out, &FolderWeights::Resident(&m), &kept, &HfOptions { dtype, ..HfOptions::default() })?;
        println!("wrote {}: {}, in {:.1} s", args.out.display(), r.describe(), t0.elapsed().as_secs_f64());
    }
    // The file as written, read back: the same function up to the round-off of its type.
    if let Weights::Resident(original) = &weights {
        let written = Model::load(&args.out)?;
        println!(
            "logits of {} against the original's on 64 tokens: relative error {:.1e}",
            args.out.display(),
            logit_error(&original, &written)?
        );
    }
    Ok(())
}

/// ‖rotated − original‖ / ‖original‖ over the logits of one 64-token sequence.
fn logit_error(original: &Model, rotated: &Model) -> Result<f64> {
    let vocab = original.config.vocab_size;
    let ids: Vec<u32> = (0..64).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let tokens = Tensor::from_vec(ids, (1, 64), &candle_core::Device::Cpu)?;
    let a: Vec<f32> = original.forward(&tokens, &mut ())?.flatten_all()?.to_vec1()?;
    let b: Vec<f32> = rotated.forward(&tokens, &mut ())?.flatten_all()?.to_vec1()?;
    let diff: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    Ok((diff / norm.max(f64::MIN_POSITIVE)).sqrt())
}

/// `--rotate` and `--rotation-seed`, as compress and plan take them.
#[derive(Debug, Clone, Copy, Args)]
pub struct RotationArgs {
    /// Rotate the residual stream first (QuaRot, SpinQuant's R1; see `triage rotate`): every
    /// RMSNorm weight folded into the linears, the stream multiplied by a random orthogonal Q
    /// drawn from --rotation-seed — the same function, outliers spread over every channel. A tied
    /// output becomes a matrix of its own (quantized as the embedding is, and counted in every
    /// size). The rotated copy is a temporary file beside --out (F32; F16 for a streamed model);
    /// a budget's layer database is the rotated model's; --eval-text compares with the original.
    /// Recorded in plan.json (`settings.rotation`; a plan made rotated is applied only with the
    /// same --rotate) and the GGUF (`triage.rotation`). Not for Gemma.
    #[arg(long)]
    pub rotate: bool,
    /// The seed drawing --rotate's Q.
    #[arg(long, default_value_t = 0, requires = "rotate")]
    pub rotation_seed: u64,
}

impl RotationArgs {
    /// The seed when rotating.
    pub fn seed(&self) -> Option<u64> {
        self.rotate.then_some(self.rotation_seed)
    }

    /// Adds `settings.rotation` to a plan's JSON when rotating.
    pub fn record(&self, plan: &mut serde_json::Value, hidden: usize) {
        if let Some(seed) = self.seed() {
            let r = Rotation::new(hidden, seed);
            plan["settings"]["rotation"] = serde_json::json!({"seed": seed, "q": r.describe()});
        }
    }

    /// Refuses a plan made by triage on a model rotated otherwise than this run's (a plan
    /// without `settings`, written by hand, is taken as it is).
    pub fn check_plan(&self, text: &str) -> Result<()> {
        let Ok(j) = serde_json::from_str::<serde_json::Value>(text) else { return Ok(()) };
        let Some(settings) = j.get("settings") else { return Ok(()) };
        let planned = settings.get("rotation").and_then(|r| r["seed"].as_u64());
        let say =
            |s: Option<u64>| s.map_or("without --rotate".to_string(), |s| format!("with --rotate --rotation-seed {s}"));
        if planned != self.seed() {
            bail!(
                "this plan was made {}, and this run is {}: plan and compress must rotate alike",
                say(planned),
                say(self.seed())
            );
        }
        Ok(())
    }

    /// When rotating: `model` becomes its rotated copy ([`rotated_copy`]), which lives as long as
    /// the returned path.
    pub fn rotate_source(
        &self,
        model: &mut PathBuf,
        stream: Streaming,
        out: &Path,
    ) -> Result<Option<crate::temp::TempPath>> {
        let Some(seed) = self.seed() else { return Ok(None) };
        let tmp = rotated_copy(model, stream, seed, out)?;
        *model = tmp.path().to_path_buf();
        Ok(Some(tmp))
    }
}

/// The model at `model` with its residual stream rotated by `seed`'s Q, in a temporary GGUF
/// beside `out` (removed when the run ends, however it ends): F32, or F16 for a streamed model.
fn rotated_copy(model: &Path, stream: Streaming, seed: u64, out: &Path) -> Result<crate::temp::TempPath> {
    let weights = Weights::open(model, stream)?;
    let config = weights.config().clone();
    check_supported(&config)?;
    let r = Rotation::new(config.hidden_size, seed);
    let matrix_type = if weights.is_streamed() { QuantType::F16 } else { QuantType::F32 };
    let tmp = crate::temp::TempPath::new(&out.with_extension("rotated.gguf"));
    let mut pb = progress::bar(config.n_layers, "rotate");
    let s = write_rotated(tmp.path(), &weights, &r, matrix_type, &mut pb)?;
    pb.finish_and_clear();
    println!("rotated: {} ({} bytes of {matrix_type}, removed at the end)", r.describe(), s.bytes);
    Ok(tmp)
}
