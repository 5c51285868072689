#include "support/helpers.h"

#include "rlhf/core/fs.h"
#include "rlhf/data/chat_format.h"
#include "rlhf/tokenizer/train.h"
#include "rlhf/train/metrics.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

namespace rlhf::test {

TempDir::TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rlhf-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

namespace {
// Changes with every build of the test binary: its size and modification time.
std::string test_binary_key() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    const auto size = fs::file_size(exe, ec);
    const auto mtime = fs::last_write_time(exe, ec).time_since_epoch().count();
    return std::to_string(size) + "-" + std::to_string(mtime);
}
}  // namespace

void copy_cached_fixture(const std::string& name, const std::function<void(const fs::path&)>& make, const fs::path& dir) {
    const fs::path root = fs::temp_directory_path() / "rlhf-test-fixtures";
    fs::create_directories(root);
    const fs::path ready = root / (name + "-" + test_binary_key());
    {
        const int lock = ::open((root / (name + ".lock")).c_str(), O_CREAT | O_RDWR, 0644);
        if (lock < 0 || ::flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + (root / name).string());
        if (!fs::exists(ready)) {
            for (const auto& old : fs::directory_iterator(root)) {  // an earlier build's: never used again
                const std::string file = old.path().filename().string();
                if (old.is_directory() && file.rfind(name + "-", 0) == 0) fs::remove_all(old.path());
            }
            const fs::path making = root / (name + ".making");
            fs::remove_all(making);
            fs::create_directories(making);
            make(making);
            fs::rename(making, ready);
        }
        ::close(lock);  // releases the lock
    }
    fs::copy(ready, dir, fs::copy_options::recursive | fs::copy_options::copy_symlinks | fs::copy_options::overwrite_existing);
}

void skip(const std::string& reason) {
    std::printf("SKIPPED: %s\n", reason.c_str());
    std::fflush(stdout);
    std::_Exit(4);
}

