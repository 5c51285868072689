// rlhf eval: the gold metric of a checkpoint on a generated task's held-out prompts — answers
// (greedy, or sampled several times per prompt) checked by the task's gold checker (data/synth_task.h);
// or, for GPT-1's benchmarks (--task sst2|rte|stsb|story-cloze --data FILE), a classify run's
// accuracy or correlation (task_eval.cpp).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/cli/sampling_flags.h"
#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/data/synth_task.h"
#include "rlhf/model/generate.h"

namespace rlhf::cli {

namespace {

struct EvalArgs {
    std::string checkpoint, weights = "auto", task, prompts, out, device = "cpu", dtype = "float32";
    int64_t max_new_tokens = 32;
    double temperature = 0;
    std::string reference, data;
    int samples = 1, batch_size = 32, threads = 0;
    uint64_t seed = 1337;
    bool perplexity = false;
};

struct Question {
    std::string prompt;
    int64_t answer = 0;  // the gold answer the task's checker compares with
};

// The held-out {"prompt", "answer"} lines, each `samples` times, side by side.
std::vector<Question> read_questions(const std::string& path, int samples) {
    std::vector<Question> questions;
    read_jsonl(path, [&](const nlohmann::json& r, const std::string& where) {
        const auto prompt = json_string_field(r, "prompt", where);
        if (!r.contains("answer") || !r.at("answer").is_number_integer()) {
            throw Error("missing integer field \"answer\"", where, "held-out prompts carry their gold answer");
        }
        questions.insert(questions.end(), static_cast<size_t>(samples), Question{prompt, r.at("answer").get<int64_t>()});
    });
    if (questions.empty()) throw Error("no prompts", path, "one {\"prompt\", \"answer\"} per line");
    return questions;
}

// A chat checkpoint (sft and later, or a Hugging Face chat model) answers a user turn and stops at
// its end-of-turn token (EOS, <|im_end|>, <|eot_id|>); a pre-trained one
// continues "question\n\n" and its answer ends with the line.
SamplingOptions answer_options(const EvalArgs& args, const Tokenizer& tok, bool chat) {
    SamplingOptions o;
    o.temperature = args.temperature;
    o.max_new_tokens = args.max_new_tokens;
    o.stop_ids = {chat ? end_of_turn_id(tok) : tok.eos_id()};
    if (!chat) o.stop_ids.push_back(tok.encode("\n").empty() ? tok.eos_id() : tok.encode("\n").back());
    o.vocab_limit = tok.vocab_size();
    o.bf16 = wants_bf16(args.dtype);
    o.truncate_left = true;
    return o;
}

// Generated tasks: answers to the held-out questions, judged by the task's gold checker; with
// --reference, the KL of the sampled answers to that checkpoint's distribution.
int eval_generated_task(const EvalArgs& args) {
    if (!args.reference.empty() && args.temperature == 0) {
        throw Error("--reference with greedy decoding", "--temperature",
                    "the KL is of the sampling distribution; give --temperature > 0 (e.g. 1)");
    }
    if (args.samples > 1 && args.temperature == 0) {
        throw Error("--samples " + std::to_string(args.samples) + " with greedy decoding", "--temperature",
                    "greedy answers are all the same; give --temperature > 0 (e.g. 1) to sample");
    }
    const std::string path = args.prompts.empty() ? "data/synth/" + args.task + "/prompts.jsonl" : args.prompts;
    const std::vector<Question> questions = read_questions(path, args.samples);
    Runtime rt = init_runtime(args.threads, args.seed, args.device, "--device");
    LoadedModel m = load_model_from_checkpoint(args.checkpoint, rt.device, args.weights);
    const Tokenizer& tok = m.tokenizer;
    const bool chat = has_chat_format(tok);
    LoadedModel ref;
    if (!args.reference.empty()) {
        ref = load_model_from_checkpoint(args.reference, rt.device);
        if (!ref.tokenizer.same_vocabulary(tok)) {
            throw Error("the reference's tokenizer is not the checkpoint's", "--reference", "compare models of one lineage");
        }
    }
    const SamplingOptions o = answer_options(args, tok, chat);
    auto gen = make_generator(args.seed, rt.device);
    std::ofstream out;
    if (!args.out.empty()) {
        out.open(args.out);
        if (!out) throw Error("cannot write", args.out, "check the directory exists");
    }
    int64_t correct = 0, ended = 0;
    double kl_sum = 0;  // Σ over answers of Σ_t log π(y_t) - log π_ref(y_t): an unbiased estimate of each KL
    for (size_t i = 0; i < questions.size(); i += static_cast<size_t>(args.batch_size)) {
        const size_t end = std::min(questions.size(), i + static_cast<size_t>(args.batch_size));
        std::vector<std::vector<int32_t>> batch;
        for (size_t j = i; j < end; ++j) {
            const std::string& q = questions[j].prompt;
            batch.push_back(chat ? render_prompt({{"user", q}}, tok) : tok.encode(q + "\n\n"));
        }
        Generation g = generate(*m.model, batch, o, tok.pad_id(), gen);
        if (ref.model) {
            torch::NoGradGuard no_grad;
            auto ref_logprobs = sequence_logprobs(*ref.model, g.tokens, g.attention_mask, g.prompt_len, o.temperature, o.bf16,
                                                  nullptr, o.vocab_limit);
            kl_sum += ((g.logprobs - ref_logprobs) * g.response_mask.to(torch::kFloat32)).sum().item<double>();
        }
        const auto answers = response_ids(g);
        for (size_t j = i; j < end; ++j) {
            std::vector<int32_t> ids = answers[j - i];
            // The stop token, when the answer has one, is its last.
            const bool stopped = !ids.empty() && std::find(o.stop_ids.begin(), o.stop_ids.end(), ids.back()) != o.stop_ids.end();
            if (stopped) ids.pop_back();
            const std::string text = tok.decode(ids);
            const bool right = gold_correct(text, questions[j].answer);
            correct += right;
            ended += stopped;
            if (out) {
                out << nlohmann::json{{"prompt", questions[j].prompt}, {"answer", questions[j].answer}, {"response", text},
                                      {"correct", right}, {"eos", stopped}}.dump()
                    << "\n";
            }
        }
    }
    const double n = static_cast<double>(questions.size());
    nlohmann::json line = {{"task", args.task}, {"checkpoint", m.info.dir.string()},
                           {"accuracy", static_cast<double>(correct) / n}, {"eos_rate", static_cast<double>(ended) / n},
                           {"count", questions.size()}, {"temperature", args.temperature}, {"samples", args.samples}};
    if (ref.model) line["kl_to_reference"] = kl_sum / n;
    std::cout << line.dump() << std::endl;
    return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, Action& action) {
    auto args = std::make_shared<EvalArgs>();
    auto* cmd = app.add_subcommand("eval", "Gold accuracy of a checkpoint on a generated task's held-out prompts, of a "
                                           "classify run on a GPT-1 benchmark file, or a checkpoint's perplexity on text "
                                           "(--perplexity)");
    std::vector<std::string> tasks = synth_task_names();
    tasks.insert(tasks.end(), gpt1_task_names().begin(), gpt1_task_names().end());
    cmd->add_option("--checkpoint", args->checkpoint, "Run directory, its checkpoints/ dir, or a step-NNNNNN dir")->required();
    add_weights_flag(*cmd, args->weights);
    cmd->add_option("--task", args->task,
                    "A generated task whose gold checker judges the answers (ages), or a GPT-1 benchmark a classify run "
                    "is scored on (sst2, rte: accuracy; stsb: Pearson, Spearman; story-cloze: accuracy)")
        ->check(CLI::IsMember(tasks));
    cmd->add_flag("--perplexity", args->perplexity,
                  "Score --data (text: one document per blank-line-separated block; or JSONL with \"text\") by the "
                  "checkpoint's per-token negative log-likelihood, for any model, GPT-2's and Llama/Qwen's included");
    cmd->add_option("--data", args->data, "GPT-1 benchmarks: the labelled file in the benchmark's format (GLUE TSV, Story "
                                          "Cloze CSV), e.g. a split held out from ../shared/data/gpt1-tasks; --perplexity: "
                                          "the text");
    cmd->add_option("--prompts", args->prompts, "Held-out prompts {\"prompt\", \"answer\"} (default data/synth/TASK/prompts.jsonl)");
    cmd->add_option("--out", args->out, "Also write each judgement as JSONL here: {prompt, answer, response, correct, eos}; GPT-1 benchmarks: {where, label or score, predicted}; --perplexity: {where, tokens, nll, perplexity} per document");
    cmd->add_option("--max-new-tokens", args->max_new_tokens, "Answer length cap")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    cmd->add_option("--temperature", args->temperature, "0 = greedy; > 0 samples (the policy as PPO trains it: 1)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--samples", args->samples, "Answers per prompt (with --temperature > 0)")->capture_default_str()->check(CLI::Range(1, 1000));
    cmd->add_option("--seed", args->seed, "Sampling seed")->capture_default_str();
    cmd->add_option("--reference", args->reference,
                    "With --temperature > 0: also the KL of the answers' distribution to this checkpoint's at the same "
                    "temperature (\"kl_to_reference\", nats per answer; e.g. the SFT run a policy was tuned from)");
    cmd->add_option("--batch-size", args->batch_size, "Answers generated (documents scored) together")->capture_default_str()->check(CLI::Range(1, 100000));
    cmd->add_option("--device", args->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    cmd->add_option("--dtype", args->dtype, "float32 | bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
    cmd->add_option("--threads", args->threads, "CPU threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->footer("--perplexity prints one JSON line: {\"documents\", \"tokens\" (predicted: every token after a document's "
                "first), \"nll\" (mean per predicted token, nats), \"perplexity\"}. Each document is encoded as the "
                "tokenizer's post-processor does (Llama-3: <|begin_of_text|> first) and cut to the model's window.\n"
                "GPT-1 benchmarks print one JSON line: {\"task\", \"count\", \"accuracy\", \"majority_accuracy\"} or, "
                "for stsb, {\"pearson\", \"spearman\", \"mse\", \"mean_mse\"}; --out writes each prediction.\n"
                "Generated tasks print one JSON line: {\"accuracy\", \"eos_rate\", \"count\" (answers judged), \"temperature\", \"samples\"; with --reference \"kl_to_reference\"}. A checkpoint that speaks a chat format (sft and "
                "later, or a Hugging Face chat model: docs/chat-format.md) gets each prompt as a user turn; a pre-trained one gets \"question\\n\\n\" (a paragraph break, as in a corpus) and the line it writes next counts.");
    cmd->callback([args, &action] {
        action = [args] {
            if (args->perplexity) {
                if (!args->task.empty()) throw Error("--perplexity scores text, not a task", "--task", "remove --task");
                return eval_perplexity({args->checkpoint, args->weights, args->data, args->out, args->device, args->dtype,
                                        args->batch_size, args->threads});
            }
            if (args->task.empty()) throw Error("give --task NAME, or --perplexity --data FILE", "rlhf eval", "");
            const auto& gpt1 = gpt1_task_names();
            if (std::find(gpt1.begin(), gpt1.end(), args->task) != gpt1.end()) {
                return eval_gpt1_task({args->task, args->data, args->checkpoint, args->out, args->device, args->dtype,
                                       args->batch_size, args->threads});
            }
            if (!args->data.empty()) {
                throw Error("--data is for GPT-1 benchmarks (" + fmt::format("{}", fmt::join(gpt1, ", ")) + ")", "--data",
                            "a generated task reads --prompts");
            }
            return eval_generated_task(*args);
        };
    });
}

}  // namespace rlhf::cli
