// PPO's prompt set (data/prompt_set.h): dialogue turns, the length cut, the held-out split and
// its errors.
#include <catch2/catch.hpp>

#include <algorithm>

#include "rlhf/data/chat_format.h"
#include "rlhf/data/prompt_set.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

// Prompt turns: plain text is one user turn, an HH dialogue keeps its turns.
TEST_CASE("prompt turns: text is one user turn, HH keeps its turns", "[data][prompts]") {
    auto plain = prompt_turns("How old is Anna?", "f:1");
    REQUIRE(plain.size() == 1);
    REQUIRE(plain[0].role == "user");
    auto hh = prompt_turns("\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant:", "f:2");
    REQUIRE(hh.size() == 3);
    REQUIRE(hh[1].role == "assistant");
    REQUIRE(hh[2].content == "A joke?");
    REQUIRE_THROWS_WITH(prompt_turns("\n\nHuman: Hi\n\nAssistant: Hello!", "f:3"), Contains("f:3") && Contains("Human turn"));
}

// Prompt set: long prompts counted out, held-out prompts beyond eval_prompts train.
TEST_CASE("prompt set: long prompts dropped, extra held-out ones train", "[data][prompts]") {
    test::TempDir dir;
    const Tokenizer tok = test::chat_char_tokenizer(dir.path());
    std::string text;
    for (int i = 0; i < 40; ++i) text += "{\"q\": \"question " + std::to_string(i) + "?\"}\n";
    text += "{\"q\": \"" + std::string(200, 'x') + "\"}\n";  // longer than the room
    test::write_text(dir / "p.jsonl", text);
    PromptSetOptions o;
    o.field = "q";
    o.max_prompt_tokens = 40;
    o.val_fraction = 0.25;
    o.split_seed = 7;
    o.eval_prompts = 3;
    const PromptSet set = read_prompt_set({(dir / "p.jsonl").string()}, o, tok);
    REQUIRE(set.read == 41);
    REQUIRE(set.too_long == 1);
    REQUIRE(set.eval.size() == 3);
    REQUIRE(set.eval_text.size() == 3);
    REQUIRE(set.held_out_training == 10 - 3);  // 25% of 40 held out; 3 evaluate, 7 train
    REQUIRE(set.train.size() == 37);
    REQUIRE(set.eval_text[0].rfind("question ", 0) == 0);
    const auto rendered = render_prompt({{"user", "question 39?"}}, tok);  // in order, whichever split took it
    REQUIRE((set.train.back() == rendered || std::find(set.eval.begin(), set.eval.end(), rendered) != set.eval.end()));

    // Errors: an empty prompt (file:line), none that fits.
    test::write_text(dir / "empty.jsonl", "{\"q\": \"a?\"}\n{\"q\": \"  \"}\n");
    REQUIRE_THROWS_WITH(read_prompt_set({(dir / "empty.jsonl").string()}, o, tok), Contains("empty.jsonl:2") && Contains("empty prompt"));
    PromptSetOptions tight = o;
    tight.max_prompt_tokens = 2;
    tight.room_explained = "block_size 10 - ppo.max_new_tokens 8";
    REQUIRE_THROWS_WITH(read_prompt_set({(dir / "p.jsonl").string()}, tight, tok),
                        Contains("all 41 prompts are longer than the 2 tokens") && Contains("block_size 10"));
}
