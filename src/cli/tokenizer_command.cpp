#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <iterator>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/hf_dir.h"
#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/data/demo_corpus.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/data/synth_task.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/tokenizer/gpt2_bpe.h"
#include "rlhf/tokenizer/train.h"

namespace rlhf::cli {

void add_tokenizer_command(CLI::App& app, Action& action) {
    struct Args {
        std::vector<std::string> inputs;
        int vocab_size = 0;
        std::string model_type = "bpe";
        std::string out;
        std::string byte_fallback = "auto";
        std::vector<std::string> user_symbols;
        int threads = 0;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("tokenizer", "Tokenizer tools");
    cmd->require_subcommand(1);
    auto* train = cmd->add_subcommand("train", "Train a SentencePiece tokenizer (ids: 0 unk, 1 BOS, 2 EOS, 3 PAD)");
    train->add_option("--input", args->inputs, "UTF-8 text files (BOM and CRLF are normalised)")->required();
    train->add_option("--vocab-size", args->vocab_size, "Vocabulary size (char: 0 = every character of the input)");
    train->add_option("--model-type", args->model_type, "bpe | unigram | char")
        ->check(CLI::IsMember({"bpe", "unigram", "char"}))
        ->capture_default_str();
    train->add_option("--out", args->out, "Output directory (tokenizer.model, tokenizer.vocab)")->required();
    train->add_option("--byte-fallback", args->byte_fallback,
                      "on | off | auto (auto: on for bpe/unigram, off for char)")
        ->check(CLI::IsMember({"on", "off", "auto"}))
        ->capture_default_str();
    train->add_option("--user-symbols", args->user_symbols, "Pieces never split (e.g. chat markers)")->delimiter(',');
    train->add_option("--threads", args->threads, "Training threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    train->callback([args, &action] {
        action = [args] {
            TokenizerTrainOptions opts;
            for (const auto& f : args->inputs) opts.inputs.emplace_back(f);
            opts.vocab_size = args->vocab_size;
            opts.model_type = args->model_type;
            opts.byte_fallback = args->byte_fallback == "auto" ? -1 : args->byte_fallback == "on" ? 1 : 0;
            opts.user_symbols = args->user_symbols;
            opts.threads = args->threads;
            Tokenizer tok = train_tokenizer(opts);
            tok.save(args->out);
            spdlog::info("wrote {}/tokenizer.model ({} pieces; unk {}, bos {}, eos {}, pad {})", args->out,
                         tok.vocab_size(), tok.unk_id(), tok.bos_id(), tok.eos_id(), tok.pad_id());
            return 0;
        };
    });

    // GPT-2's byte-level BPE from OpenAI's or Hugging Face's files.
    struct ImportArgs {
        std::string encoder, vocab_bpe, vocab_json, merges, from, out;
    };
    auto imp = std::make_shared<ImportArgs>();
    auto* import_cmd = cmd->add_subcommand(
        "import-gpt2", "Make a tokenizer directory from a byte-level BPE: GPT-2's files, or a Hugging Face directory "
                       "(--from: its tokenizer.json with Qwen's, Llama-3's or SmolLM2's split, tokenizer_config.json's "
                       "added tokens and eos_token); <|pad|> is added as PAD. Also named import-hf");
    import_cmd->alias("import-hf");
    import_cmd->add_option("--encoder", imp->encoder, "OpenAI's encoder.json (with --vocab)");
    import_cmd->add_option("--vocab", imp->vocab_bpe, "OpenAI's vocab.bpe (with --encoder)");
    import_cmd->add_option("--vocab-json", imp->vocab_json, "Hugging Face's vocab.json (with --merges)");
    import_cmd->add_option("--merges", imp->merges, "Hugging Face's merges.txt (with --vocab-json)");
    import_cmd->add_option("--from", imp->from, "A directory holding tokenizer.json (read first), or either pair");
    import_cmd->add_option("--out", imp->out, "Output tokenizer directory (vocab.json, merges.txt, added_tokens.json)")
        ->required();
    import_cmd->callback([imp, &action] {
        action = [imp] {
            const bool openai = !imp->encoder.empty() || !imp->vocab_bpe.empty();
            const bool hf = !imp->vocab_json.empty() || !imp->merges.empty();
            if (static_cast<int>(openai) + static_cast<int>(hf) + static_cast<int>(!imp->from.empty()) != 1) {
                throw Error("give one source: --encoder and --vocab, --vocab-json and --merges, or --from DIR",
                            "rlhf tokenizer import-gpt2", "");
            }
            auto pair_of = [](const std::string& vocab, const std::string& merges, const char* vocab_flag,
                              const char* merges_flag) {
                if (vocab.empty() || merges.empty()) {
                    throw Error(std::string(vocab_flag) + " and " + merges_flag + " go together", "rlhf tokenizer import-gpt2", "");
                }
                for (const auto& f : {vocab, merges}) {
                    if (!std::filesystem::is_regular_file(f)) throw Error("file not found", f, "check the path");
                }
                return Tokenizer::from_gpt2_bpe(Gpt2Bpe(read_file(vocab), vocab, read_file(merges), merges), vocab);
            };
            Tokenizer tok = openai ? pair_of(imp->encoder, imp->vocab_bpe, "--encoder", "--vocab")
                            : hf   ? pair_of(imp->vocab_json, imp->merges, "--vocab-json", "--merges")
                                   : read_hf_tokenizer(imp->from);
            if (tok.kind() != Tokenizer::Kind::gpt2_bpe) {
                throw Error("holds a SentencePiece tokenizer, not GPT-2's BPE", imp->from, "use it directly as tokenizer.path");
            }
            tok.save(imp->out);
            spdlog::info("wrote {}: byte-level BPE, {} entries + {} added token(s); eos {}, pad {}; chat format {}", imp->out,
                         tok.spm_vocab_size(), tok.added_tokens().size(), tok.eos_id(), tok.pad_id(),
                         chat_style_name(tok.chat_template().style));
            return 0;
        };
    });

    // A conversation in the tokenizer's chat format: what the stages train on and generate after.
    struct ApplyChatArgs {
        std::string tokenizer, format = "auto";
        bool generation_prompt = false, text = false;
    };
    auto chat = std::make_shared<ApplyChatArgs>();
    auto* chat_cmd = cmd->add_subcommand(
        "apply-chat", "Render a conversation (a JSON list of {\"role\", \"content\"} on stdin) in the tokenizer's chat format "
                      "and print its ids as a JSON array (docs/chat-format.md)");
    chat_cmd->add_option("--tokenizer", chat->tokenizer,
                         "A checkpoint (run or step directory), a tokenizer directory, or a Hugging Face one (tokenizer.json "
                         "+ tokenizer_config.json with its chat_template)")
        ->required();
    chat_cmd->add_option("--template", chat->format, "auto (the tokenizer's own) | rlhf | chatml | llama3")
        ->check(CLI::IsMember({"auto", "rlhf", "chatml", "llama3"}))
        ->capture_default_str();
    chat_cmd->add_flag("--add-generation-prompt", chat->generation_prompt,
                       "End with the assistant's header: the prompt a reply is generated after");
    chat_cmd->add_flag("--text", chat->text, "Print the rendering as text (special tokens spelt out) instead of ids");
    chat_cmd->callback([chat, &action] {
        action = [chat] {
            std::filesystem::path dir = chat->tokenizer;
            if (!Tokenizer::is_tokenizer_dir(dir)) dir = resolve_checkpoint(dir);  // a run or a step directory
            const bool hf = std::filesystem::is_regular_file(dir / "tokenizer_config.json") &&
                            !std::filesystem::exists(dir / kChatTemplateFile);
            Tokenizer tok = hf ? read_hf_tokenizer(dir) : Tokenizer::load(dir);
            tok = with_chat_setting(tok, chat->format, "--template");
            const std::string input(std::istreambuf_iterator<char>(std::cin), {});
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(input);
            } catch (const nlohmann::json::exception& e) {
                throw Error(std::string("not valid JSON: ") + e.what(), "<stdin>", "give a list of {\"role\", \"content\"}");
            }
            const auto turns = parse_chat_turns(j.is_object() && j.contains("messages") ? j.at("messages") : j, "<stdin>");
            if (chat->text) {
                std::cout << render_chat_text(turns, tok, chat->generation_prompt) << std::flush;
                return 0;
            }
            const std::vector<int32_t> ids = chat->generation_prompt ? render_prompt(turns, tok) : render_conversation(turns, tok).ids;
            std::cout << nlohmann::json(ids).dump() << "\n" << std::flush;
            return 0;
        };
    });

