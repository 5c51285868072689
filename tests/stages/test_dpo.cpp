// DPO: the loss against a PyTorch reference, the response log-probs against generate.h's, and
// whole runs of a tiny pre-trained model on generated rankings (seconds each).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/data/dpo_batches.h"
#include "rlhf/model/generate.h"
#include "rlhf/rl/dpo_loss.h"
#include "rlhf/stages/dpo.h"
#include "rlhf/stages/dpo_step.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "support/greetings.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct DpoBase {
    test::TempDir dir;
    DpoBase() {
        test::write_text(dir / "corpus.txt", demo_corpus(30000) + "Greet Hello Go away Bye\n");
        RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
        cfg.train.max_steps = 20;
        REQUIRE(run_pretrain(cfg, {}) == 0);
        test::write_text(dir / "ranked.jsonl", test::ranked_greetings(120));
    }
    RunConfig dpo_config(const std::string& out) const {
        RunConfig cfg;
        cfg.stage = Stage::Dpo;
        cfg.source = "<test>";
        cfg.out_dir = (dir / out).string();
        cfg.init_from = (dir / "base").string();
        cfg.runtime.threads = 2;
        cfg.runtime.deterministic = true;  // results compared bit for bit, also under load
        cfg.runtime.log_level = "warn";
        cfg.data.files = {(dir / "ranked.jsonl").string()};
        cfg.data.val_fraction = 0.2;
        cfg.dpo.beta = 0.1;
        cfg.optim.lr = 3e-3;
        cfg.optim.min_lr = 3e-4;
        cfg.optim.lr_warmup_steps = 5;
        cfg.optim.lr_decay_steps = 40;  // the same schedule for runs cut short
        cfg.optim.weight_decay = 0;
        cfg.train.max_steps = 40;
        cfg.train.batch_size = 8;
        cfg.train.eval_every = 20;
        cfg.train.eval_batches = 10;
        cfg.checkpoint.every = 10;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
};

std::vector<double> as_vector(const torch::Tensor& t) {
    auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
    return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

}  // namespace

TEST_CASE("DPO and IPO losses and gradients match PyTorch", "[integration][dpo][light]") {
    // Five pairs: chosen well ahead, behind, level, and two large gaps (log σ must not underflow).
    const std::vector<double> pc = {-12.5, -30.0, -7.0, -3.0, -250.0}, pr = {-14.0, -28.5, -7.0, -90.0, -20.0};
    const std::vector<double> rc = {-13.0, -29.0, -7.5, -5.0, -240.0}, rr = {-13.5, -29.5, -6.0, -80.0, -25.0};
    struct Case {
        std::string loss;
        double beta, eps;
    };
    const std::vector<Case> cases = {{"sigmoid", 0.1, 0.0}, {"sigmoid", 0.5, 0.2}, {"ipo", 0.1, 0.0}, {"ipo", 2.0, 0.0}};
    // One Python start for the four cases (importing torch is most of a reference's time).
    test::TempDir dir;
    std::string inputs;
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        nlohmann::json in = {{"beta", c.beta},  {"loss", c.loss},  {"label_smoothing", c.eps}, {"policy_chosen", pc},
                             {"policy_rejected", pr}, {"ref_chosen", rc}, {"ref_rejected", rr}};
        const auto path = dir / ("in" + std::to_string(i) + ".json");
        atomic_write(path, in.dump());
        inputs += " " + test::shell_quote(path.string());
    }
    const auto refs = test::json_lines(test::run_python_reference("dpo_reference.py", inputs));
    REQUIRE(refs.size() == cases.size());
    for (size_t n = 0; n < cases.size(); ++n) {
        const Case& c = cases[n];
        const auto& ref = refs[n];
        INFO(c.loss << " beta " << c.beta << " label smoothing " << c.eps);
        auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
        std::vector<torch::Tensor> x = {torch::tensor(pc, opts), torch::tensor(pr, opts), torch::tensor(rc, opts),
                                        torch::tensor(rr, opts)};
        DpoConfig cfg;
        cfg.loss = enum_from_name<DpoLoss>(c.loss).value();
        cfg.beta = c.beta;
        cfg.label_smoothing = c.eps;
        const auto p = rl::dpo_pair_losses(x[0], x[1], x[2], x[3], cfg);
        const auto loss = p.losses.mean();
        loss.backward();
        REQUIRE(loss.item<double>() == Approx(ref["loss"].get<double>()).epsilon(1e-12).margin(1e-12));
        const char* names[] = {"policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected"};
        for (int i = 0; i < 4; ++i) {
            INFO(names[i]);
            const auto want = ref["grad"][names[i]].get<std::vector<double>>();
            const auto got = as_vector(x[static_cast<size_t>(i)].grad());
            for (size_t k = 0; k < want.size(); ++k) REQUIRE(got[k] == Approx(want[k]).epsilon(1e-10).margin(1e-12));
        }
        const auto m = rl::dpo_metrics(rl::dpo_metric_sums(p));
        REQUIRE(m.pairs == 5);
        REQUIRE(m.loss == Approx(ref["loss"].get<double>()).epsilon(1e-12));
        REQUIRE(m.accuracy == Approx(ref["accuracy"].get<double>()));
        REQUIRE(m.margin == Approx(ref["margin"].get<double>()).epsilon(1e-12));
        const auto chosen = ref["chosen_rewards"].get<std::vector<double>>();
        REQUIRE(m.chosen_reward == Approx((chosen[0] + chosen[1] + chosen[2] + chosen[3] + chosen[4]) / 5).epsilon(1e-12));
    }
}

