#include "rlhf/model/gpt.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/model/activation_checkpoint.h"
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

// The projection plus its LoRA adapters' updates, when there are any and they are on.
static torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& layer, const LoraSlots& adapters, bool on) {
    auto y = linear(x, layer);
    return on && !adapters.empty() ? add_adapters(y, x, adapters) : y;
}

// ---------------------------------------------------------------------------------------------
NormImpl::NormImpl(int64_t width, bool with_bias, bool rms_, double eps_) : rms(rms_), eps(eps_) {
    weight = register_parameter("weight", torch::ones({width}));
    if (with_bias) bias = register_parameter("bias", torch::zeros({width}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
    if (!rms) return torch::layer_norm(x, {weight.size(0)}, weight, bias, 1e-5);
    // In fp32 whatever x's dtype, and the gain applied after the cast back (as Llama's reference).
    auto x32 = x.to(torch::kFloat32);
    auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return weight * normed.to(x.scalar_type());
}

// ---------------------------------------------------------------------------------------------
// Rotary positions, Hugging Face's "rotate half" layout: channel i of a head pairs with channel
// i + hs/2, and the pair turns by angle pos * inv_freq[i].
torch::Tensor rotary_inv_freq(const ModelConfig& cfg) {
    const int64_t hs = head_width(cfg);
    auto exponents = torch::arange(0, hs, 2, torch::kLong).to(torch::kFloat32) / static_cast<double>(hs);
    auto inv_freq = torch::reciprocal(torch::pow(cfg.rope_theta, exponents));  // (hs/2)
    if (cfg.rope_scaling != RopeScaling::Llama3) return inv_freq;
    // Llama 3.1+: long wavelengths (beyond the original context / low_freq_factor) slow down by
    // `factor`, short ones (below context / high_freq_factor) keep their speed, and the band
    // between blends the two linearly in context / wavelength.
    const double factor = cfg.rope_factor, low = cfg.rope_low_freq_factor, high = cfg.rope_high_freq_factor;
    const double context = cfg.rope_original_context;
    auto wavelen = 2.0 * M_PI / inv_freq;
    auto slowed = torch::where(wavelen > context / low, inv_freq / factor, inv_freq);
    auto blend = (context / wavelen - low) / (high - low);
    auto smoothed = (1 - blend) * slowed / factor + blend * slowed;
    auto medium = wavelen.ge(context / high).logical_and(wavelen.le(context / low));
    return torch::where(medium, smoothed, slowed);
}

// (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) on the two halves of each head.
static torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto halves = x.chunk(2, -1);
    auto rotated_half = torch::cat({halves[1].neg(), halves[0]}, -1);
    return x * cos + rotated_half * sin;
}

// ---------------------------------------------------------------------------------------------
CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelConfig& cfg, int64_t layer)
    : n_head(cfg.n_head), n_kv_head(kv_heads(cfg)), head_dim(head_width(cfg)), layer_index(layer),
      rotary(cfg.arch == ModelArch::Llama), dropout(cfg.dropout) {
    const int64_t C = cfg.n_embd, qkv_width = (n_head + 2 * n_kv_head) * head_dim;
    c_attn = register_module("c_attn", torch::nn::Linear(torch::nn::LinearOptions(C, qkv_width).bias(cfg.bias || cfg.qkv_bias)));
    c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_head * head_dim, C).bias(cfg.bias)));
    if (cfg.qk_norm) {
        q_norm = register_module("q_norm", Norm(head_dim, false, true, cfg.norm_eps));
        k_norm = register_module("k_norm", Norm(head_dim, false, true, cfg.norm_eps));
    }
    attn_dropout = register_module("attn_dropout", torch::nn::Dropout(cfg.dropout));
    resid_dropout = register_module("resid_dropout", torch::nn::Dropout(cfg.dropout));
    qkv_lora = make_lora_slots(*this, cfg, "attn", "c_attn");
    o_lora = make_lora_slots(*this, cfg, "attn", "c_proj");
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, const BlockInputs& in) {
    const int64_t B = x.size(0), T = x.size(1), hs = head_dim;
    const double p = is_training() ? dropout : 0.0;
    auto qkv = linear(x, c_attn, qkv_lora, in.adapters);               // (B, T, (nh + 2 nkv) hs)
#if TORCH_VERSION_MAJOR < 2
    // Plain causal training forward on CPU: the fused kernel reads qkv and writes (B, T, C).
    const bool fused = !in.allowed.defined() && !in.cache && p == 0.0 && x.device().is_cpu() &&
                       qkv.scalar_type() != torch::kFloat64 && fused_causal_attention_available();
    if (fused && !rotary) return resid_dropout(linear(fused_causal_attention(qkv, n_head), c_proj, o_lora, in.adapters));
#endif
    auto parts = qkv.split_with_sizes({n_head * hs, n_kv_head * hs, n_kv_head * hs}, /*dim=*/2);
    auto q = parts[0].view({B, T, n_head, hs});                        // (B, T, nh, hs)
    auto k = parts[1].view({B, T, n_kv_head, hs});                     // (B, T, nkv, hs)
    if (q_norm) {  // Qwen3: each head's q and k normalised before the rotation
        q = q_norm(q);
        k = k_norm(k);
    }
#if TORCH_VERSION_MAJOR < 2
    if (fused) {  // rotary: rotate q and k where they lie, give each query head its k/v, re-pack for the kernel
        const auto cos = in.cos.to(q.scalar_type()).transpose(1, 2), sin = in.sin.to(q.scalar_type()).transpose(1, 2);  // (B|1, T, 1, hs)
        const auto each_head = [&](const torch::Tensor& kv) {  // (B, T, nkv, hs) -> (B, T, nh * hs)
            const int64_t group = n_head / n_kv_head;
            return kv.unsqueeze(3).expand({B, T, n_kv_head, group, hs}).reshape({B, T, n_head * hs});
        };
        auto packed = torch::cat({rotate(q, cos, sin).reshape({B, T, n_head * hs}), each_head(rotate(k, cos, sin)),
                                  each_head(parts[2].view({B, T, n_kv_head, hs}))}, 2);  // (B, T, 3 nh hs)
        return resid_dropout(linear(fused_causal_attention(packed, n_head), c_proj, o_lora, in.adapters));
    }
#endif
    auto v = parts[2].view({B, T, n_kv_head, hs}).transpose(1, 2);     // (B, nkv, T, hs)
    q = q.transpose(1, 2);                                             // (B, nh, T, hs)
    k = k.transpose(1, 2);                                             // (B, nkv, T, hs)
    if (rotary) {
        auto cos = in.cos.to(q.scalar_type()), sin = in.sin.to(q.scalar_type());
        q = rotate(q, cos, sin);
        k = rotate(k, cos, sin);
    }
    if (in.cache) std::tie(k, v) = in.cache->append(layer_index, k, v);  // (B, nkv, S, hs)
    if (n_kv_head != n_head) {  // grouped-query attention: query head h reads key/value head h / group
        const int64_t S = k.size(2), group = n_head / n_kv_head;
        k = k.unsqueeze(2).expand({B, n_kv_head, group, S, hs}).reshape({B, n_head, S, hs});
        v = v.unsqueeze(2).expand({B, n_kv_head, group, S, hs}).reshape({B, n_head, S, hs});
    }

    torch::Tensor y;                                                   // (B, nh, T, hs)
#if TORCH_VERSION_MAJOR >= 2
    // Fused kernels (flash / memory-efficient on GPU, flash on CPU since 2.1).
    if (in.allowed.defined()) y = at::scaled_dot_product_attention(q, k, v, in.allowed, p, /*is_causal=*/false);
    else y = at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/true);
