# Scoring by llama.cpp, sourced by the benchmark scripts: llama-perplexity --kl-divergence of a
# file against the base model's logits on EVAL_CHUNKS windows of 512 tokens of assets/eval.txt.
# Needs BIN (llama.cpp's binaries), BASE, KLBASE (the base's logits, made here if missing),
# WORK (logs), EVAL_CHUNKS and THREADS.

if [ ! -f "$KLBASE" ]; then
  "$BIN/llama-perplexity" -m "$BASE" -f assets/eval.txt -c 512 --chunks "$EVAL_CHUNKS" -t "$THREADS" \
    --kl-divergence-base "$KLBASE" >"$WORK/base.log" 2>&1
fi

score() { # file → "bpw ppl mean_kld p99_kld same_top" (bpw as llama.cpp reports it)
  local log="$WORK/$(basename "$1").kld.log"
  "$BIN/llama-perplexity" -m "$1" -f assets/eval.txt -c 512 --chunks "$EVAL_CHUNKS" -t "$THREADS" -lv 4 \
    --kl-divergence-base "$KLBASE" --kl-divergence >"$log" 2>&1
  local bpw ppl kld p99 top
  bpw=$(grep -oE 'file size += [0-9.]+ [KMG]iB \([0-9.]+ BPW\)' "$log" | grep -oE '[0-9.]+ BPW' | awk '{print $1}')
  ppl=$(grep -E '^Mean PPL\(Q\) +:' "$log" | awk '{print $4}')
  kld=$(grep -E '^Mean    KLD:' "$log" | awk '{print $3}')
  p99=$(grep -E '^99.0%   KLD:' "$log" | awk '{print $3}')
  top=$(grep -E '^Same top p:' "$log" | awk '{print $4}')
  echo "$bpw $ppl $kld $p99 $top"
}
