//! Models: loading (GGUF files, Hugging Face folders) into one format-blind structure, and running
//! it block by block with capture points.
//!
//! ```text
//! Model { config, embed, blocks: [Block { attn_norm, attn: {q,k,v,o}, mlp_norm, mlp: {gate,up,down} }],
//!         final_norm, lm_head (None when tied to embed), tokenizer }
//! ```
//! Tensor names are llama.cpp's GGUF names everywhere (`blk.7.ffn_down.weight`): plans, profiles
//! and imatrix files key on them, whatever format the model came in.

pub mod capture;
pub mod config;
pub mod forward;
pub mod gguf;
pub mod gguf_file;
pub mod hf;
pub mod kernels;
pub mod rope;
pub mod sentencepiece;
pub mod store;
pub mod stream;
pub mod tensor_id;
pub mod tokenizer;
pub mod transformer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub use capture::{Capture, Sublayer};
pub use config::{Arch, Config, RopeLayout};
pub use stream::{Blocks, Streamed, Streaming, Weights};
pub use tensor_id::{Suffix, TensorId, TensorKind};
pub use tokenizer::Tokenizer;
pub use transformer::{BlockOpts, Positions};

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    // Fields named `error`, not `source`: the message already says it, and a `source` would be
    // printed a second time in the one-line error's chain.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a model: {reason}")]
    NotAModel { path: PathBuf, reason: String },
    #[error("{path}: invalid GGUF: {reason}")]
    Gguf { path: PathBuf, reason: String },
    #[error("unsupported model: {0}")]
    UnsupportedArchitecture(String),
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    #[error("missing metadata key '{0}'")]
    MissingMetadata(String),
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?}, the configuration implies {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor '{0}' contains NaN or infinite values")]
    NonFinite(String),
    /// Logits or a metric on them that are NaN or infinite: finite weights whose products
    /// overflow f32 (±3e38) pass the loading checks and show here; the text says where.
    #[error("{0}")]
    NonFiniteOutput(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// GPTQ or SparseGPT could not run on a tensor (the message names it and the cause).
    #[error("{0}")]
    Gptq(String),
    #[error("{}", candle_message(.0))]
    Tensor(#[from] candle_core::Error),
    /// An error of the model loaded from `path`.
    #[error("{path}: {error}")]
    InFile { path: PathBuf, error: Box<ModelError> },
}

/// Names the model file or folder an error came from, unless it already does.
pub(crate) fn in_file(path: &Path) -> impl Fn(ModelError) -> ModelError + '_ {
    move |e| match e {
        ModelError::Io { .. } | ModelError::NotAModel { .. } | ModelError::Gguf { .. } | ModelError::InFile { .. } => e,
        other => ModelError::InFile { path: path.to_path_buf(), error: Box::new(other) },
    }
}

/// A candle error's message without the backtrace candle attaches when RUST_BACKTRACE is set.
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        other => other.to_string(),
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// A linear layer `y = x Wᵀ + b`.
///
/// # Shapes
/// - `weight`: (out, in), f32
/// - `bias`: (out,)
#[derive(Debug, Clone)]
pub struct Linear {
    /// The GGUF tensor name of the weight, e.g. `blk.3.attn_q.weight`.
    pub name: String,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Applies the layer to `x` of shape (..., in), giving (..., out).
    /// One matmul over all leading dimensions folded together: the hot path of every forward.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (out_features, in_features) = self.weight.dims2()?;
        let rows = x.elem_count() / in_features;
        let y = kernels::matmul_nt(&x.reshape((rows, in_features))?, &self.weight)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("x has at least one dimension") = out_features;
        Ok(y.reshape(out_dims)?)
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

#[derive(Debug, Clone)]
pub struct Attention {
    /// The input projections q, k and v — or one fused `attn_qkv` (Phi-3) whose rows are q's,
    /// then k's, then v's.
    pub qkv: Vec<Linear>,
    pub o: Linear,
    /// RMSNorm weights over each query / key head before RoPE, (head_dim,) (qwen3).
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
}

/// A gated MLP: `down(act(gate(x)) ⊙ up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// gate and up — or one fused `ffn_up` (Phi-3) whose rows are gate's, then up's.
    pub gate_up: Vec<Linear>,
    pub down: Linear,
}

/// A pre-norm transformer block: `h = x + attn(norm(x)); out = h + mlp(norm(h))`, Gemma's
/// with a norm on each branch's output too: `h = x + norm(attn(norm(x)))`.
#[derive(Debug, Clone)]
pub struct Block {
    pub index: usize,
    /// RMSNorm weight before attention, (hidden,).
    pub attn_norm: Tensor,
    pub attn: Attention,
    /// RMSNorm weight on the attention's output (Gemma 2/3), (hidden,).
    pub post_attn_norm: Option<Tensor>,
    /// RMSNorm weight before the MLP, (hidden,).
    pub mlp_norm: Tensor,
    pub mlp: Mlp,
    /// RMSNorm weight on the MLP's output (Gemma 2/3), (hidden,).
    pub post_mlp_norm: Option<Tensor>,
}

/// The norms of a block, in the order llama.cpp's converter writes them.
pub const BLOCK_NORMS: [TensorKind; 6] = [
    TensorKind::AttnNorm,
    TensorKind::AttnQNorm,
    TensorKind::AttnKNorm,
    TensorKind::AttnPostNorm,
    TensorKind::FfnNorm,
    TensorKind::FfnPostNorm,
];

impl Block {
    /// The block's norm weights that it has, with their kinds.
    pub fn norms(&self) -> Vec<(TensorKind, &Tensor)> {
        let all = [
            Some(&self.attn_norm),
            self.attn.q_norm.as_ref(),
            self.attn.k_norm.as_ref(),
            self.post_attn_norm.as_ref(),
            Some(&self.mlp_norm),
            self.post_mlp_norm.as_ref(),
        ];
        BLOCK_NORMS.iter().zip(all).filter_map(|(n, t)| t.map(|t| (*n, t))).collect()
    }

    /// The block's linears in the order q, k, v, o, gate, up, down (fused: qkv, o, gate_up,
    /// down).
    pub fn linears(&self) -> Vec<&Linear> {
        let (a, m) = (&self.attn, &self.mlp);
        a.qkv.iter().chain([&a.o]).chain(&m.gate_up).chain([&m.down]).collect()
    }

    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let (a, m) = (&mut self.attn, &mut self.mlp);
        a.qkv.iter_mut().chain([&mut a.o]).chain(&mut m.gate_up).chain([&mut m.down]).collect()
    }
}

