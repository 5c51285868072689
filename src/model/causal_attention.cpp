#include "rlhf/model/causal_attention.h"

#include "rlhf/model/attention_rows.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#ifdef RLHF_HAVE_CBLAS
#include <cblas.h>
#endif

namespace rlhf {

#ifdef RLHF_HAVE_CBLAS

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Keep the (B, nh, T, T) probabilities for backward when they take at most this much memory.
constexpr int64_t kProbCacheBytes = int64_t{64} << 20;

// Row-major C (m x n) = alpha * op(A) op(B) + beta * C. Called inside at::parallel_for, where
// OpenBLAS-openmp sees an active parallel region and stays single-threaded.
inline void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

// Copies a (T, hs) block with row stride `stride` (in elements) into a dense fp32 buffer.
template <typename scalar_t>
inline void gather(const scalar_t* src, int64_t stride, int T, int hs, float* dst) {
    for (int t = 0; t < T; ++t) {
        const scalar_t* row = src + t * stride;
        for (int c = 0; c < hs; ++c) dst[t * hs + c] = static_cast<float>(row[c]);
    }
}

template <typename scalar_t>
inline void scatter(const float* src, int T, int hs, scalar_t* dst, int64_t stride) {
    for (int t = 0; t < T; ++t) {
        scalar_t* row = dst + t * stride;
        for (int c = 0; c < hs; ++c) row[c] = static_cast<scalar_t>(src[t * hs + c]);
    }
}

struct Shape {
    int64_t B, T, C, nh, hs;
    int Ti() const { return static_cast<int>(T); }
    int hsi() const { return static_cast<int>(hs); }
};

template <typename scalar_t>
void attention_forward(const Shape& s, const scalar_t* qkv, scalar_t* y, float* lse, float* probs) {
    const int T = s.Ti(), hs = s.hsi();
    const float scale = 1.f / std::sqrt(static_cast<float>(hs));
    at::parallel_for(0, s.B * s.nh, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> q(T * hs), k(T * hs), v(T * hs), o(T * hs), scratch(probs ? 0 : T * T);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t b = bh / s.nh, h = bh % s.nh;
            const scalar_t* base = qkv + b * s.T * 3 * s.C + h * s.hs;  // row t of head h: base + t * 3C
            gather(base, 3 * s.C, T, hs, q.data());
            gather(base + s.C, 3 * s.C, T, hs, k.data());
            gather(base + 2 * s.C, 3 * s.C, T, hs, v.data());
            float* P = probs ? probs + bh * T * T : scratch.data();
            sgemm(false, true, T, T, hs, scale, q.data(), hs, k.data(), hs, 0.f, P, T);  // S = q k^T / sqrt(hs)
            for (int i = 0; i < T; ++i) lse[bh * T + i] = attention_rows::causal_softmax(P + i * T, i, T);
            sgemm(false, false, T, hs, T, 1.f, P, T, v.data(), hs, 0.f, o.data(), hs);  // o = P v
            scatter(o.data(), T, hs, y + b * s.T * s.C + h * s.hs, s.C);
        }
    });
}

template <typename scalar_t>
void attention_backward(const Shape& s, const scalar_t* qkv, const scalar_t* dy, const float* lse,
                        const float* probs, scalar_t* dqkv) {
    const int T = s.Ti(), hs = s.hsi();
    const float scale = 1.f / std::sqrt(static_cast<float>(hs));
    at::parallel_for(0, s.B * s.nh, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> q(T * hs), k(T * hs), v(T * hs), dO(T * hs), dq(T * hs), dk(T * hs), dv(T * hs);
        std::vector<float> scratch(probs ? 0 : T * T), dP(T * T);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t b = bh / s.nh, h = bh % s.nh;
            const int64_t qkv_off = b * s.T * 3 * s.C + h * s.hs, y_off = b * s.T * s.C + h * s.hs;
            gather(qkv + qkv_off, 3 * s.C, T, hs, q.data());
            gather(qkv + qkv_off + s.C, 3 * s.C, T, hs, k.data());
            gather(qkv + qkv_off + 2 * s.C, 3 * s.C, T, hs, v.data());
            gather(dy + y_off, s.C, T, hs, dO.data());
            const float* P = probs ? probs + bh * T * T : scratch.data();
            if (!probs) {  // recompute P = exp(S - lse) on the causal prefix
                float* R = scratch.data();
                sgemm(false, true, T, T, hs, scale, q.data(), hs, k.data(), hs, 0.f, R, T);
                for (int i = 0; i < T; ++i) attention_rows::causal_exp(R + i * T, i, T, lse[bh * T + i]);
            }
            sgemm(true, false, T, hs, T, 1.f, P, T, dO.data(), hs, 0.f, dv.data(), hs);  // dv = P^T dO
            sgemm(false, true, T, T, hs, 1.f, dO.data(), hs, v.data(), hs, 0.f, dP.data(), T);  // dP = dO v^T
            // softmax backward: dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij'), times the score scale
            for (int i = 0; i < T; ++i) attention_rows::causal_softmax_backward(P + i * T, dP.data() + i * T, i, T, scale);
            sgemm(false, false, T, hs, T, 1.f, dP.data(), T, k.data(), hs, 0.f, dq.data(), hs);  // dq = dS k
            sgemm(true, false, T, hs, T, 1.f, dP.data(), T, q.data(), hs, 0.f, dk.data(), hs);   // dk = dS^T q
            scatter(dq.data(), T, hs, dqkv + qkv_off, 3 * s.C);
            scatter(dk.data(), T, hs, dqkv + qkv_off + s.C, 3 * s.C);
            scatter(dv.data(), T, hs, dqkv + qkv_off + 2 * s.C, 3 * s.C);
        }
    });
}

struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& qkv_in, int64_t n_head) {
        auto qkv = qkv_in.contiguous();
        const Shape s{qkv.size(0), qkv.size(1), qkv.size(2) / 3, n_head, qkv.size(2) / 3 / n_head};
        auto y = torch::empty({s.B, s.T, s.C}, qkv.options());
        auto f32 = qkv.options().dtype(torch::kFloat32);
        auto lse = torch::empty({s.B * s.nh, s.T}, f32);
        // Only a forward that will be differentiated needs the probabilities kept.
        const bool cache = qkv_in.requires_grad() && s.B * s.nh * s.T * s.T * 4 <= kProbCacheBytes;
        auto probs = cache ? torch::empty({s.B * s.nh, s.T, s.T}, f32) : torch::Tensor();
        float* P = cache ? probs.data_ptr<float>() : nullptr;
        if (qkv.scalar_type() == torch::kBFloat16) {
            attention_forward(s, qkv.data_ptr<at::BFloat16>(), y.data_ptr<at::BFloat16>(), lse.data_ptr<float>(), P);
        } else {
            TORCH_CHECK(qkv.scalar_type() == torch::kFloat32, "fused_causal_attention: fp32 or bf16 input");
            attention_forward(s, qkv.data_ptr<float>(), y.data_ptr<float>(), lse.data_ptr<float>(), P);
        }
        ctx->save_for_backward({qkv, lse, probs});
        ctx->saved_data["n_head"] = n_head;
        return y;
    }

    static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
        auto saved = ctx->get_saved_variables();
        const auto& qkv = saved[0];
        const auto& lse = saved[1];
        const auto& probs = saved[2];
        const int64_t n_head = ctx->saved_data["n_head"].toInt();
        const Shape s{qkv.size(0), qkv.size(1), qkv.size(2) / 3, n_head, qkv.size(2) / 3 / n_head};
        auto dy = grad_outputs[0].to(qkv.scalar_type()).contiguous();
        auto dqkv = torch::empty_like(qkv);
        const float* P = probs.defined() ? probs.data_ptr<float>() : nullptr;
        if (qkv.scalar_type() == torch::kBFloat16) {
            attention_backward(s, qkv.data_ptr<at::BFloat16>(), dy.data_ptr<at::BFloat16>(), lse.data_ptr<float>(),
                               P, dqkv.data_ptr<at::BFloat16>());
        } else {
            attention_backward(s, qkv.data_ptr<float>(), dy.data_ptr<float>(), lse.data_ptr<float>(), P,
                               dqkv.data_ptr<float>());
        }
        return {dqkv, torch::Tensor()};
    }
};

}  // namespace

bool fused_causal_attention_available() { return true; }

torch::Tensor fused_causal_attention(const torch::Tensor& qkv, int64_t n_head) {
    return CausalAttentionFn::apply(qkv, n_head);
}

#else  // no CBLAS in this build

bool fused_causal_attention_available() { return false; }

torch::Tensor fused_causal_attention(const torch::Tensor&, int64_t) {
    TORCH_CHECK(false, "fused_causal_attention: built without CBLAS");
}

#endif

}  // namespace rlhf
