#!/usr/bin/env bash
# Speed benchmarks; prints a markdown table for docs/benchmarks.md.
#
#   scripts/bench.sh                       # pre-training (fp32, bf16) + generation, ~6 min on 2 cores
#   NANOGPT_DIR=/path/to/nanoGPT scripts/bench.sh   # also run nanoGPT's CPU baby GPT side by side
#   STEPS=300 ROUNDS=3 SKIP_GENERATION=1 GEN_FULL=1 scripts/bench.sh   # knobs (defaults shown / see below)
#
# Pre-training: configs/pretrain/shakespeare_char.yaml for $STEPS steps (default 300) in fp32 and
# bf16, median ms/step over the steps after the first 20, and the peak RSS the run reports.
# nanoGPT (optional) runs the same model, batch and optimizer with its CPU command line and
# OMP_NUM_THREADS = all cores, measured the same way from its log; $ROUNDS interleaved rounds.
# Generation: `rlhf bench generate` with and without the KV cache at batch 1 and 16, on a
# random-weight GPT-2 124M (256 new tokens; see GEN_FULL below) and on the shakespeare_char model
# trained here (47 new tokens, all its 64-token context allows after a 16-token prompt).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
ROUNDS=${ROUNDS:-3}
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

rlhf_run() {  # dtype -> "median_ms peak_rss_mib"
    local dir=$OUT/shakespeare_char_$1
    rm -rf "$dir"
    $RLHF train configs/pretrain/shakespeare_char.yaml --set out_dir="$dir" train.max_steps="$STEPS" \
        optim.lr_decay_steps=2000 train.eval_every=0 checkpoint.every=0 runtime.dtype="$1" \
        runtime.threads="$THREADS" runtime.log_level=info 2> "$dir.log" || { cat "$dir.log" >&2; exit 1; }
    echo "$(median_ms "$dir/metrics.jsonl") $(grep -o 'peak RSS [0-9]* MiB' "$dir.log" | grep -o '[0-9]*')"
}

nanogpt_run() {  # -> "median_ms peak_rss_mib"
    local log=$PWD/$OUT/nanogpt.log nano_out=$PWD/$OUT/nanogpt_out
    # runpy + getrusage reports nanoGPT's peak RSS without needing GNU time.
    (cd "$NANOGPT_DIR" && OMP_NUM_THREADS=$THREADS $PY -c '
import resource, runpy, sys
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("train.py", run_name="__main__")
print("Maximum resident set size (kbytes):", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
' config/train_shakespeare_char.py \
        --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 \
        --n_layer=4 --n_head=4 --n_embd=128 --max_iters="$STEPS" --lr_decay_iters=2000 --dropout=0.0 \
        --eval_interval=100000 --out_dir="$nano_out") > "$log" 2>&1 || { tail "$log" >&2; exit 1; }
    local ms rss
    ms=$($PY - "$log" <<'PY'
import re, statistics, sys
ms = [float(m.group(1)) for l in open(sys.argv[1]) for m in [re.search(r"^iter \d+: .*time ([0-9.]+)ms", l)] if m][20:]
print(f"{statistics.median(ms):.2f}")
PY
)
    rss=$(grep "Maximum resident" "$log" | grep -o '[0-9]*$')
    echo "$ms $((rss / 1024))"
}

if [ -n "${NANOGPT_DIR:-}" ] && [ ! -f "$NANOGPT_DIR/data/shakespeare_char/train.bin" ]; then
    cp ../shared/data/tinyshakespeare/input.txt "$NANOGPT_DIR/data/shakespeare_char/input.txt"
    (cd "$NANOGPT_DIR/data/shakespeare_char" && $PY prepare.py > /dev/null)
fi

# Shared machines drift between fast and slow phases over minutes, so the implementations run
# interleaved, round after round, and each round's speed-up compares runs minutes apart at most.
echo
echo "## Pre-training: shakespeare_char ($STEPS steps per run, $THREADS threads, $ROUNDS rounds, $(date -u +%Y-%m-%d))"
echo
echo "Median ms/step over each run's steps 21..$STEPS; tokens/s = 768 tokens per step / ms."
echo
echo "| round | rlhf fp32 ms | rlhf bf16 ms | nanoGPT ms | fp32 speed-up | bf16 speed-up |"
echo "|---|---|---|---|---|---|"
fp32_ups=() bf16_ups=()
for round in $(seq 1 "$ROUNDS"); do
    out=$(rlhf_run float32) && read -r f32 f32_rss <<< "$out"
    out=$(rlhf_run bfloat16) && read -r b16 b16_rss <<< "$out"
    if [ -n "${NANOGPT_DIR:-}" ]; then
        out=$(nanogpt_run) && read -r nano nano_rss <<< "$out"
        up32=$($PY -c "print(f'{$nano/$f32:.2f}')") up16=$($PY -c "print(f'{$nano/$b16:.2f}')")
        fp32_ups+=("$up32") bf16_ups+=("$up16")
        echo "| $round | $f32 | $b16 | $nano | ${up32}x | ${up16}x |"
    else
        echo "| $round | $f32 | $b16 | - | - | - |"
    fi
done
echo
if [ ${#bf16_ups[@]} -gt 0 ]; then
    med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
    echo "Median speed-up over nanoGPT: fp32 $(med "${fp32_ups[@]}")x, bf16 $(med "${bf16_ups[@]}")x."
fi
echo "Peak RSS (last round): rlhf fp32 ${f32_rss} MiB, bf16 ${b16_rss} MiB${nano_rss:+, nanoGPT ${nano_rss} MiB}."

[ -n "${SKIP_GENERATION:-}" ] && exit 0
# Cache-less decoding recomputes the whole prefix per token, so its cost grows with the square
# of the length: GPT-2 124M at batch 16 takes ~15 min for 256 tokens without the cache. That one
# case runs 64 new tokens unless GEN_FULL=1; its no-cache rate at 64 tokens is higher than at
# 256, so the speed-up printed for it is a lower bound.
echo
echo "## Generation (16-token prompts, fixed length, $THREADS threads)"
echo
echo "| model | batch | new tokens | no cache tok/s | KV cache tok/s | speed-up |"
echo "|---|---|---|---|---|---|"
gen() {  # args -> tok/s
    $RLHF bench generate "$@" --threads "$THREADS" | grep -o '| [0-9.]* tok/s' | grep -o '[0-9.]*'
}
row() {  # name new_tokens batch model-args...
    local name=$1 new=$2 batch=$3
    shift 3
    local cached nocache
    cached=$(gen "$@" --batch-size "$batch" --new-tokens "$new")
    nocache=$(gen "$@" --batch-size "$batch" --new-tokens "$new" --no-cache)
    echo "| $name | $batch | $new | $nocache | $cached | $($PY -c "print(f'{$cached/$nocache:.1f}x')") |"
}
row "GPT-2 124M (random weights)" 256 1 --preset gpt2
row "GPT-2 124M (random weights)" "$([ -n "${GEN_FULL:-}" ] && echo 256 || echo 64)" 16 --preset gpt2
# shakespeare_char's context is 64 tokens: 16 prompt + 47 new is the longest that fits.
row "shakespeare_char (trained above)" 47 1 --checkpoint "$OUT/shakespeare_char_float32"
row "shakespeare_char (trained above)" 47 16 --checkpoint "$OUT/shakespeare_char_float32"