#else
    auto mask = in.allowed.defined() ? in.allowed : torch::ones({T, T}, x.options().dtype(torch::kBool)).tril();
    auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hs)));  // (B, nh, T, S)
    att = att.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
    att = attn_dropout(torch::softmax(att, -1));
    y = torch::matmul(att, v);
#endif
    y = y.transpose(1, 2).contiguous().view({B, T, n_head * hs});      // re-assemble heads
    return resid_dropout(linear(y, c_proj, o_lora, in.adapters));
}

// ---------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(const ModelConfig& cfg) : swiglu(cfg.arch == ModelArch::Llama) {
    const int64_t C = cfg.n_embd, I = mlp_width(cfg);
    c_fc = register_module("c_fc", torch::nn::Linear(torch::nn::LinearOptions(C, swiglu ? 2 * I : I).bias(cfg.bias)));
    c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(I, C).bias(cfg.bias)));
    dropout = register_module("dropout", torch::nn::Dropout(cfg.dropout));
    approximate = cfg.activation == Activation::GeluTanh ? "tanh" : "none";
    fc_lora = make_lora_slots(*this, cfg, "mlp", "c_fc");
    proj_lora = make_lora_slots(*this, cfg, "mlp", "c_proj");
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x, bool adapters) {
    if (swiglu) {
        auto gate_up = linear(x, c_fc, fc_lora, adapters).chunk(2, -1);  // 2 x (B, T, I)
        return dropout(linear(torch::silu(gate_up[0]) * gate_up[1], c_proj, proj_lora, adapters));
    }
    // Exact (erf) GELU by default, as nanoGPT: LibTorch 1.13's CPU tanh-GELU is 4-7x slower
    // (docs/benchmarks.md). GPT-2 used the tanh approximation (|difference| < 1e-3), and weights
    // trained with it want it back (model.activation: gelu_tanh, set by `rlhf convert --from-hf`).
    return dropout(linear(torch::gelu(linear(x, c_fc, fc_lora, adapters), approximate), c_proj, proj_lora, adapters));
}

