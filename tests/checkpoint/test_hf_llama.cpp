// `rlhf convert` for the Llama family: random LlamaForCausalLM, Qwen2ForCausalLM and
// Qwen3ForCausalLM models made by transformers (tests/reference/hf_llama.py: grouped-query
// attention, llama3 rope scaling, an untied head, q/k/v biases, q/k norms, a head_dim of its own,
// both config.json styles, shards, bf16 weights, spare embedding rows) converted here give
// transformers' logits on a left-padded batch and its greedy tokens with the KV cache (never an
// id past the tokenizer, though Qwen2's spare rows have logits), go back out (--to-hf) to directories transformers
// loads with our logits, and come back in bit for bit.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/jsonl.h"
#include "rlhf/model/generate.h"
#include "support/helpers.h"
#include "support/hf_logits.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct LlamaWorkspace {
    test::TempDir dir;
    LlamaWorkspace() {
        const auto [vocab, merges] = test::toy_gpt2_bpe_files();
        test::write_text(dir / "vocab.json", vocab);
        test::write_text(dir / "merges.txt", merges);
        test::make_transformers_reference_files("hf_llama.py", dir.path());
    }
    std::string path(const std::string& rel) const { return (dir / rel).string(); }
    std::string q(const std::string& rel) const { return test::shell_quote(path(rel)); }
};

constexpr int64_t kGreedyTokens = 12;
constexpr int64_t kTokenizerIds = 262;  // vocab.json's; our imports add <|pad|>, Qwen2's model has spare rows

// transformers' logits for each directory, and the tokens its greedy generate() gives after each
// row: {"logits": {DIR: ...}, "greedy": {DIR: ...}}.
nlohmann::json reference_logits(const test::HfBatch& batch, const std::vector<std::string>& dirs) {
    std::string args = "logits " + batch.arg() + " " + std::to_string(kGreedyTokens) + " " + std::to_string(kTokenizerIds);
    for (const auto& d : dirs) args += " " + test::shell_quote(d);
    return test::reference_json("hf_llama.py", args);
}

// Our greedy tokens after each row of the batch, with the KV cache, ids past the tokenizer never chosen.
std::vector<std::vector<int64_t>> greedy_tokens(GptImpl& model, const test::HfBatch& batch) {
    std::vector<std::vector<int32_t>> prompts;
    for (size_t b = 0; b < batch.ids.size(); ++b) {
        prompts.emplace_back();
        for (size_t t = 0; t < batch.ids[b].size(); ++t) {
            if (batch.mask[b][t]) prompts.back().push_back(static_cast<int32_t>(batch.ids[b][t]));
        }
    }
    SamplingOptions opts;
    opts.max_new_tokens = kGreedyTokens;
    opts.temperature = 0;
    opts.vocab_limit = kTokenizerIds;
    const Generation g = generate(model, prompts, opts, /*pad_id=*/0, std::vector<uint64_t>(prompts.size(), 1));
    std::vector<std::vector<int64_t>> out;
    const auto response = g.response.contiguous();
    for (int64_t b = 0; b < response.size(0); ++b) {
        out.emplace_back(response[b].data_ptr<int64_t>(), response[b].data_ptr<int64_t>() + response.size(1));
    }
    return out;
}

}  // namespace

