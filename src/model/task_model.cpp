#include "rlhf/model/task_model.h"

#include <torch/torch.h>

#include "rlhf/core/precision.h"

namespace rlhf {

int64_t task_head_outputs(TaskType type, int num_classes) {
    return type == TaskType::MultipleChoice ? 1 : num_classes;
}

TaskModelImpl::TaskModelImpl(Gpt trunk, TaskType type_, int num_classes, double dropout)
    : gpt(std::move(trunk)), type(type_), outputs(task_head_outputs(type_, num_classes)) {
    transformer = register_module("transformer", gpt->transformer);
    head_dropout = register_module("head_dropout", torch::nn::Dropout(dropout));
    task_head = register_module("task_head", torch::nn::Linear(gpt->config().n_embd, outputs));
    {
        torch::NoGradGuard no_grad;
        torch::nn::init::normal_(task_head->weight, 0.0, 0.02);
        torch::nn::init::zeros_(task_head->bias);
    }
    task_head->to(gpt->transformer->wte->weight.device());
}

TaskModelImpl::Output TaskModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& extract_pos,
                                             int64_t rows_per_example) {
    Output out;
    out.hidden = gpt->forward(ids);  // right padding: plain causal attention is exact for real tokens
    const int64_t R = ids.size(0), C = out.hidden.size(2);
    auto h = out.hidden.gather(1, extract_pos.view({R, 1, 1}).expand({R, 1, C})).squeeze(1);  // (R, C)
    // The head in fp32 even under autocast: a regression on 0-5 wants more than bf16's 3 digits.
    NoAutocastGuard fp32_head;
    h = head_dropout(h.to(torch::kFloat));
    switch (type) {
        case TaskType::Similarity: {
            auto pair = h.view({R / 2, 2, C}).sum(1);  // (B, C): the two orders added
            auto s = task_head(pair);                   // (B, N)
            out.scores = outputs == 1 ? s.squeeze(1) : s;
            break;
        }
        case TaskType::MultipleChoice:
            out.scores = task_head(h).view({R / rows_per_example, rows_per_example});  // (B, K)
            break;
        default:
            out.scores = task_head(h);  // (B, N)
    }
    return out;
}

int64_t TaskModelImpl::num_parameters() const {
    return gpt->num_parameters() + task_head->weight.numel() + task_head->bias.numel();
}

}  // namespace rlhf
