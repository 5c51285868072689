// LoRA adapters (model/lora.h): a fresh adapter is the base model, switched off it is the base
// model, merged it is the same function, and its gradients are PyTorch's.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "rlhf/model/lora.h"
#include "support/helpers.h"

using namespace rlhf;
using torch::indexing::Slice;

namespace {

// Every target the arch has.
ModelConfig with_lora(ModelConfig cfg, int rank) {
    cfg.lora.rank = rank;
    cfg.lora.alpha = 2.0 * rank;
    cfg.lora.targets = cfg.arch == ModelArch::Llama ? std::vector<std::string>{"q", "k", "v", "o", "gate", "up", "down"}
                                                    : std::vector<std::string>{"q", "k", "v", "o", "fc", "proj"};
    return cfg;
}

// `to`'s base weights := `from`'s (names match; `to`'s adapters keep theirs).
void copy_base(GptImpl& from, GptImpl& to) {
    torch::NoGradGuard no_grad;
    auto source = from.named_parameters();
    for (auto& p : to.named_parameters()) {
        if (!is_lora_tensor(p.key())) p.value().copy_(source[p.key()]);
    }
}

void randomise_adapters(GptImpl& model) {
    torch::NoGradGuard no_grad;
    for (auto& p : model.named_parameters()) {
        if (is_lora_tensor(p.key())) p.value().normal_(0.0, 0.2);
    }
}

// Logits of a left-padded batch: masks, positions and rotary tables all take part.
torch::Tensor padded_logits(GptImpl& model, const torch::Tensor& tokens) {
    auto mask = torch::ones_like(tokens, torch::kBool);
    mask.index_put_({0, Slice(0, 4)}, false);
    torch::NoGradGuard no_grad;
    return model.logits(model.forward(tokens, {position_ids_from_mask(mask), mask, nullptr}));
}

}  // namespace

TEST_CASE("LoRA: fresh adapters and adapters off give the base", "[model][lora]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    torch::manual_seed(5);
    const ModelConfig base_cfg = test::tiny_model_of(arch, 50);
    Gpt base(base_cfg), adapted(with_lora(base_cfg, 4));
    base->eval();
    adapted->eval();
    copy_base(*base, *adapted);
    const auto tokens = torch::randint(4, 50, {3, 12}, torch::kLong);
    const auto expected = padded_logits(*base, tokens);

    // B = 0 at the start: bit for bit the base, whatever A is.
    REQUIRE(torch::equal(padded_logits(*adapted, tokens), expected));
    randomise_adapters(*adapted);
    REQUIRE(test::max_abs_diff(padded_logits(*adapted, tokens), expected) > 1e-3);
    {
        AdaptersOff off(*adapted);
        REQUIRE(torch::equal(padded_logits(*adapted, tokens), expected));
    }
    REQUIRE(adapted->adapters_enabled());  // the guard switched them back on
}

TEST_CASE("LoRA: merged weights give the adapter forward", "[model][lora]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    torch::manual_seed(6);
    const ModelConfig cfg = with_lora(test::tiny_model_of(arch, 50), 3);
    Gpt adapted(cfg);
    adapted->eval();
    randomise_adapters(*adapted);
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& p : adapted->named_parameters()) tensors[p.key()] = p.value();
    REQUIRE(merge_lora_tensors(tensors, cfg) == 2 * static_cast<int>(cfg.lora.targets.size()));  // 2 layers
    for (const auto& [name, _] : tensors) REQUIRE_FALSE(is_lora_tensor(name));

    ModelConfig plain_cfg = cfg;
    plain_cfg.lora = LoraConfig{};
    Gpt merged(plain_cfg);
    merged->eval();
    {
        torch::NoGradGuard no_grad;
        for (auto& p : merged->named_parameters()) p.value().copy_(tensors.at(p.key()));
    }
    const auto tokens = torch::randint(4, 50, {3, 12}, torch::kLong);
    const double diff = test::max_abs_diff(padded_logits(*merged, tokens), padded_logits(*adapted, tokens));
    INFO("max |merged - adapters| = " << diff);
    REQUIRE(diff < 1e-5);
    // The caller's tensors were not changed in place.
    REQUIRE(torch::equal(adapted->named_parameters()["transformer.h.0.attn.c_attn.weight"],
                         adapted->named_parameters()["transformer.h.0.attn.c_attn.weight"].clone()));
}

TEST_CASE("LoRA: a step's adapter gradients equal PyTorch's", "[model][lora][reference]") {
    torch::manual_seed(7);
    ModelConfig cfg = with_lora(test::tiny_model(61), 4);  // gpt2 with biases: every target of it
    Gpt model(cfg);
    model->train();
    randomise_adapters(*model);  // B != 0, else A's gradient is 0 and proves little
    freeze_all_but_adapters(*model);
    test::TempDir dir;
    NamedTensors named;
    for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
    save_safetensors(dir / "w.safetensors", named);
    const auto x = torch::randint(0, 61, {3, 16}, torch::kLong), y = torch::randint(0, 61, {3, 16}, torch::kLong);
    save_safetensors(dir / "in.safetensors", {{"x", x}, {"y", y}});
    const nlohmann::json jc = {{"n_layer", cfg.n_layer}, {"n_head", cfg.n_head}, {"n_embd", cfg.n_embd}, {"arch", "gpt2"},
                               {"alpha", cfg.lora.alpha}};
    atomic_write(dir / "cfg.json", jc.dump());
    test::run_python_reference("lora_reference.py", test::shell_quote((dir / "w.safetensors").string()) + " " +
                                                        test::shell_quote((dir / "cfg.json").string()) + " " +
                                                        test::shell_quote((dir / "in.safetensors").string()) + " " +
                                                        test::shell_quote((dir / "out.safetensors").string()));
    const auto ref = load_safetensors(dir / "out.safetensors").tensors;

    auto logits = model->logits(model->forward(x));
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}));
    loss.backward();
    REQUIRE(std::abs(loss.item<double>() - ref.at("loss").item<double>()) < 1e-5);
    int checked = 0;
    for (const auto& p : model->named_parameters()) {
        INFO(p.key());
        if (!is_lora_tensor(p.key())) {
            REQUIRE_FALSE(p.value().grad().defined());  // frozen: no gradient, no optimizer state
            continue;
        }
        const auto& expected = ref.at("grad." + p.key());
        const double scale = expected.abs().max().item<double>();
        INFO("max |ours - reference| = " << test::max_abs_diff(p.value().grad(), expected) << " of " << scale);
        REQUIRE(scale > 0);
        REQUIRE(test::max_abs_diff(p.value().grad(), expected) < 1e-4 * scale);
        ++checked;
    }
    REQUIRE(checked == 2 * 2 * 6);  // 2 layers x (A, B) x 6 targets
}

TEST_CASE("LoRA: a target the arch lacks is one clear error", "[model][lora]") {
    ModelConfig cfg = test::tiny_model(50);
    cfg.lora.rank = 2;
    cfg.lora.targets = {"q", "gate"};
    try {
        Gpt model(cfg);
        FAIL("no error");
    } catch (const Error& e) {
        REQUIRE_THAT(std::string(e.what()), Catch::Contains("gate") && Catch::Contains("fc and proj"));
    }
}
