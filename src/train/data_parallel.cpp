#include "rlhf/train/data_parallel.h"

#include <torch/torch.h>

#include "rlhf/core/error.h"

namespace rlhf {

std::vector<uint64_t> my_micro_batches(uint64_t first_index, int accum_steps, const Distributed& dist) {
    const int share = accum_steps / dist.world_size();
    std::vector<uint64_t> out;
    for (int j = 0; j < share; ++j) out.push_back(first_index + static_cast<uint64_t>(dist.rank() * share + j));
    return out;
}

void check_accum_divides(int accum_steps, const Distributed& dist, const std::string& config_source) {
    if (accum_steps % dist.world_size() == 0) return;
    throw Error("train.grad_accum_steps = " + std::to_string(accum_steps) + " micro-batches per step cannot be shared by " +
                    std::to_string(dist.world_size()) + " ranks",
                config_source + ": train.grad_accum_steps",
                "make it a multiple of the world size (the global batch is batch_size × grad_accum_steps, "
                "each rank runs grad_accum_steps / world_size of them)");
}

void broadcast_module(torch::nn::Module& module, const Distributed& dist) {
    if (!dist.active()) return;
    torch::NoGradGuard no_grad;
    for (auto& p : module.parameters()) dist.broadcast_from_main(p);
    for (auto& b : module.buffers()) dist.broadcast_from_main(b);
}

struct GradientSync::Bucket {
    torch::Tensor flat;  // (numel,) the bucket's gradients end to end
    size_t count = 0, ready = 0;
    Distributed::Pending pending;
    bool launched = false;
};

GradientSync::GradientSync(const Distributed& dist, std::vector<torch::Tensor> params, int64_t bucket_bytes)
    : dist_(dist), params_(std::move(params)) {
    if (!dist_.active()) return;
    slot_.resize(params_.size());
    filled_.assign(params_.size(), 0);
    // Backward finishes the last layers first: fill buckets from the last parameter backwards, a
    // new bucket when the dtype changes or the current one is full.
    std::vector<std::vector<size_t>> members;
    int64_t bytes = 0;
    for (size_t k = params_.size(); k-- > 0;) {
        const auto& p = params_[k];
        const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
        if (members.empty() || bytes + size > bucket_bytes ||
            params_[members.back().front()].scalar_type() != p.scalar_type()) {
            members.emplace_back();
            bytes = 0;
        }
        members.back().push_back(k);
        bytes += size;
    }
    for (size_t b = 0; b < members.size(); ++b) {
        auto bucket = std::make_unique<Bucket>();
        int64_t offset = 0;
        for (size_t k : members[b]) {
            slot_[k] = {b, offset};
            offset += params_[k].numel();
        }
        bucket->count = members[b].size();
        bucket->flat = torch::zeros({offset}, params_[members[b].front()].options().requires_grad(false));
        buckets_.push_back(std::move(bucket));
    }
    for (size_t k = 0; k < params_.size(); ++k) {
        // The hook sees the gradient of the current backward before it is added to .grad (a
        // parameter used twice, like the tied embedding, gets one call with the sum).
        hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& grad) { on_grad(k, grad); }));
    }
}

GradientSync::~GradientSync() {
    for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientSync::arm() {
    if (!dist_.active()) return;
    armed_ = true;
}

void GradientSync::on_grad(size_t k, const torch::Tensor& grad) {
    if (!armed_ || filled_[k]) return;
    const auto& p = params_[k];
    const auto [b, offset] = slot_[k];
    auto dst = buckets_[b]->flat.narrow(0, offset, p.numel());
    torch::NoGradGuard no_grad;
    if (p.grad().defined()) {
        torch::add_out(dst, p.grad().reshape({-1}), grad.reshape({-1}));  // earlier micro-batches + this one
    } else {
        dst.copy_(grad.reshape({-1}));
    }
    filled_[k] = 1;
    buckets_[b]->ready += 1;
    launch_ready();
}

void GradientSync::fill_from_grad(size_t k) {
    const auto& p = params_[k];
    const auto [b, offset] = slot_[k];
    auto dst = buckets_[b]->flat.narrow(0, offset, p.numel());
    if (p.grad().defined()) {
        dst.copy_(p.grad().reshape({-1}));
    } else {
        dst.zero_();  // no gradient here: it may still have one on another rank
    }
    filled_[k] = 1;
    buckets_[b]->ready += 1;
}

void GradientSync::launch_ready() {
    while (next_launch_ < buckets_.size() && buckets_[next_launch_]->ready == buckets_[next_launch_]->count) {
        auto& bucket = *buckets_[next_launch_++];
        bucket.pending = dist_.all_reduce_sum_async(bucket.flat);
        bucket.launched = true;
    }
}

void GradientSync::finish() {
    if (!dist_.active()) return;
    armed_ = false;
    torch::NoGradGuard no_grad;
    // Parameters without a gradient in the last backward (unused there) go in as they are.
    for (size_t k = 0; k < params_.size(); ++k) {
        if (!filled_[k]) fill_from_grad(k);
    }
    launch_ready();
    for (auto& bucket : buckets_) {
        bucket->pending.wait();
        bucket->launched = false;
        bucket->ready = 0;
    }
    for (size_t k = 0; k < params_.size(); ++k) {
        auto& p = params_[k];
        const auto [b, offset] = slot_[k];
        auto sum = buckets_[b]->flat.narrow(0, offset, p.numel()).view(p.sizes());
        if (p.grad().defined()) {
            p.mutable_grad().copy_(sum);
        } else {
            p.mutable_grad() = sum.clone();
        }
        filled_[k] = 0;
    }
    next_launch_ = 0;
}

void accumulate_backward(const torch::Tensor& loss, GradientSync* sync, bool last) {
    if (sync && last) sync->arm();
    loss.backward();
}

}  // namespace rlhf
