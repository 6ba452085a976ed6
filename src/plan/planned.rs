//! A model seen through a plan: the base model's weights with layer-database variants in place
//! of the planned tensors, each decoded when its block runs (the token embedding by row, the
//! output matrix by chunks of rows when large). Measuring a plan's KL this way holds one block,
//! not a model: the base may be streamed from its files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use candle_core::Tensor;

use super::database::Database;
use crate::model::stream::{head_in_chunks, HEAD_KEPT_BYTES};
use crate::model::tensor_id::gguf_block;
use crate::model::transformer::project;
use crate::model::{Block, Blocks, Config, ModelError, Result, Source};

pub struct Planned<'a> {
    base: &'a dyn Blocks,
    db: &'a Database,
    /// The database level of each planned tensor, by name; the others keep the base's weights.
    levels: HashMap<&'a str, usize>,
    /// The token embedding's and the output matrix's variants, decoded whole when they take
    /// at most `kept_bytes` in f32 ([`HEAD_KEPT_BYTES`]); larger, they are read by rows.
    whole: [OnceLock<Tensor>; 2],
    kept_bytes: usize,
}

const EMBED: &str = "token_embd.weight";
const OUTPUT: &str = "output.weight";

impl<'a> Planned<'a> {
    /// `base` with each tensor of `levels` (name, database level) at that level.
    pub fn new(
        base: &'a dyn Blocks,
        db: &'a Database,
        levels: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> Planned<'a> {
        Planned {
            base,
            db,
            levels: levels.into_iter().collect(),
            whole: [OnceLock::new(), OnceLock::new()],
            kept_bytes: HEAD_KEPT_BYTES,
        }
    }

    /// Every tensor of `db` at its level in `levels` (in the database's name order).
    pub fn of_levels(base: &'a dyn Blocks, db: &'a Database, levels: &[usize]) -> Planned<'a> {
        Planned::new(base, db, db.tensors.keys().map(String::as_str).zip(levels.iter().copied()))
    }

    /// Rows `rows` of the planned matrix `name` (the embedding or the output; `slot` 0 or 1).
    fn matrix_rows(&self, name: &str, slot: usize, level: usize, rows: Range<usize>) -> Result<Tensor> {
        let tv = &self.db.tensors[name];
        if 4 * tv.rows * tv.cols > self.kept_bytes {
            return self.db.rows(name, level, rows);
        }
        let w = match self.whole[slot].get() {
            Some(w) => w,
            None => {
                let w = self.db.decoded(name, level)?;
                self.whole[slot].get_or_init(|| w)
            }
        };
        Ok(w.narrow(0, rows.start, rows.len())?)
    }
}

impl Blocks for Planned<'_> {
    fn config(&self) -> &Config {
        self.base.config()
    }
    fn source(&self) -> &Source {
        self.base.source()
    }
    fn n_blocks(&self) -> usize {
        self.base.n_blocks()
    }
    fn block(&self, i: usize) -> Result<Cow<'_, Block>> {
        let block = self.base.block(i)?;
        if !self.levels.keys().any(|n| gguf_block(n) == Some(i)) {
            return Ok(block);
        }
        let mut block = block.into_owned();
        for l in block.linears_mut() {
            if let Some(&level) = self.levels.get(l.name.as_str()) {
                l.weight = self.db.over(&l.name, level, &l.weight)?;
            }
        }
        Ok(Cow::Owned(block))
    }
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let Some(&level) = self.levels.get(EMBED) else { return self.base.embed(tokens) };
        let (b, t) = tokens.dims2()?;
        let h = self.config().hidden_size;
        let ids = tokens.flatten_all()?;
        let tv = &self.db.tensors[EMBED];
        let x = if 4 * tv.rows * tv.cols <= self.kept_bytes {
            self.matrix_rows(EMBED, 0, level, 0..tv.rows)?.index_select(&ids, 0)?
        } else {
            let row = |id: u32| match id as usize {
                id if id < tv.rows => self.db.rows(EMBED, level, id..id + 1),
                id => Err(ModelError::InvalidConfig(format!("token id {id} is beyond the vocabulary of {}", tv.rows))),
            };
            let rows = ids.to_vec1::<u32>()?.into_iter().map(row).collect::<Result<Vec<_>>>()?;
            Tensor::cat(&rows, 0)?
        };
        crate::model::transformer::scale_embedding(self.config(), x.reshape((b, t, h))?)
    }
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let (name, slot) = if self.config().tie_word_embeddings { (EMBED, 0) } else { (OUTPUT, 1) };
        let Some(&level) = self.levels.get(name) else { return self.base.head(x) };
        let tv = &self.db.tensors[name];
        if 4 * tv.rows * tv.cols <= self.kept_bytes {
            return project(self.config(), self.final_norm(), x, &self.matrix_rows(name, slot, level, 0..tv.rows)?);
        }
        head_in_chunks(self.config(), self.final_norm(), x, &mut |_, rows| self.db.rows(name, level, rows))
    }
    fn final_norm(&self) -> &Tensor {
        self.base.final_norm()
    }
    fn rows(&self, name: &str, rows: Range<usize>) -> Result<Tensor> {
        match self.levels.get(name) {
            Some(&level) => self.db.rows(name, level, rows),
            None => self.base.rows(name, rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::database::tiny_types_database;
    use crate::plan::fitness::{full_layout, Probe};
    use crate::plan::search::QuantSpace;
    use crate::progress::Silent;

    /// A plan measured through the view — the variants decoded into each block as it runs,
    /// the embedding gathered by row or whole — gives the KL of the model with the variants
    /// set, exactly, from the embedding and from a block's original states.
    #[test]
    fn a_planned_view_measures_as_the_model_with_the_variants_set() {
        let (model, windows, db) = tiny_types_database();
        assert!(db.tensors.contains_key("token_embd.weight") && db.tensors.contains_key("output.weight"));
        let probe = Probe::new(&model, &windows.windows, &mut Silent).unwrap();
        let which: Vec<usize> = (0..windows.len()).collect();
        let space = QuantSpace::new(&model, &db, Vec::new(), 0);
        for shift in 0..3 {
            let levels: Vec<usize> =
                db.tensors.values().enumerate().map(|(i, tv)| (i + shift) % tv.variants.len()).collect();
            let whole = space.model(&levels).unwrap();
            let view = Planned::of_levels(&model, &db, &levels);
            let mut by_rows = Planned::of_levels(&model, &db, &levels);
            by_rows.kept_bytes = 0;
            for from in [0, 1] {
                let want = probe.kl(&whole, &which, from, &full_layout, None).unwrap();
                assert!(want > 0.0);
                assert_eq!(
                    probe.kl(&view, &which, from, &full_layout, None).unwrap(),
                    want,
                    "levels shifted by {shift}, from block {from}"
                );
                assert_eq!(
                    probe.kl(&by_rows, &which, from, &full_layout, None).unwrap(),
                    want,
                    "by rows: levels shifted by {shift}, from block {from}"
                );
            }
        }
    }
}
