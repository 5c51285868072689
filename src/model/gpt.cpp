#include "rlhf/model/gpt.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/model/causal_attention.h"

namespace rlhf {

namespace F = torch::nn::functional;

// x W^T + b. A single fp32 row on CPU (batch-1 decoding) takes the matrix-vector path: OpenBLAS
// 0.3.21's sgemm with M = 1 packs the whole weight matrix first, so gemv streams the weights
// 2-3x faster (25-35 vs 11-14 GB/s here; docs/benchmarks.md). Under bf16 autocast oneDNN's
// linear is faster still, so it keeps that path.
static torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
    if (x.numel() == x.size(-1) && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
        weight.scalar_type() == torch::kFloat32 && !autocast_active(torch::kCPU)) {
        auto y = bias.defined() ? torch::addmv(bias, weight, x.reshape({-1})) : torch::mv(weight, x.reshape({-1}));
        auto shape = x.sizes().vec();
        shape.back() = weight.size(0);
        return y.view(shape);
    }
    return F::linear(x, weight, bias);
}

static torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& layer) {
    return linear(x, layer->weight, layer->bias);
}

// ---------------------------------------------------------------------------------------------
LayerNormImpl::LayerNormImpl(int64_t n_embd, bool with_bias) {
    weight = register_parameter("weight", torch::ones({n_embd}));
    if (with_bias) bias = register_parameter("bias", torch::zeros({n_embd}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
    return torch::layer_norm(x, {weight.size(0)}, weight, bias, 1e-5);
}

// ---------------------------------------------------------------------------------------------
CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelConfig& cfg, int64_t layer)
    : n_head(cfg.n_head), n_embd(cfg.n_embd), layer_index(layer), dropout(cfg.dropout) {
    c_attn = register_module("c_attn", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 3 * n_embd).bias(cfg.bias)));
    c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_embd, n_embd).bias(cfg.bias)));
    attn_dropout = register_module("attn_dropout", torch::nn::Dropout(cfg.dropout));
    resid_dropout = register_module("resid_dropout", torch::nn::Dropout(cfg.dropout));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& allowed,
                                               KvCache* cache) {
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hs = C / n_head;
    const double p = is_training() ? dropout : 0.0;
    auto qkv = linear(x, c_attn);                                      // (B, T, 3C)
#if TORCH_VERSION_MAJOR < 2
    // Plain causal training forward on CPU: the fused kernel reads qkv and writes (B, T, C).
    if (!allowed.defined() && !cache && p == 0.0 && x.device().is_cpu() && qkv.scalar_type() != torch::kFloat64 &&
        fused_causal_attention_available()) {
        return resid_dropout(linear(fused_causal_attention(qkv, n_head), c_proj));
    }
#endif
    auto parts = qkv.split(n_embd, /*dim=*/2);                         // 3 x (B, T, C)
    auto q = parts[0].view({B, T, n_head, hs}).transpose(1, 2);        // (B, nh, T, hs)
    auto k = parts[1].view({B, T, n_head, hs}).transpose(1, 2);        // (B, nh, T, hs)
    auto v = parts[2].view({B, T, n_head, hs}).transpose(1, 2);        // (B, nh, T, hs)
    if (cache) std::tie(k, v) = cache->append(layer_index, k, v);     // (B, nh, S, hs)

    torch::Tensor y;                                                   // (B, nh, T, hs)
#if TORCH_VERSION_MAJOR >= 2
    // Fused kernels (flash / memory-efficient on GPU, flash on CPU since 2.1).
    if (allowed.defined()) y = at::scaled_dot_product_attention(q, k, v, allowed, p, /*is_causal=*/false);
    else y = at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/true);
#else
    auto mask = allowed.defined() ? allowed : torch::ones({T, T}, x.options().dtype(torch::kBool)).tril();
    auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hs)));  // (B, nh, T, S)
    att = att.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
    att = attn_dropout(torch::softmax(att, -1));
    y = torch::matmul(att, v);
#endif
    y = y.transpose(1, 2).contiguous().view({B, T, C});                // re-assemble heads
    return resid_dropout(linear(y, c_proj));
}

