#!/usr/bin/env bash
# The built-in demo: the whole InstructGPT pipeline on one CPU, from nothing, in minutes.
#
#   scripts/demo.sh            # setup + build, then every stage; reuses stages already finished
#   scripts/demo.sh --fresh    # start over (deletes runs/demo and data/synth/ages first)
#   scripts/demo.sh --small    # a reduced run (runs/demo-small, ~5 min)
#   scripts/demo.sh --tiny     # the plumbing alone (runs/demo-tiny, ~1 min; what the test suite
#                              # runs): each stage a few steps, 150 ranked groups, 24 held-out
#                              # questions, float32; its accuracies say little
#   scripts/demo.sh --only grpo   # retrain and re-evaluate one stage (pretrain, sft, reward, dpo,
#                                 # grpo or ppo) from the stages before it, then the report
#   scripts/demo.sh --no-setup # skip scripts/setup.sh and the build (build/rlhf must exist)
#   scripts/demo.sh --runs DIR --data DIR   # other places for the runs and the generated data
#   scripts/demo.sh --seed N   # every stage with runtime.seed N (default: each config's, 1337), in
#                              # runs/demo-seedN unless --runs says otherwise; the data stay the same
#   scripts/demo.sh --device cuda           # every stage and evaluation on a GPU (builds against
#                                           # the PyPI LibTorch unless --torch or RLHF= says otherwise)
#   scripts/demo.sh --torch pip|DIR         # the LibTorch to set up and build with (scripts/build.sh)
#   scripts/demo.sh --arch llama            # the same pipeline with a Llama-family model of the same
#                                           # size (RMSNorm, rotary positions, SwiGLU; in runs/demo-llama
#                                           # unless --runs says otherwise; docs/demo.md compares them)
#   scripts/demo.sh --lora 16               # every stage after pre-training with LoRA adapters of rank 16
#                                           # (alpha 32) on every projection instead of full fine-tuning,
#                                           # learning rates x3, in runs/demo-lora unless --runs says
#                                           # otherwise; it reuses runs/demo/pretrain when that has a
#                                           # checkpoint (docs/demo.md compares them)
#   scripts/demo.sh --dtype float32         # every stage in fp32 (the configs train in bf16 where it
#                                           # pays: on a CPU without AVX512-BF16 it is ~20x slower)
#
#   1. generate the "ages" task (word problems with a gold checker)  -> data/synth/ages/
#   2. a character tokenizer and token shards                        -> data/synth/ages/{tokenizer,shards}
#   3. pre-train      configs/demo/pretrain.yaml                     -> runs/demo/pretrain
#   4. SFT            configs/demo/sft.yaml                          -> runs/demo/sft
#   5. reward model   configs/demo/reward.yaml                       -> runs/demo/reward
#   6. three ways past SFT, each from the SFT model (docs/demo.md compares them):
#      DPO on the rankings             configs/demo/dpo.yaml         -> runs/demo/dpo
#      GRPO on the gold checker        configs/demo/grpo.yaml        -> runs/demo/grpo
#      PPO against the reward model    configs/demo/ppo.yaml         -> runs/demo/ppo
#   7. gold accuracy of every stage on 200 held-out questions, the KL of each tuned model to SFT,
#      the table, PNG curves, samples                                 -> runs/demo/{eval,plots}/, summary.json
# Every stage runs with --resume: a demo stopped anywhere (Ctrl-C saves a checkpoint) continues
# where it stopped, and a finished stage is reused as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_flavour.sh

