#!/usr/bin/env bash
# GPT-2 byte-level BPE encoding speed on real text, one thread: rlhf vs tiktoken (optional).
#
#   scripts/bench_tokenizer.sh                                        # rlhf only
#   TIKTOKEN_PY=/path/to/venv/bin/python scripts/bench_tokenizer.sh   # + tiktoken, ids compared
#   HF_PY=/path/to/venv/bin/python scripts/bench_tokenizer.sh         # + tokenizer.json files (Qwen2's
#       and Llama-3's split patterns, NFC for Qwen2) trained by Hugging Face `tokenizers` on the two
#       texts (32,000 ids), imported by `rlhf tokenizer import-hf`, timed beside `tokenizers`' encode
#       in one thread (RAYON_NUM_THREADS=1), ids compared
#
# Texts: ../shared/data/gutenberg/frankenstein_84-0.txt and tinyshakespeare/input.txt, each
# encoded whole, best of $ROUNDS (default 3), encoding only (not loading). rlhf: `rlhf bench
# tokenize`. tiktoken builds GPT-2's encoding from the same local files (encoder.json, vocab.bpe)
# and runs encode_ordinary in one thread. Prints a markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
RLHF=build/rlhf
DATA=../shared/data
OUT=runs/bench_tokenizer
[ -x "$RLHF" ] || scripts/build.sh --target rlhf
[ -f $DATA/gpt2-bpe/encoder.json ] || { echo "bench_tokenizer: needs $DATA/gpt2-bpe" >&2; exit 1; }
mkdir -p "$OUT"
$RLHF tokenizer import-gpt2 --encoder $DATA/gpt2-bpe/encoder.json --vocab $DATA/gpt2-bpe/vocab.bpe --out "$OUT/gpt2" 2>/dev/null

# rlhf_rate TOKENIZER TEXT: sets mb (the text's size) and rate (rlhf's best MB/s) from `rlhf bench tokenize`.
rlhf_rate() {
    local line
    line=$($RLHF bench tokenize --tokenizer "$1" --input "$2" --rounds "$ROUNDS")
    mb=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) MB \|.*/\1/')
    rate=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) MB\/s \|.*/\1/')
}

echo "| text | MB | rlhf MB/s | tiktoken MB/s | ids identical |"
echo "|---|---:|---:|---:|---|"
for text in $DATA/gutenberg/frankenstein_84-0.txt $DATA/tinyshakespeare/input.txt; do
    rlhf_rate "$OUT/gpt2" "$text"
    tk=n/a same=n/a
    if [ -n "${TIKTOKEN_PY:-}" ]; then
        $RLHF tokenizer encode --tokenizer "$OUT/gpt2" < "$text" > "$OUT/rlhf_ids.json"
        tk=$(RAYON_NUM_THREADS=1 "$TIKTOKEN_PY" - "$DATA/gpt2-bpe" "$text" "$OUT/tiktoken_ids.json" "$ROUNDS" <<'PY'
import json, sys, time
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
bpe_dir, text_path, out, rounds = sys.argv[1:]
ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=f"{bpe_dir}/vocab.bpe", encoder_json_file=f"{bpe_dir}/encoder.json")
enc = tiktoken.Encoding("gpt2-local", pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
                        mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
data = open(text_path, "rb").read()
text = data.decode("utf-8")
best = 1e30
for _ in range(int(rounds)):
    t0 = time.perf_counter()
    ids = enc.encode_ordinary(text)
    best = min(best, time.perf_counter() - t0)
json.dump(ids, open(out, "w"), separators=(",", ":"))
print(f"{len(data) / 1e6 / best:.2f}")
PY
)
        same=$(/usr/bin/python3 -c "import json,sys; print('yes' if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 'NO')" \
               "$OUT/rlhf_ids.json" "$OUT/tiktoken_ids.json")
    fi
    echo "| $(basename "$text") | $mb | $rate | $tk | $same |"
done

[ -n "${HF_PY:-}" ] || exit 0
# tokenizer.json: a Qwen2-pattern and a Llama-3-pattern BPE trained here, as each family configures it.
"$HF_PY" - "$OUT" $DATA/gutenberg/frankenstein_84-0.txt $DATA/tinyshakespeare/input.txt <<'PY'
import json, os, sys
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
out, texts = sys.argv[1], sys.argv[2:]
patterns = {  # the split regexes of Qwen2's and Llama-3's tokenizer.json
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
for kind, pattern in patterns.items():
    tok = Tokenizer(models.BPE())
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train(texts, trainers.BpeTrainer(vocab_size=32000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                         show_progress=False))
    tok.add_special_tokens(["<|endoftext|>"])
    os.makedirs(f"{out}/hf-{kind}", exist_ok=True)
    tok.save(f"{out}/hf-{kind}/tokenizer.json")
    json.dump({"eos_token": "<|endoftext|>"}, open(f"{out}/hf-{kind}/tokenizer_config.json", "w"))
PY
echo
echo "| tokenizer.json | text | MB | rlhf MB/s | tokenizers MB/s | ids identical |"
echo "|---|---|---:|---:|---:|---|"
for kind in qwen2 llama3; do
    $RLHF tokenizer import-hf --from "$OUT/hf-$kind" --out "$OUT/rlhf-$kind" 2>/dev/null
    for text in $DATA/gutenberg/frankenstein_84-0.txt $DATA/tinyshakespeare/input.txt; do
        rlhf_rate "$OUT/rlhf-$kind" "$text"
        $RLHF tokenizer encode --tokenizer "$OUT/rlhf-$kind" < "$text" > "$OUT/rlhf_ids.json"
        hf=$(RAYON_NUM_THREADS=1 "$HF_PY" - "$OUT/hf-$kind" "$text" "$OUT/hf_ids.json" "$ROUNDS" <<'PY'
import json, sys, time
from tokenizers import Tokenizer
d, text_path, out, rounds = sys.argv[1:]
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
tok.encode_special_tokens = True  # special tokens in the text are plain text, as rlhf encodes them
data = open(text_path, "rb").read()
text = data.decode("utf-8")
best = 1e30
for _ in range(int(rounds)):
    t0 = time.perf_counter()
    ids = tok.encode(text, add_special_tokens=False).ids
    best = min(best, time.perf_counter() - t0)
json.dump(ids, open(out, "w"), separators=(",", ":"))
print(f"{len(data) / 1e6 / best:.2f}")
PY
)
        same=$(/usr/bin/python3 -c "import json,sys; print('yes' if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 'NO')" \
               "$OUT/rlhf_ids.json" "$OUT/hf_ids.json")
        echo "| $kind | $(basename "$text") | $mb | $rate | $hf | $same |"
    done
done
