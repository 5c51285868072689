#include "rlhf/stages/ppo_iteration.h"

#include <spdlog/fmt/fmt.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "rlhf/core/seed_streams.h"
#include "rlhf/model/rollout_engine.h"
#include "rlhf/rl/advantages.h"
#include "rlhf/rl/group_advantages.h"
#include "rlhf/rl/masked.h"
#include "rlhf/rl/ppo_loss.h"
#include "rlhf/rl/rewards.h"
#include "rlhf/rl/rollout_correction.h"
#include "rlhf/rl/values.h"
#include "rlhf/core/splitmix64.h"
#include "rlhf/tokenizer/tokenizer.h"
#include "rlhf/train/lm_step.h"

namespace rlhf {

namespace {

using Clock = std::chrono::steady_clock;

// Seconds since t0, once a GPU has run what was queued: a phase's time is its own kernels'.
double seconds_since(Clock::time_point t0, const torch::Device& device) {
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// work(), its seconds added to `seconds`.
template <class Work> auto timed(double& seconds, const torch::Device& device, Work&& work) {
    const auto t0 = Clock::now();
    if constexpr (std::is_void_v<decltype(work())>) {
        work();
        seconds += seconds_since(t0, device);
    } else {
        auto result = work();
        seconds += seconds_since(t0, device);
        return result;
    }
}

// One chunk of the rollout, generated: scored, and run through policy, reference and critic
// without gradients. The log-probs and values come from a training-style forward rather than from
// the sampler (the same numbers in fp32, tests/model/test_generate.cpp), so that they are exactly
// what the update computes.
rl::RolloutChunk roll_out(PpoRun& run, Generation generation, const std::vector<double>& answers, PhaseSeconds& seconds) {
    const auto& ppo = run.cfg.ppo;
    const torch::Device& device = run.device;
    rl::RolloutChunk c;
    c.g = std::move(generation);
    auto scored = timed(seconds.reward, device, [&] { return run.models.scorer(c.g, answers); });
    c.scores = scored.scores;
    c.has_eos = scored.has_eos;
    c.correct = scored.correct;
    torch::NoGradGuard no_grad;
    const auto mask = c.g.response_mask.to(torch::kFloat32);
    const int64_t vocab = run.settings.sampling.vocab_limit;
    c.old_logprobs = timed(seconds.policy, device, [&] {
        return sequence_logprobs(*run.models.policy, c.g.tokens, c.g.attention_mask, c.g.prompt_len, ppo.temperature,
                                 run.settings.bf16, &c.entropy, vocab) * mask;
    });
    const double ref_temperature = ppo.reference_temperature > 0 ? ppo.reference_temperature : ppo.temperature;
    c.ref_logprobs = timed(seconds.reference, device, [&] {
        if (!run.models.has_reference()) return c.old_logprobs.clone();  // kl_coef 0: no reference, a KL of 0
        if (run.models.reference_is_base) {  // model.lora: the policy with its adapters off is the SFT model
            AdaptersOff base(*run.models.policy);
            return sequence_logprobs(*run.models.policy, c.g.tokens, c.g.attention_mask, c.g.prompt_len, ref_temperature,
                                     run.settings.bf16, nullptr, vocab) * mask;
        }
        return sequence_logprobs(*run.models.reference, c.g.tokens, c.g.attention_mask, c.g.prompt_len, ref_temperature,
                                 run.settings.bf16 || run.settings.frozen_bf16, nullptr, vocab) * mask;
    });
    c.old_values = timed(seconds.critic, device, [&] {
        if (!run.models.critic) return torch::zeros_like(mask);  // grpo, rloo: no critic
        return rl::response_values(*run.models.critic, c.g.tokens, c.g.attention_mask, c.g.prompt_len, run.settings.bf16)
                   .to(torch::kFloat32) * mask;
    });
    return c;
}

// Steps 2-4 of collect_experience, on the rollouts of every rank.
void advantages_of(PpoRun& run, const std::vector<rl::RolloutChunk>& chunks, const RolloutShare& share, double beta,
                   CollectedExperience& out);
}  // namespace

CollectedExperience collect_experience(PpoRun& run, const RolloutShare& share, double beta) {
    const auto& ppo = run.cfg.ppo;
    CollectedExperience out;
    // 1. Rollouts: at most ppo.rollout_chunk rows decode at once (the rollout engine refills the
    // slots of rows that stopped; ppo.rollout_engine: static generates chunk by chunk), and they
    // are scored and run through the models ppo.rollout_chunk at a time, so that no KV cache or
    // (b, T, V) logits tensor ever spans the whole batch.
    std::vector<rl::RolloutChunk> chunks;
    // The sampler (generate()) against the trainer (the training forward), over response tokens:
    // sum |Δ|, tokens, sum k3 with ρ = π_trainer / π_sampler, and the largest |Δ|.
    auto gap_sums = torch::zeros({3}, torch::kFloat64);
    auto gap_max = torch::zeros({1}, torch::kFloat64);
    auto checker_sums = torch::zeros({2}, torch::kFloat64);  // right answers, responses checked
    const size_t n = share.prompts.size(), chunk = static_cast<size_t>(ppo.rollout_chunk);
    const bool engine = ppo.rollout_engine == RolloutEngine::Continuous;
    Generation whole;  // the continuous engine's: every row of the share, ppo.rollout_chunk decoding at once
    if (engine && n > 0) {  // a rank's share may be empty at an epoch's small last batch
        whole = timed(out.seconds.generation, run.device, [&] {
            return generate_rollouts(*run.models.policy, share.prompts, run.settings.sampling, run.settings.pad_id,
                                     share.row_seeds, {ppo.rollout_chunk});
        });
        out.decode_slots = whole.decode_slots;
    }
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        const size_t c1 = std::min(n, c0 + chunk);
        const std::vector<double> answers = share.answers.empty() ? std::vector<double>{}
            : std::vector<double>(share.answers.begin() + static_cast<long>(c0), share.answers.begin() + static_cast<long>(c1));
        Generation g;
        if (engine) {
            g = generation_rows(whole, static_cast<int64_t>(c0), static_cast<int64_t>(c1));
        } else {
            const std::vector<std::vector<int32_t>> prompts(share.prompts.begin() + static_cast<long>(c0),
                                                            share.prompts.begin() + static_cast<long>(c1));
            const std::vector<uint64_t> seeds(share.row_seeds.begin() + static_cast<long>(c0),
                                              share.row_seeds.begin() + static_cast<long>(c1));
            g = timed(out.seconds.generation, run.device, [&] {
                return generate(*run.models.policy, prompts, run.settings.sampling, run.settings.pad_id, seeds);
            });
            out.decode_slots += g.decode_slots;
        }
        rl::RolloutChunk c = roll_out(run, std::move(g), answers, out.seconds);
        if (c.correct.defined()) {
            checker_sums[0] += c.correct.sum().item<double>();
            checker_sums[1] += c.scores.numel();
        }
        const auto mask = c.g.response_mask.to(torch::kFloat64);
        const auto delta = (c.old_logprobs - c.g.logprobs).to(torch::kFloat64) * mask;  // log π_trainer - log π_sampler
        gap_sums[0] += delta.abs().sum().cpu();
        gap_sums[1] += mask.sum().cpu();
        gap_sums[2] += ((delta.exp() - 1 - delta) * mask).sum().cpu();
        gap_max = torch::maximum(gap_max, delta.abs().max().cpu().view({1}));
        out.generated_tokens += c.g.response_mask.sum().item<int64_t>();
        chunks.push_back(std::move(c));
    }
    // A rank whose rollout met non-finite logits stops every rank, so that none waits for it.
    auto nonfinite = torch::zeros({1}, torch::kFloat64);
    for (const auto& c : chunks) if (c.g.nonfinite) nonfinite.fill_(1.0);
    run.dist.all_reduce_max(nonfinite);
    if (nonfinite.item<double>() > 0) throw nonfinite_logits_error();
    if (!run.models.scorer.checker.empty()) {
        run.dist.all_reduce_sum(checker_sums);
        out.checker_accuracy = (checker_sums[0] / checker_sums[1].clamp_min(1)).item<double>();
    }
    run.dist.all_reduce_sum(gap_sums);
    run.dist.all_reduce_max(gap_max);
    const double gap_tokens = std::max(gap_sums[1].item<double>(), 1.0);
    out.sampling_logprob_gap = gap_sums[0].item<double>() / gap_tokens;
    out.sampling_kl = gap_sums[2].item<double>() / gap_tokens;
    out.sampling_logprob_gap_max = gap_max.item<double>();
    timed(out.seconds.advantages, run.device, [&] { advantages_of(run, chunks, share, beta, out); });
    return out;
}

namespace {

void advantages_of(PpoRun& run, const std::vector<rl::RolloutChunk>& chunks, const RolloutShare& share, double beta,
                   CollectedExperience& out) {
    const auto& ppo = run.cfg.ppo;
    // 2. Every rank then holds the whole batch: what follows (rewards, advantages, whitening, β,
    // the minibatches) is computed as one process computes it.
    rl::Experience& e = out.experience;
    e = rl::gather_experience(rl::assemble_experience(chunks, run.settings.pad_id, run.device), share.total_rows,
                              share.first_row, run.settings.pad_id, run.dist);

    // The sampler/trainer correction's weights: fixed for the iteration, as both log-probs are.
    if (ppo.rollout_correction != RolloutCorrection::None) {
        const auto w = rl::rollout_correction_weights(e.old_logprobs, e.rollout_logprobs, e.mask, ppo.rollout_correction,
                                                      ppo.rollout_correction_cap);
        e.token_weights = w.weights;
        out.rollout_corrected_share = w.corrected_share;
        out.rollout_weight_mean = w.weight_mean;
    }

    // 3. The KL to the reference: in the reward (-β·KL), or left to the loss (ppo.kl_penalty: loss).
    e.kl = rl::kl_estimate(e.old_logprobs, e.ref_logprobs, ppo.kl_estimator) * e.mask;
    const double reward_beta = ppo.kl_penalty == KlPenalty::Reward ? beta : 0.0;

    // 4a. grpo, rloo: one reward per sequence, judged against its group; every token gets its advantage.
    if (run.settings.critic_free) {
        const auto sequence_rewards = e.scores - reward_beta * e.kl.sum(1);  // (B,)
        const auto adv = ppo.advantage == Advantage::Grpo ? rl::grpo_advantages(sequence_rewards, ppo.group_size, ppo.scale_by_std)
                                                 : rl::rloo_advantages(sequence_rewards, ppo.group_size);
        e.advantages = adv.unsqueeze(1) * e.mask;
        e.returns = torch::zeros_like(e.mask);
        out.uniform_groups = rl::uniform_group_share(e.scores, ppo.group_size);
        return;
    }

    // 4b. gae: per-token rewards (-β·KL on every token, the score at the last) -> GAE advantages and returns.
    auto rewards = rl::per_token_rewards(e.kl, e.scores, e.mask, reward_beta);
    if (ppo.whiten_rewards) rewards = rl::masked_whiten(rewards, e.mask, /*shift_mean=*/false);
    auto adv = rl::gae(rewards, e.old_values, e.mask, ppo.gamma, ppo.lambda);
    e.advantages = adv.advantages;
    e.returns = adv.returns;
}

// One micro-batch's part of the update's metrics, already weighted by its share of its minibatch.
struct MicroBatchStats {
    double policy_loss = 0, value_loss = 0, kl_loss = 0;
    double clip_fraction = 0, value_clip_fraction = 0, approx_kl = 0, ratio_mean = 0;
    double ratio_max = 0, ratio_min = 0;  // unweighted
};

// A micro-batch's forward and backward: the clipped policy loss (plus β·k3 KL as a loss, GRPO),
// and the critic's clipped value loss, each scaled to the micro-batch's share of its minibatch.
// `weight`: its share of the minibatch's tokens; `loss_weight`: the policy loss's share (of tokens,
// or of sequences for sequence_mean and token_sum). `advantages`: (rows, N), already whitened.
MicroBatchStats micro_batch_backward(PpoRun& run, const rl::Experience& u, const torch::Tensor& advantages, double weight,
                                     double loss_weight, double beta, bool last_backward) {
    const auto& ppo = run.cfg.ppo;
    MicroBatchStats s;
    auto logprobs = sequence_logprobs(*run.models.policy, u.tokens, u.attention_mask, u.prompt_len, ppo.temperature, run.settings.bf16,
                                      nullptr, run.settings.sampling.vocab_limit);
    auto pl = rl::clipped_policy_loss(logprobs, u.old_logprobs, advantages, u.mask, run.settings.loss, u.token_weights);
    torch::Tensor loss = pl.loss * loss_weight;
    if (ppo.kl_penalty == KlPenalty::Loss && run.models.has_reference()) {  // β·k3(π, π_ref), with its gradient (GRPO)
        auto kl_loss = rl::aggregate(rl::kl_estimate(logprobs, u.ref_logprobs, KlEstimator::K3), u.mask, run.settings.loss);
        loss = loss + beta * kl_loss * loss_weight;
        s.kl_loss = kl_loss.item<double>() * loss_weight;
    }
    if (run.models.critic) {
        auto values = rl::response_values(*run.models.critic, u.tokens, u.attention_mask, u.prompt_len, run.settings.bf16).to(torch::kFloat32);
        const rl::ValueLoss vl = rl::clipped_value_loss(values, u.old_values, u.returns, u.mask, ppo.value_clip);
        loss = loss + ppo.vf_coef * vl.loss * weight;
        s.value_loss = vl.loss.item<double>() * weight;
        s.value_clip_fraction = vl.clip_fraction * weight;
    }
    if (last_backward) run.optim.grad_sync->arm();  // the rank's last backward of the step sends the gradients as they finish
    loss.backward();
    s.policy_loss = pl.loss.item<double>() * loss_weight;
    s.clip_fraction = pl.clip_fraction * weight;
    s.approx_kl = pl.approx_kl * weight;
    s.ratio_mean = pl.ratio_mean * weight;
    s.ratio_max = pl.ratio_max;
    s.ratio_min = pl.ratio_min;
    return s;
}

// PPO-ptx: the pre-training LM loss on this rank's windows [w0, w1) of the step's ppo.ptx_batch,
// as a mean over ALL ranks' windows, times ppo.ptx_coef; its backward is the rank's last.
double ptx_backward(PpoRun& run, int64_t w0, int64_t w1) {
    const RunConfig& cfg = run.cfg;
    const auto& ppo = cfg.ppo;
    auto windows = run.ptx->batch(ppo.ptx_batch, cfg.model.block_size, stream_seed(cfg.runtime.seed, seed_stream::kPpoPtx),
                                  static_cast<uint64_t>(run.optim.policy->steps_taken()));
    run.optim.grad_sync->arm();
    const LmBatch lm = lm_batch_from_windows(windows.narrow(0, w0, w1 - w0), run.device);
    const torch::Tensor loss =
        lm_batch_loss_sum(*run.models.policy, lm, run.settings.bf16) / static_cast<double>(ppo.ptx_batch * cfg.model.block_size);
    (ppo.ptx_coef * loss).backward();
    return loss.item<double>();
}

// The update's sums over this rank's micro-batches, then over ranks (sums) and maxima.
struct UpdateSums {
    double policy_loss = 0, value_loss = 0, clip_fraction = 0, value_clip_fraction = 0, approx_kl = 0, ratio_mean = 0;
    double ptx_loss = 0, first_approx_kl = 0, kl_loss = 0;
    double ratio_max = 0;
    double first_ratio_deviation = -1;  // below any real one: -1 = no token in the first minibatch

