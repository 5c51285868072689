// The built-in demo's data: a generated English-like corpus (small grammar, fixed seed), so
// scripts/demo.sh and the tests need no download and no copy of anyone's data.
//
//   rlhf data demo-corpus --out data/demo/corpus.txt --bytes 400000
//   rlhf data demo-sft --out data/demo/sft.jsonl --count 4000
//   rlhf data demo-reward --out data/demo/reward.jsonl --count 2000
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

// `count` ranked groups as JSONL {"prompt", "responses", "ranks"}: the same kind of question with
// K = 4 or 5 answers — right and concise (rank 0), right but rambling (1), wrong (2; two wrong
// answers tie), "I do not know." (3) — in shuffled order.
std::string demo_reward_jsonl(size_t count, uint64_t seed = 1337);

}  // namespace rlhf