fresh=0 size=full setup=1 RUNS= DATA=data/synth/ages DEVICE=cpu torch= SEED= ONLY= ARCH=gpt2 DTYPE= LORA=
STAGES="pretrain sft reward dpo grpo ppo"
while [ $# -gt 0 ]; do
    case "$1" in
        --fresh) fresh=1 ;;
        --small) size=small ;;
        --tiny) size=tiny ;;
        --no-setup) setup=0 ;;
        --runs) RUNS=${2:?--runs needs a directory}; shift ;;
        --data) DATA=${2:?--data needs a directory}; shift ;;
        --device) DEVICE=${2:?--device needs cpu, cuda or cuda:N}; shift ;;
        --seed) SEED=${2:?--seed needs a number}; shift
                [[ "$SEED" =~ ^[0-9]+$ ]] || { echo "demo.sh: --seed needs a whole number, not '$SEED'" >&2; exit 2; } ;;
        --torch) torch=${2:?--torch needs debian, pip or a LibTorch directory}; shift ;;
        --arch) ARCH=${2:?--arch needs gpt2 or llama}; shift
                [[ "$ARCH" =~ ^(gpt2|llama)$ ]] || { echo "demo.sh: --arch is gpt2 or llama, not '$ARCH'" >&2; exit 2; } ;;
        --lora) LORA=${2:?--lora needs a rank}; shift
                [[ "$LORA" =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: --lora needs a rank (a whole number >= 1), not '$LORA'" >&2; exit 2; } ;;
        --dtype) DTYPE=${2:?--dtype needs float32 or bfloat16}; shift
                 [[ "$DTYPE" =~ ^(float32|bfloat16)$ ]] || { echo "demo.sh: --dtype is float32 or bfloat16, not '$DTYPE'" >&2; exit 2; } ;;
        --only) ONLY=${2:?--only needs a stage: $STAGES}; shift
                [[ " $STAGES " == *" $ONLY "* ]] || { echo "demo.sh: --only '$ONLY' is not a stage ($STAGES)" >&2; exit 2; } ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option '$1' (see scripts/demo.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

# Debian's LibTorch has no CUDA: a GPU demo builds against the PyPI one unless told otherwise.
case "$DEVICE" in cuda*) torch=${torch:-pip} ;; esac
torch=${torch:-debian}
if [ "$setup" = 1 ]; then
    case "$torch" in debian|pip) scripts/setup.sh --torch "$torch" ;; *) scripts/setup.sh ;; esac
    scripts/build.sh --torch "$torch" --target rlhf
fi
RLHF=${RLHF:-$(torch_build_dir "$torch")/rlhf}
[ -x "$RLHF" ] || { echo "demo.sh: $RLHF is missing; run scripts/build.sh (or drop --no-setup)" >&2; exit 1; }

# --small and --tiny: the same pipeline with fewer steps, each in its own directory. --tiny runs
# in float32: on a CPU without bf16 instructions a bf16 step takes 20x an fp32 one, and the test
# suite runs it on any CPU.
declare -A SMALL=(
    [pretrain]="train.max_steps=600 train.eval_every=300 checkpoint.every=300"
    [sft]="train.max_steps=200 train.eval_every=200 checkpoint.every=200"
    [reward]="train.max_steps=100 train.eval_every=50 checkpoint.every=50"
    [ppo]="train.max_steps=40 train.eval_every=20 checkpoint.every=20"
    [dpo]="train.max_steps=40 train.eval_every=20 checkpoint.every=20"
    [grpo]="train.max_steps=20 train.eval_every=10 checkpoint.every=10 ppo.rollout_batch=16 ppo.minibatch=64"
)
declare -A TINY=(
    [pretrain]="runtime.dtype=float32 train.max_steps=30 optim.lr_warmup_steps=10 train.batch_size=8 train.eval_every=30 checkpoint.every=30 train.eval_batches=2"
    [sft]="runtime.dtype=float32 train.max_steps=20 optim.lr_warmup_steps=5 train.batch_size=8 train.eval_every=20 checkpoint.every=20 train.eval_prompts=8"
    [reward]="runtime.dtype=float32 train.max_steps=10 optim.lr_warmup_steps=3 train.batch_size=8 train.eval_every=10 checkpoint.every=10 train.eval_batches=2"
    [ppo]="runtime.dtype=float32 train.max_steps=4 train.eval_every=4 checkpoint.every=4 train.eval_prompts=8 ppo.rollout_batch=8 ppo.minibatch=8"
    [dpo]="runtime.dtype=float32 train.max_steps=4 optim.lr_warmup_steps=2 train.batch_size=8 train.eval_every=4 checkpoint.every=4 train.eval_batches=2"
    [grpo]="runtime.dtype=float32 train.max_steps=3 train.eval_every=3 checkpoint.every=3 train.eval_prompts=8 ppo.rollout_batch=8 ppo.minibatch=32"
)
EVAL_SAMPLES=4 EVAL_QUESTIONS=all RANKED_GROUPS=all
case "$size" in
    small) RUNS=${RUNS:-runs/demo-small} EVAL_SAMPLES=2 ;;
    tiny) RUNS=${RUNS:-runs/demo-tiny} EVAL_SAMPLES=1 EVAL_QUESTIONS=24 RANKED_GROUPS=150 ;;
esac
[ "$ARCH" = llama ] && RUNS=${RUNS:-runs/demo-llama${SEED:+-seed$SEED}}
[ -n "$LORA" ] && RUNS=${RUNS:-runs/demo-lora${SEED:+-seed$SEED}}
[ -n "$SEED" ] && RUNS=${RUNS:-runs/demo-seed$SEED}
RUNS=${RUNS:-runs/demo}
if [ "$fresh" = 1 ]; then
    echo "demo: --fresh, removing $RUNS and $DATA"
    rm -rf "$RUNS" "$DATA"
