#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "rlhf/cli/commands.h"
#include "rlhf/cli/sampling_flags.h"
#include "rlhf/core/error.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/jsonl.h"

namespace rlhf::cli {

namespace {

// Tokens of a prompt; an empty prompt starts from EOS, the document boundary the model saw in
// pre-training (GPT-2's unconditional samples start from <|endoftext|> the same way).
// A checkpoint that speaks a chat format (made by sft, or a Hugging Face chat model) gets the
// prompt as a user turn in that format, unless `raw`.
std::vector<int32_t> prompt_tokens(const Tokenizer& tok, const std::string& text, bool raw) {
    if (!raw && has_chat_format(tok)) return render_prompt({{"user", text}}, tok);
    auto ids = tok.encode(text);
    if (ids.empty()) ids.push_back(tok.eos_id());
    return ids;
}

std::vector<std::string> decode_responses(const Tokenizer& tok, const Generation& g) {
    std::vector<std::string> out;
    for (const auto& ids : response_ids(g)) out.push_back(tok.decode(ids));
    return out;
}

}  // namespace

void add_generate_command(CLI::App& app, Action& action) {
    struct Args {
        SamplingFlags sampling;
        std::string prompt;
        std::string prompts_file;
        std::string out;
        int num_samples = 1;
        int batch_size = 8;
        bool raw = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("generate", "Sample text from a checkpoint");
    add_sampling_flags(*cmd, args->sampling);
    auto* prompt = cmd->add_option("--prompt", args->prompt, "Prompt text (\"\" = unconditional)");
    auto* prompts = cmd->add_option("--prompts", args->prompts_file, "JSONL file, one {\"prompt\": ...} per line");
    prompt->excludes(prompts);
    cmd->add_option("--num-samples", args->num_samples, "Samples for --prompt")->capture_default_str()->check(CLI::Range(1, 100000));
    cmd->add_option("--batch-size", args->batch_size, "Sequences decoded together")->capture_default_str()->check(CLI::Range(1, 100000));
    cmd->add_flag("--raw", args->raw,
                  "Continue the prompt text as is; by default a checkpoint trained by sft gets it as a user turn "
                  "in the chat format (docs/chat-format.md)");
    cmd->add_option("--out", args->out, "With --prompts: write {\"prompt\", \"response\"} JSONL here (default stdout)");
    cmd->callback([args, &action] {
        action = [args] {
            SamplingSession s = open_sampling_session(args->sampling);
            const Tokenizer& tok = s.loaded.tokenizer;
            std::vector<std::string> texts;
            if (!args->prompts_file.empty()) {
                read_jsonl(args->prompts_file, [&](const nlohmann::json& rec, const std::string& where) {
                    texts.push_back(json_string_field(rec, "prompt", where));
                });
                if (texts.empty()) throw Error("no prompts in file", args->prompts_file, "one {\"prompt\": ...} per line");
            } else {
                texts.assign(static_cast<size_t>(args->num_samples), args->prompt);
            }
            std::ofstream out_file;
            if (!args->out.empty()) {
                out_file.open(args->out);
                if (!out_file) throw Error("cannot write", args->out, "check the directory exists");
            }
            std::ostream& out = args->out.empty() ? std::cout : out_file;

            int64_t new_tokens = 0;
            const auto t0 = std::chrono::steady_clock::now();
            for (size_t start = 0; start < texts.size(); start += static_cast<size_t>(args->batch_size)) {
                const size_t end = std::min(texts.size(), start + static_cast<size_t>(args->batch_size));
                std::vector<std::vector<int32_t>> batch;
                for (size_t i = start; i < end; ++i) batch.push_back(prompt_tokens(tok, texts[i], args->raw));
                Generation g = generate(*s.loaded.model, batch, s.options, tok.pad_id(), s.generator);
                new_tokens += g.response_mask.sum().item<int64_t>();
                auto responses = decode_responses(tok, g);
                for (size_t i = start; i < end; ++i) {
                    if (!args->prompts_file.empty()) {
                        out << nlohmann::json{{"prompt", texts[i]}, {"response", responses[i - start]}}.dump() << "\n";
                    } else {
                        const bool chat = !args->raw && has_chat_format(tok);
                        out << texts[i] << (chat ? "\n=> " : "") << responses[i - start] << "\n";
                        if (texts.size() > 1) out << "---------------\n";
                    }
                }
                out.flush();
            }
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            spdlog::info("generated {} tokens in {:.2f} s ({:.1f} tok/s, {})", new_tokens, dt,
                         static_cast<double>(new_tokens) / dt, s.options.use_cache ? "KV cache" : "no cache");
            return 0;
        };
    });
}

void add_chat_command(CLI::App& app, Action& action) {
    auto flags = std::make_shared<SamplingFlags>();
    auto* cmd = app.add_subcommand(
        "chat",
        "Talk to a checkpoint. One trained by sft (or a Hugging Face chat model) gets the conversation in its chat "
        "format (docs/chat-format.md) and replies until its end-of-turn token; a pre-trained one continues a plain-text transcript, one line per reply. /reset clears, "
        "/quit or EOF ends");
    add_sampling_flags(*cmd, *flags);
    cmd->callback([flags, &action] {
        action = [flags] {
            SamplingFlags f = *flags;
            f.truncate_left = true;  // a long conversation keeps its most recent part in the window
            SamplingSession s = open_sampling_session(f);
            const Tokenizer& tok = s.loaded.tokenizer;
            const bool chat = has_chat_format(tok);
            const int32_t newline = tok.piece_to_id("\n");
            if (!chat && newline >= 0) s.options.stop_ids.push_back(newline);  // a transcript reply is one line
            const auto window = static_cast<size_t>(s.loaded.model->config().block_size);
            std::vector<ChatTurn> turns;    // chat format
            std::vector<int32_t> history;   // plain transcript
            std::string line;
            std::cout << "> " << std::flush;
            while (std::getline(std::cin, line)) {
                if (line == "/quit") break;
                if (line == "/reset") {
                    history.clear();
                    turns.clear();
                    std::cout << "(conversation cleared)\n> " << std::flush;
                    continue;
                }
                std::vector<int32_t> prompt;
                if (chat) {
                    turns.push_back({"user", line});
                    prompt = render_prompt(turns, tok);
                    // Forget whole old turns while the prompt would take more than half the window.
                    while (turns.size() > 1 && prompt.size() > window / 2) {
                        turns.erase(turns.begin(), turns.begin() + std::min<long>(2, static_cast<long>(turns.size()) - 1));
                        prompt = render_prompt(turns, tok);
                    }
                } else {
                    auto ids = tok.encode(line + "\n");
                    history.insert(history.end(), ids.begin(), ids.end());
                    prompt = history;
                }
                Generation g = generate(*s.loaded.model, {prompt}, s.options, tok.pad_id(), s.generator);
                const std::vector<int32_t> reply = response_ids(g).front();
                std::string text = tok.decode(reply);
                if (chat) {
                    turns.push_back({"assistant", text});
                } else {
                    history.insert(history.end(), reply.begin(), reply.end());
                    // Keep the transcript bounded; generate() truncates from the left to fit anyway.
                    if (history.size() > 4 * window) history.erase(history.begin(), history.end() - static_cast<long>(window));
                }
                if (text.empty() || text.back() != '\n') text += "\n";
                std::cout << text << "> " << std::flush;
            }
            std::cout << "\n";
            return 0;
        };
    });
}

}  // namespace rlhf::cli
