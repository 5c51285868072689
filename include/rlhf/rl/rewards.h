// The RLHF reward of each response token (Ziegler et al. 2019; InstructGPT eq. 2):
//
//   r_t = -β · kl_t                      for every response token t
//   r_T += score                         at the last real token T (the EOS, or the last token kept)
//
// with kl_t an estimate of log π(a_t|s_t) - log π_ref(a_t|s_t) from the sampled token:
//   k1 = log π - log π_ref               unbiased, can be negative per token
//   k2 = ½ (log π - log π_ref)²          biased, always >= 0
//   k3 = (ρ - 1) - log ρ, ρ = π_ref / π  unbiased, always >= 0 (Schulman's estimator)
//
// β is fixed, or adapted by Ziegler's controller toward a target KL (sum over a sequence's
// tokens, mean over the batch):
//   β <- β · (1 + clip(KL / target - 1, -0.2, 0.2) · n_episodes / horizon)
#pragma once

#include <torch/types.h>

#include <string>

#include "rlhf/config/enums.h"

namespace rlhf::rl {

// Per-token KL estimate (B, T) from log-probs of the sampled tokens, as above.
torch::Tensor kl_estimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs, KlEstimator kind);

// r (B, T): -beta * kl on masked tokens, plus score (B,) at each row's last masked token.
torch::Tensor per_token_rewards(const torch::Tensor& kl, const torch::Tensor& score, const torch::Tensor& mask,
                                double beta);

class KlController {
public:
    // target <= 0: β stays fixed.
    KlController(double beta, double target, double horizon) : beta_(beta), target_(target), horizon_(horizon) {}
    double beta() const { return beta_; }
    void set_beta(double beta) { beta_ = beta; }
    bool adaptive() const { return target_ > 0; }
    // After a batch whose mean per-sequence KL was `kl`, over `episodes` sequences.
    void update(double kl, int64_t episodes);

private:
    double beta_, target_, horizon_;
};

}  // namespace rlhf::rl
