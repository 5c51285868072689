// The promise to users: a mistake gets ONE clear line naming the file (and line) or the key,
// and a non-zero exit — never an abort, a segfault or a LibTorch backtrace.
#include <catch2/catch.hpp>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "rlhf/core/fs.h"
#include "rlhf/data/demo_corpus.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

// Asserts a clean failure: exit code 1, exactly one "error:" line carrying every `needles`.
void require_one_line_error(const test::CommandResult& r, const std::vector<std::string>& needles) {
    INFO(r.output);
    REQUIRE(r.exit_code == 1);
    int error_lines = 0;
    std::string line, error_line;
    std::istringstream in(r.output);
    while (std::getline(in, line)) {
        if (line.rfind("error: ", 0) == 0) {
            ++error_lines;
            error_line = line;
        }
    }
    REQUIRE(error_lines == 1);
    for (const auto& n : needles) REQUIRE_THAT(error_line, Contains(n));
    REQUIRE_THAT(r.output, !Contains("Exception raised from") && !Contains("frame #") && !Contains("terminate called"));
}

// A prepared tiny run (tokenizer, shards, checkpoint) shared by the tests below.
struct TrainedRun {
    test::TempDir dir;
    TrainedRun() {
        test::write_text(dir / "corpus.txt", demo_corpus(20000));
        auto r = test::run_cli("train " + cfg() + " --set out_dir=run data.text=corpus.txt train.max_steps=5", dir.path());
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        // The start-up line adds up what training holds (docs/memory.md).
        REQUIRE_THAT(r.output, Contains("MiB of gradients and AdamW moments; ~") && Contains("MiB of activations per micro-batch of"));
    }
    static std::string cfg() { return test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/pretrain.yaml"); }
};

}  // namespace

TEST_CASE("help lists every command", "[integration][cli][light]") {
    // Every command rlhf has (src/cli/main.cpp); a new command is added here too.
    std::vector<std::string> expected = {"train", "launch", "tokenizer", "data", "generate", "chat",
                                         "score", "eval", "convert", "config", "bench"};
    std::sort(expected.begin(), expected.end());
    // The commands the CLI registers, as its error for an unknown command lists them (CLI11's list
    // of subcommands, whatever --help prints).
    auto unknown = test::run_cli("no-such-command");
    INFO(unknown.output);
    std::smatch m;
    REQUIRE(std::regex_search(unknown.output, m, std::regex(R"(\(commands: ([^)]*)\))")));
    std::vector<std::string> registered;
    {
        std::istringstream list(m[1].str());
        for (std::string name; std::getline(list, name, ',');) registered.push_back(name.substr(name.find_first_not_of(' ')));
    }
    std::sort(registered.begin(), registered.end());
    REQUIRE(registered == expected);
    // --help lists each as "  NAME  description" at the start of a line, once.
    auto r = test::run_cli("--help");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> listed;
    {
        std::istringstream lines(r.output);
        const std::regex entry(R"(  ([a-z][a-z0-9-]*)(\s.*)?)");
        for (std::string line; std::getline(lines, line);) {
            if (std::regex_match(line, m, entry)) listed.push_back(m[1]);
        }
    }
    std::sort(listed.begin(), listed.end());
    REQUIRE(listed == expected);
    auto g = test::run_cli("generate --help");
    for (const char* flag : {"--checkpoint", "--prompt", "--prompts", "--max-new-tokens", "--temperature", "--top-k",
                             "--top-p", "--seed", "--batch-size"}) {
        REQUIRE_THAT(g.output, Contains(flag));
    }
}