// ---------------------------------------------------------------------------------------------
BlockImpl::BlockImpl(const ModelConfig& cfg, int64_t layer_index) : pre_ln(cfg.arch != ModelArch::Gpt1) {
    const bool rms = cfg.arch == ModelArch::Llama;
    ln_1 = register_module("ln_1", Norm(cfg.n_embd, cfg.bias, rms, cfg.norm_eps));
    attn = register_module("attn", CausalSelfAttention(cfg, layer_index));
    ln_2 = register_module("ln_2", Norm(cfg.n_embd, cfg.bias, rms, cfg.norm_eps));
    mlp = register_module("mlp", Mlp(cfg));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const BlockInputs& in) {
    if (pre_ln) {  // GPT-2, Llama: x + f(norm(x))
        auto h = x + attn(ln_1(x), in);
        return h + mlp(ln_2(h), in.adapters);
    }
    auto h = ln_1(x + attn(x, in));  // GPT-1: LN(x + f(x))
    return ln_2(h + mlp(h, in.adapters));
}

// ---------------------------------------------------------------------------------------------
GptTransformerImpl::GptTransformerImpl(const ModelConfig& cfg) {
    wte = register_module("wte", torch::nn::Embedding(cfg.vocab_size, cfg.n_embd));
    if (cfg.arch != ModelArch::Llama) wpe = register_module("wpe", torch::nn::Embedding(cfg.block_size, cfg.n_embd));
    drop = register_module("drop", torch::nn::Dropout(cfg.dropout));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.n_layer; ++i) h->push_back(Block(cfg, i));
    if (cfg.arch != ModelArch::Gpt1) ln_f = register_module("ln_f", Norm(cfg.n_embd, cfg.bias, cfg.arch == ModelArch::Llama, cfg.norm_eps));
}

GptImpl::GptImpl(const ModelConfig& cfg) : cfg_(cfg) {
    RLHF_CHECK(cfg.vocab_size > 0, "model.vocab_size", "vocabulary size is not resolved", "load a tokenizer first");
    RLHF_CHECK(cfg.head_dim > 0 || cfg.n_embd % cfg.n_head == 0, "model.n_embd", "n_embd must be divisible by n_head", "");
    RLHF_CHECK(cfg.n_head % kv_heads(cfg) == 0, "model.n_kv_head", "n_kv_head must divide n_head", "");
    transformer = register_module("transformer", GptTransformer(cfg));
    if (!cfg.tie_embeddings) {
        lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(cfg.n_embd, cfg.vocab_size).bias(false)));
    }
    if (cfg.arch == ModelArch::Llama) inv_freq_ = rotary_inv_freq(cfg);
    init_weights();
}

