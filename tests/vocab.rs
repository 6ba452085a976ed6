//! llama.cpp's own tokenizer tests on real vocabularies: the `models/ggml-vocab-NAME.gguf` files
//! of the sdist our llama.cpp is built from (scripts/build_llama_cpp.sh unpacks it), each with
//! inputs (`.inp`, cases separated by `\n__ggml_vocab_test__\n`) and the ids the model's own
//! tokenizer gives (`.out`, one line of ids per case), as llama.cpp's test-tokenizer-0 reads
//! them. triage's tokenizer, rebuilt from each file's metadata, must give the same ids.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use triage::model::gguf_file::GgufFile;
use triage::model::Tokenizer;

mod common;

fn models_dir() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/llama.cpp/src");
    let found = std::fs::read_dir(&src)
        .unwrap_or_else(|e| {
            panic!("{}: {e}; scripts/test.sh unpacks llama.cpp's sources (scripts/build_llama_cpp.sh)", src.display())
        })
        .flatten()
        .map(|e| e.path().join("vendor/llama.cpp/models"))
        .find(|p| p.is_dir());
    found.unwrap_or_else(|| panic!("no vendor/llama.cpp/models under {}", src.display()))
}

/// The cases of `ggml-vocab-NAME.gguf.inp/.out`: (text, ids).
fn cases(dir: &Path, name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            Some(n) => {
                texts.push(inp[pos..pos + n].to_string());
                pos += n + sep.len();
            }
            None => {
                texts.push(inp[pos..].to_string());
                break;
            }
        }
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{name}: cases");
    texts.into_iter().zip(ids).collect()
}

fn check(name: &str) {
    let dir = models_dir();
    let (g, _) = GgufFile::read(&dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
    let md: HashMap<_, _> = g.metadata.into_iter().collect();
    let tok = Tokenizer::from_gguf(&md).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut bad = Vec::new();
    let all = cases(&dir, name);
    for (text, want) in &all {
        let got = tok.encode(text).unwrap();
        if &got != want {
            bad.push(format!("{text:?}: ours {got:?}, llama.cpp {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{name}: {} of {} cases differ:\n{}", bad.len(), all.len(), bad.join("\n"));
}

#[test]
fn gpt2() {
    check("gpt-2");
}

#[test]
fn llama3() {
    check("llama-bpe");
}

#[test]
fn qwen2() {
    check("qwen2");
}

#[test]
fn starcoder() {
    check("starcoder");
}

#[test]
fn refact() {
    check("refact");
}

#[test]
fn command_r() {
    check("command-r");
}

#[test]
fn mpt() {
    check("mpt");
}

#[test]
fn llama_sentencepiece() {
    check("llama-spm");
}

#[test]
fn phi3_sentencepiece() {
    check("phi-3");
}

#[test]
fn whole_texts_give_llama_tokenizes_ids() {
    // llama-tokenize's ids on a Unicode-heavy text and the evaluation text, by their count and
    // sha256 as it prints them (scripts/make_vocab_expectations.py).
    let dir = models_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/fixtures/vocab-expected.json")).unwrap())
            .unwrap();
    let texts = [("unicode", root.join("tests/fixtures/unicode.txt")), ("eval", common::asset("eval.txt"))];
    let mut bad = Vec::new();
    for (name, want) in expected.as_object().unwrap() {
        let (g, _) = GgufFile::read(&dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
        let md: HashMap<_, _> = g.metadata.into_iter().collect();
        let tok = Tokenizer::from_gguf(&md).unwrap();
        for (key, path) in &texts {
            let ids = tok.encode(&std::fs::read_to_string(path).unwrap()).unwrap();
            let printed = format!("[{}]", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
            let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(printed.as_bytes()));
            if (ids.len() as u64, sha.as_str())
                != (want[key]["tokens"].as_u64().unwrap(), want[key]["sha256"].as_str().unwrap())
            {
                bad.push(format!("{name} {key}: {} tokens, llama.cpp {}", ids.len(), want[key]["tokens"]));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn a_prefix_gives_the_whole_texts_first_tokens() {
    // What the windows of a long text are cut from when only the first are wanted: the same ids
    // as the whole text's encoding, for every tokenizer family, at cuts in and past the text.
    let dir = models_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/fixtures/vocab-expected.json")).unwrap())
            .unwrap();
    let texts = [
        std::fs::read_to_string(root.join("tests/fixtures/unicode.txt")).unwrap(),
        std::fs::read_to_string(common::asset("eval.txt")).unwrap(),
    ];
    for name in expected.as_object().unwrap().keys() {
        let (g, _) = GgufFile::read(&dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
        let md: HashMap<_, _> = g.metadata.into_iter().collect();
        let tok = Tokenizer::from_gguf(&md).unwrap();
        for text in &texts {
            let whole = tok.encode(text).unwrap();
            for n in [1, 700, 20_480, whole.len() - 1, whole.len() + 5] {
                let prefix = tok.encode_prefix(text, n).unwrap();
                assert_eq!(prefix, whole[..n.min(whole.len())], "{name}: the first {n} of {} tokens", whole.len());
            }
        }
    }
}
