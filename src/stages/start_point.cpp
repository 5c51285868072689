#include "rlhf/stages/start_point.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>

#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/chat_format.h"

namespace rlhf {

namespace {

// Shape keys come from the checkpoint; one set in the config to something else is a mistake. A key
// counts as set when the config gave it (even at its default value: `--set model.n_embd=128` on a
// 64-wide checkpoint) or when a preset changed it.
void take_shape_from(const ModelConfig& ckpt, ModelConfig& cfg, const std::vector<std::string>& given_keys,
                     const std::string& stage, const std::string& where) {
    const auto defaults = model_shape_keys(ModelConfig{}), wanted = model_shape_keys(cfg), theirs = model_shape_keys(ckpt);
    std::vector<std::string> diffs;
    for (size_t i = 0; i < wanted.size(); ++i) {
        const auto& [key, value] = wanted[i];
        if (key == "model.vocab_size") continue;  // grows with added tokens; checked where they are added
        // Rotary positions have no table: a llama model may be fine-tuned with a shorter (or longer) window.
        if (key == "model.block_size" && ckpt.arch == ModelArch::Llama) continue;
        const bool given = std::find(given_keys.begin(), given_keys.end(), key) != given_keys.end();
        if ((given || value != defaults[i].second) && value != theirs[i].second) {
            diffs.push_back(fmt::format("{}: {} is {} but init_from's model has {}; {} takes the model from "
                                        "init_from (remove the key)",
                                        where, key, value, theirs[i].second, stage));
        }
    }
    if (!diffs.empty()) throw Error(fmt::format("{}", fmt::join(diffs, "\n")));
    const double dropout = cfg.dropout;
    const LoraConfig lora = cfg.lora;
    const int block_size = cfg.block_size;
    const bool block_given = std::find(given_keys.begin(), given_keys.end(), "model.block_size") != given_keys.end();
    cfg = ckpt;
    cfg.dropout = dropout;  // the model keys a fine-tuning run may change
    cfg.lora = lora;
    if (ckpt.arch == ModelArch::Llama && block_given) cfg.block_size = block_size;  // and a rotary model's window
}

}  // namespace

void add_tokens(StartPoint& start, RunConfig& cfg, const std::vector<std::string>& tokens) {
    const int32_t spm_size = start.tokenizer.spm_vocab_size();
    const int32_t before = start.tokenizer.vocab_size();
    start.tokenizer = start.tokenizer.with_added_tokens(tokens);
    if (start.tokenizer.vocab_size() > cfg.model.vocab_size) {
        spdlog::info("vocabulary {} -> {}: added {} (new embedding rows start as the mean of the others)",
                     cfg.model.vocab_size, start.tokenizer.vocab_size(), fmt::join(tokens, " "));
        start.trunk = grow_vocabulary(*start.trunk, start.tokenizer.vocab_size(), std::min(spm_size, cfg.model.vocab_size));
        cfg.model.vocab_size = start.tokenizer.vocab_size();
    } else if (start.tokenizer.vocab_size() > before) {
        // A padded embedding (model.preset: gpt2's 50304 rows) has rows for the new tokens, but
        // pre-training pushed them down as never-seen outputs: they start as the mean too.
        spdlog::info("vocabulary {} -> {} of {} embedding rows: added {} (their rows start as the mean of the others)",
                     before, start.tokenizer.vocab_size(), cfg.model.vocab_size, fmt::join(tokens, " "));
        torch::NoGradGuard no_grad;
        const int64_t added = start.tokenizer.vocab_size() - before;
        for (auto rows : {start.trunk->transformer->wte->weight, start.trunk->head_weight()}) {  // (V, C) each; one when tied
            rows.narrow(0, before, added).copy_(rows.narrow(0, 0, spm_size).mean(0, /*keepdim=*/true).expand({added, -1}));
        }
    }
}

StartPoint fresh_start_point(RunConfig& cfg, const std::vector<std::string>& tokens) {
    StartPoint start;
    start.tokenizer = Tokenizer::load(cfg.tokenizer.path).with_added_tokens(tokens);
    if (cfg.model.vocab_size == 0) cfg.model.vocab_size = start.tokenizer.vocab_size();
    if (cfg.model.vocab_size < start.tokenizer.vocab_size()) {
        throw Error("model.vocab_size " + std::to_string(cfg.model.vocab_size) + " is smaller than the tokenizer's " +
                        std::to_string(start.tokenizer.vocab_size()) + " (added tokens included)",
                    cfg.source + ": model.vocab_size", "use 0 (the tokenizer's size)");
    }
    start.trunk = Gpt(cfg.model);  // its weights drawn from runtime.seed's generator (init_stage_runtime)
    start.trunk->set_activation_checkpointing(activation_checkpoint_blocks(cfg.train));
    start.lineage = nlohmann::json{{"checkpoint", nullptr}, {"stage", "scratch"}};
    return start;
}

StartPoint load_start_point(RunConfig& cfg, const std::filesystem::path& resume_dir) {
    if (resume_dir.empty() && !std::filesystem::exists(cfg.init_from)) {
        throw Error("init_from '" + cfg.init_from + "' does not exist", cfg.source + ": init_from",
                    "point it at a run directory or one of its checkpoints/step-NNNNNN");
    }
    StartPoint start;
    start.dir = resume_dir.empty() ? resolve_checkpoint(cfg.init_from) : resume_dir;
    start.info = read_checkpoint_info(start.dir);
    start.tokenizer = load_checkpoint_tokenizer(start.dir);
    if (!cfg.tokenizer.path.empty() && Tokenizer::load(cfg.tokenizer.path).fingerprint() != start.tokenizer.fingerprint()) {
        throw Error("tokenizer.path is not the tokenizer of init_from (" + start.dir.string() + ")",
                    cfg.source + ": tokenizer.path", "remove tokenizer.path: the tokenizer travels with the checkpoint");
    }
    if (resume_dir.empty() && model_kind(start.info) == ModelKind::TaskModel && cfg.stage != Stage::Classify) {
        // Its trunk was tuned to label one task; as a policy or a reward model it would start
        // from that without a word.
        throw Error("init_from is a task model (" + start.dir.string() + ", stage: classify)", cfg.source + ": init_from",
                    "start " + name_of(cfg.stage) + " from a pretrain or sft run");
    }
    take_shape_from(start.info.config.model, cfg.model, cfg.given_keys, name_of(cfg.stage), cfg.source);
    if (resume_dir.empty()) {
        start.lineage = {{"checkpoint", std::filesystem::absolute(start.dir).string()},
                         {"stage", name_of(start.info.config.stage)},
                         {"step", start.info.state.step},
                         {"from", start.info.stage_state.value("lineage", nlohmann::json())}};
    } else {
        start.lineage = start.info.stage_state.value("lineage", nlohmann::json());
    }
    start.trunk = Gpt(cfg.model);
    // Starting afresh from a PPO run that keeps an EMA takes the EMA (InstructGPT's model); a
    // resume takes the trained weights, which the optimizer state belongs to.
    const auto weights = model_weights_file(start.dir, resume_dir.empty() ? "auto" : "raw");
    if (weights.filename() == kEmaFile) spdlog::info("init_from: the EMA weights of {}", start.dir.string());
    // What the weights were, so that a resume can tell the checkpoint has not changed since.
    if (resume_dir.empty()) start.lineage["weights_fnv1a64"] = hex64(file_fnv1a64(weights));
    // A reward model's score.* is not the trunk's. Adapters: a resume goes on with its own; a
    // fresh run starts from the model init_from describes, whole.
    load_weights_file(weights, *start.trunk, /*allow_unused=*/true, resume_dir.empty() ? AdapterLoad::Merge : AdapterLoad::Keep);
    if (cfg.model.lora.rank > 0) {
        start.lora_base = resume_dir.empty() ? LoraBase{std::filesystem::absolute(weights), start.lineage["weights_fnv1a64"].get<std::string>(),
                                                        start.info.config.model.vocab_size}
                                             : read_lora_base(weights);
        if (!start.lora_base.defined()) {
            throw Error("the run's checkpoint has no LoRA adapters, but model.lora.rank is " + std::to_string(cfg.model.lora.rank),
                        cfg.source + ": model.lora.rank", "resume with the model.lora settings the run started with");
        }
    }

    // The model comes from init_from, so only now is its layout known.
    if (cfg.checkpoint.export_hf && cfg.model.arch == ModelArch::Gpt1) {
        throw Error("init_from's model is post-LN (model.arch: gpt1), which has no Hugging Face GPT-2 equivalent",
                    cfg.source + ": checkpoint.export_hf", "remove the key");
    }

    if (cfg.stage == Stage::Classify) {
        add_tokens(start, cfg, kChatRoleTokens);  // the vocabulary layout a fresh task model has too
    } else {
        // The chat format of chat.template; ours adds its role tokens (a no-op when the checkpoint has them).
        start.tokenizer = with_chat_setting(start.tokenizer, cfg.chat.template_, cfg.source + ": chat.template");
        add_tokens(start, cfg, chat_tokens_to_add(start.tokenizer));
    }
    // (A frozen model loaded here, a reference, runs without gradients, where it does nothing.)
    start.trunk->set_activation_checkpointing(activation_checkpoint_blocks(cfg.train));
    if (start.trunk->has_adapters()) freeze_all_but_adapters(*start.trunk);  // after add_tokens: its copy trains in full
    return start;
}

}  // namespace rlhf
