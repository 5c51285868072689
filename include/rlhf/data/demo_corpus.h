// The built-in demo's data: a generated English-like corpus (small grammar, fixed seed), so
// scripts/demo.sh and the tests need no download and no copy of anyone's data.
//
//   rlhf data demo-corpus --out data/demo/corpus.txt --bytes 400000
//   rlhf data demo-sft --out data/demo/sft.jsonl --count 4000
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rlhf {

// At least `bytes` characters of short stories; the same seed gives the same text.
std::string demo_corpus(size_t bytes, uint64_t seed = 1337);

// `count` SFT demonstrations as JSONL {"prompt", "response"}: a story from the same grammar and a
// question about it ("What did Anna find?") answered in one sentence from the text.
std::string demo_sft_jsonl(size_t count, uint64_t seed = 1337);

}  // namespace rlhf
