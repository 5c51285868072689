#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md in one go, for ONE call on a machine with a CUDA GPU and
# its own PyTorch (../shared/gpu/README.md): build against that PyTorch's LibTorch, then
#   1. GPT-2 124M shape, bf16, batch 16 x 1024: rlhf (configs/pretrain/gpt2_124m_gpu_bench.yaml)
#      and, with nanoGPT staged, nanoGPT eager and torch.compile, side by side
#   1b. the same under `rlhf launch --nproc-per-node 1`: NCCL with world size 1 vs no process group
#   2. generation tokens/s: GPT-2 124M (random weights), batch 64, 256 new tokens, bf16
#   3. the whole demo on the GPU (scripts/demo.sh --small --device cuda, or the full one with FULL=1)
# Everything it prints and every run directory goes under $OUT (default /tmp/gpu_check).
#
#   here:  ../shared/gpu/stage.sh <nanoGPT git dir>       (fills .gpu/: Debian .debs, kit, nanoGPT)
#   there: bash scripts/gpu_check.sh                     (device run, carrying .gpu)
#   SKIP_BUILD=1 RLHF=build-cuda/rlhf SKIP_NANOGPT=1 FULL=1 STEPS=60 are the knobs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
STEPS=${STEPS:-60}
mkdir -p "$OUT"
log() { printf '\n== %s\n' "$*" | tee -a "$OUT/summary.txt"; }

if [ -z "${SKIP_BUILD:-}" ]; then
    log "build (.gpu/build.sh)"
    bash .gpu/build.sh --target rlhf > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
RLHF=${RLHF:-build-cuda/rlhf}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/summary.txt"

log "1. GPT-2 124M shape, bf16, batch 16 x 1024, $STEPS steps"
text=.gpu/tinyshakespeare.txt
[ -f "$text" ] || text=../shared/data/tinyshakespeare/input.txt
$RLHF train configs/pretrain/gpt2_124m_gpu_bench.yaml --set out_dir="$OUT/gpt2_124m" "data.text=[$text]" \
    train.max_steps="$STEPS" > "$OUT/gpt2_124m.log" 2>&1 || tail -20 "$OUT/gpt2_124m.log"
python3 - "$OUT/gpt2_124m/metrics.jsonl" <<'PY' | tee -a "$OUT/summary.txt"
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][10:]
m = statistics.median(ms)
print(f"rlhf: median {m:.2f} ms/step over {len(ms)} steps (after 10 warm-up), {16384 / m * 1000:.0f} tokens/s")
PY
if [ -z "${SKIP_NANOGPT:-}" ] && [ -d .gpu/nanogpt ]; then
    bash .gpu/nanogpt_bench.sh 2>&1 | tee -a "$OUT/summary.txt"
fi

log "1b. the same with NCCL, world size 1 (rlhf launch --nproc-per-node 1)"
$RLHF launch --nproc-per-node 1 train configs/pretrain/gpt2_124m_gpu_bench.yaml --set out_dir="$OUT/gpt2_124m_nccl" \
    "data.text=[$text]" train.max_steps="$STEPS" > "$OUT/gpt2_124m_nccl.log" 2>&1 || tail -20 "$OUT/gpt2_124m_nccl.log"
python3 - "$OUT/gpt2_124m_nccl/metrics.jsonl" <<'PY' | tee -a "$OUT/summary.txt"
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][10:]
m = statistics.median(ms)
print(f"rlhf + NCCL (world 1): median {m:.2f} ms/step over {len(ms)} steps (after 10 warm-up), {16384 / m * 1000:.0f} tokens/s")
PY

log "2. generation: GPT-2 124M (random weights), batch 64, 16 + 256 tokens, bf16"
$RLHF bench generate --device cuda --preset gpt2 --batch-size 64 --new-tokens 256 --dtype bfloat16 2>&1 |
    tee -a "$OUT/summary.txt"
$RLHF bench generate --device cuda --preset gpt2 --batch-size 64 --new-tokens 256 --dtype float32 2>&1 |
    tee -a "$OUT/summary.txt"

log "3. the demo on the GPU"
size=(--small)
[ -n "${FULL:-}" ] && size=()
start=$(date +%s)
RLHF=$RLHF scripts/demo.sh --no-setup --device cuda "${size[@]}" --runs "$OUT/demo" --data "$OUT/demo-data" \
    > "$OUT/demo.log" 2>&1
echo "demo exit $?, $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
tail -15 "$OUT/demo.log" | tee -a "$OUT/summary.txt"
