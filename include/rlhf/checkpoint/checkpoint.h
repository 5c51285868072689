// A run's whole state in one directory, written so that a crash at any moment leaves a loadable
// `latest`:
//
//   <out_dir>/checkpoints/
//     step-000250/            complete checkpoints only (built as .tmp-step-000250-<pid>, then renamed)
//       model.safetensors     weights, HF GPT-2 names, the tied embedding stored once (a reward
//                             model adds score.* and its normalisation, score.norm_gain/norm_bias)
//       optimizer.safetensors AdamW moments by parameter name (exp_avg.<name>, exp_avg_sq.<name>) + step
//       rng.safetensors       every generator state (CPU, and CUDA when present)
//       state.json            step, tokens seen, data-sampler cursor, format version — written last
//       config.yaml           the resolved config of the run
//       tokenizer.model       the tokenizer the run used (+ tokenizer.vocab, and added_tokens.json
//                             when the chat format added role tokens)
//     latest -> step-000250   a symlink replaced atomically (rename of a fresh link); readers go by
//                             the newest complete step-* (a crash can leave `latest` one behind)
//
// See docs/checkpoint-format.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlhf/config/config.h"
#include "rlhf/model/gpt.h"
#include "rlhf/model/reward_model.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

inline constexpr int kCheckpointFormatVersion = 1;

struct TrainState {
    int64_t  step             = 0;    // optimizer steps completed
    int64_t  tokens_seen      = 0;    // training tokens consumed (all ranks)
    uint64_t next_batch_index = 0;    // data-sampler cursor: the next batch to draw
    double   last_val_loss    = NAN;  // most recent validation loss (NaN before the first eval)
};

// Optimizer state as the checkpoint stores it (this layer does not know the optimizer type).
struct OptimizerState {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;  // e.g. exp_avg.<param name>
    int64_t step = 0;                                            // updates taken
};

// A LoRA run's base (model.lora): the weights file its frozen weights came from, that file's hash
// when the run started, and its vocabulary. The run's checkpoints hold the adapters and what else
// trained (a reward head), plus the embedding when the run grew the vocabulary; their
// model.safetensors names the base in its metadata (lora_base, lora_base_fnv1a64,
// lora_base_vocab_size), and a reader loads the base first, refusing one whose hash changed.
struct LoraBase {
    std::filesystem::path weights;  // absolute; itself a LoRA checkpoint's file or a full one
    std::string fnv1a64;            // hex64(file_fnv1a64(weights)) when the run started
    int64_t vocab_size = 0;
    bool defined() const { return !weights.empty(); }
};
// The base a LoRA checkpoint's weights file names; undefined for a file that holds a whole model.
LoraBase read_lora_base(const std::filesystem::path& weights_file);

// What a stage saves beyond one model and its optimizer (PPO: the critic, its optimizer, EMA
// weights, β), written inside the same atomic step directory.
struct CheckpointExtras {
    std::vector<std::pair<std::string, std::vector<std::pair<std::string, torch::Tensor>>>> tensor_files;  // file -> tensors
    nlohmann::json stage_state = nlohmann::json::object();  // state.json "stage_state": lineage, β, …
    LoraBase lora_base;  // model.lora: where the frozen weights are (required then)
};

// Saves step-NNNNNN under `checkpoints_dir`, repoints `latest`, and deletes all but the newest
// `keep_last` checkpoints (0 = keep all). Returns the new directory. A complete checkpoint for
// the step that already exists (left by a run that died before repointing `latest`) is kept and
// published instead of written twice.
std::filesystem::path save_checkpoint(const std::filesystem::path& checkpoints_dir, const RunConfig& cfg,
                                      const TrainState& state, torch::nn::Module& model, const OptimizerState& optimizer,
                                      const Tokenizer& tokenizer, int keep_last, const CheckpointExtras& extras = {});

// Accepts a step directory, a checkpoints/ directory or a run directory, and returns the step
// directory (following `latest`). Throws rlhf::Error if nothing complete is there.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

// The newest complete checkpoint (a step-* with state.json) of a run directory, or an empty path.
std::filesystem::path latest_checkpoint(const std::filesystem::path& out_dir);