    void add(const MicroBatchStats& s, bool first_minibatch) {
        policy_loss += s.policy_loss;
        value_loss += s.value_loss;
        kl_loss += s.kl_loss;
        value_clip_fraction += s.value_clip_fraction;
        clip_fraction += s.clip_fraction;
        approx_kl += s.approx_kl;
        ratio_mean += s.ratio_mean;
        ratio_max = std::max(ratio_max, s.ratio_max);
        if (first_minibatch) {  // the policy has not moved yet: ratio 1, approx-KL 0
            first_ratio_deviation = std::max({first_ratio_deviation, s.ratio_max - 1.0, 1.0 - s.ratio_min});
            first_approx_kl += s.approx_kl;
        }
    }
    void all_reduce(const Distributed& dist) {
        torch::Tensor sums = torch::tensor({policy_loss, value_loss, clip_fraction, value_clip_fraction, approx_kl,
                                            ratio_mean, ptx_loss, first_approx_kl, kl_loss}, torch::kFloat64);
        torch::Tensor maxima = torch::tensor({ratio_max, first_ratio_deviation}, torch::kFloat64);
        dist.all_reduce_sum(sums);
        dist.all_reduce_max(maxima);
        const auto v = sums.accessor<double, 1>();
        policy_loss = v[0];
        value_loss = v[1];
        clip_fraction = v[2];
        value_clip_fraction = v[3];
        approx_kl = v[4];
        ratio_mean = v[5];
        ptx_loss = v[6];
        first_approx_kl = v[7];
        kl_loss = v[8];
        ratio_max = maxima[0].item<double>();
        first_ratio_deviation = maxima[1].item<double>();
    }
};

// Per minibatch (OpenAI, TRL). Whitening rescales whatever reward differences remain to std 1:
// once the big ones are learned, a reward model's noise among near-equal answers gets full-size
// steps. Without it the mean is removed and the scale kept. Group advantages (grpo, rloo) are
// already centred on their group, and used as they are.
torch::Tensor minibatch_advantages(const PpoRun& run, const rl::Experience& mb) {
    if (run.settings.critic_free) return mb.advantages;
    if (run.cfg.ppo.whiten_advantages) return rl::masked_whiten(mb.advantages, mb.mask);
    return (mb.advantages - rl::masked_mean(mb.advantages, mb.mask)) * mb.mask;
}

}  // namespace

PpoUpdateStats ppo_update(PpoRun& run, const rl::Experience& e, uint64_t iteration, double lr, double beta) {
    const RunConfig& cfg = run.cfg;
    const auto& ppo = cfg.ppo;
    // Every rank draws the same permutation; each takes its contiguous share of every minibatch,
    // weighs its tokens by the WHOLE minibatch's count, and the gradients are summed over ranks
    // before each optimizer step.
    const int64_t rollouts = e.tokens.size(0);
    const int64_t ranks = run.dist.world_size(), rank = run.dist.rank();
    auto perm_gen = make_generator(stream_seed(cfg.runtime.seed, seed_stream::kPpoMinibatches) ^ (iteration * kSplitMixIncrement), torch::kCPU);
    // PPO-ptx: this rank's share of each step's pre-training windows, after its PPO backwards.
    const int64_t ptx_begin = ppo.ptx_batch * rank / ranks, ptx_end = ppo.ptx_batch * (rank + 1) / ranks;
    const bool with_ptx = run.ptx && ptx_end > ptx_begin;
    UpdateSums sums;
    PpoUpdateStats stats;
    const auto t0 = Clock::now();
    for (int epoch = 0; epoch < ppo.epochs; ++epoch) {
        auto perm = torch::randperm(rollouts, perm_gen, torch::kLong).to(run.device);
        for (int64_t mb_start = 0; mb_start < rollouts; mb_start += ppo.minibatch) {
            const int64_t mb_rows = std::min<int64_t>(ppo.minibatch, rollouts - mb_start);
            const rl::Experience mb = take_rows(e, perm.narrow(0, mb_start, mb_rows));
            const torch::Tensor mb_advantages = minibatch_advantages(run, mb);
            const double mb_tokens = mb.mask.sum().item<double>();
            if (mb_tokens == 0) continue;
            // This rank's rows of the minibatch, in micro-batches of train.batch_size.
            const int64_t mine_begin = mb_rows * rank / ranks, mine_end = mb_rows * (rank + 1) / ranks;
            for (int64_t row = mine_begin; row < mine_end; row += cfg.train.batch_size) {
                const int64_t n = std::min<int64_t>(cfg.train.batch_size, mine_end - row);
                auto rows = torch::arange(row, row + n, torch::TensorOptions().dtype(torch::kLong).device(run.device));
                const rl::Experience micro = take_rows(mb, rows);
                // The micro-batch's share of the minibatch's loss: of its tokens (a mean over
                // tokens), or of its sequences (sequence_mean, token_sum: sums over sequences).
                const double weight = micro.mask.sum().item<double>() / mb_tokens;
                if (weight == 0) continue;
                const double loss_weight = run.settings.loss.aggregation == LossAggregation::TokenMean ? weight
                                                                                 : static_cast<double>(n) / static_cast<double>(mb_rows);
                const bool last_backward = row + n == mine_end && !with_ptx;
                sums.add(micro_batch_backward(run, micro, mb_advantages.index_select(0, rows), weight, loss_weight, beta,
                                              last_backward),
                         /*first_minibatch=*/epoch == 0 && mb_start == 0);
            }
            if (with_ptx) sums.ptx_loss += timed(stats.ptx_seconds, run.device, [&] { return ptx_backward(run, ptx_begin, ptx_end); });
            run.optim.grad_sync->finish();
            stats.grad_norm_sum += run.optim.policy->step(lr, cfg.optim.grad_clip);
            if (run.optim.critic) run.optim.critic->step(lr * run.optim.critic_lr_scale, cfg.optim.grad_clip);
            if (run.optim.ema) run.optim.ema->update(*run.models.policy);
            ++stats.updates;
        }
    }
    stats.update_seconds = seconds_since(t0, run.device) - stats.ptx_seconds;
    sums.all_reduce(run.dist);
    stats.policy_loss_sum = sums.policy_loss;
    stats.value_loss_sum = sums.value_loss;
    stats.clip_fraction_sum = sums.clip_fraction;
    stats.value_clip_fraction_sum = sums.value_clip_fraction;
    stats.approx_kl_sum = sums.approx_kl;
    stats.ratio_mean_sum = sums.ratio_mean;
    stats.ptx_loss_sum = sums.ptx_loss;
    stats.kl_loss_sum = sums.kl_loss;
    stats.ratio_max = sums.ratio_max;
    if (sums.first_ratio_deviation >= 0) {  // some micro-batch of the first minibatch had tokens
        stats.first_ratio_deviation = sums.first_ratio_deviation;
        stats.first_approx_kl = sums.first_approx_kl;
    }
    return stats;
}

PolicyEvaluation evaluate_policy(PpoRun& run, const std::vector<std::vector<int32_t>>& prompts,
                                 const std::vector<std::string>& questions, const std::vector<double>& answers,
                                 const Tokenizer& tokenizer) {
    PolicyEvaluation out;
    if (prompts.empty()) return out;
    SamplingOptions greedy = run.settings.sampling;
    greedy.temperature = 0;
    auto gen = make_generator(run.cfg.runtime.seed, run.device);
    // Each rank answers its contiguous share of the prompts; the sums are summed over ranks, and
    // the samples come from rank 0's share (the one that writes them).
    const size_t n_eval = prompts.size(), ranks = static_cast<size_t>(run.dist.world_size());
    const size_t first = n_eval * static_cast<size_t>(run.dist.rank()) / ranks;
    const size_t end = n_eval * static_cast<size_t>(run.dist.rank() + 1) / ranks;
    const size_t chunk = static_cast<size_t>(run.cfg.ppo.rollout_chunk);
    auto sums = torch::zeros({3}, torch::kFloat64);  // score, EOS count, right answers
    for (size_t i = first; i < end; i += chunk) {
        const std::vector<std::vector<int32_t>> part(prompts.begin() + static_cast<long>(i),
                                                     prompts.begin() + static_cast<long>(std::min(end, i + chunk)));
        Generation g = generate(*run.models.policy, part, greedy, run.settings.pad_id, gen);
        const std::vector<double> part_answers = answers.empty() ? std::vector<double>{}
            : std::vector<double>(answers.begin() + static_cast<long>(i), answers.begin() + static_cast<long>(i + part.size()));
        auto scored = run.models.scorer(g, part_answers);
        sums[0] += scored.scores.sum().item<double>();
        sums[1] += scored.has_eos.sum().item<double>();
        if (scored.correct.defined()) sums[2] += scored.correct.sum().item<double>();
        const auto responses = response_ids(g);
        for (size_t b = 0; b < responses.size() && static_cast<int>(out.samples.size()) < run.cfg.train.log_samples; ++b) {
            out.samples.emplace_back(questions[i + b], fmt::format("{} [score {:.3f}]", tokenizer.decode(responses[b]),
                                                                    scored.scores[static_cast<int64_t>(b)].item<double>()));
        }
    }
    run.dist.all_reduce_sum(sums);
    out.score_mean = sums[0].item<double>() / static_cast<double>(n_eval);
    out.eos_rate = sums[1].item<double>() / static_cast<double>(n_eval);
    if (!run.models.scorer.checker.empty()) out.accuracy = sums[2].item<double>() / static_cast<double>(n_eval);
    return out;
}

}  // namespace rlhf
