//! Streaming: a model whose tensors stay in their memory-mapped files, in their stored encoding,
//! and are decoded to f32 one block at a time, the token embedding row by row and the output head
//! in chunks of the vocabulary — so that peak memory is about one block in f32 whatever the
//! model's size — and [`Weights`], either kind of model behind one interface.

use std::borrow::Cow;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::store::Store;
use super::transformer::{rms_norm, softcap};
use super::{
    assemble_block, check_finite, kernels, take, Block, Config, Model, ModelError, Result, Source, TensorId, Tokenizer,
};

/// Bytes of f32 weights decoded at once for one chunk of the output head.
const HEAD_CHUNK_BYTES: usize = 64 << 20;

/// An output head of at most this many bytes in f32 is decoded once and kept (SmolLM2-135M's:
/// 113 MB): evaluation runs the head once per window.
pub(crate) const HEAD_KEPT_BYTES: usize = 256 << 20;

/// A model read from its files block by block.
pub struct Streamed {
    pub config: Config,
    pub tokenizer: Option<Tokenizer>,
    pub source: Source,
    pub store: Store,
    /// Final RMSNorm weight, (hidden,): small, so held.
    final_norm: Tensor,
    /// The output head's decoded chunks, when it is small enough to keep ([`HEAD_KEPT_BYTES`]).
    head_chunks: std::sync::OnceLock<Vec<Tensor>>,
}

impl Streamed {
    /// Checks what can be checked without decoding the weights: the configuration, the tokenizer's
    /// ids, every tensor's presence and shape.
    pub(crate) fn new(config: Config, tokenizer: Option<Tokenizer>, source: Source, store: Store) -> Result<Streamed> {
        config.validate()?;
        if let Some(t) = &tokenizer {
            t.check_ids(config.vocab_size)?;
        }
        let h = config.hidden_size;
        let expect = |name: &str, shape: &[usize]| -> Result<()> {
            match store.shape(name) {
                None => Err(ModelError::MissingTensor(name.to_string())),
                Some(s) if s != shape => {
                    Err(ModelError::ShapeMismatch { name: name.to_string(), expected: shape.to_vec(), found: s })
                }
                Some(_) => Ok(()),
            }
        };
        expect(&TensorId::TOKEN_EMBD.to_string(), &[config.vocab_size, h])?;
        if !config.tie_word_embeddings {
            expect(&TensorId::OUTPUT.to_string(), &[config.vocab_size, h])?;
        }
        let final_norm = take(&mut |n: &str| store.tensor(n), &TensorId::OUTPUT_NORM.to_string(), &[h])?;
        Ok(Streamed { config, tokenizer, source, store, final_norm, head_chunks: std::sync::OnceLock::new() })
    }

    /// Opens a GGUF file or a Hugging Face folder streamed.
    pub fn open(path: &Path) -> Result<Streamed> {
        let meta = std::fs::metadata(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
        let (config, tokenizer, source, store) =
            if meta.is_dir() { super::hf::open_dir(path)? } else { super::gguf::open_file(path)? };
        Streamed::new(config, tokenizer, source, store).map_err(super::in_file(path))
    }

    /// Block `i`, decoded to f32 and checked (shapes, finite values).
    pub fn block(&self, i: usize) -> Result<Block> {
        assemble_block(&self.config, i, |name| self.store.tensor(name))
    }

    /// The matrix that makes the logits: the output head, or the embedding when tied.
    fn head_id(&self) -> TensorId {
        if self.config.tie_word_embeddings {
            TensorId::TOKEN_EMBD
        } else {
            TensorId::OUTPUT
        }
    }

    /// Token embeddings of `tokens` (batch, tokens) u32 → (batch, tokens, hidden), each row read
    /// from the file.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
        let h = self.config.hidden_size;
        let mut rows = Vec::with_capacity(ids.len() * h);
        let embd = TensorId::TOKEN_EMBD.to_string();
        for &id in &ids {
            let id = id as usize;
            if id >= self.config.vocab_size {
                return Err(ModelError::InvalidConfig(format!(
                    "token id {id} is beyond the vocabulary of {}",
                    self.config.vocab_size
                )));
            }
            let row = self.store.rows(&embd, id..id + 1)?;
            check_finite(&embd, &row)?;
            rows.extend(row.flatten_all()?.to_vec1::<f32>()?);
        }
        let x = Tensor::from_vec(rows, (b, t, h), &Device::Cpu)?;
        super::transformer::scale_embedding(&self.config, x)
    }

