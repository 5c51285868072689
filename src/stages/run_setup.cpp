#include "rlhf/stages/run_setup.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/cpu_features.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/logging.h"
#include "rlhf/core/precision.h"
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
    if (cfg.runtime.deterministic) use_deterministic_algorithms();
    if (wants_bf16(cfg.runtime.dtype) && !rt.device.is_cuda() && !cpu_has_native_bf16()) {
        spdlog::warn("runtime.dtype: bfloat16 on a CPU without bf16 instructions (no avx512_bf16 or amx_bf16 in "
                     "/proc/cpuinfo): every bf16 matmul is converted through fp32, many times slower than "
                     "runtime.dtype: float32 here");
    }
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.runtime.dist_timeout * 1000));
    const Distributed& dist = init_distributed(env, rt.device, timeout);
    set_log_rank(dist.rank());
    // PPO shares rollouts and minibatch rows instead (train.grad_accum_steps is not its key).
    if (cfg.stage != Stage::Ppo) check_accum_divides(cfg.train.grad_accum_steps, dist, cfg.source);
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
        const Stage stage = read_checkpoint_info(latest).config.stage;
        if (stage != cfg.stage) {
            throw Error("cannot resume: this run directory holds a stage " + name_of(stage) + " run, and the config is stage " +
                            name_of(cfg.stage),
                        cfg.out_dir, "choose another out_dir for the " + name_of(cfg.stage) + " run (--set out_dir=...)");
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

StageStart begin_stage(const RunConfig& cfg, bool resume) {
    StageStart stage;
    stage.rt = init_stage_runtime(cfg);
    stage.resume_dir = open_run_dir(cfg, resume);
    stage.bf16 = wants_bf16(cfg.runtime.dtype);
    return stage;
}

TrainState resume_or_announce(const StageStart& stage, AdamW& optimizer, const TrainState& saved,
                              const std::string& fresh_line) {
    if (!stage.resuming()) {
        spdlog::info("{}", fresh_line);
        return TrainState();
    }
    const auto file = stage.resume_dir / "optimizer.safetensors";
    OptimizerState moments = load_optimizer_state(stage.resume_dir);
    optimizer.load_state(moments.tensors, moments.step, file.string());
    restore_rng_states(stage.resume_dir);
    spdlog::info("resumed from {} (step {})", stage.resume_dir.string(), saved.step);
    return saved;
}

std::string describe_start(const StartPoint& start) {
    return fmt::format("starting from {} (step {} of run {}, stage {})", start.dir.string(), start.info.state.step,
                       start.info.config.out_dir, start.info.config.stage);
}

std::string describe_activations(const ModelConfig& model, const RunConfig& cfg, const ActivationShape& micro_batch) {
    const ActivationEstimate e = estimate_activations(model, micro_batch, wants_bf16(cfg.runtime.dtype),
                                                      activation_checkpoint_blocks(cfg.train));
    return fmt::format("~{:.0f} MiB of activations per micro-batch of {} x {}{} tokens", static_cast<double>(e.peak()) / (1 << 20),
                       micro_batch.rows, micro_batch.padded ? "up to " : "", micro_batch.tokens);
}

std::string describe_model(const torch::nn::Module& model, const RunConfig& cfg, const Runtime& rt,
                           const ActivationShape& micro_batch) {
    int64_t parameters = 0, trained = 0;
    for (const auto& p : model.parameters()) {
        parameters += p.numel();
        if (p.requires_grad()) trained += p.numel();
    }
    const LoraConfig& lora = cfg.model.lora;
    const std::string adapters = lora.rank == 0 ? std::string()
        : fmt::format(" (LoRA rank {} on {}: {} of them train, {:.2f}%)", lora.rank, fmt::join(lora.targets, ", "), trained,
                      100.0 * static_cast<double>(trained) / static_cast<double>(std::max<int64_t>(parameters, 1)));
    // What training adds to the weights: an fp32 gradient and AdamW's two fp32 moments per trained number.
    const double train_mib = 12.0 * static_cast<double>(trained) / (1 << 20);
    return fmt::format("model: {} parameters{} ({:.0f} MiB of weights; {:.0f} MiB of gradients and AdamW moments; {}), "
                       "context {}, vocab {}, {} on {} with {} threads", parameters, adapters,
                       4.0 * static_cast<double>(parameters) / (1 << 20), train_mib, describe_activations(cfg.model, cfg, micro_batch),
                       cfg.model.block_size, cfg.model.vocab_size, cfg.runtime.dtype, rt.device.str(), rt.threads);
}

CheckpointExtras lineage_extras(const StartPoint& start) {
    CheckpointExtras extras;
    extras.stage_state = {{"lineage", start.lineage}};
    extras.lora_base = start.lora_base;
    return extras;
}

int64_t steps_per_epoch(const EpochSampler& sampler, const RunConfig& cfg) {
    return (sampler.batches_per_epoch() + cfg.train.grad_accum_steps - 1) / cfg.train.grad_accum_steps;
}

namespace {
GradientSync make_grad_sync(const RunConfig& cfg, torch::nn::Module& model, AdamW& optimizer) {
    broadcast_module(model, distributed());  // before any gradient: every rank starts from rank 0's weights
    return GradientSync(distributed(), optimizer.trained_parameters(), mib_to_bytes(cfg.runtime.dist_bucket_mb));
}
std::filesystem::path write_run_config(const RunConfig& cfg) {
    const std::filesystem::path out_dir = cfg.out_dir;
    if (distributed().is_main()) atomic_write(out_dir / "config.yaml", dump_config(cfg));
    return out_dir / "metrics.jsonl";
}
}  // namespace

StageOutputs::StageOutputs(const RunConfig& cfg, torch::nn::Module& model, AdamW& optimizer, const StageStart& stage,
                           const TrainState& state)
    : grad_sync(make_grad_sync(cfg, model, optimizer)),
      metrics(write_run_config(cfg), stage.resuming() ? state.step : -1) {}

void save_stage_checkpoint(const RunConfig& cfg, const TrainState& state, torch::nn::Module& model,
                           const AdamW& optimizer, const Tokenizer& tokenizer, const CheckpointExtras& extras) {
    const auto dir = save_checkpoint(std::filesystem::path(cfg.out_dir) / "checkpoints", cfg, state, model,
                                     {optimizer.state_tensors(), optimizer.steps_taken()}, tokenizer,
                                     cfg.checkpoint.keep_last, extras);
    spdlog::info("checkpoint saved: {}", dir.string());
}

std::vector<uint64_t> next_micro_batches(TrainState& state, const RunConfig& cfg) {
    auto mine = my_micro_batches(state.next_batch_index, cfg.train.grad_accum_steps, distributed());
    state.next_batch_index += static_cast<uint64_t>(cfg.train.grad_accum_steps);
    return mine;
}

TrainValItems<RankedGroup, ComparisonReadStats> read_comparison_groups(const RunConfig& cfg, uint64_t split_stream) {
    ComparisonReadOptions read;
    read.format = name_of(cfg.data.format);
    read.prompt_field = cfg.data.fields.prompt;
    read.skip_bad = cfg.data.on_error == OnError::Skip;
    auto groups = read_train_val<ComparisonReadStats>(
        cfg, split_stream, [&](const auto& files, ComparisonReadStats* stats) { return read_comparisons(files, read, stats); });
    if (const int64_t tied = groups.train_stats.tied_records + groups.val_stats.tied_records; tied > 0) {
        spdlog::info("data: {} record(s) judged a tie give no pair and were left out", tied);
    }
    return groups;
}

void log_samples(const std::vector<std::pair<std::string, std::string>>& samples) {
    auto one_line = [](std::string text, size_t max_chars) {
        for (char& c : text) if (c == '\n' || c == '\t') c = ' ';
        return text.size() > max_chars ? text.substr(0, max_chars) + "…" : text;
    };
    for (const auto& [prompt, answer] : samples) {
        spdlog::info("  Q: {}\n    A: {}", one_line(prompt, 160), one_line(answer, 300));
    }
}

}  // namespace rlhf