TEST_CASE("DPO loss by hand: ln 2 at h = 0, ties count half", "[unit][dpo]") {
    DpoConfig cfg;  // sigmoid, beta 0.1
    auto lp = [](std::vector<double> v) { return torch::tensor(v, torch::kFloat64); };
    // policy = reference: h = 0, loss = -log σ(0) = ln 2, both rewards 0 (a tie: accuracy 1/2).
    auto m = rl::dpo_metrics(rl::dpo_metric_sums(rl::dpo_pair_losses(lp({-3, -9}), lp({-4, -1}), lp({-3, -9}), lp({-4, -1}), cfg)));
    REQUIRE(m.loss == Approx(std::log(2.0)));
    REQUIRE(m.accuracy == 0.5);
    REQUIRE(m.margin == 0.0);
    // h = 10: β·h = 1, loss = softplus(-1) = 0.313262; chosen reward 0.1·(−2 − −3) = 0.1.
    cfg.label_smoothing = 0.0;
    m = rl::dpo_metrics(rl::dpo_metric_sums(rl::dpo_pair_losses(lp({-2}), lp({-13}), lp({-3}), lp({-4}), cfg)));
    REQUIRE(m.loss == Approx(std::log1p(std::exp(-1.0))));
    REQUIRE(m.chosen_reward == Approx(0.1));
    REQUIRE(m.rejected_reward == Approx(-0.9));
    REQUIRE(m.accuracy == 1.0);
    // IPO at h = 1/(2β) = 5: loss 0.
    cfg.loss = DpoLoss::Ipo;
    m = rl::dpo_metrics(rl::dpo_metric_sums(rl::dpo_pair_losses(lp({-2}), lp({-8}), lp({-3}), lp({-4}), cfg)));
    REQUIRE(m.loss == Approx(0.0).margin(1e-12));
}

// DPO rows: one per completion, log-probs summed over the response only.
TEST_CASE("DPO rows: one per completion, response log-probs summed", "[unit][dpo]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    torch::manual_seed(3);
    Gpt model(test::tiny_model(tok.vocab_size()));
    model->eval();
    // A multi-turn prompt: the earlier assistant reply is prompt, not response.
    RankedGroup multi{{{"user", "hi"}, {"assistant", "yo"}, {"user", "bye"}}, {"ok.", "no", ""}, {0, 1, 1}, "x:1"};
    RankedGroup pair{{{"user", "abc"}}, {"a long answer", "b"}, {1, 0}, "x:2"};
    DpoRenderOptions opts;
    opts.max_ids = 33;
    DpoRenderCounts counts;
    const auto groups = render_dpo_groups({multi, pair}, tok, opts, /*first_index=*/10, counts);
    REQUIRE(groups.size() == 2);
    REQUIRE(count_completions(groups) == 5);
    REQUIRE(count_pairs(groups) == 3);  // (0,1), (0,2) of the first (1 and 2 tie), (1,0) of the second
    REQUIRE(groups[1].first_completion == 13);
    const auto b = collate_dpo({&groups[0], &groups[1]}, tok.pad_id(), kIgnoreIndex);
    REQUIRE(b.inputs.size(0) == 5);
    REQUIRE(as_vector(b.completion) == std::vector<double>{10, 11, 12, 13, 14});
    REQUIRE(as_vector(b.chosen) == std::vector<double>{0, 0, 4});
    REQUIRE(as_vector(b.rejected) == std::vector<double>{1, 2, 3});
    int64_t first_response = 1 << 20;
    for (const auto& g : groups) for (int64_t s : g.response_start) first_response = std::min(first_response, s);
    REQUIRE(b.first_target == first_response - 1);  // logits from there on only
    const auto got = response_logprobs(*model, b, false);  // (5,)

    // Each completion alone, through generate.h's log-probs: the response tokens and the EOS.
    int64_t row = 0;
    for (const auto& g : groups) {
        for (size_t k = 0; k < g.completions.size(); ++k, ++row) {
            const auto& ids = g.completions[k];
            const int64_t start = g.response_start[k];
            const std::string response = tok.decode({ids.begin() + start, ids.end() - 1});
            INFO("row " << row << ": '" << response << "'");
            REQUIRE(ids.back() == tok.eos_id());
            REQUIRE(ids[static_cast<size_t>(start - 1)] == tok.added_token_id("<|assistant|>"));
            REQUIRE(b.targets[row].ne(kIgnoreIndex).sum().item<int64_t>() == static_cast<int64_t>(ids.size()) - start);
            auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
            auto lp = sequence_logprobs(*model, t, torch::ones_like(t, torch::kBool), start, /*temperature=*/1.0);
            REQUIRE(got[row].item<double>() == Approx(lp.sum().item<double>()).margin(1e-4));
        }
    }
    REQUIRE(tok.decode({groups[0].completions[0].begin() + groups[0].response_start[0], groups[0].completions[0].end() - 1}) == "ok.");
}

