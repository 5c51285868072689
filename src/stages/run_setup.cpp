#include "rlhf/stages/run_setup.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/tokenizer/train.h"
#include "rlhf/train/data_parallel.h"

namespace rlhf {

namespace {

std::vector<std::filesystem::path> to_paths(const std::vector<std::string>& files) {
    std::vector<std::filesystem::path> out;
    for (const auto& f : files) {
        if (!std::filesystem::exists(f)) {
            throw Error("data file not found", f, "fix data.text (or override it: --set data.text=PATH)");
        }
        out.emplace_back(f);
    }
    return out;
}

// Each input as {path, size, modification time}: a file edited in place changes the recipe, so
// the cached tokenizer or shards are made again (make's rule, without hashing gigabytes).
nlohmann::json describe_inputs(const std::vector<std::string>& files) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& f : files) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(f, ec);
        const auto mtime = std::filesystem::last_write_time(f, ec).time_since_epoch().count();
        out.push_back({{"path", f}, {"size", ec ? 0 : size}, {"mtime", ec ? 0 : mtime}});
    }
    return out;
}

// What a cached artefact was made from; when it differs, the artefact is made again.
nlohmann::json read_json_or_null(const std::filesystem::path& path) {
    try {
        return std::filesystem::exists(path) ? nlohmann::json::parse(read_file(path)) : nlohmann::json();
    } catch (const nlohmann::json::exception&) {
        return nullptr;
    }
}

}  // namespace

Runtime init_stage_runtime(const RunConfig& cfg) {
    init_logging(cfg.runtime.log_level);
    const DistEnv env = read_dist_env();
    int threads = cfg.runtime.threads;
    if (threads == 0 && env.launched) threads = std::max(1, available_cores() / std::max(1, env.local_world_size));
    Runtime rt = init_runtime(threads, cfg.runtime.seed, device_for_rank(cfg.runtime.device, env));
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.runtime.dist_timeout * 1000));
    const Distributed& dist = init_distributed(env, rt.device, timeout);
    set_log_rank(dist.rank());
    // PPO shares rollouts and minibatch rows instead (train.grad_accum_steps is not its key).
    if (cfg.stage != "ppo") check_accum_divides(cfg.train.grad_accum_steps, dist, cfg.source);
    if (env.launched) {
        spdlog::info("distributed: {} ranks ({} on this node), {} on {}, rendezvous at {}:{}", dist.world_size(),
                     env.local_world_size, rt.device.is_cuda() ? "NCCL" : "Gloo", rt.device.str(), env.master_addr,
                     env.master_port);
    }
    return rt;
}

std::filesystem::path open_run_dir(const RunConfig& cfg, bool resume) {
    const std::filesystem::path out_dir = cfg.out_dir;
    ensure_dir(out_dir);
    add_log_file(out_dir / "train.log");
    auto latest = latest_checkpoint(out_dir);
    if (!resume && !latest.empty()) {
        throw Error("run directory already holds checkpoints (" + latest.filename().string() + ")", cfg.out_dir,
                    "continue it with --resume, or choose another out_dir (--set out_dir=...)");
    }
    if (resume && latest.empty()) spdlog::info("--resume: no checkpoint in {} yet, starting from scratch", cfg.out_dir);
    if (resume && !latest.empty()) {
        // Say it is another stage's run before its tensors fail to fit this stage's model.
        const std::string stage = read_checkpoint_info(latest).config.stage;
        if (stage != cfg.stage) {
            throw Error("cannot resume: this run directory holds a stage " + stage + " run, and the config is stage " +
                            cfg.stage,
                        cfg.out_dir, "choose another out_dir for the " + cfg.stage + " run (--set out_dir=...)");
        }
    }
    return resume ? latest : std::filesystem::path();
}

Tokenizer resolve_tokenizer(const RunConfig& cfg) {
    if (!cfg.data.shards.empty()) {  // before anything is read from it, so the message says what is wrong
        const std::filesystem::path dir = cfg.data.shards;
        if (!std::filesystem::exists(dir)) {
            throw Error("data.shards '" + cfg.data.shards + "' does not exist", cfg.source + ": data.shards",
                        "point it at a directory made by `rlhf data prepare`");
        }
        if (!std::filesystem::is_directory(dir)) {
            throw Error("data.shards '" + cfg.data.shards + "' is a file, not a directory", cfg.source + ": data.shards",
                        "point it at a directory made by `rlhf data prepare` (not one of its .bin files)");
        }
    }
    if (!cfg.tokenizer.path.empty()) return Tokenizer::load(cfg.tokenizer.path);
    if (!cfg.data.shards.empty()) {
        const std::filesystem::path dir = cfg.data.shards;
        if (!Tokenizer::is_tokenizer_dir(dir)) {
            throw Error("shard directory has no tokenizer (tokenizer.model, or GPT-2's vocab.json + merges.txt)",
                        cfg.data.shards, "set tokenizer.path to the tokenizer the shards were prepared with");
        }
        return Tokenizer::load(dir);
    }
    const auto dir = std::filesystem::path(cfg.out_dir) / "tokenizer";
    nlohmann::json recipe = {{"inputs", describe_inputs(cfg.data.text)},
                             {"model_type", cfg.tokenizer.model_type},
                             {"vocab_size", cfg.tokenizer.vocab_size}};
    if (read_json_or_null(dir / "recipe.json") == recipe && std::filesystem::exists(dir / kTokenizerModelFile)) {
        return Tokenizer::load(dir);
    }
    std::filesystem::remove(dir / "recipe.json");  // a crash while remaking must not leave a stale match
    TokenizerTrainOptions opts;
    opts.inputs = to_paths(cfg.data.text);
    opts.model_type = cfg.tokenizer.model_type;
    opts.vocab_size = cfg.tokenizer.vocab_size;
    opts.threads = cfg.runtime.threads;
    Tokenizer tok = train_tokenizer(opts);
    tok.save(dir);
    atomic_write(dir / "recipe.json", recipe.dump(2) + "\n");
    return tok;
}

std::filesystem::path resolve_token_shards(const RunConfig& cfg, const Tokenizer& tokenizer) {
    if (!cfg.data.shards.empty()) return cfg.data.shards;
    const auto dir = std::filesystem::path(cfg.out_dir) / "data";
    nlohmann::json recipe = {{"inputs", describe_inputs(cfg.data.text)},
                             {"val_fraction", cfg.data.val_fraction},
                             {"tokenizer_fingerprint", hex64(tokenizer.fingerprint())}};
    if (read_json_or_null(dir / "recipe.json") == recipe) return dir;
    std::filesystem::remove(dir / "recipe.json");  // a crash while remaking must not leave a stale match
    auto stats = prepare_token_shards(tokenizer, to_paths(cfg.data.text), dir, cfg.data.val_fraction);
    atomic_write(dir / "recipe.json", recipe.dump(2) + "\n");
    spdlog::info("data: {} train tokens, {} val tokens in {}", stats.train_tokens, stats.val_tokens, dir.string());
    return dir;
}

void resolve_vocab_size(RunConfig& cfg, const Tokenizer& tokenizer) {
    if (cfg.model.vocab_size == 0) {
        cfg.model.vocab_size = tokenizer.vocab_size();
    } else if (cfg.model.vocab_size < tokenizer.vocab_size()) {
        throw Error("model.vocab_size = " + std::to_string(cfg.model.vocab_size) + " is smaller than the tokenizer's " +
                        std::to_string(tokenizer.vocab_size()) + " pieces",
                    cfg.source + ": model.vocab_size", "set model.vocab_size to 0 (use the tokenizer's size) or larger");
    }
}

}  // namespace rlhf
