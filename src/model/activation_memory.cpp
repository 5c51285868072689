#include "rlhf/model/activation_memory.h"

#include <torch/version.h>

#include <algorithm>

#include "rlhf/config/presets.h"

namespace rlhf {

namespace {

// Which projections keep their input for the backward: all of them in full training; with LoRA
// only those with an adapter (a frozen matmul needs its weight for the input's gradient, not its
// input).
struct KeptInputs {
    bool qkv = true, attn_out = true, mlp_in = true, mlp_out = true;
};

KeptInputs kept_inputs(const LoraConfig& lora) {
    if (lora.rank == 0) return {};
    const auto has = [&](std::initializer_list<const char*> names) {
        for (const auto& t : lora.targets) {
            for (const char* n : names) {
                if (t == n) return true;
            }
        }
        return false;
    };
    return {has({"q", "k", "v"}), has({"o"}), has({"fc", "gate", "up"}), has({"proj", "down"})};
}

// What an RMSNorm of `width` keeps beside its input and output: its fp32 normalised input, and on
// LibTorch 1.13 the square of its input too (1.13's pow keeps its result for the backward).
double rms_norm_extra(double width) { return TORCH_VERSION_MAJOR >= 2 ? 4 * width : 8 * width; }

// Bytes one position of one block keeps for the backward. `a`: bytes of a matmul's input or
// output (4 in fp32, 2 under bf16 autocast); the residual stream and the norms stay fp32.
double block_bytes_per_token(const ModelConfig& m, double a, bool padded) {
    const double C = m.n_embd, I = mlp_width(m), q = double(m.n_head) * head_width(m);
    const bool llama = m.arch == ModelArch::Llama, gqa = kv_heads(m) != m.n_head;
    const KeptInputs kept = kept_inputs(m.lora);
    const double norm_extra = llama ? rms_norm_extra(C) : 0;
    double bytes = 4 * C + norm_extra             // the block's input (the first norm's input)
                   + 4 * C + norm_extra;          // the residual after attention (the second norm's input)
    if (kept.qkv) bytes += a * C;                 // the first norm's output, the q/k/v projection's input
    if (kept.mlp_in) bytes += a * C;              // the second norm's output, the MLP's input
    // q, k and v as the attention reads them (GQA: k and v repeated to every query head). With
    // rotary positions and no GQA on LibTorch 2, the rotated q and k are new tensors while v stays
    // a view that keeps the whole projection output.
    const bool views_keep_qkv = TORCH_VERSION_MAJOR >= 2 && llama && !gqa;
    bytes += a * (views_keep_qkv ? 5 : 3) * q;
    if (m.qk_norm) {  // Qwen3: each head's q and k through an RMSNorm, in fp32, its output in the matmul dtype
        const double qk = q + double(kv_heads(m)) * head_width(m);
        bytes += 4 * qk + rms_norm_extra(qk) + a * qk;
    }
    // The attention's output: LibTorch 2's SDPA keeps it, and so does 1.13's fused causal kernel,
    // which c_proj reads in place; other paths hand c_proj a contiguous copy.
    const bool fused_in_place = TORCH_VERSION_MAJOR < 2 && !padded && m.dropout == 0;
    if (TORCH_VERSION_MAJOR >= 2 || fused_in_place) bytes += a * q;
    if (kept.attn_out && !fused_in_place) bytes += a * q;
    // SwiGLU: gate|up and silu(gate) (the product's inputs); GELU: its input. Then what c_proj reads.
    bytes += a * (llama ? 3 * I : I);
    if (kept.mlp_out) bytes += a * I;
    return bytes;
}

// Bytes of the (rows, heads, T, T) probabilities one block keeps, where the attention path keeps them.
double probabilities_bytes(const ModelConfig& m, const ActivationShape& s, bool bf16) {
    const double elements = double(s.rows) * m.n_head * double(s.tokens) * double(s.tokens);
#if TORCH_VERSION_MAJOR >= 2
    (void)bf16;
    (void)elements;
    return 0;  // SDPA's fused CPU and GPU kernels keep the row log-sum-exp only
#else
    // Masked batches take the plain path: softmax's output, in the dtype of the scores (autocast
    // leaves a bf16 softmax in bf16). The fused causal kernel keeps fp32 probabilities up to 64 MiB a block.
    if (s.padded || m.dropout > 0) return elements * (bf16 ? 2 : 4);
    return elements * 4 <= double(int64_t{64} << 20) ? elements * 4 : 0;
#endif
}

// Parameters of one block's projections, and of the LM head (what bf16 autocast copies).
double projection_weights(const ModelConfig& m, bool lm_head) {
    const double C = m.n_embd, I = mlp_width(m), q = double(m.n_head) * head_width(m), kv = double(kv_heads(m)) * head_width(m);
    const double mlp_in = m.arch == ModelArch::Llama ? 2 * I : I;
    return double(m.n_layer) * (C * (q + 2 * kv) + q * C + C * mlp_in + I * C) + (lm_head ? double(m.vocab_size) * C : 0);
}

}  // namespace

ActivationEstimate estimate_activations(const ModelConfig& m, const ActivationShape& s, bool bf16,
                                        int64_t checkpoint_blocks) {
    const double a = bf16 ? 2 : 4, positions = double(s.rows) * double(s.tokens);
    double one_block = block_bytes_per_token(m, a, s.padded) * positions + probabilities_bytes(m, s, bf16);
    const auto& lora = m.lora;
    if (lora.rank > 0) {  // each adapter keeps its rank-r intermediate (and with dropout, its input)
        const double per_target = a * lora.rank + (lora.dropout > 0 ? a * m.n_embd : 0);
        one_block += per_target * double(lora.targets.size()) * positions;
    }
    ActivationEstimate e;
    const int64_t L = m.n_layer;
    if (checkpoint_blocks > 0) {
        // Each segment keeps its fp32 input; the backward rebuilds one segment at a time.
        const int64_t per_segment = std::min(checkpoint_blocks, L), segments = (L + per_segment - 1) / per_segment;
        e.blocks = static_cast<int64_t>(double(segments) * 4 * m.n_embd * positions);
        e.rebuilt = static_cast<int64_t>(double(per_segment) * one_block);
    } else {
        e.blocks = static_cast<int64_t>(double(L) * one_block);
        // With LoRA nothing before the first block trains: its input is not kept.
        if (lora.rank > 0) e.blocks -= static_cast<int64_t>(4 * m.n_embd * positions);
    }
    // The final norm's input (and RMSNorm's normalised copy); its output when the LM head trains.
    const double C = m.n_embd;
    const double final_norm = 4 * C + (m.arch == ModelArch::Llama ? rms_norm_extra(C) : 0) + (lora.rank == 0 ? a * C : 0);
    e.head = static_cast<int64_t>(positions * (final_norm + (s.lm_head ? 4.0 * m.vocab_size : 0)));  // fp32 log-probs
    if (bf16) e.weight_copies = static_cast<int64_t>(2 * projection_weights(m, s.lm_head));
    return e;
}

}  // namespace rlhf
