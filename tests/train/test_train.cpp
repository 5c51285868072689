#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <limits>

#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/signals.h"
#include "rlhf/model/gpt.h"
#include "rlhf/train/ema.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/lr_schedule.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/step_loop.h"
#include "rlhf/core/precision.h"
#include "support/helpers.h"

using namespace rlhf;

// Learning rate: warmup end, cosine midpoint and end, computed by hand.
TEST_CASE("learning rate at warmup end, cosine middle and end, by hand", "[train]") {
    OptimConfig o;
    o.lr = 1e-3;
    o.min_lr = 1e-4;
    o.lr_warmup_steps = 100;
    o.lr_decay_steps = 0;  // = max_steps
    const int64_t max_steps = 2100;
    REQUIRE(lr_at(0, o, max_steps) == Approx(1e-3 * 1 / 101));       // first warmup step
    REQUIRE(lr_at(99, o, max_steps) == Approx(1e-3 * 100 / 101));    // last warmup step
    REQUIRE(lr_at(100, o, max_steps) == Approx(1e-3));               // warmup end: the peak
    // midpoint of the decay (step 1100 of 100..2100): cos(pi/2) = 0 -> (lr + min_lr) / 2
    REQUIRE(lr_at(1100, o, max_steps) == Approx(5.5e-4));
    // a quarter in: min + (lr - min) * (1 + cos(pi/4)) / 2
    REQUIRE(lr_at(600, o, max_steps) == Approx(1e-4 + 9e-4 * (1 + std::sqrt(0.5)) / 2));
    REQUIRE(lr_at(2100, o, max_steps) == Approx(1e-4));               // end
    REQUIRE(lr_at(5000, o, max_steps) == Approx(1e-4));               // past the end: floor
    o.lr_decay_steps = 1100;
    REQUIRE(lr_at(600, o, max_steps) == Approx(5.5e-4));             // explicit decay horizon
}

TEST_CASE("AdamW decays >=2-D tensors only, by hand on one element", "[train]") {
    Gpt model(test::tiny_model(40));
    OptimConfig o;
    o.weight_decay = 0.1;
    AdamW opt(*model, o);
    int decayed = 0;
    for (const auto& p : opt.params()) {
        INFO(p.name);
        REQUIRE(p.decay == (p.tensor.dim() >= 2));
        decayed += p.decay;
    }
    REQUIRE(decayed > 0);
    // One step with gradient g = 1 everywhere, lr 0.1, no clipping. Bias-corrected first step:
    // m_hat = g, v_hat = g^2, so update = lr * g / (|g| + eps) = 0.1; decayed tensors first
    // shrink by (1 - lr * wd) = 0.99.
    torch::NoGradGuard ng;
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : opt.params()) {
        before[p.name] = p.tensor.clone();
        p.tensor.mutable_grad() = torch::ones_like(p.tensor);
    }
    opt.step(0.1, 0.0);
    for (const auto& p : opt.params()) {
        const double factor = p.decay ? 0.99 : 1.0;
        auto expected = before[p.name] * factor - 0.1 * (1.0 / (1.0 + 1e-8));
        INFO(p.name);
        REQUIRE(test::max_abs_diff(p.tensor, expected) < 1e-6);
        REQUIRE(p.tensor.grad().abs().sum().item<double>() == 0.0);  // gradients are zeroed
    }
    REQUIRE(opt.steps_taken() == 1);
}

