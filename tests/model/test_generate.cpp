#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/model/generate.h"
#include "rlhf/model/gpt.h"
#include "support/helpers.h"

using namespace rlhf;
using torch::indexing::None;
using torch::indexing::Slice;

namespace {

Gpt tiny_eval_model(int vocab = 50, uint64_t seed = 0, const std::string& arch = "gpt2") {
    torch::manual_seed(seed);
    ModelConfig cfg = test::tiny_model_of(arch, vocab);
    cfg.block_size = 48;
    Gpt model(cfg);
    model->eval();
    return model;
}

std::vector<int32_t> random_prompt(int64_t len, int vocab, uint64_t seed) {
    auto gen = make_generator(seed, torch::kCPU);
    auto t = torch::randint(4, vocab, {len}, gen, torch::kLong);
    std::vector<int32_t> out;
    for (int64_t i = 0; i < len; ++i) out.push_back(static_cast<int32_t>(t[i].item<int64_t>()));
    return out;
}

}  // namespace

TEST_CASE("cached and cache-less decoding give the same logits", "[model][generate]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    Gpt model = tiny_eval_model(50, 0, arch);
    torch::NoGradGuard ng;
    auto tokens = torch::randint(0, 50, {2, 30}, torch::kLong);
    auto full = model->logits(model->forward(tokens));  // (2, 30, V): one pass, no cache
    KvCache cache = model->make_cache(2, 30);
    // prefill 12 tokens, then one token at a time
    auto step = model->logits(model->forward(tokens.index({Slice(), Slice(0, 12)}), {{}, {}, &cache}));
    REQUIRE(test::max_abs_diff(step, full.index({Slice(), Slice(0, 12)})) < 1e-5);
    for (int64_t t = 12; t < 30; ++t) {
        auto lt = model->logits(model->forward(tokens.index({Slice(), Slice(t, t + 1)}), {{}, {}, &cache}));
        INFO("position " << t);
        REQUIRE(test::max_abs_diff(lt.index({Slice(), 0}), full.index({Slice(), t})) < 1e-5);
    }
    REQUIRE(cache.length == 30);
    // A grouped-query cache holds the key/value heads only: (B, nkv, capacity, hs).
    REQUIRE(cache.k[0].size(1) == kv_heads(model->config()));
    REQUIRE(cache.k[0].size(3) == head_width(model->config()));
}

// A left-padded batch gives every sequence the logits it gets alone.
TEST_CASE("a left-padded batch gives each row its logits alone", "[model][generate]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    Gpt model = tiny_eval_model(50, 0, arch);
    torch::NoGradGuard ng;
    std::vector<std::vector<int32_t>> prompts = {random_prompt(5, 50, 1), random_prompt(17, 50, 2), random_prompt(11, 50, 3)};
    auto [ids, mask] = left_pad(prompts, /*pad_id=*/3, torch::kCPU);
    AttentionContext ctx{position_ids_from_mask(mask), mask, nullptr};
    auto batched = model->logits(model->forward(ids, ctx));  // (3, 17, V)
    for (size_t b = 0; b < prompts.size(); ++b) {
        auto alone_ids = torch::tensor(std::vector<int64_t>(prompts[b].begin(), prompts[b].end())).view({1, -1});
        auto alone = model->logits(model->forward(alone_ids));
        const int64_t n = alone_ids.size(1);
        INFO("prompt " << b);
        REQUIRE(test::max_abs_diff(batched.index({static_cast<int64_t>(b), Slice(17 - n, None)}), alone[0]) < 1e-5);
    }
}

