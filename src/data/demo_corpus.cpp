#include "rlhf/data/demo_corpus.h"

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

// A sentence template filled from the word lists; each story keeps one hero and one animal.
std::string story(std::mt19937_64& rng) {
    auto pick = [&](const Words& w) { return std::string(w[rng() % w.size()]); };
    const std::string hero = pick(kNames), friend_ = pick(kNames), animal = pick(kAnimals);
    const std::string place = pick(kPlaces), thing = pick(kThings);
    std::vector<std::string> lines = {
        "It was a " + pick(kWeather) + " morning.",
        hero + " walked to " + place + " with a " + pick(kAdjectives) + " " + animal + ".",
        "There " + hero + " found " + thing + ".",
        "\"Look at this!\" said " + hero + ".",
        friend_ + " came and asked, \"Where did you find " + thing + "?\"",
        "\"Near " + place + ",\" said " + hero + ".",
        "The " + animal + " was " + pick(kAdjectives) + ", so they went home.",
        "At home " + hero + " and " + friend_ + " ate " + pick(kFood) + " and laughed.",
    };
    std::string out;
    const size_t n = 4 + rng() % 5;  // 4..8 sentences
    for (size_t i = 0; i < n && i < lines.size(); ++i) out += lines[i] + (i + 1 < n ? " " : "\n\n");
    if (n > lines.size()) out += "\n\n";
    return out;
}

}  // namespace

std::string demo_corpus(size_t bytes, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string text;
    while (text.size() < bytes) text += story(rng);
    return text;
}

}  // namespace rlhf
