#include "rlhf/data/synth_task.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/comparisons.h"  // ranked_pairs
#include "rlhf/data/epoch_sampler.h"

namespace rlhf {

namespace {

const std::vector<std::string> kRelatives = {"brother", "sister", "cousin", "friend"};
const std::vector<std::string> kNames = {"Anna", "Ben", "Clara", "David", "Ella", "Finn", "Grace", "Hugo"};

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {  // inclusive; our own mapping, same everywhere
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

std::string pronoun(const std::string& relative, bool future) {
    const std::string p = relative == "sister" ? "She" : relative == "brother" ? "He" : "They";
    const std::string verb = future ? " will be" : (p == "They" ? " are" : " is");
    return p + verb;
}

// The four templates of "ages". Each picks numbers so every age is a whole number >= 1.
SynthProblem ages_problem(std::mt19937_64& rng) {
    const std::string rel = kRelatives[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kRelatives.size()) - 1))];
    SynthProblem p;
    switch (uniform(rng, 0, 3)) {
        case 0: {  // half my age when I was A; how old when I am C?   answer C - A/2
            const int64_t a = 2 * uniform(rng, 2, 10), c = uniform(rng, a + 1, 80);
            p.question = "If my " + rel + " was half my age when I was " + std::to_string(a) + ", how old will my " + rel +
                         " be when I am " + std::to_string(c) + "?";
            p.answer = c - a / 2;
            p.subject = pronoun(rel, true);
            break;
        }
        case 1: {  // when I was A my relative was B; I am C now   answer C - A + B
            const int64_t b = uniform(rng, 1, 20), a = b + uniform(rng, 1, 15), c = uniform(rng, a + 1, 70);
            p.question = "When I was " + std::to_string(a) + ", my " + rel + " was " + std::to_string(b) + ". I am " +
                         std::to_string(c) + " now. How old is my " + rel + "?";
            p.answer = c - a + b;
            p.subject = pronoun(rel, false);
            break;
        }
        case 2: {  // relative is D years older; I am C   answer C + D
            const int64_t d = uniform(rng, 1, 15), c = uniform(rng, 5, 60);
            p.question = "My " + rel + " is " + std::to_string(d) + " years older than me. I am " + std::to_string(c) +
                         ". How old is my " + rel + "?";
            p.answer = c + d;
            p.subject = pronoun(rel, false);
            break;
        }
        default: {  // in N years NAME will be C   answer C - N
            const std::string name = kNames[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kNames.size()) - 1))];
            const int64_t n = uniform(rng, 1, 20), c = uniform(rng, n + 1, 80);
            p.question = "In " + std::to_string(n) + " years " + name + " will be " + std::to_string(c) + ". How old is " +
                         name + " now?";
            p.answer = c - n;
            p.subject = name + " is";
            break;
        }
    }
    return p;
}

// A story of age facts for pre-training (always right; it teaches the words and the arithmetic
// relations, not the question/answer format).
std::string ages_story(std::mt19937_64& rng) {
    const std::string name = kNames[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kNames.size()) - 1))];
    const std::string rel = kRelatives[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kRelatives.size()) - 1))];
    const int64_t d = uniform(rng, 1, 15), age = uniform(rng, 20, 60), later = uniform(rng, 1, 20);
    const bool older = uniform(rng, 0, 1) == 1;
    const int64_t rel_age = older ? age + d : age - d;  // >= 5
    const int64_t back = uniform(rng, 1, std::min(age, rel_age) - 1);  // years ago; both ages stay >= 1
    return name + " is " + std::to_string(age) + " years old. " + name + "'s " + rel + " is " + std::to_string(rel_age) +
           ", " + std::to_string(d) + " years " + (older ? "older" : "younger") + ". In " + std::to_string(later) +
           " years " + name + " will be " + std::to_string(age + later) + " and the " + rel + " will be " +
           std::to_string(rel_age + later) + ". When " + name + " was " + std::to_string(age - back) + ", the " + rel +
           " was " + std::to_string(rel_age - back) + ".\n\n";
}

const std::vector<std::string> kFiller = {
    " I worked it out carefully, step by step, and I am quite sure about it.",
    " That is my answer, although these questions are always a little tricky.",
    " Ages are fun to think about, and this one took me a while.",
};

// A wrong number a careless labeler might give: off by a few, or the other operation.
int64_t wrong_answer(const SynthProblem& p, std::mt19937_64& rng) {
    int64_t w = p.answer;
    while (w == p.answer || w < 1) w = p.answer + (uniform(rng, 0, 1) ? 1 : -1) * uniform(rng, 1, 6);
    return w;
}

}  // namespace

const std::vector<std::string>& synth_task_names() {
    static const std::vector<std::string> names = {"ages"};
    return names;
}

SynthProblem synth_problem(const std::string& task, std::mt19937_64& rng) {
    if (task == "ages") return ages_problem(rng);
    throw Error("unknown task '" + task + "'", "--task", "known tasks: ages");
}

std::string gold_response(const SynthProblem& p) { return p.subject + " " + std::to_string(p.answer) + "."; }

