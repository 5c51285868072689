// LoRA (Hu et al. 2021): a projection's weight W (out, in) stays frozen and a low-rank update is
// trained beside it,
//     y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,      A (r, in), B (rows, r), B = 0 at start,
// so a fresh adapter leaves the model's function unchanged and training touches r (in + rows)
// numbers per projection instead of in x out.
//
// Targets (model.lora.targets) name projections, not tensors: our q, k and v share one matmul
// (attn.c_attn holds [q | k | v] rows) and llama's gate and up share mlp.c_fc ([gate | up]), so an
// adapter adds to its target's block of output rows only. q k v o on both archs; gate up down on
// llama; fc proj on GPT-2's MLP. An adapter lives beside its projection's module and is named
// after its target: transformer.h.0.attn.lora_q.lora_A, … (lora_A / lora_B as in PEFT).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

struct LoraAdapterImpl : torch::nn::Module {
    // A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform with a = sqrt(5)), B = 0.
    LoraAdapterImpl(int64_t in, int64_t rows, const LoraConfig& cfg);
    torch::Tensor delta(const torch::Tensor& x) const;  // (..., in) -> (..., rows), scaled
    void reset();                                 // A and B drawn again as above
    torch::Tensor lora_A, lora_B;                 // (r, in), (rows, r)
    double scale, dropout;
};
TORCH_MODULE(LoraAdapter);

// Where a target's rows are: the projection (a Linear of the block, "attn.c_attn"), the first
// row and the row count of its block, and the projection's input width. An Error naming
// model.lora.targets when the arch has no such projection.
struct LoraPlace {
    std::string module;  // "attn" or "mlp": the adapter is registered there
    std::string linear;  // "c_attn", "c_proj" or "c_fc"
    int64_t row_offset = 0, rows = 0, in = 0;
};
LoraPlace lora_place(const ModelConfig& cfg, const std::string& target);

// The adapters on one projection, each with the first of its rows.
struct LoraSlot {
    LoraAdapter adapter;
    int64_t row_offset;
};
using LoraSlots = std::vector<LoraSlot>;

// Registers model.lora's adapters of `module_name` ("attn" or "mlp") on `owner`, for the targets
// whose projection is `linear`; none when model.lora.rank is 0.
LoraSlots make_lora_slots(torch::nn::Module& owner, const ModelConfig& cfg, const std::string& module_name,
                          const std::string& linear);

// y (..., out) plus each adapter's delta of x on its rows (a new tensor; y is not written).
torch::Tensor add_adapters(const torch::Tensor& y, const torch::Tensor& x, const LoraSlots& slots);

// An adapter tensor's name (it holds ".lora_").
bool is_lora_tensor(const std::string& name);
// requires_grad off for every parameter that is not an adapter's: what a LoRA run trains.
void freeze_all_but_adapters(torch::nn::Module& model);
// Every adapter to A random, B = 0 (the function of the model without them).
void reset_adapters(torch::nn::Module& model);

// Merges the adapters among `tensors` (a model's by name, any prefix) into their projections'
// weights, W[rows] += (alpha / r) B A in fp32, and removes them. `cfg` is the model's (its lora
// section gives alpha / r). Returns how many adapters were merged.
int merge_lora_tensors(std::map<std::string, torch::Tensor>& tensors, const ModelConfig& cfg);

}  // namespace rlhf
