// GPT-1's task fine-tuning (stage: classify): the input transformations, the heads and the
// objective against a PyTorch reference, and whole tiny runs (learning, exact resume, rlhf eval,
// bad input).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/precision.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/data/task_inputs.h"
#include "rlhf/model/task_model.h"
#include "rlhf/stages/classify.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/task_step.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// A character tokenizer with the chat and the task tokens, as a classify run has them.
struct TaskTokenizer {
    test::TempDir dir;
    Tokenizer tok = test::chat_char_tokenizer(dir.path()).with_added_tokens(kTaskTokens);
    TaskTokenIds ids = task_token_ids(tok);
    std::vector<int32_t> enc(const std::string& s) const { return tok.encode(s); }
};

std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

TaskModel tiny_task_model(const Tokenizer& tok, TaskType type, int num_classes) {
    torch::manual_seed(7);
    auto m = TaskModel(Gpt(test::tiny_model(tok.vocab_size())), type, num_classes, 0.1);
    m->eval();
    return m;
}

nlohmann::json to_json(const torch::Tensor& t) {
    auto d = t.to(torch::kDouble).contiguous();
    if (d.dim() == 1) return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
    nlohmann::json out = nlohmann::json::array();
    for (int64_t i = 0; i < d.size(0); ++i) out.push_back(to_json(d[i]));
    return out;
}

}  // namespace

TEST_CASE("classify: each task type's input transformation", "[classify]") {
    TaskTokenizer t;
    const auto& s = t.ids;
    TaskExample e;
    e.text = "a cat";
    e.text_b = "dog";
    e.choices = {"yes", "no", "maybe"};
    e.label = 1;

    auto one = render_task_input(e, TaskType::Classification, t.tok, s, 32);
    REQUIRE(one.rows.size() == 1);
    CHECK(one.rows[0] == cat({{s.start}, t.enc("a cat"), {s.extract}}));  // text_b and choices unused

    auto pair = render_task_input(e, TaskType::Entailment, t.tok, s, 32);
    REQUIRE(pair.rows.size() == 1);
    CHECK(pair.rows[0] == cat({{s.start}, t.enc("a cat"), {s.delim}, t.enc("dog"), {s.extract}}));

    auto sim = render_task_input(e, TaskType::Similarity, t.tok, s, 32);
    REQUIRE(sim.rows.size() == 2);  // both orders
    CHECK(sim.rows[0] == cat({{s.start}, t.enc("a cat"), {s.delim}, t.enc("dog"), {s.extract}}));
    CHECK(sim.rows[1] == cat({{s.start}, t.enc("dog"), {s.delim}, t.enc("a cat"), {s.extract}}));

    auto mc = render_task_input(e, TaskType::MultipleChoice, t.tok, s, 32);
    REQUIRE(mc.rows.size() == 3);  // one row per answer, the context in each
    for (size_t k = 0; k < 3; ++k) {
        CHECK(mc.rows[k] == cat({{s.start}, t.enc("a cat"), {s.delim}, t.enc(e.choices[k]), {s.extract}}));
    }
    CHECK(mc.label == 1);

    SECTION("texts longer than the window are cut, the longer first; the extract token stays last") {
        TaskExample longer;
        longer.text = std::string(40, 'a');
        longer.text_b = "bcd";
        int64_t truncated = 0;
        auto r = render_task_input(longer, TaskType::Entailment, t.tok, s, 16, &truncated);
        CHECK(truncated == 1);
        REQUIRE(r.rows[0].size() == 16);
        CHECK(r.rows[0] == cat({{s.start}, t.enc(std::string(10, 'a')), {s.delim}, t.enc("bcd"), {s.extract}}));
        auto sym = render_task_input(longer, TaskType::Similarity, t.tok, s, 16);
        CHECK(sym.rows[1] == cat({{s.start}, t.enc("bcd"), {s.delim}, t.enc(std::string(10, 'a')), {s.extract}}));
    }
}