fi
if [ -n "$ONLY" ]; then  # the stages it starts from must be there; its own run starts over
    case "$ONLY" in pretrain) needs= ;; sft) needs=pretrain ;; *) needs=sft ;; esac
    [ "$ONLY" = ppo ] && needs="sft reward"
    for n in $needs; do
        [ -f "$RUNS/$n/checkpoints/latest/state.json" ] || { echo "demo.sh: --only $ONLY starts from $RUNS/$n, which has no checkpoint; run the whole demo first" >&2; exit 1; }
    done
    echo "demo: --only $ONLY, removing $RUNS/$ONLY"
    rm -rf "${RUNS:?}/$ONLY"
fi
mkdir -p "$RUNS"
# --lora: the adapters go over the same pre-trained model; reuse the full demo's when it is there.
BASE_RUNS=$(dirname "$RUNS")/demo${SEED:+-seed$SEED}
if [ -n "$LORA" ] && [ ! -e "$RUNS/pretrain" ] && [ "$size" = full ] && [ "$ARCH" = gpt2 ] &&
   [ -f "$BASE_RUNS/pretrain/checkpoints/latest/state.json" ]; then
    echo "demo: --lora, reusing $BASE_RUNS/pretrain as the base"
    ln -s "$(cd "$BASE_RUNS/pretrain" && pwd)" "$RUNS/pretrain"
fi
start=$(date +%s)
step() { printf '\n== %s  [%s elapsed]\n' "$*" "$(date -u -d @$(( $(date +%s) - start )) +%M:%S)"; }

step "1. generating the ages task"
if [ -f "$DATA/prompts.jsonl" ] && [ -f "$DATA/train_prompts.jsonl" ]; then  # prompts.jsonl is written last
    echo "reusing $DATA"
else
    $RLHF data synth --task ages --out "$DATA"
fi

step "2. character tokenizer and token shards"
if [ -f "$DATA/tokenizer/tokenizer.model" ]; then
    echo "reusing $DATA/tokenizer"
else
    # Trained on every file a model will read, so each character a labeler typed has a token.
    # Every number 0..99 is one token (--user-symbols): the arithmetic becomes a lookup a small model
    # learns in minutes, where digit by digit it would have to learn carrying first.
    $RLHF tokenizer train --model-type char --out "$DATA/tokenizer" --user-symbols $(seq 0 99) \
        --input "$DATA/corpus.txt" "$DATA/sft.jsonl" "$DATA/ranked.jsonl"
fi
if [ -f "$DATA/shards/meta.json" ]; then
    echo "reusing $DATA/shards"
else
    $RLHF data prepare --tokenizer "$DATA/tokenizer" --input "$DATA/corpus.txt" --out "$DATA/shards" --val-fraction 0.02
fi

# --tiny: the reward model and DPO read the first ranked groups only (DPO's reference pass over
# all 2,000 groups' 12,880 answers alone took 50 s).
RANKED=$DATA/ranked.jsonl
if [ "$RANKED_GROUPS" != all ]; then
    head -n "$RANKED_GROUPS" "$DATA/ranked.jsonl" > "$RUNS/ranked.jsonl"
    RANKED=$RUNS/ranked.jsonl
fi

# train STAGE PREVIOUS: runs configs/demo/STAGE.yaml into $RUNS/STAGE, starting from $RUNS/PREVIOUS.
train() {
    local stage=$1 previous=${2:-} sets=()
    sets+=("out_dir=$RUNS/$stage" "runtime.device=$DEVICE")
    [ -n "$SEED" ] && sets+=("runtime.seed=$SEED")
    [ -n "$DTYPE" ] && sets+=("runtime.dtype=$DTYPE")
    [ -n "$previous" ] && sets+=("init_from=$RUNS/$previous")
    case "$stage" in  # the configs name data/synth/ages and runs/demo; --data and --runs move them
        pretrain) sets+=("data.shards=$DATA/shards")
                  # --arch llama: the GPT's 4 layers, 4 heads and width 128 with Llama's blocks. The
                  # SwiGLU width 352 (3 matrices) stands for the GPT's 4 x 128 (2 matrices) and its
                  # position table: 0.83M parameters either way. Later stages take it from here.
                  [ "$ARCH" = llama ] && sets+=("model.arch=llama" "model.intermediate_size=352") ;;
        sft) sets+=("data.files=[$DATA/sft.jsonl]") ;;
        reward) sets+=("data.files=[$RANKED]" "reward.reference_files=[$DATA/sft.jsonl]") ;;
        ppo) sets+=("data.files=[$DATA/sft.jsonl]" "ppo.reward_model=$RUNS/reward" "ppo.ptx_shards=$DATA/shards") ;;
        dpo) sets+=("data.files=[$RANKED]") ;;
        grpo) sets+=("data.files=[$DATA/train_prompts.jsonl]") ;;
    esac
    if [ -n "$ONLY" ] && [ "$ONLY" != "$stage" ]; then
        echo "(--only $ONLY: reusing $RUNS/$stage)"
        return
    fi
    if [ -n "$LORA" ] && [ "$stage" != pretrain ]; then
        # Adapters move less per step than full weights: three times each config's learning rates.
        local lr min_lr
        lr=$(awk '$1 == "lr:" { print $2 * 3 }' "configs/demo/$stage.yaml")
        min_lr=$(awk '$1 == "min_lr:" { print $2 * 3 }' "configs/demo/$stage.yaml")
        sets+=("model.lora.rank=$LORA" "model.lora.alpha=$((2 * LORA))" "model.lora.targets=[q,k,v,o,fc,proj]"
               "optim.lr=$lr" "optim.min_lr=$min_lr")
    fi
    case "$size" in
        small) for s in ${SMALL[$stage]}; do sets+=("$s"); done ;;
        tiny) for s in ${TINY[$stage]}; do sets+=("$s"); done ;;
    esac
    $RLHF train "configs/demo/$stage.yaml" --resume --set "${sets[@]}"
}