// One workspace for every check: making the models and loading transformers cost most of the time.
TEST_CASE("Llama/Qwen2/Qwen3 in and out match transformers' logits", "[integration][hf][light]") {
    LlamaWorkspace ws;
    const test::HfBatch batch = test::left_padded_batch(262);
    const std::vector<std::string> models = {"llama", "llama4x", "qwen2", "qwen3"};
    std::vector<std::string> sources;
    for (const auto& m : models) sources.push_back(ws.path(m));
    const auto reference = reference_logits(batch, sources);

    // In: each converts, with the switches config.json asks for, and gives transformers' logits.
    std::vector<std::string> exports;
    for (const auto& m : models) {
        INFO(m);
        auto r = test::run_cli("convert --from-hf " + ws.q(m) + " --out " + ws.q("run_" + m));
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        LoadedModel loaded = load_model_from_checkpoint(ws.dir / ("run_" + m), torch::kCPU);
        const ModelConfig& c = loaded.model->config();
        CHECK(c.arch == ModelArch::Llama);
        CHECK(c.n_kv_head == 2);
        CHECK(c.head_dim == (m == "qwen3" ? 16 : 8));
        CHECK(c.tie_embeddings == (m == "qwen2" || m == "qwen3"));
        CHECK(c.rope_scaling == (m.rfind("llama", 0) == 0 ? RopeScaling::Llama3 : RopeScaling::None));
        CHECK(c.qkv_bias == (m == "qwen2"));
        CHECK(c.qk_norm == (m == "qwen3"));
        CHECK(c.vocab_size == (m == "qwen2" ? 320 : 263));  // spare rows kept; else 262 + <|pad|>
        const double worst = test::worst_logit_gap(reference["logits"][ws.path(m)], test::batch_logits(*loaded.model, batch), batch, 262);
        INFO("max |logit difference| " << worst);
        CHECK(worst < 1e-4);
        CHECK(nlohmann::json(greedy_tokens(*loaded.model, batch)) == reference["greedy"][ws.path(m)]);
        if (m == "llama4x") continue;  // the same weights as llama
        r = test::run_cli("convert --to-hf " + ws.q("run_" + m) + " --out " + ws.q("out_" + m));
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        exports.push_back(ws.path("out_" + m));
    }

    // Out: transformers loads our exports and computes our logits.
    const auto exported = reference_logits(batch, exports);
    for (const auto& m : {"llama", "qwen2", "qwen3"}) {
        INFO(m);
        LoadedModel loaded = load_model_from_checkpoint(ws.dir / (std::string("run_") + m), torch::kCPU);
        const auto ours = test::batch_logits(*loaded.model, batch);
        const double worst = test::worst_logit_gap(exported["logits"][ws.path(std::string("out_") + m)], ours, batch, 262);
        INFO("max |logit difference| " << worst);
        CHECK(worst < 1e-4);

        // Back in: every tensor bit for bit.
        auto r = test::run_cli("convert --from-hf " + ws.q(std::string("out_") + m) + " --out " + ws.q(std::string("back_") + m));
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        const auto before = load_safetensors(resolve_checkpoint(ws.dir / (std::string("run_") + m)) / "model.safetensors");
        const auto after = load_safetensors(resolve_checkpoint(ws.dir / (std::string("back_") + m)) / "model.safetensors");
        REQUIRE(before.tensors.size() == after.tensors.size());
        for (const auto& [name, tensor] : before.tensors) {
            INFO(name);
            REQUIRE(after.tensors.count(name));
            CHECK(torch::equal(tensor, after.tensors.at(name)));
        }
    }

    // `rlhf eval --perplexity`: transformers' mean negative log-likelihood per document, the
    // softmax over the tokenizer's 263 ids (262 + our <|pad|>): our llama export has exactly those
    // rows; Qwen2's embedding has 320, whose spare rows are no token and must not be scored. The
    // third document is longer than the 64-position window and is cut to it.
    const std::vector<std::string> docs = {"Hello world, this is a test.", "The quick brown fox\njumps over the lazy dog.",
                                           std::string(30, 'a') + " " + std::string(120, 'z') + " tail"};
    test::write_text(ws.dir / "docs.txt", docs[0] + "\n\n" + docs[1] + "\n\n\n" + docs[2] + "\n");
    const auto want = test::reference_json("hf_llama.py", "nll " + test::shell_quote(nlohmann::json(docs).dump()) + " 263 " +
                                                              ws.q("out_llama") + " " + ws.q("qwen2"));
    for (const auto& [run, ref] : {std::pair{"run_llama", "out_llama"}, std::pair{"run_qwen2", "qwen2"}}) {
        INFO(run);
        auto r = test::run_cli("eval --perplexity --data " + ws.q("docs.txt") + " --checkpoint " + ws.q(run) + " --out " +
                               ws.q(std::string(run) + ".jsonl") + " --batch-size 2");
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        std::vector<nlohmann::json> per_doc;
        read_records(ws.dir / (std::string(run) + ".jsonl"), [&](const nlohmann::json& j, const std::string&) { per_doc.push_back(j); });
        REQUIRE(per_doc.size() == 3);
        double sum = 0, tokens = 0;
        for (size_t i = 0; i < 3; ++i) {
            CHECK(per_doc[i]["nll"].get<double>() == Approx(want[ws.path(ref)][i].get<double>()).epsilon(1e-5));
            sum += per_doc[i]["nll"].get<double>() * per_doc[i]["tokens"].get<double>();
            tokens += per_doc[i]["tokens"].get<double>();
        }
        CHECK(per_doc[2]["tokens"] == 63);  // cut to the window: 64 tokens, 63 predicted
        const auto summary = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"documents\"")));
        CHECK(summary["documents"] == 3);
        CHECK(summary["tokens"].get<double>() == tokens);
        CHECK(summary["nll"].get<double>() == Approx(sum / tokens).epsilon(1e-9));
        CHECK(summary["perplexity"].get<double>() == Approx(std::exp(sum / tokens)).epsilon(1e-9));
    }
}

// What we cannot compute the same way is one line naming the key, and nothing is written.
TEST_CASE("a Llama-family config we cannot run is refused by name", "[integration][hf][light]") {
    test::TempDir dir;
    const auto [vocab, merges] = test::toy_gpt2_bpe_files();
    test::write_text(dir / "vocab.json", vocab);
    test::write_text(dir / "merges.txt", merges);
    const nlohmann::json good = {{"model_type", "llama"},  {"hidden_size", 32},         {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 48},
                                 {"vocab_size", 262},       {"max_position_embeddings", 64}};
    struct Case {
        std::string key;
        nlohmann::json value;
        std::string says;
    };
    const std::vector<Case> cases = {
        {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}}, "rope type 'yarn'"},
        {"hidden_act", "gelu", "hidden_act 'gelu'"},
        {"mlp_bias", true, "mlp_bias"},
        {"attention_bias", true, "attention_bias"},
        {"use_sliding_window", true, "sliding-window"},
        {"num_key_value_heads", 3, "num_key_value_heads does not divide"},
        {"hidden_size", "32", "hidden_size"},
    };
    const std::string out = test::shell_quote((dir / "bad").string());
    for (const auto& c : cases) {
        INFO(c.key);
        auto config = good;
        config[c.key] = c.value;
        test::write_text(dir / "config.json", config.dump());
        auto r = test::run_cli("convert --from-hf " + test::shell_quote(dir.path().string()) + " --out " + out);
        CHECK(r.exit_code != 0);
        CHECK_THAT(r.output, Contains(c.says) && Contains("config.json"));
        CHECK_FALSE(std::filesystem::exists(dir / "bad"));
    }
    // A tokenizer.json whose normalizer we cannot reproduce is refused, not read another way.
    test::write_text(dir / "config.json", good.dump());
    test::write_text(dir / "tokenizer.json",
                     R"({"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "ByteLevel"},
                        "model": {"type": "BPE", "vocab": {}, "merges": []}})");
    auto r = test::run_cli("convert --from-hf " + test::shell_quote(dir.path().string()) + " --out " + out);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("tokenizer.json") && Contains("normalizer 'Lowercase'"));
    CHECK_FALSE(std::filesystem::exists(dir / "bad"));
}