    /// Final norm and output projection, the projection's rows decoded a chunk at a time:
    /// (batch, tokens, hidden) → (batch, tokens, vocab) logits.
    pub fn head(&self, x: &Tensor) -> Result<Tensor> {
        let (vocab, d) = (self.config.vocab_size, self.config.hidden_size);
        let name = &self.head_id().to_string();
        let decode = |rows: std::ops::Range<usize>| -> Result<Tensor> {
            let w = self.store.rows(name, rows)?;
            check_finite(name, &w)?;
            Ok(w)
        };
        let kept = match self.head_chunks.get() {
            Some(k) => Some(k),
            None if 4 * vocab * d <= HEAD_KEPT_BYTES => {
                let k = head_chunks(vocab, d).map(decode).collect::<Result<Vec<_>>>()?;
                Some(self.head_chunks.get_or_init(|| k))
            }
            None => None,
        };
        head_in_chunks(&self.config, &self.final_norm, x, &mut |c, rows| match kept {
            Some(k) => Ok(k[c].clone()),
            None => decode(rows),
        })
    }
}

/// The row ranges of an output head of `vocab` rows of `d` that are decoded at once.
fn head_chunks(vocab: usize, d: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let chunk = (HEAD_CHUNK_BYTES / (4 * d)).max(1);
    (0..vocab).step_by(chunk).map(move |start| start..(start + chunk).min(vocab))
}

/// Final norm and output projection with the projection's rows given a chunk at a time by
/// `rows(c, range)` (chunk c of [`head_chunks`]): (batch, tokens, hidden) → logits.
pub(crate) fn head_in_chunks(
    config: &Config,
    final_norm: &Tensor,
    x: &Tensor,
    rows: &mut dyn FnMut(usize, std::ops::Range<usize>) -> Result<Tensor>,
) -> Result<Tensor> {
    let h = rms_norm(x, final_norm, config.rms_norm_eps)?;
    let (b, t, d) = h.dims3()?;
    let h2 = h.reshape((b * t, d))?;
    let vocab = config.vocab_size;
    let mut logits = vec![0f32; b * t * vocab];
    for (c, range) in head_chunks(vocab, d).enumerate() {
        let w = rows(c, range.clone())?;
        kernels::with_f32(&kernels::matmul_nt(&h2, &w)?, |y| {
            for (row, part) in logits.chunks_mut(vocab).zip(y.chunks(range.len())) {
                row[range.clone()].copy_from_slice(part);
            }
        })?;
    }
    let logits = Tensor::from_vec(logits, (b, t, vocab), &Device::Cpu)?;
    match config.final_softcap {
        Some(c) => softcap(&logits, c),
        None => Ok(logits),
    }
}

/// A model's weights: whole in memory, or streamed from its files.
pub enum Weights {
    Resident(Model),
    Streamed(Streamed),
}

/// When to stream a model's weights from its files instead of holding them in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Streaming {
    /// Stream models whose weights take more than 4 GiB in f32 (about a billion parameters).
    Auto,
    On,
    Off,
}

/// Models larger than this in f32 are streamed under [`Streaming::Auto`].
const AUTO_STREAM_BYTES: u64 = 4 << 30;

/// Whether a model of `config` is large: over about a billion parameters (4 GiB in f32), what
/// [`Streaming::Auto`] streams and a planner's `--database auto` samples.
pub fn is_large(config: &Config) -> bool {
    config.n_params() as u64 * 4 > AUTO_STREAM_BYTES
}

impl Weights {
    /// Opens a GGUF file or a Hugging Face folder, streamed or loaded as `streaming` says.
    pub fn open(path: &Path, streaming: Streaming) -> Result<Weights> {
        Ok(match streaming {
            Streaming::Off => Weights::Resident(Model::load(path)?),
            Streaming::On => Weights::Streamed(Streamed::open(path)?),
            Streaming::Auto => {
                let s = Streamed::open(path)?;
                if is_large(&s.config) {
                    Weights::Streamed(s)
                } else {
                    drop(s);
                    Weights::Resident(Model::load(path)?)
                }
            }
        })
    }

