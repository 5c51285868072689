// SFT data: the readers of every format, the chat format's loss mask, truncation, and the
// batcher (padding and packing).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <map>

#include "rlhf/data/chat_format.h"
#include "rlhf/data/sft_batches.h"
#include "rlhf/data/sft_examples.h"
#include "rlhf/model/gpt.h"
#include "rlhf/train/lm_step.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

std::vector<Conversation> read_one(const test::TempDir& dir, const std::string& name, const std::string& text,
                                   SftReadOptions opts = {}) {
    test::write_text(dir / name, text);
    return read_sft_examples({(dir / name).string()}, opts);
}

// The ids the loss covers, decoded.
std::string masked_text(const RenderedExample& r, const Tokenizer& tok) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < r.ids.size(); ++i) if (r.loss_mask[i]) ids.push_back(r.ids[i]);
    return tok.decode(ids);
}

}  // namespace

TEST_CASE("every SFT format reads a small fixture", "[sft][data]") {
    test::TempDir dir;
    auto pr = read_one(dir, "pr.jsonl", "{\"prompt\": \"Hi?\", \"response\": \"Hello.\"}\n\n{\"prompt\": \"A\", \"response\": \"B\"}\n");
    REQUIRE(pr.size() == 2);
    REQUIRE(pr[0].turns.size() == 2);
    REQUIRE(pr[0].turns[0].role == "user");
    REQUIRE(pr[0].turns[1].content == "Hello.");
    REQUIRE(pr[1].where == (dir / "pr.jsonl").string() + ":3");

    auto trl = read_one(dir, "trl.jsonl", "{\"prompt\": \"Hi?\", \"completion\": \"Yo.\"}\n");
    REQUIRE(trl[0].turns[1].content == "Yo.");

    auto gsm = read_one(dir, "gsm.jsonl", "{\"question\": \"1+1?\", \"answer\": \"2\\n#### 2\"}\n");
    REQUIRE(gsm[0].turns[0].content == "1+1?");
    REQUIRE(gsm[0].turns[1].content == "2\n#### 2");

    SftReadOptions mapped;
    mapped.format = "prompt_response";
    mapped.prompt_field = "q";
    mapped.response_field = "a";
    auto m = read_one(dir, "m.jsonl", "{\"q\": \"x\", \"a\": \"y\"}\n", mapped);
    REQUIRE(m[0].turns[1].content == "y");

    auto alpaca = read_one(dir, "alpaca.json",
                           "[\n  {\"instruction\": \"Add\", \"input\": \"1 and 2\", \"output\": \"3\"},\n"
                           "  {\"instruction\": \"Greet\",\n   \"input\": \"\", \"output\": \"Hi\"}\n]\n");
    REQUIRE(alpaca.size() == 2);
    REQUIRE(alpaca[0].turns[0].content == "Add\n\n1 and 2");
    REQUIRE(alpaca[1].turns[0].content == "Greet");
    REQUIRE(alpaca[1].where == (dir / "alpaca.json").string() + ":3");

    auto msgs = read_one(dir, "msgs.jsonl",
                         "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"a\"},"
                         " {\"role\": \"assistant\", \"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"},"
                         " {\"role\": \"assistant\", \"content\": \"d\"}]}\n");
    REQUIRE(msgs[0].turns.size() == 5);
    REQUIRE(msgs[0].turns[0].role == "system");
}

TEST_CASE("the shipped GSM8K and Alpaca files read", "[sft][data]") {
    auto gsm = test::shared_data_or_skip("gsm8k/train.jsonl");
    auto alpaca = test::shared_data_or_skip("self-instruct-seed/seed_tasks_alpaca_format.json");
    REQUIRE(read_sft_examples({gsm.string()}, {}).size() == 7473);
    REQUIRE(read_sft_examples({alpaca.string()}, {}).size() > 100);
}

// Bad SFT records are one error with file:line, or skipped and counted.
TEST_CASE("bad SFT records: an error at file:line, or skipped", "[sft][data]") {
    test::TempDir dir;
    REQUIRE_THROWS_WITH(read_one(dir, "a.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n{not json\n"),
                        Contains("a.jsonl:2") && Contains("invalid JSON"));
    REQUIRE_THROWS_WITH(read_one(dir, "b.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n"),
                        Contains("b.jsonl:2") && Contains("missing field \"response\""));
    REQUIRE_THROWS_WITH(read_one(dir, "c.jsonl", "{\"prompt\": \"a\", \"response\": \"  \"}\n"),
                        Contains("c.jsonl:1") && Contains("empty response"));
    REQUIRE_THROWS_WITH(read_one(dir, "d.jsonl", "\n\n"), Contains("no usable examples"));
    REQUIRE_THROWS_WITH(read_one(dir, "e.jsonl", "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n"),
                        Contains("e.jsonl:1") && Contains("unknown role"));
    REQUIRE_THROWS_WITH(read_one(dir, "f.jsonl", "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}, "
                                                 "{\"role\": \"user\", \"content\": \"y\"}]}\n"),
                        Contains("does not end with an assistant turn"));

    SftReadOptions skip;
    skip.skip_bad = true;
    SftReadStats stats;
    test::write_text(dir / "g.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n{broken\n{\"prompt\": \"a\"}\n"
                                      "{\"prompt\": \"c\", \"response\": \"d\"}\n");
    auto kept = read_sft_examples({(dir / "g.jsonl").string()}, skip, &stats);
    REQUIRE(kept.size() == 2);
    REQUIRE(stats.skipped == 2);
    REQUIRE_THAT(stats.first_skip, Contains("g.jsonl:2"));
    test::write_text(dir / "h.jsonl", "{broken\n");
    REQUIRE_THROWS_WITH(read_sft_examples({(dir / "h.jsonl").string()}, skip), Contains("1 skipped"));
}

