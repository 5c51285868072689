#include "rlhf/train/task_step.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "rlhf/core/error.h"
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"
#include "rlhf/train/lm_step.h"

namespace rlhf {

TaskLossSums task_loss_sums(TaskModelImpl& model, const TaskBatch& b, double lm_coef, bool bf16) {
    AutocastGuard autocast(bf16, b.ids.device().type());
    auto out = model.forward(b.ids, b.extract_pos, b.rows_per_example);
    TaskLossSums s;
    namespace F = torch::nn::functional;
    if (model.regression()) {
        s.task = F::mse_loss(out.scores.to(torch::kFloat), b.labels, F::MSELossFuncOptions().reduction(torch::kSum));
    } else {
        s.task = F::cross_entropy(out.scores.to(torch::kFloat), b.labels, F::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    s.scores = out.scores.detach();
    if (lm_coef > 0) {
        auto logits = model.gpt->logits(out.hidden);  // (R, T, V)
        s.lm = lm_loss_sum(logits.view({-1, logits.size(-1)}), b.lm_targets.reshape({-1}));
        s.lm_targets = b.lm_targets.ne(kIgnoreIndex).sum().item<int64_t>();
    } else {
        s.lm = torch::zeros({}, s.task.options());
    }
    return s;
}

namespace {

// Correct answers in a batch (classes or choices), as a 0-dim float64 on the scores' device.
torch::Tensor correct_in(const torch::Tensor& scores, const torch::Tensor& labels) {
    return scores.argmax(1).eq(labels).sum().to(torch::kFloat64);
}

}  // namespace

TaskStepStats task_train_step(TaskModelImpl& model, AdamW& optimizer, const std::vector<TaskBatch>& micro_batches,
                              double lr, double grad_clip, double lm_coef, bool bf16, GradientSync* sync) {
    TaskStepStats stats;
    // The step's global counts first (one small all-reduce): both losses are means over the
    // whole step, wherever each example was scored.
    // Read back once, before the forwards: the losses divide by the step's counts.
    const torch::Device device = model.transformer->wte->weight.device();
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
    double examples = 0, rows = 0;
    torch::Tensor lm_count = torch::zeros({}, f64);
    for (const auto& mb : micro_batches) {
        examples += static_cast<double>(mb.examples);
        rows += static_cast<double>(mb.ids.size(0));
        lm_count += mb.lm_targets.ne(kIgnoreIndex).sum();
    }
    torch::Tensor counts = torch::stack({torch::full({}, examples, f64), lm_count, lm_count + rows});
    if (sync) sync->sum(counts);
    const torch::Tensor host_counts = counts.cpu();
    stats.examples = static_cast<int64_t>(host_counts[0].item<double>());
    const double lm_targets = host_counts[1].item<double>();
    stats.tokens = static_cast<int64_t>(host_counts[2].item<double>());
    // The loss sums and the right answers stay on the device until the step's end.
    torch::Tensor sums = torch::zeros({3}, f64);  // task loss, LM loss, right answers
    for (size_t m = 0; m < micro_batches.size(); ++m) {
        const auto& mb = micro_batches[m];
        auto s = task_loss_sums(model, mb, lm_coef, bf16);
        auto loss = s.task / static_cast<double>(stats.examples);
        if (lm_coef > 0 && lm_targets > 0) loss = loss + lm_coef * s.lm / lm_targets;
        accumulate_backward(loss, sync, /*last=*/m + 1 == micro_batches.size());
        const torch::Tensor right = model.regression() ? torch::zeros({}, f64) : correct_in(s.scores, mb.labels);
        sums += torch::stack({s.task.detach().to(torch::kFloat64), s.lm.detach().to(torch::kFloat64), right});
    }
    if (sync) {
        sync->finish();
        sync->sum(sums);
    }
    const torch::Tensor host_sums = sums.cpu();
    const double task_sum = host_sums[0].item<double>(), lm_sum = host_sums[1].item<double>(),
                 correct = host_sums[2].item<double>();
    stats.task_loss = task_sum / static_cast<double>(stats.examples);
    stats.lm_loss = lm_coef > 0 && lm_targets > 0 ? lm_sum / lm_targets : NAN;
    stats.loss = stats.task_loss + (lm_coef > 0 && lm_targets > 0 ? lm_coef * stats.lm_loss : 0.0);
    if (!std::isfinite(stats.loss)) {
        throw Error("task loss became " + std::to_string(stats.loss), "training",
                    "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    if (!model.regression()) stats.accuracy = correct / static_cast<double>(stats.examples);
    stats.grad_norm = optimizer.step(lr, grad_clip);
    return stats;
}

TaskPredictions predict_task(TaskModelImpl& model, const std::vector<TaskInput>& inputs, int64_t batch_size,
                             int64_t pad_id, bool bf16, double score_min, double score_max) {
    EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    const auto device = model.transformer->wte->weight.device();
    TaskPredictions p;
    double loss_sum = 0.0;
    for (size_t i = 0; i < inputs.size(); i += static_cast<size_t>(batch_size)) {
        std::vector<const TaskInput*> chunk;
        for (size_t j = i; j < std::min(inputs.size(), i + static_cast<size_t>(batch_size)); ++j) chunk.push_back(&inputs[j]);
        const auto b = to_device(collate_task_inputs(chunk, model.regression(), pad_id), device);
        const auto s = task_loss_sums(model, b, 0.0, bf16);
        loss_sum += s.task.item<double>();
        if (model.regression()) {
            auto pred = s.scores.to(torch::kCPU, torch::kDouble).clamp(score_min, score_max);
            for (int64_t k = 0; k < b.examples; ++k) {
                p.predicted_scores.push_back(pred[k].item<double>());
                p.scores.push_back(chunk[static_cast<size_t>(k)]->score);
            }
        } else {
            auto pred = s.scores.argmax(1).cpu();
            for (int64_t k = 0; k < b.examples; ++k) {
                p.predicted.push_back(pred[k].item<int64_t>());
                p.labels.push_back(chunk[static_cast<size_t>(k)]->label);
            }
        }
    }
    p.task_loss = inputs.empty() ? NAN : loss_sum / static_cast<double>(inputs.size());
    return p;
}

double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y) {
    const double n = static_cast<double>(x.size());
    if (x.size() < 2 || x.size() != y.size()) return NAN;
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : NAN;  // a constant has no correlation
}

namespace {

// 1-based ranks; a run of equal values shares the mean of the ranks it spans.
std::vector<double> mean_ranks(const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> ranks(v.size());
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
        const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
        for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
        i = j + 1;
    }
    return ranks;
}

}  // namespace

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
    return pearson_correlation(mean_ranks(x), mean_ranks(y));
}

TaskMetrics task_metrics(const TaskPredictions& p) {
    TaskMetrics m;
    if (!p.predicted_scores.empty()) {
        m.count = static_cast<int64_t>(p.scores.size());
        m.pearson = pearson_correlation(p.predicted_scores, p.scores);
        m.spearman = spearman_correlation(p.predicted_scores, p.scores);
        const double mean = std::accumulate(p.scores.begin(), p.scores.end(), 0.0) / static_cast<double>(m.count);
        double se = 0, se_mean = 0;
        for (size_t i = 0; i < p.scores.size(); ++i) {
            se += (p.predicted_scores[i] - p.scores[i]) * (p.predicted_scores[i] - p.scores[i]);
            se_mean += (mean - p.scores[i]) * (mean - p.scores[i]);
        }
        m.mse = se / static_cast<double>(m.count);
        m.mean_mse = se_mean / static_cast<double>(m.count);
        return m;
    }
    m.count = static_cast<int64_t>(p.labels.size());
    if (m.count == 0) return m;
    std::map<int64_t, int64_t> per_class;
    int64_t correct = 0;
    for (size_t i = 0; i < p.labels.size(); ++i) {
        ++per_class[p.labels[i]];
        correct += p.labels[i] == p.predicted[i];
    }
    int64_t most = 0;
    for (const auto& [label, n] : per_class) most = std::max(most, n);
    m.accuracy = static_cast<double>(correct) / static_cast<double>(m.count);
    m.majority_accuracy = static_cast<double>(most) / static_cast<double>(m.count);
    return m;
}

}  // namespace rlhf