// Batched generation equals generating each prompt alone (greedy).
TEST_CASE("greedy batched generation equals each prompt alone", "[model][generate]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    Gpt model = tiny_eval_model(50, 0, arch);
    SamplingOptions o;
    o.max_new_tokens = 12;
    o.temperature = 0.0;
    std::vector<std::vector<int32_t>> prompts = {random_prompt(4, 50, 5), random_prompt(13, 50, 6)};
    auto gen = make_generator(0, torch::kCPU);
    Generation batch = generate(*model, prompts, o, 3, gen);
    for (size_t b = 0; b < prompts.size(); ++b) {
        Generation alone = generate(*model, {prompts[b]}, o, 3, gen);
        INFO("prompt " << b);
        REQUIRE(torch::equal(batch.response[static_cast<int64_t>(b)], alone.response[0]));
        REQUIRE(test::max_abs_diff(batch.logprobs[static_cast<int64_t>(b)], alone.logprobs[0]) < 1e-5);
    }
}

// Returned log-probs equal a fresh training-style forward over prompt + response.
TEST_CASE("returned log-probs equal a training-style forward", "[model][generate]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    Gpt model = tiny_eval_model(50, 7, arch);
    for (bool cache : {true, false}) {
        SamplingOptions o;
        o.max_new_tokens = 16;
        o.temperature = 0.7;
        o.top_k = 20;
        o.top_p = 0.9;
        o.use_cache = cache;
        std::vector<std::vector<int32_t>> prompts = {random_prompt(3, 50, 8), random_prompt(9, 50, 9), random_prompt(6, 50, 10)};
        auto gen = make_generator(42, torch::kCPU);
        Generation g = generate(*model, prompts, o, 3, gen);
        torch::NoGradGuard ng;
        auto fresh = sequence_logprobs(*model, g.tokens, g.attention_mask, g.prompt_len, o.temperature);
        auto masked = fresh.masked_fill(g.response_mask.logical_not(), 0.0);
        INFO("cache " << cache << ": max diff " << test::max_abs_diff(masked, g.logprobs));
        REQUIRE(test::max_abs_diff(masked, g.logprobs) < 1e-5);
        REQUIRE((g.logprobs.masked_select(g.response_mask) < 0).all().item<bool>());
    }
}

// A padded vocabulary's unused ids are never sampled and are left out of the log-probs.
TEST_CASE("a padded vocabulary's unused ids are never sampled or scored", "[model][generate]") {
    Gpt model = tiny_eval_model(64, 7);  // 64 embedding rows, a tokenizer of 40
    SamplingOptions o;
    o.max_new_tokens = 16;
    o.temperature = 1.0;
    o.vocab_limit = 40;
    {
        torch::NoGradGuard ng;  // make the unused ids likely, so that leaving them out matters
        model->transformer->wte->weight.narrow(0, 40, 24).mul_(5.0);
    }
    std::vector<std::vector<int32_t>> prompts = {random_prompt(3, 40, 8), random_prompt(9, 40, 9)};
    auto gen = make_generator(42, torch::kCPU);
    Generation g = generate(*model, prompts, o, 3, gen);
    REQUIRE((g.response.masked_select(g.response_mask) < 40).all().item<bool>());
    torch::NoGradGuard ng;
    torch::Tensor entropy;
    auto limited = sequence_logprobs(*model, g.tokens, g.attention_mask, g.prompt_len, 1.0, false, &entropy, 40);
    REQUIRE(entropy.isfinite().all().item<bool>());  // p = 0 on the left-out ids: no 0 · -inf
    auto full = sequence_logprobs(*model, g.tokens, g.attention_mask, g.prompt_len, 1.0);
    const auto real = g.response_mask;
    REQUIRE(test::max_abs_diff(limited.masked_select(real), g.logprobs.masked_select(real)) < 1e-5);
    REQUIRE(test::max_abs_diff(full.masked_select(real), g.logprobs.masked_select(real)) > 1e-2);
}