// AdamW epsilon placement: PyTorch style vs TensorFlow style, by hand.
TEST_CASE("AdamW epsilon placement, PyTorch vs TensorFlow, by hand", "[train]") {
    // First step, g = 0.001 on one weight, beta2 = 0.999, eps = 1e-3 (large, to see it):
    //   v = 0.001 * g^2, bias2 = 0.001; m_hat = g, sqrt(v_hat) = |g| = 1e-3
    //   torch: lr * g / (sqrt(v_hat) + eps)        = lr * 1e-3 / 2e-3              = 0.5 lr
    //   tf:    lr * g / (sqrt(v_hat) + eps/sqrt(bias2)) = lr * 1e-3 / (1e-3 + 1e-3/sqrt(1e-3))
    for (const std::string style : {"torch", "tf"}) {
        torch::nn::Linear lin(torch::nn::LinearOptions(1, 1).bias(false));
        OptimConfig o;
        o.weight_decay = 0.0;
        o.beta2 = 0.999;
        o.eps = 1e-3;
        o.eps_style = enum_from_name<EpsStyle>(style).value();
        AdamW opt(*lin, o);
        torch::NoGradGuard ng;
        const double w0 = lin->weight.item<double>();
        lin->weight.mutable_grad() = torch::full({1, 1}, 1e-3);
        opt.step(1.0, 0.0);
        const double expected = style == "torch" ? 0.5 : 1e-3 / (1e-3 + 1e-3 / std::sqrt(1e-3));
        INFO(style);
        REQUIRE(w0 - lin->weight.item<double>() == Approx(expected).epsilon(1e-4));
    }
}

// Gradient clipping scales to the max norm and reports the norm before.
TEST_CASE("gradient clipping scales to max norm, reports the prior norm", "[train]") {
    torch::nn::Linear lin(3, 2);
    OptimConfig o;
    o.weight_decay = 0.0;
    AdamW opt(*lin, o);
    torch::NoGradGuard ng;
    lin->weight.mutable_grad() = torch::full({2, 3}, 2.0);  // norm sqrt(6 * 4 + 2 * 1) = sqrt(26)
    lin->bias.mutable_grad() = torch::ones({2});
    REQUIRE(opt.grad_norm() == Approx(std::sqrt(26.0)));
    auto w0 = lin->weight.clone();
    REQUIRE(opt.step(1e-3, 1.0) == Approx(std::sqrt(26.0)));
    // Adam's first step is lr * sign(g) whatever the scale, so check the moments instead:
    // m = (1 - beta1) * g * (1 / sqrt(26)).
    auto state = opt.state_tensors();
    auto m = std::find_if(state.begin(), state.end(), [](const auto& kv) { return kv.first == "exp_avg.weight"; })->second;
    REQUIRE(m[0][0].item<double>() == Approx(0.1 * 2.0 / std::sqrt(26.0)).epsilon(1e-5));
}

namespace {
// A small model with a 2-D (decayed) and a 1-D tensor, the same start for every kernel.
struct AdamWRun {
    bool seeded = (torch::manual_seed(7), true);  // before lin: every run starts from the same weights
    torch::nn::Linear lin{torch::nn::LinearOptions(8, 4)};
    AdamW opt;
    AdamWRun(const OptimConfig& o, AdamW::Kernel kernel) : opt(*lin, o) { opt.use_kernel(kernel); }
    // Steps with gradients drawn from a fixed stream; returns the weights and the reported norms.
    std::pair<std::vector<torch::Tensor>, std::vector<double>> run(int steps, double clip) {
        torch::NoGradGuard ng;
        auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
        std::vector<double> norms;
        for (int s = 0; s < steps; ++s) {
            for (auto& p : lin->parameters()) p.mutable_grad() = torch::randn(p.sizes(), gen) * 3.0;
            norms.push_back(opt.step(1e-2, clip));
        }
        return {{lin->weight.clone(), lin->bias.clone()}, norms};
    }
};
}  // namespace

// AdamW kernels agree: the CPU loop, PyTorch's fused kernel and plain tensor ops.
TEST_CASE("AdamW kernels agree: CPU loop, fused kernel, tensor ops", "[train]") {
    std::vector<AdamW::Kernel> kernels = {AdamW::Kernel::tensor_ops};
    if (AdamW::has_torch_fused()) kernels.push_back(AdamW::Kernel::torch_fused);  // LibTorch >= 2.4
    for (const char* eps_style : {"torch", "tf"}) {
        OptimConfig o;
        o.weight_decay = 0.1;
        o.eps = 1e-3;  // large, so the two eps placements differ visibly
        o.eps_style = enum_from_name<EpsStyle>(eps_style).value();
        auto [want, want_norms] = AdamWRun(o, AdamW::Kernel::cpu_loop).run(5, 1.0);  // clipping active
        for (auto kernel : kernels) {
            INFO("eps_style " << eps_style << ", kernel " << static_cast<int>(kernel));
            auto [got, got_norms] = AdamWRun(o, kernel).run(5, 1.0);
            for (size_t i = 0; i < want.size(); ++i) REQUIRE(test::max_abs_diff(got[i], want[i]) < 1e-6);
            for (size_t i = 0; i < want_norms.size(); ++i) REQUIRE(got_norms[i] == Approx(want_norms[i]).epsilon(1e-5));
        }
    }
}