// ---------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(const ModelConfig& cfg) {
    c_fc = register_module("c_fc", torch::nn::Linear(torch::nn::LinearOptions(cfg.n_embd, 4 * cfg.n_embd).bias(cfg.bias)));
    c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(4 * cfg.n_embd, cfg.n_embd).bias(cfg.bias)));
    dropout = register_module("dropout", torch::nn::Dropout(cfg.dropout));
    approximate = cfg.activation == "gelu_tanh" ? "tanh" : "none";
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
    // Exact (erf) GELU by default, as nanoGPT: LibTorch 1.13's CPU tanh-GELU is 4-7x slower
    // (docs/benchmarks.md). GPT-2 used the tanh approximation (|difference| < 1e-3), and weights
    // trained with it want it back (model.activation: gelu_tanh, set by `rlhf convert --from-hf`).
    return dropout(linear(torch::gelu(linear(x, c_fc), approximate), c_proj));
}

// ---------------------------------------------------------------------------------------------
BlockImpl::BlockImpl(const ModelConfig& cfg, int64_t layer_index) : pre_ln(cfg.arch != "gpt1") {
    ln_1 = register_module("ln_1", LayerNorm(cfg.n_embd, cfg.bias));
    attn = register_module("attn", CausalSelfAttention(cfg, layer_index));
    ln_2 = register_module("ln_2", LayerNorm(cfg.n_embd, cfg.bias));
    mlp = register_module("mlp", Mlp(cfg));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& allowed, KvCache* cache) {
    if (pre_ln) {  // GPT-2: x + f(LN(x))
        auto h = x + attn(ln_1(x), allowed, cache);
        return h + mlp(ln_2(h));
    }
    auto h = ln_1(x + attn(x, allowed, cache));  // GPT-1: LN(x + f(x))
    return ln_2(h + mlp(h));
}

// ---------------------------------------------------------------------------------------------
GptTransformerImpl::GptTransformerImpl(const ModelConfig& cfg) {
    wte = register_module("wte", torch::nn::Embedding(cfg.vocab_size, cfg.n_embd));
    wpe = register_module("wpe", torch::nn::Embedding(cfg.block_size, cfg.n_embd));
    drop = register_module("drop", torch::nn::Dropout(cfg.dropout));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.n_layer; ++i) h->push_back(Block(cfg, i));
    if (cfg.arch != "gpt1") ln_f = register_module("ln_f", LayerNorm(cfg.n_embd, cfg.bias));
}

GptImpl::GptImpl(const ModelConfig& cfg) : cfg_(cfg) {
    RLHF_CHECK(cfg.vocab_size > 0, "model.vocab_size", "vocabulary size is not resolved", "load a tokenizer first");
    RLHF_CHECK(cfg.n_embd % cfg.n_head == 0, "model.n_embd", "n_embd must be divisible by n_head", "");
    transformer = register_module("transformer", GptTransformer(cfg));
    init_weights();
}

void GptImpl::init_weights() {
    torch::NoGradGuard no_grad;
    const double proj_std = 0.02 / std::sqrt(2.0 * cfg_.n_layer);  // two residual adds per block
    for (auto& item : named_parameters()) {
        const std::string& name = item.key();
        auto& p = item.value();
        const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
        if (name.find("ln_") != std::string::npos) {
            if (is_bias) p.zero_();
            else p.fill_(1.0);
        } else if (is_bias) {
            p.zero_();
        } else if (name.find("c_proj.weight") != std::string::npos) {
            p.normal_(0.0, proj_std);
        } else {
            p.normal_(0.0, 0.02);
        }
    }
}

// Which keys each query may attend to: (B or 1, 1, T, S) bool, or undefined for a plain causal
// forward without cache or padding (which then takes a fused causal path).
static torch::Tensor attention_mask(int64_t T, int64_t offset, const AttentionContext& ctx,
                                    const torch::Device& device) {
    const int64_t S = offset + T;
    const auto& key_mask = ctx.key_mask;
    if (!key_mask.defined() && !ctx.segment_ids.defined() && offset == 0) return {};
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    auto q_pos = torch::arange(offset, S, opts).view({T, 1});  // absolute index of each query
    auto k_pos = torch::arange(0, S, opts).view({1, S});
    auto allowed = k_pos.le(q_pos);                           // (T, S) causal
    if (ctx.segment_ids.defined()) {  // packing: block-diagonal causal, no attention across examples
        RLHF_CHECK(offset == 0 && !key_mask.defined(), "model", "segment ids cannot be combined with a cache or padding mask", "");
        auto same = ctx.segment_ids.unsqueeze(2).eq(ctx.segment_ids.unsqueeze(1));  // (B, T, T)
        return allowed.view({1, T, S}).logical_and(same).unsqueeze(1);              // (B, 1, T, T)
    }
    if (!key_mask.defined()) return allowed.view({1, 1, T, S});
    // Padding keys are hidden from every query. A padding *query* would then see nothing and its
    // softmax would be NaN, which later layers could spread; letting it see itself keeps it finite.
    auto real = key_mask.view({key_mask.size(0), 1, 1, S});
    auto self = k_pos.eq(q_pos).view({1, 1, T, S});
    return allowed.view({1, 1, T, S}).logical_and(real.logical_or(self));  // (B, 1, T, S)
}

