// rlhf score: rewards from a reward-model checkpoint, normalisation applied, for one
// prompt/response or for every record of a demonstrations file (any sft format).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/sft_examples.h"
#include "rlhf/train/reward_step.h"

namespace rlhf::cli {

void add_score_command(CLI::App& app, Action& action) {
    struct Args {
        std::string checkpoint, prompt, response, input, format = "auto", device = "cpu", dtype = "float32";
        int batch_size = 16, threads = 0;
        bool raw = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("score", "Score responses with a reward-model checkpoint (made by stage: reward)");
    cmd->add_option("--checkpoint", args->checkpoint, "Run directory, its checkpoints/ dir, or a step-NNNNNN dir")->required();
    auto* prompt = cmd->add_option("--prompt", args->prompt, "Prompt text (a user turn)");
    auto* response = cmd->add_option("--response", args->response, "Response text (the assistant's reply)");
    auto* input = cmd->add_option("--input", args->input,
                                  "Score every record of this file (JSONL/JSON in any sft format: prompt/response, "
                                  "question/answer, alpaca, messages); prints one JSON line per record");
    prompt->needs(response);
    response->needs(prompt);
    input->excludes(prompt)->excludes(response);
    cmd->add_option("--format", args->format, "Record layout of --input (auto | prompt_response | gsm8k | alpaca | messages)")
        ->check(CLI::IsMember({"auto", "prompt_response", "gsm8k", "alpaca", "messages"}))
        ->capture_default_str();
    cmd->add_flag("--raw", args->raw, "Print the raw head output as well (before the stored normalisation)");
    cmd->add_option("--batch-size", args->batch_size, "Sequences scored together")->capture_default_str()->check(CLI::Range(1, 100000));
    cmd->add_option("--device", args->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    cmd->add_option("--dtype", args->dtype, "float32 | bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
    cmd->add_option("--threads", args->threads, "CPU threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->footer("Prompt and response are rendered in the reward model's chat format (docs/chat-format.md) and read at "
                "the end-of-turn token that ends the response; a pair too long for the context loses prompt tokens from the left first.");
    cmd->callback([args, &action] {
        action = [args] {
            if (args->input.empty() && args->prompt.empty()) {
                throw Error("nothing to score", "rlhf score", "give --prompt TEXT --response TEXT, or --input FILE");
            }
            Runtime rt = init_runtime(args->threads, 1337, args->device, "--device");
            LoadedRewardModel rm = load_reward_model_from_checkpoint(args->checkpoint, rt.device);
            const auto& mcfg = rm.info.config;
            std::vector<Conversation> convs;
            if (!args->input.empty()) {
                SftReadOptions read;
                read.format = args->format;
                convs = read_sft_examples({args->input}, read);
            } else {
                convs.push_back({{{"user", args->prompt}, {"assistant", args->response}}, "--prompt/--response"});
            }
            std::vector<std::vector<int32_t>> sequences;
            for (const auto& c : convs) {
                auto fitted = fit_to_window(render_conversation(c.turns, rm.tokenizer), mcfg.model.block_size,
                                            mcfg.data.min_prompt_fraction);
                if (!fitted) {
                    throw Error("the response does not fit the model's context of " +
                                    std::to_string(mcfg.model.block_size) + " tokens",
                                c.where, "shorten it");
                }
                sequences.push_back(std::move(fitted->ids));
            }
            auto raw = raw_rewards_of(*rm.model, sequences, rm.tokenizer.pad_id(), args->batch_size,
                                      wants_bf16(args->dtype));
            auto reward = rm.model->normalise(raw.to(rt.device)).cpu();
            for (size_t i = 0; i < convs.size(); ++i) {
                const double r = reward[static_cast<int64_t>(i)].item<double>();
                if (args->input.empty()) {
                    std::printf("%.6f\n", r);
                    if (args->raw) std::printf("raw %.6f\n", raw[static_cast<int64_t>(i)].item<double>());
                } else {
                    nlohmann::json line = {{"where", convs[i].where}, {"reward", r}};
                    if (args->raw) line["raw"] = raw[static_cast<int64_t>(i)].item<double>();
                    std::cout << line.dump() << "\n";
                }
            }
            return 0;
        };
    });
}

}  // namespace rlhf::cli
