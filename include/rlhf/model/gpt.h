// The one GPT module every stage uses (policy, reference, reward model and critic trunks).
//
//   GPT-2 layout (arch: gpt2): pre-LN blocks, learned positions, GELU MLP, final LayerNorm.
//   GPT-1 layout (arch: gpt1): post-LN blocks, no final LayerNorm.
//   Llama layout (arch: llama; Llama-3, Qwen2/2.5/3, SmolLM2): pre-RMSNorm blocks, rotary
//     positions (no position table), grouped-query attention (n_kv_head), optional q/k/v biases
//     (Qwen2) and per-head q/k RMSNorm (Qwen3), SwiGLU MLP, final RMSNorm, tied or own lm_head.
//   The LM head is the token embedding (one tensor) unless model.tie_embeddings is false.
//   Parameter names follow Hugging Face GPT-2: transformer.h.0.attn.c_attn.weight, …
//   (our Linear weights are (out, in); HF's Conv1D stores the transpose). A llama block keeps the
//   same tree: c_attn holds [q | k | v] rows, mlp.c_fc holds [gate | up] rows (one matmul each);
//   checkpoint/hf_llama.cpp splits them into Hugging Face's q_proj, k_proj, … names.
//
// Shapes: B batch, T new tokens, S keys attended (cache + new), C n_embd, nh query heads, nkv
// key/value heads, hs head width (C/nh unless head_dim is set), I the MLP width, V vocab.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "rlhf/config/config.h"
#include "rlhf/model/kv_cache.h"
#include "rlhf/model/lora.h"

namespace rlhf {

// What the attention layers need beyond the token ids. All optional: the default is a plain
// causal forward over positions 0..T-1 (training).
struct AttentionContext {
    torch::Tensor position_ids;  // (B, T) int64; undefined = cache->length + 0..T-1
    torch::Tensor key_mask;      // (B, S) bool, true = a real token; undefined = no padding
    KvCache* cache = nullptr;    // incremental decoding: read and extend this cache
    torch::Tensor segment_ids;   // (B, T) int64: packed examples; a token sees only its own segment
};

// LayerNorm with an optional bias (torch::nn::LayerNorm has both or neither), or RMSNorm
// (llama: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias).
struct NormImpl : torch::nn::Module {
    NormImpl(int64_t width, bool bias, bool rms, double eps);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
    bool rms;
    double eps;
};
TORCH_MODULE(Norm);

// What every block's attention needs beside x: which keys each query may see, the cache, and the
// rotary tables (llama; undefined for GPT-2).
struct BlockInputs {
    torch::Tensor allowed;   // (B or 1, 1, T, S) bool, or undefined for plain causal attention
    KvCache* cache = nullptr;
    torch::Tensor cos, sin;  // (B or 1, 1, T, hs) rotary tables for the new positions
    bool adapters = true;    // model.lora's adapters add their updates (off: the base model)
};

struct CausalSelfAttentionImpl : torch::nn::Module {
    CausalSelfAttentionImpl(const ModelConfig& cfg, int64_t layer_index);
    torch::Tensor forward(const torch::Tensor& x, const BlockInputs& in);  // (B, T, C) -> (B, T, C)

    torch::nn::Linear c_attn{nullptr};  // (C) -> ((nh + 2 nkv) hs): q, k, v for all heads
    torch::nn::Linear c_proj{nullptr};  // (nh hs) -> (C), a residual projection
    Norm q_norm{nullptr}, k_norm{nullptr};  // (hs) per head, Qwen3 only
    LoraSlots qkv_lora, o_lora;             // model.lora's adapters on c_attn (q, k, v) and c_proj (o)
    torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};
    int64_t n_head, n_kv_head, head_dim, layer_index;
    bool rotary;
    double dropout;
};
TORCH_MODULE(CausalSelfAttention);

struct MlpImpl : torch::nn::Module {
    explicit MlpImpl(const ModelConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x, bool adapters = true);  // (B, T, C) -> (B, T, C)
    torch::nn::Linear c_fc{nullptr};    // (C) -> (I), or (2I) for SwiGLU's [gate | up]
    torch::nn::Linear c_proj{nullptr};  // (I) -> (C), a residual projection
    torch::nn::Dropout dropout{nullptr};
    LoraSlots fc_lora, proj_lora;       // model.lora's adapters: fc or gate/up on c_fc, proj or down on c_proj
    std::string approximate;  // "none" (erf GELU) or "tanh" (model.activation: gelu_tanh)
    bool swiglu;              // llama: silu(gate) * up
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
    BlockImpl(const ModelConfig& cfg, int64_t layer_index);
    torch::Tensor forward(const torch::Tensor& x, const BlockInputs& in);
    Norm ln_1{nullptr}, ln_2{nullptr};
    CausalSelfAttention attn{nullptr};
    Mlp mlp{nullptr};
    bool pre_ln;
};
TORCH_MODULE(Block);