torch::Tensor GptImpl::forward(const torch::Tensor& idx, const AttentionContext& ctx) {
    const int64_t T = idx.size(1);
    const int64_t offset = ctx.cache ? ctx.cache->length : 0;
    if (offset + T > cfg_.block_size) {
        throw Error("sequence of " + std::to_string(offset + T) + " tokens exceeds the context window (" +
                        std::to_string(cfg_.block_size) + ")",
                    "model.block_size", "shorten the input or use a model with a larger block_size");
    }
    auto pos = ctx.position_ids.defined()
                   ? ctx.position_ids
                   : torch::arange(offset, offset + T, idx.options().dtype(torch::kLong)).unsqueeze(0);  // (1, T)
    auto x = transformer->drop(transformer->wte(idx) + transformer->wpe(pos));  // (B, T, C)
    auto allowed = attention_mask(T, offset, ctx, idx.device());
    for (const auto& block : *transformer->h) x = block->as<Block>()->forward(x, allowed, ctx.cache);
    if (ctx.cache) ctx.cache->advance(T);
    if (transformer->ln_f) x = transformer->ln_f(x);
    return x;
}

torch::Tensor GptImpl::logits(const torch::Tensor& hidden) {
    return linear(hidden, transformer->wte->weight, torch::Tensor());  // tied head: (..., C) x (V, C)^T -> (..., V)
}

KvCache GptImpl::make_cache(int64_t batch, int64_t capacity) const {
    return KvCache(cfg_.n_layer, batch, cfg_.n_head, std::min<int64_t>(capacity, cfg_.block_size),
                   cfg_.n_embd / cfg_.n_head);
}

int64_t GptImpl::num_parameters() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

int64_t gpt_parameter_count(const ModelConfig& cfg) {
    const int64_t C = cfg.n_embd, L = cfg.n_layer;
    const int64_t embeddings = static_cast<int64_t>(cfg.vocab_size) * C + static_cast<int64_t>(cfg.block_size) * C;
    // Per block: 12 C^2 matmul weights (qkv 3C^2, proj C^2, fc 4C^2, proj 4C^2) and two LN gains;
    // with biases also 2 LN biases + 3C + C + 4C + C Linear biases.
    const int64_t per_block = 12 * C * C + 2 * C + (cfg.bias ? 11 * C : 0);
    const int64_t final_ln = cfg.arch == "gpt1" ? 0 : (cfg.bias ? 2 * C : C);
    return embeddings + L * per_block + final_ln;
}

Gpt grow_vocabulary(GptImpl& model, int64_t new_vocab, int64_t mean_rows) {
    ModelConfig cfg = model.config();
    RLHF_CHECK(new_vocab >= cfg.vocab_size && mean_rows > 0 && mean_rows <= cfg.vocab_size, "model.vocab_size",
               "cannot shrink the vocabulary", "");
    cfg.vocab_size = static_cast<int>(new_vocab);
    Gpt grown(cfg);
    torch::NoGradGuard no_grad;
    const auto device = model.transformer->wte->weight.device();
    grown->to(device);
    auto old_params = model.named_parameters();
    for (auto& item : grown->named_parameters()) {
        const auto& src = old_params[item.key()];
        if (item.key() == "transformer.wte.weight") {
            const int64_t old_vocab = src.size(0);
            item.value().narrow(0, 0, old_vocab).copy_(src);
            if (new_vocab > old_vocab) {
                item.value().narrow(0, old_vocab, new_vocab - old_vocab).copy_(src.narrow(0, 0, mean_rows).mean(0, true).expand({new_vocab - old_vocab, -1}));
            }
        } else {
            item.value().copy_(src);
        }
    }
    grown->train(model.is_training());
    return grown;
}

}  // namespace rlhf
