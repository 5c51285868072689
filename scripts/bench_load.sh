#!/usr/bin/env bash
# Step time alone and beside one other busy process, with runtime.adapt_threads on (the default)
# and off. Prints a markdown table for docs/benchmarks.md.
#
#   scripts/bench_load.sh            # ROUNDS=2, ~12 min on 2 cores
#
# Workloads (all 2 intra-op threads on this 2-core machine):
#   tiny      configs/tiny/pretrain.yaml on a 200 KB demo corpus, 600 steps (~5 ms/step)
#   demo      configs/demo/pretrain.yaml on the demo's shards, 60 steps (~120 ms/step)
#   ppo       configs/demo/ppo.yaml on the demo's SFT and reward runs ($DEMO_RUNS, default
#             runs/demo, made by scripts/demo.sh), 8 iterations; skipped when they are missing
# The busy process is one shell spinning `while :; do :; done` (one core's worth of work, as a
# compile or an evaluation beside training would be). Median ms per step after the first tenth;
# the table shows the fastest round of each cell (all rounds in brackets). Rounds alternate
# alone/busy and on/off, since this VM's speed drifts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
PY=/usr/bin/python3
RLHF=${RLHF:-build/rlhf}
DEMO_RUNS=${DEMO_RUNS:-runs/demo}
OUT=runs/bench_load
[ -x "$RLHF" ] || scripts/build.sh --target rlhf
mkdir -p "$OUT"
[ -f "$OUT/corpus.txt" ] || "$RLHF" data demo-corpus --out "$OUT/corpus.txt" --bytes 200000 > /dev/null
if [ ! -f data/synth/ages/shards/meta.json ]; then
    echo "bench: needs the demo's data (scripts/demo.sh makes data/synth/ages)" >&2
    exit 1
fi

median_ms() {
    $PY - "$1" <<'PY'
import json, statistics, sys
ms = [r["ms_per_step"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"]
print(f"{statistics.median(ms[len(ms) // 10:]):.1f}")
PY
}

# run WORKLOAD ADAPT(true|false) -> prints median ms/step
run() {
    local dir="$OUT/$1-$2"
    rm -rf "$dir"
    local common=(train.eval_every=0 checkpoint.every=0 runtime.threads=2 runtime.adapt_threads="$2" out_dir="$dir")
    case $1 in
        tiny) "$RLHF" train configs/tiny/pretrain.yaml --set "${common[@]}" data.text="$OUT/corpus.txt" train.max_steps=600 ;;
        demo) "$RLHF" train configs/demo/pretrain.yaml --set "${common[@]}" train.max_steps=60 ;;
        ppo) "$RLHF" train configs/demo/ppo.yaml --set "${common[@]}" init_from="$DEMO_RUNS/sft" \
                 ppo.reward_model="$DEMO_RUNS/reward" train.max_steps=8 ;;
    esac > "$dir.log" 2>&1 || { echo "bench: $1 failed, see $dir.log" >&2; exit 1; }
    median_ms "$dir/metrics.jsonl"
}

workloads=(tiny demo)
[ -d "$DEMO_RUNS/sft" ] && [ -d "$DEMO_RUNS/reward" ] && workloads+=(ppo)
declare -A ms
busy_pid=
trap '[ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null || true' EXIT
for round in $(seq "$ROUNDS"); do
    for load in alone busy; do
        if [ "$load" = busy ]; then
            sh -c 'while :; do :; done' &
            busy_pid=$!
            sleep 1
        fi
        for w in "${workloads[@]}"; do
            for adapt in true false; do
                ms[$w,$load,$adapt]="${ms[$w,$load,$adapt]:-} $(run "$w" "$adapt")"
                echo "round $round $load $w adapt_threads=$adapt: ${ms[$w,$load,$adapt]##* } ms/step" >&2
            done
        done
        if [ -n "$busy_pid" ]; then kill "$busy_pid"; wait "$busy_pid" 2>/dev/null || true; busy_pid=; fi
    done
done

# The fastest round of each cell: this VM's drift only ever slows a round down.
med() { $PY -c "import sys; print(f'{min(map(float, sys.argv[1:])):.1f}')" $1; }
echo "| workload | adapt_threads | alone ms/step | beside a busy process | slowdown |"
echo "|---|---|---:|---:|---:|"
for w in "${workloads[@]}"; do
    for adapt in true false; do
        a=$(med "${ms[$w,alone,$adapt]}")
        b=$(med "${ms[$w,busy,$adapt]}")
        echo "| $w | $adapt | $a (${ms[$w,alone,$adapt]# }) | $b (${ms[$w,busy,$adapt]# }) | $($PY -c "print(f'{$b/$a:.1f}x')") |"
    done
done
