//! The forward pass of llama-family decoders (Llama 2/3, SmolLM2, Mistral with its sliding window,
//! Qwen2, Qwen3), written after `transformers`' `modeling_llama.py` / `modeling_qwen2.py` /
//! `modeling_qwen3.py`, which are the numerical reference (see tests/conformance.rs).
//!
//! A full forward is `embed → blocks → head`; callers run any range of blocks on cached hidden
//! states through [`super::forward::forward`], skip a block or one of its sublayers, and observe
//! everything through a [`Capture`].

use candle_core::{Device, Tensor};

use super::capture::{Capture, Sublayer};
use super::{kernels, rope, Block, Model, Result};
use crate::model::config::{Activation, Config};

/// Per-sequence-length tables shared by every block: RoPE cos/sin, and those of the windowed
/// blocks where their RoPE differs (Gemma 3).
pub struct Positions {
    pub n_tokens: usize,
    cos: Tensor,
    sin: Tensor,
    sliding: Option<(Tensor, Tensor)>,
}

impl Positions {
    pub fn new(config: &Config, n_tokens: usize, device: &Device) -> Result<Self> {
        let (cos, sin) = rope::tables(config, n_tokens, false, device)?;
        let differs = config.rope_theta_swa.is_some() && config.sliding_window.is_some();
        let sliding = if differs { Some(rope::tables(config, n_tokens, true, device)?) } else { None };
        Ok(Positions { n_tokens, cos, sin, sliding })
    }

    /// The cos/sin tables of block `i`'s first `t` positions.
    fn of_block(&self, config: &Config, i: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let (cos, sin) = match &self.sliding {
            Some((c, s)) if config.is_sliding(i) => (c, s),
            _ => (&self.cos, &self.sin),
        };
        Ok((cos.narrow(0, 0, t)?, sin.narrow(0, 0, t)?))
    }
}

/// Gemma 2's soft cap `c · tanh(x / c)`.
pub(crate) fn softcap(x: &Tensor, c: f64) -> Result<Tensor> {
    Ok(((x / c)?.tanh()? * c)?)
}

/// What to leave out of one block's forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockOpts {
    pub skip_attention: bool,
    pub skip_mlp: bool,
}

pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32)?)
}

/// `x` RMS-normed by `weight` where the model has that norm, else `x`.
fn optional_norm(x: Tensor, weight: &Option<Tensor>, eps: f64) -> Result<Tensor> {
    match weight {
        Some(w) => rms_norm(&x, w, eps),
        None => Ok(x),
    }
}

impl Block {
    /// Runs the block on `x` (batch, tokens, hidden) and returns the new residual stream.
    pub fn forward(
        &self,
        x: &Tensor,
        config: &Config,
        pos: &Positions,
        opts: BlockOpts,
        cap: &mut dyn Capture,
    ) -> Result<Tensor> {
        let i = self.index;
        cap.block_input(i, x)?;
        let mut x = x.clone();
        if !opts.skip_attention {
            let h = rms_norm(&x, &self.attn_norm, config.rms_norm_eps)?;
            // Gemma's norm on the branch's output, before the residual add.
            let a = optional_norm(self.attention(&h, config, pos, cap)?, &self.post_attn_norm, config.rms_norm_eps)?;
            cap.sublayer_output(i, Sublayer::Attention, &a)?;
            x = (x + a)?;
        }
        if !opts.skip_mlp {
            let h = rms_norm(&x, &self.mlp_norm, config.rms_norm_eps)?;
            let m = optional_norm(self.mlp_forward(&h, config, cap)?, &self.post_mlp_norm, config.rms_norm_eps)?;
            cap.sublayer_output(i, Sublayer::Mlp, &m)?;
            x = (x + m)?;
        }
        cap.block_output(i, &x)?;
        Ok(x)
    }

