// GPT-1's task fine-tuning. Top to bottom:
//   1. runtime, run directory; the starting point: init_from's pre-trained model, a fresh model
//      (init_from empty), or our own latest checkpoint; the start/delim/extract tokens added
//   2. the trunk + a linear head on the extract token, optimizer
//   3. labelled examples: read -> train/val split -> the task's input transformation
//   4. the loop, at the bottom: batches -> task loss + λ·LM loss -> AdamW -> log -> eval
//      (val accuracy, or Pearson/Spearman for a regression, against the constant baseline)
//      -> checkpoint
//
//   rlhf train configs/gpt1/sst2.yaml
#include "rlhf/stages/classify.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/core/seed_streams.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/task_inputs.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/task_step.h"
#include "rlhf/train/step_loop.h"

namespace rlhf {

namespace {

struct TaskData {
    std::vector<TaskInput> train, val;
};

std::vector<TaskInput> render_all(const std::vector<TaskExample>& examples, TaskType type, const Tokenizer& tokenizer,
                                  int64_t block_size, int64_t* truncated) {
    const TaskTokenIds tokens = task_token_ids(tokenizer);
    std::vector<TaskInput> out;
    out.reserve(examples.size());
    for (const auto& e : examples) out.push_back(render_task_input(e, type, tokenizer, tokens, block_size, truncated));
    return out;
}

// Multiple-choice examples are batched together, so they must agree on K.
void check_same_choice_count(const std::vector<TaskExample>& examples) {
    for (const auto& e : examples) {
        if (e.choices.size() != examples.front().choices.size()) {
            throw Error(fmt::format("{} choices here, but {} at {}", e.choices.size(), examples.front().choices.size(),
                                    examples.front().where),
                        e.where, "give every multiple-choice example the same number of choices");
        }
    }
}

TaskData load_task_data(const RunConfig& cfg, const Tokenizer& tokenizer, TaskType type) {
    const TaskReadOptions read = task_read_options(cfg);
    const auto examples = read_train_val<TaskReadStats>(
        cfg, seed_stream::kTaskSplit, [&](const auto& files, TaskReadStats* stats) { return read_task_examples(files, read, stats); });
    if (type == TaskType::MultipleChoice) {
        auto all = examples.train;
        all.insert(all.end(), examples.val.begin(), examples.val.end());
        check_same_choice_count(all);
    }
    TaskData data;
    int64_t truncated = 0;
    data.train = render_all(examples.train, type, tokenizer, cfg.model.block_size, &truncated);
    data.val = render_all(examples.val, type, tokenizer, cfg.model.block_size, &truncated);
    spdlog::info("data: {} train / {} val examples ({}); {} cut to fit the window of {} tokens", data.train.size(),
                 data.val.size(), name_of(type), truncated, cfg.model.block_size);
    return data;
}

// A resumed head's outputs mean what the run's task says: a changed task would go on training
// them as something else (or fail on a shape with no word of why).
void check_same_task(const TaskConfig& saved, const RunConfig& cfg) {
    if (saved.type != cfg.task.type || saved.num_classes != cfg.task.num_classes || saved.labels != cfg.task.labels) {
        throw Error(fmt::format("the run being resumed is {} with {} class(es) [{}]; the config says {} with {} [{}]", saved.type,
                                saved.num_classes, fmt::join(saved.labels, ", "), cfg.task.type, cfg.task.num_classes,
                                fmt::join(cfg.task.labels, ", ")),
                    cfg.source + ": task", "resume with the run's task keys, or fine-tune into a new out_dir");
    }
}

// The first train.eval_batches · train.batch_size val examples: a fixed set, evaluated the same
// way at every eval (the whole held-out file is `rlhf eval --task`'s job).
std::vector<TaskInput> eval_subset(const std::vector<TaskInput>& val, const RunConfig& cfg) {
    const size_t n = std::min(val.size(), static_cast<size_t>(cfg.train.eval_batches) * static_cast<size_t>(cfg.train.batch_size));
    return {val.begin(), val.begin() + static_cast<std::ptrdiff_t>(n)};
}

// One micro-batch as the model sees it: batch_size examples of 1, 2 (similarity) or K (multiple
// choice) rows each, padded to the longest row.
ActivationShape task_micro_batch(const std::vector<TaskInput>& train, const RunConfig& cfg) {
    size_t rows = 1, longest = 1;
    for (const auto& example : train) {
        rows = std::max(rows, example.rows.size());
        for (const auto& r : example.rows) longest = std::max(longest, r.size());
    }
    return {int64_t{cfg.train.batch_size} * static_cast<int64_t>(rows), static_cast<int64_t>(longest), true, cfg.task.lm_coef > 0};
}

}  // namespace

TaskReadOptions task_read_options(const RunConfig& cfg) {
    TaskReadOptions read;
    read.type = cfg.task.type;
    read.format = name_of(cfg.data.format);
    read.num_classes = cfg.task.num_classes;
    read.labels = cfg.task.labels;
    read.score_min = cfg.task.score_min;
    read.score_max = cfg.task.score_max;
    read.fields = {cfg.data.fields.text, cfg.data.fields.text_b, cfg.data.fields.choices, cfg.data.fields.label};
    read.skip_bad = cfg.data.on_error == OnError::Skip;
    return read;
}

int run_classify(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    const TaskType type = cfg.task.type;
    const StageStart stage = begin_stage(cfg, opts.resume);
    const Runtime& rt = stage.rt;
    // The chat tokens, then the task's, in that order in both cases: a pre-trained and a fresh
    // model then share one vocabulary layout.
    std::vector<std::string> added = kChatRoleTokens;
    added.insert(added.end(), kTaskTokens.begin(), kTaskTokens.end());
    const bool from_scratch = !stage.resuming() && cfg.init_from.empty();
    StartPoint start = from_scratch ? fresh_start_point(cfg, added) : load_start_point(cfg, stage.resume_dir);
    if (stage.resuming()) check_same_task(start.info.config.task, cfg);
    if (!from_scratch) add_tokens(start, cfg, kTaskTokens);

    // 2. Model, optimizer ------------------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    TaskModel model(start.trunk, type, cfg.task.num_classes, cfg.task.head_dropout);
    if (stage.resuming()) load_model_weights(stage.resume_dir, *model);  // the trained head too
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    const std::string fresh_line =
        from_scratch ? fmt::format("starting from scratch: a fresh {}-layer model (the baseline pre-training is measured "
                                   "against)", cfg.model.n_layer)
                     : describe_start(start) + "; a new " + name_of(type) + " head";
    TrainState state = resume_or_announce(stage, optimizer, start.info.state, fresh_line);

    // 3. Labelled examples -------------------------------------------------------------------------
    const TaskData data = load_task_data(cfg, tokenizer, type);
    EpochSampler sampler(static_cast<int64_t>(data.train.size()), cfg.train.batch_size);
    const auto eval_val = eval_subset(data.val, cfg);
    StageOutputs out(cfg, *model, optimizer, stage, state);
    spdlog::info("{}; {} examples per step, {} steps per epoch; loss = task + {} x LM",
                 describe_model(*model, cfg, rt, task_micro_batch(data.train, cfg)),
                 int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps,
                 steps_per_epoch(sampler, cfg), cfg.task.lm_coef);

    // 4. The loop --------------------------------------------------------------------------------
    StepLoop loop("classify", cfg, state, out.metrics);
    // Accuracy against the majority class, or Pearson/Spearman against predicting the mean.
    auto evaluate = [&]() {
        if (eval_val.empty()) return;
        const auto p = predict_task(*model, eval_val, cfg.train.batch_size, tokenizer.pad_id(), stage.bf16,
                                    cfg.task.score_min, cfg.task.score_max);
        const TaskMetrics m = task_metrics(p);
        state.last_val_loss = p.task_loss;
        nlohmann::json rec = {{"type", "eval"}, {"step", state.step}, {"val_loss", p.task_loss}, {"examples", m.count}};
        if (model->regression()) {
            rec.update({{"val_pearson", m.pearson}, {"val_spearman", m.spearman}, {"val_mse", m.mse}, {"mean_mse", m.mean_mse}});
            spdlog::info("eval step {}: val loss {:.4f}, Pearson {:.3f}, Spearman {:.3f}, MSE {:.3f} (predicting the "
                         "mean: {:.3f}) on {} examples",
                         state.step, p.task_loss, m.pearson, m.spearman, m.mse, m.mean_mse, m.count);
        } else {
            rec.update({{"val_accuracy", m.accuracy}, {"majority_accuracy", m.majority_accuracy}});
            spdlog::info("eval step {}: val loss {:.4f}, accuracy {:.1f}% (majority class: {:.1f}%) on {} examples",
                         state.step, p.task_loss, 100 * m.accuracy, 100 * m.majority_accuracy, m.count);
        }
        loop.record(rec);
    };
    // One step: this rank's examples -> task loss + lm_coef x LM loss -> AdamW.
    auto train_step = [&](double lr) {
        std::vector<TaskBatch> micro_batches;
        for (const uint64_t index : next_micro_batches(state, cfg)) {
            std::vector<const TaskInput*> inputs;
            for (int64_t i : sampler.batch(stream_seed(cfg.runtime.seed, seed_stream::kTaskData), index)) inputs.push_back(&data.train[static_cast<size_t>(i)]);
            micro_batches.push_back(to_device(collate_task_inputs(inputs, model->regression(), tokenizer.pad_id()), rt.device));
        }
        const uint64_t epoch = sampler.epoch_of(state.next_batch_index - 1);
        const TaskStepStats s = task_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, cfg.task.lm_coef,
                                                stage.bf16, &out.grad_sync);
        state.tokens_seen += s.tokens;
        nlohmann::json fields = {{"task_loss", s.task_loss}, {"examples", s.examples}, {"epoch", epoch}};
        if (std::isfinite(s.lm_loss)) fields["lm_loss"] = s.lm_loss;
        if (std::isfinite(s.accuracy)) fields["accuracy"] = s.accuracy;
        const std::string acc = std::isfinite(s.accuracy) ? fmt::format(" | acc {:.2f}", s.accuracy) : "";
        const std::string lm = std::isfinite(s.lm_loss) ? fmt::format(" | lm {:.3f}", s.lm_loss) : "";
        return StepReport{s.loss, s.grad_norm, fields, fmt::format(" | task {:.3f}{}{} | epoch {}", s.task_loss, lm, acc, epoch),
                          fmt::format(" | task loss {:.4f}{}{} | epoch {}", s.task_loss, lm, acc, epoch)};
    };