// An AdamW step with a non-finite gradient changes no weight and no moment.
TEST_CASE("a non-finite gradient changes no weight and no AdamW moment", "[train]") {
    std::vector<AdamW::Kernel> kernels = {AdamW::Kernel::cpu_loop, AdamW::Kernel::tensor_ops};
    if (AdamW::has_torch_fused()) kernels.push_back(AdamW::Kernel::torch_fused);
    for (auto kernel : kernels) {
        INFO("kernel " << static_cast<int>(kernel));
        AdamWRun r(OptimConfig{}, kernel);
        r.run(2, 1.0);
        const auto weight = r.lin->weight.clone();
        const auto moments = r.opt.state_tensors();
        torch::NoGradGuard ng;
        r.lin->weight.mutable_grad() = torch::ones_like(r.lin->weight);
        r.lin->weight.mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
        r.lin->bias.mutable_grad() = torch::ones_like(r.lin->bias);
        REQUIRE(std::isinf(r.opt.step(1e-2, 1.0)));
        REQUIRE(torch::equal(r.lin->weight, weight));
        const auto after = r.opt.state_tensors();
        for (size_t i = 0; i < moments.size(); ++i) REQUIRE(torch::equal(after[i].second, moments[i].second));
        REQUIRE(r.lin->weight.grad().abs().sum().item<double>() == 0.0);  // gradients still cleared
    }
}

// A training step whose loss is NaN stops with a clear error and leaves the weights as they were.
TEST_CASE("a NaN loss stops with a clear error, weights untouched", "[train]") {
    torch::manual_seed(0);
    Gpt model(test::tiny_model(40));
    AdamW opt(*model, OptimConfig{});
    auto x = torch::randint(0, 40, {2, 16}, torch::kLong);
    lm_train_step(*model, opt, {{x, x}}, 1e-3, 1.0, false);
    std::vector<torch::Tensor> before;
    {
        torch::NoGradGuard ng;
        model->transformer->wte->weight[3][0] = std::numeric_limits<float>::quiet_NaN();  // poisons every row using token 3
    }
    x[0][0] = 3;
    before.clear();  // the NaN we put there counts as "as it was"
    for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
    REQUIRE_THROWS_WITH(lm_train_step(*model, opt, {{x, x}}, 1e-3, 1.0, false),
                        Catch::Contains("loss became") && Catch::Contains("nan"));
    const auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        REQUIRE(torch::allclose(params[i].detach(), before[i], 0.0, 0.0, /*equal_nan=*/true));
    }
}

// 1 x 8 and 8 x 1 gradient accumulation give the same gradients.
TEST_CASE("gradient accumulation 1 x 8 and 8 x 1 give equal gradients", "[train]") {
    torch::manual_seed(0);
    Gpt model(test::tiny_model(40));
    auto x = torch::randint(0, 40, {8, 32}, torch::kLong);
    auto y = torch::randint(0, 40, {8, 32}, torch::kLong);
    y.index_put_({3, torch::indexing::Slice(0, 20)}, kIgnoreIndex);  // uneven targets per row

    auto grads = [&](const std::vector<LmBatch>& mbs) {
        for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
        double loss = lm_accumulate_gradients(*model, mbs, false);
        std::vector<torch::Tensor> g;
        for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
        return std::make_pair(loss, g);
    };
    auto [loss_one, g_one] = grads({{x, y}});
    std::vector<LmBatch> eight;
    for (int64_t i = 0; i < 8; ++i) eight.push_back({x.index({torch::indexing::Slice(i, i + 1)}), y.index({torch::indexing::Slice(i, i + 1)})});
    auto [loss_eight, g_eight] = grads(eight);
    REQUIRE(loss_one == Approx(loss_eight).epsilon(1e-6));
    for (size_t i = 0; i < g_one.size(); ++i) {
        INFO("parameter " << i << " max diff " << test::max_abs_diff(g_one[i], g_eight[i]));
        REQUIRE(test::max_abs_diff(g_one[i], g_eight[i]) < 1e-6);
    }
}

