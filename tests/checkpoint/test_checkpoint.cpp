#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/train.h"
#include "rlhf/train/lm_step.h"
#include "rlhf/train/optimizer.h"
#include "rlhf/data/demo_corpus.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct Fixture {
    test::TempDir dir;
    Tokenizer tok;
    RunConfig cfg;
    Gpt model{nullptr};
    std::unique_ptr<AdamW> opt;

    Fixture() {
        test::write_text(dir / "c.txt", demo_corpus(3000));
        TokenizerTrainOptions o;
        o.inputs = {dir / "c.txt"};
        o.model_type = "char";
        tok = train_tokenizer(o);
        cfg = test::tiny_pretrain_config(dir / "c.txt", dir / "run");
        cfg.model.vocab_size = tok.vocab_size();
        torch::manual_seed(1);
        model = Gpt(cfg.model);
        opt = std::make_unique<AdamW>(*model, cfg.optim);
        // one real step so the optimizer has moments to save
        auto x = torch::randint(0, tok.vocab_size(), {2, 8}, torch::kLong);
        lm_train_step(*model, *opt, {{x, x}}, 1e-3, 1.0, false);
    }
    std::filesystem::path save(int64_t step, int keep_last = 0) {
        TrainState s;
        s.step = step;
        s.tokens_seen = step * 100;
        s.next_batch_index = static_cast<uint64_t>(step) * 2;
        s.last_val_loss = 1.5;
        return save_checkpoint(dir / "run" / "checkpoints", cfg, s, *model, {opt->state_tensors(), opt->steps_taken()}, tok,
                               keep_last);
    }
};

}  // namespace

TEST_CASE("safetensors round-trips every dtype and metadata", "[checkpoint]") {
    test::TempDir dir;
    NamedTensors t = {{"f32", torch::randn({3, 4})},
                      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
                      {"i64", torch::arange(10)},
                      {"u8", torch::randint(0, 255, {7}, torch::kUInt8)},
                      {"empty", torch::empty({0, 3})},
                      {"scalar", torch::tensor(2.5)}};
    save_safetensors(dir / "x.safetensors", t, {{"k", "v"}});
    auto back = load_safetensors(dir / "x.safetensors");
    REQUIRE(back.metadata.at("k") == "v");
    for (const auto& [name, tensor] : t) {
        INFO(name);
        REQUIRE(torch::equal(back.tensors.at(name), tensor));
    }
}

TEST_CASE("our safetensors files read in Python, and Python's in ours", "[integration][checkpoint][reference][light]") {
    test::TempDir dir;
    auto w = torch::randn({4, 6});
    save_safetensors(dir / "ours.safetensors", {{"w", w}, {"i", torch::arange(5)}});
    std::string out = test::run_python_reference(
        "safetensors_check.py", test::shell_quote((dir / "ours.safetensors").string()) + " " +
                                    test::shell_quote((dir / "theirs.safetensors").string()));
    REQUIRE_THAT(out, Contains("w (4, 6) sum=" + std::to_string(w.sum().item<float>()).substr(0, 5)));
    auto theirs = load_safetensors(dir / "theirs.safetensors");
    REQUIRE(torch::equal(theirs.tensors.at("twice"), w * 2));
}

TEST_CASE("damaged safetensors files are clear errors", "[checkpoint]") {
    test::TempDir dir;
    save_safetensors(dir / "x.safetensors", {{"w", torch::randn({100})}});
    const std::string good = read_file(dir / "x.safetensors");
    atomic_write(dir / "cut.safetensors", good.substr(0, good.size() - 8));
    REQUIRE_THROWS_WITH(load_safetensors(dir / "cut.safetensors"), Contains("cut.safetensors") && Contains("truncated"));
    std::string bad = good;
    bad[8] = '#';  // the header's opening brace
    atomic_write(dir / "bad.safetensors", bad);
    REQUIRE_THROWS_WITH(load_safetensors(dir / "bad.safetensors"), Contains("corrupted"));
    atomic_write(dir / "tiny.safetensors", "abc");
    REQUIRE_THROWS_WITH(load_safetensors(dir / "tiny.safetensors"), Contains("truncated"));

    // A shape whose byte count overflows (2^62 * 2^3 elements, 4 bytes each) is named with the file.
    auto with_header = [](const std::string& json) {
        std::string out(8, '\0');
        const uint64_t n = json.size();
        std::memcpy(out.data(), &n, 8);
        return out + json + std::string(16, '\0');
    };
    atomic_write(dir / "huge.safetensors",
                 with_header(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}})"));
    REQUIRE_THROWS_WITH(load_safetensors(dir / "huge.safetensors"),
                        Contains("huge.safetensors") && Contains("overflows") && !Contains("Storage size"));
    atomic_write(dir / "bytes.safetensors",
                 with_header(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}})"));
    REQUIRE_THROWS_WITH(load_safetensors(dir / "bytes.safetensors"), Contains("bytes.safetensors") && Contains("overflows"));
}