    pub fn is_streamed(&self) -> bool {
        matches!(self, Weights::Streamed(_))
    }

    /// The tokenizer, or an error naming the model that lacks one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        let t = match self {
            Weights::Resident(m) => m.tokenizer.as_ref(),
            Weights::Streamed(s) => s.tokenizer.as_ref(),
        };
        t.ok_or_else(|| ModelError::Tokenizer(format!("{} carries no tokenizer", self.source().path.display())))
    }
}

/// What a forward pass reads of a model, block by block: whole models and streamed ones alike.
pub trait Blocks {
    fn config(&self) -> &Config;
    fn source(&self) -> &Source;
    fn n_blocks(&self) -> usize;
    /// Block `i`: borrowed when resident, decoded from the files when streamed.
    fn block(&self, i: usize) -> Result<Cow<'_, Block>>;
    /// Token ids (batch, tokens) → embeddings (batch, tokens, hidden).
    fn embed(&self, tokens: &Tensor) -> Result<Tensor>;
    /// Final norm and output projection → logits (batch, tokens, vocab).
    fn head(&self, x: &Tensor) -> Result<Tensor>;
    /// The final RMSNorm's weight, (hidden,).
    fn final_norm(&self) -> &Tensor;
    /// Rows `rows` of the token embedding or the output matrix (`token_embd.weight`,
    /// `output.weight`) in f32: read from the files when streamed.
    fn rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Tensor>;
}

impl Blocks for Model {
    fn config(&self) -> &Config {
        &self.config
    }
    fn source(&self) -> &Source {
        &self.source
    }
    fn n_blocks(&self) -> usize {
        self.blocks.len()
    }
    fn block(&self, i: usize) -> Result<Cow<'_, Block>> {
        Ok(Cow::Borrowed(&self.blocks[i]))
    }
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        Model::embed(self, tokens)
    }
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        Model::head(self, x)
    }
    fn final_norm(&self) -> &Tensor {
        &self.final_norm
    }
    fn rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let w = match (name, &self.lm_head) {
            (n, _) if TensorId::parse_gguf(n) == Some(TensorId::TOKEN_EMBD) => &self.embed,
            (_, Some(l)) if l.name == name => &l.weight,
            _ => return Err(ModelError::MissingTensor(name.to_string())),
        };
        Ok(w.narrow(0, rows.start, rows.len())?)
    }
}

impl Blocks for Streamed {
    fn config(&self) -> &Config {
        &self.config
    }
    fn source(&self) -> &Source {
        &self.source
    }
    fn n_blocks(&self) -> usize {
        self.config.n_layers
    }
    fn block(&self, i: usize) -> Result<Cow<'_, Block>> {
        Ok(Cow::Owned(Streamed::block(self, i)?))
    }
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        Streamed::embed(self, tokens)
    }
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        Streamed::head(self, x)
    }
    fn final_norm(&self) -> &Tensor {
        &self.final_norm
    }
    fn rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let w = self.store.rows(name, rows)?;
        check_finite(name, &w)?;
        Ok(w)
    }
}

impl Weights {
    fn inner(&self) -> &dyn Blocks {
        match self {
            Weights::Resident(m) => m,
            Weights::Streamed(s) => s,
        }
    }
}

impl Blocks for Weights {
    fn config(&self) -> &Config {
        self.inner().config()
    }
    fn source(&self) -> &Source {
        self.inner().source()
    }
    fn n_blocks(&self) -> usize {
        self.inner().n_blocks()
    }
    fn block(&self, i: usize) -> Result<Cow<'_, Block>> {
        self.inner().block(i)
    }
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        self.inner().embed(tokens)
    }
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        self.inner().head(x)
    }
    fn final_norm(&self) -> &Tensor {
        self.inner().final_norm()
    }
    fn rows(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Tensor> {
        self.inner().rows(name, rows)
    }
}
