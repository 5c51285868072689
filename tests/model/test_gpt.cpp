#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/causal_attention.h"
#include "rlhf/model/gpt.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/optimizer.h"
#include "support/helpers.h"

using namespace rlhf;

TEST_CASE("future tokens never change earlier logits", "[model]") {
    for (const std::string arch : {"gpt2", "gpt1", "llama"}) {
        torch::manual_seed(0);
        ModelConfig cfg = test::tiny_model_of(arch, 50);
        Gpt model(cfg);
        model->eval();
        auto a = torch::randint(0, 50, {2, 16}, torch::kLong);
        auto b = a.clone();
        b.index_put_({torch::indexing::Slice(), torch::indexing::Slice(10, torch::indexing::None)},
                     torch::randint(0, 50, {2, 6}, torch::kLong));  // change tokens 10..15 only
        torch::NoGradGuard ng;
        auto la = model->logits(model->forward(a)), lb = model->logits(model->forward(b));
        using torch::indexing::Slice;
        INFO(arch);
        REQUIRE(torch::equal(la.index({Slice(), Slice(0, 10)}), lb.index({Slice(), Slice(0, 10)})));
        REQUIRE(test::max_abs_diff(la.index({Slice(), Slice(10, 16)}), lb.index({Slice(), Slice(10, 16)})) > 1e-3);
    }
}

// Preset parameter counts match the formula and the released GPT-2 sizes.
TEST_CASE("preset parameter counts match the formula and GPT-2's sizes", "[model]") {
    // Hugging Face parameter counts (vocab 50257, context 1024, biases, tied head).
    const std::map<std::string, int64_t> released = {
        {"gpt2", 124439808}, {"gpt2-medium", 354823168}, {"gpt2-large", 774030080}, {"gpt2-xl", 1557611200}};
    for (const auto& p : model_presets()) {
        if (p.shape.arch != ModelArch::Gpt2) continue;  // the llama family: below
        ModelConfig cfg;
        cfg.preset = p.name;
        apply_model_preset(cfg, {});
        REQUIRE(cfg.vocab_size == 50304);  // GPT-2's layout: padded vocabulary, biases, tanh GELU
        REQUIRE(cfg.bias);
        REQUIRE(cfg.activation == Activation::GeluTanh);
        cfg.vocab_size = 50257;  // the released models' count
        INFO(p.name);
        REQUIRE(gpt_parameter_count(cfg) == released.at(p.name));
    }
}

TEST_CASE("the built model has exactly the formula's parameters", "[model]") {
    for (bool bias : {false, true}) {
        for (const ModelArch arch : {ModelArch::Gpt2, ModelArch::Gpt1}) {
            ModelConfig cfg = test::tiny_model(97);
            cfg.bias = bias;
            cfg.arch = arch;
            Gpt model(cfg);
            INFO(arch << " bias " << bias);
            REQUIRE(model->num_parameters() == gpt_parameter_count(cfg));
        }
    }
}

TEST_CASE("llama switches: built parameters equal the formula", "[model]") {
    for (int variant = 0; variant < 16; ++variant) {
        ModelConfig cfg = test::tiny_llama(97);
        cfg.tie_embeddings = variant & 1;
        cfg.qkv_bias = variant & 2;
        cfg.qk_norm = variant & 4;
        cfg.head_dim = (variant & 8) ? 16 : 0;
        Gpt model(cfg);
        INFO("variant " << variant);
        REQUIRE(model->num_parameters() == gpt_parameter_count(cfg));
        REQUIRE(static_cast<bool>(model->lm_head) == !cfg.tie_embeddings);
        REQUIRE(model->head_weight().size(0) == 97);
    }
}

