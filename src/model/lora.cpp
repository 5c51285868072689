#include "rlhf/model/lora.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"

namespace rlhf {

namespace F = torch::nn::functional;

LoraAdapterImpl::LoraAdapterImpl(int64_t in, int64_t rows, const LoraConfig& cfg)
    : scale(cfg.alpha / cfg.rank), dropout(cfg.dropout) {
    lora_A = register_parameter("lora_A", torch::empty({cfg.rank, in}));
    lora_B = register_parameter("lora_B", torch::zeros({rows, cfg.rank}));
    reset();
}

void LoraAdapterImpl::reset() {
    torch::NoGradGuard no_grad;
    const double bound = 1.0 / std::sqrt(static_cast<double>(lora_A.size(1)));
    lora_A.uniform_(-bound, bound);
    lora_B.zero_();
}

torch::Tensor LoraAdapterImpl::delta(const torch::Tensor& x) const {
    auto in = dropout > 0 && is_training() ? F::dropout(x, F::DropoutFuncOptions().p(dropout).training(true)) : x;
    return F::linear(F::linear(in, lora_A) * scale, lora_B);  // (..., in) -> (..., r) -> (..., rows)
}

LoraPlace lora_place(const ModelConfig& cfg, const std::string& target) {
    const bool llama = cfg.arch == ModelArch::Llama;
    const int64_t C = cfg.n_embd, hs = head_width(cfg), q = int64_t{cfg.n_head} * hs, kv = int64_t{kv_heads(cfg)} * hs;
    const int64_t I = mlp_width(cfg);
    if (target == "q") return {"attn", "c_attn", 0, q, C};
    if (target == "k") return {"attn", "c_attn", q, kv, C};
    if (target == "v") return {"attn", "c_attn", q + kv, kv, C};
    if (target == "o") return {"attn", "c_proj", 0, C, q};
    if (llama) {
        if (target == "gate") return {"mlp", "c_fc", 0, I, C};
        if (target == "up") return {"mlp", "c_fc", I, I, C};
        if (target == "down") return {"mlp", "c_proj", 0, C, I};
        if (target == "fc" || target == "proj") {
            throw Error("'" + target + "' is a GPT-2 MLP projection; a llama model's MLP has gate, up and down",
                        "model.lora.targets", "name gate, up or down");
        }
    } else {
        if (target == "fc") return {"mlp", "c_fc", 0, I, C};
        if (target == "proj") return {"mlp", "c_proj", 0, C, I};
        if (target == "gate" || target == "up" || target == "down") {
            throw Error("'" + target + "' is a llama MLP projection; a " + name_of(cfg.arch) + " model's MLP has fc and proj",
                        "model.lora.targets", "name fc or proj");
        }
    }
    throw Error("'" + target + "' is not one of: q, k, v, o, gate, up, down, fc, proj", "model.lora.targets", "");
}

LoraSlots make_lora_slots(torch::nn::Module& owner, const ModelConfig& cfg, const std::string& module_name,
                          const std::string& linear) {
    LoraSlots slots;
    if (cfg.lora.rank <= 0) return slots;
    for (const auto& target : cfg.lora.targets) {
        const LoraPlace place = lora_place(cfg, target);
        if (place.module != module_name || place.linear != linear) continue;
        auto adapter = owner.register_module("lora_" + target, LoraAdapter(place.in, place.rows, cfg.lora));
        slots.push_back({adapter, place.row_offset});
    }
    std::sort(slots.begin(), slots.end(), [](const LoraSlot& a, const LoraSlot& b) { return a.row_offset < b.row_offset; });
    return slots;
}

torch::Tensor add_adapters(const torch::Tensor& y, const torch::Tensor& x, const LoraSlots& slots) {
    const int64_t out = y.size(-1);
    if (slots.size() == 1 && slots[0].row_offset == 0 && slots[0].adapter->lora_B.size(0) == out) {
        return y + slots[0].adapter->delta(x).to(y.scalar_type());
    }
    // Blocks of rows in order: untouched ones as they are, adapted ones plus their delta.
    std::vector<torch::Tensor> pieces;
    int64_t row = 0;
    for (const auto& s : slots) {
        const int64_t rows = s.adapter->lora_B.size(0);
        if (s.row_offset > row) pieces.push_back(y.narrow(-1, row, s.row_offset - row));
        pieces.push_back(y.narrow(-1, s.row_offset, rows) + s.adapter->delta(x).to(y.scalar_type()));
        row = s.row_offset + rows;
    }
    if (row < out) pieces.push_back(y.narrow(-1, row, out - row));
    return torch::cat(pieces, -1);
}

bool is_lora_tensor(const std::string& name) { return name.find(".lora_") != std::string::npos; }

void freeze_all_but_adapters(torch::nn::Module& model) {
    for (auto& item : model.named_parameters()) item.value().set_requires_grad(is_lora_tensor(item.key()));
}

void reset_adapters(torch::nn::Module& model) {
    for (auto& m : model.modules(/*include_self=*/false)) {  // (the top module is never an adapter)
        if (auto* adapter = m->as<LoraAdapterImpl>()) adapter->reset();
    }
}

int merge_lora_tensors(std::map<std::string, torch::Tensor>& tensors, const ModelConfig& cfg) {
    const std::string a_suffix = ".lora_A";
    std::vector<std::string> merged;
    for (const auto& [name, A] : tensors) {
        if (!is_lora_tensor(name) || name.size() < a_suffix.size() ||
            name.compare(name.size() - a_suffix.size(), a_suffix.size(), a_suffix) != 0) {
            continue;
        }
        // <prefix>.lora_<target>.lora_A -> <prefix>.<linear>.weight, rows of the target.
        const std::string adapter = name.substr(0, name.size() - a_suffix.size());  // <prefix>.lora_<target>
        const size_t dot = adapter.rfind(".lora_");
        const std::string prefix = adapter.substr(0, dot), target = adapter.substr(dot + 6);
        const LoraPlace place = lora_place(cfg, target);
        const auto b_it = tensors.find(adapter + ".lora_B");
        const auto w_it = tensors.find(prefix + "." + place.linear + ".weight");
        if (b_it == tensors.end() || w_it == tensors.end()) {
            throw Error("adapter '" + adapter + "' has no " + (b_it == tensors.end() ? "lora_B" : place.linear + " weight"),
                        "model.lora", "the adapters do not belong to this model");
        }
        const auto& B = b_it->second;
        const double scale = cfg.lora.alpha / static_cast<double>(A.size(0));
        torch::NoGradGuard no_grad;
        auto W = w_it->second.clone();  // (out, in): the caller's tensor stays as it was
        auto update = torch::matmul(B.to(torch::kFloat32), A.to(torch::kFloat32)) * scale;  // (rows, in)
        W.narrow(0, place.row_offset, place.rows).add_(update.to(W.scalar_type()));
        w_it->second = W;
        merged.push_back(adapter);
    }
    for (const auto& adapter : merged) {
        tensors.erase(adapter + ".lora_A");
        tensors.erase(adapter + ".lora_B");
    }
    return static_cast<int>(merged.size());
}

}  // namespace rlhf
