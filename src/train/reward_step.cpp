#include "rlhf/train/reward_step.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/error.h"
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
    torch::Tensor counts = torch::zeros({4}, torch::kFloat64);
    for (const auto& mb : micro_batches) {
        counts[0] += static_cast<double>(mb.groups);
        counts[1] += static_cast<double>(mb.pairs);
        counts[2] += static_cast<double>(mb.ids.size(0));
        counts[3] += mb.key_mask.sum().to(torch::kCPU, torch::kFloat64);
    }
    if (sync) sync->sum(counts);
    stats.groups = static_cast<int64_t>(counts[0].item<double>());
    stats.pairs = static_cast<int64_t>(counts[1].item<double>());
    stats.rows = static_cast<int64_t>(counts[2].item<double>());
    stats.tokens = static_cast<int64_t>(counts[3].item<double>());
    double loss_sum = 0.0, correct = 0.0;
    for (size_t m = 0; m < micro_batches.size(); ++m) {
        const auto& mb = micro_batches[m];
        auto rewards = batch_rewards(model, mb, bf16);
        auto loss = ranked_pair_loss(rewards, mb, margin) / static_cast<double>(stats.groups);
        if (sync && m + 1 == micro_batches.size()) sync->arm();
        loss.backward();
        loss_sum += loss.item<double>();
        auto d = rewards.detach().index_select(0, mb.better) - rewards.detach().index_select(0, mb.worse);
        correct += d.gt(0).sum().item<double>() + 0.5 * d.eq(0).sum().item<double>();
    }
    if (sync) {
        sync->finish();
        torch::Tensor sums = torch::tensor({loss_sum, correct}, torch::kFloat64);
        sync->sum(sums);
        loss_sum = sums[0].item<double>();
        correct = sums[1].item<double>();
    }
    if (!std::isfinite(loss_sum)) {
        throw Error("reward-model loss became " + std::to_string(loss_sum), "training",
                    "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    stats.loss = loss_sum;
    stats.accuracy = stats.pairs > 0 ? correct / static_cast<double>(stats.pairs) : NAN;
    stats.grad_norm = optimizer.step(lr, grad_clip);
    return stats;
}

PairStats reward_eval(RewardModelImpl& model, const std::vector<RankedBatch>& batches, bool bf16, double margin) {
    const bool was_training = model.is_training();
    model.eval();
    torch::NoGradGuard no_grad;
    PairStatsAccumulator acc;
    for (const auto& b : batches) acc.add(batch_rewards(model, b, bf16), b, margin);
    model.train(was_training);
    return acc.result();
}

torch::Tensor raw_rewards_of(RewardModelImpl& model, const std::vector<std::vector<int32_t>>& sequences,
                             int64_t pad_id, int64_t batch_size, bool bf16) {
    const bool was_training = model.is_training();
    model.eval();
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
    model.train(was_training);
    return out.empty() ? torch::zeros({0}) : torch::cat(out);
}

}  // namespace rlhf
