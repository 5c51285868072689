#!/usr/bin/env bash
# GPT-1's claim at toy scale: does generative pre-training help a model fine-tuned on a task?
# (Radford et al. 2018; docs/gpt1-tasks.md.) On 2 CPU cores, ~40 minutes; --small about 30 s.
#
#   scripts/gpt1_tasks.sh               # setup + build, then every step; reuses finished runs
#   scripts/gpt1_tasks.sh --small       # a few steps, 400 training and 48 held-out rows per task (runs/gpt1-tasks-small; CI)
#   scripts/gpt1_tasks.sh --fresh       # delete the runs first
#   scripts/gpt1_tasks.sh --no-setup    # skip scripts/setup.sh and the build (build/rlhf must exist)
#   scripts/gpt1_tasks.sh --runs DIR --data DIR --shared DIR   # other places (--shared: the four task
#                                       # folders, default ../shared/data/gpt1-tasks; the books are read
#                                       # from its parent: tinyshakespeare/, gutenberg/)
#   scripts/gpt1_tasks.sh --seed N      # every run with runtime.seed N, in runs/gpt1-tasks-seedN unless
#                                       # --runs says otherwise (the data split stays the same)
#   scripts/gpt1_tasks.sh --torch pip|DIR   # the LibTorch to set up and build with
#
#   1. hold out every 10th row (Story Cloze: 5th) of each task file; the training rows' texts
#      (no labels) become a corpus file                        -> DATA/{sst2,rte,stsb,story-cloze}/, task_text.txt
#   2. pre-train a small post-LN GPT with a BPE tokenizer on the shared books and that text
#                                       configs/gpt1/pretrain.yaml -> RUNS/pretrain
#   3. fine-tune each task twice, the same steps: from the pre-trained model and from scratch
#                                       configs/gpt1/TASK.yaml     -> RUNS/{pretrained,scratch}/TASK
#   4. score both on the held-out rows (rlhf eval --task), print the table
#                                                                  -> RUNS/eval/*.json, RUNS/summary.json
# Every run goes with --resume, and a score newer than its run is kept: a stopped script
# continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_flavour.sh

fresh=0 small=0 setup=1 RUNS= DATA= SHARED=../shared/data/gpt1-tasks torch=debian SEED=
while [ $# -gt 0 ]; do
    case "$1" in
        --fresh) fresh=1 ;;
        --small) small=1 ;;
        --no-setup) setup=0 ;;
        --runs) RUNS=${2:?--runs needs a directory}; shift ;;
        --data) DATA=${2:?--data needs a directory}; shift ;;
        --shared) SHARED=${2:?--shared needs a directory}; shift ;;
        --seed) SEED=${2:?--seed needs a number}; shift
                [[ "$SEED" =~ ^[0-9]+$ ]] || { echo "gpt1_tasks.sh: --seed needs a whole number, not '$SEED'" >&2; exit 2; } ;;
        --torch) torch=${2:?--torch needs debian, pip or a LibTorch directory}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "gpt1_tasks.sh: unknown option '$1' (see scripts/gpt1_tasks.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -d "$SHARED" ] || { echo "gpt1_tasks.sh: $SHARED is missing: the four task files (see --shared)" >&2; exit 1; }
if [ "$setup" = 1 ]; then
    case "$torch" in debian|pip) scripts/setup.sh --torch "$torch" ;; *) scripts/setup.sh ;; esac
    scripts/build.sh --torch "$torch" --target rlhf
fi
RLHF=${RLHF:-$(torch_build_dir "$torch")/rlhf}
[ -x "$RLHF" ] || { echo "gpt1_tasks.sh: $RLHF is missing; run scripts/build.sh (or drop --no-setup)" >&2; exit 1; }