/// Where a model came from.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    /// The stored type of every tensor, by GGUF name ("Q4_1", "F32", "BF16", …).
    pub tensor_types: BTreeMap<String, String>,
    /// The size of the weights as stored, in bytes.
    pub weight_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gguf,
    HuggingFace,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub config: Config,
    /// Token embedding, (vocab, hidden).
    pub embed: Tensor,
    pub blocks: Vec<Block>,
    /// Final RMSNorm weight, (hidden,).
    pub final_norm: Tensor,
    /// The output projection; `None` when tied to `embed`.
    pub lm_head: Option<Linear>,
    pub tokenizer: Option<Tokenizer>,
    pub source: Source,
}

impl Model {
    /// Loads a GGUF file or a Hugging Face folder (config.json + safetensors + tokenizer.json).
    pub fn load(path: &Path) -> Result<Model> {
        let meta = std::fs::metadata(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
        if meta.is_dir() {
            hf::load(path)
        } else {
            gguf::load(path)
        }
    }

    /// The tokenizer, or an error naming the model that lacks one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::Tokenizer(format!("{} carries no tokenizer", self.source.path.display())))
    }

    /// Number of parameters of every tensor (embedding and head counted once when tied).
    pub fn n_params(&self) -> usize {
        self.config.n_params()
    }
}

/// The model's tensor by its GGUF name (`token_embd.weight`, `blk.3.attn_q.bias`, …).
pub fn tensor_by_name<'a>(m: &'a Model, name: &str) -> Option<&'a Tensor> {
    let id = TensorId::parse_gguf(name).filter(|id| id.expert.is_none())?;
    let weight = id.suffix == Suffix::Weight;
    let Some(block) = id.block else {
        return match id.kind {
            TensorKind::TokenEmbd => weight.then_some(&m.embed),
            TensorKind::OutputNorm => weight.then_some(&m.final_norm),
            _ => m.lm_head.as_ref().filter(|_| weight).map(|l| &l.weight),
        };
    };
    block_tensor(m.blocks.get(block)?, &id)
}

/// The tensor `id` (its kind and suffix; the block number is not looked at) of block `b`.
pub fn block_tensor<'a>(b: &'a Block, id: &TensorId) -> Option<&'a Tensor> {
    let weight = id.suffix == Suffix::Weight;
    if let Some((_, t)) = b.norms().into_iter().find(|(k, _)| *k == id.kind) {
        return weight.then_some(t);
    }
    let l = b.linears().into_iter().find(|l| TensorId::parse_gguf(&l.name).is_some_and(|l| l.kind == id.kind))?;
    if weight {
        Some(&l.weight)
    } else {
        l.bias.as_ref()
    }
}

/// Checks that `t` has shape `expected`, naming the tensor otherwise.
pub(crate) fn check_shape(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() != expected {
        return Err(ModelError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(())
}

/// Refuses tensors holding NaN or ±inf: they would poison every number downstream.
pub(crate) fn check_finite(name: &str, t: &Tensor) -> Result<()> {
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(ModelError::NonFinite(name.to_string()));
    }
    Ok(())
}

/// Assembles a model from named f32 tensors, checking every shape against `config`.
/// Both loaders end here, so a GGUF file and a Hugging Face folder give the same structure.
pub(crate) fn assemble(
    config: Config,
    mut get: impl FnMut(&str) -> Result<Option<Tensor>>,
    tokenizer: Option<Tokenizer>,
    source: Source,
) -> Result<Model> {
    config.validate()?;
    if let Some(t) = &tokenizer {
        t.check_ids(config.vocab_size)?;
    }
    let h = config.hidden_size;
    let embed = take(&mut get, &TensorId::TOKEN_EMBD.to_string(), &[config.vocab_size, h])?;
    let blocks = (0..config.n_layers).map(|i| assemble_block(&config, i, &mut get)).collect::<Result<Vec<_>>>()?;
    let final_norm = take(&mut get, &TensorId::OUTPUT_NORM.to_string(), &[h])?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        let name = TensorId::OUTPUT.to_string();
        Some(Linear { weight: take(&mut get, &name, &[config.vocab_size, h])?, name, bias: None })
    };
    Ok(Model { config, embed, blocks, final_norm, lm_head, tokenizer, source })
}

