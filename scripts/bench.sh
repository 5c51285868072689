#!/usr/bin/env bash
# Speed benchmarks; prints a markdown table for docs/benchmarks.md.
#
#   scripts/bench.sh                       # pre-training (fp32, bf16) + generation, ~10 min on 2 cores
#   NANOGPT_DIR=/path/to/nanoGPT scripts/bench.sh   # also run nanoGPT's CPU baby GPT side by side
#   STEPS=300 SKIP_GENERATION=1 scripts/bench.sh
#
# Pre-training: configs/pretrain/shakespeare_char.yaml for $STEPS steps (default 500), median
# ms/step over the steps after the first 20, tokens/s = 768 tokens per step / that, and the peak
# RSS the run reports. nanoGPT (optional) runs the same model, batch and optimizer with its CPU
# command line and OMP_NUM_THREADS = all cores, measured the same way from its log.
# Generation: `rlhf bench generate` for 256 new tokens at batch 1 and 16, with and without the KV
# cache, on a random-weight GPT-2 124M and on the shakespeare_char model trained here.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-500}
THREADS=${THREADS:-$(nproc)}
PY=/usr/bin/python3
RLHF=build/rlhf
OUT=runs/bench
[ -x "$RLHF" ] || scripts/build.sh --target rlhf
[ -f ../shared/data/tinyshakespeare/input.txt ] || { echo "bench: needs ../shared/data/tinyshakespeare/input.txt" >&2; exit 1; }
mkdir -p "$OUT"

median_ms() {  # metrics.jsonl -> median ms_per_step of train records after the first 20
    $PY - "$1" <<'PY'
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][20:]
print(f"{statistics.median(ms):.2f}")
PY
}

rows=()
for dtype in float32 bfloat16; do
    dir=$OUT/shakespeare_char_$dtype
    rm -rf "$dir"
    $RLHF train configs/pretrain/shakespeare_char.yaml --set out_dir="$dir" train.max_steps="$STEPS" \
        optim.lr_decay_steps=2000 train.eval_every=0 checkpoint.every=0 runtime.dtype=$dtype \
        runtime.threads="$THREADS" runtime.log_level=info 2> "$dir.log" || { cat "$dir.log"; exit 1; }
    ms=$(median_ms "$dir/metrics.jsonl")
    rss=$(grep -o 'peak RSS [0-9]* MiB' "$dir.log" | grep -o '[0-9]*')
    rows+=("| rlhf.cpp $dtype | $ms | $($PY -c "print(round(768000/$ms))") | $rss |")
done

if [ -n "${NANOGPT_DIR:-}" ]; then
    if [ ! -f "$NANOGPT_DIR/data/shakespeare_char/train.bin" ]; then
        cp ../shared/data/tinyshakespeare/input.txt "$NANOGPT_DIR/data/shakespeare_char/input.txt"
        (cd "$NANOGPT_DIR/data/shakespeare_char" && $PY prepare.py > /dev/null)
    fi
    log=$PWD/$OUT/nanogpt.log
    nano_out=$PWD/$OUT/nanogpt_out
    # runpy + getrusage reports nanoGPT's peak RSS without needing GNU time.
    (cd "$NANOGPT_DIR" && OMP_NUM_THREADS=$THREADS $PY -c '
import resource, runpy, sys
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("train.py", run_name="__main__")
print("Maximum resident set size (kbytes):", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
' config/train_shakespeare_char.py \
        --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 \
        --n_layer=4 --n_head=4 --n_embd=128 --max_iters="$STEPS" --lr_decay_iters=2000 --dropout=0.0 \
        --eval_interval=100000 --out_dir="$nano_out") > "$log" 2>&1 || { tail "$log"; exit 1; }
    ms=$($PY - "$log" <<'PY'
import re, statistics, sys
ms = [float(m.group(1)) for l in open(sys.argv[1]) for m in [re.search(r"^iter \d+: .*time ([0-9.]+)ms", l)] if m][20:]
print(f"{statistics.median(ms):.2f}")
PY
)
    rss=$(grep "Maximum resident" "$log" | grep -o '[0-9]*$')
    rows+=("| nanoGPT (PyTorch $($PY -c 'import torch; print(torch.__version__)')) | $ms | $($PY -c "print(round(768000/$ms))") | $((rss / 1024)) |")
fi

echo
echo "## Pre-training: shakespeare_char ($STEPS steps, $THREADS threads, $(date -u +%Y-%m-%d))"
echo
echo "| implementation | ms/step (median) | tokens/s | peak RSS (MiB) |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"

[ -n "${SKIP_GENERATION:-}" ] && exit 0
echo
echo "## Generation: 256 new tokens after a 16-token prompt"
echo
echo "| model | batch | no cache tok/s | KV cache tok/s | speed-up |"
echo "|---|---|---|---|---|"
gen() {  # args -> tok/s
    $RLHF bench generate "$@" --threads "$THREADS" | grep -o '| [0-9.]* tok/s' | grep -o '[0-9.]*'
}
for model in "--preset gpt2" "--checkpoint $OUT/shakespeare_char_float32"; do
    name=$([ "$model" = "--preset gpt2" ] && echo "GPT-2 124M (random weights, fp32)" || echo "shakespeare_char (fp32)")
    new=256
    [ "$model" != "--preset gpt2" ] && new=47   # context 64 = 16 prompt + 47 new + 1
    for batch in 1 16; do
        cached=$(gen $model --batch-size $batch --new-tokens $new)
        nocache=$(gen $model --batch-size $batch --new-tokens $new --no-cache)
        echo "| $name, $new new | $batch | $nocache | $cached | $($PY -c "print(f'{$cached/$nocache:.1f}x')") |"
    done
done