// The Llama-family presets have the released models' shapes: their parameter counts as
// transformers reports them (tied heads, Qwen2's q/k/v biases, Qwen3's q/k norms and head_dim 128).
TEST_CASE("llama presets have the released parameter counts", "[model]") {
    const std::map<std::string, int64_t> released = {{"smollm2-135m", 134515008}, {"smollm2-360m", 361821120},
                                                     {"qwen2.5-0.5b", 494032768}, {"qwen3-0.6b", 596049920},
                                                     {"llama-3.2-1b", 1235814400}};
    for (const auto& [name, count] : released) {
        ModelConfig cfg;
        cfg.preset = name;
        REQUIRE(apply_model_preset(cfg, {}));
        INFO(name);
        CHECK(cfg.arch == ModelArch::Llama);
        CHECK(gpt_parameter_count(cfg) == count);
    }
    ModelConfig smol;
    smol.preset = "smollm2-135m";
    smol.block_size = 64;  // what a run uses; the model has no position table
    apply_model_preset(smol, {"model.block_size"});
    Gpt model(smol);
    CHECK(model->num_parameters() == 134515008);
}

// Rotary frequencies against transformers' formula, worked by hand for one head width: the
// default type is theta^(-2i/hs); llama3 keeps fast channels, slows slow ones by `factor`, and
// blends the band between.
TEST_CASE("rotary frequencies: default and llama3 scaling", "[model]") {
    ModelConfig cfg = test::tiny_llama(50);
    cfg.head_dim = 8;
    cfg.rope_theta = 500000;
    cfg.rope_scaling = RopeScaling::None;
    auto plain = rotary_inv_freq(cfg);
    REQUIRE(plain.size(0) == 4);
    for (int i = 0; i < 4; ++i) CHECK(plain[i].item<double>() == Approx(std::pow(500000.0, -2.0 * i / 8)).epsilon(1e-6));
    cfg.rope_scaling = RopeScaling::Llama3;  // factor 8, low 1, high 4, original context 16: wavelengths 16 and 4 bound the band
    auto scaled = rotary_inv_freq(cfg);
    for (int i = 0; i < 4; ++i) {
        const double f = std::pow(500000.0, -2.0 * i / 8), wavelen = 2 * M_PI / f;
        double want = f;                                  // wavelen < 4: kept
        if (wavelen > 16) want = f / 8;                   // slowed
        else if (wavelen >= 4) {                          // blended
            const double s = (16 / wavelen - 1) / (4 - 1);
            want = (1 - s) * f / 8 + s * f;
        }
        INFO("channel " << i << " wavelength " << wavelen);
        CHECK(scaled[i].item<double>() == Approx(want).epsilon(1e-5));
    }
    CHECK(scaled[1].item<double>() == Approx(plain[1].item<double>() / 8).epsilon(1e-6));  // wavelength 167: slowed
}

TEST_CASE("gpt2 (124M) builds with 124,439,808 parameters", "[model]") {
    ModelConfig cfg;
    cfg.preset = "gpt2";
    cfg.vocab_size = 50257;
    apply_model_preset(cfg, {"model.vocab_size"});
    Gpt model(cfg);
    REQUIRE(model->num_parameters() == 124439808);
}

TEST_CASE("parameter names follow Hugging Face GPT-2", "[model]") {
    ModelConfig cfg = test::tiny_model(50);
    Gpt model(cfg);
    std::vector<std::string> names;
    for (const auto& p : model->named_parameters()) names.push_back(p.key());
    for (const char* expected :
         {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
          "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_proj.weight",
          "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.bias", "transformer.h.1.ln_2.weight",
          "transformer.ln_f.weight"}) {
        INFO(expected);
        REQUIRE(std::find(names.begin(), names.end(), expected) != names.end());
    }
    REQUIRE(std::none_of(names.begin(), names.end(), [](const std::string& n) { return n.find("lm_head") != std::string::npos; }));
}