TEST_CASE("a tiny model overfits one batch", "[train]") {
    torch::manual_seed(0);
    Gpt model(test::tiny_model(40));
    OptimConfig o;
    o.lr = 3e-3;
    AdamW opt(*model, o);
    auto batch = torch::randint(0, 40, {4, 33}, torch::kLong);
    LmBatch b{batch.index({torch::indexing::Slice(), torch::indexing::Slice(0, 32)}).contiguous(),
              batch.index({torch::indexing::Slice(), torch::indexing::Slice(1, 33)}).contiguous()};
    double first = 0, last = 0;
    for (int step = 0; step < 150; ++step) {
        auto stats = lm_train_step(*model, opt, {b}, 3e-3, 1.0, false);
        if (step == 0) first = stats.loss;
        last = stats.loss;
    }
    INFO("loss " << first << " -> " << last);
    REQUIRE(first == Approx(std::log(40.0)).margin(0.2));
    REQUIRE(last < 0.1);
}

TEST_CASE("bf16 autocast tracks fp32 and leaves weights fp32", "[train]") {
    torch::manual_seed(0);
    Gpt model(test::tiny_model(40));
    auto x = torch::randint(0, 40, {4, 32}, torch::kLong), y = torch::randint(0, 40, {4, 32}, torch::kLong);
    double fp32 = lm_eval_loss(*model, {{x, y}}, false);
    double bf16 = lm_eval_loss(*model, {{x, y}}, true);
    REQUIRE(bf16 == Approx(fp32).margin(0.02));
    {
        AutocastGuard guard(true, torch::kCPU);
        auto h = model->forward(x);
        REQUIRE(h.scalar_type() == torch::kFloat32);  // LayerNorm output stays fp32
        REQUIRE(model->transformer->wte->weight.scalar_type() == torch::kFloat32);
    }
    // the guard restored the previous state: plain matmuls are fp32 again
    REQUIRE(torch::matmul(torch::randn({2, 2}), torch::randn({2, 2})).scalar_type() == torch::kFloat32);
}