// Classify: extract positions, LM targets and scores under right padding.
TEST_CASE("classify: extract positions, LM targets, scores, right pad", "[classify]") {
    TaskTokenizer t;
    TaskExample short_one, long_one;
    short_one.text = "ab";
    short_one.label = 0;
    long_one.text = "a much longer text";
    long_one.label = 1;
    const auto a = render_task_input(short_one, TaskType::Classification, t.tok, t.ids, 32);
    const auto b = render_task_input(long_one, TaskType::Classification, t.tok, t.ids, 32);
    const auto batch = collate_task_inputs({&a, &b}, false, t.tok.pad_id());
    const int64_t La = static_cast<int64_t>(a.rows[0].size()), Lb = static_cast<int64_t>(b.rows[0].size());
    REQUIRE(batch.ids.sizes() == torch::IntArrayRef({2, Lb}));
    CHECK(batch.extract_pos[0].item<int64_t>() == La - 1);
    CHECK(batch.extract_pos[1].item<int64_t>() == Lb - 1);
    CHECK(batch.ids[0][La - 1].item<int64_t>() == t.ids.extract);
    CHECK(batch.ids[0][La].item<int64_t>() == t.tok.pad_id());  // right padding
    // Each position's target is the next token; the extract token and the padding predict nothing.
    CHECK(batch.lm_targets[0][0].item<int64_t>() == a.rows[0][1]);
    CHECK(batch.lm_targets[0][La - 2].item<int64_t>() == t.ids.extract);
    CHECK(batch.lm_targets[0].slice(0, La - 1).eq(-1).all().item<bool>());
    CHECK(batch.lm_targets.ne(-1).sum().item<int64_t>() == (La - 1) + (Lb - 1));
    CHECK(batch.labels.equal(torch::tensor({0, 1}, torch::kLong)));

    // The short example scores the same alone as beside a longer one (padding changes nothing).
    auto model = tiny_task_model(t.tok, TaskType::Classification, 2);
    torch::NoGradGuard no_grad;
    const auto alone = collate_task_inputs({&a}, false, t.tok.pad_id());
    auto s_alone = model->forward(alone.ids, alone.extract_pos, 1).scores;
    auto s_batch = model->forward(batch.ids, batch.extract_pos, 1).scores;
    CHECK(test::max_abs_diff(s_alone[0], s_batch[0]) < 1e-5);
    CHECK(test::max_abs_diff(s_batch[0], s_batch[1]) > 1e-6);  // and it reads each row's own extract token
}

TEST_CASE("classify: similarity is symmetric in its pair", "[classify]") {
    TaskTokenizer t;
    for (int classes : {1, 3}) {
        auto model = tiny_task_model(t.tok, TaskType::Similarity, classes);
        TaskExample ab, ba;
        ab.text = ba.text_b = "a man plays a flute";
        ab.text_b = ba.text = "someone is cooking";
        ab.score = ba.score = 2.5;
        ab.label = ba.label = classes == 1 ? -1 : 1;
        const auto in_ab = render_task_input(ab, TaskType::Similarity, t.tok, t.ids, 32);
        const auto in_ba = render_task_input(ba, TaskType::Similarity, t.tok, t.ids, 32);
        CHECK(in_ab.rows[0] == in_ba.rows[1]);
        const auto p = predict_task(*model, {in_ab, in_ba}, 2, t.tok.pad_id(), false, -100, 100);
        torch::NoGradGuard no_grad;
        auto x = collate_task_inputs({&in_ab}, classes == 1, t.tok.pad_id());
        auto y = collate_task_inputs({&in_ba}, classes == 1, t.tok.pad_id());
        auto sx = model->forward(x.ids, x.extract_pos, 2).scores, sy = model->forward(y.ids, y.extract_pos, 2).scores;
        CHECK(test::max_abs_diff(sx, sy) < 1e-5);
        if (classes == 1) CHECK(p.predicted_scores[0] == Approx(p.predicted_scores[1]).margin(1e-5));
        else CHECK(p.predicted[0] == p.predicted[1]);
    }
}

