#include "rlhf/train/lm_step.h"

#include <torch/torch.h>

#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"

namespace rlhf {

namespace {
torch::Tensor batch_logits(GptImpl& model, const LmBatch& b) {
    AttentionContext ctx;
    ctx.position_ids = b.position_ids;
    ctx.segment_ids = b.segment_ids;
    return model.logits(model.forward(b.inputs, ctx));  // (B, T, V)
}
}  // namespace

torch::Tensor lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
    // Cross-entropy in fp32 even under autocast: the softmax over V is where bf16 loses most.
    return torch::nn::functional::cross_entropy(
        logits.to(torch::kFloat32), targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum));
}

double lm_accumulate_gradients(GptImpl& model, const std::vector<LmBatch>& micro_batches, bool bf16,
                               int64_t* targets_out) {
    int64_t total = 0;
    for (const auto& mb : micro_batches) total += mb.targets.ne(kIgnoreIndex).sum().item<int64_t>();
    if (targets_out) *targets_out = total;
    if (total == 0) return 0.0;
    const torch::Device device = model.transformer->wte->weight.device();
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    for (const auto& mb : micro_batches) {
        torch::Tensor loss;
        {
            AutocastGuard autocast(bf16, device.type());
            auto logits = batch_logits(model, mb);
            loss = lm_loss_sum(logits.view({-1, logits.size(-1)}), mb.targets.reshape({-1})) / static_cast<double>(total);
        }
        loss.backward();
        loss_sum += loss.detach();
    }
    return loss_sum.item<double>();  // one host sync per step, not per micro-batch
}

StepStats lm_train_step(GptImpl& model, AdamW& optimizer, const std::vector<LmBatch>& micro_batches, double lr,
                        double grad_clip, bool bf16) {
    StepStats stats;
    stats.loss = lm_accumulate_gradients(model, micro_batches, bf16, &stats.targets);
    if (!std::isfinite(stats.loss)) {
        throw Error("loss became " + std::to_string(stats.loss), "training",
                    "lower optim.lr, raise optim.lr_warmup_steps, or keep optim.grad_clip > 0");
    }
    stats.grad_norm = optimizer.step(lr, grad_clip);
    return stats;
}

double lm_eval_loss(GptImpl& model, const std::vector<LmBatch>& batches, bool bf16) {
    const bool was_training = model.is_training();
    model.eval();
    torch::NoGradGuard no_grad;
    const torch::Device device = model.transformer->wte->weight.device();
    double loss_sum = 0.0;
    int64_t count = 0;
    for (const auto& b : batches) {
        AutocastGuard autocast(bf16, device.type());
        auto logits = batch_logits(model, b);
        loss_sum += lm_loss_sum(logits.view({-1, logits.size(-1)}), b.targets.reshape({-1})).item<double>();
        count += b.targets.ne(kIgnoreIndex).sum().item<int64_t>();
    }
    model.train(was_training);
    return count > 0 ? loss_sum / static_cast<double>(count) : NAN;
}

}  // namespace rlhf
