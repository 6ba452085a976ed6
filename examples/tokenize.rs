//! The token ids triage's tokenizer gives a text, as `llama-tokenize --ids` prints them, for
//! comparing the two (scripts/check_hf_gguf.sh):
//!
//!     cargo run --release --example tokenize -- MODEL TEXT_FILE
//!
//! MODEL is a GGUF file (its `tokenizer.ggml.*` metadata; no tensor is read) or a Hugging Face
//! folder (its tokenizer.json, else its SentencePiece tokenizer.model). No special tokens are added, as in the perplexity protocol.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use triage::model::gguf_file::GgufFile;
use triage::model::Tokenizer;

fn run(model: PathBuf, text: PathBuf) -> Result<Vec<u32>, String> {
    let text = std::fs::read_to_string(&text).map_err(|e| format!("{}: {e}", text.display()))?;
    let tokenizer = if model.is_dir() && model.join("tokenizer.json").exists() {
        Tokenizer::from_file(&model.join("tokenizer.json")).map_err(|e| e.to_string())?
    } else if model.is_dir() {
        Tokenizer::from_sentencepiece_file(&model.join("tokenizer.model")).map_err(|e| e.to_string())?
    } else {
        let (g, _) = GgufFile::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
        let md: HashMap<_, _> = g.metadata.into_iter().collect();
        Tokenizer::from_gguf(&md).map_err(|e| e.to_string())?
    };
    tokenizer.encode(&text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, text] = args.as_slice() else {
        eprintln!("usage: tokenize MODEL TEXT_FILE");
        return ExitCode::from(2);
    };
    match run(model.into(), text.into()) {
        Ok(ids) => {
            println!("[{}]", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
