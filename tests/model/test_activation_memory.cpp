// The start-up line's activation estimate against what a forward really holds: the resident
// memory a training forward adds and keeps (its graph alive, before the backward), with large
// allocations made as their own mappings so that freed temporaries leave the count.
#include <catch2/catch.hpp>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>

#include "rlhf/config/config.h"
#include "rlhf/core/precision.h"
#include "rlhf/model/activation_memory.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "rlhf/model/lora.h"
#include "rlhf/train/lm_step.h"
#include "support/helpers.h"

using namespace rlhf;
using torch::indexing::Slice;

namespace {

int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * sysconf(_SC_PAGESIZE);
}

// A model big enough that its activations (tens of MiB) dwarf the allocator's noise.
ModelConfig measured_model(const std::string& arch) {
    // "qwen3": tiny_llama's every switch (q/k norms among them); "llama": Llama-3 / Qwen2.5's set.
    ModelConfig m = test::tiny_model_of(arch == "gpt2" ? "gpt2" : "llama", 1024);
    m.n_layer = 2;
    m.n_head = 4;
    m.n_embd = 256;
    m.block_size = 256;
    if (arch == "llama") m.qk_norm = false;
    if (arch != "gpt2") {
        m.n_kv_head = 2;
        m.head_dim = 64;
        m.intermediate_size = 640;
    }
    return m;
}

// The loss of a (rows, tokens) batch, its graph alive: what the backward will need is held.
torch::Tensor forward_loss(GptImpl& model, const torch::Tensor& tokens, bool padded, bool bf16) {
    AutocastGuard autocast(bf16, torch::kCPU);
    AttentionContext ctx;
    if (padded) {  // row 0 left-padded: the attention takes a mask
        auto mask = torch::ones_like(tokens, torch::kBool);
        mask.index_put_({0, Slice(0, 7)}, false);
        ctx.position_ids = position_ids_from_mask(mask);
        ctx.key_mask = mask;
    }
    return lm_loss_sum(model.logits(model.forward(tokens, ctx)).flatten(0, 1), tokens.roll(-1, 1).reshape({-1}));
}

// Resident bytes the second forward adds and keeps (the first, without a graph, makes BLAS's
// buffers and the rotary tables).
int64_t held_by_forward(GptImpl& model, const torch::Tensor& tokens, bool padded, bool bf16) {
    {
        torch::NoGradGuard no_grad;
        forward_loss(model, tokens, padded, bf16);
    }
    const int64_t before = resident_bytes();
    auto loss = forward_loss(model, tokens, padded, bf16);
    REQUIRE(loss.requires_grad());  // the graph, and what it keeps, is alive
    return resident_bytes() - before;
}

}  // namespace

TEST_CASE("activation estimate matches a forward's held memory", "[model][memory]") {
    // Freed tensors return to the system at once, so resident memory counts live tensors only.
    mallopt(M_MMAP_THRESHOLD, 64 << 10);
    mallopt(M_TRIM_THRESHOLD, 64 << 10);
    struct Case {
        std::string arch;
        bool padded, bf16;
        int64_t checkpoint_blocks;
        int lora_rank;
    };
    const Case c = GENERATE(Case{"gpt2", false, false, 0, 0}, Case{"gpt2", true, false, 0, 0}, Case{"llama", true, false, 0, 0},
                            Case{"qwen3", false, false, 0, 0}, Case{"qwen3", true, true, 0, 0}, Case{"gpt2", false, false, 1, 0}, Case{"gpt2", true, false, 0, 8},
                            Case{"gpt2", false, true, 0, 0}, Case{"llama", true, true, 0, 0});
    torch::manual_seed(0);
    ModelConfig cfg = measured_model(c.arch);
    cfg.lora.rank = c.lora_rank;
    cfg.lora.targets = {"q", "v", "o"};
    Gpt model(cfg);
    if (c.lora_rank > 0) freeze_all_but_adapters(*model);
    model->set_activation_checkpointing(c.checkpoint_blocks);
    model->train();
    const int64_t rows = 4, tokens = 128;
    const auto batch = torch::randint(0, cfg.vocab_size, {rows, tokens});

    const int64_t measured = held_by_forward(*model, batch, c.padded, c.bf16);
    const ActivationShape shape{rows, tokens, c.padded, true};
    const ActivationEstimate estimate = estimate_activations(cfg, shape, c.bf16, c.checkpoint_blocks);
    const int64_t estimated = estimate.after_forward();  // a checkpointed segment is rebuilt in the backward, unseen here
    INFO(c.arch << (c.padded ? " padded" : " causal") << (c.bf16 ? " bf16" : " fp32") << ", checkpoint "
                << c.checkpoint_blocks << ", LoRA rank " << c.lora_rank << ": estimated " << estimated / 1024
                << " KiB, measured " << measured / 1024 << " KiB");
    CHECK(measured > 2 << 20);  // the measurement sees the activations at all (checkpointed: ~4 MiB)
    CHECK(std::abs(double(estimated) - double(measured)) <= 0.10 * double(measured));
}
