//! The forward path. [`forward`] runs blocks of a model on a set of states, block by block, each
//! block read once for all of them: evaluation, the planner's fitness, ablations and
//! [`super::Model::forward`] all run through it, after [`embed_batches`].

use candle_core::{Device, Tensor};

use super::{BlockOpts, Blocks, Capture, Positions, Result};

/// Which blocks a forward pass runs and how: `layout(i)` is block i's options; None removes the
/// block (it is then not even read).
pub type Layout<'a> = &'a dyn Fn(usize) -> Option<BlockOpts>;

/// Every block, whole.
pub fn full_layout(_: usize) -> Option<BlockOpts> {
    Some(BlockOpts::default())
}

/// Embeds `windows` (of equal length), `batch` windows to a batch: (batch, tokens, hidden) each.
pub fn embed_batches(model: &dyn Blocks, windows: &[Vec<u32>], batch: usize) -> Result<Vec<Tensor>> {
    let ctx = windows.first().map_or(0, Vec::len);
    windows
        .chunks(batch.max(1))
        .map(|c| {
            let flat: Vec<u32> = c.iter().flatten().copied().collect();
            model.embed(&Tensor::from_vec(flat, (c.len(), ctx), &Device::Cpu)?)
        })
        .collect()
}

/// Runs blocks `blocks` of `model` on every state of `xs`, block by block — each block read once
/// for all the states (a streamed model decodes it once) — as `layout` says, observed by `cap`.
/// `after(i, xs)` is called after block i with the states leaving it (a removed block's: those
/// entering it).
pub fn forward(
    model: &dyn Blocks,
    xs: &mut [Tensor],
    blocks: std::ops::Range<usize>,
    pos: &Positions,
    layout: Layout,
    cap: &mut dyn Capture,
    mut after: impl FnMut(usize, &[Tensor]) -> Result<()>,
) -> Result<()> {
    for i in blocks {
        if let Some(o) = layout(i) {
            let block = model.block(i)?;
            for x in xs.iter_mut() {
                *x = block.forward(x, model.config(), pos, o, cap)?;
            }
        }
        after(i, xs)?;
    }
    Ok(())
}

/// [`forward`] on one state `x`: the state leaving the last of `blocks`.
pub fn forward_one(
    model: &dyn Blocks,
    x: Tensor,
    blocks: std::ops::Range<usize>,
    pos: &Positions,
    layout: Layout,
    cap: &mut dyn Capture,
) -> Result<Tensor> {
    let mut xs = [x];
    forward(model, &mut xs, blocks, pos, layout, cap, |_, _| Ok(()))?;
    let [x] = xs;
    Ok(x)
}
