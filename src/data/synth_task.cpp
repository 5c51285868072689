#include "rlhf/data/synth_task.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
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

// The four templates of "ages". Numbers stay small (ages up to 25, steps of 1..5) so a model of
// ~1M parameters learns the arithmetic in minutes; each problem also carries the same fact told as
// a story sentence (the pre-training corpus) and the mistakes a careless labeler makes on it.
SynthProblem ages_problem(std::mt19937_64& rng) {
    const std::string rel = kRelatives[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kRelatives.size()) - 1))];
    const std::string my_rel = "my " + rel, My_rel = "My " + rel;
    SynthProblem p;
    switch (uniform(rng, 0, 3)) {
        case 0: {  // half my age when I was A; how old when I am C?   answer C - A/2
            const int64_t a = 2 * uniform(rng, 1, 5), c = uniform(rng, a + 1, 20);
            const std::string as = std::to_string(a), cs = std::to_string(c);
            p.question = "If " + my_rel + " was half my age when I was " + as + ", how old will " + my_rel + " be when I am " + cs + "?";
            p.answer = c - a / 2;
            p.subject = My_rel + " will be";
            p.statement = "When I was " + as + ", " + my_rel + " was half my age. When I am " + cs + ", " + my_rel + " will be " +
                          std::to_string(p.answer) + ".";
            p.mistakes = {c - a, a / 2, c};  // forgot to halve; the relative's age back then; my age
            if (c % 2 == 0) p.mistakes.push_back(c / 2);  // InstructGPT's famous one: half of C
            break;
        }
        case 1: {  // relative is D years older; I am C   answer C + D
            const int64_t d = uniform(rng, 1, 5), c = uniform(rng, 5, 20);
            const std::string ds = std::to_string(d) + (d == 1 ? " year" : " years"), cs = std::to_string(c);
            p.question = "My " + rel + " is " + ds + " older than me. I am " + cs + ". How old is " + my_rel + "?";
            p.answer = c + d;
            p.subject = My_rel + " is";
            p.statement = My_rel + " is " + ds + " older than me. I am " + cs + ". " + gold_response(p);
            p.mistakes = {c, d, c - d};  // copied my age or the difference; subtracted
            break;
        }
        case 2: {  // relative is D years younger; I am C   answer C - D
            const int64_t d = uniform(rng, 1, 5), c = uniform(rng, d + 1, 20);
            const std::string ds = std::to_string(d) + (d == 1 ? " year" : " years"), cs = std::to_string(c);
            p.question = "My " + rel + " is " + ds + " younger than me. I am " + cs + ". How old is " + my_rel + "?";
            p.answer = c - d;
            p.subject = My_rel + " is";
            p.statement = My_rel + " is " + ds + " younger than me. I am " + cs + ". " + gold_response(p);
            p.mistakes = {c, d, c + d};
            break;
        }
        default: {  // in N years NAME will be C   answer C - N
            const std::string name = kNames[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kNames.size()) - 1))];
            const int64_t n = uniform(rng, 1, 5), c = uniform(rng, n + 1, 20);
            const std::string ns = std::to_string(n), cs = std::to_string(c);
            p.question = "In " + ns + (n == 1 ? " year " : " years ") + name + " will be " + cs + ". How old is " + name + " now?";
            p.answer = c - n;
            p.subject = name + " is";
            p.statement = "In " + ns + (n == 1 ? " year " : " years ") + name + " will be " + cs + ". " + gold_response(p);
            p.mistakes = {c, n, c + n};
            break;
        }
    }
    // A mistake that happens to be right, or below 1, is no mistake.
    p.mistakes.erase(std::remove_if(p.mistakes.begin(), p.mistakes.end(), [&](int64_t m) { return m == p.answer || m < 1; }),
                     p.mistakes.end());
    std::sort(p.mistakes.begin(), p.mistakes.end());
    p.mistakes.erase(std::unique(p.mistakes.begin(), p.mistakes.end()), p.mistakes.end());
    return p;
}

const std::string kNoAnswer = "I do not know.";

const std::vector<std::string> kFiller = {
    " I checked it twice.",
    " That one was tricky.",
    " I am quite sure.",
};

