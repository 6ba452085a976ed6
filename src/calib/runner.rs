//! The calibration runner: the windows embedded once, then advanced through the model one block
//! at a time, each block observed by a [`Capture`] on the way. Compression, the profile and the
//! layer database all walk a model this way; with a streamed model ([`super::Blocks`]) only the
//! block being run is in memory.
//!
//! The states between blocks are the other thing that grows with the calibration set (128
//! windows of 2048 tokens of an 8B model: 4.3 GB in f32). They are kept in f32 while they fit
//! [`StateLimits::f32_bytes`], in f16 past it (half the memory; each batch is widened to f32 when
//! it runs), and in f16 in an unlinked temporary file past [`StateLimits::memory_bytes`].

use candle_core::{DType, Device, Tensor};

use super::Windows;
use crate::model::forward::embed_batches;
use crate::model::{Block, BlockOpts, Blocks, Capture, Config, ModelError, Positions, Result};
use crate::spill::Spill;

/// Where the states between blocks may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Above this many bytes in f32 the states are kept in f16.
    pub f32_bytes: u64,
    /// Above this many bytes (in f16) they go to a temporary file.
    pub memory_bytes: u64,
}

impl StateLimits {
    /// Always f32 in memory.
    pub const UNLIMITED: StateLimits = StateLimits { f32_bytes: u64::MAX, memory_bytes: u64::MAX };

    /// For a memory limit of `bytes`: f32 up to a quarter of it, f16 in memory up to half.
    pub fn for_memory(bytes: u64) -> StateLimits {
        StateLimits { f32_bytes: bytes / 4, memory_bytes: bytes / 2 }
    }

    /// The default memory limit: the machine's physical memory (`/proc/meminfo`), or 16 GiB
    /// where it cannot be read.
    pub fn machine_memory() -> u64 {
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        total.map_or(16 << 30, |kb| kb * 1024)
    }
}

/// How the states are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    F16,
    /// f16 in a temporary file.
    File,
}

enum State {
    Memory(Tensor),
    /// f16 values at `offset` of the spill file, of shape `dims`.
    Spilled {
        offset: u64,
        dims: Vec<usize>,
    },
}

pub struct Runner {
    pub config: Config,
    pub positions: Positions,
    storage: Storage,
    states: Vec<State>,
    spill: Option<Spill>,
}

impl Runner {
    /// Embeds `windows`, `batch` windows to a batch, the states held as `limits` allow.
    pub fn new(model: &dyn Blocks, windows: &Windows, batch: usize, limits: StateLimits) -> Result<Runner> {
        let f32_bytes = (windows.len() * windows.ctx * model.config().hidden_size * 4) as u64;
        let mut runner = Runner::empty(model, windows.ctx, f32_bytes, limits)?;
        runner.advance(embed_batches(model, &windows.windows, batch)?)?;
        Ok(runner)
    }

    /// A runner whose states are `states` (every batch's in f32, as [`Runner::states`] gives
    /// them: those a shard's preparation saved entering a block), held as `limits` allow.
    pub fn with_states(model: &dyn Blocks, ctx: usize, states: Vec<Tensor>, limits: StateLimits) -> Result<Runner> {
        let f32_bytes = states.iter().map(|t| t.elem_count() as u64 * 4).sum();
        let mut runner = Runner::empty(model, ctx, f32_bytes, limits)?;
        runner.advance(states)?;
        Ok(runner)
    }

