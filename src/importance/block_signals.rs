//! Signals gathered while one block runs on calibration windows:
//! - block influence (ShortGPT): 1 − cos(block input, block output), per token;
//! - sublayer redundancy (LLM-Drop): cos(x, x + f(norm(x))) for attention and MLP;
//! - the input moments of its linears (see [`InputMoments`]);
//! - attention summaries (RSQ's received attention r_t, Q-VLM's attention entropy).

use candle_core::Tensor;
use rayon::prelude::*;

use crate::importance::profile::AttentionStats;
use crate::model::capture::Probs;
use crate::model::kernels::with_f32;
use crate::model::{Block, Capture, Linear, Result, Sublayer};

use crate::calib::moments::BlockMoments;

/// Sum over tokens of cos(a_t, b_t) for (…, hidden) tensors, and the token count.
pub fn cosine_sum(a: &Tensor, b: &Tensor) -> Result<(f64, usize)> {
    let d = *a.dims().last().expect("hidden dimension");
    with_f32(a, |xa| {
        with_f32(b, |xb| {
            let per_token: Vec<f64> = xa
                .par_chunks(d)
                .zip(xb.par_chunks(d))
                .map(|(u, v)| {
                    let (mut uv, mut uu, mut vv) = (0f64, 0f64, 0f64);
                    for (&x, &y) in u.iter().zip(v) {
                        uv += (x * y) as f64;
                        uu += (x * x) as f64;
                        vv += (y * y) as f64;
                    }
                    if uu == 0.0 || vv == 0.0 {
                        1.0
                    } else {
                        uv / (uu.sqrt() * vv.sqrt())
                    }
                })
                .collect();
            // Summed in token order: the same bits at any thread count.
            (per_token.iter().sum(), xa.len() / d)
        })
    })?
}

/// Running sums of the attention summaries over (window, head) pairs.
#[derive(Debug, Default, Clone)]
pub struct AttentionAccum {
    row_entropy_sum: f64,
    rows: usize,
    received_entropy_sum: f64,
    sink_sum: f64,
    windows: usize,
}

impl AttentionAccum {
    /// Adds probabilities of shape (batch, heads, tokens, tokens).
    pub fn add(&mut self, probs: &Tensor) -> Result<()> {
        let (b, nh, t, _) = probs.dims4()?;
        with_f32(probs, |p| {
            for w in 0..b {
                let window = &p[w * nh * t * t..(w + 1) * nh * t * t];
                let mut received = vec![0f64; t];
                for (r, row) in window.chunks(t).enumerate() {
                    let live = &row[..=(r % t)];
                    self.row_entropy_sum -=
                        live.iter().filter(|&&x| x > 0.0).map(|&x| (x as f64) * (x as f64).ln()).sum::<f64>();
                    for (acc, &x) in received.iter_mut().zip(live) {
                        *acc += x as f64;
                    }
                }
                self.rows += nh * t;
                let total: f64 = received.iter().sum();
                let h: f64 = received.iter().filter(|&&x| x > 0.0).map(|&x| -(x / total) * (x / total).ln()).sum();
                self.received_entropy_sum += if t > 1 { h / (t as f64).ln() } else { 0.0 };
                self.sink_sum += received[0] / total;
                self.windows += 1;
            }
        })
    }

    pub fn finish(&self) -> AttentionStats {
        if self.windows == 0 {
            return AttentionStats::default();
        }
        AttentionStats {
            row_entropy: self.row_entropy_sum / self.rows as f64,
            received_entropy: self.received_entropy_sum / self.windows as f64,
            sink_share: self.sink_sum / self.windows as f64,
        }
    }
}

/// Everything one block reports while it runs; a [`Capture`].
pub struct BlockCapture {
    pub block: usize,
    block_in: Option<Tensor>,
    residual: Option<Tensor>,
    pub influence: (f64, usize),
    pub attention_cos: (f64, usize),
    pub mlp_cos: (f64, usize),
    pub moments: BlockMoments,
    pub attention: AttentionAccum,
    /// Whether attention probabilities are summarised for the current batch.
    pub attention_enabled: bool,
}

