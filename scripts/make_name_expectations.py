#!/usr/bin/env python3
"""The naming metadata llama.cpp's convert_hf_to_gguf.py writes for a folder, printed as the
rows that src/layout/converter.rs's tests pin (and tests/hf_gguf.rs's for a renamed fixture).

    tools/pyenv/bin/python scripts/make_name_expectations.py            # the unit tests' rows
    tools/pyenv/bin/python scripts/make_name_expectations.py DIR GGUF   # one folder, its total
                                                                        # parameters read from GGUF

For each folder name (and `_name_or_path` in its config.json, where given) and total parameter
count it runs what the converter runs: gguf-py's `Metadata.load` on a folder of that name, then
`ModelBase.prepare_metadata`'s fallbacks (the folder's name as `general.name`, `gguf.size_label`
of the count), then `Metadata.set_gguf_meta_model` into a writer whose keys are printed in the
order written. The gguf-py is the one beside the converter that scripts/build_llama_cpp.sh
unpacks (the converter itself needs torch; this does not).
"""
from __future__ import annotations

import glob
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, sorted(glob.glob(str(REPO / "tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp/gguf-py")))[-1])
import gguf  # noqa: E402

NAMING = ["general.name", "general.author", "general.version", "general.organization", "general.finetune", "general.basename", "general.size_label"]

# (folder name, `_name_or_path` or None, total parameters as the converter counts them).
CASES = [
    ("qwen2.5-coder-0.5b-instruct", None, 494_032_768),
    ("gemma3-270m", None, 268_098_176),
    ("SmolLM2-135M-Instruct", None, 134_515_008),
    ("Llama-3.2-1B-Instruct", None, 1_235_814_432),
    ("Mistral-7B-Instruct-v0.3", None, 7_248_023_552),
    ("Qwen3-0.6B", None, 596_049_920),
    ("phi-3-mini-4k-instruct", None, 3_821_079_552),
    ("tiny-llama", None, 167_880),
    ("gemma-2-2b-it", None, 2_614_341_888),
    ("Meta-Llama-3.1-8B-Instruct", None, 8_030_261_312),
    ("Qwen2.5-7B-Instruct-1M", None, 7_615_616_512),
    ("model", None, 1_000_000),
    # A size far from the count is taken for a context length (the tiny fixtures renamed).
    ("qwen2.5-coder-0.5b-instruct", None, 167_880),
    ("gemma3-270m", None, 560_000),
    ("Mixtral-8x7B-Instruct-v0.1", None, 46_702_792_704),
    ("Qwen3-30B-A3B", None, 30_532_122_624),
    ("bloom-7b1", None, 7_069_016_064),
    ("stablelm-2-zephyr-1_6b", None, 1_644_515_328),
    ("Yi-1.5-34B-Chat-16K", None, 34_388_917_248),
    ("Llama-2-7b-chat-hf", None, 6_738_415_616),
    ("TinyLlama-1.1B-Chat-v1.0", None, 1_100_048_384),
    ("Phi-3.5-mini-instruct", None, 3_821_079_552),
    ("Meta-Llama-3-8B-Instruct-Q4_K_M", None, 8_030_261_248),
    ("OLMo-2-1124-7B-bf16", None, 7_298_617_344),
    ("t5-v1_1-xxl", None, 11_000_000_000),
    ("falcon-7b-iter100--lora", None, 7_000_000_000),
    ("3b-model", None, 3_000_000_000),
    ("c4ai-command-r-v01", None, 34_980_831_232),
    ("checkpoint-1000", None, 494_032_768),
    ("snapshot", "Qwen/Qwen2.5-Coder-0.5B-Instruct", 494_032_768),
    ("my-finetune-v2", "HuggingFaceTB/SmolLM2-135M", 134_515_008),
    ("tiny-qwen2", "./local-1B", 167_880),
    ("tiny-qwen2", "my cool-model v2", 167_880),
    ("tiny-qwen2", "/data/runs/out", 167_880),
]


def naming(folder: Path, total_params: int) -> list[tuple[str, str]]:
    md = gguf.Metadata.load(None, folder, None, total_params)
    if md.name is None:
        md.name = folder.name
    if md.size_label is None and total_params > 0:
        md.size_label = gguf.size_label(total_params, total_params, 0, 0)
    w = gguf.GGUFWriter(None, "llama")
    md.set_gguf_meta_model(w)
    return [(k, v.value) for k, v in w.kv_data[0].items() if k != "general.architecture"]


def rust(s: str | None) -> str:
    return "None" if s is None else f'Some("{s}")'


def main():
    if len(sys.argv) == 3:
        folder, path = Path(sys.argv[1]), sys.argv[2]
        total = sum(int(t.n_elements) for t in gguf.GGUFReader(path).tensors)
        print(f"{folder.name}: {total} parameters")
        for k, v in naming(folder, total):
            print(f'("{k}", "{v}"),')
        return
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, name_or_path, total) in enumerate(CASES):
            folder = Path(tmp) / str(i) / name
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps({} if name_or_path is None else {"_name_or_path": name_or_path}))
            got = dict(naming(folder, total))
            unknown = set(got) - set(NAMING)
            assert not unknown, unknown
            fields = ", ".join(rust(got.get(k)) for k in NAMING if k != "general.author")
            print(f'("{name}", {rust(name_or_path)}, {total}, [{fields}]),')


if __name__ == "__main__":
    main()