// Config errors: unknown key, wrong type, out of range, missing file.
TEST_CASE("config errors: unknown key, type, range, missing file", "[integration][cli][light]") {
    test::TempDir dir;
    test::write_text(dir / "c.yaml", "stage: pretrain\ndata:\n  text: [x.txt]\nmodel:\n  n_layers: 2\n");
    require_one_line_error(test::run_cli("train c.yaml", dir.path()), {"c.yaml:5", "unknown key 'model.n_layers'", "model.n_layer"});
    test::write_text(dir / "t.yaml", "stage: pretrain\ndata:\n  text: [x.txt]\ntrain:\n  batch_size: big\n");
    require_one_line_error(test::run_cli("train t.yaml", dir.path()), {"t.yaml:5", "train.batch_size", "expected an integer"});
    test::write_text(dir / "r.yaml", "stage: pretrain\ndata:\n  text: [x.txt]\n");
    require_one_line_error(test::run_cli("train r.yaml --set train.batch_size=0", dir.path()),
                           {"--set train.batch_size", "0 is out of range"});
    require_one_line_error(test::run_cli("train nope.yaml", dir.path()), {"nope.yaml", "not found"});
    test::write_text(dir / "ok.yaml", "stage: pretrain\ndata:\n  text: [missing.txt]\n");
    require_one_line_error(test::run_cli("train ok.yaml --set out_dir=r", dir.path()), {"missing.txt", "not found", "data.text"});
}

// A GPU this machine does not have is one error line naming the key or flag.
TEST_CASE("a missing GPU is one error line naming the key or flag", "[integration][cli][light]") {
    TrainedRun run;
    // Without a visible GPU any cuda device is refused (the message says whether the LibTorch has
    // CUDA at all); with one, a device index past the last GPU is.
    const std::string device = torch::cuda::is_available() ? "cuda:99" : "cuda";
    const std::string why = torch::cuda::is_available() ? "does not exist" : "requested but";
    require_one_line_error(
        test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=gpu data.text=corpus.txt runtime.device=" + device,
                      run.dir.path()),
        {"runtime.device", device, why});
    test::write_text(run.dir / "p.jsonl", "{\"prompt\": \"How old is Anna?\", \"answer\": 7}\n");
    for (const char* command : {"generate --prompt hi --checkpoint run", "eval --task ages --prompts p.jsonl --checkpoint run",
                                "bench generate --preset gpt2 --new-tokens 1"}) {
        INFO(command);
        require_one_line_error(test::run_cli(std::string(command) + " --device " + device, run.dir.path()),
                               {"--device", device, why});
    }
}

// Data errors: empty corpus, too-short corpus, vocabulary mismatch.
TEST_CASE("data errors: empty or too-short corpus, vocabulary mismatch", "[integration][cli][light]") {
    test::TempDir dir;
    test::write_text(dir / "empty.txt", "");
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=r1 data.text=empty.txt", dir.path()),
                           {"empty.txt", "no text"});
    test::write_text(dir / "short.txt", "To be or not to be.\n");
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=r2 data.text=short.txt", dir.path()),
                           {"tokens", "block_size"});
    test::write_text(dir / "corpus.txt", demo_corpus(20000));
    require_one_line_error(
        test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=r3 data.text=corpus.txt model.vocab_size=5", dir.path()),
        {"model.vocab_size", "smaller than the tokenizer"});
    // shards made with one tokenizer, trained against another
    auto t1 = test::run_cli("tokenizer train --input corpus.txt --model-type char --out tokA", dir.path());
    REQUIRE(t1.exit_code == 0);
    auto t2 = test::run_cli("tokenizer train --input corpus.txt --model-type bpe --vocab-size 400 --out tokB", dir.path());
    REQUIRE(t2.exit_code == 0);
    REQUIRE(test::run_cli("data prepare --tokenizer tokA --input corpus.txt --out shards", dir.path()).exit_code == 0);
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() +
                                             " --set out_dir=r4 data.text=[] data.shards=shards tokenizer.path=tokB",
                                         dir.path()),
                           {"different tokenizer"});
}