/// Tensor `name` from `get`, checked for shape `shape` and finite values.
pub(crate) fn take(
    get: &mut impl FnMut(&str) -> Result<Option<Tensor>>,
    name: &str,
    shape: &[usize],
) -> Result<Tensor> {
    let t = get(name)?.ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    check_shape(name, &t, shape)?;
    check_finite(name, &t)?;
    Ok(t)
}

/// The linears of every block of a model of `config` in the order q, k, v, o, gate, up, down
/// (fused: qkv, o, gate_up, down), as (kind, rows, cols).
pub fn block_linears(config: &Config) -> Vec<(TensorKind, usize, usize)> {
    let (h, f) = (config.hidden_size, config.intermediate_size);
    let (nh, nkv, hd) = (config.n_heads, config.n_kv_heads, config.head_dim);
    let mut l = if config.arch.facts().fused {
        vec![(TensorKind::AttnQkv, (nh + 2 * nkv) * hd, h)]
    } else {
        vec![(TensorKind::AttnQ, nh * hd, h), (TensorKind::AttnK, nkv * hd, h), (TensorKind::AttnV, nkv * hd, h)]
    };
    l.push((TensorKind::AttnOutput, h, nh * hd));
    if config.arch.facts().fused {
        l.push((TensorKind::FfnUp, 2 * f, h));
    } else {
        l.extend([(TensorKind::FfnGate, f, h), (TensorKind::FfnUp, f, h)]);
    }
    l.push((TensorKind::FfnDown, h, f));
    l
}

/// Every tensor of block `i` of a model of `config` with its shape: the norms,
/// the linears of [`block_linears`] with their biases where the architecture has them (q, k, v),
/// and q/k norms and post-norms where it has those.
pub fn block_tensors(config: &Config, i: usize) -> Vec<(TensorId, Vec<usize>)> {
    let (h, hd) = (config.hidden_size, config.head_dim);
    let facts = config.arch.facts();
    let id = |kind| TensorId::block(i, kind);
    let mut t = vec![(id(TensorKind::AttnNorm), vec![h])];
    for (kind, out, inp) in block_linears(config) {
        t.push((id(kind), vec![out, inp]));
        if config.arch.qkv_bias() && kind.is_attention_input() {
            t.push((id(kind).bias(), vec![out]));
        }
    }
    if facts.qk_norm {
        t.push((id(TensorKind::AttnQNorm), vec![hd]));
        t.push((id(TensorKind::AttnKNorm), vec![hd]));
    }
    if facts.post_norms {
        t.push((id(TensorKind::AttnPostNorm), vec![h]));
        t.push((id(TensorKind::FfnPostNorm), vec![h]));
    }
    t.push((id(TensorKind::FfnNorm), vec![h]));
    t
}

/// Block `i` of a model of `config` from named f32 tensors ([`block_tensors`]), every shape checked.
pub(crate) fn assemble_block(
    config: &Config,
    i: usize,
    mut get: impl FnMut(&str) -> Result<Option<Tensor>>,
) -> Result<Block> {
    let mut t = BTreeMap::new();
    for (id, shape) in block_tensors(config, i) {
        let v = take(&mut get, &id.to_string(), &shape)?;
        t.insert(id, v);
    }
    let mut linears = block_linears(config)
        .into_iter()
        .map(|(kind, _, _)| {
            let id = TensorId::block(i, kind);
            let weight = t.remove(&id).expect("listed");
            Linear { name: id.to_string(), weight, bias: t.remove(&id.bias()) }
        })
        .collect::<Vec<_>>();
    let down = linears.pop().expect("a block has linears");
    let mut pop = |kind| t.remove(&TensorId::block(i, kind));
    let fused = config.arch.facts().fused;
    let gate_up = linears.split_off(linears.len() - if fused { 1 } else { 2 });
    let o = linears.pop().expect("attn_output");
    let qkv = linears;
    let mlp = Mlp { gate_up, down };
    let attn = Attention { qkv, o, q_norm: pop(TensorKind::AttnQNorm), k_norm: pop(TensorKind::AttnKNorm) };
    let (post_attn_norm, post_mlp_norm) = (pop(TensorKind::AttnPostNorm), pop(TensorKind::FfnPostNorm));
    Ok(Block {
        index: i,
        attn_norm: pop(TensorKind::AttnNorm).expect("listed"),
        attn,
        post_attn_norm,
        mlp_norm: pop(TensorKind::FfnNorm).expect("listed"),
        mlp,
        post_mlp_norm,
    })
}
