#include "rlhf/train/reward_step.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"

namespace rlhf {

namespace {

torch::Tensor batch_rewards(RewardModelImpl& model, const RankedBatch& b, bool bf16) {
    AutocastGuard autocast(bf16, b.ids.device().type());
    return model.raw_scores(b.ids, b.key_mask);  // (N,) fp32
}

double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? NAN : s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
    const double m = mean_of(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return v.empty() ? NAN : std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

torch::Tensor ranked_pair_loss(const torch::Tensor& rewards, const RankedBatch& b, double margin) {
    auto diff = rewards.index_select(0, b.better) - rewards.index_select(0, b.worse) - margin;  // (P,)
    // -log σ(d) = softplus(-d), stable for large |d|.
    return (torch::nn::functional::softplus(-diff) * b.pair_weight).sum();
}

void PairStatsAccumulator::add(const torch::Tensor& rewards, const RankedBatch& b, double margin) {
    auto r = rewards.detach().to(torch::kFloat64).cpu();
    loss_sum_ += ranked_pair_loss(r, to_device(b, torch::kCPU), margin).item<double>();
    auto better = r.index_select(0, b.better.cpu()), worse = r.index_select(0, b.worse.cpu());
    correct_ += better.gt(worse).sum().item<double>() + 0.5 * better.eq(worse).sum().item<double>();
    for (int64_t i = 0; i < better.size(0); ++i) {
        better_.push_back(better[i].item<double>());
        worse_.push_back(worse[i].item<double>());
    }
    groups_ += b.groups;
}

PairStats PairStatsAccumulator::result() const {
    PairStats s;
    s.groups = groups_;
    s.pairs = static_cast<int64_t>(better_.size());
    if (s.pairs == 0) return s;
    s.loss = loss_sum_ / static_cast<double>(groups_);
    s.accuracy = correct_ / static_cast<double>(s.pairs);
    std::vector<double> margins(better_.size());
    for (size_t i = 0; i < margins.size(); ++i) margins[i] = better_[i] - worse_[i];
    s.margin = mean_of(margins);
    s.better_mean = mean_of(better_);
    s.better_std = std_of(better_);
    s.worse_mean = mean_of(worse_);
    s.worse_std = std_of(worse_);
    return s;
}

RewardStepStats reward_train_step(RewardModelImpl& model, AdamW& optimizer, const std::vector<RankedBatch>& micro_batches,
                                  double lr, double grad_clip, bool bf16, double margin, GradientSync* sync) {
    RewardStepStats stats;
    // Counts over every rank's share of the step (one small all-reduce): the loss is a mean over
    // the step's groups, wherever they were scored.
    // Read back once, before the forwards: the loss divides by the step's group count.
    const torch::Device device = model.transformer->wte->weight.device();
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
    double groups = 0, pairs = 0, rows = 0;
    torch::Tensor tokens = torch::zeros({}, f64);
    for (const auto& mb : micro_batches) {
        groups += static_cast<double>(mb.groups);
        pairs += static_cast<double>(mb.pairs);
        rows += static_cast<double>(mb.ids.size(0));
        tokens += mb.key_mask.sum();
    }
    torch::Tensor counts = torch::stack({torch::full({}, groups, f64), torch::full({}, pairs, f64), torch::full({}, rows, f64), tokens});
    if (sync) sync->sum(counts);
    const torch::Tensor host_counts = counts.cpu();
    stats.groups = static_cast<int64_t>(host_counts[0].item<double>());
    stats.pairs = static_cast<int64_t>(host_counts[1].item<double>());
    stats.rows = static_cast<int64_t>(host_counts[2].item<double>());
    stats.tokens = static_cast<int64_t>(host_counts[3].item<double>());
    // The loss and the correctly ordered pairs stay on the device until the step's end.
    torch::Tensor loss_sum = torch::zeros({}, f64), correct = torch::zeros({}, f64);
    for (size_t m = 0; m < micro_batches.size(); ++m) {
        const auto& mb = micro_batches[m];
        auto rewards = batch_rewards(model, mb, bf16);
        auto loss = ranked_pair_loss(rewards, mb, margin) / static_cast<double>(stats.groups);
        accumulate_backward(loss, sync, /*last=*/m + 1 == micro_batches.size());
        loss_sum += loss.detach().to(torch::kFloat64);
        auto d = rewards.detach().index_select(0, mb.better) - rewards.detach().index_select(0, mb.worse);
        correct += d.gt(0).sum().to(torch::kFloat64) + 0.5 * d.eq(0).sum().to(torch::kFloat64);
    }
    torch::Tensor sums = torch::stack({loss_sum, correct});
    if (sync) {
        sync->finish();
        sync->sum(sums);
    }
    const torch::Tensor host_sums = sums.cpu();
    const double loss_value = host_sums[0].item<double>(), correct_pairs = host_sums[1].item<double>();
    if (!std::isfinite(loss_value)) {
        throw Error("reward-model loss became " + std::to_string(loss_value), "training",
                    "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    stats.loss = loss_value;
    stats.accuracy = stats.pairs > 0 ? correct_pairs / static_cast<double>(stats.pairs) : NAN;
    stats.grad_norm = optimizer.step(lr, grad_clip);
    return stats;
}

PairStats reward_eval(RewardModelImpl& model, const std::vector<RankedBatch>& batches, bool bf16, double margin) {
    EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    PairStatsAccumulator acc;
    for (const auto& b : batches) acc.add(batch_rewards(model, b, bf16), b, margin);
    return acc.result();
}

torch::Tensor raw_rewards_of(RewardModelImpl& model, const std::vector<std::vector<int32_t>>& sequences,
                             int64_t pad_id, int64_t batch_size, bool bf16) {
    EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    const auto device = model.transformer->wte->weight.device();
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < sequences.size(); i += static_cast<size_t>(batch_size)) {
        // Each sequence as a one-completion "group" with no pairs: the same right-padded collation.
        std::vector<RenderedGroup> singles;
        for (size_t j = i; j < std::min(sequences.size(), i + static_cast<size_t>(batch_size)); ++j) {
            singles.push_back({{sequences[j]}, {0}});
        }
        std::vector<const RenderedGroup*> ptrs;
        for (const auto& g : singles) ptrs.push_back(&g);
        auto b = to_device(collate_groups(ptrs, pad_id), device);
        out.push_back(batch_rewards(model, b, bf16).cpu());
    }
    return out.empty() ? torch::zeros({0}) : torch::cat(out);
}

}  // namespace rlhf
