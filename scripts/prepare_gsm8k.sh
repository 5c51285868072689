#!/usr/bin/env bash
# Plain-text GSM8K questions for pre-training the base model of configs/sft/gsm8k.yaml (the
# answers are left to SFT, so its validation answers were never seen in pre-training).
#   scripts/prepare_gsm8k.sh [path/to/gsm8k/train.jsonl]   -> data/gsm8k/questions.txt
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/data/gsm8k/train.jsonl}
[ -f "$src" ] || { echo "prepare_gsm8k: $src not found (pass the path to GSM8K's train.jsonl)" >&2; exit 1; }
mkdir -p data/gsm8k
python3 - "$src" data/gsm8k/questions.txt <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2] + ".tmp", "w") as out:
    for line in f:
        if line.strip():
            out.write(json.loads(line)["question"].strip() + "\n\n")
PY
mv data/gsm8k/questions.txt.tmp data/gsm8k/questions.txt
echo "wrote data/gsm8k/questions.txt"
