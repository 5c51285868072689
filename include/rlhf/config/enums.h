// The config keys that take one of a fixed set of words, as enums. The YAML word of each value is
// in its EnumNames table, in the enum's order: config/load.cpp parses and dumps through these
// tables (an unknown word is one error naming the key and the words), so the rest of the code
// compares enums and never spells a key's words again.
//
//   if (cfg.ppo.advantage == Advantage::Grpo) ...
//   spdlog::info("stage {}", name_of(cfg.stage));   // "ppo"
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include <spdlog/fmt/fmt.h>

namespace rlhf {

enum class Stage { Pretrain, Sft, Reward, Ppo, Dpo, Classify };
enum class ModelArch { Gpt2, Gpt1, Llama };                   // gpt2 pre-LN, gpt1 post-LN, llama (RoPE, RMSNorm, SwiGLU)
enum class Activation { Gelu, GeluTanh, Silu };
enum class RopeScaling { None, Llama3 };
enum class DataSampler { Epoch, Random };
enum class DataFormat {
    Auto,
    PromptResponse, Gsm8k, Alpaca, Messages,  // sft
    Ranked, Pairwise, Hh, Pandalm,            // reward, dpo
    Sst2, Rte, Stsb, StoryCloze, Jsonl,       // classify
};
enum class OnError { Error, Skip };
enum class TooLong { Truncate, Skip };
enum class EpsStyle { Torch, Tf };
enum class RewardNormalize { Bias, GainBias, None };
enum class CriticFrom { Reward, Policy };
enum class KlEstimator { K1, K2, K3 };
enum class CheckInvariants { Error, Warn, Off };
enum class Advantage { Gae, Grpo, Rloo };
enum class LossAggregation { TokenMean, SequenceMean, TokenSum };
enum class KlPenalty { Reward, Loss };
enum class RewardSource { Model, CheckerAges, CheckerGsm8k };  // a reward model (or the toy reward), or a checker
enum class RolloutCorrection { None, Tis, Mask };             // the sampler/trainer gap: not corrected, truncated IS, masked
enum class RolloutEngine { Continuous, Static };              // model/rollout_engine.h, or generate() chunk by chunk
enum class DpoLoss { Sigmoid, Ipo };
enum class TaskType { Classification, Entailment, Similarity, MultipleChoice };

// EnumNames<E>::names[i] is the YAML word of E(i).
template <class E> struct EnumNames;
template <> struct EnumNames<Stage> {
    static constexpr std::array<std::string_view, 6> names = {"pretrain", "sft", "reward", "ppo", "dpo", "classify"};
};
template <> struct EnumNames<ModelArch> {
    static constexpr std::array<std::string_view, 3> names = {"gpt2", "gpt1", "llama"};
};
template <> struct EnumNames<Activation> {
    static constexpr std::array<std::string_view, 3> names = {"gelu", "gelu_tanh", "silu"};
};
template <> struct EnumNames<RopeScaling> {
    static constexpr std::array<std::string_view, 2> names = {"none", "llama3"};
};
template <> struct EnumNames<DataSampler> {
    static constexpr std::array<std::string_view, 2> names = {"epoch", "random"};
};
template <> struct EnumNames<DataFormat> {
    static constexpr std::array<std::string_view, 14> names = {
        "auto", "prompt_response", "gsm8k", "alpaca", "messages", "ranked", "pairwise", "hh", "pandalm",
        "sst2", "rte", "stsb", "story_cloze", "jsonl"};
};
template <> struct EnumNames<OnError> {
    static constexpr std::array<std::string_view, 2> names = {"error", "skip"};
};
template <> struct EnumNames<TooLong> {
    static constexpr std::array<std::string_view, 2> names = {"truncate", "skip"};
};
template <> struct EnumNames<EpsStyle> {
    static constexpr std::array<std::string_view, 2> names = {"torch", "tf"};
};
template <> struct EnumNames<RewardNormalize> {
    static constexpr std::array<std::string_view, 3> names = {"bias", "gain_bias", "none"};
};
template <> struct EnumNames<CriticFrom> {
    static constexpr std::array<std::string_view, 2> names = {"reward", "policy"};
};
template <> struct EnumNames<KlEstimator> {
    static constexpr std::array<std::string_view, 3> names = {"k1", "k2", "k3"};
};
template <> struct EnumNames<CheckInvariants> {
    static constexpr std::array<std::string_view, 3> names = {"error", "warn", "off"};
};
template <> struct EnumNames<Advantage> {
    static constexpr std::array<std::string_view, 3> names = {"gae", "grpo", "rloo"};
};
template <> struct EnumNames<LossAggregation> {
    static constexpr std::array<std::string_view, 3> names = {"token_mean", "sequence_mean", "token_sum"};
};
template <> struct EnumNames<KlPenalty> {
    static constexpr std::array<std::string_view, 2> names = {"reward", "loss"};
};
template <> struct EnumNames<RewardSource> {
    static constexpr std::array<std::string_view, 3> names = {"model", "checker:ages", "checker:gsm8k"};
};
template <> struct EnumNames<RolloutCorrection> {
    static constexpr std::array<std::string_view, 3> names = {"none", "tis", "mask"};
};
template <> struct EnumNames<RolloutEngine> {
    static constexpr std::array<std::string_view, 2> names = {"continuous", "static"};
};
template <> struct EnumNames<DpoLoss> {
    static constexpr std::array<std::string_view, 2> names = {"sigmoid", "ipo"};
};
template <> struct EnumNames<TaskType> {
    static constexpr std::array<std::string_view, 4> names = {"classification", "entailment", "similarity", "multiple_choice"};
};

// The YAML word of a value: name_of(Advantage::Grpo) == "grpo".
template <class E> std::string name_of(E value) {
    return std::string(EnumNames<E>::names.at(static_cast<size_t>(value)));
}

// The value a word names, or nothing: enum_from_name<Advantage>("rloo") == Advantage::Rloo.
template <class E> std::optional<E> enum_from_name(std::string_view word) {
    const auto& names = EnumNames<E>::names;
    for (size_t i = 0; i < names.size(); ++i) {
        if (names[i] == word) return static_cast<E>(i);
    }
    return std::nullopt;
}

template <class E, class = void> struct is_config_enum : std::false_type {};
template <class E> struct is_config_enum<E, std::void_t<decltype(EnumNames<E>::names)>> : std::true_type {};

// Streams show the word too (test messages, INFO).
template <class E, class = std::enable_if_t<is_config_enum<E>::value>>
std::ostream& operator<<(std::ostream& out, E value) {
    return out << EnumNames<E>::names.at(static_cast<size_t>(value));
}

// The checker's name of a checker reward ("ages", "gsm8k"); "" for RewardSource::Model.
inline std::string checker_name(RewardSource source) {
    const std::string word = name_of(source);
    const auto colon = word.find(':');
    return colon == std::string::npos ? "" : word.substr(colon + 1);
}

}  // namespace rlhf

// fmt::format("{}", Advantage::Grpo) == "grpo": logs and messages show the YAML word.
template <class E>
struct fmt::formatter<E, char, std::enable_if_t<rlhf::is_config_enum<E>::value>> : fmt::formatter<std::string_view> {
    template <class Context>
    auto format(E value, Context& ctx) const {
        return fmt::formatter<std::string_view>::format(rlhf::EnumNames<E>::names.at(static_cast<size_t>(value)), ctx);
    }
};