// A checkpoint restores weights, optimizer, state and config exactly.
TEST_CASE("a checkpoint restores weights, optimizer, state and config", "[checkpoint]") {
    Fixture f;
    auto dir = f.save(7);
    REQUIRE(dir.filename() == "step-000007");
    REQUIRE(std::filesystem::read_symlink(f.dir / "run" / "checkpoints" / "latest") == "step-000007");
    CheckpointInfo info = read_checkpoint_info(dir);
    REQUIRE(info.state.step == 7);
    REQUIRE(info.state.tokens_seen == 700);
    REQUIRE(info.state.next_batch_index == 14);
    REQUIRE(info.state.last_val_loss == 1.5);
    REQUIRE(dump_config(info.config) == dump_config(f.cfg));
    REQUIRE(load_checkpoint_tokenizer(dir).fingerprint() == f.tok.fingerprint());

    torch::manual_seed(99);
    Gpt other(f.cfg.model);
    AdamW other_opt(*other, f.cfg.optim);
    load_model_weights(dir, *other);
    OptimizerState saved = load_optimizer_state(dir);
    REQUIRE(saved.step == 1);
    other_opt.load_state(saved.tensors, saved.step, "test");
    auto a = f.model->named_parameters(), b = other->named_parameters();
    for (const auto& p : a) REQUIRE(torch::equal(p.value(), b[p.key()]));
    // the same next step on both gives identical weights: the optimizer moments came back
    auto x = torch::randint(0, f.tok.vocab_size(), {2, 8}, torch::kLong);
    lm_train_step(*f.model, *f.opt, {{x, x}}, 1e-3, 1.0, false);
    lm_train_step(*other, other_opt, {{x, x}}, 1e-3, 1.0, false);
    for (const auto& p : f.model->named_parameters()) REQUIRE(torch::equal(p.value(), other->named_parameters()[p.key()]));
}

TEST_CASE("RNG state comes back with a checkpoint", "[checkpoint]") {
    Fixture f;
    torch::manual_seed(5);
    auto dir = f.save(1);
    auto expected = torch::rand({4});
    torch::manual_seed(77);
    restore_rng_states(dir);
    REQUIRE(torch::equal(torch::rand({4}), expected));
}

TEST_CASE("a half-written checkpoint is never loaded", "[checkpoint]") {
    Fixture f;
    f.save(10);
    const auto ckpts = f.dir / "run" / "checkpoints";
    // A writer killed mid-save leaves a .tmp- directory, and `latest` still names step 10.
    ensure_dir(ckpts / ".tmp-step-000020-12345");
    test::write_text(ckpts / ".tmp-step-000020-12345" / "model.safetensors", "partial");
    REQUIRE(latest_checkpoint(f.dir / "run").filename() == "step-000010");
    // A step directory without state.json (copied by hand, say) is skipped too.
    ensure_dir(ckpts / "step-000030");
    test::write_text(ckpts / "step-000030" / "model.safetensors", "partial");
    std::filesystem::remove(ckpts / "latest");
    REQUIRE(latest_checkpoint(f.dir / "run").filename() == "step-000010");
    REQUIRE_THROWS_WITH(resolve_checkpoint(ckpts / "step-000030"), Contains("no complete checkpoint"));
    // The next save clears the leftover temporary directory.
    f.save(40);
    REQUIRE_FALSE(std::filesystem::exists(ckpts / ".tmp-step-000020-12345"));
    REQUIRE(resolve_checkpoint(f.dir / "run").filename() == "step-000040");
}

// A crash between renaming a checkpoint and repointing latest loses nothing.
TEST_CASE("a crash between checkpoint rename and latest loses nothing", "[checkpoint]") {
    Fixture f;
    f.save(10);
    f.save(20);
    const auto ckpts = f.dir / "run" / "checkpoints";
    atomic_symlink("step-000010", ckpts / "latest");  // the symlink update never happened
    REQUIRE(latest_checkpoint(f.dir / "run").filename() == "step-000020");
    REQUIRE(resolve_checkpoint(f.dir / "run").filename() == "step-000020");
    f.save(20);  // the resumed run reaches step 20 again: publish, don't rewrite
    REQUIRE(std::filesystem::read_symlink(ckpts / "latest") == "step-000020");
}

TEST_CASE("keep_last prunes old checkpoints", "[checkpoint]") {
    Fixture f;
    for (int64_t s : {1, 2, 3, 4}) f.save(s, 2);
    const auto ckpts = f.dir / "run" / "checkpoints";
    REQUIRE_FALSE(std::filesystem::exists(ckpts / "step-000001"));
    REQUIRE_FALSE(std::filesystem::exists(ckpts / "step-000002"));
    REQUIRE(std::filesystem::exists(ckpts / "step-000003"));
    REQUIRE(std::filesystem::exists(ckpts / "step-000004"));
}

