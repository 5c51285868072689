// What each fuzz target does with one input. Shared by the libFuzzer binaries (scripts/fuzz.sh,
// one LLVMFuzzerTestOneInput per target in fuzz_main.cpp) and by the regression test that replays
// tests/fuzz/corpus/ in the normal suite (test_fuzz_regressions.cpp).
//
// The contract under test: any input either parses or throws rlhf::Error (which the CLI prints as
// one line). A crash, a sanitizer report, or any other exception escaping is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rlhf::fuzz {

// YAML config text; lines after a "\n---set\n" line are --set overrides. A config that loads
// must dump and load back to the same dump.
void config(const uint8_t* data, size_t size);
// One file of examples, read as SFT examples and as comparisons, strict and skipping; the first
// byte picks .jsonl, .json or .jsonl.gz.
void records(const uint8_t* data, size_t size);
// A .safetensors file.
void safetensors(const uint8_t* data, size_t size);
// A token shard (train_000000.bin); one that opens has every token read.
void token_shard(const uint8_t* data, size_t size);
// GPT-2 BPE files: vocab.json and merges.txt separated by a NUL byte (or, with no NUL, a
// tokenizer.json); a tokenizer that loads encodes a fixed text and the input itself.
void gpt2_tokenizer(const uint8_t* data, size_t size);

struct Target {
    const char* name;
    void (*run)(const uint8_t*, size_t);
};
const std::vector<Target>& targets();

}  // namespace rlhf::fuzz
