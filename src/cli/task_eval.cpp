// rlhf eval --task sst2|rte|stsb|story-cloze: a classify checkpoint scored on a labelled file, the
// metric GPT-1 reports (accuracy; Pearson and Spearman for STS-B) next to the constant baseline.
#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/task_inputs.h"
#include "rlhf/stages/classify.h"
#include "rlhf/train/task_step.h"

namespace rlhf::cli {

namespace {

// Benchmark name -> the file format it reads.
const std::map<std::string, std::string>& task_formats() {
    static const std::map<std::string, std::string> formats = {
        {"sst2", "sst2"}, {"rte", "rte"}, {"stsb", "stsb"}, {"story-cloze", "story_cloze"}};
    return formats;
}

}  // namespace

const std::vector<std::string>& gpt1_task_names() {
    static const std::vector<std::string> names = {"sst2", "rte", "stsb", "story-cloze"};
    return names;
}

int eval_gpt1_task(const TaskEvalArgs& args) {
    if (args.data.empty()) {
        throw Error("--task " + args.task + " needs the labelled file", "--data",
                    "e.g. --data ../shared/data/gpt1-tasks/" + args.task + "/... (a held-out split)");
    }
    Runtime rt = init_runtime(args.threads, 1337, args.device, "--device");
    LoadedTaskModel m = load_task_model(args.checkpoint, rt.device);
    const RunConfig& cfg = m.info.config;
    // The checkpoint's task, read in the benchmark's format.
    TaskReadOptions read = task_read_options(cfg);
    read.format = task_formats().at(args.task);
    read.skip_bad = false;
    TaskType benchmark_type{};
    if (task_type_of_format(read.format, benchmark_type) && benchmark_type != read.type) {
        throw Error(args.task + " is a " + name_of(benchmark_type) + " benchmark but this checkpoint was trained for " +
                        name_of(read.type) + " (task.type of its run)",
                    m.info.dir.string(), "evaluate a run of the benchmark's own task type");
    }
    const auto examples = read_task_examples({args.data}, read);
    const TaskTokenIds tokens = task_token_ids(m.tokenizer);
    std::vector<TaskInput> inputs;
    int64_t truncated = 0;
    for (const auto& e : examples) {
        inputs.push_back(render_task_input(e, read.type, m.tokenizer, tokens, cfg.model.block_size, &truncated));
    }
    const auto p = predict_task(*m.model, inputs, args.batch_size, m.tokenizer.pad_id(), wants_bf16(args.dtype),
                                cfg.task.score_min, cfg.task.score_max);
    const TaskMetrics metrics = task_metrics(p);
    nlohmann::json line = {{"task", args.task}, {"checkpoint", m.info.dir.string()}, {"step", m.info.state.step},
                           {"count", metrics.count}, {"truncated", truncated}};
    if (m.model->regression()) {
        line.update({{"pearson", metrics.pearson}, {"spearman", metrics.spearman}, {"mse", metrics.mse},
                     {"mean_mse", metrics.mean_mse}});
    } else {
        line.update({{"accuracy", metrics.accuracy}, {"majority_accuracy", metrics.majority_accuracy}});
    }
    if (!args.out.empty()) {
        std::ofstream out(args.out);
        if (!out) throw Error("cannot write", args.out, "check the directory exists");
        for (size_t i = 0; i < examples.size(); ++i) {
            nlohmann::json r = {{"where", examples[i].where}};
            if (m.model->regression()) r.update({{"score", p.scores[i]}, {"predicted", p.predicted_scores[i]}});
            else r.update({{"label", p.labels[i]}, {"predicted", p.predicted[i]}});
            out << r.dump() << "\n";
        }
    }
    std::cout << line.dump() << std::endl;
    return 0;
}

}  // namespace rlhf::cli
