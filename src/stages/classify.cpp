// GPT-1's task fine-tuning. Top to bottom:
//   1. runtime, run directory; the starting point: init_from's pre-trained model, a fresh model
//      (init_from empty), or our own latest checkpoint; the start/delim/extract tokens added
//   2. the trunk + a linear head on the extract token, optimizer
//   3. labelled examples: read -> train/val split -> the task's input transformation
//   4. loop (train/training_loop): batches -> task loss + λ·LM loss -> AdamW -> log -> eval
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
#include "rlhf/data/chat_format.h"
#include "rlhf/data/epoch_sampler.h"
#include "rlhf/data/task_inputs.h"
#include "rlhf/stages/run_setup.h"
#include "rlhf/stages/start_point.h"
#include "rlhf/train/data_parallel.h"
#include "rlhf/train/metrics.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/train/task_step.h"
#include "rlhf/train/training_loop.h"

namespace rlhf {

namespace {

constexpr uint64_t kTrainDataStream = 0x636c732d74726e00ULL;
constexpr uint64_t kSplitStream = 0x636c732d73706c74ULL;

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
    TaskReadStats stats, val_stats;
    auto train = read_task_examples(cfg.data.files, read, &stats);
    std::vector<TaskExample> val;
    if (!cfg.data.val_files.empty()) {
        val = read_task_examples(cfg.data.val_files, read, &val_stats);
    } else if (cfg.data.val_fraction > 0 && train.size() >= 2) {
        const auto is_val = held_out_items(train.size(), cfg.data.val_fraction, cfg.runtime.seed ^ kSplitStream);
        std::vector<TaskExample> kept;
        for (size_t i = 0; i < train.size(); ++i) (is_val[i] ? val : kept).push_back(std::move(train[i]));
        train = std::move(kept);
    }
    if (stats.skipped + val_stats.skipped > 0) {
        spdlog::warn("data: skipped {} bad row(s) (data.on_error: skip); the first: {}", stats.skipped + val_stats.skipped,
                     stats.first_skip.empty() ? val_stats.first_skip : stats.first_skip);
    }
    if (type == TaskType::multiple_choice) {
        auto all = train;
        all.insert(all.end(), val.begin(), val.end());
        check_same_choice_count(all);
    }
    TaskData data;
    int64_t truncated = 0;
    data.train = render_all(train, type, tokenizer, cfg.model.block_size, &truncated);
    data.val = render_all(val, type, tokenizer, cfg.model.block_size, &truncated);
    spdlog::info("data: {} train / {} val examples ({}); {} cut to fit the window of {} tokens", data.train.size(),
                 data.val.size(), task_type_name(type), truncated, cfg.model.block_size);
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

}  // namespace

TaskReadOptions task_read_options(const RunConfig& cfg) {
    TaskReadOptions read;
    read.type = parse_task_type(cfg.task.type, cfg.source + ": task.type");
    read.format = cfg.data.format;
    read.num_classes = cfg.task.num_classes;
    read.labels = cfg.task.labels;
    read.score_min = cfg.task.score_min;
    read.score_max = cfg.task.score_max;
    read.fields = {cfg.data.fields.text, cfg.data.fields.text_b, cfg.data.fields.choices, cfg.data.fields.label};
    read.skip_bad = cfg.data.on_error == "skip";
    return read;
}

int run_classify(RunConfig cfg, const StageOptions& opts) {
    // 1. Runtime and the starting point --------------------------------------------------------
    Runtime rt = init_stage_runtime(cfg);
    const Distributed& dist = distributed();
    const bool bf16 = wants_bf16(cfg.runtime.dtype);
    const TaskType type = parse_task_type(cfg.task.type, cfg.source + ": task.type");
    const auto resume_dir = open_run_dir(cfg, opts.resume);
    const std::filesystem::path out_dir = cfg.out_dir;
    // The chat tokens, then the task's, in that order in both cases: a pre-trained and a fresh
    // model then share one vocabulary layout.
    std::vector<std::string> added = kChatRoleTokens;
    added.insert(added.end(), kTaskTokens.begin(), kTaskTokens.end());
    const bool from_scratch = resume_dir.empty() && cfg.init_from.empty();
    StartPoint start = from_scratch ? fresh_start_point(cfg, added) : load_start_point(cfg, resume_dir);
    if (!resume_dir.empty()) check_same_task(start.info.config.task, cfg);
    if (!from_scratch) add_tokens(start, cfg, kTaskTokens);

    // 2. Model, optimizer ------------------------------------------------------------------------
    const Tokenizer tokenizer = start.tokenizer;
    TaskModel model(start.trunk, type, cfg.task.num_classes, cfg.task.head_dropout);
    if (!resume_dir.empty()) load_model_weights(resume_dir, *model);  // the trained head too
    model->to(rt.device);
    model->train();
    AdamW optimizer(*model, cfg.optim);
    TrainState state;
    if (!resume_dir.empty()) {
        OptimizerState saved = load_optimizer_state(resume_dir);
        optimizer.load_state(saved.tensors, saved.step, (resume_dir / "optimizer.safetensors").string());
        restore_rng_states(resume_dir);
        state = start.info.state;
        spdlog::info("resumed from {} (step {})", resume_dir.string(), state.step);
    } else if (from_scratch) {
        spdlog::info("starting from scratch: a fresh {}-layer model (the baseline pre-training is measured against)",
                     cfg.model.n_layer);
    } else {
        spdlog::info("starting from {} (step {} of run {}, stage {}); a new {} head", start.dir.string(),
                     start.info.state.step, start.info.config.out_dir, start.info.config.stage, task_type_name(type));
    }

    // 3. Labelled examples -------------------------------------------------------------------------
    const TaskData data = load_task_data(cfg, tokenizer, type);
    EpochSampler sampler(static_cast<int64_t>(data.train.size()), cfg.train.batch_size);
    const auto eval_val = eval_subset(data.val, cfg);
    broadcast_module(*model, dist);
    GradientSync grad_sync(dist, optimizer.trained_parameters(), mib_to_bytes(cfg.runtime.dist_bucket_mb));
    if (dist.is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    MetricsWriter metrics(out_dir / "metrics.jsonl", resume_dir.empty() ? -1 : state.step);
    spdlog::info("model: {} parameters, context {}, vocab {}, {} on {} with {} threads; {} examples per step, {} steps "
                 "per epoch; loss = task + {} x LM",
                 model->num_parameters(), cfg.model.block_size, cfg.model.vocab_size, cfg.runtime.dtype, rt.device.str(),
                 rt.threads, int64_t{cfg.train.batch_size} * cfg.train.grad_accum_steps,
                 (sampler.batches_per_epoch() + cfg.train.grad_accum_steps - 1) / cfg.train.grad_accum_steps,
                 cfg.task.lm_coef);

    auto evaluate = [&]() {
        if (eval_val.empty()) return;
        const auto p = predict_task(*model, eval_val, cfg.train.batch_size, tokenizer.pad_id(), bf16, cfg.task.score_min,
                                    cfg.task.score_max);
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
        metrics.write(rec);
    };
    auto checkpoint = [&]() {
        auto dir = save_checkpoint(out_dir / "checkpoints", cfg, state, *model,
                                   {optimizer.state_tensors(), optimizer.steps_taken()}, tokenizer,
                                   cfg.checkpoint.keep_last, {{}, {{"lineage", start.lineage}}});
        spdlog::info("checkpoint saved: {}", dir.string());
    };

    // 4. The loop --------------------------------------------------------------------------------
    TrainingLoopHooks hooks;
    hooks.evaluate = evaluate;
    hooks.checkpoint = checkpoint;
    hooks.step = [&](double lr) {
        std::vector<TaskBatch> micro_batches;
        // This rank's share of the step's examples (all of them in a single process).
        for (const uint64_t index : my_micro_batches(state.next_batch_index, cfg.train.grad_accum_steps, dist)) {
            std::vector<const TaskInput*> inputs;
            for (int64_t i : sampler.batch(cfg.runtime.seed ^ kTrainDataStream, index)) inputs.push_back(&data.train[static_cast<size_t>(i)]);
            micro_batches.push_back(to_device(collate_task_inputs(inputs, model->regression(), tokenizer.pad_id()), rt.device));
        }
        state.next_batch_index += static_cast<uint64_t>(cfg.train.grad_accum_steps);
        const uint64_t epoch = sampler.epoch_of(state.next_batch_index - 1);
        const TaskStepStats s = task_train_step(*model, optimizer, micro_batches, lr, cfg.optim.grad_clip, cfg.task.lm_coef,
                                                bf16, &grad_sync);
        state.tokens_seen += s.tokens;
        nlohmann::json fields = {{"task_loss", s.task_loss}, {"examples", s.examples}, {"epoch", epoch}};
        if (std::isfinite(s.lm_loss)) fields["lm_loss"] = s.lm_loss;
        if (std::isfinite(s.accuracy)) fields["accuracy"] = s.accuracy;
        const std::string acc = std::isfinite(s.accuracy) ? fmt::format(" | acc {:.2f}", s.accuracy) : "";
        const std::string lm = std::isfinite(s.lm_loss) ? fmt::format(" | lm {:.3f}", s.lm_loss) : "";
        return StepReport{s.loss, s.grad_norm, fields, fmt::format(" | task {:.3f}{}{} | epoch {}", s.task_loss, lm, acc, epoch),
                          fmt::format(" | task loss {:.4f}{}{} | epoch {}", s.task_loss, lm, acc, epoch)};
    };
    const LoopResult done = run_training_loop("classify", cfg, state, metrics, hooks);
    if (done.exit_code != 0) return done.exit_code;
    log_run_done(done, state);
    return 0;
}

LoadedTaskModel load_task_model(const std::filesystem::path& path, const torch::Device& device) {
    LoadedTaskModel out;
    const auto dir = resolve_checkpoint(path);
    out.info = read_checkpoint_info(dir);
    const RunConfig& cfg = out.info.config;
    if (cfg.stage != "classify") {
        throw Error("this is a " + cfg.stage + " checkpoint, not a task model", dir.string(),
                    "give a run of stage: classify (rlhf train configs/gpt1/*.yaml)");
    }
    out.tokenizer = load_checkpoint_tokenizer(dir);
    ModelConfig shape = cfg.model;
    shape.dropout = 0.0;
    out.model = TaskModel(Gpt(shape), parse_task_type(cfg.task.type, dir.string() + "/config.yaml: task.type"),
                          cfg.task.num_classes, 0.0);
    load_model_weights(dir, *out.model);
    out.model->to(device);
    out.model->eval();
    return out;
}

}  // namespace rlhf
