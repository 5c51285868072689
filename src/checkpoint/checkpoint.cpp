#include "rlhf/checkpoint/checkpoint.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "rlhf/checkpoint/hf_llama.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

namespace {

constexpr const char* kStatePrefix = "step-";
const std::string kDamagedHint = "the checkpoint is damaged; use an earlier one (checkpoints/step-*)";

std::string step_dir_name(int64_t step) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "step-%06lld", static_cast<long long>(step));
    return buf;
}

bool is_step_dir_name(const std::string& name) {
    return name.rfind(kStatePrefix, 0) == 0 && name.size() > 5 && name.size() <= 5 + 18 &&  // fits int64
           std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::pair<int64_t, std::filesystem::path>> list_step_dirs(const std::filesystem::path& dir) {
    std::vector<std::pair<int64_t, std::filesystem::path>> out;
    if (!std::filesystem::is_directory(dir)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (e.is_directory() && !e.is_symlink() && is_step_dir_name(name)) {
            out.emplace_back(std::stoll(name.substr(5)), e.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Points `latest` at `step_dir` and deletes all but the newest keep_last checkpoints. Each goes
// by rename first: killed mid-delete, a step-NNNNNN directory without its state.json would look
// like a checkpoint and fail to load, whereas a .tmp-* leftover is ignored and cleared at the
// next save.
void publish(const std::filesystem::path& checkpoints_dir, const std::filesystem::path& step_dir, int keep_last) {
    atomic_symlink(step_dir.filename(), checkpoints_dir / "latest");
    if (keep_last <= 0) return;
    auto dirs = list_step_dirs(checkpoints_dir);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < dirs.size(); ++i) {
        if (dirs[i].second == step_dir) continue;
        const auto doomed = checkpoints_dir / (".tmp-pruned-" + dirs[i].second.filename().string());
        std::error_code ec;
        std::filesystem::remove_all(doomed, ec);
        std::filesystem::rename(dirs[i].second, doomed, ec);
        if (!ec) std::filesystem::remove_all(doomed, ec);
        // An old checkpoint that will not go away costs disk, not the run: say so and train on.
        if (ec) spdlog::warn("could not delete old checkpoint {}: {}", dirs[i].second.string(), ec.message());
    }
}

std::string state_to_json(const TrainState& s, const nlohmann::json& stage_state) {
    nlohmann::json j = {
        {"format_version", kCheckpointFormatVersion},
        {"step", s.step},
        {"tokens_seen", s.tokens_seen},
        {"next_batch_index", s.next_batch_index},
        {"last_val_loss", std::isfinite(s.last_val_loss) ? nlohmann::json(s.last_val_loss) : nlohmann::json()},
        {"torch_version", TORCH_VERSION},
        {"stage_state", stage_state},
    };
    return j.dump(2) + "\n";
}

NamedTensors rng_states() {
    NamedTensors out;
    auto cpu = at::detail::getDefaultCPUGenerator();  // a handle sharing the global generator
    {
        std::lock_guard<std::mutex> lock(cpu.mutex());
        out.emplace_back("cpu", cpu.get_state());
    }
    if (torch::cuda::is_available()) {
        for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
            auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
            std::lock_guard<std::mutex> lock(gen.mutex());
            out.emplace_back("cuda:" + std::to_string(i), gen.get_state());
        }
    }
    return out;
}

// A LoRA run's model.safetensors: the adapters, whatever else trains (a reward head), the
// buffers, and the embedding (and untied head) when the run grew the vocabulary past its base's.
NamedTensors lora_checkpoint_tensors(torch::nn::Module& model, const ModelConfig& cfg, const LoraBase& base) {
    if (!base.defined()) throw Error("a LoRA run's checkpoint needs its base weights file", "model.lora", "a bug to report");
    const bool grown = cfg.vocab_size != base.vocab_size;
    NamedTensors out;
    for (const auto& item : model.named_parameters()) {
        const std::string& name = item.key();
        const bool embedding = name == "transformer.wte.weight" || name == "lm_head.weight";
        if (is_lora_tensor(name) || item.value().requires_grad() || (grown && embedding)) out.emplace_back(name, item.value());
    }
    for (const auto& item : model.named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
}

// The model config stored beside a weights file (its step directory's config.yaml).
ModelConfig model_config_beside(const std::filesystem::path& weights_file) {
    const auto path = weights_file.parent_path() / "config.yaml";
    return load_config_text(read_file(path), path.string()).model;
}

bool has_adapters(const std::map<std::string, torch::Tensor>& tensors) {
    return std::any_of(tensors.begin(), tensors.end(), [](const auto& t) { return is_lora_tensor(t.first); });
}

}  // namespace

namespace {

LoraBase lora_base_in(const std::map<std::string, std::string>& metadata, const std::filesystem::path& weights_file) {
    LoraBase base;
    const auto it = metadata.find("lora_base");
    if (it == metadata.end()) return base;
    base.weights = it->second;
    try {
        base.fnv1a64 = metadata.at("lora_base_fnv1a64");
        base.vocab_size = std::stoll(metadata.at("lora_base_vocab_size"));
    } catch (const std::exception&) {
        throw Error("LoRA checkpoint without its base's hash or vocabulary", weights_file.string(), kDamagedHint);
    }
    return base;
}

}  // namespace

LoraBase read_lora_base(const std::filesystem::path& weights_file) {
    return lora_base_in(load_safetensors(weights_file).metadata, weights_file);
}

std::map<std::string, torch::Tensor> read_model_tensors(const std::filesystem::path& weights_file, bool merge_adapters,
                                                        std::set<std::string>* from_base) {
    auto file = load_safetensors(weights_file);  // read once: a whole model's file is large
    std::map<std::string, torch::Tensor> tensors = std::move(file.tensors);
    if (const LoraBase base = lora_base_in(file.metadata, weights_file); base.defined()) {
        if (!std::filesystem::exists(base.weights)) {
            throw Error("the base weights of this LoRA checkpoint are gone: " + base.weights.string(), weights_file.string(),
                        "restore that checkpoint (the adapters alone are not the model)");
        }
        if (hex64(file_fnv1a64(base.weights)) != base.fnv1a64) {
            throw Error("the base weights of this LoRA checkpoint changed since it was written: " + base.weights.string(),
                        weights_file.string(), "restore the base checkpoint the run started from");
        }
        auto whole = read_model_tensors(base.weights, /*merge_adapters=*/true);
        if (from_base) {
            for (const auto& [name, _] : whole) if (!tensors.count(name)) from_base->insert(name);
        }
        for (auto& [name, t] : tensors) whole[name] = t;  // adapters, a trained head, a grown embedding
        tensors = std::move(whole);
    }
    if (merge_adapters && has_adapters(tensors)) merge_lora_tensors(tensors, model_config_beside(weights_file));
    return tensors;
}

std::filesystem::path save_checkpoint(const std::filesystem::path& checkpoints_dir, const RunConfig& cfg,
                                      const TrainState& state, torch::nn::Module& model, const OptimizerState& optimizer,
                                      const Tokenizer& tokenizer, int keep_last, const CheckpointExtras& extras) {
    ensure_dir(checkpoints_dir);
    const auto final_dir = checkpoints_dir / step_dir_name(state.step);
    if (std::filesystem::exists(final_dir / "state.json")) {
        // Written by a run that died before repointing `latest`; resume is exact, so it holds
        // this very state. Finish that run's job instead of writing it twice.
        publish(checkpoints_dir, final_dir, keep_last);
        return final_dir;
    }
    if (std::filesystem::exists(final_dir)) std::filesystem::remove_all(final_dir);  // incomplete: not ours to keep

    // Leftovers of a writer killed mid-save, or of pruning, are never loaded; clear them. One that
    // will not go away costs disk, not the run.
    for (const auto& e : std::filesystem::directory_iterator(checkpoints_dir)) {
        if (e.path().filename().string().rfind(".tmp-", 0) != 0) continue;
        std::error_code ec;
        std::filesystem::remove_all(e.path(), ec);
        if (ec) spdlog::warn("could not delete {}: {}", e.path().string(), ec.message());
    }
    const auto tmp = checkpoints_dir / (".tmp-" + step_dir_name(state.step) + "-" + std::to_string(::getpid()));
    ensure_dir(tmp);

    NamedTensors all_weights, weights;
    for (const auto& item : model.named_parameters()) all_weights.emplace_back(item.key(), item.value());
    for (const auto& item : model.named_buffers()) all_weights.emplace_back(item.key(), item.value());
    std::map<std::string, std::string> metadata = {{"format", "pt"}, {"rlhf_format_version", "1"}};
    if (cfg.model.lora.rank > 0) {
        weights = lora_checkpoint_tensors(model, cfg.model, extras.lora_base);
        metadata["lora_base"] = extras.lora_base.weights.string();
        metadata["lora_base_fnv1a64"] = extras.lora_base.fnv1a64;
        metadata["lora_base_vocab_size"] = std::to_string(extras.lora_base.vocab_size);
    } else {
        weights = all_weights;
    }
    save_safetensors(tmp / "model.safetensors", weights, metadata);
    save_safetensors(tmp / "optimizer.safetensors", optimizer.tensors, {{"step", std::to_string(optimizer.step)}});
    save_safetensors(tmp / "rng.safetensors", rng_states());
    for (const auto& [file, tensors] : extras.tensor_files) save_safetensors(tmp / file, tensors);
    atomic_write(tmp / "config.yaml", dump_config(cfg));
    tokenizer.save(tmp);  // tokenizer.model (+ added_tokens.json): ids mean nothing without it
    if (cfg.checkpoint.export_hf) {
        // The model as readers take it (model_weights_file's "auto"): a PPO run's EMA when it keeps one.
        std::map<std::string, torch::Tensor> by_name(all_weights.begin(), all_weights.end());
        for (const auto& [file, tensors] : extras.tensor_files) {
            if (file == kEmaFile) by_name = std::map<std::string, torch::Tensor>(tensors.begin(), tensors.end());
        }
        merge_lora_tensors(by_name, cfg.model);  // Hugging Face's classes have no adapters: merged
        export_hf_model(cfg.model, by_name, tokenizer, tmp / "hf");  // inside the step: pruned with it
    }
    atomic_write(tmp / "state.json", state_to_json(state, extras.stage_state));
    fsync_path(tmp);

    std::error_code ec;
    std::filesystem::rename(tmp, final_dir, ec);
    if (ec) throw Error("cannot move checkpoint into place: " + ec.message(), final_dir.string(), "");
    fsync_path(checkpoints_dir);
    publish(checkpoints_dir, final_dir, keep_last);
    return final_dir;
}

std::filesystem::path latest_checkpoint(const std::filesystem::path& out_dir) {
    // The newest complete step directory. `latest` is a convenience for people and tools; a
    // crash between renaming a new checkpoint into place and repointing `latest` leaves it one
    // behind, so the directories themselves decide.
    auto dirs = list_step_dirs(out_dir / "checkpoints");
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
        if (std::filesystem::exists(it->second / "state.json")) return it->second;
    }
    return {};
}

std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) {
        throw Error("checkpoint not found", path.string(),
                    "pass a run directory, its checkpoints/ directory, or a checkpoints/step-NNNNNN directory");
    }
    if (std::filesystem::exists(path / "state.json")) return std::filesystem::canonical(path);
    if (auto found = latest_checkpoint(path); !found.empty()) return found;  // a run directory
    if (auto found = latest_checkpoint(path.parent_path()); path.filename() == "checkpoints" && !found.empty()) {
        return found;  // its checkpoints/ directory
    }
    throw Error("no complete checkpoint here (no state.json)", path.string(),
                "a half-written checkpoint is never used; pass a run directory or a complete step-NNNNNN");
}

