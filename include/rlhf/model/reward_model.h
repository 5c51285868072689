// The reward model (and, in PPO, the critic): the one GPT trunk with a scalar head in place of
// the LM head. Parameter names follow Hugging Face's GPT2ForSequenceClassification:
// transformer.* for the trunk, score.* for the head.
//
//   hidden (B, T, C) --score--> r (B, T): one scalar per position
//   reward of a sequence = r at its LAST REAL token (the EOS that ends the response), whatever
//   the padding; the critic uses every position.
//
// Normalisation (InstructGPT; Ziegler et al.): the pairwise loss cannot see a shift of all
// rewards, so after training a gain and bias are chosen to give a reference set mean 0 (and std
// 1 with the gain). They live in the head as buffers, travel with the checkpoint, and scores()
// applies them; training uses raw_scores().
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "rlhf/model/gpt.h"

namespace rlhf {

struct ScalarHeadImpl : torch::nn::Module {
    // weight (1, C) ~ N(0, 1/sqrt(C + 1)), bias 0 (Stiennon et al. / OpenAI lm-human-preferences).
    explicit ScalarHeadImpl(int64_t n_embd);
    torch::Tensor forward(const torch::Tensor& hidden);  // (..., C) -> (...) float32

    torch::Tensor weight, bias;           // parameters
    torch::Tensor norm_gain, norm_bias;   // buffers, () float32: 1 and 0 until normalised
};
TORCH_MODULE(ScalarHead);

struct RewardModelImpl : torch::nn::Module {
    explicit RewardModelImpl(const ModelConfig& cfg);
    // Around an existing trunk (its weights kept, shared); a fresh head.
    explicit RewardModelImpl(Gpt trunk);

    // Per-position scalars (B, T), raw (un-normalised): the critic's values.
    torch::Tensor values(const torch::Tensor& idx, const AttentionContext& ctx = {});
    // Raw rewards (B,) read at each row's last real token. key_mask (B, T) bool marks real
    // tokens; padding may be on the left, the right, or absent (undefined mask).
    torch::Tensor raw_scores(const torch::Tensor& idx, const torch::Tensor& key_mask);
    // raw_scores with the stored normalisation applied.
    torch::Tensor scores(const torch::Tensor& idx, const torch::Tensor& key_mask);
    torch::Tensor normalise(const torch::Tensor& raw) const;
    // Sets the normalisation from the raw rewards of a reference set: bias = -mean (gain 1), or
    // with `with_gain` gain = 1/std, bias = -mean/std.
    void set_normalisation(const torch::Tensor& reference_raw, bool with_gain);
    // Moves the normalisation into the head's weight and bias (gain 1, bias 0 after): values()
    // then give normalised scores at every position. PPO's critic, copied from the reward model,
    // must predict returns built from normalised scores.
    void fold_normalisation();
    // A frozen scorer in bf16: the trunk only. The head and its normalisation stay fp32, since
    // a bf16 head rounds a raw reward of ~30 to steps of 0.125.
    void trunk_to_bf16();
    // The head's weight and bias to 0 (a critic that starts predicting 0, as OpenAI's code does).
    void zero_head();

    const ModelConfig& config() const { return gpt->config(); }
    int64_t num_parameters() const;

    Gpt gpt;                                 // the trunk's forward; owns `transformer`
    GptTransformer transformer{nullptr};     // registered here so names are transformer.*
    ScalarHead score{nullptr};
};
TORCH_MODULE(RewardModel);

// Index of the last true entry of each row of a (B, T) bool mask -> (B,) int64.
torch::Tensor last_true_index(const torch::Tensor& mask);

}  // namespace rlhf