TEST_CASE("a truncated shard and a corrupted checkpoint are named", "[integration][cli][light]") {
    TrainedRun run;
    const auto shard = run.dir / "run" / "data" / "train_000000.bin";
    const std::string bytes = read_file(shard);
    atomic_write(shard, bytes.substr(0, bytes.size() - 100));
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=run data.text=corpus.txt"
                                         " train.max_steps=10 --resume",
                                         run.dir.path()),
                           {"train_000000.bin", "truncated"});
    atomic_write(shard, bytes);

    const auto weights = run.dir / "run" / "checkpoints" / "latest" / "model.safetensors";
    const std::string w = read_file(weights);
    atomic_write(weights, w.substr(0, w.size() / 3));
    require_one_line_error(test::run_cli("generate --checkpoint run --prompt Hi --max-new-tokens 5", run.dir.path()),
                           {"model.safetensors", "truncated"});
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=run data.text=corpus.txt"
                                         " train.max_steps=10 --resume",
                                         run.dir.path()),
                           {"model.safetensors"});
}

TEST_CASE("resuming with a different model shape is refused", "[integration][cli][light]") {
    TrainedRun run;
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --set out_dir=run data.text=corpus.txt"
                                         " train.max_steps=10 model.n_embd=32 --resume",
                                         run.dir.path()),
                           {"different model shape", "model.n_embd is 64 in the checkpoint but 32"});
}