// Classify: heads, task losses and the LM term match a PyTorch reference.
TEST_CASE("classify: heads, losses and LM term match PyTorch", "[integration][classify][light]") {
    TaskTokenizer t;
    struct Case {
        TaskType type;
        const char* name;
        int classes;
    };
    const Case cases[] = {{TaskType::Classification, "classification", 3},
                          {TaskType::Entailment, "entailment", 2},
                          {TaskType::Similarity, "similarity", 1},
                          {TaskType::Similarity, "similarity", 2},
                          {TaskType::MultipleChoice, "multiple_choice", 1}};
    const char* texts[] = {"the film was fine", "no", "a long and winding road", "cats"};
    // Each case's sums, and its input for the reference: then one Python start checks them all.
    const double lm_coef = 0.5;
    const std::vector<double> x = {1, 2, 2, 3, 5, 4, 8}, y = {2, 1, 4, 4, 7, 9, 8};
    std::vector<TaskLossSums> sums;
    std::vector<bool> regressions;
    std::string reference_inputs;
    for (const auto& c : cases) {
        auto model = tiny_task_model(t.tok, c.type, c.classes);
        std::vector<TaskInput> inputs;
        for (int i = 0; i < 4; ++i) {
            TaskExample e;
            e.text = texts[i];
            e.text_b = texts[(i + 1) % 4];
            e.choices = {texts[(i + 2) % 4], texts[(i + 3) % 4], "maybe so"};
            e.label = c.type == TaskType::MultipleChoice ? i % 3 : i % std::max(2, c.classes);
            e.score = 0.7 * i;
            inputs.push_back(render_task_input(e, c.type, t.tok, t.ids, 32));
        }
        std::vector<const TaskInput*> ptrs;
        for (const auto& in : inputs) ptrs.push_back(&in);
        const bool regression = model->regression();
        const auto b = collate_task_inputs(ptrs, regression, t.tok.pad_id());
        sums.push_back(task_loss_sums(*model, b, lm_coef, false));
        regressions.push_back(regression);
        const auto hidden = model->gpt->forward(b.ids).detach();
        std::vector<int64_t> lengths;
        for (const auto& in : inputs) for (const auto& r : in.rows) lengths.push_back(static_cast<int64_t>(r.size()));
        nlohmann::json in = {{"type", c.name}, {"regression", regression}, {"hidden", to_json(hidden)},
                             {"ids", to_json(b.ids)}, {"lengths", lengths}, {"rows_per_example", b.rows_per_example},
                             {"head_w", to_json(model->task_head->weight.detach())},
                             {"head_b", to_json(model->task_head->bias.detach())},
                             {"wte", to_json(model->transformer->wte->weight.detach())}, {"labels", to_json(b.labels)},
                             {"lm_coef", lm_coef}, {"x", x}, {"y", y}};
        const auto path = t.dir / ("in" + std::to_string(sums.size()) + ".json");
        atomic_write(path, in.dump());
        reference_inputs += " " + test::shell_quote(path.string());
    }
    const auto refs = test::json_lines(test::run_python_reference("task_reference.py", reference_inputs));
    REQUIRE(refs.size() == sums.size());
    for (size_t n = 0; n < sums.size(); ++n) {
        const Case& c = cases[n];
        const TaskLossSums& s = sums[n];
        const auto& ref = refs[n];
        INFO(c.name << " with " << c.classes << " output(s)");
        if (regressions[n]) {
            CHECK(test::max_abs_diff(s.scores.to(torch::kDouble), torch::tensor(ref["scores"].get<std::vector<double>>(), torch::kDouble)) < 1e-4);
        } else {
            std::vector<double> flat;
            for (const auto& row : ref["scores"]) for (double v : row) flat.push_back(v);
            CHECK(test::max_abs_diff(s.scores.to(torch::kDouble).reshape({-1}), torch::tensor(flat, torch::kDouble)) < 1e-4);
            CHECK(s.scores.size(0) == 4);
            CHECK(s.scores.size(1) == (c.type == TaskType::MultipleChoice ? 3 : c.classes));
        }
        CHECK(s.task.item<double>() == Approx(ref["task_loss_sum"].get<double>()).epsilon(1e-4));
        CHECK(s.lm.item<double>() == Approx(ref["lm_loss_sum"].get<double>()).epsilon(1e-4));
        CHECK(s.lm_targets == ref["lm_targets"].get<int64_t>());
        const double loss = s.task.item<double>() / 4 + lm_coef * s.lm.item<double>() / static_cast<double>(s.lm_targets);
        CHECK(loss == Approx(ref["loss"].get<double>()).epsilon(1e-4));
        CHECK(pearson_correlation(x, y) == Approx(ref["pearson"].get<double>()).margin(1e-12));
        CHECK(spearman_correlation(x, y) == Approx(ref["spearman"].get<double>()).margin(1e-12));
    }
}

