#include "rlhf/checkpoint/peft.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/lora.h"

namespace rlhf {

namespace {

const std::string kPeftPrefix = "base_model.model.";
const std::vector<std::string> kQkv = {"q", "k", "v"};

// Hugging Face's module (under the model's root) for one of our targets in layer `layer`.
std::string hf_module(const ModelConfig& m, int layer, const std::string& target) {
    const std::string l = std::to_string(layer);
    if (m.arch == ModelArch::Llama) {
        const bool attention = target == "q" || target == "k" || target == "v" || target == "o";
        return "model.layers." + l + (attention ? ".self_attn." : ".mlp.") + target + "_proj";
    }
    if (target == "o") return "transformer.h." + l + ".attn.c_proj";
    if (target == "fc") return "transformer.h." + l + ".mlp.c_fc";
    if (target == "proj") return "transformer.h." + l + ".mlp.c_proj";
    return "transformer.h." + l + ".attn.c_attn";  // q, k, v: one Conv1D
}

// The name PEFT's target_modules match it by (a suffix of the module's path).
std::string hf_target_name(const ModelConfig& m, const std::string& target) {
    if (m.arch == ModelArch::Llama) return target + "_proj";
    if (target == "o") return "attn.c_proj";
    if (target == "fc") return "mlp.c_fc";
    if (target == "proj") return "mlp.c_proj";
    return "c_attn";
}

std::string our_adapter(int layer, const std::string& target) {
    const bool attention = target == "q" || target == "k" || target == "v" || target == "o";
    return "transformer.h." + std::to_string(layer) + (attention ? ".attn" : ".mlp") + ".lora_" + target;
}

bool is_qkv(const std::string& t) { return t == "q" || t == "k" || t == "v"; }

}  // namespace

void export_peft_adapter(const std::filesystem::path& checkpoint, const std::filesystem::path& dir) {
    const auto step_dir = resolve_checkpoint(checkpoint);
    const CheckpointInfo info = read_checkpoint_info(step_dir);
    const ModelConfig& m = info.config.model;
    if (m.lora.rank == 0) {
        throw Error("not a LoRA checkpoint (model.lora.rank is 0)", step_dir.string(), "rlhf convert --to-hf writes its whole model");
    }
    if (model_kind(info) != ModelKind::LanguageModel) {
        throw Error("a PEFT adapter is written for a language model; this is a " + name_of(info.config.stage) + " checkpoint",
                    step_dir.string(), "rlhf convert --to-hf writes it whole, adapters merged");
    }
    if (m.arch == ModelArch::Gpt1) throw Error("a post-LN (gpt1) model has no Hugging Face equivalent", step_dir.string(), "");
    const auto weights = step_dir / "model.safetensors";
    const LoraBase base = read_lora_base(weights);
    if (base.vocab_size != m.vocab_size) {
        throw Error(fmt::format("the run grew its base's vocabulary from {} to {} (chat tokens), and a PEFT adapter carries "
                                "no embedding rows", base.vocab_size, m.vocab_size),
                    step_dir.string(), "write the merged model with rlhf convert --to-hf");
    }
    const auto tensors = load_safetensors(weights).tensors;
    NamedTensors out;
    std::vector<std::string> qkv_targets;  // gpt2: the ones that share c_attn, in row order
    for (const auto& t : kQkv) {
        if (m.arch != ModelArch::Llama && std::find(m.lora.targets.begin(), m.lora.targets.end(), t) != m.lora.targets.end()) {
            qkv_targets.push_back(t);
        }
    }
    const int64_t r = m.lora.rank;
    for (int layer = 0; layer < m.n_layer; ++layer) {
        auto get = [&](const std::string& name) {
            const auto it = tensors.find(name);
            if (it == tensors.end()) throw Error("adapter tensor '" + name + "' is missing", weights.string(), "");
            return it->second.to(torch::kFloat32).contiguous();
        };
        for (const auto& t : m.lora.targets) {
            if (m.arch != ModelArch::Llama && is_qkv(t)) continue;
            const std::string key = kPeftPrefix + hf_module(m, layer, t);
            out.emplace_back(key + ".lora_A.weight", get(our_adapter(layer, t) + ".lora_A"));
            out.emplace_back(key + ".lora_B.weight", get(our_adapter(layer, t) + ".lora_B"));
        }
        if (qkv_targets.empty()) continue;
        // One adapter on c_attn: A stacked (m r, C), B block-diagonal (3C, m r), each block on its rows.
        const int64_t n = static_cast<int64_t>(qkv_targets.size());
        std::vector<torch::Tensor> As;
        auto B = torch::zeros({3 * int64_t{m.n_embd}, n * r});
        for (int64_t j = 0; j < n; ++j) {
            const auto& t = qkv_targets[static_cast<size_t>(j)];
            const LoraPlace place = lora_place(m, t);
            As.push_back(get(our_adapter(layer, t) + ".lora_A"));
            B.narrow(0, place.row_offset, place.rows).narrow(1, j * r, r).copy_(get(our_adapter(layer, t) + ".lora_B"));
        }
        const std::string key = kPeftPrefix + hf_module(m, layer, "q");
        out.emplace_back(key + ".lora_A.weight", torch::cat(As, 0));
        out.emplace_back(key + ".lora_B.weight", B);
    }

    std::vector<std::string> target_modules;
    for (const auto& t : m.lora.targets) {
        const std::string name = hf_target_name(m, t);
        if (std::find(target_modules.begin(), target_modules.end(), name) == target_modules.end()) target_modules.push_back(name);
    }
    nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
    if (qkv_targets.size() > 1) {  // the scale alpha / r kept: alpha and r both times m
        rank_pattern["c_attn"] = r * static_cast<int64_t>(qkv_targets.size());
        alpha_pattern["c_attn"] = m.lora.alpha * static_cast<double>(qkv_targets.size());
    }
    const nlohmann::json config = {
        {"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"r", r}, {"lora_alpha", m.lora.alpha},
        {"lora_dropout", m.lora.dropout}, {"target_modules", target_modules}, {"bias", "none"},
        {"fan_in_fan_out", m.arch != ModelArch::Llama},  // GPT-2's Conv1D stores (in, out)
        {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern}, {"modules_to_save", nullptr},
        {"use_rslora", false}, {"use_dora", false}, {"init_lora_weights", true}, {"inference_mode", true},
        {"base_model_name_or_path", nullptr}};
    ensure_dir(dir);
    save_safetensors(dir / "adapter_model.safetensors", out, {{"format", "pt"}});
    atomic_write(dir / "adapter_config.json", config.dump(2) + "\n");
    spdlog::info("its base: {} (rlhf convert --to-hf {} writes it for transformers)", base.weights.string(),
                 base.weights.parent_path().string());
}

std::filesystem::path import_peft_adapter(const std::filesystem::path& adapter_dir, const std::filesystem::path& base,
                                          const std::filesystem::path& out_run) {
    const auto config_path = adapter_dir / "adapter_config.json";
    if (!std::filesystem::exists(config_path)) {
        throw Error("no adapter_config.json here", adapter_dir.string(), "pass a directory PEFT's save_pretrained() wrote");
    }
    nlohmann::json c;
    try {
        c = nlohmann::json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("not JSON: ") + e.what(), config_path.string(), "");
    }
    auto refuse = [&](const std::string& key, const std::string& why) {
        throw Error(key + ": " + why, config_path.string(), "rlhf reads plain LoRA adapters (peft.LoraConfig's defaults)");
    };
    if (c.value("peft_type", "") != "LORA") refuse("peft_type", "'" + c.value("peft_type", "") + "' is not LORA");
    if (c.value("use_dora", false)) refuse("use_dora", "DoRA is not supported");
    if (c.value("use_rslora", false)) refuse("use_rslora", "rank-stabilised scaling is not supported");
    if (c.value("bias", "none") != "none") refuse("bias", "trained biases are not supported");
    if (c.contains("modules_to_save") && !c["modules_to_save"].is_null() && !c["modules_to_save"].empty()) {
        refuse("modules_to_save", "whole modules trained beside the adapters are not supported");
    }
    const int64_t r = c.value("r", 0);
    const double alpha = c.value("lora_alpha", 0.0);
    if (r <= 0 || alpha <= 0) refuse("r", "r and lora_alpha must be positive");

    const auto base_dir = resolve_checkpoint(base);
    const CheckpointInfo info = read_checkpoint_info(base_dir);
    if (model_kind(info) != ModelKind::LanguageModel) {
        throw Error("the base must be a language model; this is a " + name_of(info.config.stage) + " checkpoint", base_dir.string(), "");
    }
    ModelConfig m = info.config.model;
    const bool llama = m.arch == ModelArch::Llama;
    // Each adapter tensor, by our adapter name ("transformer.h.0.attn.lora_q") and A / B.
    const auto file = load_safetensors(adapter_dir / "adapter_model.safetensors");
    const std::regex llama_key(R"(model\.layers\.(\d+)\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.lora_(A|B)(\.default)?\.weight)");
    const std::regex gpt2_key(R"(transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_(A|B)(\.default)?\.weight)");
    std::map<std::string, torch::Tensor> ours;
    std::map<int, std::pair<torch::Tensor, torch::Tensor>> c_attn;  // gpt2: layer -> (A, B) of the fused projection
    std::set<std::string> targets;
    for (const auto& [key, t] : file.tensors) {
        if (key.rfind(kPeftPrefix, 0) != 0) {
            throw Error("tensor '" + key + "' is not a PEFT adapter's (base_model.model.…)", adapter_dir.string(), "");
        }
        const std::string name = key.substr(kPeftPrefix.size());
        std::smatch s;
        if (llama && std::regex_match(name, s, llama_key)) {
            targets.insert(s[3]);
            ours[our_adapter(std::stoi(s[1]), s[3]) + ".lora_" + std::string(s[4])] = t.to(torch::kFloat32);
        } else if (!llama && std::regex_match(name, s, gpt2_key)) {
            const std::string module = s[2];
            const int layer = std::stoi(s[1]);
            if (module == "attn.c_attn") {
                (s[3] == "A" ? c_attn[layer].first : c_attn[layer].second) = t.to(torch::kFloat32);
                continue;
            }
            const std::string target = module == "attn.c_proj" ? "o" : module == "mlp.c_fc" ? "fc" : "proj";
            targets.insert(target);
            ours[our_adapter(layer, target) + ".lora_" + std::string(s[3])] = t.to(torch::kFloat32);
        } else {
            throw Error("tensor '" + key + "' is on no projection rlhf has adapters for (a " + name_of(m.arch) + " model)",
                        adapter_dir.string(), "check that the base is the model the adapter was trained on");
        }
    }
    // gpt2's c_attn: split the fused adapter into q, k, v by B's blocks of columns.
    for (const auto& [layer, ab] : c_attn) {
        const auto& [A, B] = ab;
        if (!A.defined() || !B.defined() || A.size(0) % r != 0) {
            throw Error("layer " + std::to_string(layer) + "'s c_attn adapter is incomplete or not a multiple of r = " +
                            std::to_string(r), adapter_dir.string(), "");
        }
        for (int64_t j = 0; j < A.size(0) / r; ++j) {
            const auto block = B.narrow(1, j * r, r);  // (3C, r)
            std::string found;
            for (const auto& t : kQkv) {
                const LoraPlace place = lora_place(m, t);
                const bool inside = block.narrow(0, place.row_offset, place.rows).abs().max().item<double>() > 0;
                const bool outside = block.abs().sum().item<double>() > block.narrow(0, place.row_offset, place.rows).abs().sum().item<double>();
                if (inside && !outside) found = t;
            }
            if (found.empty()) {
                throw Error("layer " + std::to_string(layer) + "'s c_attn adapter updates q, k and v together (or not at all)",
                            adapter_dir.string(), "rlhf's adapters are per projection: only adapters it wrote (or trained the same way) read back");
            }
            const LoraPlace place = lora_place(m, found);
            targets.insert(found);
            ours[our_adapter(layer, found) + ".lora_A"] = A.narrow(0, j * r, r).contiguous();
            ours[our_adapter(layer, found) + ".lora_B"] = B.narrow(1, j * r, r).narrow(0, place.row_offset, place.rows).contiguous();
        }
    }
    if (targets.empty()) throw Error("no adapter tensors", (adapter_dir / "adapter_model.safetensors").string(), "");
    m.lora.rank = static_cast<int>(r);
    m.lora.alpha = alpha;
    m.lora.dropout = c.value("lora_dropout", 0.0);
    m.lora.targets.clear();
    for (const auto& t : {"q", "k", "v", "o", "gate", "up", "down", "fc", "proj"}) {
        if (targets.count(t)) m.lora.targets.push_back(t);
    }

    Gpt model(m);
    const auto base_weights = model_weights_file(base_dir, "auto");
    load_weights_file(base_weights, *model, /*allow_unused=*/false, AdapterLoad::Merge);
    {
        torch::NoGradGuard no_grad;
        for (auto& p : model->named_parameters()) {
            if (!is_lora_tensor(p.key())) continue;
            const auto it = ours.find(p.key());
            if (it == ours.end()) {
                throw Error("no adapter for '" + p.key() + "' (every layer needs each target's)", adapter_dir.string(), "");
            }
            if (it->second.sizes() != p.value().sizes()) {
                throw Error("adapter '" + p.key() + "' has shape " + c10::str(it->second.sizes()) + " but the base model needs " +
                                c10::str(p.value().sizes()), adapter_dir.string(), "check that the base is the adapter's model");
            }
            p.value().copy_(it->second);
            ours.erase(it);
        }
    }
    if (!ours.empty()) throw Error("adapter '" + ours.begin()->first + "' is for a layer the base lacks", adapter_dir.string(), "");

    RunConfig cfg = info.config;
    cfg.stage = Stage::Sft;
    cfg.source = "rlhf convert --from-peft";
    cfg.out_dir = out_run.string();
    cfg.init_from = base_dir.string();
    cfg.data = DataConfig{};  // (the base's were its own: an import's shards, say)
    cfg.data.files = {std::filesystem::absolute(adapter_dir).string()};  // where the adapters came from
    cfg.model = m;
    CheckpointExtras extras;
    extras.lora_base = {std::filesystem::absolute(base_weights), hex64(file_fnv1a64(base_weights)), m.vocab_size};
    extras.stage_state = {{"lineage", {{"converted_from", cfg.data.files[0]}, {"format", "peft lora"},
                                       {"checkpoint", std::filesystem::absolute(base_dir).string()}}}};
    return save_checkpoint(out_run / "checkpoints", cfg, TrainState{}, *model, OptimizerState{},
                           load_checkpoint_tokenizer(base_dir), 0, extras);
}

}  // namespace rlhf
