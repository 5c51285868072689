// Data parallelism over the process group of core/distributed.h: every rank holds the whole model,
// takes its share of each step's micro-batches, and the gradients are SUMMED over ranks before
// the optimizer step. Each rank divides its loss by the step's GLOBAL count (target tokens,
// groups), so N ranks × B rows give the update one process gives with N·B rows.
//
// The summing overlaps the backward pass: a hook on each parameter copies its finished gradient
// into a bucket (runtime.dist_bucket_mb, 25 MiB by default; parameters in reverse order, the order backward produces them), and a
// full bucket starts its all-reduce while backward goes on. Buckets start in index order on every
// rank, so the collectives always match. Only the last micro-batch's backward communicates.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "rlhf/core/distributed.h"

namespace rlhf {

// Which of a step's `accum_steps` micro-batches (global stream indices first_index,
// first_index + 1, …) this rank draws: a contiguous share of accum_steps / world_size. The
// sampler stays a pure function of (seed, global index), so the union over ranks is exactly what
// one process would draw. accum_steps must divide by the world size (config validation says so).
std::vector<uint64_t> my_micro_batches(uint64_t first_index, int accum_steps, const Distributed& dist);

// One-line rlhf::Error unless train.grad_accum_steps divides by the world size.
void check_accum_divides(int accum_steps, const Distributed& dist, const std::string& config_source);

// Makes every rank start from rank 0's weights (parameters and buffers).
void broadcast_module(torch::nn::Module& module, const Distributed& dist);

inline int64_t mib_to_bytes(double mib) { return static_cast<int64_t>(mib * 1024 * 1024); }

class GradientSync {
public:
    // `params`: the trained parameters (requires_grad), all on one device.
    GradientSync(const Distributed& dist, std::vector<torch::Tensor> params, int64_t bucket_bytes = 25 << 20);
    ~GradientSync();
    GradientSync(const GradientSync&) = delete;
    GradientSync& operator=(const GradientSync&) = delete;

    const Distributed& dist() const { return dist_; }
    bool active() const { return dist_.active(); }

    // Call just before the LAST micro-batch's backward: from now on each finished gradient goes
    // into its bucket and full buckets start their all-reduce.
    void arm();
    // After that backward: starts what is left, waits for all, and leaves the sums in .grad.
    void finish();

    // A number summed over ranks (loss sums, token counts): `t` is updated in place.
    void sum(torch::Tensor& t) const { dist_.all_reduce_sum(t); }

private:
    struct Bucket;
    void on_grad(size_t param, const torch::Tensor& grad);
    void launch_ready();
    void fill_from_grad(size_t param);

    const Distributed& dist_;
    std::vector<torch::Tensor> params_;
    std::vector<std::unique_ptr<Bucket>> buckets_;
    std::vector<std::pair<size_t, int64_t>> slot_;  // per param: bucket index, offset in it
    std::vector<char> filled_;                      // per param, this step
    std::vector<unsigned> hooks_;                   // per param, to remove the hook again
    size_t next_launch_ = 0;
    bool armed_ = false;
};

// One micro-batch's backward in a step's gradient accumulation. With `sync`, the rank's last
// backward of the step (`last`) sends each gradient to the other ranks as soon as it is ready.
void accumulate_backward(const torch::Tensor& loss, GradientSync* sync, bool last);

}  // namespace rlhf