fs::path shared_data_or_skip(const std::string& relative) {
    fs::path p = fs::path(RLHF_SOURCE_DIR) / ".." / "shared" / "data" / relative;
    if (!fs::exists(p)) skip("needs ../shared/data/" + relative);
    return p;
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::vector<nlohmann::json> metric_records(const fs::path& run, const std::string& type) {
    std::vector<nlohmann::json> out;
    for (const auto& r : read_metrics(run / "metrics.jsonl")) if (r["type"] == type) out.push_back(r);
    return out;
}

ModelConfig tiny_model(int vocab_size) {
    ModelConfig m;
    m.n_layer = 2;
    m.n_head = 2;
    m.n_embd = 32;
    m.block_size = 32;
    m.vocab_size = vocab_size;
    m.bias = true;
    m.dropout = 0.0;
    return m;
}

ModelConfig tiny_llama(int vocab_size) {
    ModelConfig m = tiny_model(vocab_size);
    m.arch = ModelArch::Llama;
    m.bias = false;
    m.activation = Activation::Silu;
    m.n_head = 4;
    m.n_kv_head = 2;
    m.head_dim = 16;
    m.intermediate_size = 48;
    m.qkv_bias = true;
    m.qk_norm = true;
    m.tie_embeddings = false;
    m.rope_scaling = RopeScaling::Llama3;
    m.rope_original_context = 16;
    m.norm_eps = 1e-6;
    return m;
}

ModelConfig tiny_model_of(const std::string& arch, int vocab_size) {
    if (arch == "llama") return tiny_llama(vocab_size);
    ModelConfig m = tiny_model(vocab_size);
    m.arch = enum_from_name<ModelArch>(arch).value();
    return m;
}

Tokenizer chat_char_tokenizer(const fs::path& dir) {
    write_text(dir / "chars.txt", "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,?!:'\"-+=\n");
    TokenizerTrainOptions o;
    o.inputs = {dir / "chars.txt"};
    o.model_type = "char";
    return with_chat_tokens(train_tokenizer(o));
}

RunConfig fine_tune_config(const std::string& stage, const fs::path& dir, const std::string& out, const std::string& init_from) {
    RunConfig cfg;
    cfg.stage = enum_from_name<Stage>(stage).value();
    cfg.source = "<test>";
    cfg.out_dir = (dir / out).string();
    cfg.init_from = (dir / init_from).string();
    cfg.runtime.threads = 2;
    cfg.runtime.deterministic = true;
    cfg.runtime.log_level = "warn";
    cfg.optim.weight_decay = 0;
    cfg.checkpoint.keep_last = 0;
    return cfg;
}

RunConfig tiny_pretrain_config(const fs::path& corpus, const fs::path& out_dir) {
    RunConfig cfg;
    cfg.stage = Stage::Pretrain;
    cfg.out_dir = out_dir.string();
    cfg.runtime.threads = 2;
    cfg.runtime.deterministic = true;  // results compared bit for bit, also under load
    cfg.runtime.log_level = "warn";
    cfg.model = tiny_model(0);
    cfg.tokenizer.model_type = "char";
    cfg.data.text = {corpus.string()};
    cfg.data.val_fraction = 0.1;
    cfg.optim.lr = 3e-3;
    cfg.optim.min_lr = 3e-4;
    cfg.optim.lr_warmup_steps = 5;
    cfg.train.max_steps = 30;
    cfg.train.batch_size = 8;
    cfg.train.eval_every = 10;
    cfg.train.eval_batches = 2;
    cfg.train.log_every = 10;
    cfg.checkpoint.every = 10;
    cfg.checkpoint.keep_last = 0;
    cfg.source = "<test>";
    return cfg;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

CommandResult run_shell(const std::string& command) {
    CommandResult r;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe) throw std::runtime_error("popen failed");
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
    int status = pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

CommandResult run_cli(const std::string& args, const fs::path& cwd) {
    return run_shell("cd " + shell_quote(cwd.string()) + " && " + shell_quote(RLHF_CLI_PATH) + " " + args);
}

// Runs a reference script; a missing module (torch, transformers) skips the test. There is no
// separate `python -c 'import torch'` check first: that import is most of a reference's time.
static std::string run_reference(const std::string& python, const std::string& script, const std::string& args,
                                 const std::string& needs) {
    const fs::path path = fs::path(RLHF_TESTS_DIR) / "reference" / script;
    CommandResult r = run_shell(python + " " + shell_quote(path.string()) + " " + args);
    if (r.exit_code != 0 && r.output.find("ModuleNotFoundError: No module named") != std::string::npos) {
        const auto at = r.output.rfind("No module named");
        skip(r.output.substr(at, r.output.find('\n', at) - at) + ": " + needs);
    }
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return r.output;
}

std::string run_python_reference(const std::string& script, const std::string& args) {
    const std::string python = "/usr/bin/python3";
    if (!fs::exists(python)) skip("needs /usr/bin/python3 with python3-torch");
    return run_reference(python, script, args, "needs python3-torch for /usr/bin/python3 (scripts/setup.sh installs it)");
}

std::string run_transformers_reference(const std::string& script, const std::string& args) {
#ifdef RLHF_VENV_PYTHON
    return run_reference(RLHF_VENV_PYTHON, script, args,
                         "needs transformers in " RLHF_VENV_PYTHON " (scripts/setup.sh --torch pip installs it)");
#else
    (void)script;
    (void)args;
    skip("needs the LibTorch 2.x flavour's venv with transformers (build with scripts/build.sh --torch pip)");
    return {};
#endif
}

void make_transformers_reference_files(const std::string& script, const fs::path& dir) {
#ifdef RLHF_VENV_PYTHON
    // The key: the script, the python, and every file the test put in `dir` (the inputs).
    const std::string text = read_file(fs::path(RLHF_TESTS_DIR) / "reference" / script);
    uint64_t key = fnv1a64(text.data(), text.size());
    key = fnv1a64(RLHF_VENV_PYTHON, sizeof(RLHF_VENV_PYTHON), key);
    fs::create_directories(dir);
    std::vector<fs::path> inputs;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file()) inputs.push_back(e.path());
    }
    std::sort(inputs.begin(), inputs.end());
    for (const auto& p : inputs) {
        const std::string name = fs::relative(p, dir).string();
        key = fnv1a64(name.data(), name.size(), key);
        const uint64_t content = file_fnv1a64(p);
        key = fnv1a64(&content, sizeof(content), key);
    }
    const fs::path cached = fs::path(RLHF_TEST_CACHE_DIR) / fmt::format("{}-{:016x}", script, key);
    if (fs::exists(cached / ".complete")) {
        fs::copy(cached, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        fs::remove(dir / ".complete");
        return;
    }
    run_transformers_reference(script, "make " + shell_quote(dir.string()));
    // Publish a copy with one rename: a test beside this one sees all of it or none.
    const fs::path staging = cached.string() + ".tmp-" + std::to_string(getpid());
    fs::create_directories(staging.parent_path());
    fs::remove_all(staging);
    fs::copy(dir, staging, fs::copy_options::recursive);
    write_text(staging / ".complete", "");
    std::error_code ec;
    fs::rename(staging, cached, ec);
    if (ec) fs::remove_all(staging);  // another test published it first
#else
    run_transformers_reference(script, "make " + shell_quote(dir.string()));  // skips
#endif
}

std::vector<nlohmann::json> json_lines(const std::string& output) {
    std::vector<nlohmann::json> records;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line[0] == '{') records.push_back(nlohmann::json::parse(line));
    }
    return records;
}

// The name of byte b in GPT-2's alphabet, written independently of the library: printable
// Latin-1 bytes stand for themselves, the 68 others for U+0100, U+0101, … in byte order.
static std::string byte_name(int b) {
    int skipped = 0;
    for (int x = 0; x < b; ++x) {
        const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        if (!printable) ++skipped;
    }
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : 256 + skipped;
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

std::pair<std::string, std::string> toy_gpt2_bpe_files() {
    nlohmann::json vocab = nlohmann::json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_name(b)] = b;
    const std::string space = byte_name(' ');
    vocab["he"] = 256;
    vocab["ll"] = 257;
    vocab["hell"] = 258;
    vocab["hello"] = 259;
    vocab[space + "w"] = 260;
    vocab["<|endoftext|>"] = 261;
    const std::string merges = "#version: 0.2\nl l\nh e\nhe ll\nhell o\n" + space + " w\n";
    return {vocab.dump(), merges};
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace rlhf::test