// A wrong number a careless labeler gives: one of the problem's typical mistakes (a number copied
// from the question, a step forgotten, the wrong direction). Never a near miss: a labeler who
// did the arithmetic gets it right, and a reward model of this size could not see a slip of 1.
int64_t wrong_answer(const SynthProblem& p, std::mt19937_64& rng) {
    return p.mistakes[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(p.mistakes.size()) - 1))];
}

// A number from nowhere, at least 3 away from the answer: what a confused policy samples. The
// rankings hold them so the reward model checks the number against the question; trained on
// typical mistakes alone it scores any other number as right, and PPO finds one ("Anna is 6."
// to every question).
int64_t stray_number(const SynthProblem& p, std::mt19937_64& rng) {
    int64_t w = p.answer;
    while (std::abs(w - p.answer) < 3) w = uniform(rng, 1, 25);
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

    // The corpus: paragraphs of age facts told as statements with their conclusion ("I am 12, so
    // my sister is 15."), always right. It teaches the words and the arithmetic, not the habit of
    // answering a question: that is what the demonstrations add.
    std::string corpus;
    for (int64_t i = 0; i < sizes.corpus_stories; ++i) {
        for (int64_t k = 0; k < sizes.facts_per_story; ++k) corpus += (k ? " " : "") + next_problem().statement;
        corpus += "\n\n";
    }

    // Demonstrations by imperfect labelers: right and concise, right but padded, a typical
    // mistake, or no answer at all.
    std::string sft, train_prompts;
    for (int64_t i = 0; i < sizes.demonstrations; ++i) {
        const SynthProblem p = next_problem();
        train_prompts += nlohmann::json{{"prompt", p.question}, {"answer", p.answer}}.dump() + "\n";
        const double roll = static_cast<double>(rng() % 1000000) / 1e6;
        std::string response = gold_response(p);
        if (roll < sizes.wrong_share) {
            response = p.subject + " " + std::to_string(wrong_answer(p, rng)) + ".";
            ++stats.wrong_demonstrations;
        } else if (roll < sizes.wrong_share + sizes.no_answer_share) {
            response = kNoAnswer;
            ++stats.wrong_demonstrations;
        } else if (roll < sizes.wrong_share + sizes.no_answer_share + sizes.sloppy_share) {
            response += kFiller[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kFiller.size()) - 1))];
        }
        sft += nlohmann::json{{"prompt", p.question}, {"response", response}}.dump() + "\n";
        ++stats.demonstrations;
    }

    std::string ranked;
    for (int64_t i = 0; i < sizes.comparisons; ++i) {
        const SynthProblem p = next_problem();
        // Candidates and their gold rank: 0 right and concise, 1 right but verbose, 2 wrong (all
        // wrong answers tie), 3 no answer. K = 4..9; no response twice.
        std::vector<std::pair<std::string, int>> candidates = {{gold_response(p), 0}};
        const int64_t extra = uniform(rng, 3, 8);
        std::set<int64_t> used_wrong;
        std::set<size_t> used_filler;
        bool said_no_answer = false;
        for (int64_t tries = 0; static_cast<int64_t>(candidates.size()) < extra + 1 && tries < 100; ++tries) {
            // 3 in 10 padded, 3 a typical mistake, 2 a stray number, 2 no answer
            const int64_t kind = uniform(rng, 0, 9);
            if (kind < 3) {
                const auto f = static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(kFiller.size()) - 1));
                if (used_filler.insert(f).second) candidates.emplace_back(gold_response(p) + kFiller[f], 1);
            } else if (kind < 8) {
                const int64_t w = kind < 6 ? wrong_answer(p, rng) : stray_number(p, rng);
                if (used_wrong.insert(w).second) candidates.emplace_back(p.subject + " " + std::to_string(w) + ".", 2);
            } else if (!said_no_answer) {
                candidates.emplace_back(kNoAnswer, 3);
                said_no_answer = true;
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
    atomic_write(out_dir / "train_prompts.jsonl", train_prompts);
    atomic_write(out_dir / "prompts.jsonl", prompts);
    stats.corpus_bytes = static_cast<int64_t>(corpus.size());
    return stats;
}

}  // namespace rlhf
