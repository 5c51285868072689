#include "rlhf/stages/dpo_step.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"
#include "rlhf/train/lm_step.h"  // kIgnoreIndex

namespace rlhf {

torch::Tensor response_logprobs(GptImpl& model, const DpoBatch& b, bool bf16) {
    AutocastGuard autocast(bf16, b.inputs.device().type());
    const auto hidden = model.forward(b.inputs);  // (N, T, C)
    // Logits only where some row has a target: the prompts' positions would be ignored anyway.
    const int64_t from = b.first_target, T = hidden.size(1) - from;
    const auto logits = model.logits(hidden.narrow(1, from, T));  // (N, T', V)
    const int64_t N = logits.size(0), V = logits.size(2);
    // Cross-entropy in fp32 (as SFT's loss): an ignored target contributes exactly 0.
    const auto nll = torch::nn::functional::cross_entropy(
        logits.to(torch::kFloat32).reshape({N * T, V}), b.targets.narrow(1, from, T).reshape({N * T}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kNone));
    return -nll.view({N, T}).sum(1);  // (N,)
}

torch::Tensor reference_logprobs(GptImpl& model, const std::vector<DpoGroup>& groups, int64_t total, int64_t batch_size,
                                 int64_t pad_id, bool bf16) {
    EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    const auto device = model.transformer->wte->weight.device();
    auto out = torch::zeros({total}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    for (size_t i = 0; i < groups.size(); i += static_cast<size_t>(batch_size)) {
        std::vector<const DpoGroup*> chunk;
        for (size_t j = i; j < std::min(groups.size(), i + static_cast<size_t>(batch_size)); ++j) chunk.push_back(&groups[j]);
        const auto b = to_device(collate_dpo(chunk, pad_id, kIgnoreIndex), device);
        out.index_put_({b.completion}, response_logprobs(model, b, bf16));
    }
    return out;
}

namespace {

rl::DpoPairLosses batch_pair_losses(GptImpl& policy, const DpoBatch& b, const torch::Tensor& reference,
                                    const DpoConfig& cfg, bool bf16) {
    const auto logp = response_logprobs(policy, b, bf16);  // (N,)
    const auto ref = reference.index_select(0, b.completion);
    return rl::dpo_pair_losses(logp.index_select(0, b.chosen), logp.index_select(0, b.rejected),
                               ref.index_select(0, b.chosen), ref.index_select(0, b.rejected), cfg);
}

}  // namespace

DpoStepStats dpo_train_step(GptImpl& policy, AdamW& optimizer, const std::vector<DpoBatch>& micro_batches,
                            const torch::Tensor& reference, const DpoConfig& cfg, double lr, double grad_clip, bool bf16,
                            GradientSync* sync) {
    DpoStepStats stats;
    // Counts over every rank's share of the step (one small all-reduce): the loss is a mean over
    // the step's pairs, wherever they were scored.
    torch::Tensor counts = torch::zeros({4}, torch::kFloat64);
    for (const auto& mb : micro_batches) {
        counts[0] += static_cast<double>(mb.groups);
        counts[1] += static_cast<double>(mb.pairs);
        counts[2] += static_cast<double>(mb.inputs.size(0));
        counts[3] += static_cast<double>(mb.tokens);
    }
    if (sync) sync->sum(counts);
    stats.groups = static_cast<int64_t>(counts[0].item<double>());
    const double pairs = std::max(1.0, counts[1].item<double>());
    stats.rows = static_cast<int64_t>(counts[2].item<double>());
    stats.tokens = static_cast<int64_t>(counts[3].item<double>());

    const auto device = reference.device();
    torch::Tensor sums = torch::zeros({5}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    for (size_t m = 0; m < micro_batches.size(); ++m) {
        const auto p = batch_pair_losses(policy, micro_batches[m], reference, cfg, bf16);
        const auto loss = p.losses.sum() / pairs;
        accumulate_backward(loss, sync, /*last=*/m + 1 == micro_batches.size());
        sums += rl::dpo_metric_sums(p);
    }
    if (sync) {
        sync->finish();
        sync->sum(sums);
    }
    // The optimizer skips a non-finite update on its own: the check can wait for the one sync.
    const torch::Tensor norm = optimizer.update(lr, grad_clip);
    const auto host = torch::cat({sums, norm.to(device, torch::kFloat64).reshape({1})}).cpu();
    stats.metrics = rl::dpo_metrics(host.narrow(0, 0, 5));
    stats.grad_norm = host[5].item<double>();
    if (!std::isfinite(stats.metrics.loss) || !std::isfinite(stats.grad_norm)) {
        throw Error((std::isfinite(stats.metrics.loss) ? "gradient norm became " + std::to_string(stats.grad_norm)
                                                       : "DPO loss became " + std::to_string(stats.metrics.loss)),
                    "training", "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    return stats;
}

rl::DpoMetrics dpo_eval(GptImpl& policy, const std::vector<DpoBatch>& batches, const torch::Tensor& reference,
                        const DpoConfig& cfg, bool bf16) {
    EvalModeGuard eval_mode(policy);
    torch::NoGradGuard no_grad;
    torch::Tensor sums = torch::zeros({5}, torch::TensorOptions().dtype(torch::kFloat64).device(reference.device()));
    for (const auto& b : batches) sums += rl::dpo_metric_sums(batch_pair_losses(policy, b, reference, cfg, bf16));
    return rl::dpo_metrics(sums);
}

}  // namespace rlhf
