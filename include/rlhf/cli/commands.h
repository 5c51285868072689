// The `rlhf` command line: each verb registers its CLI11 subcommand and the function it runs.
//
//   rlhf train CONFIG [--set k=v]... [--resume]
//   rlhf launch --nproc-per-node N [--nnodes M --node-rank K --master-addr A --master-port P] COMMAND...
//   rlhf tokenizer train --input FILE... --vocab-size N --model-type bpe|unigram|char --out DIR
//   rlhf data prepare --tokenizer DIR --input FILE... --out DIR [--val-fraction F]
//   rlhf generate --checkpoint DIR (--prompt TEXT | --prompts FILE.jsonl) [sampling options]
//   rlhf chat --checkpoint DIR
//   rlhf score --checkpoint DIR (--prompt TEXT --response TEXT | --input FILE)
//   rlhf eval --checkpoint DIR --task NAME [--prompts FILE]   (a generated task: answers checked)
//   rlhf eval --checkpoint DIR --task sst2|rte|stsb|story-cloze --data FILE   (a classify run)
//   rlhf data synth --task NAME --out DIR [--seed N]
//   rlhf config show CONFIG [--set k=v]... | rlhf config keys
//   rlhf bench generate [--preset gpt2 | --checkpoint DIR] [--batch-size N] [--no-cache]
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace rlhf::cli {

// A subcommand's action; returns the process exit code.
using Action = std::function<int()>;

// Each adds its subcommand to `app` and sets `action` when that subcommand is chosen.
void add_train_command(CLI::App& app, Action& action);
void add_launch_command(CLI::App& app, Action& action);
void add_tokenizer_command(CLI::App& app, Action& action);
void add_data_command(CLI::App& app, Action& action);
void add_generate_command(CLI::App& app, Action& action);
void add_chat_command(CLI::App& app, Action& action);
void add_config_command(CLI::App& app, Action& action);
void add_bench_command(CLI::App& app, Action& action);
void add_bench_rollout_command(CLI::App& bench, Action& action);  // `bench rollout`, under `bench`
void add_score_command(CLI::App& app, Action& action);
void add_eval_command(CLI::App& app, Action& action);
void add_convert_command(CLI::App& app, Action& action);

// GPT-1's task benchmarks `rlhf eval --task` knows (sst2, rte, stsb, story-cloze), and the
// evaluation of a classify checkpoint on one: prints one JSON line, returns the exit code.
const std::vector<std::string>& gpt1_task_names();
struct TaskEvalArgs {
    std::string task, data, checkpoint, out, device = "cpu", dtype = "float32";
    int batch_size = 32, threads = 0;
};
int eval_gpt1_task(const TaskEvalArgs& args);

// `rlhf eval --perplexity`: a checkpoint's per-token negative log-likelihood on held-out text
// (perplexity_eval.cpp); prints one JSON line, returns the exit code.
struct PerplexityArgs {
    std::string checkpoint, weights = "auto", data, out, device = "cpu", dtype = "float32";
    int batch_size = 32, threads = 0;
};
int eval_perplexity(const PerplexityArgs& args);

}  // namespace rlhf::cli
