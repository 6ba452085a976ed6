//! What llama.cpp's converter writes for an architecture that a value cannot say: the converter
//! class's own list of hyper-parameters, one file per architecture whose class writes its own.

pub mod gemma2;
pub mod gemma3;
pub mod phi3;

use crate::model::gguf_file::Value;
use crate::model::{Arch, Config};

/// The hyper-parameters (`<arch>.` key suffix, value; `""` for `general.file_type`'s place) that
/// llama.cpp's converter writes, in its order.
pub type Hparams = Vec<(&'static str, Value)>;

/// From the model, its config.json (with its class's defaults) and the common list, the list an
/// architecture's converter class writes.
pub type ConverterHparams = fn(&Config, &serde_json::Value, Hparams) -> Hparams;

/// The architectures whose converter class writes a list of its own; the others write the common
/// list as it is.
const OWN_LISTS: [(Arch, ConverterHparams); 3] = [
    (Arch::Gemma2, gemma2::converter_hparams),
    (Arch::Gemma3, gemma3::converter_hparams),
    (Arch::Phi3, phi3::converter_hparams),
];

/// The hyper-parameters the converter writes for a model of `config.arch`.
pub fn converter_hparams(config: &Config, config_json: &serde_json::Value, common: Hparams) -> Hparams {
    match OWN_LISTS.iter().find(|(a, _)| *a == config.arch) {
        Some((_, own)) => own(config, config_json, common),
        None => common,
    }
}