// The "transformer." prefix of the HF names.
struct GptTransformerImpl : torch::nn::Module {
    explicit GptTransformerImpl(const ModelConfig& cfg);
    torch::nn::Embedding wte{nullptr};  // (V, C), also the LM head when tied
    torch::nn::Embedding wpe{nullptr};  // (block_size, C); gpt2 and gpt1 only
    torch::nn::Dropout drop{nullptr};
    torch::nn::ModuleList h{nullptr};   // n_layer Blocks
    Norm ln_f{nullptr};                 // gpt2 and llama
};
TORCH_MODULE(GptTransformer);

struct GptImpl : torch::nn::Module {
    // cfg.vocab_size must be resolved (> 0) by the caller.
    explicit GptImpl(const ModelConfig& cfg);

    // idx: (B, T) int64 token ids -> final hidden states (B, T, C).
    torch::Tensor forward(const torch::Tensor& idx, const AttentionContext& ctx = {});
    // hidden: (..., C) -> logits (..., V) through the LM head (the tied embedding, or lm_head).
    torch::Tensor logits(const torch::Tensor& hidden);
    // The LM head's weight (V, C): wte's, or lm_head's when untied.
    torch::Tensor head_weight() const;

    // A KV cache sized for this model: `batch` sequences, at most `capacity` <= block_size positions.
    KvCache make_cache(int64_t batch, int64_t capacity) const;

    // Re-draw every weight: N(0, 0.02), residual projections N(0, 0.02/sqrt(2*n_layer)), biases
    // 0, norm gains 1 (GPT-2 paper; nanoGPT). Uses the global LibTorch generator.
    void init_weights();

    int64_t num_parameters() const;  // the tied weight counted once

    // Activation checkpointing (model/activation_checkpoint.h) in training forwards with gradients:
    // segments of `blocks` blocks keep only their input; 0 = off.
    void set_activation_checkpointing(int64_t blocks) { checkpoint_blocks_ = blocks; }
    int64_t activation_checkpointing() const { return checkpoint_blocks_; }

    // model.lora (model/lora.h): whether this model has adapters, and whether forwards use them.
    // Off, the model is its base: a LoRA run's reference policy without a second copy.
    bool has_adapters() const { return cfg_.lora.rank > 0; }
    void set_adapters_enabled(bool on) { adapters_enabled_ = on; }
    bool adapters_enabled() const { return adapters_enabled_; }

    const ModelConfig& config() const { return cfg_; }
    GptTransformer transformer{nullptr};
    torch::nn::Linear lm_head{nullptr};  // (C) -> (V); only when model.tie_embeddings is false

private:
    ModelConfig cfg_;
    torch::Tensor inv_freq_;  // (hs/2) rotary frequencies (llama), kept off the parameter list
    int64_t checkpoint_blocks_ = 0;
    bool adapters_enabled_ = true;
};
TORCH_MODULE(Gpt);

// Forwards through `model` inside this scope see its base weights only (no adapters).
class AdaptersOff {
public:
    explicit AdaptersOff(GptImpl& model) : model_(model), was_(model.adapters_enabled()) { model.set_adapters_enabled(false); }
    ~AdaptersOff() { model_.set_adapters_enabled(was_); }
    AdaptersOff(const AdaptersOff&) = delete;
    AdaptersOff& operator=(const AdaptersOff&) = delete;

private:
    GptImpl& model_;
    bool was_;
};

// A copy of `model` whose vocabulary is `new_vocab` (>= its own) rows: existing weights are
// copied; each new embedding (and untied head) row is the mean of rows [0, mean_rows) (the real
// tokens), so a new token starts as an average token and predictions for old tokens barely move.
Gpt grow_vocabulary(GptImpl& model, int64_t new_vocab, int64_t mean_rows);

// Parameters of a GPT with this config, by formula (tied embedding counted once).
int64_t gpt_parameter_count(const ModelConfig& cfg);

// Rotary frequencies (hs/2) fp32 for a llama model: rope_theta^(-2i/hs), then rope_scaling's
// (Hugging Face's "default" and "llama3" rope types).
torch::Tensor rotary_inv_freq(const ModelConfig& cfg);

}  // namespace rlhf