struct CheckpointInfo {
    std::filesystem::path dir;
    RunConfig config;  // the resolved config stored with it (model.vocab_size is set)
    TrainState state;
    nlohmann::json stage_state = nlohmann::json::object();  // what the stage saved (CheckpointExtras)
};
CheckpointInfo read_checkpoint_info(const std::filesystem::path& step_dir);

// What a checkpoint's weights are, from the stage that wrote them: a language model (pretrain,
// sft, dpo, ppo: it generates), a reward model (a trunk with a scalar head: it scores), or a task
// model (a trunk with a classification head: it labels).
enum class ModelKind { LanguageModel, RewardModel, TaskModel };
ModelKind model_kind(const CheckpointInfo& info);

Tokenizer load_checkpoint_tokenizer(const std::filesystem::path& step_dir);

// What a loader does with a LoRA checkpoint's adapters (model/lora.h):
//   keep   into the model's own adapters (resume, generate); merged into the weights when the
//          model has none
//   merge  into the weights, always: a new run starting from the checkpoint (its own adapters, if
//          any, start fresh, so that its base is the model the checkpoint describes)
enum class AdapterLoad { Keep, Merge };

// Copies the stored weights (parameters and buffers) into `model`; a missing or differently
// shaped tensor is an rlhf::Error naming the tensor and both shapes, and so is a stored tensor
// the model lacks unless `allow_unused` (a GPT trunk taken from a reward model, say). A LoRA
// checkpoint's base is loaded first (read_model_tensors); the model's adapters keep their
// initial values when the file has none (a LoRA run starting from a whole model).
void load_model_weights(const std::filesystem::path& step_dir, torch::nn::Module& model, bool allow_unused = false);
// The same from any safetensors file of a checkpoint (PPO's critic.safetensors, ema.safetensors).
void load_weights_file(const std::filesystem::path& file, torch::nn::Module& model, bool allow_unused = false,
                       AdapterLoad adapters = AdapterLoad::Keep);
// Every tensor of the model a weights file describes, by name: a LoRA checkpoint's base (checked
// against its hash, its own adapters merged) under the file's tensors; the file's adapters merged
// too with `merge_adapters`, else kept as they are. `from_base`, when given, receives the names
// only the base supplied (a reward model over a language model's base leaves its LM head unused).
std::map<std::string, torch::Tensor> read_model_tensors(const std::filesystem::path& weights_file, bool merge_adapters,
                                                        std::set<std::string>* from_base = nullptr);
OptimizerState load_optimizer_state(const std::filesystem::path& step_dir);
void restore_rng_states(const std::filesystem::path& step_dir);

// Errors (one line per differing key) if the two model configs describe different shapes.
void check_same_model_shape(const ModelConfig& checkpoint, const ModelConfig& current, const std::string& where);

// Which weights of a checkpoint are "the model". A PPO run with ppo.ema_decay > 0 also saves the
// policy's exponential moving average (ema.safetensors), which InstructGPT uses as the model:
//   auto  the EMA when the checkpoint has one, else model.safetensors (what every reader uses)
//   ema   the EMA, an error when there is none
//   raw   model.safetensors (what training resumes from)
inline constexpr const char* kEmaFile = "ema.safetensors";
std::filesystem::path model_weights_file(const std::filesystem::path& step_dir, const std::string& weights = "auto");

// For `rlhf generate` / `rlhf chat`: the model (in eval mode, on `device`) and its tokenizer.
struct LoadedModel {
    Gpt model{nullptr};
    Tokenizer tokenizer;
    CheckpointInfo info;
    std::filesystem::path weights_file;  // model.safetensors or ema.safetensors
};
// A reward-model checkpoint is an error here (it scores text; it does not generate).
LoadedModel load_model_from_checkpoint(const std::filesystem::path& path, const torch::Device& device,
                                       const std::string& weights = "auto");

// For `rlhf score` and PPO: a reward model (normalisation included), in eval mode.
struct LoadedRewardModel {
    RewardModel model{nullptr};
    Tokenizer tokenizer;
    CheckpointInfo info;
};
LoadedRewardModel load_reward_model_from_checkpoint(const std::filesystem::path& path, const torch::Device& device);

}  // namespace rlhf
