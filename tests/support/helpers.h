// Shared test helpers: temporary directories, tiny configs, a generated corpus, running the CLI,
// and calling the independent PyTorch reference (/usr/bin/python3 with Debian's python3-torch).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlhf/config/config.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf::test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    fs::path path_;
};

// Fills `dir` with a copy of the fixture `name`, made by `make(fixture_dir)` once per build of
// the test binary and kept under the temp dir for every later test process of that build (ctest
// runs each test case as its own process, and nine PPO tests start from the same tiny SFT model).
// Made under a file lock and published by rename, so parallel tests wait for one maker. The copy
// is the caller's to change; a fixture must not depend on its own absolute path.
void copy_cached_fixture(const std::string& name, const std::function<void(const fs::path&)>& make, const fs::path& dir);

// Ends the current test as skipped (ctest shows "Skipped"; exit code 4).
[[noreturn]] void skip(const std::string& reason);

// ../shared/data relative to the source tree, or skip() when it is absent.
fs::path shared_data_or_skip(const std::string& relative);

void write_text(const fs::path& path, const std::string& text);

// The records of one type ("train", "eval", ...) of a run's metrics.jsonl, in order.
std::vector<nlohmann::json> metric_records(const fs::path& run, const std::string& type);

// A tiny model config (2 layers, 32 wide, context 32) for fast tests.
ModelConfig tiny_model(int vocab_size = 64);
// The same size as a llama (arch: llama) with every switch on: grouped-query attention (4 heads,
// 2 kv), head_dim 16 != 32 / 4, q/k/v biases, q/k norms, an untied head, llama3 rope scaling.
ModelConfig tiny_llama(int vocab_size = 64);
// tiny_model for "gpt2" / "gpt1", tiny_llama for "llama".
ModelConfig tiny_model_of(const std::string& arch, int vocab_size = 64);

// A character tokenizer (letters, digits, punctuation) with the chat tokens, trained in `dir`.
Tokenizer chat_char_tokenizer(const fs::path& dir);

// A fine-tuning stage's config: `stage` from dir/init_from into dir/out, 2 threads, deterministic
// (results compared bit for bit, also under load), warnings only, no weight decay, every
// checkpoint kept.
RunConfig fine_tune_config(const std::string& stage, const fs::path& dir, const std::string& out, const std::string& init_from);

// A pretrain config for a tiny model on `corpus` (char tokenizer), writing into `out_dir`.
RunConfig tiny_pretrain_config(const fs::path& corpus, const fs::path& out_dir);

struct CommandResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};
// Runs `command` with /bin/sh; stdout and stderr together.
CommandResult run_shell(const std::string& command);
// Runs the built `rlhf` binary with `args` (a shell-quoted string) from `cwd`.
CommandResult run_cli(const std::string& args, const fs::path& cwd = fs::current_path());

// Runs tests/reference/<script> with /usr/bin/python3 and `args`; skip()s when python3 or its
// torch is missing. Returns stdout; a non-zero exit fails the test with the script's output.
std::string run_python_reference(const std::string& script, const std::string& args);
// The same with the LibTorch 2.x flavour's venv python, which has Hugging Face transformers
// (scripts/setup.sh --torch pip installs it); skip()s in other builds or without transformers.
std::string run_transformers_reference(const std::string& script, const std::string& args);
// `<script> make DIR` (the toy Hugging Face models and tokenizers a test starts from), run once per
// build and version of its inputs: later tests copy the files from build/tests/reference-cache
// instead of starting Python again (2-5 s). The key hashes the script and the files already in
// `dir`, which the test wrote as the script's inputs.
void make_transformers_reference_files(const std::string& script, const fs::path& dir);
// The JSON objects of a script's output, one per line that starts with '{' (a reference given
// several inputs prints one line each).
std::vector<nlohmann::json> json_lines(const std::string& output);

// A toy GPT-2 byte-level BPE (vocab.json, merges.txt texts), written independently of the
// library: the 256 byte entries, then "he", "ll", "hell", "hello", " w" (ids 256-260) and
// <|endoftext|> (261).
std::pair<std::string, std::string> toy_gpt2_bpe_files();

// Max |a - b| (for messages) and a REQUIRE-friendly closeness check.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

std::string shell_quote(const std::string& s);

}  // namespace rlhf::test
