// Stage 4, PPO (InstructGPT step 3). Top to bottom:
//   1. runtime, run directory
//   2. four models of the one GPT type: policy (from SFT), reference (a separate copy of the SFT
//      weights, frozen), reward model (frozen, normalised), critic (a copy of the reward model,
//      its own trunk); dropout off in all of them; two optimizers; EMA weights
//   3. prompts (JSONL), rendered in the chat format, left-padded at rollout time
//   4. loop (train/training_loop), one PPO iteration per step:
//        a. sample prompts        b. generate rollouts (KV cache)       c. score (reward model,
//        missing-EOS penalty), old log-probs, reference log-probs, values (b-c in chunks of
//        ppo.rollout_chunk sequences)   d. per-token rewards: -β·KL + score at the last token
//        e. advantages (GAE) and returns
//        f. PPO epochs x minibatches (fresh permutation each epoch): clipped policy loss + clipped
//           value loss (+ PPO-ptx) with gradient accumulation -> AdamW steps -> EMA
//        g. adapt β; log
//      eval: greedy answers to fixed prompts -> mean score, EOS rate, samples; checkpoint.
//
//   rlhf train configs/demo/ppo.yaml
#include "rlhf/stages/ppo.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cctype>
#include <chrono>
#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/comparisons.h"  // parse_hh_dialogue
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/sampling_streams.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/rl/advantages.h"
#include "rlhf/rl/experience.h"
#include "rlhf/rl/invariants.h"
#include "rlhf/rl/masked.h"
#include "rlhf/rl/ppo_loss.h"
#include "rlhf/rl/rewards.h"
#include "rlhf/rl/values.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/training_loop.h"

namespace rlhf {

namespace {

using torch::indexing::Slice;

constexpr uint64_t kPromptStream = 0x70706f2d70726d00ULL;
constexpr uint64_t kSampleStream = 0x70706f2d736d7000ULL;
constexpr uint64_t kPermStream = 0x70706f2d70726d70ULL;
constexpr uint64_t kPtxStream = 0x70706f2d70747800ULL;
constexpr uint64_t kSplitStream = 0x70706f2d73706c74ULL;

// A prompt as turns: an HH-style dialogue ("\n\nHuman: …\n\nAssistant:") keeps its turns;
// anything else is one user turn.
std::vector<ChatTurn> prompt_turns(const std::string& text, const std::string& where) {
    if (text.find("Human:") == std::string::npos) return {{"user", text}};
    std::string dialogue = text;
    const std::string tail = "\n\nAssistant:";
    while (!dialogue.empty() && std::isspace(static_cast<unsigned char>(dialogue.back()))) dialogue.pop_back();
    if (dialogue.size() >= tail.size() && dialogue.compare(dialogue.size() - tail.size(), tail.size(), tail) == 0) {
        dialogue.resize(dialogue.size() - tail.size());
    }
    auto turns = parse_hh_dialogue(dialogue, where);
    if (turns.back().role != "user") throw Error("the dialogue does not end with a Human turn", where, "");
    return turns;
}

struct Prompts {
    std::vector<std::vector<int32_t>> train, eval;  // rendered ids, each ending in <|assistant|>
    std::vector<std::string> eval_text;             // the last user turn of each eval prompt, for samples
};

Prompts load_prompts(const RunConfig& cfg, const Tokenizer& tokenizer) {
    const std::string key = cfg.data.fields.prompt.empty() ? "prompt" : cfg.data.fields.prompt;
    const int64_t room = cfg.model.block_size - cfg.ppo.max_new_tokens;
    int64_t read = 0, too_long = 0, skipped = 0;
    std::string first_skip;
    std::vector<std::vector<int32_t>> all;
    std::vector<std::string> texts;
    for (const auto& file : cfg.data.files) {
        read_records(
            file,
            [&](const nlohmann::json& r, const std::string& where) {
                const std::string text = json_string_field(r, key, where);
                if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw Error("empty prompt", where, "");
                auto turns = prompt_turns(text, where);
                ++read;
                auto ids = render_prompt(turns, tokenizer);
                if (static_cast<int64_t>(ids.size()) > room) {
                    ++too_long;
                    return;
                }
                all.push_back(std::move(ids));
                texts.push_back(turns.back().content);
            },
            count_skips(cfg.data.on_error == "skip", skipped, first_skip));
    }
    if (skipped > 0) spdlog::warn("prompts: skipped {} bad record(s); the first: {}", skipped, first_skip);
    if (read == 0) throw Error("no prompts", cfg.data.files.front(), "one {\"" + key + "\": ...} per line");
    if (all.empty()) {
        throw Error("all " + std::to_string(read) + " prompts are longer than the " + std::to_string(room) +
                        " tokens the context leaves beside the response (block_size " +
                        std::to_string(cfg.model.block_size) + " - ppo.max_new_tokens " +
                        std::to_string(cfg.ppo.max_new_tokens) + ")",
                    cfg.data.files.front(), "use shorter prompts or lower ppo.max_new_tokens");
    }
    // Held-out prompts beyond train.eval_prompts would be evaluated by nothing: they train.
    Prompts p;
    const auto held = held_out_items(all.size(), cfg.data.val_fraction, cfg.runtime.seed ^ kSplitStream);
    size_t returned = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        if (held[i] && p.eval.size() < static_cast<size_t>(cfg.train.eval_prompts)) {
            p.eval.push_back(all[i]);
            p.eval_text.push_back(texts[i]);
        } else {
            returned += held[i];
            p.train.push_back(all[i]);
        }
    }
    if (p.train.empty()) throw Error("no training prompts left after the validation split", "data.val_fraction", "lower it");
    spdlog::info("prompts: {} for training, {} for evaluation; {} longer than {} tokens left out", p.train.size(),
                 p.eval.size(), too_long, room);
    if (returned > 0) {
        spdlog::info("prompts: {} of the data.val_fraction held out are beyond train.eval_prompts = {} and train",
                     returned, cfg.train.eval_prompts);
    }
    return p;
}

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

// The score of each response: the reward model at the last real token (normalised), or the toy
// reward; then the missing-EOS penalty and the clip.
struct Scorer {
    RewardModel reward{nullptr};
    int64_t toy_token = -1;  // count:TEXT -> this id
    bool frozen_bf16 = false;

