// One PPO iteration in its two halves, the steps stages/ppo.cpp's loop calls
// (InstructGPT step 3, after Ziegler et al. 2019 and OpenAI's lm-human-preferences):
//
//   collect_experience: this rank's prompts -> rollouts (generate(), KV cache, one random stream
//     per row) -> scores (reward model and/or checker, missing-EOS penalty, clip) -> old and
//     reference log-probs and values (training-style forwards) -> the whole batch on every rank ->
//     gae: per-token rewards (-β·KL, + score at the last token) -> GAE advantages and returns
//     grpo | rloo: each sequence's reward (score, - β·ΣKL unless the KL is a loss) against its
//     group of ppo.group_size samples of the same prompt -> one advantage per sequence; no critic
//   ppo_update: epochs x minibatches (a fresh permutation each epoch) of the clipped policy loss
//     (+ β x the k3 KL to the reference with ppo.kl_penalty: loss) + vf_coef x the clipped value
//     loss (gae) (+ PPO-ptx: the LM step's loss on pre-training windows) -> one AdamW step per
//     minibatch for each of policy and critic -> EMA
//
// Everything is in chunks and shares so that no tensor spans more than ppo.rollout_chunk rollouts
// or train.batch_size sequences, and so that N ranks compute what one process computes.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rlhf/config/config.h"
#include "rlhf/core/distributed.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/rl/experience.h"
#include "rlhf/rl/ppo_loss.h"
#include "rlhf/rl/response_scores.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/ema.h"
#include "rlhf/train/optimizer.h"