void GptImpl::init_weights() {
    torch::NoGradGuard no_grad;
    const double proj_std = 0.02 / std::sqrt(2.0 * cfg_.n_layer);  // two residual adds per block
    for (auto& item : named_parameters()) {
        const std::string& name = item.key();
        auto& p = item.value();
        if (is_lora_tensor(name)) continue;  // drawn after the base: a model draws the same base with or without them
        const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
        if (name.find("ln_") != std::string::npos || name.find("_norm.") != std::string::npos) {
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
    reset_adapters(*this);
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
    // With explicit positions the cache's columns need not be positions: the rollout engine keeps
    // rows of different ages right-aligned in one cache (model/rollout_engine.h), each row's own
    // positions staying below block_size by construction.
    if (T > cfg_.block_size || (!ctx.position_ids.defined() && offset + T > cfg_.block_size)) {
        throw Error("sequence of " + std::to_string(offset + T) + " tokens exceeds the context window (" +
                        std::to_string(cfg_.block_size) + ")",
                    "model.block_size", "shorten the input or use a model with a larger block_size");
    }
    auto pos = ctx.position_ids.defined()
                   ? ctx.position_ids
                   : torch::arange(offset, offset + T, idx.options().dtype(torch::kLong)).unsqueeze(0);  // (1, T)
    BlockInputs in;
    in.allowed = attention_mask(T, offset, ctx, idx.device());
    in.cache = ctx.cache;
    in.adapters = adapters_enabled_;
    torch::Tensor x = transformer->wte(idx);                                    // (B, T, C)
    if (transformer->wpe) {
        x = x + transformer->wpe(pos);
    } else {  // rotary: angles pos * inv_freq, both halves of a head alike
        if (inv_freq_.device() != idx.device()) inv_freq_ = inv_freq_.to(idx.device());  // once, not per step
        auto angles = pos.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;                     // (B or 1, T, hs/2)
        auto both = torch::cat({angles, angles}, -1).unsqueeze(1);                            // (B or 1, 1, T, hs)
        in.cos = both.cos();
        in.sin = both.sin();
    }
    x = transformer->drop(x);
    const auto blocks = transformer->h;  // (ModuleList holder: the segments below share it)
    const auto L = static_cast<int64_t>(blocks->size());
    const bool checkpoint = checkpoint_blocks_ > 0 && is_training() && torch::GradMode::is_enabled() && !ctx.cache;
    const int64_t segment = checkpoint ? checkpoint_blocks_ : 1;
    for (int64_t first = 0; first < L; first += segment) {
        const int64_t end = std::min(L, first + segment);
        const auto run = [blocks, in, first, end](const torch::Tensor& h) {
            torch::Tensor y = h;
            for (int64_t i = first; i < end; ++i) y = (*blocks)[static_cast<size_t>(i)]->as<Block>()->forward(y, in);
            return y;
        };
        x = checkpoint ? checkpointed(run, x, /*replay_rng=*/cfg_.dropout > 0) : run(x);
    }
    if (ctx.cache) ctx.cache->advance(T);
    if (transformer->ln_f) x = transformer->ln_f(x);
    return x;
}

torch::Tensor GptImpl::logits(const torch::Tensor& hidden) {
    return linear(hidden, head_weight(), torch::Tensor());  // (..., C) x (V, C)^T -> (..., V)
}

torch::Tensor GptImpl::head_weight() const { return lm_head ? lm_head->weight : transformer->wte->weight; }

KvCache GptImpl::make_cache(int64_t batch, int64_t capacity) const {
    return KvCache(cfg_.n_layer, batch, kv_heads(cfg_), std::min<int64_t>(capacity, cfg_.block_size), head_width(cfg_));
}

int64_t GptImpl::num_parameters() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

int64_t gpt_parameter_count(const ModelConfig& cfg) {
    const int64_t C = cfg.n_embd, L = cfg.n_layer, V = cfg.vocab_size, I = mlp_width(cfg);
    const int64_t q = int64_t{cfg.n_head} * head_width(cfg), kv = int64_t{kv_heads(cfg)} * head_width(cfg);
    const bool llama = cfg.arch == ModelArch::Llama;
    int64_t embeddings = V * C * (cfg.tie_embeddings ? 1 : 2);
    if (!llama) embeddings += int64_t{cfg.block_size} * C;
    // Per block: attention (q, k, v, output), the MLP (SwiGLU has a gate), two norm gains; biases
    // on every Linear and norm with model.bias, on q, k, v alone with qkv_bias (Qwen2).
    int64_t per_block = C * (q + 2 * kv) + q * C + (llama ? 3 : 2) * C * I + 2 * C;
    if (cfg.bias) per_block += (q + 2 * kv) + C + I + C + 2 * C;
    else if (cfg.qkv_bias) per_block += q + 2 * kv;
    if (cfg.qk_norm) per_block += 2 * head_width(cfg);
    const int64_t final_norm = cfg.arch == ModelArch::Gpt1 ? 0 : (cfg.bias ? 2 * C : C);
    return embeddings + L * per_block + final_norm;
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
        if (item.key() == "transformer.wte.weight" || item.key() == "lm_head.weight") {
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
