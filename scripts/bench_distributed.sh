#!/usr/bin/env bash
# Data-parallel on this machine's CPU: 2 ranks × 1 thread (Gloo over loopback) against 1 process
# × 2 threads, on configs/pretrain/shakespeare_char.yaml with the same global batch of 12 windows.
# Prints a markdown table for docs/benchmarks.md.
#
#   scripts/bench_distributed.sh                 # STEPS=200 ROUNDS=3, ~3 min on 2 cores
#
# Rows (alternating rounds, since this VM's speed drifts):
#   1 process × 2 threads, batch 12 × 1 micro-batch    the config as shipped
#   1 process × 2 threads, batch 6 × 2 micro-batches   the same micro-batches as each rank runs
#   2 ranks × 1 thread,    batch 6 × 2 micro-batches   `rlhf launch --nproc-per-node 2`
# tokens/s = 12 × 64 tokens / median ms per step (steps after the first 20; rank 0's step time,
# which includes waiting for the all-reduce).
#
#   ONLY=ppo scripts/bench_distributed.sh        # PPO instead (ITERS=20 ROUNDS=3, ~4 min)
#
# PPO: configs/demo/ppo.yaml on the demo's SFT and reward runs ($DEMO_RUNS, default runs/demo,
# made by scripts/demo.sh), 1 process × 2 threads against 2 ranks × 1 thread (each rank makes 16
# of the 32 rollouts and runs 8 of every minibatch's 16 rows); median ms per iteration after the
# first 5.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-200}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
RLHF=${RLHF:-build/rlhf}
OUT=runs/bench_distributed
[ -x "$RLHF" ] || scripts/build.sh --target rlhf
[ -f ../shared/data/tinyshakespeare/input.txt ] || { echo "bench: needs ../shared/data/tinyshakespeare/input.txt" >&2; exit 1; }
mkdir -p "$OUT"
ONLY=${ONLY:-pretrain}

median_ms() {
    $PY - "$1" <<'PY'
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][20:]
print(f"{statistics.median(ms):.2f}")
PY
}

run() {  # name launcher threads batch accum -> median ms
    local dir=$OUT/$1
    rm -rf "$dir"
    $2 train configs/pretrain/shakespeare_char.yaml --set out_dir="$dir" train.max_steps="$STEPS" \
        optim.lr_decay_steps=2000 train.eval_every=0 checkpoint.every=0 runtime.threads="$3" \
        train.batch_size="$4" train.grad_accum_steps="$5" 2> "$dir.log" || { cat "$dir.log" >&2; exit 1; }
    median_ms "$dir/metrics.jsonl"
}

if [ "$ONLY" = ppo ]; then
    ITERS=${ITERS:-20}
    DEMO_RUNS=${DEMO_RUNS:-runs/demo}
    [ -d "$DEMO_RUNS/sft/checkpoints" ] && [ -d "$DEMO_RUNS/reward/checkpoints" ] ||
        { echo "bench: needs $DEMO_RUNS/sft and $DEMO_RUNS/reward (scripts/demo.sh)" >&2; exit 1; }
    ppo_run() {  # name launcher threads -> median ms per iteration after the first 5
        local dir=$OUT/$1
        rm -rf "$dir"
        $2 train configs/demo/ppo.yaml --set out_dir="$dir" init_from="$DEMO_RUNS/sft" \
            ppo.reward_model="$DEMO_RUNS/reward" train.max_steps="$ITERS" train.eval_every=0 checkpoint.every=0 \
            runtime.threads="$3" 2> "$dir.log" || { cat "$dir.log" >&2; exit 1; }
        $PY - "$dir/metrics.jsonl" <<'PY'
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][5:]
print(f"{statistics.median(ms):.0f}")
PY
    }
    single="" ranks=""
    for round in $(seq "$ROUNDS"); do
        single+=" $(ppo_run ppo_single "$RLHF" 2)"
        ranks+=" $(ppo_run ppo_ranks2 "$RLHF launch --nproc-per-node 2 --master-port 29518" 1)"
        echo "round $round: single=${single##* } ranks2=${ranks##* } ms/iteration" >&2
    done
    echo "| PPO run (32 rollouts, 2 epochs × 2 minibatches of 16) | ms/iteration (median of rounds) |"
    echo "|---|---:|"
    for row in "1 process × 2 threads:$single" "2 ranks × 1 thread (Gloo):$ranks"; do
        $PY - "${row%%:*}" ${row#*:} <<'PY'
import statistics, sys
values = [float(v) for v in sys.argv[2:]]
print(f"| {sys.argv[1]} | {statistics.median(values):.0f} ({', '.join(f'{v:.0f}' for v in values)}) |")
PY
    done
    exit 0
fi

declare -A ms
names=(single_b12 single_b6x2 ranks2_b6x2)
for round in $(seq "$ROUNDS"); do
    ms[single_b12]+=" $(run single_b12 "$RLHF" 2 12 1)"
    ms[single_b6x2]+=" $(run single_b6x2 "$RLHF" 2 6 2)"
    ms[ranks2_b6x2]+=" $(run ranks2_b6x2 "$RLHF launch --nproc-per-node 2 --master-port 29517" 1 6 2)"
    echo "round $round:$(for n in "${names[@]}"; do echo -n " $n=${ms[$n]##* }"; done) ms/step" >&2
done

echo "| run | ms/step (median of rounds) | tokens/s |"
echo "|---|---:|---:|"
for n in "${names[@]}"; do
    $PY - "$n" ${ms[$n]} <<'PY'
import statistics, sys
name, values = sys.argv[1], [float(v) for v in sys.argv[2:]]
label = {"single_b12": "1 process × 2 threads, batch 12 × 1",
         "single_b6x2": "1 process × 2 threads, batch 6 × 2",
         "ranks2_b6x2": "2 ranks × 1 thread (Gloo), batch 6 × 2"}[name]
m = statistics.median(values)
print(f"| {label} | {m:.1f} ({', '.join(f'{v:.1f}' for v in values)}) | {12 * 64 / m * 1000:,.0f} |")
PY
done
