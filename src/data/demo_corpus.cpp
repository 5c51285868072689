#include "rlhf/data/demo_corpus.h"

#include <nlohmann/json.hpp>

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

std::string demo_sft_jsonl(size_t count, uint64_t seed) {
    std::mt19937_64 rng(seed ^ 0x5f7);
    std::string out;
    for (size_t i = 0; i < count; ++i) {
        Story s = story(rng);
        // The first three sentences always exist, so every question has its answer in the text.
        const std::string text = s.text.substr(0, s.text.find_last_not_of('\n') + 1);
        std::string q, a;
        switch (rng() % 3) {
            case 0: q = "Where did " + s.hero + " walk?"; a = s.hero + " walked to " + s.place + "."; break;
            case 1: q = "What did " + s.hero + " find?"; a = s.hero + " found " + s.thing + "."; break;
            default: q = "Which animal went with " + s.hero + "?"; a = "The " + s.animal + " went with " + s.hero + "."; break;
        }
        nlohmann::json rec = {{"prompt", text + "\n" + q}, {"response", a}};
        out += rec.dump() + "\n";
    }
    return out;
}

}  // namespace rlhf