// The tied embedding is one tensor in parameters, optimizer and checkpoint.
TEST_CASE("tied embedding: one tensor in params, optimizer, checkpoint", "[model]") {
    Gpt model(test::tiny_model(50));
    const auto* wte = model->transformer->wte->weight.unsafeGetTensorImpl();
    int in_params = 0;
    for (const auto& p : model->parameters()) in_params += p.unsafeGetTensorImpl() == wte;
    REQUIRE(in_params == 1);

    AdamW opt(*model, OptimConfig{});
    int in_opt = 0;
    for (const auto& p : opt.params()) in_opt += p.tensor.unsafeGetTensorImpl() == wte;
    REQUIRE(in_opt == 1);
    REQUIRE(opt.params().size() == model->parameters().size());
    int wte_state = 0;
    for (const auto& [name, t] : opt.state_tensors()) wte_state += name.find("transformer.wte.weight") != std::string::npos;
    REQUIRE(wte_state == 2);  // exp_avg and exp_avg_sq, once each

    // The head uses the embedding tensor itself: a change to wte changes the logits.
    auto idx = torch::tensor({{1, 2, 3}}, torch::kLong);
    torch::NoGradGuard ng;
    auto before = model->logits(model->forward(idx));
    model->transformer->wte->weight.index_put_({7}, 1.0);
    auto after = model->logits(model->forward(idx));
    REQUIRE(test::max_abs_diff(before.index({0, 0, 7}), after.index({0, 0, 7})) > 1e-3);

    test::TempDir dir;
    NamedTensors named;
    for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
    save_safetensors(dir / "m.safetensors", named);
    auto file = load_safetensors(dir / "m.safetensors");
    REQUIRE(file.tensors.count("transformer.wte.weight") == 1);
    REQUIRE(file.tensors.size() == model->parameters().size());
}

// Init follows GPT-2: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
TEST_CASE("init follows GPT-2: N(0, 0.02), residual outputs scaled down", "[model]") {
    torch::manual_seed(0);
    ModelConfig cfg = test::tiny_model(500);
    cfg.n_layer = 8;
    cfg.n_embd = 128;
    cfg.n_head = 4;
    Gpt model(cfg);
    auto params = model->named_parameters();
    REQUIRE(params["transformer.wte.weight"].std().item<double>() == Approx(0.02).epsilon(0.03));
    REQUIRE(params["transformer.h.3.mlp.c_fc.weight"].std().item<double>() == Approx(0.02).epsilon(0.03));
    REQUIRE(params["transformer.h.3.mlp.c_proj.weight"].std().item<double>() == Approx(0.02 / 4.0).epsilon(0.03));
    REQUIRE(params["transformer.h.3.attn.c_proj.weight"].std().item<double>() == Approx(0.02 / 4.0).epsilon(0.05));
    REQUIRE(torch::equal(params["transformer.h.0.ln_1.weight"], torch::ones({128})));
    REQUIRE(params["transformer.h.0.attn.c_attn.bias"].abs().max().item<double>() == 0.0);
}

TEST_CASE("an untrained model's loss is close to ln(vocab)", "[model]") {
    torch::manual_seed(0);
    const int V = 256;
    Gpt model(test::tiny_model(V));
    auto x = torch::randint(0, V, {8, 32}, torch::kLong), y = torch::randint(0, V, {8, 32}, torch::kLong);
    double loss = lm_eval_loss(*model, {{x, y}}, false);
    REQUIRE(loss == Approx(std::log(V)).margin(0.05));
}

TEST_CASE("GPT forward matches an independent PyTorch reference", "[integration][model][reference][light]") {
    for (const std::string arch : {"gpt2", "gpt1"}) {
        torch::manual_seed(3);
        ModelConfig cfg = test::tiny_model(61);
        cfg.arch = enum_from_name<ModelArch>(arch).value();
        cfg.bias = arch == "gpt2";
        Gpt model(cfg);
        model->eval();
        {  // non-trivial LayerNorm gains and biases, so the reference checks them too
            torch::NoGradGuard ng;
            for (auto& p : model->named_parameters()) {
                if (p.key().find("ln_") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.1);
            }
        }
        test::TempDir dir;
        NamedTensors named;
        for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
        save_safetensors(dir / "w.safetensors", named);
        auto idx = torch::randint(0, 61, {3, 20}, torch::kLong);
        save_safetensors(dir / "in.safetensors", {{"idx", idx}});
        nlohmann::json jc = {{"n_layer", cfg.n_layer}, {"n_head", cfg.n_head}, {"n_embd", cfg.n_embd}, {"arch", arch}};
        atomic_write(dir / "cfg.json", jc.dump());
        test::run_python_reference("gpt_reference.py", test::shell_quote((dir / "w.safetensors").string()) + " " +
                                                           test::shell_quote((dir / "cfg.json").string()) + " " +
                                                           test::shell_quote((dir / "in.safetensors").string()) + " " +
                                                           test::shell_quote((dir / "out.safetensors").string()));
        auto ref = load_safetensors(dir / "out.safetensors").tensors.at("logits");
        torch::NoGradGuard ng;
        auto ours = model->logits(model->forward(idx));
        INFO(arch << ": max |ours - reference| = " << test::max_abs_diff(ours, ref));
        REQUIRE(test::max_abs_diff(ours, ref) < 1e-4);
    }
}

