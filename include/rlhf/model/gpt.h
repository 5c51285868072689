// The one GPT module every stage uses (policy, reference, reward model and critic trunks).
//
//   GPT-2 layout (arch: gpt2): pre-LN blocks, learned positions, GELU MLP, final LayerNorm.
//   GPT-1 layout (arch: gpt1): post-LN blocks, no final LayerNorm.
//   The LM head IS the token embedding (one tensor): logits = hidden @ wte^T.
//   Parameter names follow Hugging Face GPT-2: transformer.h.0.attn.c_attn.weight, …
//   (our Linear weights are (out, in); HF's Conv1D stores the transpose).
//
// Shapes: B batch, T new tokens, S keys attended (cache + new), C n_embd, nh heads, hs C/nh,
// V vocab.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "rlhf/config/config.h"
#include "rlhf/model/kv_cache.h"

namespace rlhf {

// What the attention layers need beyond the token ids. All optional: the default is a plain
// causal forward over positions 0..T-1 (training).
struct AttentionContext {
    torch::Tensor position_ids;  // (B, T) int64; undefined = cache->length + 0..T-1
    torch::Tensor key_mask;      // (B, S) bool, true = a real token; undefined = no padding
    KvCache* cache = nullptr;    // incremental decoding: read and extend this cache
    torch::Tensor segment_ids;   // (B, T) int64: packed examples; a token sees only its own segment
};

// LayerNorm with an optional bias (torch::nn::LayerNorm has both or neither).
struct LayerNormImpl : torch::nn::Module {
    LayerNormImpl(int64_t n_embd, bool bias);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
};
TORCH_MODULE(LayerNorm);

struct CausalSelfAttentionImpl : torch::nn::Module {
    CausalSelfAttentionImpl(const ModelConfig& cfg, int64_t layer_index);
    // x: (B, T, C); allowed: (B or 1, 1, T, S) bool, or undefined for plain causal attention
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed, KvCache* cache);

    torch::nn::Linear c_attn{nullptr};  // (C) -> (3C): q, k, v for all heads
    torch::nn::Linear c_proj{nullptr};  // (C) -> (C), a residual projection
    torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};
    int64_t n_head, n_embd, layer_index;
    double dropout;
};
TORCH_MODULE(CausalSelfAttention);

struct MlpImpl : torch::nn::Module {
    explicit MlpImpl(const ModelConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)
    torch::nn::Linear c_fc{nullptr};    // (C) -> (4C)
    torch::nn::Linear c_proj{nullptr};  // (4C) -> (C), a residual projection
    torch::nn::Dropout dropout{nullptr};
    std::string approximate;  // "none" (erf GELU) or "tanh" (model.activation: gelu_tanh)
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
    BlockImpl(const ModelConfig& cfg, int64_t layer_index);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed, KvCache* cache);
    LayerNorm ln_1{nullptr}, ln_2{nullptr};
    CausalSelfAttention attn{nullptr};
    Mlp mlp{nullptr};
    bool pre_ln;
};
TORCH_MODULE(Block);

// The "transformer." prefix of the HF names.
struct GptTransformerImpl : torch::nn::Module {
    explicit GptTransformerImpl(const ModelConfig& cfg);
    torch::nn::Embedding wte{nullptr};  // (V, C), also the LM head
    torch::nn::Embedding wpe{nullptr};  // (block_size, C)
    torch::nn::Dropout drop{nullptr};
    torch::nn::ModuleList h{nullptr};   // n_layer Blocks
    LayerNorm ln_f{nullptr};            // gpt2 only
};
TORCH_MODULE(GptTransformer);

struct GptImpl : torch::nn::Module {
    // cfg.vocab_size must be resolved (> 0) by the caller.
    explicit GptImpl(const ModelConfig& cfg);

    // idx: (B, T) int64 token ids -> final hidden states (B, T, C).
    torch::Tensor forward(const torch::Tensor& idx, const AttentionContext& ctx = {});
    // hidden: (..., C) -> logits (..., V) through the tied embedding.
    torch::Tensor logits(const torch::Tensor& hidden);

    // A KV cache sized for this model: `batch` sequences, at most `capacity` <= block_size positions.
    KvCache make_cache(int64_t batch, int64_t capacity) const;

    // Re-draw every weight: N(0, 0.02), residual projections N(0, 0.02/sqrt(2*n_layer)), biases
    // 0, LayerNorm gains 1 (GPT-2 paper; nanoGPT). Uses the global LibTorch generator.
    void init_weights();

    int64_t num_parameters() const;  // the tied weight counted once

    const ModelConfig& config() const { return cfg_; }
    GptTransformer transformer{nullptr};

private:
    ModelConfig cfg_;
};
TORCH_MODULE(Gpt);

// A copy of `model` whose vocabulary is `new_vocab` (>= its own) rows: existing weights are
// copied; each new embedding row is the mean of rows [0, mean_rows) (the real tokens), so a new
// token starts as an average token and the tied head's predictions for old tokens barely move.
Gpt grow_vocabulary(GptImpl& model, int64_t new_vocab, int64_t mean_rows);

// Parameters of a GPT with this config, by formula (tied embedding counted once).
int64_t gpt_parameter_count(const ModelConfig& cfg);

}  // namespace rlhf
