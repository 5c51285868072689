#!/usr/bin/env bash
# The built-in demo, from nothing to samples on one machine:
#   1. install what is missing (Debian packages) and build rlhf (Release)
#   2. generate a small story corpus          -> data/demo/corpus.txt
#   3. train a 512-piece BPE tokenizer         -> data/demo/tokenizer/
#   4. tokenize it into train/val shards       -> data/demo/shards/
#   5. pre-train a 4-layer GPT (~40 s on 2 cores)  -> runs/demo/pretrain/
#   6. print samples
# Running it again reuses what exists (the training run resumes from its last checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --target rlhf
RLHF=build/rlhf

step() { printf '\n== %s\n' "$*"; }

step "2. generating the demo corpus"
[ -f data/demo/corpus.txt ] || $RLHF data demo-corpus --out data/demo/corpus.txt --bytes 1000000

step "3. training a BPE tokenizer"
[ -f data/demo/tokenizer/tokenizer.model ] ||
    $RLHF tokenizer train --input data/demo/corpus.txt --model-type bpe --vocab-size 512 --out data/demo/tokenizer

step "4. tokenizing into shards"
[ -f data/demo/shards/meta.json ] ||
    $RLHF data prepare --tokenizer data/demo/tokenizer --input data/demo/corpus.txt --out data/demo/shards --val-fraction 0.05

step "5. pre-training (configs/demo/pretrain.yaml)"
$RLHF train configs/demo/pretrain.yaml --resume

step "6. samples"
for prompt in "Anna walked" "\"Look at this!\" said" "It was a"; do
    $RLHF generate --checkpoint runs/demo/pretrain --prompt "$prompt" --max-new-tokens 60 --temperature 0.8 --seed 7
    echo
done
echo "Next: build/rlhf chat --checkpoint runs/demo/pretrain   (see README.md for the real-data configs)"