// Fused causal attention equals the matmul formulation, values and gradients.
// A llama model's training forward on LibTorch 1.13 rotates q and k and feeds the fused kernel
// (with each query head's k/v copied in); a key mask sends the same model down the matmul path.
TEST_CASE("llama: fused and masked attention agree, with grads", "[model]") {
    torch::manual_seed(0);
    const ModelConfig cfg = test::tiny_llama(64);  // grouped-query, q/k norms, llama3 rotary scaling
    Gpt model(cfg);
    const auto idx = torch::randint(0, 64, {2, 24});
    const auto weights = torch::randn({2, 24, 64});
    auto run = [&](const AttentionContext& ctx) {
        model->zero_grad();
        const auto logits = model->logits(model->forward(idx, ctx));  // (2, 24, 64)
        (logits * weights).sum().backward();
        std::vector<torch::Tensor> grads;
        for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
        return std::make_pair(logits.detach(), grads);
    };
    AttentionContext masked;
    masked.key_mask = torch::ones({2, 24}, torch::kBool);
    const auto [plain_logits, plain_grads] = run({});
    const auto [masked_logits, masked_grads] = run(masked);
    REQUIRE(test::max_abs_diff(plain_logits, masked_logits) < 1e-5);
    for (size_t i = 0; i < plain_grads.size(); ++i) {
        INFO("parameter " << i);
        REQUIRE(test::max_abs_diff(plain_grads[i], masked_grads[i]) < 1e-4);
    }
}

TEST_CASE("fused causal attention equals matmul attention, with grads", "[model]") {
    if (!fused_causal_attention_available()) test::skip("built without CBLAS");
    torch::manual_seed(0);
    const int64_t B = 3, nh = 2, hs = 16, C = nh * hs;
    for (int64_t T : {1, 7, 64}) {
        auto qkv = torch::randn({B, T, 3 * C}, torch::requires_grad());
        auto g = torch::randn({B, T, C});
        auto reference = [&] {
            auto parts = qkv.split(C, 2);
            auto q = parts[0].view({B, T, nh, hs}).transpose(1, 2), k = parts[1].view({B, T, nh, hs}).transpose(1, 2),
                 v = parts[2].view({B, T, nh, hs}).transpose(1, 2);
            auto att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hs));
            att = att.masked_fill(torch::ones({T, T}, torch::kBool).tril().logical_not(), -INFINITY);
            return torch::matmul(torch::softmax(att, -1), v).transpose(1, 2).reshape({B, T, C});
        };
        auto y_ref = reference();
        auto grad_ref = torch::autograd::grad({y_ref}, {qkv}, {g})[0];
        auto y = fused_causal_attention(qkv, nh);
        auto grad = torch::autograd::grad({y}, {qkv}, {g})[0];
        INFO("T=" << T << ": value diff " << test::max_abs_diff(y, y_ref) << ", grad diff "
                  << test::max_abs_diff(grad, grad_ref));
        REQUIRE(test::max_abs_diff(y, y_ref) < 1e-5);
        REQUIRE(test::max_abs_diff(grad, grad_ref) < 1e-4);

        // bf16 input: the same numbers up to bf16 rounding of inputs and outputs
        auto qkv16 = qkv.detach().to(torch::kBFloat16).requires_grad_(true);
        auto y16 = fused_causal_attention(qkv16, nh);
        REQUIRE(y16.scalar_type() == torch::kBFloat16);
        REQUIRE(test::max_abs_diff(y16, y_ref) < 5e-2);
        auto grad16 = torch::autograd::grad({y16}, {qkv16}, {g.to(torch::kBFloat16)})[0];
        REQUIRE(test::max_abs_diff(grad16, grad_ref) < 1e-1);
    }
}