CheckpointInfo read_checkpoint_info(const std::filesystem::path& step_dir) {
    CheckpointInfo info;
    info.dir = step_dir;
    const auto state_path = step_dir / "state.json";
    try {
        auto j = nlohmann::json::parse(read_file(state_path));
        const int version = j.at("format_version").get<int>();
        if (version != kCheckpointFormatVersion) {
            throw Error("checkpoint format version " + std::to_string(version) + " is not supported (this build reads " +
                            std::to_string(kCheckpointFormatVersion) + ")",
                        state_path.string(), "use the rlhf version that wrote it");
        }
        info.state.step = j.at("step").get<int64_t>();
        info.state.tokens_seen = j.at("tokens_seen").get<int64_t>();
        info.state.next_batch_index = j.at("next_batch_index").get<uint64_t>();
        info.state.last_val_loss = j.at("last_val_loss").is_null() ? NAN : j.at("last_val_loss").get<double>();
        if (j.contains("stage_state") && j.at("stage_state").is_object()) info.stage_state = j.at("stage_state");
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("corrupted state.json: ") + e.what(), state_path.string(), kDamagedHint);
    }
    info.config = load_config_text(read_file(step_dir / "config.yaml"), (step_dir / "config.yaml").string());
    return info;
}

Tokenizer load_checkpoint_tokenizer(const std::filesystem::path& step_dir) {
    return Tokenizer::load(step_dir);
}