TASKS="sst2 rte stsb story-cloze"
declare -A CONFIG=([sst2]=sst2 [rte]=rte [stsb]=stsb [story-cloze]=story_cloze)
declare -A EXT=([sst2]=tsv [rte]=tsv [stsb]=tsv [story-cloze]=csv)
# --small: the same pipeline, a few steps each, in its own directories (what tests/demo/test_gpt1_tasks.cpp runs),
# in float32 (a CPU without bf16 instructions takes 20x longer for a bf16 step).
# Batches of 8 and 400 training rows a task: the plumbing, not the learning, is what --small checks
# (all the training rows' text made the tokenizer's training and the shards 10 of its 30 s).
PRETRAIN_SMALL="runtime.dtype=float32 train.max_steps=20 train.eval_every=20 checkpoint.every=20 train.eval_batches=1 train.batch_size=8 tokenizer.vocab_size=1024"
TASK_SMALL="runtime.dtype=float32 train.max_steps=6 train.eval_every=6 checkpoint.every=6 train.eval_batches=1 train.batch_size=8"
HELDOUT_CAP=0 TRAIN_CAP=0
if [ "$small" = 1 ]; then
    RUNS=${RUNS:-runs/gpt1-tasks-small} DATA=${DATA:-data/gpt1-tasks-small} HELDOUT_CAP=48 TRAIN_CAP=400
fi
[ -n "$SEED" ] && RUNS=${RUNS:-runs/gpt1-tasks-seed$SEED}  # --resume must not pick up another seed's runs
RUNS=${RUNS:-runs/gpt1-tasks} DATA=${DATA:-data/gpt1-tasks}
[ "$fresh" = 1 ] && rm -rf "$RUNS"
mkdir -p "$RUNS/eval"
SEED_SET=${SEED:+runtime.seed=$SEED}

step() { printf '\n== %s\n' "$*"; }

step "1. held-out splits and the training rows' text -> $DATA"
/usr/bin/env python3 scripts/gpt1_task_data.py --shared "$SHARED" --out "$DATA" --heldout-cap "$HELDOUT_CAP" --train-cap "$TRAIN_CAP"

step "2. pre-training -> $RUNS/pretrain"
SHAKESPEARE=$(dirname "$SHARED")/tinyshakespeare/input.txt FRANKENSTEIN=$(dirname "$SHARED")/gutenberg/frankenstein_84-0.txt
"$RLHF" train configs/gpt1/pretrain.yaml --resume --set out_dir="$RUNS/pretrain" \
    "data.text=[\"$SHAKESPEARE\", \"$FRANKENSTEIN\", \"$DATA/task_text.txt\"]" $SEED_SET \
    $([ "$small" = 1 ] && echo "$PRETRAIN_SMALL")

for task in $TASKS; do
    files=("data.files=[\"$DATA/$task/train.${EXT[$task]}\"]" "data.val_files=[\"$DATA/$task/heldout.${EXT[$task]}\"]")
    step "3. $task from the pre-trained model -> $RUNS/pretrained/$task"
    "$RLHF" train "configs/gpt1/${CONFIG[$task]}.yaml" --resume --set out_dir="$RUNS/pretrained/$task" \
        init_from="$RUNS/pretrain" "${files[@]}" $SEED_SET $([ "$small" = 1 ] && echo "$TASK_SMALL")
    step "3. $task from scratch (the same steps) -> $RUNS/scratch/$task"
    "$RLHF" train "configs/gpt1/${CONFIG[$task]}.yaml" --resume --set out_dir="$RUNS/scratch/$task" \
        init_from= tokenizer.path="$RUNS/pretrain/tokenizer" "${files[@]}" $SEED_SET $([ "$small" = 1 ] && echo "$TASK_SMALL")
    for start in pretrained scratch; do
        scores=$RUNS/eval/$start-$task.json
        # A finished evaluation of the run's latest checkpoint is reused, as finished runs are.
        if [ -s "$scores" ] && [ "$scores" -nt "$RUNS/$start/$task/checkpoints/latest/state.json" ]; then
            echo "reusing $scores"
            continue
        fi
        "$RLHF" eval --task "$task" --data "$DATA/$task/heldout.${EXT[$task]}" --checkpoint "$RUNS/$start/$task" \
            > "$scores.tmp" && mv "$scores.tmp" "$scores"
    done
done

step "4. held-out scores ($RUNS/summary.json)"
/usr/bin/env python3 scripts/gpt1_report.py "$RUNS"