// Classify: the LM term adds lm_coef times the LM loss's gradient.
TEST_CASE("classify: the LM term adds lm_coef x the LM loss's gradient", "[classify]") {
    TaskTokenizer t;
    auto model = tiny_task_model(t.tok, TaskType::Entailment, 2);
    std::vector<TaskInput> inputs;
    for (const char* text : {"one premise here", "another", "a third premise, longer than the others"}) {
        TaskExample e;
        e.text = text;
        e.text_b = "a hypothesis";
        e.label = 1;
        inputs.push_back(render_task_input(e, TaskType::Entailment, t.tok, t.ids, 32));
    }
    std::vector<const TaskInput*> ptrs = {&inputs[0], &inputs[1], &inputs[2]};
    const auto b = collate_task_inputs(ptrs, false, t.tok.pad_id());
    auto grads_of = [&](const std::function<torch::Tensor()>& loss_fn) {
        model->zero_grad();
        loss_fn().backward();
        std::vector<torch::Tensor> g;
        for (const auto& p : model->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
        return g;
    };
    const int64_t targets = b.lm_targets.ne(-1).sum().item<int64_t>();
    const auto task_only = grads_of([&] { return task_loss_sums(*model, b, 0.0, false).task / 3.0; });
    // The LM loss as pre-training computes it (train/lm_step.h), on the same rows.
    const auto lm_only = grads_of([&] {
        LmBatch lm{b.ids, b.lm_targets, {}, {}};
        return lm_batch_loss_sum(*model->gpt, lm, false) / static_cast<double>(targets);
    });
    const auto both = grads_of([&] {
        auto s = task_loss_sums(*model, b, 0.5, false);
        return s.task / 3.0 + 0.5 * s.lm / static_cast<double>(s.lm_targets);
    });
    double worst = 0, lm_size = 0;
    for (size_t i = 0; i < both.size(); ++i) {
        worst = std::max(worst, test::max_abs_diff(both[i], task_only[i] + 0.5 * lm_only[i]));
        lm_size = std::max(lm_size, lm_only[i].abs().max().item<double>());
    }
    CHECK(worst < 1e-5);
    CHECK(lm_size > 1e-3);  // the LM term moved the gradient
}

TEST_CASE("classify: Pearson and Spearman by hand", "[classify]") {
    CHECK(pearson_correlation({1, 2, 3}, {2, 4, 6}) == Approx(1.0));
    CHECK(pearson_correlation({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
    CHECK(std::isnan(pearson_correlation({1, 1, 1}, {1, 2, 3})));  // a constant has no correlation
    CHECK(spearman_correlation({1, 2, 3, 4}, {1, 8, 27, 64}) == Approx(1.0));  // monotone, not linear
    CHECK(pearson_correlation({1, 2, 3, 4}, {1, 8, 27, 64}) < 0.99);
    // Ties share their mean rank: ranks (1.5, 1.5, 3) and (1, 2, 3).
    CHECK(spearman_correlation({5, 5, 7}, {1, 2, 3}) == Approx(pearson_correlation({1.5, 1.5, 3}, {1, 2, 3})));
    TaskPredictions p;
    p.labels = {0, 0, 0, 1};
    p.predicted = {0, 1, 0, 1};
    const auto m = task_metrics(p);
    CHECK(m.accuracy == Approx(0.75));
    CHECK(m.majority_accuracy == Approx(0.75));
}

namespace {

// Generated labelled data in the benchmarks' own formats: a sentence is positive (1) exactly when
// it holds "good"; a pair is similar in proportion to the words they share; the right ending of a
// "story" repeats its first word.
const char* kWords[] = {"cat", "dog", "tree", "house", "river", "car", "book", "song", "road", "cloud"};

std::string sst2_tsv(int n, int offset) {
    std::string out = "sentence\tlabel\n";
    for (int i = offset; i < offset + n; ++i) {
        const bool good = (i * 7) % 3 != 0;
        out += std::string("the ") + kWords[i % 10] + " was " + (good ? "good" : "bad") + " and " + kWords[(i / 10) % 10] +
               " \t" + (good ? "1" : "0") + "\n";
    }
    return out;
}

std::string stsb_tsv(int n) {
    std::string out = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    for (int i = 0; i < n; ++i) {
        const int shared = i % 3;  // 0, 1 or 2 of the two words shared
        const std::string a = std::string(kWords[i % 10]) + " " + kWords[(i + 3) % 10];
        const std::string b = std::string(shared >= 1 ? kWords[i % 10] : kWords[(i + 5) % 10]) + " " +
                              (shared == 2 ? kWords[(i + 3) % 10] : kWords[(i + 7) % 10]);
        out += std::to_string(i) + "\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\t" + a + "\t" + b + "\t" +
               std::to_string(2.5 * shared) + "\n";
    }
    return out;
}

std::string story_cloze_csv(int n) {
    std::string out = "InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,RandomFifthSentenceQuiz1,"
                      "RandomFifthSentenceQuiz2,AnswerRightEnding\n";
    for (int i = 0; i < n; ++i) {
        const std::string w = kWords[i % 10], other = kWords[(i + 4) % 10];
        const bool first_right = i % 2 == 0;
        const std::string right = "\"So, the " + w + " came back.\"", wrong = "the " + other + " left.";
        out += "id" + std::to_string(i) + ",The " + w + " ran.,It was far.,Night fell.,All slept.," +
               (first_right ? right + "," + wrong : wrong + "," + right) + "," + (first_right ? "1" : "2") + "\n";
    }
    return out;
}

struct ClassifyFixture {
    test::TempDir dir;
    ClassifyFixture() {
        test::write_text(dir / "corpus.txt", demo_corpus(20000) + "the cat was good and bad. So, the river came back.\n");
        RunConfig cfg = test::tiny_pretrain_config(dir / "corpus.txt", dir / "base");
        cfg.train.max_steps = 20;
        REQUIRE(run_pretrain(cfg, {}) == 0);
        test::write_text(dir / "train.tsv", sst2_tsv(400, 0));
        test::write_text(dir / "heldout.tsv", sst2_tsv(100, 400));
    }
    RunConfig config(const std::string& out) const {
        RunConfig cfg;
        cfg.stage = Stage::Classify;
        cfg.source = "<test>";
        cfg.out_dir = (dir / out).string();
        cfg.init_from = (dir / "base").string();
        cfg.runtime.threads = 2;
        cfg.runtime.deterministic = true;  // results compared bit for bit, also under load
        cfg.runtime.log_level = "warn";
        cfg.data.files = {(dir / "train.tsv").string()};
        cfg.data.val_files = {(dir / "heldout.tsv").string()};
        cfg.optim.lr = 3e-3;
        cfg.optim.min_lr = 3e-4;
        cfg.optim.lr_warmup_steps = 5;
        cfg.optim.lr_decay_steps = 60;
        cfg.optim.weight_decay = 0;
        cfg.train.max_steps = 60;
        cfg.train.batch_size = 16;
        cfg.train.eval_every = 30;
        cfg.train.eval_batches = 8;
        cfg.checkpoint.every = 10;
        cfg.checkpoint.keep_last = 0;
        return cfg;
    }
};

}  // namespace

// Classify: a pre-trained tiny model learns a task, resumes exactly, and rlhf eval scores it.
TEST_CASE("classify: learns, resumes exactly, rlhf eval scores it",
          "[integration][classify]") {
    ClassifyFixture f;
    RunConfig cfg = f.config("run");
    REQUIRE(run_classify(cfg, {}) == 0);
    const auto evals = test::metric_records(f.dir / "run", "eval");
    REQUIRE(evals.size() == 3);  // steps 0, 30, 60
    CHECK(evals.back()["val_accuracy"].get<double>() > evals.back()["majority_accuracy"].get<double>() + 0.15);
    const auto steps = test::metric_records(f.dir / "run", "train");
    REQUIRE(steps.size() == 60);
    CHECK(steps.front().contains("lm_loss"));
    CHECK(steps.back()["task_loss"].get<double>() < steps.front()["task_loss"].get<double>());

    // 30 steps, a stop, then --resume to 60: the same losses and the same weights.
    RunConfig first = f.config("resumed");
    first.train.max_steps = 30;
    REQUIRE(run_classify(first, {}) == 0);
    RunConfig second = f.config("resumed");
    StageOptions resume;
    resume.resume = true;
    REQUIRE(run_classify(second, resume) == 0);
    const auto resumed = test::metric_records(f.dir / "resumed", "train");
    REQUIRE(resumed.size() == 60);
    for (size_t i = 30; i < 60; ++i) CHECK(resumed[i]["loss"].get<double>() == steps[i]["loss"].get<double>());
    auto a = load_task_model(f.dir / "run", torch::kCPU), b = load_task_model(f.dir / "resumed", torch::kCPU);
    CHECK(a.model->task_head->weight.equal(b.model->task_head->weight));
    CHECK(a.model->transformer->wte->weight.equal(b.model->transformer->wte->weight));

    // rlhf eval --task sst2: one JSON line with the accuracy on the whole held-out file.
    const auto ev = test::run_cli("eval --task sst2 --threads 2 --data " + test::shell_quote((f.dir / "heldout.tsv").string()) +
                                  " --checkpoint " + test::shell_quote((f.dir / "run").string()));
    INFO(ev.output);
    REQUIRE(ev.exit_code == 0);
    const auto line = nlohmann::json::parse(ev.output.substr(ev.output.rfind('{')));
    CHECK(line["count"] == 100);
    CHECK(line["accuracy"].get<double>() > line["majority_accuracy"].get<double>());

    // The wrong benchmark for this model, and a model that is not a task model: one line each.
    test::write_text(f.dir / "rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta cat\ta dog\tentailment\n");
    const auto wrong = test::run_cli("eval --task rte --data " + test::shell_quote((f.dir / "rte.tsv").string()) +
                                     " --checkpoint " + test::shell_quote((f.dir / "run").string()));
    CHECK(wrong.exit_code == 1);
    CHECK_THAT(wrong.output, Contains("rte is a entailment benchmark but this checkpoint was trained for classification"));
    const auto not_task = test::run_cli("eval --task sst2 --data " + test::shell_quote((f.dir / "heldout.tsv").string()) +
                                        " --checkpoint " + test::shell_quote((f.dir / "base").string()));
    CHECK(not_task.exit_code == 1);
    CHECK_THAT(not_task.output, Contains("this is a pretrain checkpoint, not a task model"));

    // A task model does not generate, and does not silently become a policy; a resume keeps its task.
    const auto gen = test::run_cli("generate --prompt hi --checkpoint " + test::shell_quote((f.dir / "run").string()));
    CHECK(gen.exit_code == 1);
    CHECK_THAT(gen.output, Contains("this is a task model (stage: classify)"));
    RunConfig sft;
    sft.stage = Stage::Sft;
    sft.source = "<test>";
    sft.init_from = (f.dir / "run").string();
    CHECK_THROWS_WITH(load_start_point(sft, {}), Contains("init_from is a task model"));
    RunConfig changed = f.config("run");
    changed.task.num_classes = 3;
    changed.train.max_steps = 70;
    CHECK_THROWS_WITH(run_classify(changed, resume),
                      Contains("the run being resumed is classification with 2 class(es)") && Contains("the config says classification with 3"));
}

// Classify: from scratch, a similarity regression and a multiple-choice task run end to end.
TEST_CASE("classify: from scratch, regression and multiple choice run",
          "[integration][classify]") {
    ClassifyFixture f;
    test::write_text(f.dir / "stsb.tsv", stsb_tsv(120));
    test::write_text(f.dir / "cloze.csv", story_cloze_csv(80));

    RunConfig sim = f.config("stsb");
    sim.init_from = "";
    sim.tokenizer.path = (f.dir / "base" / "tokenizer").string();
    sim.model = test::tiny_model(0);
    sim.task.type = TaskType::Similarity;
    sim.task.num_classes = 1;
    sim.data.files = {(f.dir / "stsb.tsv").string()};
    sim.data.val_files = {};
    sim.data.val_fraction = 0.2;
    sim.train.max_steps = 10;
    sim.train.eval_every = 10;
    REQUIRE(run_classify(sim, {}) == 0);
    const auto sim_evals = test::metric_records(f.dir / "stsb", "eval");
    REQUIRE_FALSE(sim_evals.empty());
    CHECK(sim_evals.back().contains("val_pearson"));
    const auto ev = test::run_cli("eval --task stsb --data " + test::shell_quote((f.dir / "stsb.tsv").string()) +
                                  " --checkpoint " + test::shell_quote((f.dir / "stsb").string()));
    INFO(ev.output);
    REQUIRE(ev.exit_code == 0);
    const auto line = nlohmann::json::parse(ev.output.substr(ev.output.rfind('{')));
    CHECK(line["count"] == 120);
    CHECK(line.contains("pearson"));
    CHECK(line.contains("spearman"));
    CHECK_FALSE(line.contains("accuracy"));

    RunConfig mc = f.config("cloze");
    mc.task.type = TaskType::MultipleChoice;
    mc.data.files = {(f.dir / "cloze.csv").string()};
    mc.data.val_files = {};
    mc.data.val_fraction = 0.25;
    mc.train.max_steps = 10;
    mc.train.eval_every = 10;
    REQUIRE(run_classify(mc, {}) == 0);
    CHECK(test::metric_records(f.dir / "cloze", "eval").back().contains("val_accuracy"));
}

TEST_CASE("classify: bad input is one clear line", "[integration][classify][light]") {
    test::TempDir dir;
    test::write_text(dir / "bad_label.tsv", "sentence\tlabel\na fine film \t1\na poor film \t2\n");
    test::write_text(dir / "rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta cat\ta dog\tentailment\n");
    const std::string base = "stage: classify\ninit_from: nowhere\n";
    test::write_text(dir / "c.yaml", base + "data:\n  files: [" + (dir / "bad_label.tsv").string() + "]\n");
    // Config problems before anything loads.
    REQUIRE_THROWS_WITH(load_config_text("stage: classify\ndata:\n  files: [x.tsv]\n", "s.yaml"),
                        Contains("tokenizer.path") && Contains("from scratch"));
    REQUIRE_THROWS_WITH(load_config_text(base + "data:\n  files: [x.tsv]\ntask:\n  labels: [a, b, c]\n", "s.yaml"),
                        Contains("task.labels") && Contains("names 3 classes but task.num_classes is 2"));
    REQUIRE_THROWS_WITH(load_config_text(base + "data:\n  files: [x.tsv]\n  format: hh\n", "s.yaml"),
                        Contains("'hh' is not a classify format"));

    // Data problems, from the CLI: exit 1 and one "error:" line naming file:line.
    ClassifyFixture f;
    auto run = [&](const std::string& files, const std::string& extra) {
        return test::run_cli("train " + test::shell_quote((dir / "c.yaml").string()) + " --set init_from=" +
                             test::shell_quote((f.dir / "base").string()) + " out_dir=" + test::shell_quote((dir / "out").string()) +
                             " runtime.log_level=warn data.files=[" + files + "] " + extra);
    };
    const auto label = run((dir / "bad_label.tsv").string(), "");
    CHECK(label.exit_code == 1);
    CHECK_THAT(label.output, Contains("bad_label.tsv:3") && Contains("'2'"));
    CHECK_THAT(label.output, !Contains("Exception raised from"));  // no LibTorch backtrace
    const auto type = run((dir / "rte.tsv").string(), "");
    CHECK(type.exit_code == 1);
    CHECK_THAT(type.output, Contains("GLUE RTE (entailment) data but task.type is classification"));
    const auto skipped = run((dir / "bad_label.tsv").string(), "data.on_error=skip train.max_steps=2 data.val_fraction=0");
    INFO(skipped.output);
    CHECK(skipped.exit_code == 0);
    CHECK_THAT(skipped.output, Contains("skipped 1 bad record"));
}

// Classify: under bf16 autocast the head still computes in fp32.
TEST_CASE("classify: under bf16 autocast the head computes in fp32", "[classify]") {
    TaskTokenizer t;
    auto model = tiny_task_model(t.tok, TaskType::Similarity, 1);
    TaskExample e;
    e.text = "a man plays";
    e.text_b = "a flute";
    e.score = 3.0;
    const auto in = render_task_input(e, TaskType::Similarity, t.tok, t.ids, 32);
    const auto b = collate_task_inputs({&in}, true, t.tok.pad_id());
    torch::NoGradGuard no_grad;
    AutocastGuard autocast(true, torch::kCPU);
    const auto out = model->forward(b.ids, b.extract_pos, 2);
    REQUIRE(out.scores.scalar_type() == torch::kFloat);
    // The same sum of the two extract states through the head by hand, in fp32.
    const int64_t C = out.hidden.size(2);
    auto h = out.hidden.to(torch::kFloat).gather(1, b.extract_pos.view({2, 1, 1}).expand({2, 1, C})).squeeze(1).sum(0);
    auto expected = (h * model->task_head->weight.squeeze(0)).sum() + model->task_head->bias[0];
    CHECK(out.scores[0].item<double>() == Approx(expected.item<double>()).epsilon(1e-6));
}