std::optional<int64_t> last_number(const std::string& response) {
    std::optional<int64_t> last;
    for (size_t i = 0; i < response.size();) {
        if (std::isdigit(static_cast<unsigned char>(response[i]))) {
            size_t j = i;
            while (j < response.size() && std::isdigit(static_cast<unsigned char>(response[j]))) ++j;
            if (j - i <= 15) last = std::stoll(response.substr(i, j - i));
            i = j;
        } else {
            ++i;
        }
    }
    return last;
}

bool gold_correct(const std::string& response, int64_t answer) {
    const auto n = last_number(response);
    return n && *n == answer;
}

SynthStats write_synth_task(const std::string& task, const std::filesystem::path& out_dir, uint64_t seed,
                            const SynthSizes& sizes) {
    const auto& names = synth_task_names();
    if (std::find(names.begin(), names.end(), task) == names.end()) {  // before anything is written
        std::mt19937_64 probe(0);
        synth_problem(task, probe);
    }
    ensure_dir(out_dir);
    SynthStats stats;

    // Held-out prompts first, from their own stream; no other file may contain their questions.
    std::mt19937_64 held_rng(seed ^ 0x68656c64ULL);
    std::set<std::string> held_questions;
    std::string prompts;
    while (stats.held_out < sizes.held_out) {
        const SynthProblem p = synth_problem(task, held_rng);
        if (!held_questions.insert(p.question).second) continue;
        prompts += nlohmann::json{{"prompt", p.question}, {"answer", p.answer}}.dump() + "\n";
        ++stats.held_out;
    }
    std::mt19937_64 rng(seed);
    auto next_problem = [&]() {
        for (;;) {
            SynthProblem p = synth_problem(task, rng);
            if (!held_questions.count(p.question)) return p;
        }
    };

    // The corpus: age facts as stories, and worked problems in a plain "Q: … A: …" layout (not
    // the chat format) with RIGHT answers — what the base model knows before any labeler.
    std::string corpus;
    for (int64_t i = 0; i < sizes.corpus_stories; ++i) {
        corpus += ages_story(rng);
        for (int64_t k = 0; k < sizes.worked_per_story; ++k) {
            const SynthProblem p = next_problem();
            corpus += "Q: " + p.question + "\nA: " + gold_response(p) + "\n\n";
        }
    }

    std::string sft;
    for (int64_t i = 0; i < sizes.demonstrations; ++i) {
        const SynthProblem p = next_problem();
        const double roll = static_cast<double>(rng() % 1000000) / 1e6;
        std::string response = gold_response(p);
        if (roll < sizes.wrong_share) {
            response = p.subject + " " + std::to_string(wrong_answer(p, rng)) + ".";
            ++stats.wrong_demonstrations;
        } else if (roll < sizes.wrong_share + sizes.sloppy_share) {
            response += kFiller[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kFiller.size()) - 1))];
        }
        sft += nlohmann::json{{"prompt", p.question}, {"response", response}}.dump() + "\n";
        ++stats.demonstrations;
    }

    std::string ranked;
    for (int64_t i = 0; i < sizes.comparisons; ++i) {
        const SynthProblem p = next_problem();
        // Candidates and their gold rank: 0 right and concise, 1 right but verbose, 2 wrong (all
        // wrong answers tie), 3 no answer. K = 4..9.
        std::vector<std::pair<std::string, int>> candidates = {{gold_response(p), 0}};
        const int64_t extra = uniform(rng, 3, 8);
        std::set<int64_t> used_wrong;
        for (int64_t k = 0; k < extra; ++k) {
            switch (uniform(rng, 0, 3)) {
                case 0:
                    candidates.emplace_back(gold_response(p) + kFiller[static_cast<size_t>(uniform(rng, 0, 2))], 1);
                    break;
                case 3:
                    candidates.emplace_back("I do not know.", 3);
                    break;
                default: {
                    const int64_t w = wrong_answer(p, rng);
                    if (!used_wrong.insert(w).second) {
                        --k;
                        continue;
                    }
                    candidates.emplace_back(p.subject + " " + std::to_string(w) + ".", 2);
                }
            }
        }
        std::vector<size_t> order(candidates.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        seeded_shuffle(order, rng());
        nlohmann::json rec = {{"prompt", p.question}, {"responses", nlohmann::json::array()}, {"ranks", nlohmann::json::array()}};
        std::vector<int> ranks;
        for (size_t k : order) {
            rec["responses"].push_back(candidates[k].first);
            rec["ranks"].push_back(candidates[k].second);
            ranks.push_back(candidates[k].second);
        }
        stats.pairs += static_cast<int64_t>(ranked_pairs(ranks).size());
        ranked += rec.dump() + "\n";
        ++stats.comparisons;
    }

    atomic_write(out_dir / "corpus.txt", corpus);
    atomic_write(out_dir / "sft.jsonl", sft);
    atomic_write(out_dir / "ranked.jsonl", ranked);
    atomic_write(out_dir / "prompts.jsonl", prompts);
    stats.corpus_bytes = static_cast<int64_t>(corpus.size());
    return stats;
}

}  // namespace rlhf
