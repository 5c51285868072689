#include "rlhf/train/lm_step.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"  // to_device

namespace rlhf {

torch::Tensor lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
    // Cross-entropy in fp32 even under autocast: the softmax over V is where bf16 loses most.
    return torch::nn::functional::cross_entropy(
        logits.to(torch::kFloat32), targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum));
}

torch::Tensor lm_batch_loss_sum(GptImpl& model, const LmBatch& batch, bool bf16) {
    AutocastGuard autocast(bf16, batch.inputs.device().type());
    AttentionContext ctx;
    ctx.position_ids = batch.position_ids;
    ctx.segment_ids = batch.segment_ids;
    auto logits = model.logits(model.forward(batch.inputs, ctx));  // (B, T, V)
    return lm_loss_sum(logits.view({-1, logits.size(-1)}), batch.targets.reshape({-1}));
}

LmBatch lm_batch_from_windows(const torch::Tensor& windows, const torch::Device& device) {
    using torch::indexing::Slice;
    auto w = to_device(windows, device);  // (B, T+1)
    return {w.index({Slice(), Slice(0, -1)}).contiguous(), w.index({Slice(), Slice(1, torch::indexing::None)}).contiguous(), {}, {}};
}

namespace {
struct AccumulatedLoss {
    torch::Tensor loss;     // 0-dim fp64 on the model's device: mean CE per target over the step
    torch::Tensor targets;  // 0-dim int64 on the model's device
};

// Forward + backward over every micro-batch without reading anything back to the host, so that
// on a GPU the host runs ahead, queueing the next kernels while the current ones run.
// With `sync`, this rank's micro-batches are its share of the step: the divisor is the target
// count over ALL ranks, the last backward sums the gradients over ranks, and so does the loss.
AccumulatedLoss accumulate(GptImpl& model, const std::vector<LmBatch>& micro_batches, bool bf16, GradientSync* sync) {
    const torch::Device device = model.transformer->wte->weight.device();
    torch::Tensor targets = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    for (const auto& mb : micro_batches) targets += mb.targets.ne(kIgnoreIndex).sum();
    if (sync) sync->sum(targets);
    // A step with no target at all (every token masked) has loss 0 and zero gradients.
    const torch::Tensor divisor = targets.clamp_min(1).to(torch::kFloat32);
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    for (size_t m = 0; m < micro_batches.size(); ++m) {
        const auto& mb = micro_batches[m];
        const torch::Tensor loss = lm_batch_loss_sum(model, mb, bf16) / divisor;
        accumulate_backward(loss, sync, /*last=*/m + 1 == micro_batches.size());
        loss_sum += loss.detach();
    }
    if (sync) {
        sync->finish();
        sync->sum(loss_sum);
    }
    return {loss_sum, targets};
}
}  // namespace

double lm_accumulate_gradients(GptImpl& model, const std::vector<LmBatch>& micro_batches, bool bf16,
                               int64_t* targets_out) {
    AccumulatedLoss acc = accumulate(model, micro_batches, bf16, nullptr);
    if (targets_out) *targets_out = acc.targets.item<int64_t>();
    return acc.loss.item<double>();
}

StepStats lm_train_step(GptImpl& model, AdamW& optimizer, const std::vector<LmBatch>& micro_batches, double lr,
                        double grad_clip, bool bf16, GradientSync* sync) {
    AccumulatedLoss acc = accumulate(model, micro_batches, bf16, sync);
    // The optimizer skips the update on its own when the gradient norm is not finite, so the
    // check below can wait for the step's single host sync and still find the weights intact.
    const torch::Tensor norm = optimizer.update(lr, grad_clip);
    const torch::Tensor host =
        torch::stack({acc.loss, norm.to(acc.loss.device(), torch::kFloat64), acc.targets.to(torch::kFloat64)}).cpu();
    StepStats stats;
    stats.loss = host[0].item<double>();
    stats.grad_norm = host[1].item<double>();
    stats.targets = static_cast<int64_t>(host[2].item<double>());
    if (!std::isfinite(stats.loss) || !std::isfinite(stats.grad_norm)) {
        throw Error((std::isfinite(stats.loss) ? "gradient norm became " + std::to_string(stats.grad_norm)
                                               : "loss became " + std::to_string(stats.loss)),
                    "training", "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    return stats;
}

double lm_eval_loss(GptImpl& model, const std::vector<LmBatch>& batches, bool bf16) {
    EvalModeGuard eval_mode(model);
    torch::NoGradGuard no_grad;
    double loss_sum = 0.0;
    int64_t count = 0;
    for (const auto& b : batches) {
        loss_sum += lm_batch_loss_sum(model, b, bf16).item<double>();
        count += b.targets.ne(kIgnoreIndex).sum().item<int64_t>();
    }
    return count > 0 ? loss_sum / static_cast<double>(count) : NAN;
}

}  // namespace rlhf