void check_same_model_shape(const ModelConfig& ckpt, const ModelConfig& cur, const std::string& where) {
    std::vector<std::string> diffs;
    const auto theirs = model_shape_keys(ckpt), ours = model_shape_keys(cur);
    for (size_t i = 0; i < ours.size(); ++i) {
        if (theirs[i].second != ours[i].second) {
            diffs.push_back(fmt::format("{} is {} in the checkpoint but {} in the config", ours[i].first, theirs[i].second,
                                        ours[i].second));
        }
    }
    if (!diffs.empty()) {
        std::string all;
        for (size_t i = 0; i < diffs.size(); ++i) all += (i ? "; " : "") + diffs[i];
        throw Error("checkpoint is from a different model shape: " + all, where,
                    "use the model settings the checkpoint was trained with, or start a new out_dir");
    }
}

void load_model_weights(const std::filesystem::path& step_dir, torch::nn::Module& model, bool allow_unused) {
    load_weights_file(step_dir / "model.safetensors", model, allow_unused);
}

void load_weights_file(const std::filesystem::path& path, torch::nn::Module& model, bool allow_unused, AdapterLoad adapters) {
    bool model_has_adapters = false;
    for (const auto& item : model.named_parameters()) model_has_adapters |= is_lora_tensor(item.key());
    std::set<std::string> from_base;
    auto tensors = read_model_tensors(path, /*merge_adapters=*/adapters == AdapterLoad::Merge || !model_has_adapters, &from_base);
    const bool file_has_adapters = has_adapters(tensors);
    torch::NoGradGuard no_grad;
    std::set<std::string> used;
    auto load = [&](const std::string& name, torch::Tensor& p) {
        auto it = tensors.find(name);
        if (it == tensors.end() && is_lora_tensor(name) && !file_has_adapters) return;  // a fresh adapter: B = 0
        if (it == tensors.end()) {
            throw Error("tensor '" + name + "' is missing", path.string(),
                        is_lora_tensor(name) ? "model.lora's targets differ from the checkpoint's: use the checkpoint's"
                                             : "the checkpoint is from a different model architecture");
        }
        if (it->second.sizes() != p.sizes()) {
            throw Error("tensor '" + name + "' has shape " + c10::str(it->second.sizes()) +
                            " in the checkpoint but " + c10::str(p.sizes()) + " in the model",
                        path.string(), "the checkpoint is from a different model shape");
        }
        p.copy_(it->second);
        used.insert(name);
    };
    for (auto& item : model.named_parameters()) load(item.key(), item.value());
    for (auto& item : model.named_buffers()) load(item.key(), item.value());
    for (const auto& [name, _] : tensors) {
        if (used.count(name) || from_base.count(name)) continue;  // (a base's LM head under a reward model)
        if (is_lora_tensor(name)) {  // even with allow_unused: a dropped adapter would change the model silently
            throw Error("adapter tensor '" + name + "' has no place in the model", path.string(),
                        "model.lora's targets differ from the checkpoint's: use the checkpoint's");
        }
        if (!allow_unused) {
            throw Error("unexpected tensor '" + name + "'", path.string(),
                        "the checkpoint is from a different model architecture");
        }
    }
}

