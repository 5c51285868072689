// `rlhf convert --from-hf`: a random GPT-2 made by Hugging Face transformers (tests/reference/
// hf_gpt2.py, in the LibTorch 2.x flavour's venv) converted and run here must give transformers'
// logits on a left-padded batch; the converted checkpoint fine-tunes and generates; bad input is
// one line and writes nothing.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/core/fs.h"
#include "rlhf/model/generate.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

struct HfWorkspace {
    test::TempDir dir;
    HfWorkspace() {
        const auto [vocab, merges] = test::toy_gpt2_bpe_files();
        std::filesystem::create_directories(dir / "hf");
        test::write_text(dir / "hf" / "vocab.json", vocab);
        test::write_text(dir / "hf" / "merges.txt", merges);
        test::run_transformers_reference("hf_gpt2.py", "make " + test::shell_quote((dir / "hf").string()));
    }
    std::string q(const std::string& rel) const { return test::shell_quote((dir / rel).string()); }
};

}  // namespace

TEST_CASE("an imported GPT-2 gives transformers' logits on a left-padded batch, from either naming", "[integration][hf]") {
    HfWorkspace ws;
    // Two rows: one padded on the left by 3.
    const std::vector<std::vector<int64_t>> ids = {{0, 0, 0, 104, 101, 108, 108, 111, 32}, {72, 105, 33, 259, 260, 10, 261, 7, 200}};
    const std::vector<std::vector<int64_t>> mask = {{0, 0, 0, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}};
    const nlohmann::json batch = {{"ids", ids}, {"mask", mask}};
    std::string printed = test::run_transformers_reference("hf_gpt2.py", "logits " + ws.q("hf") + " " + test::shell_quote(batch.dump()));
    while (!printed.empty() && printed.back() == '\n') printed.pop_back();
    const auto reference = nlohmann::json::parse(printed.substr(printed.rfind('\n') + 1));  // the last line
    for (const std::string sub : {"lm", "hub"}) {
        DYNAMIC_SECTION(sub) {
            auto r = test::run_cli("convert --from-hf " + ws.q("hf/" + sub) + " --out " + ws.q("run_" + sub));
            INFO(r.output);
            REQUIRE(r.exit_code == 0);
            LoadedModel m = load_model_from_checkpoint(ws.dir / ("run_" + sub), torch::kCPU);
            REQUIRE(m.model->config().activation == "gelu_tanh");
            REQUIRE(m.model->config().bias);
            REQUIRE(m.model->config().vocab_size == 263);  // 262 + <|pad|>
            REQUIRE(m.tokenizer.pad_id() == 262);
            torch::NoGradGuard no_grad;
            auto t_ids = torch::zeros({2, 9}, torch::kLong), t_mask = torch::zeros({2, 9}, torch::kBool);
            for (int b = 0; b < 2; ++b) {
                for (int t = 0; t < 9; ++t) {
                    t_ids[b][t] = mask[b][t] ? ids[b][t] : m.tokenizer.pad_id();
                    t_mask[b][t] = mask[b][t] == 1;
                }
            }
            AttentionContext ctx{position_ids_from_mask(t_mask), t_mask, nullptr};
            auto logits = m.model->logits(m.model->forward(t_ids, ctx));  // (2, 9, 263)
            double worst = 0;
            for (int b = 0; b < 2; ++b) {
                for (int t = 0; t < 9; ++t) {
                    if (!mask[b][t]) continue;
                    auto ref = torch::tensor(reference[b][t].get<std::vector<float>>());
                    worst = std::max(worst, test::max_abs_diff(logits[b][t].narrow(0, 0, 262), ref));
                }
            }
            INFO("max |logit difference| " << worst);
            REQUIRE(worst < 1e-4);
        }
    }
}

TEST_CASE("an imported GPT-2 fine-tunes with SFT and generates", "[integration][hf]") {
    HfWorkspace ws;
    auto r = test::run_cli("convert --from-hf " + ws.q("hf/lm") + " --out " + ws.q("gpt2"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_cli("data demo-sft --out " + ws.q("sft.jsonl") + " --count 50");
    REQUIRE(r.exit_code == 0);
    const std::string tiny = test::shell_quote(std::string(RLHF_SOURCE_DIR) + "/configs/tiny/sft.yaml");
    r = test::run_cli("train " + tiny + " --set init_from=" + (ws.dir / "gpt2").string() + " data.files=[" +
                      (ws.dir / "sft.jsonl").string() + "] out_dir=" + (ws.dir / "sft").string() +
                      " train.max_steps=2 train.eval_every=0 checkpoint.every=0 runtime.threads=1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    r = test::run_cli("generate --checkpoint " + ws.q("sft") + " --prompt hello --max-new-tokens 5 --seed 1");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
}

TEST_CASE("bad Hugging Face input is one clear line and writes nothing", "[integration][hf]") {
    HfWorkspace ws;
    auto convert = [&](const std::string& from, const std::string& out) {
        return test::run_cli("convert --from-hf " + ws.q(from) + " --out " + ws.q(out));
    };
    std::filesystem::copy(ws.dir / "hf" / "lm", ws.dir / "bad", std::filesystem::copy_options::recursive);
    std::filesystem::remove(ws.dir / "bad" / "config.json");
    auto r = convert("bad", "out1");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("config.json") && Contains("no config.json"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out1"));

    test::write_text(ws.dir / "bad" / "config.json", "{\"model_type\": \"llama\", \"n_layer\": 2}");
    r = convert("bad", "out2");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("model_type") && Contains("llama"));

    // config.json of a wider model than the tensors: the first misshaped tensor is named.
    auto cfg = nlohmann::json::parse(read_file(ws.dir / "hf" / "lm" / "config.json"));
    cfg["n_embd"] = 64;
    test::write_text(ws.dir / "bad" / "config.json", cfg.dump());
    r = convert("bad", "out3");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Contains("has shape") && Contains("model.safetensors"));
    CHECK_FALSE(std::filesystem::exists(ws.dir / "out3"));
}
