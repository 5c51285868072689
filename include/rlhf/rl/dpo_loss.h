// DPO's loss (Rafailov et al. 2023, eq. 7) and IPO's (Azar et al. 2023), on sequence log-probs.
// For a pair of responses to one prompt, chosen y_w ranked above rejected y_l, with log π(y|x)
// the log-probability of the response tokens (and the EOS that ends them) summed:
//
//   h        = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))
//   sigmoid: loss = −(1−ε)·log σ(β·h) − ε·log σ(−β·h)    ε = dpo.label_smoothing (conservative DPO)
//   ipo:     loss = (h − 1/(2β))²
//
// β·(log π − log π_ref) is each response's implicit reward; a run logs their means, the mean
// margin β·h, and the accuracy (share of pairs whose chosen reward is higher; a tie counts half).
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "rlhf/config/config.h"

namespace rlhf::rl {

struct DpoPairLosses {
    torch::Tensor losses;            // (P,) with gradient
    torch::Tensor chosen_rewards;    // (P,) β·(log π(y_w) − log π_ref(y_w)), no gradient
    torch::Tensor rejected_rewards;  // (P,) β·(log π(y_l) − log π_ref(y_l)), no gradient
};

// All four inputs (P,), the same dtype and device; the reference's carry no gradient.
DpoPairLosses dpo_pair_losses(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                              const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected, const DpoConfig& cfg);

// The sums a step or an evaluation reports, as a (5,) float64 tensor on the inputs' device, so
// that micro-batches and ranks add them up without a host sync: loss, chosen reward, rejected
// reward, correct pairs (a tie counts half), pairs.
torch::Tensor dpo_metric_sums(const DpoPairLosses& pairs);

struct DpoMetrics {
    double loss = 0.0;             // mean over pairs
    double accuracy = 0.0;         // chosen reward > rejected reward (a tie counts half)
    double margin = 0.0;           // mean β·h = chosen reward − rejected reward
    double chosen_reward = 0.0;    // mean β·(log π(y_w) − log π_ref(y_w))
    double rejected_reward = 0.0;  // mean β·(log π(y_l) − log π_ref(y_l))
    int64_t pairs = 0;
};

// The means of dpo_metric_sums (read back to the host: one sync). NaN everywhere when no pair.
DpoMetrics dpo_metrics(const torch::Tensor& sums);

}  // namespace rlhf::rl