impl BlockCapture {
    pub fn new(block: &Block) -> Self {
        BlockCapture {
            block: block.index,
            block_in: None,
            residual: None,
            influence: (0.0, 0),
            attention_cos: (0.0, 0),
            mlp_cos: (0.0, 0),
            moments: BlockMoments::new(block),
            attention: AttentionAccum::default(),
            attention_enabled: false,
        }
    }

    pub fn block_influence(&self) -> f64 {
        ratio(self.influence)
    }

    pub fn redundancy(&self, s: Sublayer) -> f64 {
        1.0 - ratio(match s {
            Sublayer::Attention => self.attention_cos,
            Sublayer::Mlp => self.mlp_cos,
        })
    }
}

/// 1 − mean cosine from a (sum of cosines, count) pair.
fn ratio((sum, n): (f64, usize)) -> f64 {
    if n == 0 {
        0.0
    } else {
        1.0 - sum / n as f64
    }
}

fn add(acc: &mut (f64, usize), (s, n): (f64, usize)) {
    acc.0 += s;
    acc.1 += n;
}

impl Capture for BlockCapture {
    fn block_input(&mut self, _block: usize, x: &Tensor) -> Result<()> {
        self.block_in = Some(x.clone());
        self.residual = Some(x.clone());
        Ok(())
    }

    fn sublayer_output(&mut self, _block: usize, s: Sublayer, out: &Tensor) -> Result<()> {
        let x = self.residual.take().expect("block_input comes first");
        let next = (&x + out)?;
        let c = cosine_sum(&x, &next)?;
        add(if s == Sublayer::Attention { &mut self.attention_cos } else { &mut self.mlp_cos }, c);
        self.residual = Some(next);
        Ok(())
    }

    fn block_output(&mut self, _block: usize, x: &Tensor) -> Result<()> {
        let input = self.block_in.take().expect("block_input comes first");
        let c = cosine_sum(&input, x)?;
        add(&mut self.influence, c);
        self.residual = None;
        Ok(())
    }

    fn linear_input(&mut self, _block: usize, linears: &[&Linear], x: &Tensor) -> Result<()> {
        self.moments.add(linears, x)
    }

    fn wants_attention(&self, _block: usize) -> Probs {
        if self.attention_enabled {
            Probs::Full
        } else {
            Probs::None
        }
    }

    fn attention_probs(&mut self, _block: usize, probs: &Tensor) -> Result<()> {
        self.attention.add(probs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cosines_of_hand_made_vectors() {
        let a = Tensor::new(&[[1f32, 0.], [1., 1.]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0f32, 2.], [2., 2.]], &Device::Cpu).unwrap();
        let (s, n) = cosine_sum(&a, &b).unwrap();
        assert_eq!(n, 2);
        assert!((s - 1.0).abs() < 1e-12); // cos = 0 and 1
    }

    #[test]
    fn attention_summaries_of_a_sink_and_of_uniform_attention() {
        // One head, 3 tokens. Everything on token 0: received entropy 0, sink share 1.
        let sink = Tensor::new(&[[[[1f32, 0., 0.], [1., 0., 0.], [1., 0., 0.]]]], &Device::Cpu).unwrap();
        let mut acc = AttentionAccum::default();
        acc.add(&sink).unwrap();
        let s = acc.finish();
        assert_eq!((s.row_entropy, s.received_entropy, s.sink_share), (0.0, 0.0, 1.0));
        // Uniform causal rows: entropies ln 1, ln 2, ln 3; received (1/1+1/2+1/3, 1/2+1/3, 1/3).
        let u = Tensor::new(&[[[[1f32, 0., 0.], [0.5, 0.5, 0.], [1. / 3., 1. / 3., 1. / 3.]]]], &Device::Cpu).unwrap();
        let mut acc = AttentionAccum::default();
        acc.add(&u).unwrap();
        let s = acc.finish();
        assert!((s.row_entropy - (2f64.ln() + 3f64.ln()) / 3.0).abs() < 1e-6);
        assert!((s.sink_share - (11.0 / 6.0) / 3.0).abs() < 1e-6);
    }
}