    // Ids as JSON, one line per input: for comparing with tiktoken or Hugging Face.
    struct EncodeArgs {
        std::string tokenizer, jsonl, field = "text";
    };
    auto enc = std::make_shared<EncodeArgs>();
    auto* encode_cmd = cmd->add_subcommand(
        "encode", "Print the ids of text as a JSON array: all of stdin as one text, or one line per JSONL record");
    encode_cmd->add_option("--tokenizer", enc->tokenizer, "Tokenizer directory (either kind)")->required();
    encode_cmd->add_option("--jsonl", enc->jsonl, "JSONL file of records with a text field ('-' = stdin)");
    encode_cmd->add_option("--field", enc->field, "The JSONL field holding the text")->capture_default_str();
    encode_cmd->callback([enc, &action] {
        action = [enc] {
            const Tokenizer tok = Tokenizer::load(enc->tokenizer);
            auto print = [](const std::vector<int32_t>& ids) {
                std::string line = "[";
                for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
                line += "]\n";
                std::fwrite(line.data(), 1, line.size(), stdout);
            };
            if (enc->jsonl.empty()) {
                const std::string text(std::istreambuf_iterator<char>(std::cin), {});
                print(tok.encode(text));
            } else {
                read_records(enc->jsonl == "-" ? std::filesystem::path("/dev/stdin") : std::filesystem::path(enc->jsonl),
                             [&](const nlohmann::json& r, const std::string& where) {
                                 print(tok.encode(json_string_field(r, enc->field, where)));
                             });
            }
            std::fflush(stdout);
            return 0;
        };
    });
}

