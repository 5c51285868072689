// PPO's set-up, what stages/ppo.cpp's run_ppo does before its loop: the SFT start point (never a
// reward run), the frozen scorer (reward model, checker or toy reward), the critic, the models
// on the device with their optimizers, a resumed run's state, and the prompts. On resume, the
// SFT and reward checkpoints are the ones the run's lineage pinned (their weights' hashes checked).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/config.h"
#include "rlhf/data/prompt_set.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/rl/response_scores.h"
#include "rlhf/rl/rewards.h"
#include "rlhf/stages/ppo_iteration.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

// `started_from` below: the lineage a resumed run recorded at its start (empty on a fresh run).

// Whether the reference and the reward model's trunk are stored in bf16: ppo.frozen_dtype, whose
// `auto` follows runtime.dtype.
bool frozen_models_bf16(const RunConfig& cfg);

// The frozen reward model of ppo.reward_model (pinned on resume), or the toy reward; and the
// checker of ppo.reward: checker:NAME. `tokenizer` must outlive the scorer (it decodes for the checker).
rl::ResponseScorer make_scorer(const RunConfig& cfg, const nlohmann::json& started_from, const Tokenizer& tokenizer,
                               const StartPoint& start, const torch::Device& device, std::filesystem::path* reward_dir);

// The critic: a copy of the reward model on the scale of the normalised scores the returns hold,
// or the SFT trunk with a head that predicts 0 until it learns (OpenAI's lm-human-preferences).
RewardModel make_critic(const RunConfig& cfg, RunConfig sft_cfg, const rl::ResponseScorer& scorer,
                        const std::filesystem::path& reward_dir);

// The SFT checkpoint: policy and reference start from it (pinned on resume); never a reward run.
StartPoint load_sft(const RunConfig& cfg, const nlohmann::json& started_from, RunConfig* sft_cfg);

// The config's choices for the iterations: precision, invariant checks, clip range and loss
// aggregation, and the rollouts' sampling options (the full distribution, the end-of-turn stop).
PpoSettings ppo_settings(const RunConfig& cfg, const Tokenizer& tokenizer);

// The models on the device, every rank from rank 0's weights; the reference frozen, in bf16
// when frozen_models_bf16.
void place_ppo_models(PpoModels& models, const PpoSettings& settings, const torch::Device& device, const Distributed& dist);

// An AdamW for the policy and one for the critic, one gradient sync over both, and the EMA.
PpoOptimizers make_ppo_optimizers(const RunConfig& cfg, PpoModels& models, const Distributed& dist);

// A resume: both optimizers, the EMA, β, the RNG streams and the loop's state from the checkpoint.
TrainState restore_ppo_state(PpoRun& run, const std::filesystem::path& resume_dir, const StartPoint& start,
                             rl::KlController& kl_ctl);

// The prompt files, split into training and evaluation prompts; with a checker reward, each with
// its gold answer.
PromptSet load_prompts(const RunConfig& cfg, const Tokenizer& tokenizer);

}  // namespace rlhf
