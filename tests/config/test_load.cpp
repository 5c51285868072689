#include <catch2/catch.hpp>

#include <algorithm>

#include "rlhf/config/load.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {
const char* kMinimal = "stage: pretrain\ndata:\n  text: [corpus.txt]\n";
}

TEST_CASE("a minimal config gets every default", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml");
    RunConfig d;
    REQUIRE(c.model.n_layer == d.model.n_layer);
    REQUIRE(c.optim.lr == d.optim.lr);
    REQUIRE(c.data.text == std::vector<std::string>{"corpus.txt"});
    REQUIRE(c.runtime.threads == 0);
}

TEST_CASE("overrides (--set) apply in order and parse YAML values", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml",
                                   {"train.max_steps=7", "optim.lr=2.5e-4", "model.bias=true", "data.text=[a.txt, b.txt]",
                                    "train.max_steps=9"});
    REQUIRE(c.train.max_steps == 9);
    REQUIRE(c.optim.lr == Approx(2.5e-4));
    REQUIRE(c.model.bias);
    REQUIRE(c.data.text == std::vector<std::string>{"a.txt", "b.txt"});
}

TEST_CASE("a key given at its default value is still known as given (init_from's shape check needs it)", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml", {"model.n_embd=128"});
    REQUIRE(c.model.n_embd == RunConfig{}.model.n_embd);
    const auto& given = c.given_keys;
    REQUIRE(std::count(given.begin(), given.end(), "model.n_embd") == 1);
    REQUIRE(std::count(given.begin(), given.end(), "stage") == 1);  // from the YAML
    REQUIRE(std::count(given.begin(), given.end(), "model.n_layer") == 0);
}

TEST_CASE("an unknown key names file:line and suggests the right key", "[config]") {
    const std::string yaml = "stage: pretrain\ndata:\n  text: [c.txt]\nmodel:\n  n_layers: 4\n";
    REQUIRE_THROWS_WITH(load_config_text(yaml, "x.yaml"),
                        Contains("x.yaml:5") && Contains("unknown key 'model.n_layers'") &&
                            Contains("did you mean 'model.n_layer'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"optim.learning_rate=1"}),
                        Contains("--set optim.learning_rate=1") && Contains("unknown key"));
    // A misspelt section is that section, not some key whose last part looks alike (model.bias).
    REQUIRE_THROWS_WITH(load_config_text(std::string(kMinimal) + "trian:\n  max_steps: 5\n", "x.yaml"),
                        Contains("x.yaml:4") && Contains("unknown key 'trian'") && Contains("did you mean 'train'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"trian.max_steps=5"}), Contains("did you mean 'train.max_steps'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"trian.max_stpes=5"}), !Contains("'train.max_stpes'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"bias=true"}), Contains("did you mean 'model.bias'"));
}

TEST_CASE("a wrong type names file:line, key and the value", "[config]") {
    const std::string yaml = "stage: pretrain\ndata:\n  text: [c.txt]\ntrain:\n  batch_size: twelve\n";
    REQUIRE_THROWS_WITH(load_config_text(yaml, "x.yaml"), Contains("x.yaml:5: train.batch_size: expected an integer, got 'twelve'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"model.bias=maybe"}), Contains("expected true or false"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"optim.lr=fast"}), Contains("expected a number"));
}

TEST_CASE("out-of-range values and cross-field rules are reported, all at once", "[config]") {
    const std::string yaml =
        "stage: pretrain\ndata:\n  text: [c.txt]\nmodel:\n  n_head: 3\n  n_embd: 128\n  dropout: 1.5\n"
        "optim:\n  lr: 1e-4\n  min_lr: 1e-3\n";
    try {
        load_config_text(yaml, "x.yaml");
        FAIL("expected an error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        REQUIRE_THAT(msg, Contains("x.yaml:7: model.dropout: 1.5 is out of range [0, 0.999]"));
        REQUIRE_THAT(msg, Contains("model.n_embd: 128 is not divisible by model.n_head = 3"));
        REQUIRE_THAT(msg, Contains("x.yaml:10: optim.min_lr"));
        REQUIRE(std::count(msg.begin(), msg.end(), '\n') == 2);  // three problems, one line each
    }
}

TEST_CASE("a key that is not a plain name is an error with its line", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\n? [a, b]\n: 1\n", "k.yaml"),
                        Contains("k.yaml:2") && Contains("plain name"));
}

TEST_CASE("invalid YAML syntax names the line", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\nmodel: [unclosed\n", "bad.yaml"),
                        Contains("bad.yaml:") && Contains("invalid YAML"));
}

TEST_CASE("a PPO clip of 0, which would freeze learning, is refused", "[config]") {
    const std::string ppo = "stage: ppo\ninit_from: runs/sft\ndata:\n  files: [p.jsonl]\nppo:\n  toy_reward: count:o\n"
                            "  critic_from: policy\n";
    REQUIRE_NOTHROW(load_config_text(ppo, "x.yaml"));
    REQUIRE_THROWS_WITH(load_config_text(ppo + "  clip: 0\n", "x.yaml"), Contains("x.yaml:8: ppo.clip") && Contains("freezes"));
    REQUIRE_THROWS_WITH(load_config_text(ppo + "  value_clip: 0\n", "x.yaml"),
                        Contains("ppo.value_clip") && Contains("freezes the critic"));
}

TEST_CASE("a stage without data is an error naming the key", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\n", "x.yaml"), Contains("data.text"));
    REQUIRE_THROWS_WITH(load_config_text("stage: train\n", "x.yaml"), Contains("'train' is not one of"));
}

TEST_CASE("a key given twice in one mapping is an error naming both lines", "[config]") {
    // Two train: sections, and max_steps twice in one section: yaml-cpp keeps both, the last would win.
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain:\n  max_steps: 5\ntrain:\n  max_steps: 7\n", "x.yaml"),
                        Contains("x.yaml:5") && Contains("'train' is given twice") && Contains("first at x.yaml:3"));
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain:\n  max_steps: 5\n  max_steps: 7\n", "x.yaml"),
                        Contains("'train.max_steps' is given twice") && Contains("x.yaml:5"));
    // The same name in different sections is fine.
    REQUIRE_NOTHROW(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain: {batch_size: 4}\nreward: {margin: 0.1}\n", "x.yaml"));
}

TEST_CASE("presets fill the size but explicit keys win", "[config]") {
    RunConfig c = load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt2-medium, n_layer: 2}\n", "x");
    REQUIRE(c.model.n_layer == 2);       // explicit
    REQUIRE(c.model.n_embd == 1024);     // preset
    REQUIRE(c.model.n_head == 16);
    REQUIRE(c.model.block_size == 1024);
    REQUIRE(c.model.bias);                       // GPT-2's layout, not only its size
    REQUIRE(c.model.activation == "gelu_tanh");
    REQUIRE(c.model.vocab_size == 50304);
    c = load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt2, bias: false, vocab_size: 0}\n", "x");
    REQUIRE_FALSE(c.model.bias);                 // explicit
    REQUIRE(c.model.vocab_size == 0);
    REQUIRE(c.model.activation == "gelu_tanh");  // preset
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt5}\n", "x"),
                        Contains("model.preset"));
}