OptimizerState load_optimizer_state(const std::filesystem::path& step_dir) {
    const auto path = step_dir / "optimizer.safetensors";
    auto file = load_safetensors(path);
    OptimizerState out;
    auto it = file.metadata.find("step");
    try {
        if (it == file.metadata.end()) throw std::invalid_argument("no step");
        out.step = std::stoll(it->second);
    } catch (const std::exception&) {
        throw Error("corrupted optimizer state (no step count)", path.string(), kDamagedHint);
    }
    for (auto& [name, t] : file.tensors) out.tensors.emplace_back(name, t);
    return out;
}

void restore_rng_states(const std::filesystem::path& step_dir) {
    auto file = load_safetensors(step_dir / "rng.safetensors");
    for (const auto& [name, state] : file.tensors) {
        at::Generator gen;
        if (name == "cpu") {
            gen = at::detail::getDefaultCPUGenerator();
        } else if (name.rfind("cuda:", 0) == 0 && torch::cuda::is_available()) {
            c10::DeviceIndex index = 0;
            try {
                index = static_cast<c10::DeviceIndex>(std::stoi(name.substr(5)));
            } catch (const std::exception&) {
                throw Error("corrupted RNG state name '" + name + "'", (step_dir / "rng.safetensors").string(),
                            kDamagedHint);
            }
            if (index >= static_cast<c10::DeviceIndex>(torch::cuda::device_count())) continue;
            gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, index));
        } else {
            continue;  // a CUDA state restored on a CPU-only machine: nothing to restore into
        }
        std::lock_guard<std::mutex> lock(gen.mutex());
        try {
            gen.set_state(state);
        } catch (const c10::Error& e) {
            throw Error(std::string("corrupted RNG state: ") + e.what_without_backtrace(),
                        (step_dir / "rng.safetensors").string(), kDamagedHint);
        }
    }
}