    torch::Tensor operator()(const torch::Tensor& tokens, const torch::Tensor& attention_mask, const torch::Tensor& response,
                             const torch::Tensor& response_mask) {
        torch::NoGradGuard no_grad;
        if (toy_token >= 0) return response.eq(toy_token).logical_and(response_mask).sum(1).to(torch::kFloat32);
        AutocastGuard autocast(frozen_bf16, tokens.device().type());
        return reward->scores(tokens, attention_mask).to(torch::kFloat32);
    }
};

double to_double(const torch::Tensor& t) { return t.item<double>(); }

NamedTensors named(torch::nn::Module& m) {
    NamedTensors out;
    for (const auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
    for (const auto& item : m.named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
}

}  // namespace

int run_ppo(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and run directory ----------------------------------------------------------------
    Runtime rt = init_stage_runtime(cfg);
    const Distributed& dist = distributed();
    const bool bf16 = wants_bf16(cfg.runtime.dtype);
    const bool frozen_bf16 = cfg.ppo.frozen_dtype == "bfloat16";
    if (cfg.model.dropout > 0) {
        throw Error("PPO runs without dropout (the policy's log-probs must be the ones it sampled with)",
                    cfg.source + ": model.dropout", "remove the key");
    }
    const auto resume_dir = open_run_dir(cfg, opts.resume);
    const std::filesystem::path out_dir = cfg.out_dir;

    // 2. Models -------------------------------------------------------------------------------------
    // The reference is loaded from init_from on its own, never a second handle to the policy. On
    // resume the frozen models are the very checkpoints the run started from (init_from and
    // ppo.reward_model name runs that may have trained on since), checked against their hashes.
    const nlohmann::json started_from =
        resume_dir.empty() ? nlohmann::json() : read_checkpoint_info(resume_dir).stage_state.value("lineage", nlohmann::json());
    RunConfig sft_cfg = cfg;
    sft_cfg.init_from = pinned_checkpoint(started_from, "checkpoint", "weights_fnv1a64", cfg.init_from, "auto", "init_from");
    StartPoint sft = load_start_point(sft_cfg, {});
    if (sft.info.config.stage == "reward") {  // its trunk would silently become policy and reference
        throw Error("init_from is a reward model (" + sft.dir.string() + ", stage: reward), not a policy",
                    cfg.source + ": init_from",
                    "point init_from at the SFT run; the reward model goes in ppo.reward_model");
    }
    StartPoint start = load_start_point(cfg, resume_dir);  // the policy: the SFT weights again, or our own checkpoint
    const Tokenizer tokenizer = start.tokenizer;
    Gpt policy = start.trunk;
    Gpt reference = sft.trunk;
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
    reference->eval();

    Scorer scorer;
    scorer.frozen_bf16 = frozen_bf16;
    std::filesystem::path reward_dir;
    if (!cfg.ppo.reward_model.empty()) {
        if (!std::filesystem::exists(cfg.ppo.reward_model)) {
            throw Error("ppo.reward_model '" + cfg.ppo.reward_model + "' does not exist", cfg.source + ": ppo.reward_model",
                        "point it at a reward run directory or one of its checkpoints");
        }
        LoadedRewardModel rm = load_reward_model_from_checkpoint(
            pinned_checkpoint(started_from, "reward_model", "reward_model_weights_fnv1a64", cfg.ppo.reward_model, "raw",
                              "ppo.reward_model"),
            rt.device);
        if (!rm.tokenizer.same_vocabulary(tokenizer)) {
            throw Error("the reward model's tokenizer is not the policy's (" + rm.info.dir.string() + " vs " +
                            start.dir.string() + ")",
                        cfg.source + ": ppo.reward_model", "train the reward model from the same SFT checkpoint");
        }
        if (rm.info.config.model.block_size < cfg.model.block_size) {
            throw Error("the reward model's context (" + std::to_string(rm.info.config.model.block_size) +
                            ") is shorter than the policy's", cfg.source + ": ppo.reward_model", "");
        }
        reward_dir = rm.info.dir;
        scorer.reward = rm.model;
        for (auto& p : scorer.reward->parameters()) p.set_requires_grad(false);
    } else {
        const auto ids = tokenizer.encode(cfg.ppo.toy_reward.substr(6));
        if (ids.size() != 1) {
            throw Error("'" + cfg.ppo.toy_reward.substr(6) + "' is " + std::to_string(ids.size()) + " tokens, not one",
                        cfg.source + ": ppo.toy_reward", "pick text that is a single token of the tokenizer");
        }
        scorer.toy_token = ids.front();
    }

    RewardModel critic{nullptr};
    if (cfg.ppo.critic_from == "reward") {
        critic = RewardModel(scorer.reward->config());
        load_model_weights(reward_dir, *critic);  // its own trunk: a copy, not the frozen reward model
        critic->fold_normalisation();  // values on the scale of the normalised scores the returns hold
    } else {
        RunConfig critic_cfg = sft_cfg;
        critic = RewardModel(load_start_point(critic_cfg, {}).trunk);
        critic->zero_head();  // a fresh head predicts 0 until it learns (OpenAI's lm-human-preferences)
    }
    if (!resume_dir.empty()) load_weights_file(resume_dir / "critic.safetensors", *critic);

    policy->to(rt.device);
    reference->to(rt.device);
    critic->to(rt.device);
    if (frozen_bf16) {
        reference->to(torch::kBFloat16);
        if (scorer.reward) scorer.reward->trunk_to_bf16();
    }
    broadcast_module(*policy, dist);  // every rank starts from rank 0's weights
    broadcast_module(*critic, dist);
    policy->train();
    critic->train();
    AdamW policy_opt(*policy, cfg.optim);
    AdamW critic_opt(*critic, cfg.optim);
    // One GradientSync for both models: its buckets start strictly in order, so every rank issues
    // the same collectives in the same order whatever order backward reaches the two models in.
    std::vector<torch::Tensor> trained = policy_opt.trained_parameters();
    for (const auto& p : critic_opt.trained_parameters()) trained.push_back(p);
    GradientSync grad_sync(dist, trained, mib_to_bytes(cfg.runtime.dist_bucket_mb));
    const double critic_lr_scale = cfg.ppo.critic_lr > 0 ? cfg.ppo.critic_lr / cfg.optim.lr : 1.0;
    std::vector<torch::Tensor> ema;  // EMA of the policy's parameters, in registration order
    if (cfg.ppo.ema_decay > 0) {
        torch::NoGradGuard no_grad;
        for (const auto& p : policy->parameters()) ema.push_back(p.detach().clone());
    }
    rl::KlController kl_ctl(cfg.ppo.kl_coef, cfg.ppo.kl_target, cfg.ppo.kl_horizon);

    TrainState state;
    if (!resume_dir.empty()) {
        OptimizerState saved = load_optimizer_state(resume_dir);
        policy_opt.load_state(saved.tensors, saved.step, (resume_dir / "optimizer.safetensors").string());
        auto critic_state = load_safetensors(resume_dir / "critic_optimizer.safetensors");
        critic_opt.load_state({critic_state.tensors.begin(), critic_state.tensors.end()},
                              start.info.stage_state.value("critic_optimizer_step", int64_t{0}),
                              (resume_dir / "critic_optimizer.safetensors").string());
        if (!ema.empty()) {
            auto file = load_safetensors(resume_dir / kEmaFile);
            size_t i = 0;
            for (const auto& item : policy->named_parameters()) {
                auto it = file.tensors.find(item.key());
                if (it == file.tensors.end()) {
                    throw Error("EMA weight '" + item.key() + "' is missing", (resume_dir / kEmaFile).string(),
                                "resume with the ppo.ema_decay the run started with");
                }
                ema[i++].copy_(it->second);
            }
        }
        kl_ctl.set_beta(start.info.stage_state.value("kl_beta", cfg.ppo.kl_coef));
        restore_rng_states(resume_dir);
        state = start.info.state;
        spdlog::info("resumed from {} (step {}, beta {:.4g})", resume_dir.string(), state.step, kl_ctl.beta());
    } else {
        spdlog::info("policy and reference from {} (step {} of run {}); score: {}; critic from the {}", start.dir.string(),
                     start.info.state.step, start.info.config.out_dir,
                     reward_dir.empty() ? cfg.ppo.toy_reward : "reward model " + reward_dir.string(), cfg.ppo.critic_from);
    }
    nlohmann::json lineage = start.lineage;  // the SFT checkpoint (and what it came from), plus the reward model
    if (resume_dir.empty()) {
        lineage["reward_model"] = reward_dir.empty() ? nlohmann::json(cfg.ppo.toy_reward)
                                                     : nlohmann::json(std::filesystem::absolute(reward_dir).string());
        if (!reward_dir.empty()) {
            lineage["reward_model_weights_fnv1a64"] = hex64(file_fnv1a64(model_weights_file(reward_dir, "raw")));
        }
    }
    std::unique_ptr<TokenShards> ptx;
    if (cfg.ppo.ptx_coef > 0) ptx = std::make_unique<TokenShards>(cfg.ppo.ptx_shards, "train", tokenizer.fingerprint());

    // 3. Prompts ------------------------------------------------------------------------------------
    const Prompts prompts = load_prompts(cfg, tokenizer);
    // The sampler's cursor indexes the training prompts: a resume must see the same ones.
    if (const int64_t saved = start.info.stage_state.value("train_prompts", int64_t{-1});
        !resume_dir.empty() && saved >= 0 && saved != static_cast<int64_t>(prompts.train.size())) {
        throw Error("the run trained on " + std::to_string(saved) + " prompts, the data now gives " +
                        std::to_string(prompts.train.size()),
                    cfg.source + ": data.files", "resume with the prompt files, data.val_fraction and train.eval_prompts "
                                                 "the run started with");
    }
    EpochSampler sampler(static_cast<int64_t>(prompts.train.size()), cfg.ppo.rollout_batch);
    if (dist.is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(out_dir / "metrics.jsonl", resume_dir.empty() ? -1 : state.step);
    spdlog::info("policy: {} parameters, context {}, {} on {} with {} threads; {} episodes per iteration, minibatch {}, "
                 "{} epoch(s), beta {} ({}), {} KL{}",
                 policy->num_parameters(), cfg.model.block_size, cfg.runtime.dtype, rt.device.str(), rt.threads,
                 cfg.ppo.rollout_batch, cfg.ppo.minibatch, cfg.ppo.epochs, cfg.ppo.kl_coef,
                 kl_ctl.adaptive() ? fmt::format("adaptive, target {}", cfg.ppo.kl_target) : "fixed", cfg.ppo.kl_estimator,
                 dist.world_size() > 1 ? fmt::format("; {} ranks share the rollouts", dist.world_size()) : std::string());

    SamplingOptions sampling;
    sampling.max_new_tokens = cfg.ppo.max_new_tokens;
    sampling.temperature = cfg.ppo.temperature;
    sampling.top_k = 0;  // the full distribution: the log-probs PPO uses are of what was sampled
    sampling.top_p = 1.0;
    sampling.stop_ids = {tokenizer.eos_id()};
    sampling.vocab_limit = tokenizer.vocab_size();
    sampling.bf16 = bf16;
    sampling.throw_on_nonfinite = false;  // checked over all ranks below, so that they stop together
    // Dropout makes the training forward differ from sampling by design: nothing to check then.
    const bool check_invariants = cfg.ppo.check_invariants != "off" && cfg.model.dropout == 0.0;
    if (cfg.ppo.check_invariants != "off" && !check_invariants) {
        spdlog::info("ppo.check_invariants: not checked, model.dropout > 0 makes the training forward differ from sampling");
    }
    const int64_t eos = tokenizer.eos_id();

    // Scores with the penalty for responses that never end, and the optional clip.
    auto score_of = [&](const Generation& g) {
        auto scores = scorer(g.tokens, g.attention_mask, g.response, g.response_mask);
        auto has_eos = g.response.eq(eos).logical_and(g.response_mask).any(1);
        if (cfg.ppo.missing_eos_penalty) {
            scores = torch::where(has_eos, scores, torch::full_like(scores, cfg.ppo.missing_eos_score));
        }
        if (cfg.ppo.score_clip > 0) scores = scores.clamp(-cfg.ppo.score_clip, cfg.ppo.score_clip);
        return std::make_pair(scores, has_eos);
    };

    auto evaluate = [&]() {
        if (prompts.eval.empty()) return;
        SamplingOptions greedy = sampling;
        greedy.temperature = 0;
        auto gen = make_generator(cfg.runtime.seed, rt.device);
        // Each rank answers its contiguous share of the prompts; the sums are summed over ranks,
        // and the samples come from rank 0's share (the one that writes them).
        const size_t n_eval = prompts.eval.size(), ranks = static_cast<size_t>(dist.world_size());
        const size_t first = n_eval * static_cast<size_t>(dist.rank()) / ranks;
        const size_t end = n_eval * static_cast<size_t>(dist.rank() + 1) / ranks;
        auto sums = torch::zeros({2}, torch::kFloat64);  // score, EOS count
        std::vector<std::pair<std::string, std::string>> samples;
        for (size_t i = first; i < end; i += static_cast<size_t>(cfg.ppo.rollout_chunk)) {
            std::vector<std::vector<int32_t>> chunk(
                prompts.eval.begin() + static_cast<long>(i),
                prompts.eval.begin() + static_cast<long>(std::min(end, i + static_cast<size_t>(cfg.ppo.rollout_chunk))));
            Generation g = generate(*policy, chunk, greedy, tokenizer.pad_id(), gen);
            auto [scores, has_eos] = score_of(g);
            sums[0] += scores.sum().item<double>();
            sums[1] += has_eos.sum().item<double>();
            auto response = g.response.cpu(), mask = g.response_mask.cpu();
            for (int64_t b = 0; b < response.size(0) && static_cast<int>(samples.size()) < cfg.train.log_samples; ++b) {
                std::vector<int32_t> ids;
                for (int64_t t = 0; t < response.size(1) && mask[b][t].item<bool>(); ++t) {
                    ids.push_back(static_cast<int32_t>(response[b][t].item<int64_t>()));
                }
                samples.emplace_back(prompts.eval_text[i + static_cast<size_t>(b)],
                                     fmt::format("{} [score {:.3f}]", tokenizer.decode(ids), scores[b].item<double>()));
            }
        }
        dist.all_reduce_sum(sums);
        const double score_sum = sums[0].item<double>(), eos_sum = sums[1].item<double>();
        const double n = static_cast<double>(n_eval);
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}, {"eval_score", score_sum / n},
                              {"eval_eos_rate", eos_sum / n}, {"samples", nlohmann::json::array()}};
        for (const auto& [q, a] : samples) rec["samples"].push_back({{"prompt", q}, {"answer", a}});
        metrics.write(rec);
        spdlog::info("eval step {}: greedy score {:.4f}, EOS rate {:.1f}% of {} prompts", state.step, score_sum / n,
                     100 * eos_sum / n, prompts.eval.size());
        auto one_line = [](std::string t, size_t max_chars) {
            for (char& c : t) if (c == '\n' || c == '\t') c = ' ';
            return t.size() > max_chars ? t.substr(0, max_chars) + "…" : t;
        };
        for (const auto& [q, a] : samples) spdlog::info("  Q: {}\n    A: {}", one_line(q, 160), one_line(a, 300));
    };

    auto checkpoint = [&]() {
        CheckpointExtras extras;
        extras.tensor_files.emplace_back("critic.safetensors", named(*critic));
        extras.tensor_files.emplace_back("critic_optimizer.safetensors", critic_opt.state_tensors());
        if (!ema.empty()) {
            NamedTensors ema_named;
            size_t i = 0;
            for (const auto& item : policy->named_parameters()) ema_named.emplace_back(item.key(), ema[i++]);
            extras.tensor_files.emplace_back(kEmaFile, ema_named);
        }
        extras.stage_state = {{"lineage", lineage}, {"kl_beta", kl_ctl.beta()}, {"critic_optimizer_step", critic_opt.steps_taken()},
                              {"train_prompts", prompts.train.size()}};
        auto dir = save_checkpoint(out_dir / "checkpoints", cfg, state, *policy,
                                   {policy_opt.state_tensors(), policy_opt.steps_taken()}, tokenizer,
                                   cfg.checkpoint.keep_last, extras);
        spdlog::info("checkpoint saved: {}", dir.string());
    };

    // 4. The loop: one PPO iteration per step -------------------------------------------------------
    TrainingLoopHooks hooks;
    hooks.evaluate = evaluate;
    hooks.checkpoint = checkpoint;
    hooks.step = [&](double lr) {
        using clock = std::chrono::steady_clock;
        const auto t0 = clock::now();
        const uint64_t iteration = state.next_batch_index++;

        // a. prompts: this rank's contiguous share of the iteration's rollout batch, each with the
        // random stream of its place in the whole batch (model/sampling_streams.h), so that N ranks
        // sample what one process samples.
        // (An epoch's last batch may be smaller than ppo.rollout_batch, and shares may differ by one.)
        const auto all_rows = sampler.batch(cfg.runtime.seed ^ kPromptStream, iteration);
        const int64_t rows_total = static_cast<int64_t>(all_rows.size());
        const int64_t first_row = rows_total * dist.rank() / dist.world_size();
        const int64_t end_row = rows_total * (dist.rank() + 1) / dist.world_size();
        const uint64_t iteration_seed = derive_seed(cfg.runtime.seed ^ kSampleStream, iteration);
        std::vector<std::vector<int32_t>> batch;
        std::vector<uint64_t> row_seeds;
        for (int64_t r = first_row; r < end_row; ++r) {
            batch.push_back(prompts.train[static_cast<size_t>(all_rows[static_cast<size_t>(r)])]);
            row_seeds.push_back(derive_seed(iteration_seed, static_cast<uint64_t>(r)));
        }
        // b-d. rollouts, ppo.rollout_chunk sequences at a time, so that no KV cache or (b, T, V)
        // logits tensor ever spans the whole rollout batch: generation, scores, then log-probs
        // and values recomputed with a training-style forward rather than taken from generate()
        // (the same numbers in fp32, tests/model/test_generate.cpp, and exactly what the update
        // computes).
        std::vector<rl::RolloutChunk> chunks;
        double gen_seconds = 0;
        rl::InvariantGaps gaps;
        auto gap_sums = torch::zeros({2}, torch::kFloat64);
        for (size_t c0 = 0; c0 < batch.size(); c0 += static_cast<size_t>(cfg.ppo.rollout_chunk)) {
            const size_t c1 = std::min(batch.size(), c0 + static_cast<size_t>(cfg.ppo.rollout_chunk));
            const std::vector<std::vector<int32_t>> part(batch.begin() + static_cast<long>(c0),
                                                         batch.begin() + static_cast<long>(c1));
            const std::vector<uint64_t> part_seeds(row_seeds.begin() + static_cast<long>(c0),
                                                   row_seeds.begin() + static_cast<long>(c1));
            const auto t_gen = clock::now();
            rl::RolloutChunk c;
            c.g = generate(*policy, part, sampling, tokenizer.pad_id(), part_seeds);
            gen_seconds += std::chrono::duration<double>(clock::now() - t_gen).count();
            std::tie(c.scores, c.has_eos) = score_of(c.g);
            torch::NoGradGuard no_grad;
            const auto mask = c.g.response_mask.to(torch::kFloat32);
            c.old_logprobs = sequence_logprobs(*policy, c.g.tokens, c.g.attention_mask, c.g.prompt_len,
                                               cfg.ppo.temperature, bf16, &c.entropy, sampling.vocab_limit) * mask;
            c.ref_logprobs = sequence_logprobs(*reference, c.g.tokens, c.g.attention_mask, c.g.prompt_len,
                                               cfg.ppo.temperature, bf16 || frozen_bf16, nullptr, sampling.vocab_limit) * mask;
            c.old_values = rl::response_values(*critic, c.g.tokens, c.g.attention_mask, c.g.prompt_len, bf16)
                               .to(torch::kFloat32) * mask;
            if (check_invariants) {  // sum of |sampling - training log-prob| and the token count
                gap_sums[0] += ((c.g.logprobs - c.old_logprobs).abs() * mask).sum().item<double>();
                gap_sums[1] += mask.sum().item<double>();
            }
            chunks.push_back(std::move(c));
        }
        auto nonfinite = torch::zeros({1}, torch::kFloat64);
        for (const auto& c : chunks) if (c.g.nonfinite) nonfinite.fill_(1.0);
        dist.all_reduce_max(nonfinite);
        if (nonfinite.item<double>() > 0) throw nonfinite_logits_error();
        if (check_invariants) {
            dist.all_reduce_sum(gap_sums);
            gaps.sampling_logprob = gap_sums[1].item<double>() > 0 ? (gap_sums[0] / gap_sums[1]).item<double>() : 0.0;
        }
        // Every rank then holds the whole batch: what follows (rewards, advantages, whitening, β,
        // the minibatches) is computed as one process computes it.
        rl::Experience e = rl::gather_experience(rl::assemble_experience(chunks, tokenizer.pad_id(), rt.device),
                                                 rows_total, first_row, tokenizer.pad_id(), dist);

        // per-token rewards
        e.kl = rl::kl_estimate(e.old_logprobs, e.ref_logprobs, cfg.ppo.kl_estimator) * e.mask;
        const double beta = kl_ctl.beta();
        auto rewards = rl::per_token_rewards(e.kl, e.scores, e.mask, beta);
        if (cfg.ppo.whiten_rewards) rewards = rl::masked_whiten(rewards, e.mask, /*shift_mean=*/false);

        // e. advantages and returns
        auto adv = rl::gae(rewards, e.old_values, e.mask, cfg.ppo.gamma, cfg.ppo.lambda);
        e.advantages = adv.advantages;
        e.returns = adv.returns;

        // f. PPO epochs over minibatches. Every rank draws the same permutation; each takes its
        // contiguous share of every minibatch, weighs its tokens by the WHOLE minibatch's count,
        // and the gradients are summed over ranks before each optimizer step.
        const int64_t B = e.tokens.size(0);
        const int64_t ranks = dist.world_size(), rank = dist.rank();
        auto perm_gen = make_generator(cfg.runtime.seed ^ kPermStream ^ (iteration * 0x9E3779B97F4A7C15ULL), torch::kCPU);
        // Sums over this rank's micro-batches, each weighted by its share of its minibatch's tokens.
        enum Sum { kPolicyLoss, kValueLoss, kClipFrac, kValueClipFrac, kApproxKl, kRatioMean, kPtxLoss, kFirstApproxKl, kSums };
        auto sums = torch::zeros({kSums}, torch::kFloat64);
        auto sums_a = sums.accessor<double, 1>();
        // Maxima; the first minibatch's ratio deviation starts below any real one (-1 = none seen).
        auto maxima = torch::tensor({0.0, -1.0}, torch::kFloat64);  // ratio max, first-minibatch ratio deviation
        auto max_a = maxima.accessor<double, 1>();
        double grad_norm = 0;
        int64_t updates = 0;
        for (int epoch = 0; epoch < cfg.ppo.epochs; ++epoch) {
            auto perm = torch::randperm(B, perm_gen, torch::kLong).to(rt.device);
            for (int64_t m0 = 0; m0 < B; m0 += cfg.ppo.minibatch) {
                const int64_t mb_rows = std::min<int64_t>(cfg.ppo.minibatch, B - m0);
                const rl::Experience mb = take_rows(e, perm.narrow(0, m0, mb_rows));
                auto mb_adv = rl::masked_whiten(mb.advantages, mb.mask);  // per minibatch (OpenAI, TRL)
                const double mb_tokens = mb.mask.sum().item<double>();
                if (mb_tokens == 0) continue;
                const int64_t mine_begin = mb_rows * rank / ranks, mine_end = mb_rows * (rank + 1) / ranks;
                const int64_t w0 = cfg.ppo.ptx_batch * rank / ranks, w1 = cfg.ppo.ptx_batch * (rank + 1) / ranks;
                const bool ptx_backward = ptx && w1 > w0;  // this rank's PPO-ptx windows come last
                for (int64_t u0 = mine_begin; u0 < mine_end; u0 += cfg.train.batch_size) {
                    const int64_t n = std::min<int64_t>(cfg.train.batch_size, mine_end - u0);
                    auto rows = torch::arange(u0, u0 + n, torch::TensorOptions().dtype(torch::kLong).device(rt.device));
                    const rl::Experience u = take_rows(mb, rows);
                    const double weight = u.mask.sum().item<double>() / mb_tokens;  // masked mean over the minibatch
                    if (weight == 0) continue;
                    auto logprobs = sequence_logprobs(*policy, u.tokens, u.attention_mask, u.prompt_len, cfg.ppo.temperature,
                                                      bf16, nullptr, sampling.vocab_limit);
                    auto pl = rl::clipped_policy_loss(logprobs, u.old_logprobs, mb_adv.index_select(0, rows), u.mask, cfg.ppo.clip);
                    auto values = rl::response_values(*critic, u.tokens, u.attention_mask, u.prompt_len, bf16).to(torch::kFloat32);
                    auto vl = rl::clipped_value_loss(values, u.old_values, u.returns, u.mask, cfg.ppo.value_clip);
                    // The rank's last backward of the step sends the gradients as they finish.
                    if (u0 + n == mine_end && !ptx_backward) grad_sync.arm();
                    ((pl.loss + cfg.ppo.vf_coef * vl.loss) * weight).backward();
                    sums_a[kPolicyLoss] += pl.loss.item<double>() * weight;
                    sums_a[kValueLoss] += vl.loss.item<double>() * weight;
                    sums_a[kClipFrac] += pl.clip_fraction * weight;
                    sums_a[kValueClipFrac] += vl.clip_fraction * weight;
                    sums_a[kApproxKl] += pl.approx_kl * weight;
                    sums_a[kRatioMean] += pl.ratio_mean * weight;
                    max_a[0] = std::max(max_a[0], pl.ratio_max);
                    if (epoch == 0 && m0 == 0) {  // the policy has not moved yet: ratio 1, approx-KL 0
                        max_a[1] = std::max({max_a[1], pl.ratio_max - 1.0, 1.0 - pl.ratio_min});
                        sums_a[kFirstApproxKl] += pl.approx_kl * weight;
                    }
                }
                if (ptx) {  // PPO-ptx: pre-training gradients accumulated into the same step, rows shared by rank
                    auto windows = ptx->batch(cfg.ppo.ptx_batch, cfg.model.block_size, cfg.runtime.seed ^ kPtxStream,
                                              static_cast<uint64_t>(policy_opt.steps_taken()));
                    if (ptx_backward) {
                        grad_sync.arm();
                        auto mine = windows.narrow(0, w0, w1 - w0);
                        LmBatch lm{to_device(mine.narrow(1, 0, cfg.model.block_size).contiguous(), rt.device),
                                   to_device(mine.narrow(1, 1, cfg.model.block_size).contiguous(), rt.device), {}, {}};
                        torch::Tensor loss;
                        {
                            AutocastGuard autocast(bf16, rt.device.type());
                            auto logits = policy->logits(policy->forward(lm.inputs));
                            // The mean over ALL ranks' windows: every rank divides by the whole count.
                            loss = lm_loss_sum(logits.view({-1, logits.size(-1)}), lm.targets.reshape({-1})) /
                                   static_cast<double>(cfg.ppo.ptx_batch * cfg.model.block_size);
                        }
                        (cfg.ppo.ptx_coef * loss).backward();
                        sums_a[kPtxLoss] += loss.item<double>();
                    }
                }
                grad_sync.finish();
                grad_norm += policy_opt.step(lr, cfg.optim.grad_clip);
                critic_opt.step(lr * critic_lr_scale, cfg.optim.grad_clip);
                if (!ema.empty()) {
                    torch::NoGradGuard no_grad;
                    size_t i = 0;
                    for (const auto& p : policy->parameters()) ema[i++].mul_(cfg.ppo.ema_decay).add_(p.detach(), 1.0 - cfg.ppo.ema_decay);
                }
                ++updates;
            }
        }
        dist.all_reduce_sum(sums);
        dist.all_reduce_max(maxima);
        const double nu = std::max<int64_t>(updates, 1);
        const double policy_loss = sums_a[kPolicyLoss], value_loss = sums_a[kValueLoss];
        if (!std::isfinite(policy_loss) || !std::isfinite(value_loss)) {
            throw Error("PPO loss became non-finite", "training", "lower optim.lr, raise ppo.kl_coef, keep optim.grad_clip > 0");
        }
        const double clip_frac = sums_a[kClipFrac], value_clip_frac = sums_a[kValueClipFrac],
                     approx_kl = sums_a[kApproxKl], ratio_mean = sums_a[kRatioMean], ptx_loss = sums_a[kPtxLoss],
                     ratio_max = max_a[0];
        const bool first_seen = max_a[1] >= 0;  // some micro-batch of the first minibatch had tokens
        const double first_ratio_dev = first_seen ? max_a[1] : NAN;
        const double first_approx_kl = first_seen ? sums_a[kFirstApproxKl] : NAN;
        if (check_invariants) {
            gaps.first_ratio = first_ratio_dev;
            if (const std::string broken = rl::invariant_violation(iteration, gaps, /*reduced_precision=*/bf16 || rt.device.is_cuda()); !broken.empty()) {
                if (cfg.ppo.check_invariants == "error") {
                    throw Error(broken, "ppo.check_invariants",
                                "a bug to report with the config; ppo.check_invariants: warn lets the run go on");
                }
                spdlog::warn("{}", broken);
            }
        }

        // g. β and the record
        const double kl_per_seq = (e.kl * e.mask).sum(1).mean().item<double>();
        kl_ctl.update(kl_per_seq, B);
        auto returns_var = rl::masked_var(e.returns, e.mask).item<double>();
        const double explained_var =
            returns_var > 0 ? 1.0 - rl::masked_var(e.returns - e.old_values, e.mask).item<double>() / returns_var : NAN;
        const double step_seconds = std::chrono::duration<double>(clock::now() - t0).count();
        const double score_mean = e.scores.mean().item<double>();
        state.tokens_seen += e.mask.sum().item<int64_t>();
        StepReport r;
        r.loss = policy_loss / nu;
        r.grad_norm = grad_norm / nu;
        r.fields = {{"score_mean", score_mean},
                    {"score_std", e.scores.std(false).item<double>()},
                    {"kl", kl_per_seq},
                    {"beta", beta},
                    {"entropy", to_double(rl::masked_mean(e.entropy, e.mask))},
                    {"policy_loss", policy_loss / nu},
                    {"value_loss", value_loss / nu},
                    {"clip_fraction", clip_frac / nu},
                    {"value_clip_fraction", value_clip_frac / nu},
                    {"approx_kl", approx_kl / nu},
                    {"ratio_mean", ratio_mean / nu},
                    {"ratio_max", ratio_max},
                    {"first_minibatch_ratio_deviation", first_ratio_dev},
                    {"first_minibatch_approx_kl", first_approx_kl},
                    {"sampling_logprob_gap", check_invariants ? gaps.sampling_logprob : NAN},
                    {"explained_variance", explained_var},
                    {"rollouts", B},  // ppo.rollout_batch, or fewer at an epoch's end
                    {"response_length", e.mask.sum(1).mean().item<double>()},
                    {"eos_rate", e.has_eos.to(torch::kFloat32).mean().item<double>()},
                    {"generation_share", gen_seconds / step_seconds},
                    {"epoch", sampler.epoch_of(iteration)}};
        if (ptx) r.fields["ptx_loss"] = ptx_loss / nu;
        r.progress = fmt::format(" | score {:.3f} | kl {:.3f}", score_mean, kl_per_seq);
        r.log = fmt::format(" | score {:.3f} ± {:.3f} | kl {:.3f} | beta {:.4f} | clip {:.3f} | len {:.1f} | EOS {:.0f}% | gen {:.0f}%",
                            score_mean, r.fields["score_std"].get<double>(), kl_per_seq, beta, clip_frac / nu,
                            r.fields["response_length"].get<double>(), 100 * r.fields["eos_rate"].get<double>(),
                            100 * gen_seconds / step_seconds);
        return r;
    };
    const LoopResult done = run_training_loop("ppo", cfg, state, metrics, hooks);
    if (done.exit_code != 0) return done.exit_code;
    log_run_done(done, state, "iterations");
    return 0;
}

}  // namespace rlhf