// Under bf16 the KV cache holds bf16 keys and generation stays finite.
TEST_CASE("under bf16 the KV cache is bf16 and generation stays finite", "[model][generate]") {
    Gpt model = tiny_eval_model(50, 12);
    SamplingOptions o;
    o.max_new_tokens = 10;
    o.bf16 = true;
    auto g = make_generator(3, torch::kCPU);
    Generation out = generate(*model, {random_prompt(5, 50, 1), random_prompt(9, 50, 2)}, o, 3, g);
    REQUIRE(torch::isfinite(out.logprobs).all().item<bool>());
    torch::NoGradGuard ng;
    KvCache cache = model->make_cache(1, 8);
    {
        AutocastGuard autocast(true, torch::kCPU);
        model->forward(torch::tensor({{1, 2, 3}}, torch::kLong), {{}, {}, &cache});
    }
    REQUIRE(cache.k[0].scalar_type() == torch::kBFloat16);  // the dtype of the keys, not fp32
    REQUIRE(cache.length == 3);
}

TEST_CASE("cached and cache-less generation sample the same tokens", "[model][generate]") {
    const std::string arch = GENERATE("gpt2", "llama");
    INFO(arch);
    Gpt model = tiny_eval_model(50, 11, arch);
    SamplingOptions o;
    o.max_new_tokens = 20;
    o.temperature = 1.0;
    std::vector<std::vector<int32_t>> prompts = {random_prompt(5, 50, 1), random_prompt(8, 50, 2)};
    auto g1 = make_generator(5, torch::kCPU), g2 = make_generator(5, torch::kCPU);
    o.use_cache = true;
    Generation a = generate(*model, prompts, o, 3, g1);
    o.use_cache = false;
    Generation b = generate(*model, prompts, o, 3, g2);
    REQUIRE(torch::equal(a.tokens, b.tokens));
    REQUIRE(test::max_abs_diff(a.logprobs, b.logprobs) < 1e-5);
}

// Greedy decoding is deterministic and top_k = 1 sampling equals it.
TEST_CASE("greedy is deterministic and top_k = 1 sampling equals it", "[model][generate]") {
    Gpt model = tiny_eval_model();
    std::vector<std::vector<int32_t>> prompts = {random_prompt(6, 50, 4)};
    SamplingOptions greedy;
    greedy.max_new_tokens = 15;
    greedy.temperature = 0.0;
    auto g = make_generator(1, torch::kCPU);
    Generation a = generate(*model, prompts, greedy, 3, g);
    Generation b = generate(*model, prompts, greedy, 3, g);
    REQUIRE(torch::equal(a.tokens, b.tokens));
    SamplingOptions k1 = greedy;
    k1.temperature = 1.3;
    k1.top_k = 1;
    Generation c = generate(*model, prompts, k1, 3, g);
    REQUIRE(torch::equal(a.response, c.response));
}

TEST_CASE("the same seed gives the same sample, another seed another", "[model][generate]") {
    Gpt model = tiny_eval_model();
    std::vector<std::vector<int32_t>> prompts = {random_prompt(4, 50, 4)};
    SamplingOptions o;
    o.max_new_tokens = 25;
    auto g1 = make_generator(123, torch::kCPU), g2 = make_generator(123, torch::kCPU), g3 = make_generator(124, torch::kCPU);
    auto a = generate(*model, prompts, o, 3, g1), b = generate(*model, prompts, o, 3, g2), c = generate(*model, prompts, o, 3, g3);
    REQUIRE(torch::equal(a.tokens, b.tokens));
    REQUIRE_FALSE(torch::equal(a.tokens, c.tokens));
}

