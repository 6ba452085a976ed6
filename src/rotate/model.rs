//! A model's tensors rotated by Q (see [`super`]). For a pre-norm block with RMSNorm,
//! `rms(x Q) = rms(x)`, so once each norm's weight w is folded into the linears that read the
//! norm (W ← W diag(w), the norm's weight ← 1), every reader can take the rotated stream:
//!
//! ```text
//! embedding         E ← E Q                 (each token's row)
//! q, k, v, gate, up W ← diag-folded W · Q    (input side)
//! o, down           W ← Qᵀ W,  bias ← bias Q (output side: what they add to the stream)
//! output            W ← W diag(w_final) · Q  (untied from the embedding when they were tied)
//! ```
//!
//! The rotated model computes the same logits up to f32 round-off. Where the algebra fails:
//! Gemma 2/3 normalize each branch's output with its own weight before the residual add
//! (`post_attention_norm`), an elementwise scale that does not commute with Q; they are refused.

use candle_core::Tensor;

use super::Rotation;
use crate::model::kernels::with_f32;
use crate::model::{Block, Config, Linear, Model, ModelError, Result, TensorId};

/// Refuses an architecture the rotation would change the function of.
pub fn check_supported(config: &Config) -> Result<()> {
    if config.arch.facts().post_norms {
        return Err(ModelError::InvalidConfig(format!(
            "{} cannot be rotated: its norms on the attention's and the MLP's outputs scale each channel before the residual add, which does not commute with a rotation",
            config.arch.gguf_name()
        )));
    }
    Ok(())
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    with_f32(t, <[f32]>::to_vec)
}

fn tensor(v: Vec<f32>, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, like.dims(), like.device())?)
}

/// W diag(w) Q for W (rows × n): the norm weight `w` folded in, then every row rotated.
fn fold_and_rotate_inputs(weight: &Tensor, norm: Option<&Tensor>, r: &Rotation) -> Result<Tensor> {
    let mut w = values(weight)?;
    if let Some(norm) = norm {
        let g = values(norm)?;
        w.chunks_mut(g.len()).for_each(|row| row.iter_mut().zip(&g).for_each(|(a, b)| *a *= b));
    }
    r.rows_times_q(&mut w);
    tensor(w, weight)
}

/// A linear that writes to the stream: W ← Qᵀ W, its bias ← bias Q.
fn rotate_output(l: &mut Linear, r: &Rotation) -> Result<()> {
    let mut w = values(&l.weight)?;
    r.q_transpose_times(&mut w, l.in_features());
    l.weight = tensor(w, &l.weight)?;
    if let Some(b) = &l.bias {
        let mut v = values(b)?;
        r.rows_times_q(&mut v);
        l.bias = Some(tensor(v, b)?);
    }
    Ok(())
}

/// Folds the block's two norms into the linears reading them and rotates every linear.
pub fn rotate_block(block: &mut Block, r: &Rotation) -> Result<()> {
    let ones = |t: &Tensor| -> Result<Tensor> { Ok(t.ones_like()?) };
    for l in &mut block.attn.qkv {
        l.weight = fold_and_rotate_inputs(&l.weight, Some(&block.attn_norm), r)?;
    }
    for l in &mut block.mlp.gate_up {
        l.weight = fold_and_rotate_inputs(&l.weight, Some(&block.mlp_norm), r)?;
    }
    rotate_output(&mut block.attn.o, r)?;
    rotate_output(&mut block.mlp.down, r)?;
    block.attn_norm = ones(&block.attn_norm)?;
    block.mlp_norm = ones(&block.mlp_norm)?;
    Ok(())
}

/// The token embedding (vocab × n), every row rotated.
pub fn rotate_embedding(embed: &Tensor, r: &Rotation) -> Result<Tensor> {
    fold_and_rotate_inputs(embed, None, r)
}

/// The output projection (vocab × n) with the final norm's weight folded in, rotated.
pub fn rotate_head(head: &Tensor, final_norm: &Tensor, r: &Rotation) -> Result<Tensor> {
    fold_and_rotate_inputs(head, Some(final_norm), r)
}

/// Rotates a whole model in memory: the function stays, every tensor of the residual stream
/// changes, the norms become ones, and a tied output becomes a matrix of its own.
pub fn rotate_model(model: &mut Model, r: &Rotation) -> Result<()> {
    check_supported(&model.config)?;
    if r.width() != model.config.hidden_size {
        return Err(ModelError::InvalidConfig(format!(
            "a rotation of width {} for a model of hidden size {}",
            r.width(),
            model.config.hidden_size
        )));
    }
    for b in &mut model.blocks {
        rotate_block(b, r)?;
    }
    let head = model.lm_head.as_ref().map_or(&model.embed, |l| &l.weight);
    let head = rotate_head(head, &model.final_norm, r)?;
    model.lm_head = Some(Linear { name: TensorId::OUTPUT.to_string(), weight: head, bias: None });
    model.config.tie_word_embeddings = false;
    model.embed = rotate_embedding(&model.embed, r)?;
    model.final_norm = model.final_norm.ones_like()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Model {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        Model::load(&dir).unwrap()
    }

    fn logits(m: &Model) -> Vec<f32> {
        let ids: Vec<u32> = (0..24).map(|i| (i * 37 % 97) as u32 + 1).collect();
        let tokens = Tensor::from_vec(ids, (1, 24), &candle_core::Device::Cpu).unwrap();
        m.forward(&tokens, &mut ()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    /// ‖rotated − original‖ / ‖original‖ over the logits of one window.
    fn rotated_error(name: &str, seed: u64) -> f64 {
        let original = fixture(name);
        let mut rotated = original.clone();
        rotate_model(&mut rotated, &Rotation::new(original.config.hidden_size, seed)).unwrap();
        let (a, b) = (logits(&original), logits(&rotated));
        let diff: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        (diff / norm).sqrt()
    }

    #[test]
    fn rotated_models_give_the_same_logits() {
        // llama (tied), qwen2 (q/k/v biases), qwen3 (q/k norms), phi3 (fused q/k/v and gate/up),
        // mistral (window), smollm3 (NoPE blocks).
        for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-mistral", "tiny-smollm3"] {
            let e = rotated_error(name, 7);
            assert!(e < 1e-5, "{name}: relative logit error {e:e}");
        }
    }

    #[test]
    fn rotation_changes_the_weights_unties_the_output_and_leaves_unit_norms() {
        let original = fixture("tiny-qwen2");
        assert!(original.lm_head.is_none(), "a tied fixture");
        let mut m = original.clone();
        let r = Rotation::new(m.config.hidden_size, 1);
        rotate_model(&mut m, &r).unwrap();
        assert!(m.lm_head.is_some() && !m.config.tie_word_embeddings);
        let ones = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&v| v == 1.0);
        assert!(ones(&m.final_norm) && m.blocks.iter().all(|b| ones(&b.attn_norm) && ones(&b.mlp_norm)));
        let q = |m: &Model| m.blocks[0].attn.qkv[0].weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(q(&m), q(&original));
    }

    #[test]
    fn gemma_is_refused_in_one_line() {
        let mut m = fixture("tiny-gemma2");
        let r = Rotation::new(m.config.hidden_size, 1);
        let e = rotate_model(&mut m, &r).unwrap_err().to_string();
        assert!(e.contains("gemma2 cannot be rotated"), "{e}");
    }
}