// Pruning interrupted half-way never leaves a step directory without its state.json.
TEST_CASE("interrupted pruning never leaves a step without state.json", "[checkpoint]") {
    Fixture f;
    f.save(1, 1);
    const auto ckpts = f.dir / "run" / "checkpoints";
    // An undeletable file stops the deletion part-way, as a SIGKILL would: whatever was deleted
    // by then, what is left must not look like a checkpoint. Root ignores permissions, so it
    // takes the immutable attribute (chattr +i's ioctl); anyone else, a read-only directory.
    const auto stuck_dir = ckpts / "step-000001" / "zz-stuck";
    std::filesystem::create_directories(stuck_dir);
    test::write_text(stuck_dir / "file", "x");
    const bool root = ::geteuid() == 0;
    const auto lock = [&](const std::filesystem::path& dir, bool on) {
        if (!root) {
            std::error_code ec;
            std::filesystem::permissions(dir, static_cast<std::filesystem::perms>(on ? 0555 : 0755), ec);
            return !ec;
        }
        const int fd = ::open((dir / "file").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return false;
        int flags = 0;
        bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
        if (ok) {
            flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
            ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
        }
        ::close(fd);
        return ok;
    };
    if (!lock(stuck_dir, true)) {
        WARN("the file cannot be made undeletable here: the interrupted-pruning part is not checked");
        return;
    }
    f.save(2, 1);  // prunes step 1; the failure is a warning, not the end of the run
    std::vector<std::string> step_dirs;
    for (const auto& e : std::filesystem::directory_iterator(ckpts)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("step-", 0) == 0) {
            step_dirs.push_back(name);
            REQUIRE(std::filesystem::exists(e.path() / "state.json"));
        }
    }
    REQUIRE(step_dirs == std::vector<std::string>{"step-000002"});
    REQUIRE(latest_checkpoint(f.dir / "run").filename() == "step-000002");
    const auto leftover = ckpts / ".tmp-pruned-step-000001";
    REQUIRE(std::filesystem::exists(leftover));
    f.save(3, 1);  // the leftover still will not go: a warning again, and the save goes through
    REQUIRE(latest_checkpoint(f.dir / "run").filename() == "step-000003");
    REQUIRE(lock(leftover / "zz-stuck", false));
    f.save(4, 1);  // now the next save clears it
    REQUIRE_FALSE(std::filesystem::exists(leftover));
}

// Resolve_checkpoint accepts a run dir, its checkpoints dir or a step dir.
TEST_CASE("resolve_checkpoint takes a run, checkpoints or step dir", "[checkpoint]") {
    Fixture f;
    f.save(3);
    const auto step = f.dir / "run" / "checkpoints" / "step-000003";
    REQUIRE(resolve_checkpoint(f.dir / "run") == std::filesystem::canonical(step));
    REQUIRE(resolve_checkpoint(f.dir / "run" / "checkpoints") == std::filesystem::canonical(step));
    REQUIRE(resolve_checkpoint(step) == std::filesystem::canonical(step));
    REQUIRE_THROWS_WITH(resolve_checkpoint(f.dir / "nowhere"), Contains("checkpoint not found"));
}

// Loading into a different model shape names the tensor and both shapes.
TEST_CASE("loading into another shape names the tensor and both shapes", "[checkpoint]") {
    Fixture f;
    auto dir = f.save(2);
    ModelConfig wider = f.cfg.model;
    wider.n_embd = 64;
    Gpt other(wider);
    REQUIRE_THROWS_WITH(load_model_weights(dir, *other), Contains("transformer.wte.weight") && Contains("[") &&
                                                             Contains("different model shape"));
    REQUIRE_THROWS_WITH(check_same_model_shape(f.cfg.model, wider, "x.yaml"),
                        Contains("model.n_embd is 32 in the checkpoint but 64 in the config"));
}

TEST_CASE("corrupted checkpoint files are clear errors", "[checkpoint]") {
    Fixture f;
    auto dir = f.save(5);
    const std::string weights = read_file(dir / "model.safetensors");
    atomic_write(dir / "model.safetensors", weights.substr(0, weights.size() / 2));
    Gpt other(f.cfg.model);
    REQUIRE_THROWS_WITH(load_model_weights(dir, *other), Contains("model.safetensors") && Contains("truncated"));
    test::write_text(dir / "optimizer.safetensors", "garbage");
    REQUIRE_THROWS_WITH(load_optimizer_state(dir), Contains("optimizer.safetensors") && Contains("truncated"));
    AdamW opt(*other, f.cfg.optim);
    OptimizerState partial = {{{"exp_avg.transformer.wte.weight", torch::zeros({1})}}, 3};
    REQUIRE_THROWS_WITH(opt.load_state(partial.tensors, partial.step, "ckpt"), Contains("ckpt") && Contains("shape"));
    test::write_text(dir / "state.json", "{\"step\": ");
    REQUIRE_THROWS_WITH(read_checkpoint_info(dir), Contains("corrupted state.json"));
}