// The chat format's loss mask is the reply and its EOS, nothing of the prompt.
TEST_CASE("the chat loss mask is the reply and its EOS, not the prompt", "[sft][data]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    REQUIRE(has_chat_format(tok));
    REQUIRE(tok.vocab_size() == tok.spm_vocab_size() + 3);
    REQUIRE(tok.encode("<|user|>").size() > 1);  // text cannot forge a role marker

    auto r = render_conversation({{"user", "What is 2+2?"}, {"assistant", "4."}}, tok);
    REQUIRE(r.ids.front() == tok.bos_id());
    REQUIRE(r.ids.back() == tok.eos_id());
    REQUIRE(r.loss_mask.back() == 1);  // EOS is inside the loss
    REQUIRE(masked_text(r, tok) == "4.");
    const auto reply_start = r.ids.size() - 3;  // "4", ".", EOS
    for (size_t i = 0; i < r.ids.size(); ++i) REQUIRE(r.loss_mask[i] == (i >= reply_start ? 1 : 0));
    REQUIRE(r.ids[reply_start - 1] == tok.added_token_id("<|assistant|>"));

    // Multi-turn: both assistant turns (and their EOS), no user or system text.
    auto m = render_conversation({{"system", "Be brief."}, {"user", "a"}, {"assistant", "bb"}, {"user", "c"},
                                  {"assistant", "dd"}},
                                 tok);
    REQUIRE(masked_text(m, tok) == "bbdd");
    int eos_in_mask = 0;
    for (size_t i = 0; i < m.ids.size(); ++i) eos_in_mask += m.loss_mask[i] && m.ids[i] == tok.eos_id();
    REQUIRE(eos_in_mask == 2);

    // A generation prompt is the same rendering up to the final <|assistant|>.
    auto p = render_prompt({{"user", "What is 2+2?"}}, tok);
    REQUIRE(std::vector<int32_t>(r.ids.begin(), r.ids.begin() + static_cast<long>(p.size())) == p);
}

// Too-long examples: prompt cut from the left, reply from the right.
TEST_CASE("too long: prompt cut from the left, reply from the right", "[sft][data]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    auto r = render_conversation({{"user", "abcdefghijklmnopqrstuvwxyz"}, {"assistant", "0123456789"}}, tok);
    // BOS <|user|> 26 <|assistant|> 10 EOS = 40 ids
    REQUIRE(r.ids.size() == 40);
    auto same = fit_to_window(r, 40, 0.5);
    REQUIRE(same->ids == r.ids);

    auto cut = fit_to_window(r, 30, 0.5);  // prompt keeps 19 (reply 11 fits): drops 10 oldest letters
    REQUIRE(cut);
    REQUIRE(cut->ids.size() == 30);
    REQUIRE(cut->prompt_truncated);
    REQUIRE_FALSE(cut->response_truncated);
    REQUIRE(cut->ids[0] == tok.bos_id());
    REQUIRE(cut->ids[1] == tok.added_token_id("<|user|>"));
    REQUIRE(tok.decode({cut->ids.begin() + 2, cut->ids.begin() + 18}) == "klmnopqrstuvwxyz");
    REQUIRE(masked_text(*cut, tok) == "0123456789");

    auto tight = fit_to_window(r, 20, 0.5);  // prompt keeps 10 ids; reply cut to 10 ids: EOS lost
    REQUIRE(tight);
    REQUIRE(tight->ids.size() == 20);
    REQUIRE(tight->response_truncated);
    REQUIRE(tight->ids.back() != tok.eos_id());
    REQUIRE(masked_text(*tight, tok) == "0123456789");

    REQUIRE_FALSE(fit_to_window(r, 28, 1.0));  // the prompt may keep everything: no reply token left
}