// A sampled row gets the same tokens whatever else shares its batch.
TEST_CASE("a sampled row's tokens do not depend on its batch", "[model][generate]") {
    // Each row has its own random stream: PPO's rollout chunks and data-parallel ranks split the
    // prompts differently and must still sample what one batch samples.
    Gpt model = tiny_eval_model();
    std::vector<std::vector<int32_t>> prompts = {random_prompt(5, 50, 1), random_prompt(9, 50, 2), random_prompt(3, 50, 3)};
    const std::vector<uint64_t> seeds = {11, 22, 33};
    SamplingOptions o;
    o.max_new_tokens = 12;
    o.temperature = 1.0;
    Generation batch = generate(*model, prompts, o, 3, seeds);
    for (size_t b = 0; b < prompts.size(); ++b) {
        INFO("row " << b);
        Generation alone = generate(*model, {prompts[b]}, o, 3, std::vector<uint64_t>{seeds[b]});
        const int64_t n = alone.response.size(1);
        REQUIRE(torch::equal(batch.response[static_cast<int64_t>(b)].narrow(0, 0, n), alone.response[0]));
    }
    // Another seed, another sample; the seed count must match the prompts.
    Generation other = generate(*model, {prompts[0]}, o, 3, std::vector<uint64_t>{12});
    CHECK_FALSE(torch::equal(other.response[0], batch.response[0].narrow(0, 0, other.response.size(1))));
    REQUIRE_THROWS_WITH(generate(*model, prompts, o, 3, std::vector<uint64_t>{1}), Catch::Contains("one seed per prompt"));
}

// Generation stops each sequence at a stop id and masks what follows.
TEST_CASE("generation stops each row at a stop id, masking the rest", "[model][generate]") {
    Gpt model = tiny_eval_model();
    std::vector<std::vector<int32_t>> prompts = {random_prompt(5, 50, 1), random_prompt(7, 50, 2)};
    SamplingOptions o;
    o.max_new_tokens = 20;
    o.temperature = 0.0;
    auto g = make_generator(0, torch::kCPU);
    Generation free_run = generate(*model, prompts, o, 3, g);
    // Make the 4th greedy token of sequence 0 a stop id: sequence 0 must end there.
    const int64_t stop = free_run.response[0][3].item<int64_t>();
    o.stop_ids = {stop};
    Generation stopped = generate(*model, prompts, o, 3, g);
    int64_t first = -1;
    for (int64_t t = 0; t < free_run.response.size(1); ++t) {
        if (free_run.response[0][t].item<int64_t>() == stop) {
            first = t;
            break;
        }
    }
    REQUIRE(first >= 0);
    REQUIRE(first <= 3);
    auto mask0 = stopped.response_mask[0];
    REQUIRE(mask0.index({Slice(0, first + 1)}).all().item<bool>());        // up to and including the stop
    REQUIRE_FALSE(mask0.index({Slice(first + 1, None)}).any().item<bool>());  // nothing after
    REQUIRE((stopped.response[0].index({Slice(first + 1, None)}) == 3).all().item<bool>());  // padded
    REQUIRE(stopped.logprobs[0].index({Slice(first + 1, None)}).abs().sum().item<double>() == 0.0);
}

TEST_CASE("generation never exceeds the context window", "[model][generate]") {
    Gpt model = tiny_eval_model();  // block_size 48
    SamplingOptions o;
    o.max_new_tokens = 20;
    auto g = make_generator(0, torch::kCPU);
    auto long_prompt = random_prompt(40, 50, 3);
    REQUIRE_THROWS_WITH(generate(*model, {long_prompt}, o, 3, g), Catch::Contains("context window"));
    o.truncate_left = true;
    Generation out = generate(*model, {long_prompt}, o, 3, g);
    REQUIRE(out.tokens.size(1) <= 48);
    REQUIRE(out.prompt_len == 28);  // the last 48 - 20 prompt tokens were kept
    REQUIRE(out.tokens[0][0].item<int64_t>() == long_prompt[12]);
    o.max_new_tokens = 48;
    REQUIRE_THROWS_WITH(generate(*model, {long_prompt}, o, 3, g), Catch::Contains("no room for a prompt"));
}

TEST_CASE("bad sampling options are rejected by name", "[model][generate]") {
    auto opts = [] {
        SamplingOptions o;
        o.max_new_tokens = 16;
        return o;
    };
    SamplingOptions o = opts();
    REQUIRE_NOTHROW(validate_sampling(o, 64));
    o.top_p = 0.0;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("top_p") && Catch::Contains("(0, 1]"));
    o.top_p = 1.5;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("top_p"));
    o = opts();
    o.temperature = -0.1;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("temperature"));
    o = opts();
    o.top_k = -2;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("top_k"));
    o = opts();
    o.max_new_tokens = 64;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("max_new_tokens") && Catch::Contains("no room"));
    o.max_new_tokens = 0;
    REQUIRE_THROWS_WITH(validate_sampling(o, 64), Catch::Contains("max_new_tokens"));
}

