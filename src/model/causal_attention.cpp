#include "rlhf/model/causal_attention.h"

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

// Row-major C (m x n) = alpha * op(A) op(B) + beta * C. Called inside at::parallel_for, where
// OpenBLAS-openmp sees an active parallel region and stays single-threaded.
inline void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

// Softmax over row i's first i+1 entries (the causal prefix); the rest become 0. Returns lse.
inline float causal_softmax_row(float* row, int i, int T) {
    float max = row[0];
    for (int j = 1; j <= i; ++j) max = std::max(max, row[j]);
    float sum = 0.f;
    for (int j = 0; j <= i; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
    }
    const float inv = 1.f / sum;
    for (int j = 0; j <= i; ++j) row[j] *= inv;
    for (int j = i + 1; j < T; ++j) row[j] = 0.f;
    return max + std::log(sum);
}

struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v) {
        const auto dtype = q.scalar_type();
        const int64_t B = q.size(0), nh = q.size(1), BH = B * nh;
        const int T = static_cast<int>(q.size(2)), hs = static_cast<int>(q.size(3));
        auto qf = q.to(torch::kFloat32).contiguous();  // (B, nh, T, hs)
        auto kf = k.to(torch::kFloat32).contiguous();
        auto vf = v.to(torch::kFloat32).contiguous();
        auto out = torch::empty_like(qf);                                   // (B, nh, T, hs)
        auto lse = torch::empty({BH, T}, qf.options());                     // log-sum-exp per row
        const float scale = 1.f / std::sqrt(static_cast<float>(hs));
        const float *Q = qf.data_ptr<float>(), *K = kf.data_ptr<float>(), *V = vf.data_ptr<float>();
        float *O = out.data_ptr<float>(), *L = lse.data_ptr<float>();
        at::parallel_for(0, BH, 1, [&](int64_t begin, int64_t end) {
            std::vector<float> P(static_cast<size_t>(T) * T);  // (T, T) scores, then probabilities
            for (int64_t bh = begin; bh < end; ++bh) {
                const int64_t off = bh * T * hs;
                sgemm(false, true, T, T, hs, scale, Q + off, hs, K + off, hs, 0.f, P.data(), T);  // S = Q K^T / sqrt(hs)
                for (int i = 0; i < T; ++i) L[bh * T + i] = causal_softmax_row(P.data() + i * T, i, T);
                sgemm(false, false, T, hs, T, 1.f, P.data(), T, V + off, hs, 0.f, O + off, hs);   // O = P V
            }
        });
        ctx->save_for_backward({qf, kf, vf, out, lse});
        ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
        return out.to(dtype);
    }

    static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
        auto saved = ctx->get_saved_variables();
        const auto& qf = saved[0];
        const auto& kf = saved[1];
        const auto& vf = saved[2];
        const auto& out = saved[3];
        const auto& lse = saved[4];
        const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
        auto dout = grad_outputs[0].to(torch::kFloat32).contiguous();       // (B, nh, T, hs)
        const int64_t BH = qf.size(0) * qf.size(1);
        const int T = static_cast<int>(qf.size(2)), hs = static_cast<int>(qf.size(3));
        const float scale = 1.f / std::sqrt(static_cast<float>(hs));
        auto dq = torch::empty_like(qf), dk = torch::empty_like(kf), dv = torch::empty_like(vf);
        const float *Q = qf.data_ptr<float>(), *K = kf.data_ptr<float>(), *V = vf.data_ptr<float>();
        const float *O = out.data_ptr<float>(), *L = lse.data_ptr<float>(), *dO = dout.data_ptr<float>();
        float *dQ = dq.data_ptr<float>(), *dK = dk.data_ptr<float>(), *dV = dv.data_ptr<float>();
        at::parallel_for(0, BH, 1, [&](int64_t begin, int64_t end) {
            std::vector<float> P(static_cast<size_t>(T) * T), dP(static_cast<size_t>(T) * T);
            for (int64_t bh = begin; bh < end; ++bh) {
                const int64_t off = bh * T * hs;
                // Recompute P = exp(S - lse) on the causal prefix.
                sgemm(false, true, T, T, hs, scale, Q + off, hs, K + off, hs, 0.f, P.data(), T);
                for (int i = 0; i < T; ++i) {
                    float* row = P.data() + i * T;
                    const float l = L[bh * T + i];
                    for (int j = 0; j <= i; ++j) row[j] = std::exp(row[j] - l);
                    for (int j = i + 1; j < T; ++j) row[j] = 0.f;
                }
                sgemm(true, false, T, hs, T, 1.f, P.data(), T, dO + off, hs, 0.f, dV + off, hs);   // dV = P^T dO
                sgemm(false, true, T, T, hs, 1.f, dO + off, hs, V + off, hs, 0.f, dP.data(), T);   // dP = dO V^T
                for (int i = 0; i < T; ++i) {
                    // softmax backward: dS = P * (dP - sum_j P dP), and sum_j P dP = dO . O
                    float d = 0.f;
                    for (int c = 0; c < hs; ++c) d += dO[off + i * hs + c] * O[off + i * hs + c];
                    float* ds = dP.data() + i * T;
                    const float* p = P.data() + i * T;
                    for (int j = 0; j <= i; ++j) ds[j] = p[j] * (ds[j] - d) * scale;
                    for (int j = i + 1; j < T; ++j) ds[j] = 0.f;
                }
                sgemm(false, false, T, hs, T, 1.f, dP.data(), T, K + off, hs, 0.f, dQ + off, hs);  // dQ = dS K
                sgemm(true, false, T, hs, T, 1.f, dP.data(), T, Q + off, hs, 0.f, dK + off, hs);   // dK = dS^T Q
            }
        });
        return {dq.to(dtype), dk.to(dtype), dv.to(dtype)};
    }
};

}  // namespace

bool fused_causal_attention_available() { return true; }

torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    return CausalAttentionFn::apply(q, k, v);
}

#else  // no CBLAS in this build

bool fused_causal_attention_available() { return false; }

torch::Tensor fused_causal_attention(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
    TORCH_CHECK(false, "fused_causal_attention: built without CBLAS");
}

#endif

}  // namespace rlhf