TEST_CASE("packing gives each example the loss it has alone", "[sft][data]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    torch::manual_seed(3);
    ModelConfig mc = test::tiny_model(tok.vocab_size());
    mc.block_size = 64;
    Gpt model(mc);
    model->eval();
    std::vector<SftExample> examples;
    for (const char* q : {"hi", "what is up?", "count to 3", "bye now", "a", "tell me a joke please"}) {
        auto r = render_conversation({{"user", q}, {"assistant", std::string("ok ") + q}}, tok);
        examples.push_back({r.ids, r.loss_mask});
    }
    SftBatcher packed(examples, 6, 64, true, tok.pad_id(), kIgnoreIndex);  // one batch holds all
    auto b = packed.batch(7, 0);
    REQUIRE(b.segment_ids.defined());
    torch::NoGradGuard no_grad;
    AttentionContext ctx;
    ctx.position_ids = b.position_ids;
    ctx.segment_ids = b.segment_ids;
    auto logits = model->logits(model->forward(b.inputs, ctx));
    auto ce = torch::nn::functional::cross_entropy(
        logits.view({-1, logits.size(-1)}), b.targets.view(-1),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kNone));
    ce = ce.view(b.targets.sizes());
    int checked = 0, shared_rows = 0;
    for (int64_t row = 0; row < b.inputs.size(0); ++row) {
        const int64_t segments = b.segment_ids[row].max().item<int64_t>() + 1;
        shared_rows += segments >= 2;  // several examples share the window
        for (int64_t s = 0; s < segments; ++s) {
            auto in_seg = b.segment_ids[row].eq(s);
            auto ids = b.inputs[row].masked_select(in_seg);
            // find the example with these inputs and run it alone
            for (const auto& e : examples) {
                if (static_cast<int64_t>(e.ids.size()) - 1 != ids.size(0)) continue;
                auto alone_ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end() - 1)).unsqueeze(0);
                if (!alone_ids[0].equal(ids)) continue;
                auto alone = pad_batch({&e}, tok.pad_id(), kIgnoreIndex);
                auto la = model->logits(model->forward(alone.inputs));
                auto alone_loss = lm_loss_sum(la.view({-1, la.size(-1)}), alone.targets.view(-1)).item<double>();
                auto packed_loss = ce[row].masked_select(in_seg).sum().item<double>();
                REQUIRE(std::abs(alone_loss - packed_loss) <= 1e-5 * std::max(1.0, std::abs(alone_loss)));
                ++checked;
            }
        }
    }
    REQUIRE(shared_rows >= 1);
    REQUIRE(checked == static_cast<int>(examples.size()));
}

TEST_CASE("prompt tokens receive zero gradient", "[sft][data]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    torch::manual_seed(5);
    Gpt model(test::tiny_model(tok.vocab_size()));
    auto r = render_conversation({{"user", "abc def"}, {"assistant", "xyz"}}, tok);
    SftExample e{r.ids, r.loss_mask};
    auto b = pad_batch({&e}, tok.pad_id(), kIgnoreIndex);
    auto logits = model->logits(model->forward(b.inputs));
    logits.retain_grad();
    lm_loss_sum(logits.view({-1, logits.size(-1)}), b.targets.view(-1)).backward();
    auto per_position = logits.grad().abs().sum(-1)[0];  // (T)
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(r.ids.size()); ++t) {
        const bool predicts_reply = r.loss_mask[static_cast<size_t>(t + 1)] == 1;
        INFO("position " << t);
        if (predicts_reply) REQUIRE(per_position[t].item<double>() > 0);
        else REQUIRE(per_position[t].item<double>() == 0.0);
    }
}

// Padded batches are length-sorted, cover every example once per epoch, and resume by index.
TEST_CASE("padded batches: length-sorted, each example once, resumable", "[sft][data]") {
    std::vector<SftExample> examples;
    for (int i = 0; i < 50; ++i) {
        SftExample e;
        e.ids.assign(static_cast<size_t>(3 + i % 20), i);
        e.loss_mask.assign(e.ids.size(), 1);
        examples.push_back(e);
    }
    SftBatcher a(examples, 4, 64, false, 0, kIgnoreIndex), b(examples, 4, 64, false, 0, kIgnoreIndex);
    std::map<int64_t, int> seen;
    for (uint64_t i = 0; i < 13; ++i) {  // ceil(50 / 4) batches per epoch
        auto batch = a.batch(1, i);
        for (int64_t r = 0; r < batch.inputs.size(0); ++r) seen[batch.inputs[r][0].item<int64_t>()]++;
    }
    REQUIRE(seen.size() == 50);
    for (const auto& [id, n] : seen) REQUIRE(n == 1);
    REQUIRE(a.epoch_of(1, 13) == 1);
    // A fresh batcher asked for batch 20 directly (a resume) gives what the first one gives.
    REQUIRE(b.batch(1, 20).inputs.equal(a.batch(1, 20).inputs));
}
