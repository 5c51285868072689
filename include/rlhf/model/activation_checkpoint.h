// Activation checkpointing (train.activation_checkpointing): a segment of blocks keeps only its
// input during the forward, and runs again in the backward to rebuild what it needs (Chen et al.
// 2016, "Training deep nets with sublinear memory cost"). Memory: the segments' inputs plus one
// segment's activations, instead of every block's; time: one more forward of the blocks.
//
// The recomputation sees what the forward saw: the same random generator state (dropout draws
// the same masks) and the same autocast state, so gradients equal the run without it.
#pragma once

#include <torch/types.h>

#include <functional>

namespace rlhf {

// y = segment(x), its activations dropped and recomputed in the backward. Gradients reach the
// parameters `segment` uses (accumulated into their .grad) and x. `replay_rng`: restore the
// default generator of x's device for the recomputation (needed when the segment has dropout).
torch::Tensor checkpointed(const std::function<torch::Tensor(const torch::Tensor&)>& segment, const torch::Tensor& x,
                           bool replay_rng);

}  // namespace rlhf