void add_data_command(CLI::App& app, Action& action) {
    struct Args {
        std::string tokenizer;
        std::vector<std::string> inputs;
        std::string out;
        double val_fraction = 0.1;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("data", "Data tools");
    cmd->require_subcommand(1);
    auto* prepare = cmd->add_subcommand("prepare", "Tokenize text into train/val token shards for pre-training");
    prepare->add_option("--tokenizer", args->tokenizer, "Tokenizer directory or .model file")->required();
    prepare->add_option("--input", args->inputs, "UTF-8 text files; each becomes one document ending in EOS")
        ->required();
    prepare->add_option("--out", args->out, "Output directory (train_*.bin, val_*.bin, meta.json)")->required();
    prepare->add_option("--val-fraction", args->val_fraction, "Tail of each file kept for validation, in [0, 1)")
        ->capture_default_str();
    prepare->callback([args, &action] {
        action = [args] {
            Tokenizer tok = Tokenizer::load(args->tokenizer);
            std::vector<std::filesystem::path> inputs(args->inputs.begin(), args->inputs.end());
            for (const auto& p : inputs) {
                if (!std::filesystem::exists(p)) throw Error("input file not found", p.string(), "check the path");
            }
            auto stats = prepare_token_shards(tok, inputs, args->out, args->val_fraction);
            spdlog::info("wrote {}: {} train tokens in {} shard(s), {} val tokens in {} shard(s)", args->out,
                         stats.train_tokens, stats.train_shards, stats.val_tokens, stats.val_shards);
            return 0;
        };
    });

    struct DemoArgs {
        std::string out;
        size_t bytes = 400000;
        uint64_t seed = 1337;
    };
    auto demo = std::make_shared<DemoArgs>();
    auto* corpus = cmd->add_subcommand("demo-corpus", "Write the built-in demo's generated English-like corpus");
    corpus->add_option("--out", demo->out, "Output text file")->required();
    corpus->add_option("--bytes", demo->bytes, "Approximate size")->capture_default_str()->check(CLI::Range(1, 1 << 30));
    corpus->add_option("--seed", demo->seed, "Generator seed")->capture_default_str();
    corpus->callback([demo, &action] {
        action = [demo] {
            const std::filesystem::path out = demo->out;
            if (out.has_parent_path()) ensure_dir(out.parent_path());
            const std::string text = demo_corpus(demo->bytes, demo->seed);
            atomic_write(out, text);
            spdlog::info("wrote {} ({} bytes)", demo->out, text.size());
            return 0;
        };
    });
    // Demonstrations and ranked comparisons about the same generated stories.
    struct DemoExamplesArgs {
        std::string out;
        size_t count = 0;
        uint64_t seed = 1337;
    };
    auto add_examples = [&](const char* name, const char* help, size_t default_count,
                            std::string (*make)(size_t, uint64_t)) {
        auto a = std::make_shared<DemoExamplesArgs>();
        a->count = default_count;
        auto* sub = cmd->add_subcommand(name, help);
        sub->add_option("--out", a->out, "Output JSONL file")->required();
        sub->add_option("--count", a->count, "Number of records")->capture_default_str()->check(CLI::Range(1, 1 << 24));
        sub->add_option("--seed", a->seed, "Generator seed")->capture_default_str();
        sub->callback([a, make, &action] {
            action = [a, make] {
                const std::filesystem::path out = a->out;
                if (out.has_parent_path()) ensure_dir(out.parent_path());
                atomic_write(out, make(a->count, a->seed));
                spdlog::info("wrote {} ({} records)", a->out, a->count);
                return 0;
            };
        });
    };
    struct SynthArgs {
        std::string task, out;
        uint64_t seed = 1337;
    };
    auto synth = std::make_shared<SynthArgs>();
    auto* synth_cmd = cmd->add_subcommand(
        "synth", "Write a generated task with a gold checker for every stage: corpus.txt, sft.jsonl (imperfect "
                 "labelers), ranked.jsonl (K = 4..9, ties), prompts.jsonl (held out, with answers)");
    synth_cmd->add_option("--task", synth->task, "Task name (ages)")->required()->check(CLI::IsMember(synth_task_names()));
    synth_cmd->add_option("--out", synth->out, "Output directory")->required();
    synth_cmd->add_option("--seed", synth->seed, "Generator seed: the same seed writes the same bytes")->capture_default_str();
    synth_cmd->callback([synth, &action] {
        action = [synth] {
            const SynthStats s = write_synth_task(synth->task, synth->out, synth->seed);
            spdlog::info("wrote {}: corpus.txt ({} bytes), sft.jsonl ({} demonstrations, {} wrong or no answer), ranked.jsonl ({} groups, "
                         "{} pairs), train_prompts.jsonl ({} questions with answers), prompts.jsonl ({} held out)",
                         synth->out, s.corpus_bytes, s.demonstrations, s.wrong_demonstrations, s.comparisons, s.pairs,
                         s.demonstrations, s.held_out);
            return 0;
        };
    });
    add_examples("demo-sft", "Write the built-in demo's SFT demonstrations (JSONL prompt/response)", 4000, demo_sft_jsonl);
    add_examples("demo-reward",
                 "Write the built-in demo's ranked comparisons (JSONL prompt/responses/ranks, K = 4..5, with ties)",
                 2000, demo_reward_jsonl);
}

}  // namespace rlhf::cli