    /// Causal multi-head attention with grouped key/value heads.
    fn attention(&self, h: &Tensor, config: &Config, pos: &Positions, cap: &mut dyn Capture) -> Result<Tensor> {
        let (b, t, _) = h.dims3()?;
        let (nh, nkv, hd) = (config.n_heads, config.n_kv_heads, config.head_dim);
        let a = &self.attn;
        cap.linear_input(self.index, &a.qkv.iter().collect::<Vec<_>>(), h)?;
        let (q, k, v) = match a.qkv.as_slice() {
            [q, k, v] => (q.forward(h)?, k.forward(h)?, v.forward(h)?),
            [fused] => {
                let y = fused.forward(h)?;
                let part =
                    |from: usize, n: usize| -> Result<Tensor> { Ok(y.narrow(2, from * hd, n * hd)?.contiguous()?) };
                (part(0, nh)?, part(nh, nkv)?, part(nh + nkv, nkv)?)
            }
            _ => unreachable!("q, k and v, or one fused qkv"),
        };
        let heads =
            |y: Tensor, n: usize| -> Result<Tensor> { Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?) };
        let (cos, sin) = pos.of_block(config, self.index, t)?;
        // qwen3, Gemma 3: each head RMS-normed before RoPE.
        let eps = config.rms_norm_eps;
        let (q, k) = (optional_norm(heads(q, nh)?, &a.q_norm, eps)?, optional_norm(heads(k, nkv)?, &a.k_norm, eps)?);
        // SmolLM3's NoPE blocks attend without positions.
        let (q, k) = if config.rotates(self.index) {
            (rope::apply(&q, &cos, &sin, config.rope_layout)?, rope::apply(&k, &cos, &sin, config.rope_layout)?)
        } else {
            (q, k)
        };
        let v = heads(v, nkv)?;
        let opts = kernels::AttentionOpts {
            scale: config.attention_scale as f32,
            window: config.window(self.index),
            softcap: config.attn_softcap.map(|c| c as f32),
        };
        let (out, probs) = kernels::causal_attention(&q, &k, &v, cap.wants_attention(self.index), opts)?;
        if let Some(p) = probs {
            cap.attention_probs(self.index, &p)?;
        }
        let out = out.transpose(1, 2)?.reshape((b, t, nh * hd))?;
        cap.linear_input(self.index, &[&a.o], &out)?;
        a.o.forward(&out)
    }

    /// The gated MLP: SwiGLU, or GeGLU (Gemma).
    fn mlp_forward(&self, h: &Tensor, config: &Config, cap: &mut dyn Capture) -> Result<Tensor> {
        let m = &self.mlp;
        cap.linear_input(self.index, &m.gate_up.iter().collect::<Vec<_>>(), h)?;
        let (g, u) = match m.gate_up.as_slice() {
            [gate, up] => (gate.forward(h)?, up.forward(h)?),
            [fused] => {
                let y = fused.forward(h)?;
                let f = config.intermediate_size;
                (y.narrow(2, 0, f)?.contiguous()?, y.narrow(2, f, f)?.contiguous()?)
            }
            _ => unreachable!("gate and up, or one fused gate_up"),
        };
        let g = match config.arch.facts().activation {
            Activation::Silu => candle_nn::ops::silu(&g)?,
            Activation::GeluTanh => g.gelu()?,
        };
        let act = (g * u)?;
        cap.linear_input(self.index, &[&m.down], &act)?;
        m.down.forward(&act)
    }
}

/// Gemma's embeddings are scaled by √hidden, rounded to f32 first as transformers and
/// llama.cpp do; other models' are used as they are.
pub(crate) fn scale_embedding(config: &Config, x: Tensor) -> Result<Tensor> {
    if config.arch.facts().embed_scale {
        return Ok((x * f64::from((config.hidden_size as f32).sqrt()))?);
    }
    Ok(x)
}

/// Final norm (`final_norm`) and the output projection by the whole (vocab, hidden) matrix `w`:
/// (batch, tokens, hidden) → (batch, tokens, vocab) logits.
pub(crate) fn project(config: &Config, final_norm: &Tensor, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let h = rms_norm(x, final_norm, config.rms_norm_eps)?;
    let (b, t, d) = h.dims3()?;
    let h2 = h.reshape((b * t, d))?;
    let logits = kernels::matmul_nt(&h2, w)?.reshape((b, t, config.vocab_size))?;
    match config.final_softcap {
        Some(c) => softcap(&logits, c),
        None => Ok(logits),
    }
}

impl Model {
    /// Token embeddings of `tokens` (batch, tokens) u32 → (batch, tokens, hidden).
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let flat = tokens.flatten_all()?;
        let x = self.embed.index_select(&flat, 0)?.reshape((b, t, self.config.hidden_size))?;
        scale_embedding(&self.config, x)
    }

    /// Final norm and output projection: (batch, tokens, hidden) → (batch, tokens, vocab) logits.
    pub fn head(&self, x: &Tensor) -> Result<Tensor> {
        let w = match &self.lm_head {
            Some(l) => &l.weight,
            None => &self.embed,
        };
        project(&self.config, &self.final_norm, x, w)
    }

    pub fn positions(&self, n_tokens: usize) -> Result<Positions> {
        Positions::new(&self.config, n_tokens, self.embed.device())
    }

    /// The whole model: token ids (batch, tokens) → logits (batch, tokens, vocab).
    pub fn forward(&self, tokens: &Tensor, cap: &mut dyn Capture) -> Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        let pos = self.positions(t)?;
        let x = self.embed(tokens)?;
        let x = super::forward::forward_one(self, x, 0..self.blocks.len(), &pos, &super::forward::full_layout, cap)?;
        self.head(&x)
    }
}