    if (loop.eval_due()) evaluate();
    while (loop.running()) {
        loop.end_step(train_step(loop.lr()));
        if (loop.eval_due()) evaluate();
        if (loop.save_due()) {
            save_stage_checkpoint(cfg, state, *model, optimizer, tokenizer, lineage_extras(start));
        }
    }
    if (loop.finish() != 0) return loop.finish();
    log_run_done(loop.result(), state);
    return 0;
}

LoadedTaskModel load_task_model(const std::filesystem::path& path, const torch::Device& device) {
    LoadedTaskModel out;
    const auto dir = resolve_checkpoint(path);
    out.info = read_checkpoint_info(dir);
    const RunConfig& cfg = out.info.config;
    if (cfg.stage != Stage::Classify) {
        throw Error("this is a " + name_of(cfg.stage) + " checkpoint, not a task model", dir.string(),
                    "give a run of stage: classify (rlhf train configs/gpt1/*.yaml)");
    }
    out.tokenizer = load_checkpoint_tokenizer(dir);
    ModelConfig shape = cfg.model;
    shape.dropout = 0.0;
    out.model = TaskModel(Gpt(shape), cfg.task.type,
                          cfg.task.num_classes, 0.0);
    load_model_weights(dir, *out.model);
    out.model->to(device);
    out.model->eval();
    return out;
}

}  // namespace rlhf