// DPO from a model equal to its reference starts at ln 2 and learns the rankings.
TEST_CASE("DPO starts at ln 2 from its reference and learns rankings", "[integration][dpo]") {
    DpoBase base;
    RunConfig cfg = base.dpo_config("dpo");
    REQUIRE(run_dpo(cfg, {}) == 0);
    auto evals = test::metric_records(cfg.out_dir, "eval"), train = test::metric_records(cfg.out_dir, "train");
    REQUIRE(evals.size() == 3);  // steps 0, 20, 40
    REQUIRE(train.size() == 40);
    INFO(evals.front().dump() << "\n" << evals.back().dump());
    // Step 0: the policy IS the reference (its log-probs were cached from the same weights and
    // the same batches): every implicit reward is 0, h = 0, loss -log σ(0) = ln 2, all pairs tie.
    REQUIRE(evals.front()["val_loss"].get<double>() == Approx(std::log(2.0)).margin(1e-6));
    REQUIRE(evals.front()["val_accuracy"].get<double>() == 0.5);
    REQUIRE(std::abs(evals.front()["val_margin"].get<double>()) < 1e-6);
    // The first training step too, before its update (other batches: equal up to rounding).
    REQUIRE(train.front()["loss"].get<double>() == Approx(std::log(2.0)).margin(1e-4));
    REQUIRE(std::abs(train.front()["margin"].get<double>()) < 1e-4);

    // Learning: accuracy and margin rise, on the training batches and on held-out prompts.
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += train[static_cast<size_t>(i)]["accuracy"].get<double>() / 5;
    for (int i = 35; i < 40; ++i) last += train[static_cast<size_t>(i)]["accuracy"].get<double>() / 5;
    REQUIRE(last > first);
    REQUIRE(last >= 0.9);
    REQUIRE(train.back()["margin"].get<double>() > 0.5);
    REQUIRE(evals.back()["val_accuracy"].get<double>() >= 0.9);
    REQUIRE(evals.back()["val_margin"].get<double>() > 0.5);
    REQUIRE(evals.back()["val_loss"].get<double>() < 0.5 * std::log(2.0));
    REQUIRE(evals.back()["val_chosen_reward"].get<double>() > evals.back()["val_rejected_reward"].get<double>());

    // The checkpoint is a policy: generate takes it, and it records where its reference came from.
    auto info = read_checkpoint_info(resolve_checkpoint(cfg.out_dir));
    REQUIRE(info.config.stage == Stage::Dpo);
    REQUIRE_THAT(info.stage_state["lineage"]["reference"].get<std::string>(), Contains("base"));
    auto gen = test::run_cli("generate --checkpoint " + test::shell_quote(cfg.out_dir) +
                             " --prompt 'Greet Anna' --max-new-tokens 8 --temperature 0 --threads 1");
    INFO(gen.output);
    REQUIRE(gen.exit_code == 0);

    // dpo.reference: the trained run as the reference of the base policy, which then prefers
    // the chosen responses less than its reference does (a negative margin at step 0).
    RunConfig other = base.dpo_config("other");
    other.dpo.reference = cfg.out_dir;
    other.train.max_steps = 1;
    REQUIRE(run_dpo(other, {}) == 0);
    auto other_evals = test::metric_records(other.out_dir, "eval");
    REQUIRE(other_evals.front()["val_margin"].get<double>() < -0.5);
    info = read_checkpoint_info(resolve_checkpoint(other.out_dir));
    REQUIRE_THAT(info.stage_state["lineage"]["reference"].get<std::string>(), Contains("dpo"));
}