TEST_CASE("top_p keeps only the nucleus", "[model][generate]") {
    // Fixed next-token probabilities whatever the input: ln_f's gain 0 and bias e_0 make every
    // hidden state e_0, so the tied head's logits are column 0 of the embedding. Ids 17 and 29
    // hold 0.3 and 0.2, the other 48 ids share 0.5. At top_p = 0.45 the nucleus is exactly
    // {17, 29} (0.3 alone is below 0.45, 0.5 reaches it; 0.05 from either edge), so half of the
    // mass lies outside it: a sampler that ignored top_p would draw an outside id in 320 draws
    // with probability 1 - 2^-320, and with these seeds it does (the top_p = 1 run below).
    constexpr int64_t kVocab = 50, kA = 17, kB = 29;
    Gpt model = tiny_eval_model(kVocab);
    auto probs = torch::full({kVocab}, 0.5 / (kVocab - 2), torch::kDouble);
    probs[kA] = 0.3;
    probs[kB] = 0.2;
    {
        torch::NoGradGuard ng;
        auto& ln_f = model->transformer->ln_f;
        ln_f->weight.zero_();
        ln_f->bias.zero_();
        ln_f->bias[0] = 1.0;
        auto& wte = model->transformer->wte->weight;
        wte.zero_();
        wte.select(1, 0).copy_(probs.log().to(torch::kFloat));
    }
    std::vector<std::vector<int32_t>> prompts;
    std::vector<uint64_t> seeds;
    for (int b = 0; b < 16; ++b) {
        prompts.push_back(random_prompt(3, kVocab, 100 + b));
        seeds.push_back(1000 + b);
    }
    SamplingOptions o;
    o.max_new_tokens = 20;  // 16 rows x 20 tokens: 320 draws
    o.temperature = 1.0;
    const auto in_nucleus = [&](const torch::Tensor& t) { return t.eq(kA).logical_or(t.eq(kB)); };

    o.top_p = 1.0;  // off: the setup does put tokens outside the nucleus
    Generation all = generate(*model, prompts, o, 3, seeds);
    REQUIRE(all.response.numel() == 16 * 20);
    REQUIRE(in_nucleus(all.response).logical_not().sum().item<int64_t>() > 100);  // ~160 expected

    o.top_p = 0.45;
    Generation g = generate(*model, prompts, o, 3, seeds);
    REQUIRE(g.response.numel() == 16 * 20);
    REQUIRE(g.response_mask.all().item<bool>());
    const int64_t outside = in_nucleus(g.response).logical_not().sum().item<int64_t>();
    std::string ids;
    auto distinct = std::get<0>(torch::_unique(g.response.flatten()));
    for (int64_t i = 0; i < distinct.numel(); ++i) ids += " " + std::to_string(distinct[i].item<int64_t>());
    INFO("distinct ids sampled:" << ids);
    REQUIRE(outside == 0);
    // Inside the nucleus the probabilities are renormalised, 0.6 : 0.4 (320 draws: sd 0.027).
    const double share_a = g.response.eq(kA).to(torch::kDouble).mean().item<double>();
    REQUIRE(share_a > 0.45);
    REQUIRE(share_a < 0.75);
    // The log-probs are those of the unfiltered distribution (top_p only chooses the token).
    auto expected = torch::where(g.response.eq(kA), torch::full_like(g.logprobs, std::log(0.3)),
                                 torch::full_like(g.logprobs, std::log(0.2)));
    REQUIRE(test::max_abs_diff(g.logprobs, expected) < 1e-5);
}