// Training steps match an independent PyTorch reference (AdamW, clipping, schedule).
TEST_CASE("training steps match an independent PyTorch reference", "[integration][train][reference]") {
    torch::manual_seed(4);
    ModelConfig cfg = test::tiny_model(37);
    cfg.bias = false;
    Gpt model(cfg);
    OptimConfig o;
    o.lr = 1e-2;  // large enough that clipping and decay matter
    o.min_lr = 1e-3;
    o.lr_warmup_steps = 3;
    o.lr_decay_steps = 10;
    o.beta2 = 0.99;
    o.weight_decay = 0.1;
    o.grad_clip = 0.5;
    const int steps = 12;
    AdamW opt(*model, o);

    test::TempDir dir;
    NamedTensors w0;
    for (const auto& p : model->named_parameters()) w0.emplace_back(p.key(), p.value().clone());
    save_safetensors(dir / "w0.safetensors", w0);
    auto xs = torch::randint(0, 37, {steps, 4, 16}, torch::kLong), ys = torch::randint(0, 37, {steps, 4, 16}, torch::kLong);
    save_safetensors(dir / "batches.safetensors", {{"x", xs}, {"y", ys}});
    nlohmann::json c = {{"n_layer", cfg.n_layer}, {"n_head", cfg.n_head}, {"n_embd", cfg.n_embd}, {"arch", "gpt2"},
                        {"lr", o.lr}, {"min_lr", o.min_lr}, {"warmup", o.lr_warmup_steps}, {"decay", o.lr_decay_steps},
                        {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
                        {"grad_clip", o.grad_clip}, {"steps", steps}};
    atomic_write(dir / "cfg.json", c.dump());
    test::run_python_reference("train_reference.py", test::shell_quote((dir / "w0.safetensors").string()) + " " +
                                                         test::shell_quote((dir / "cfg.json").string()) + " " +
                                                         test::shell_quote((dir / "batches.safetensors").string()) + " " +
                                                         test::shell_quote((dir / "out.safetensors").string()));
    auto ref = load_safetensors(dir / "out.safetensors").tensors;
    for (int s = 0; s < steps; ++s) {
        auto stats = lm_train_step(*model, opt, {{xs[s], ys[s]}}, lr_at(s, o, steps), o.grad_clip, false);
        INFO("step " << s);
        REQUIRE(stats.loss == Approx(ref.at("losses")[s].item<double>()).epsilon(1e-5));
    }
    for (const auto& p : model->named_parameters()) {
        INFO(p.key() << " max diff " << test::max_abs_diff(p.value(), ref.at(p.key())));
        REQUIRE(test::max_abs_diff(p.value(), ref.at(p.key())) < 1e-5);
    }
}

namespace {

// The loop alone, on steps that do nothing: max_steps steps, a checkpoint every `every`.
RunConfig loop_config(const test::TempDir& dir, int64_t max_steps, int64_t every) {
    RunConfig cfg;
    cfg.out_dir = dir.path().string();
    cfg.train.max_steps = max_steps;
    cfg.train.eval_every = 0;
    cfg.train.log_every = 100;
    cfg.checkpoint.every = every;
    return cfg;
}

}  // namespace

// The step loop evaluates and saves on schedule, and a resume picks up the schedule.
TEST_CASE("the step loop evaluates and saves on schedule, resumed too", "[train]") {
    test::TempDir dir;
    RunConfig cfg = loop_config(dir, 5, 3);
    cfg.train.eval_every = 2;
    TrainState state;
    MetricsWriter metrics(dir / "metrics.jsonl", -1);
    std::vector<int64_t> evals, saves;
    std::vector<double> lrs;
    auto run = [&] {
        StepLoop loop("test", cfg, state, metrics);
        if (loop.eval_due()) evals.push_back(state.step);
        while (loop.running()) {
            lrs.push_back(loop.lr());
            loop.end_step(StepReport{});
            if (loop.eval_due()) evals.push_back(state.step);
            if (loop.save_due()) saves.push_back(state.step);
        }
        return loop.finish();
    };
    REQUIRE(run() == 0);
    REQUIRE(state.step == 5);
    REQUIRE(evals == std::vector<int64_t>{0, 2, 4, 5});  // step 0, every 2, and the last
    REQUIRE(saves == std::vector<int64_t>{3, 5});       // every 3, and the last
    REQUIRE(lrs.size() == 5);
    REQUIRE(lrs[0] == Approx(lr_at(0, cfg.optim, 5)));
    REQUIRE(read_metrics(dir / "metrics.jsonl").size() == 5);  // one train record per step

    // Resumed at step 5 with max_steps 8: no step-0 evaluation, eval at 6 and 8, save at 6 and 8.
    cfg.train.max_steps = 8;
    evals.clear();
    saves.clear();
    REQUIRE(run() == 0);
    REQUIRE(evals == std::vector<int64_t>{6, 8});
    REQUIRE(saves == std::vector<int64_t>{6, 8});

    // Nothing left to train: the loop does not run, evaluates nothing and saves nothing.
    evals.clear();
    saves.clear();
    REQUIRE(run() == 0);
    REQUIRE(evals.empty());
    REQUIRE(saves.empty());
}

// A stop signal at a step that was just checkpointed saves it once, not twice.
TEST_CASE("a stop at a just-checkpointed step saves it once, not twice", "[train]") {
    test::TempDir dir;
    const RunConfig cfg = loop_config(dir, 10, 4);
    TrainState state;
    MetricsWriter metrics(dir / "metrics.jsonl", -1);
    std::vector<int64_t> saved_at;
    reset_stop_request();
    StepLoop loop("test", cfg, state, metrics);
    while (loop.running()) {
        if (state.step == 3) std::raise(SIGTERM);  // lands during the step that ends at 4, a checkpoint step
        loop.end_step(StepReport{});
        if (loop.save_due()) saved_at.push_back(state.step);  // the reward stage writes its normalisation here
    }
    reset_stop_request();
    const LoopResult result = loop.result();
    REQUIRE(result.exit_code == 128 + SIGTERM);
    REQUIRE(saved_at == std::vector<int64_t>{4});
}

// A metrics write that fails (a full disk) stops the run at once, keeping the step.
TEST_CASE("a failed metrics write stops the run, keeping the step", "[train]") {
    test::TempDir dir;
    // /dev/full fails every write with ENOSPC, as a full disk does.
    std::filesystem::create_symlink("/dev/full", dir / "metrics.jsonl");
    const RunConfig cfg = loop_config(dir, 50, 20);
    TrainState state;
    MetricsWriter metrics(dir / "metrics.jsonl", -1);
    std::vector<int64_t> saved_at;
    int steps = 0;
    StepLoop loop("test", cfg, state, metrics);
    auto run = [&] {
        while (loop.running()) {
            ++steps;
            loop.end_step(StepReport{});
            if (loop.save_due()) {  // as the reward stage's save does: a record (its normalisation), then the save
                loop.record({{"type", "normalisation"}, {"step", state.step}});
                saved_at.push_back(state.step);
            }
        }
    };
    REQUIRE_THROWS_WITH(run(), Catch::Contains("metrics.jsonl") && Catch::Contains("cannot write metrics") &&
                                   Catch::Contains("No space left") && Catch::Contains("saved a checkpoint of step 1"));
    REQUIRE(steps == 1);
    REQUIRE(saved_at == std::vector<int64_t>{1});
    REQUIRE(metrics.failed());
}

// EMA weights: decay · ema + (1 - decay) · θ after each step, named as the model, loaded back.
TEST_CASE("EMA weights: decay x ema + (1 - decay) x w, saved, reloaded", "[train][ema]") {
    torch::nn::Linear model(2, 1);
    {
        torch::NoGradGuard no_grad;
        model->weight.copy_(torch::tensor({{1.0f, 2.0f}}));
        model->bias.fill_(0.0f);
    }
    EmaWeights ema(*model, 0.9);
    {
        torch::NoGradGuard no_grad;
        model->weight.copy_(torch::tensor({{3.0f, 4.0f}}));
        model->bias.fill_(10.0f);
    }
    ema.update(*model);  // 0.9·(1, 2) + 0.1·(3, 4) = (1.2, 2.2); bias 0.9·0 + 0.1·10 = 1
    ema.update(*model);  // 0.9·(1.2, 2.2) + 0.1·(3, 4) = (1.38, 2.38); bias 1.9
    const auto named = ema.named(*model);
    REQUIRE(named.size() == 2);
    REQUIRE(named[0].first == "weight");
    REQUIRE(named[0].second[0][0].item<float>() == Approx(1.38));
    REQUIRE(named[0].second[0][1].item<float>() == Approx(2.38));
    REQUIRE(named[1].first == "bias");
    REQUIRE(named[1].second[0].item<float>() == Approx(1.9));
    REQUIRE(model->weight[0][0].item<float>() == 3.0f);  // the model itself is untouched

    EmaWeights other(*model, 0.9);
    other.load(*model, {named.begin(), named.end()}, "ema.safetensors");
    REQUIRE(torch::equal(other.named(*model)[0].second, named[0].second));
    REQUIRE_THROWS_WITH(other.load(*model, {{"weight", named[0].second}}, "x/ema.safetensors"),
                        Catch::Contains("x/ema.safetensors") && Catch::Contains("'bias' is missing"));
}
