// Every seeded choice of a run outside LibTorch's generator draws from its own stream: the run's
// seed (runtime.seed) XOR a fixed 64-bit tag, the tag's bytes spelling the stream's name in ASCII.
// Streams therefore never share draws (the training order, the held-out split and the rollout
// samples of one seed are independent), and a stage that adds a stream changes none of the
// others. The tags are fixed forever: changing one changes every run's data order for that seed.
// One table, so that two stages never pick the same tag by accident.
#pragma once

#include <cstdint>

namespace rlhf {

namespace seed_stream {
// Pre-training: the sampled training windows; the fixed windows each evaluation scores.
inline constexpr uint64_t kPretrainData = 0x7472616e2d646174ULL;  // "tran-dat"
inline constexpr uint64_t kPretrainEval = 0x6576616c2d646174ULL;  // "eval-dat"
// SFT: the training order; the held-out split.
inline constexpr uint64_t kSftData = 0x7366742d74726e00ULL;   // "sft-trn"
inline constexpr uint64_t kSftSplit = 0x7366742d73706c74ULL;  // "sft-splt"
// Reward model: the training order; the held-out split; the shuffled reference comparisons.
inline constexpr uint64_t kRewardData = 0x726d2d7472616e00ULL;       // "rm-tran"
inline constexpr uint64_t kRewardSplit = 0x726d2d73706c7400ULL;      // "rm-splt"
inline constexpr uint64_t kRewardReference = 0x726d2d7265660000ULL;  // "rm-ref"
// DPO: the training order; the held-out split.
inline constexpr uint64_t kDpoData = 0x64706f2d74726e00ULL;   // "dpo-trn"
inline constexpr uint64_t kDpoSplit = 0x64706f2d73706c74ULL;  // "dpo-splt"
// GPT-1 task fine-tuning: the training order; the held-out split.
inline constexpr uint64_t kTaskData = 0x636c732d74726e00ULL;   // "cls-trn"
inline constexpr uint64_t kTaskSplit = 0x636c732d73706c74ULL;  // "cls-splt"
// PPO / GRPO / RLOO: the prompts of each iteration; each rollout row's sampling stream; the
// held-out prompts; the minibatch order of each update; the PPO-ptx windows.
inline constexpr uint64_t kPpoPrompts = 0x70706f2d70726d00ULL;      // "ppo-prm"
inline constexpr uint64_t kPpoSamples = 0x70706f2d736d7000ULL;      // "ppo-smp"
inline constexpr uint64_t kPpoSplit = 0x70706f2d73706c74ULL;        // "ppo-splt"
inline constexpr uint64_t kPpoMinibatches = 0x70706f2d70726d70ULL;  // "ppo-prmp"
inline constexpr uint64_t kPpoPtx = 0x70706f2d70747800ULL;          // "ppo-ptx"
}  // namespace seed_stream

// The seed of one stream of a run.
inline constexpr uint64_t stream_seed(uint64_t run_seed, uint64_t stream) { return run_seed ^ stream; }

}  // namespace rlhf