namespace rlhf {

// The run's models. The reference is frozen, the SFT weights in their own tensors, and null with
// ppo.kl_coef 0 (no KL: nothing to compare with) or with model.lora, where the policy with its
// adapters off is the reference (one copy of the base weights); the critic trains beside the
// policy and is null for grpo and rloo; the scorer (reward model, checker or toy reward) is frozen.
struct PpoModels {
    Gpt policy, reference;
    RewardModel critic;
    rl::ResponseScorer scorer;
    bool reference_is_base = false;  // model.lora with a KL: the reference is the policy's base
    bool has_reference() const { return reference || reference_is_base; }
};

// The config's choices, read once (stages/ppo_setup.h: ppo_settings).
struct PpoSettings {
    SamplingOptions sampling;       // the rollouts': full distribution at ppo.temperature
    bool bf16 = false;              // runtime.dtype
    bool frozen_bf16 = false;       // ppo.frozen_dtype
    bool check_invariants = false;  // rl/invariants.h
    bool critic_free = false;       // ppo.advantage grpo | rloo
    rl::PolicyLossOptions loss;     // clip range and aggregation
    int64_t pad_id = 0;
};

// What trains the models: an AdamW each (critic: null without a critic), one gradient sync for
// both (buckets in the same order on every rank), the policy's EMA (ppo.ema_decay > 0).
struct PpoOptimizers {
    std::unique_ptr<AdamW> policy, critic;
    std::unique_ptr<GradientSync> grad_sync;
    std::unique_ptr<EmaWeights> ema;
    double critic_lr_scale = 1.0;  // ppo.critic_lr / optim.lr
};

// What every iteration of a run uses: run_ppo builds it once.
struct PpoRun {
    const RunConfig& cfg;  // run_ppo's: outlives the run
    const Distributed& dist;
    torch::Device device;
    PpoModels models;
    PpoSettings settings;
    PpoOptimizers optim;
    std::unique_ptr<TokenShards> ptx;  // ppo.ptx_coef > 0: the pre-training windows
};

// This rank's share of an iteration's rollouts: rows first_row … of the `total_rows` in the batch
// (each prompt ppo.group_size times, in consecutive rows).
struct RolloutShare {
    std::vector<std::vector<int32_t>> prompts;
    std::vector<uint64_t> row_seeds;  // each row's sampling stream (model/sampling_streams.h)
    std::vector<double> answers;      // each row's gold answer (a checker reward; else empty)
    int64_t first_row = 0, total_rows = 0;
};

// Seconds this rank spent in each phase of an iteration (metrics.jsonl's time_*, docs/ppo.md). On a
// GPU each phase waits for its kernels before its clock stops, so that the time is its own.
struct PhaseSeconds {
    double generation = 0;  // the rollout engine (or generate()): prefill and decoding
    double reward = 0;      // the scorer: reward model, checker or toy reward
    double policy = 0;      // the policy's training-style forward for the old log-probs
    double reference = 0;   // the reference's log-probs
    double critic = 0;      // the critic's values
    double advantages = 0;  // the batch gathered over ranks, KL, rewards, advantages
    double update = 0;      // ppo_update's forwards, backwards and optimizer steps
    double ptx = 0;         // PPO-ptx's pre-training loss and backward
};

struct CollectedExperience {
    rl::Experience experience;         // the whole batch, on every rank
    PhaseSeconds seconds;              // generation … advantages (update and ptx: ppo_update's)
    int64_t generated_tokens = 0;      // this rank's response tokens up to each row's stop
    int64_t decode_slots = 0;          // this rank's row-steps decoded (Generation::decode_slots): what the tokens cost
    double sampling_logprob_gap = 0;   // mean |generate()'s - training forward's log-prob| (checked runs)
    double sampling_logprob_gap_max = 0;  // its largest token, over ranks
    double rollout_corrected_share = NAN;  // ppo.rollout_correction: share of tokens whose weight it changed
    double rollout_weight_mean = NAN;      // and the weights' mean
    double sampling_kl = 0;            // k3 estimate of KL(sampler || trainer) per response token: 0 when
                                       // the two compute the same function, > 0 once they drift (bf16, GPU)
    double checker_accuracy = NAN;     // share of responses the checker found right (a checker reward)
    double format_rate = NAN;          // share in the checker's answer form
    double uniform_groups = NAN;       // grpo, rloo: share of groups whose scores are all equal (advantage 0)
};

// Rollouts, scores, log-probs, values, rewards with the KL penalty at β = `beta`, advantages.
CollectedExperience collect_experience(PpoRun& run, const RolloutShare& share, double beta);

// What the update did, summed over its optimizer steps (the `_sum` fields weigh each micro-batch
// by its share of its minibatch's tokens, so that / updates is the mean per step).
struct PpoUpdateStats {
    double policy_loss_sum = 0, value_loss_sum = 0, clip_fraction_sum = 0, value_clip_fraction_sum = 0;
    double approx_kl_sum = 0, ratio_mean_sum = 0, ptx_loss_sum = 0, grad_norm_sum = 0, kl_loss_sum = 0;
    double ratio_max = 0;
    double first_ratio_deviation = NAN;  // max |ratio - 1| on the first minibatch (NaN: no tokens there)
    double first_approx_kl = NAN;
    int64_t updates = 0;                 // optimizer steps
    double update_seconds = 0, ptx_seconds = 0;  // this rank's time in the PPO and the PPO-ptx backwards and steps
};

// ppo.epochs passes over the experience in minibatches, at learning rate `lr`; `beta` weighs the
// KL loss (ppo.kl_penalty: loss).
PpoUpdateStats ppo_update(PpoRun& run, const rl::Experience& e, uint64_t iteration, double lr, double beta);

// The policy's greedy answers to the evaluation prompts, shared by rank.
struct PolicyEvaluation {
    double score_mean = 0, eos_rate = 0;
    double accuracy = NAN;  // share the checker found right (a checker reward)
    std::vector<std::pair<std::string, std::string>> samples;  // (question, answer [score]) from rank 0's share
};
// `answers`: the prompts' gold answers (a checker reward; else empty).
PolicyEvaluation evaluate_policy(PpoRun& run, const std::vector<std::vector<int32_t>>& prompts,
                                 const std::vector<std::string>& questions, const std::vector<double>& answers,
                                 const Tokenizer& tokenizer);

}  // namespace rlhf