    /// A runner with no states yet, storing `f32_bytes` of them as `limits` allow.
    fn empty(model: &dyn Blocks, ctx: usize, f32_bytes: u64, limits: StateLimits) -> Result<Runner> {
        let storage = if f32_bytes <= limits.f32_bytes {
            Storage::F32
        } else if f32_bytes / 2 <= limits.memory_bytes {
            Storage::F16
        } else {
            Storage::File
        };
        let spill = match storage {
            Storage::File => {
                Some(Spill::new("states").map_err(|error| ModelError::Io { path: crate::spill::folder(), error })?)
            }
            _ => None,
        };
        let positions = Positions::new(model.config(), ctx, &Device::Cpu)?;
        Ok(Runner { config: model.config().clone(), positions, storage, states: Vec::new(), spill })
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    pub fn n_batches(&self) -> usize {
        self.states.len()
    }

    /// Batch `j`'s states in f32.
    pub fn state(&self, j: usize) -> Result<Tensor> {
        match &self.states[j] {
            State::Memory(t) => Ok(t.to_dtype(DType::F32)?),
            State::Spilled { offset, dims } => {
                let n: usize = dims.iter().product();
                let spill = self.spill.as_ref().expect("spilled states have a file");
                let b = spill
                    .read(*offset, 2 * n)
                    .map_err(|error| ModelError::Io { path: crate::spill::folder(), error })?;
                let v: Vec<f32> = b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
                Ok(Tensor::from_vec(v, dims.as_slice(), &Device::Cpu)?)
            }
        }
    }

    /// Every batch's states in f32.
    pub fn states(&self) -> Result<Vec<Tensor>> {
        (0..self.states.len()).map(|j| self.state(j)).collect()
    }

    /// Runs `block` (with `opts`) on every batch's states, observed by `cap`; `before(j, cap)` is
    /// called before batch j. Returns the outputs; the states are not advanced.
    pub fn run<C: Capture>(
        &self,
        block: &Block,
        opts: BlockOpts,
        cap: &mut C,
        mut before: impl FnMut(usize, &mut C),
    ) -> Result<Vec<Tensor>> {
        (0..self.states.len())
            .map(|j| {
                before(j, cap);
                block.forward(&self.state(j)?, &self.config, &self.positions, opts, cap)
            })
            .collect()
    }

    /// Makes `outputs` (of [`Runner::run`]) the states, stored as the runner stores them.
    pub fn advance(&mut self, outputs: Vec<Tensor>) -> Result<()> {
        let io = |error| ModelError::Io { path: crate::spill::folder(), error };
        let storage = self.storage;
        // The new states overwrite the old ones from the file's start.
        let mut spill = self.spill.as_mut().map(Spill::rewind);
        self.states = outputs
            .into_iter()
            .map(|t| match storage {
                Storage::F32 => Ok(State::Memory(t)),
                Storage::F16 => Ok(State::Memory(t.to_dtype(DType::F16)?)),
                Storage::File => {
                    let dims = t.dims().to_vec();
                    let bytes: Vec<u8> = t
                        .flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect();
                    let offset = spill.as_mut().expect("a spill file").append(&bytes).map_err(io)?;
                    Ok(State::Spilled { offset, dims })
                }
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Runs `block` on every batch, unobserved, and advances the states.
    pub fn step(&mut self, block: &Block, opts: BlockOpts) -> Result<()> {
        let out = self.run(block, opts, &mut (), |_, _| {})?;
        self.advance(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_choose_the_storage_and_states_read_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let model = crate::model::Model::load(&dir).unwrap();
        let ids: Vec<u32> = (0..96).map(|i| (i * 7 % 100) as u32).collect();
        let windows = Windows::new(&ids, 16, None).unwrap();
        let bytes = (96 * model.config.hidden_size * 4) as u64;
        let f32_runner = Runner::new(&model, &windows, 2, StateLimits::UNLIMITED).unwrap();
        assert_eq!(f32_runner.storage(), Storage::F32);
        let exact = f32_runner.states().unwrap();
        for (limits, storage) in [
            (StateLimits { f32_bytes: bytes - 1, memory_bytes: bytes }, Storage::F16),
            (StateLimits { f32_bytes: bytes - 1, memory_bytes: bytes / 2 - 1 }, Storage::File),
        ] {
            let mut r = Runner::new(&model, &windows, 2, limits).unwrap();
            assert_eq!(r.storage(), storage);
            // Every value within f16's half-ulp of the f32 state.
            for (a, b) in exact.iter().zip(r.states().unwrap()) {
                let (a, b) = (
                    a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= x.abs() * 4.9e-4 + 1e-7), "{storage:?}");
            }
            // A block's outputs go back to the same storage.
            r.step(&model.blocks[0], BlockOpts::default()).unwrap();
            assert_eq!(r.n_batches(), 3);
            assert_eq!(r.state(2).unwrap().dims(), &[2, 16, model.config.hidden_size]);
        }
    }
}