TEST_CASE("dump_config reads back to the same config", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml",
                                   {"optim.lr=3.3e-4", "runtime.seed=18446744073709551615", "out_dir=runs/x y",
                                    "data.text=[\"a b.txt\", c.txt]", "optim.eps=1e-12"});
    RunConfig back = load_config_text(dump_config(c), "dump.yaml");
    REQUIRE(dump_config(back) == dump_config(c));
    REQUIRE(back.optim.lr == c.optim.lr);
    REQUIRE(back.optim.eps == c.optim.eps);
    REQUIRE(back.runtime.seed == 18446744073709551615ULL);
    REQUIRE(back.data.text == c.data.text);
}

TEST_CASE("every documented key is in docs/config.md", "[config]") {
    const std::string doc = read_file(std::filesystem::path(RLHF_SOURCE_DIR) / "docs" / "config.md");
    for (const auto& k : config_key_docs()) {
        INFO(k.key);
        REQUIRE_THAT(doc, Contains("`" + k.key + "`"));
    }
}

TEST_CASE("every shipped config loads and validates", "[config]") {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(std::filesystem::path(RLHF_SOURCE_DIR) / "configs")) {
        if (e.path().extension() != ".yaml") continue;
        INFO(e.path().string());
        REQUIRE_NOTHROW(load_config(e.path()));
        ++n;
    }
    REQUIRE(n >= 2);
}

TEST_CASE("docs/config.md's key table is the code's, default for default", "[config]") {
    // Generated by `rlhf config keys --markdown`; hand edits or a new key without regenerating fail here.
    const std::string docs = read_file(std::filesystem::path(RLHF_SOURCE_DIR) / "docs" / "config.md");
    const std::string table = config_keys_markdown();
    INFO("regenerate the table with: build/rlhf config keys --markdown");
    REQUIRE_THAT(docs, Contains(table));
    REQUIRE_THAT(table, Contains("| `init_from` | \"\" | sft, reward, ppo, dpo: checkpoint") &&
                            Contains("| `runtime.device` | `cpu` | cpu \\| cuda \\| cuda:N \\| auto |"));
}