TEST_CASE("bad inputs are named for what they are (issue 19)", "[integration][cli][light]") {
    TrainedRun run;
    const std::string pretrain = "train " + TrainedRun::cfg() + " --set ";
    const std::string sft = "train " + test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/sft.yaml") + " --set ";
    require_one_line_error(test::run_cli(pretrain + "out_dir=r1 data.text=[] data.shards=nowhere", run.dir.path()),
                           {"data.shards", "'nowhere' does not exist"});
    require_one_line_error(test::run_cli(pretrain + "out_dir=r2 data.text=[] data.shards=corpus.txt", run.dir.path()),
                           {"data.shards", "is a file, not a directory"});

    // Text that is not UTF-8 (here: random bytes) is refused, not trained on as U+FFFD.
    std::string random(20000, '\0');
    uint64_t state = 11;
    for (auto& c : random) c = static_cast<char>((state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 56);
    test::write_text(run.dir / "random.bin", random);
    require_one_line_error(test::run_cli(pretrain + "out_dir=r3 data.text=random.bin", run.dir.path()),
                           {"random.bin:1:", "not UTF-8"});

    // An SFT config resumed into the pre-training run's directory names the stages, not a tensor.
    test::write_text(run.dir / "sft.jsonl", "{\"prompt\": \"Hi\", \"response\": \"Hello.\"}\n");
    require_one_line_error(test::run_cli(sft + "out_dir=run init_from=run data.files=sft.jsonl --resume", run.dir.path()),
                           {"stage pretrain run", "config is stage sft"});
    // A shape key given at its default value (128) still has to match init_from's 64.
    require_one_line_error(test::run_cli(sft + "out_dir=s1 init_from=run data.files=sft.jsonl model.n_embd=128", run.dir.path()),
                           {"model.n_embd is 128", "init_from's model has 64"});
    // ... so `config show`, whose output may be saved as a config, names init_from's model.
    const auto shown = test::run_cli("config show " + test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/sft.yaml") +
                                         " --set init_from=run",
                                     run.dir.path());
    REQUIRE(shown.exit_code == 0);
    REQUIRE_THAT(shown.output, Contains("n_embd: 64") && Contains("n_layer: 2"));

    // A deleted validation shard is an error, not a run without validation.
    std::filesystem::remove(run.dir / "run" / "data" / "val_000000.bin");
    require_one_line_error(test::run_cli(pretrain + "out_dir=r4 data.text=[] data.shards=run/data", run.dir.path()),
                           {"meta.json lists", "val"});
}

TEST_CASE("generate: samples, and rejects bad options and inputs", "[integration][cli]") {
    TrainedRun run;
    auto ok = test::run_cli("generate --checkpoint run --prompt 'The cat' --max-new-tokens 20 --seed 3", run.dir.path());
    INFO(ok.output);
    REQUIRE(ok.exit_code == 0);
    REQUIRE_THAT(ok.output, Contains("The cat"));
    auto again = test::run_cli("generate --checkpoint run --prompt 'The cat' --max-new-tokens 20 --seed 3", run.dir.path());
    auto sample = [](const std::string& out) {  // the line holding the sample (log lines carry timestamps)
        auto start = out.find("The cat");
        return out.substr(start, out.find('\n', start) - start);
    };
    REQUIRE(sample(again.output) == sample(ok.output));

    test::write_text(run.dir / "prompts.jsonl", "{\"prompt\": \"A dog\"}\n{\"prompt\": \"The sea\"}\n");
    auto batch = test::run_cli("generate --checkpoint run --prompts prompts.jsonl --max-new-tokens 8 --out out.jsonl",
                               run.dir.path());
    REQUIRE(batch.exit_code == 0);
    REQUIRE_THAT(read_file(run.dir / "out.jsonl"), Contains("\"prompt\":\"The sea\""));

    require_one_line_error(test::run_cli("generate --checkpoint nowhere --prompt x", run.dir.path()),
                           {"nowhere", "checkpoint not found"});
    require_one_line_error(test::run_cli("generate --checkpoint run --prompt x --top-p 1.5", run.dir.path()),
                           {"top_p", "(0, 1]"});
    require_one_line_error(test::run_cli("generate --checkpoint run --prompt x --top-p 0", run.dir.path()), {"top_p"});
    require_one_line_error(test::run_cli("generate --checkpoint run --prompt x --temperature -1", run.dir.path()),
                           {"temperature", ">= 0"});
    test::write_text(run.dir / "bad.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": \"unterminated}\n");
    require_one_line_error(test::run_cli("generate --checkpoint run --prompts bad.jsonl", run.dir.path()),
                           {"bad.jsonl:2", "invalid JSON"});
    test::write_text(run.dir / "nokey.jsonl", "{\"text\": \"ok\"}\n");
    require_one_line_error(test::run_cli("generate --checkpoint run --prompts nokey.jsonl", run.dir.path()),
                           {"nokey.jsonl:1", "missing field \"prompt\""});
    require_one_line_error(test::run_cli("generate --checkpoint run --prompt x --max-new-tokens 64", run.dir.path()),
                           {"max_new_tokens", "context window"});
}

TEST_CASE("chat answers each line from the transcript", "[integration][cli]") {
    TrainedRun run;
    auto r = test::run_cli("chat --checkpoint run --max-new-tokens 10 < /dev/null", run.dir.path());
    REQUIRE(r.exit_code == 0);
    test::write_text(run.dir / "in.txt", "The cat sees\n/reset\nA dog\n/quit\n");
    auto c = test::run_cli("chat --checkpoint run --max-new-tokens 10 --seed 1 < in.txt", run.dir.path());
    INFO(c.output);
    REQUIRE(c.exit_code == 0);
    REQUIRE_THAT(c.output, Contains("(conversation cleared)"));
}

TEST_CASE("flag mistakes are one error line and exit 1 too", "[integration][cli][light]") {
    test::TempDir dir;
    require_one_line_error(test::run_cli("train", dir.path()), {"config is required", "rlhf train --help"});
    require_one_line_error(test::run_cli("generate --checkpoint x --max-new-tokens 0", dir.path()),
                           {"--max-new-tokens", "rlhf generate --help"});
    require_one_line_error(test::run_cli("frobnicate", dir.path()), {"frobnicate"});
    require_one_line_error(test::run_cli("train " + TrainedRun::cfg() + " --bogus", dir.path()), {"--bogus"});
    require_one_line_error(test::run_cli("generate --checkpoint x --threads -3", dir.path()), {"--threads"});
    require_one_line_error(test::run_cli("eval --checkpoint x --task ages --threads -1", dir.path()), {"--threads"});
    REQUIRE(test::run_cli("--version").exit_code == 0);
}

TEST_CASE("tokenizer and data commands report bad arguments", "[integration][cli][light]") {
    test::TempDir dir;
    require_one_line_error(test::run_cli("tokenizer train --input none.txt --model-type char --out t", dir.path()),
                           {"none.txt", "not found"});
    test::write_text(dir / "c.txt", "abc\n");
    require_one_line_error(test::run_cli("tokenizer train --input c.txt --model-type bpe --out t", dir.path()),
                           {"--vocab-size"});
    REQUIRE(test::run_cli("tokenizer train --input c.txt --model-type char --out t", dir.path()).exit_code == 0);
    require_one_line_error(test::run_cli("data prepare --tokenizer t --input c.txt --out s --val-fraction 2", dir.path()),
                           {"--val-fraction"});
    require_one_line_error(test::run_cli("data prepare --tokenizer nope --input c.txt --out s", dir.path()),
                           {"nope", "tokenizer model not found"});
    require_one_line_error(test::run_cli("tokenizer train --model-type char", dir.path()), {"--input"});
}

TEST_CASE("eval --perplexity: totals, per-document lines, errors", "[integration][cli]") {
    TrainedRun run;
    // Three documents of different lengths: one batch of three pads two rows; batches of one pad none.
    test::write_text(run.dir / "held_out.txt",
                     "The cat sees the dog.\n\nA dog runs after a ball in the park,\nand the cat sleeps.\n\n\nThe sea\n");
    auto summary = [](const test::CommandResult& r) {
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        return nlohmann::json::parse(r.output.substr(r.output.rfind("{\"documents\"")));
    };
    const auto together = summary(test::run_cli(
        "eval --perplexity --checkpoint run --data held_out.txt --batch-size 3 --out docs.jsonl", run.dir.path()));
    const auto alone = summary(test::run_cli("eval --perplexity --checkpoint run --data held_out.txt --batch-size 1",
                                             run.dir.path()));
    CHECK(together["documents"] == 3);
    CHECK(together["tokens"] == alone["tokens"]);
    CHECK(together["nll"].get<double>() == Approx(alone["nll"].get<double>()).epsilon(1e-5));  // padding is never seen
    CHECK(together["perplexity"].get<double>() == Approx(std::exp(together["nll"].get<double>())).epsilon(1e-9));

    // The per-document lines add up to the summary: token-weighted mean nll.
    std::istringstream lines(read_file(run.dir / "docs.jsonl"));
    int64_t tokens = 0;
    double nll_sum = 0;
    std::vector<std::string> where;
    for (std::string line; std::getline(lines, line);) {
        const auto doc = nlohmann::json::parse(line);
        tokens += doc["tokens"].get<int64_t>();
        nll_sum += doc["nll"].get<double>() * doc["tokens"].get<double>();
        where.push_back(doc["where"]);
    }
    CHECK(where == std::vector<std::string>{"held_out.txt:1", "held_out.txt:3", "held_out.txt:7"});
    CHECK(tokens == together["tokens"].get<int64_t>());
    CHECK(nll_sum / static_cast<double>(tokens) == Approx(together["nll"].get<double>()).epsilon(1e-9));

    require_one_line_error(test::run_cli("eval --perplexity --checkpoint run", run.dir.path()), {"--data"});
    require_one_line_error(test::run_cli("eval --perplexity --checkpoint run --data held_out.txt --task ages", run.dir.path()),
                           {"--task"});
    require_one_line_error(test::run_cli("eval --checkpoint run", run.dir.path()), {"--task", "--perplexity"});
    test::write_text(run.dir / "blank.txt", "\n  \n\n");
    require_one_line_error(test::run_cli("eval --perplexity --checkpoint run --data blank.txt", run.dir.path()),
                           {"blank.txt", "no documents"});
}
