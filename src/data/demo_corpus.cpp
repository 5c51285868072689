#include "rlhf/data/demo_corpus.h"

#include <nlohmann/json.hpp>

#include "rlhf/data/epoch_sampler.h"

#include <cctype>
#include <random>
#include <vector>

namespace rlhf {

namespace {

using Words = std::vector<const char*>;

const Words kNames = {"Anna", "Ben", "Clara", "David", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jack"};
const Words kAnimals = {"cat", "dog", "fox", "owl", "horse", "rabbit", "bird", "bear"};
const Words kPlaces = {"the forest", "the river", "the old mill", "the market", "the hill", "the garden", "the harbour"};
const Words kThings = {"a red ball", "an old map", "a small key", "a loaf of bread", "a blue kite", "a lantern"};
const Words kAdjectives = {"happy", "tired", "curious", "brave", "quiet", "hungry", "cold"};
const Words kWeather = {"sunny", "rainy", "windy", "grey", "warm", "foggy"};
const Words kFood = {"bread", "apples", "warm soup", "honey cake", "cheese", "plums"};

// One story: a hero, a friend, an animal, a place and a thing, told in 4..8 sentences.
struct Story {
    std::string hero, friend_, animal, place, thing, food, text;
};

// A sentence template filled from the word lists; each story keeps one hero and one animal.
Story story(std::mt19937_64& rng) {
    auto pick = [&](const Words& w) { return std::string(w[rng() % w.size()]); };
    Story s{pick(kNames), pick(kNames), pick(kAnimals), pick(kPlaces), pick(kThings), "", ""};
    const std::string weather = pick(kWeather), adjective = pick(kAdjectives), mood = pick(kAdjectives);
    s.food = pick(kFood);
    std::vector<std::string> lines = {
        "It was a " + weather + " morning.",
        s.hero + " walked to " + s.place + " with a " + adjective + " " + s.animal + ".",
        "There " + s.hero + " found " + s.thing + ".",
        "\"Look at this!\" said " + s.hero + ".",
        s.friend_ + " came and asked, \"Where did you find " + s.thing + "?\"",
        "\"Near " + s.place + ",\" said " + s.hero + ".",
        "The " + s.animal + " was " + mood + ", so they went home.",
        "At home " + s.hero + " and " + s.friend_ + " ate " + s.food + " and laughed.",
    };
    const size_t n = 4 + rng() % 5;  // 4..8 sentences
    for (size_t i = 0; i < n && i < lines.size(); ++i) s.text += lines[i] + (i + 1 < n ? " " : "\n\n");
    if (n > lines.size()) s.text += "\n\n";
    return s;
}

}  // namespace

std::string demo_corpus(size_t bytes, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string text;
    while (text.size() < bytes) text += story(rng).text;
    return text;
}

namespace {

// A question about a story, its one-sentence answer, and answers to the same question that are
// wrong (another place, thing or animal from the word lists) — what the reward model must learn
// to rank below the right one.
struct StoryQuestion {
    std::string text, question, answer;
    std::vector<std::string> wrong;  // two different wrong answers
};

StoryQuestion story_question(std::mt19937_64& rng) {
    Story s = story(rng);
    StoryQuestion out;
    // The first three sentences always exist, so every question has its answer in the text.
    out.text = s.text.substr(0, s.text.find_last_not_of('\n') + 1);
    auto other = [&](const Words& w, const std::string& not_this) {
        std::string pick;
        do pick = w[rng() % w.size()];
        while (pick == not_this);
        return pick;
    };
    switch (rng() % 3) {
        case 0:
            out.question = "Where did " + s.hero + " walk?";
            out.answer = s.hero + " walked to " + s.place + ".";
            for (int i = 0; i < 2; ++i) out.wrong.push_back(s.hero + " walked to " + other(kPlaces, s.place) + ".");
            break;
        case 1:
            out.question = "What did " + s.hero + " find?";
            out.answer = s.hero + " found " + s.thing + ".";
            for (int i = 0; i < 2; ++i) out.wrong.push_back(s.hero + " found " + other(kThings, s.thing) + ".");
            break;
        default:
            out.question = "Which animal went with " + s.hero + "?";
            out.answer = "The " + s.animal + " went with " + s.hero + ".";
            for (int i = 0; i < 2; ++i) out.wrong.push_back("The " + other(kAnimals, s.animal) + " went with " + s.hero + ".");
            break;
    }
    return out;
}

}  // namespace

std::string demo_sft_jsonl(size_t count, uint64_t seed) {
    std::mt19937_64 rng(seed ^ 0x5f7);
    std::string out;
    for (size_t i = 0; i < count; ++i) {
        const StoryQuestion q = story_question(rng);
        out += nlohmann::json{{"prompt", q.text + "\n" + q.question}, {"response", q.answer}}.dump() + "\n";
    }
    return out;
}

std::string demo_reward_jsonl(size_t count, uint64_t seed) {
    std::mt19937_64 rng(seed ^ 0x7e3a);
    std::string out;
    for (size_t i = 0; i < count; ++i) {
        const StoryQuestion q = story_question(rng);
        // Best to worst: right and concise; right but rambling; wrong (two wrong answers tie);
        // no answer at all. K = 4 or 5.
        std::vector<std::string> responses = {q.answer, q.answer + " It was a long day and I do not remember more.",
                                              q.wrong[0]};
        std::vector<int> ranks = {0, 1, 2};
        if (rng() % 2 == 0) {
            responses.push_back(q.wrong[1]);
            ranks.push_back(2);
        }
        responses.push_back("I do not know.");
        ranks.push_back(3);
        // Shuffle so the list order says nothing; the ranks carry the judgement.
        std::vector<size_t> order(responses.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        seeded_shuffle(order, rng());
        nlohmann::json rec = {{"prompt", q.text + "\n" + q.question}, {"responses", nlohmann::json::array()},
                              {"ranks", nlohmann::json::array()}};
        for (size_t k : order) {
            rec["responses"].push_back(responses[k]);
            rec["ranks"].push_back(ranks[k]);
        }
        out += rec.dump() + "\n";
    }
    return out;
}

}  // namespace rlhf