step "3. pre-training (configs/demo/pretrain.yaml)"
train pretrain
step "4. supervised fine-tuning on the labelers' demonstrations (configs/demo/sft.yaml)"
train sft pretrain
step "5. reward model on the ranked answers (configs/demo/reward.yaml)"
train reward sft
step "6a. DPO on the ranked answers (configs/demo/dpo.yaml)"
train dpo sft
step "6b. GRPO on the gold checker (configs/demo/grpo.yaml)"
train grpo sft
step "6c. PPO against the reward model (configs/demo/ppo.yaml)"
train ppo sft

step "7. gold accuracy on the held-out questions"
mkdir -p "$RUNS/eval"
PROMPTS=$DATA/prompts.jsonl
if [ "$EVAL_QUESTIONS" != all ]; then  # --tiny: the first questions only
    head -n "$EVAL_QUESTIONS" "$DATA/prompts.jsonl" > "$RUNS/eval/prompts.jsonl"
    PROMPTS=$RUNS/eval/prompts.jsonl
fi
# 48 tokens: the longest demonstration (a padded answer) is 42 tokens and its EOS, so the EOS rate
# counts answers that do not stop, not padded ones cut at eval's default 32 (9% of the labelers').
# The tuned models' sampled answers also give their KL to the SFT model (--reference), at T = 1.
# A stage's scores newer than its latest checkpoint are reused, as finished runs are.
for stage in pretrain sft dpo grpo ppo; do
    greedy=$RUNS/eval/$stage.greedy.json sampled=$RUNS/eval/$stage.sampled.json
    checkpoint=$RUNS/$stage/checkpoints/latest/state.json
    if [ -s "$greedy" ] && [ -s "$sampled" ] && [ "$greedy" -nt "$checkpoint" ] && [ "$sampled" -nt "$checkpoint" ]; then
        echo "$stage: reusing $RUNS/eval/$stage.*.json"
        continue
    fi
    reference=()
    case "$stage" in dpo|grpo|ppo) reference=(--reference "$RUNS/sft") ;; esac
    $RLHF eval --checkpoint "$RUNS/$stage" --task ages --prompts "$PROMPTS" --device "$DEVICE" --max-new-tokens 48 \
        --out "$RUNS/eval/$stage.greedy.jsonl" | tail -n 1 > "$greedy.tmp"
    $RLHF eval --checkpoint "$RUNS/$stage" --task ages --prompts "$PROMPTS" --device "$DEVICE" --max-new-tokens 48 \
        --temperature 1 --samples "$EVAL_SAMPLES" "${reference[@]}" --out "$RUNS/eval/$stage.sampled.jsonl" \
        | tail -n 1 > "$sampled.tmp"
    mv "$greedy.tmp" "$greedy" && mv "$sampled.tmp" "$sampled"
    echo "$stage: greedy $(cat "$greedy")"
done
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
    scripts/plot_metrics.py "$RUNS/pretrain" "$RUNS/sft" "$RUNS/reward" "$RUNS/dpo" "$RUNS/grpo" "$RUNS/ppo" --out "$RUNS/plots"
else
    echo "(no PNG curves: python3-matplotlib is missing; scripts/setup.sh installs it)"
fi
step "done"
scripts/demo_report.py "$RUNS"
