#include "rlhf/stages/ppo_setup.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/train/data_parallel.h"

namespace rlhf {

namespace {

// The checkpoint a frozen model comes from. A fresh run: the configured one. A resumed run: the
// step directory its lineage recorded at the start, whose weights must still hash the same.
// (Lineages written before the hashes existed give the directory alone, or nothing.)
std::string pinned_checkpoint(const nlohmann::json& started_from, const char* dir_key, const char* hash_key,
                              const std::string& configured, const char* weights, const char* config_key) {
    if (configured.empty()) return configured;  // nothing to pin: a toy reward
    if (!started_from.is_object() || !started_from.contains(dir_key) || !started_from[dir_key].is_string()) return configured;
    const std::filesystem::path dir = started_from[dir_key].get<std::string>();
    if (!std::filesystem::exists(dir / "state.json")) {
        throw Error("the checkpoint this run started from (" + dir.string() + ") is gone", config_key,
                    "restore it: resuming against another checkpoint would change the run");
    }
    if (started_from.contains(hash_key)) {
        const std::string now = hex64(file_fnv1a64(model_weights_file(dir, weights)));
        if (now != started_from[hash_key].get<std::string>()) {
            throw Error("the weights of " + dir.string() + " changed since this run started from them (hash " +
                            started_from[hash_key].get<std::string>() + ", now " + now + ")",
                        config_key, "restore that checkpoint, or start a new run");
        }
    }
    return dir.string();
}

}  // namespace

bool frozen_models_bf16(const RunConfig& cfg) {
    // Frozen weights only feed forwards that already run under bf16 autocast when training in bf16:
    // storing them in bf16 halves their memory and rounds nothing the matmuls did not round anyway.
    if (cfg.ppo.frozen_dtype == "auto") return wants_bf16(cfg.runtime.dtype);
    return wants_bf16(cfg.ppo.frozen_dtype);
}

// The frozen reward model of ppo.reward_model (pinned on resume), or the toy reward; and the
// checker of ppo.reward: checker:NAME. `tokenizer` must outlive the scorer (it decodes for the checker).
rl::ResponseScorer make_scorer(const RunConfig& cfg, const nlohmann::json& started_from, const Tokenizer& tokenizer,
                               const StartPoint& start, const torch::Device& device, std::filesystem::path* reward_dir) {
    rl::ResponseScorer scorer;
    scorer.frozen_bf16 = frozen_models_bf16(cfg);
    scorer.eos_id = end_of_turn_id(tokenizer);  // where a reply ends: EOS, or the model's own end of turn
    scorer.missing_eos_penalty = cfg.ppo.missing_eos_penalty;
    scorer.missing_eos_score = cfg.ppo.missing_eos_score;
    scorer.score_clip = cfg.ppo.score_clip;
    if (cfg.ppo.reward != RewardSource::Model) {
        scorer.checker = checker_name(cfg.ppo.reward);
        scorer.tokenizer = &tokenizer;
        scorer.checker_weight = cfg.ppo.checker_weight;
        scorer.reward_model_weight = cfg.ppo.reward_model_weight;
        scorer.format_reward = cfg.ppo.format_reward;
        if (cfg.ppo.reward_model.empty()) return scorer;  // the checker alone
    }
    if (cfg.ppo.reward_model.empty()) {
        const auto ids = tokenizer.encode(cfg.ppo.toy_reward.substr(6));
        if (ids.size() != 1) {
            throw Error("'" + cfg.ppo.toy_reward.substr(6) + "' is " + std::to_string(ids.size()) + " tokens, not one",
                        cfg.source + ": ppo.toy_reward", "pick text that is a single token of the tokenizer");
        }
        scorer.toy_token = ids.front();
        return scorer;
    }
    if (!std::filesystem::exists(cfg.ppo.reward_model)) {
        throw Error("ppo.reward_model '" + cfg.ppo.reward_model + "' does not exist", cfg.source + ": ppo.reward_model",
                    "point it at a reward run directory or one of its checkpoints");
    }
    LoadedRewardModel rm = load_reward_model_from_checkpoint(
        pinned_checkpoint(started_from, "reward_model", "reward_model_weights_fnv1a64", cfg.ppo.reward_model, "raw",
                          "ppo.reward_model"),
        device);
    if (!rm.tokenizer.same_vocabulary(tokenizer)) {
        throw Error("the reward model's tokenizer is not the policy's (" + rm.info.dir.string() + " vs " +
                        start.dir.string() + ")",
                    cfg.source + ": ppo.reward_model", "train the reward model from the same SFT checkpoint");
    }
    // It scores the policy's renderings: it must have learned on the same chat format.
    if (rm.tokenizer.chat_template().style != tokenizer.chat_template().style) {
        throw Error("the reward model was trained on the " + chat_style_name(rm.tokenizer.chat_template().style) +
                        " chat format, the policy runs on " + chat_style_name(tokenizer.chat_template().style),
                    cfg.source + ": ppo.reward_model", "give both stages the same chat.template");
    }
    if (rm.info.config.model.block_size < cfg.model.block_size) {
        throw Error("the reward model's context (" + std::to_string(rm.info.config.model.block_size) +
                        ") is shorter than the policy's", cfg.source + ": ppo.reward_model", "");
    }
    *reward_dir = rm.info.dir;
    scorer.reward = rm.model;
    for (auto& p : scorer.reward->parameters()) p.set_requires_grad(false);
    if (scorer.frozen_bf16) scorer.reward->trunk_to_bf16();  // the head and its normalisation stay fp32
    return scorer;
}

// The critic: a copy of the reward model on the scale of the normalised scores the returns hold,
// or the SFT trunk with a head that predicts 0 until it learns (OpenAI's lm-human-preferences).
RewardModel make_critic(const RunConfig& cfg, RunConfig sft_cfg, const rl::ResponseScorer& scorer,
                        const std::filesystem::path& reward_dir) {
    if (cfg.ppo.critic_from == CriticFrom::Reward) {
        RewardModel critic(scorer.reward->config());
        load_model_weights(reward_dir, *critic);  // its own trunk: a copy, not the frozen reward model
        critic->fold_normalisation();
        return critic;
    }
    RewardModel critic(load_start_point(sft_cfg, {}).trunk);
    critic->zero_head();
    return critic;
}

// The SFT checkpoint: policy and reference start from it (pinned on resume); never a reward run.
StartPoint load_sft(const RunConfig& cfg, const nlohmann::json& started_from, RunConfig* sft_cfg) {
    sft_cfg->init_from = pinned_checkpoint(started_from, "checkpoint", "weights_fnv1a64", cfg.init_from, "auto", "init_from");
    StartPoint sft = load_start_point(*sft_cfg, {});
    if (model_kind(sft.info) == ModelKind::RewardModel) {  // its trunk would silently become policy and reference
        throw Error("init_from is a reward model (" + sft.dir.string() + ", stage: reward), not a policy",
                    cfg.source + ": init_from", "point init_from at the SFT run; the reward model goes in ppo.reward_model");
    }
    return sft;
}

PpoSettings ppo_settings(const RunConfig& cfg, const Tokenizer& tokenizer) {
    PpoSettings s;
    s.bf16 = wants_bf16(cfg.runtime.dtype);
    s.frozen_bf16 = frozen_models_bf16(cfg);
    s.check_invariants = cfg.ppo.check_invariants != CheckInvariants::Off;
    s.critic_free = cfg.ppo.advantage != Advantage::Gae;
    s.loss.clip_low = cfg.ppo.clip_low > 0 ? cfg.ppo.clip_low : cfg.ppo.clip;
    s.loss.clip_high = cfg.ppo.clip_high > 0 ? cfg.ppo.clip_high : cfg.ppo.clip;
    s.loss.aggregation = cfg.ppo.loss_aggregation;
    s.loss.max_tokens = cfg.ppo.max_new_tokens;
    s.pad_id = tokenizer.pad_id();
    s.sampling.max_new_tokens = cfg.ppo.max_new_tokens;
    s.sampling.temperature = cfg.ppo.temperature;
    s.sampling.top_k = 0;  // the full distribution: the log-probs PPO uses are of what was sampled
    s.sampling.top_p = 1.0;
    s.sampling.stop_ids = {end_of_turn_id(tokenizer)};
    s.sampling.vocab_limit = tokenizer.vocab_size();
    s.sampling.bf16 = s.bf16;
    s.sampling.throw_on_nonfinite = false;  // checked over all ranks, so that they stop together
    return s;
}

void place_ppo_models(PpoModels& models, const PpoSettings& settings, const torch::Device& device, const Distributed& dist) {
    if (models.reference) {
        for (auto& p : models.reference->parameters()) p.set_requires_grad(false);
        models.reference->eval();
        models.reference->to(device);
        if (settings.frozen_bf16) models.reference->to(torch::kBFloat16);
    }
    models.policy->to(device);
    broadcast_module(*models.policy, dist);
    models.policy->train();
    if (models.critic) {
        models.critic->to(device);
        broadcast_module(*models.critic, dist);
        models.critic->train();
    }
}

PpoOptimizers make_ppo_optimizers(const RunConfig& cfg, PpoModels& models, const Distributed& dist) {
    PpoOptimizers o;
    o.policy = std::make_unique<AdamW>(*models.policy, cfg.optim);
    std::vector<torch::Tensor> trained = o.policy->trained_parameters();
    if (models.critic) {
        o.critic = std::make_unique<AdamW>(*models.critic, cfg.optim);
        for (const auto& p : o.critic->trained_parameters()) trained.push_back(p);
    }
    o.grad_sync = std::make_unique<GradientSync>(dist, trained, mib_to_bytes(cfg.runtime.dist_bucket_mb));
    o.critic_lr_scale = cfg.ppo.critic_lr > 0 ? cfg.ppo.critic_lr / cfg.optim.lr : 1.0;
    if (cfg.ppo.ema_decay > 0) o.ema = std::make_unique<EmaWeights>(*models.policy, cfg.ppo.ema_decay);
    return o;
}

// A resume: both optimizers, the EMA, β, the RNG streams and the loop's state from the checkpoint.
TrainState restore_ppo_state(PpoRun& run, const std::filesystem::path& resume_dir, const StartPoint& start,
                             rl::KlController& kl_ctl) {
    OptimizerState saved = load_optimizer_state(resume_dir);
    run.optim.policy->load_state(saved.tensors, saved.step, (resume_dir / "optimizer.safetensors").string());
    if (run.optim.critic) {
        auto critic_state = load_safetensors(resume_dir / "critic_optimizer.safetensors");
        run.optim.critic->load_state({critic_state.tensors.begin(), critic_state.tensors.end()},
                                   start.info.stage_state.value("critic_optimizer_step", int64_t{0}),
                                   (resume_dir / "critic_optimizer.safetensors").string());
    }
    if (run.optim.ema) run.optim.ema->load(*run.models.policy, load_safetensors(resume_dir / kEmaFile).tensors, (resume_dir / kEmaFile).string());
    kl_ctl.set_beta(start.info.stage_state.value("kl_beta", run.cfg.ppo.kl_coef));
    restore_rng_states(resume_dir);
    spdlog::info("resumed from {} (step {}, beta {:.4g})", resume_dir.string(), start.info.state.step, kl_ctl.beta());
    return start.info.state;
}

// The prompt files, split into training and evaluation prompts; with a checker reward, each with
// its gold answer.
PromptSet load_prompts(const RunConfig& cfg, const Tokenizer& tokenizer) {
    PromptSetOptions o;
    o.field = cfg.data.fields.prompt.empty() ? "prompt" : cfg.data.fields.prompt;
    o.skip_bad = cfg.data.on_error == OnError::Skip;
    o.max_prompt_tokens = cfg.model.block_size - cfg.ppo.max_new_tokens;
    o.room_explained = "block_size " + std::to_string(cfg.model.block_size) + " - ppo.max_new_tokens " +
                       std::to_string(cfg.ppo.max_new_tokens);
    o.val_fraction = cfg.data.val_fraction;
    o.split_seed = stream_seed(cfg.runtime.seed, seed_stream::kPpoSplit);
    o.eval_prompts = cfg.train.eval_prompts;
    o.checker = checker_name(cfg.ppo.reward);  // "" for a reward model
    if (!cfg.data.fields.answer.empty()) o.answer_field = cfg.data.fields.answer;
    PromptSet p = read_prompt_set(cfg.data.files, o, tokenizer);
    spdlog::info("prompts: {} for training, {} for evaluation; {} longer than {} tokens left out", p.train.size(),
                 p.eval.size(), p.too_long, o.max_prompt_tokens);
    if (p.held_out_training > 0) {
        spdlog::info("prompts: {} of the data.val_fraction held out are beyond train.eval_prompts = {} and train",
                     p.held_out_training, cfg.train.eval_prompts);
    }
    return p;
}

}  // namespace rlhf