std::filesystem::path model_weights_file(const std::filesystem::path& step_dir, const std::string& weights) {
    const auto ema = step_dir / kEmaFile;
    if (weights == "raw") return step_dir / "model.safetensors";
    if (weights == "auto") return std::filesystem::exists(ema) ? ema : step_dir / "model.safetensors";
    if (weights == "ema") {
        if (!std::filesystem::exists(ema)) {
            throw Error("this checkpoint has no EMA weights (ema.safetensors)", step_dir.string(),
                        "only a ppo run with ppo.ema_decay > 0 saves them; use --weights raw");
        }
        return ema;
    }
    throw Error("'" + weights + "' is not one of: auto, ema, raw", "--weights", "");
}

ModelKind model_kind(const CheckpointInfo& info) {
    if (info.config.stage == Stage::Reward) return ModelKind::RewardModel;
    if (info.config.stage == Stage::Classify) return ModelKind::TaskModel;
    return ModelKind::LanguageModel;
}

LoadedModel load_model_from_checkpoint(const std::filesystem::path& path, const torch::Device& device,
                                       const std::string& weights) {
    LoadedModel out;
    const auto dir = resolve_checkpoint(path);
    out.info = read_checkpoint_info(dir);
    if (model_kind(out.info) == ModelKind::RewardModel) {
        throw Error("this is a reward-model checkpoint: it scores text and does not generate", dir.string(),
                    "use rlhf score --checkpoint " + path.string());
    }
    if (model_kind(out.info) == ModelKind::TaskModel) {
        throw Error("this is a task model (stage: classify): it labels text and does not generate", dir.string(),
                    "use rlhf eval --task sst2|rte|stsb|story-cloze --data FILE --checkpoint " + path.string());
    }
    out.tokenizer = load_checkpoint_tokenizer(dir);
    out.model = Gpt(out.info.config.model);
    out.weights_file = model_weights_file(dir, weights);
    load_weights_file(out.weights_file, *out.model);
    out.model->to(device);
    out.model->eval();
    return out;
}

LoadedRewardModel load_reward_model_from_checkpoint(const std::filesystem::path& path, const torch::Device& device) {
    LoadedRewardModel out;
    const auto dir = resolve_checkpoint(path);
    out.info = read_checkpoint_info(dir);
    if (model_kind(out.info) != ModelKind::RewardModel) {
        throw Error("not a reward-model checkpoint (it was written by stage " + name_of(out.info.config.stage) + ")", dir.string(),
                    "pass a checkpoint of a stage: reward run");
    }
    out.tokenizer = load_checkpoint_tokenizer(dir);
    out.model = RewardModel(out.info.config.model);
    load_model_weights(dir, *out.model);
    out.model->to(device);
    out.model->eval();
    return out;
}

}  // namespace rlhf