// DPO run resumed from a checkpoint equals an uninterrupted run.
TEST_CASE("a resumed DPO run equals an uninterrupted one", "[integration][dpo]") {
    DpoBase base;
    RunConfig full = base.dpo_config("full");
    full.train.max_steps = 20;
    full.train.eval_every = 10;
    full.dpo.label_smoothing = 0.1;  // the other loss parameters travel too
    REQUIRE(run_dpo(full, {}) == 0);
    RunConfig part = full;
    part.out_dir = (base.dir / "part").string();
    part.train.max_steps = 10;
    REQUIRE(run_dpo(part, {}) == 0);
    part.train.max_steps = 20;
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_dpo(part, resume) == 0);
    auto a = test::metric_records(full.out_dir, "train"), b = test::metric_records(part.out_dir, "train");
    REQUIRE(a.size() == 20);
    REQUIRE(b.size() == 20);
    for (size_t i = 0; i < a.size(); ++i) {
        INFO("step " << i + 1);
        for (const char* key : {"loss", "accuracy", "margin", "chosen_reward", "rejected_reward", "grad_norm"}) {
            REQUIRE(a[i][key].get<double>() == b[i][key].get<double>());
        }
    }
    auto ea = test::metric_records(full.out_dir, "eval"), eb = test::metric_records(part.out_dir, "eval");
    REQUIRE(ea.back()["val_loss"].get<double>() == eb.back()["val_loss"].get<double>());
    auto ma = load_model_from_checkpoint(full.out_dir, torch::kCPU), mb = load_model_from_checkpoint(part.out_dir, torch::kCPU);
    auto pa = ma.model->named_parameters(), pb = mb.model->named_parameters();
    for (const auto& item : pa) REQUIRE(torch::equal(item.value(), pb[item.key()]));

    // The resumed run needs no reference model: it reads the cached log-probs, which must belong
    // to the same data.
    test::write_text(base.dir / "more.jsonl", test::ranked_greetings(130));
    part.data.files = {(base.dir / "more.jsonl").string()};
    part.train.max_steps = 22;
    REQUIRE_THROWS_WITH(run_dpo(part, resume), Contains("differ from those the run started with"));
}

TEST_CASE("DPO input errors are one clear line", "[integration][dpo]") {
    DpoBase base;
    // Every group has a completion longer than the 32-token window: no pair is left.
    std::string too_long;
    for (int i = 0; i < 10; ++i) {
        too_long += std::string("{\"prompt\": \"Greet ") + test::kGreetNames[i] + "\", \"chosen\": \"Hello " + test::kGreetNames[i] +
                    ", it is a great pleasure to meet you today.\", \"rejected\": \"Go away.\"}\n";
    }
    test::write_text(base.dir / "long.jsonl", too_long);
    RunConfig cfg = base.dpo_config("long");
    cfg.data.files = {(base.dir / "long.jsonl").string()};
    cfg.data.too_long = TooLong::Skip;
    REQUIRE_THROWS_WITH(run_dpo(cfg, {}), Contains("no usable comparison pair") && Contains("long.jsonl") &&
                                              Contains("context window of 32 tokens") && Contains("data.too_long: truncate"));

    // All groups tied: the reader stops at the first one (file:line), or with on_error: skip
    // finds nothing usable.
    std::string tied;
    for (int i = 0; i < 4; ++i) tied += "{\"prompt\": \"Greet Ben\", \"responses\": [\"Hi\", \"Yo\"], \"ranks\": [0, 0]}\n";
    test::write_text(base.dir / "tied.jsonl", tied);
    cfg = base.dpo_config("tied");
    cfg.data.files = {(base.dir / "tied.jsonl").string()};
    REQUIRE_THROWS_WITH(run_dpo(cfg, {}), Contains("tied.jsonl:1") && Contains("all ranks are tied"));
    cfg.data.on_error = OnError::Skip;
    REQUIRE_THROWS_WITH(run_dpo(cfg, {}), Contains("tied.jsonl") && Contains("no usable comparisons"));

    cfg = base.dpo_config("dropout");
    cfg.model.dropout = 0.1;  // config validation refuses it (rlhf train and rlhf config show alike)
    REQUIRE_THROWS_WITH(load_config_text(dump_config(cfg), "<test>"), Contains("model.dropout"));

    cfg = base.dpo_config("ipo");
    cfg.dpo.loss = DpoLoss::Ipo;
    cfg.dpo.label_smoothing = 0.1;
    REQUIRE_THROWS_WITH(load_config_text(dump_config(cfg), "<test>"), Contains("dpo.label_smoothing"));

    cfg = base.dpo_config("ref");
    cfg.dpo.reference = (base.dir / "missing").string();
    REQUIRE_THROWS_WITH(run_dpo(cfg, {}), Contains("dpo.reference") && Contains("does not exist"));
}
