#!/usr/bin/env bash
# libFuzzer over the parsers of untrusted input (tests/fuzz/targets.h): the config loader (YAML and
# --set), the example readers (JSONL, JSON, gzip; SFT and comparison formats), the safetensors
# header, the token-shard header and the GPT-2 BPE tokenizer files.
#
#   scripts/fuzz.sh                      # every target, FUZZ_SECONDS=600 each, JOBS=2 at a time
#   FUZZ_SECONDS=60 scripts/fuzz.sh config records
#
# Builds build-fuzz/ with clang: our code instrumented for libFuzzer, AddressSanitizer and UBSan
# (LibTorch and the other libraries are not). Each target starts from tests/fuzz/corpus/<target>/
# and keeps what it finds in runs/fuzz/<target>/corpus. A finding (a crash, a sanitizer report, an
# exception other than rlhf::Error) stops that target and leaves runs/fuzz/<target>/crash-*; once
# fixed, copy the input into tests/fuzz/corpus/<target>/ so the normal test suite replays it.
# Prints one line per target: executions, coverage, findings.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
JOBS=${JOBS:-2}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
OUT=runs/fuzz
all=(config records safetensors token_shard gpt2_tokenizer)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
command -v clang++ > /dev/null || { echo "fuzz: needs clang++ (apt install clang)" >&2; exit 1; }

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DRLHF_FUZZ=ON -DRLHF_BUILD_TESTS=OFF > /dev/null
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"

run_one() {
    local t=$1 dir="$OUT/$1"
    mkdir -p "$dir/corpus"
    # ASan's leak check is off: LibTorch keeps allocations for the life of the process.
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$BUILD_DIR/fuzz_$t" "$dir/corpus" "tests/fuzz/corpus/$t" -max_total_time="$FUZZ_SECONDS" \
        -max_len=65536 -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$dir/" -print_final_stats=1 \
        > "$dir/log.txt" 2>&1 || true
    local execs cov crashes
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log.txt" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$dir/log.txt" | tail -1 | grep -o '[0-9]*' || echo "?")
    crashes=$(find "$dir" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    echo "$t: ${FUZZ_SECONDS}s, ${execs} executions, coverage ${cov} edges, ${crashes} findings (log: $dir/log.txt)"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
