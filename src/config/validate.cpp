#include "rlhf/config/validate.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "rlhf/config/presets.h"

namespace rlhf {

namespace {

using Problems = std::vector<ConfigProblem>;

std::string names_of(const std::vector<DataFormat>& formats) {
    std::vector<std::string> names;
    for (const auto f : formats) names.push_back(name_of(f));
    std::sort(names.begin(), names.end());
    return fmt::format("{}", fmt::join(names, ", "));
}

bool holds(const std::vector<DataFormat>& formats, DataFormat f) {
    return std::find(formats.begin(), formats.end(), f) != formats.end();
}

// The arch's own switches: llama's keys on a GPT-2 are a mistake, not something to ignore.
void check_model(const ModelConfig& m, Problems& out) {
    if (m.head_dim == 0 && m.n_head > 0 && m.n_embd % m.n_head != 0) {
        out.push_back({"model.n_embd", fmt::format("{} is not divisible by model.n_head = {}", m.n_embd, m.n_head)});
    }
    if (m.arch != ModelArch::Llama) {
        auto llama_only = [&](const char* key, bool set) {
            if (set) out.push_back({key, "applies to model.arch: llama only (this model is " + name_of(m.arch) + ")"});
        };
        llama_only("model.n_kv_head", m.n_kv_head != 0 && m.n_kv_head != m.n_head);
        llama_only("model.head_dim", m.head_dim != 0 && m.head_dim * m.n_head != m.n_embd);
        llama_only("model.intermediate_size", m.intermediate_size != 0 && m.intermediate_size != 4 * m.n_embd);
        llama_only("model.rope_scaling", m.rope_scaling != RopeScaling::None);
        llama_only("model.qkv_bias", m.qkv_bias);
        llama_only("model.qk_norm", m.qk_norm);
        llama_only("model.tie_embeddings", !m.tie_embeddings);
        llama_only("model.activation", m.activation == Activation::Silu);
        return;
    }
    if (m.activation != Activation::Silu) {
        out.push_back({"model.activation", "'" + name_of(m.activation) + "': a llama MLP is SwiGLU, whose gate is silu"});
    }
    if (m.bias) out.push_back({"model.bias", "a llama model has no Linear or norm biases (Qwen2's q, k, v biases: model.qkv_bias)"});
    const int kv = kv_heads(m);
    if (kv > 0 && m.n_head % kv != 0) {
        out.push_back({"model.n_kv_head", fmt::format("{} does not divide model.n_head = {}", kv, m.n_head)});
    }
    const int hd = m.n_head > 0 ? head_width(m) : 0;
    if (hd % 2 != 0) out.push_back({"model.head_dim", fmt::format("{} is odd; rotary positions rotate pairs of channels", hd)});
    if (m.rope_scaling == RopeScaling::Llama3 && m.rope_low_freq_factor >= m.rope_high_freq_factor) {
        out.push_back({"model.rope_low_freq_factor", "must be below model.rope_high_freq_factor"});
    }
}

// model.lora: known targets, each once. Whether the arch has them is known only once init_from's
// model is (model/lora.cpp says so then).
void check_lora(const RunConfig& c, Problems& out) {
    const LoraConfig& l = c.model.lora;
    if (l.rank == 0) return;
    if (c.stage != Stage::Sft && c.stage != Stage::Reward && c.stage != Stage::Dpo && c.stage != Stage::Ppo) {
        out.push_back({"model.lora.rank", "LoRA fine-tunes a trained model: stages sft, reward, dpo and ppo (this is " +
                                              name_of(c.stage) + "); remove the key"});
    }
    if (l.targets.empty()) out.push_back({"model.lora.targets", "is empty; name at least one of q, k, v, o"});
    const std::vector<std::string> known = {"q", "k", "v", "o", "gate", "up", "down", "fc", "proj"};
    std::vector<std::string> seen;
    for (const auto& t : l.targets) {
        if (std::find(known.begin(), known.end(), t) == known.end()) {
            out.push_back({"model.lora.targets", "'" + t + "' is not one of: q, k, v, o, gate, up, down, fc, proj"});
        }
        if (std::find(seen.begin(), seen.end(), t) != seen.end()) out.push_back({"model.lora.targets", "'" + t + "' is named twice"});
        seen.push_back(t);
    }
}

// Every stage: the run directory, the schedule, the device, and what the model may be exported as.
}  // namespace

int64_t activation_checkpoint_blocks(const TrainConfig& train) {
    const std::string& v = train.activation_checkpointing;
    if (v == "none") return 0;
    if (v == "blocks") return 1;
    const std::string prefix = "every_";
    if (v.rfind(prefix, 0) != 0 || v.size() == prefix.size() || v.size() > prefix.size() + 6) return -1;
    for (size_t i = prefix.size(); i < v.size(); ++i) if (!std::isdigit(static_cast<unsigned char>(v[i]))) return -1;
    const int64_t n = std::stoll(v.substr(prefix.size()));
    return n >= 1 ? n : -1;
}

namespace {

void check_common(const RunConfig& c, Problems& out) {
    if (activation_checkpoint_blocks(c.train) < 0) {
        out.push_back({"train.activation_checkpointing",
                       "'" + c.train.activation_checkpointing + "' is not one of: none, blocks, every_N (N >= 1)"});
    }
    if (c.optim.min_lr > c.optim.lr) {
        out.push_back({"optim.min_lr", fmt::format("{} exceeds optim.lr = {}", c.optim.min_lr, c.optim.lr)});
    }
    if (c.out_dir.empty()) out.push_back({"out_dir", "must not be empty"});
    if (c.checkpoint.export_hf && c.model.arch == ModelArch::Gpt1) {
        out.push_back({"checkpoint.export_hf", "a post-LN (model.arch: gpt1) model has no Hugging Face GPT-2 equivalent"});
    }
    const std::string& device = c.runtime.device;
    if (device != "cpu" && device != "auto" && device.rfind("cuda", 0) != 0) {
        out.push_back({"runtime.device", "'" + device + "' is not one of: cpu, cuda, cuda:N, auto"});
    }
    // The stages that compare log-probs or scores of one model across forwards train without
    // dropout: noise would be learned against (reward) or taken for a change of policy (dpo, ppo).
    if (c.model.dropout > 0) {
        if (c.stage == Stage::Reward) {
            out.push_back({"model.dropout", "the reward model trains without dropout (a noisy reward would be learned against): remove the key"});
        } else if (c.stage == Stage::Dpo) {
            out.push_back({"model.dropout", "DPO trains without dropout (the policy's log-probs are compared with the reference's): remove the key"});
        } else if (c.stage == Stage::Ppo) {
            out.push_back({"model.dropout", "PPO runs without dropout (the policy's log-probs must be the ones it sampled with): remove the key"});
        }
    }
}

// The stages that read data.files, not raw text or shards.
void check_reads_files(const RunConfig& c, const std::string& needs, Problems& out) {
    if (c.data.files.empty()) out.push_back({"data.files", needs});
    if (!c.data.text.empty() || !c.data.shards.empty()) {
        out.push_back({c.data.text.empty() ? "data.shards" : "data.text", name_of(c.stage) + " reads data.files, not raw text or shards"});
    }
}

void check_format(const RunConfig& c, const std::vector<DataFormat>& allowed, const std::string& kind, Problems& out) {
    if (!holds(allowed, c.data.format)) {
        out.push_back({"data.format", "'" + name_of(c.data.format) + "' is not a " + kind + " format (" + names_of(allowed) + ")"});
    }
}

void check_pretrain(const RunConfig& c, Problems& out) {
    if (c.data.text.empty() && c.data.shards.empty()) {
        out.push_back({"data.text", "pretraining needs data: set data.text (raw text files) or data.shards"});
    }
    if (!c.data.text.empty() && !c.data.shards.empty()) {
        out.push_back({"data.shards", "set either data.text or data.shards, not both"});
    }
    if (c.tokenizer.path.empty() && c.tokenizer.model_type != "char" && c.tokenizer.vocab_size == 0) {
        out.push_back({"tokenizer.vocab_size", "training a " + c.tokenizer.model_type + " tokenizer needs a size"});
    }
}

void check_sft(const RunConfig& c, Problems& out) {
    if (c.init_from.empty()) out.push_back({"init_from", "sft starts from a checkpoint: set init_from (a pretrain run)"});
    check_reads_files(c, "sft needs example files: set data.files", out);
    check_format(c, {DataFormat::Auto, DataFormat::Alpaca, DataFormat::Gsm8k, DataFormat::Messages, DataFormat::PromptResponse},
                 "sft", out);
}

// reward and dpo read the same comparisons.
const std::vector<DataFormat> kComparisonFormats = {DataFormat::Auto, DataFormat::Hh, DataFormat::Pairwise, DataFormat::Pandalm,
                                                    DataFormat::Ranked};

void check_reward(const RunConfig& c, Problems& out) {
    if (c.init_from.empty()) out.push_back({"init_from", "reward starts from a checkpoint: set init_from (an sft or pretrain run)"});
    check_reads_files(c, "reward needs example files: set data.files", out);
    check_format(c, kComparisonFormats, "reward", out);
}

void check_dpo(const RunConfig& c, Problems& out) {
    if (c.init_from.empty()) out.push_back({"init_from", "dpo starts from a checkpoint: set init_from (the SFT run)"});
    check_reads_files(c, "dpo needs example files: set data.files", out);
    check_format(c, kComparisonFormats, "comparison", out);
    if (c.dpo.loss == DpoLoss::Ipo && c.dpo.label_smoothing > 0) {
        out.push_back({"dpo.label_smoothing", "applies to the sigmoid loss only: remove the key, or use dpo.loss: sigmoid"});
    }
}

void check_classify(const RunConfig& c, Problems& out) {
    check_reads_files(c, "classify needs labelled examples: set data.files", out);
    check_format(c, {DataFormat::Auto, DataFormat::Jsonl, DataFormat::Rte, DataFormat::Sst2, DataFormat::StoryCloze, DataFormat::Stsb},
                 "classify", out);
    if (c.init_from.empty() && c.tokenizer.path.empty()) {
        out.push_back({"tokenizer.path", "classify from scratch (init_from empty) needs a tokenizer: set tokenizer.path "
                                         "(for a fair comparison, the one of the pre-trained run)"});
    }
    const TaskConfig& t = c.task;
    if (t.type != TaskType::Similarity && t.type != TaskType::MultipleChoice && t.num_classes < 2) {
        out.push_back({"task.num_classes", fmt::format("{} for {}: a classifier needs >= 2 classes", t.num_classes, name_of(t.type))});
    }
    if (!t.labels.empty() && static_cast<int>(t.labels.size()) != t.num_classes) {
        out.push_back({"task.labels", fmt::format("names {} classes but task.num_classes is {}", t.labels.size(), t.num_classes)});
    }
    if (t.score_min >= t.score_max) out.push_back({"task.score_min", "must be below task.score_max"});
}

void check_ppo(const RunConfig& c, Problems& out) {
    if (c.init_from.empty()) out.push_back({"init_from", "ppo starts from the SFT policy: set init_from (an sft run)"});
    if (c.data.files.empty()) out.push_back({"data.files", "ppo needs prompts: set data.files (JSONL {\"prompt\"})"});
    const PpoConfig& p = c.ppo;
    const bool checker = p.reward != RewardSource::Model;
    const bool toy = !p.toy_reward.empty();
    if (!checker && p.reward_model.empty() == !toy) {
        out.push_back({"ppo.reward_model", "set exactly one of ppo.reward_model (a reward checkpoint) and ppo.toy_reward"});
    } else if (checker && toy) {
        out.push_back({"ppo.toy_reward", "a checker reward (ppo.reward: " + name_of(p.reward) + ") does not combine with the toy reward"});
    }
    if (toy && p.toy_reward.rfind("count:", 0) != 0) out.push_back({"ppo.toy_reward", "'" + p.toy_reward + "' is not count:TEXT"});
    const bool critic_free = p.advantage != Advantage::Gae;
    if (critic_free && p.group_size < 2) {
        out.push_back({"ppo.group_size", fmt::format("{} with ppo.advantage: {}; a group baseline needs >= 2 samples per prompt",
                                                     p.group_size, name_of(p.advantage))});
    }
    if (!critic_free && p.critic_from == CriticFrom::Reward) {
        if (checker && p.reward_model.empty()) {
            out.push_back({"ppo.critic_from", "with a checker and no ppo.reward_model there is no reward model to copy: use policy"});
        }
        if (toy) out.push_back({"ppo.critic_from", "with ppo.toy_reward there is no reward model to copy: use policy"});
    }
    if (p.rollout_correction != RolloutCorrection::None && p.rollout_correction_cap < 1) {
        out.push_back({"ppo.rollout_correction_cap", fmt::format("{} is below 1; the weights are kept within [1/cap, cap]",
                                                                 p.rollout_correction_cap)});
    }
    if (p.ptx_coef > 0 && p.ptx_shards.empty()) out.push_back({"ppo.ptx_shards", "ppo.ptx_coef > 0 needs pre-training token shards"});
    if (p.minibatch > p.rollout_batch * p.group_size) {
        out.push_back({"ppo.minibatch", "is larger than the sequences of an iteration (ppo.rollout_batch x ppo.group_size)"});
    }
    // With ε = 0 the clipped term is constant wherever it is taken, so the update has no
    // gradient: the run would "train" without learning.
    if (p.clip == 0) out.push_back({"ppo.clip", "0 freezes the policy (the clipped ratio has no gradient); PPO uses 0.1-0.3"});
    if (p.value_clip == 0) {
        out.push_back({"ppo.value_clip", "0 freezes the critic (the clipped value has no gradient); use e.g. 0.2, or a large value to "
                                         "turn clipping off"});
    }
}

}  // namespace

std::vector<ConfigProblem> config_problems(const RunConfig& cfg) {
    Problems out;
    check_model(cfg.model, out);
    check_common(cfg, out);
    check_lora(cfg, out);
    switch (cfg.stage) {
        case Stage::Pretrain: check_pretrain(cfg, out); break;
        case Stage::Sft: check_sft(cfg, out); break;
        case Stage::Reward: check_reward(cfg, out); break;
        case Stage::Dpo: check_dpo(cfg, out); break;
        case Stage::Classify: check_classify(cfg, out); break;
        case Stage::Ppo: check_ppo(cfg, out); break;
    }
    return out;
}

}  // namespace rlhf
