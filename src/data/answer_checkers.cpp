#include "rlhf/data/answer_checkers.h"

#include <cctype>
#include <cmath>

#include "rlhf/core/error.h"
#include "rlhf/data/synth_task.h"  // last_number: the ages task's own gold checker

namespace rlhf {

namespace {

bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// Every number in `text`, in order: digits with commas between them ("1,234") and at most one
// decimal point followed by a digit; a '-' right before the first digit makes it negative.
std::vector<std::pair<size_t, double>> numbers(const std::string& text) {
    std::vector<std::pair<size_t, double>> out;
    for (size_t i = 0; i < text.size();) {
        if (!is_digit(text[i])) {
            ++i;
            continue;
        }
        const size_t begin = i;
        std::string digits;
        bool point = false;
        while (i < text.size()) {
            if (is_digit(text[i])) {
                digits += text[i++];
            } else if (text[i] == ',' && i + 1 < text.size() && is_digit(text[i + 1]) && !point) {
                ++i;  // a thousands separator
            } else if (text[i] == '.' && !point && i + 1 < text.size() && is_digit(text[i + 1])) {
                digits += text[i++];
                point = true;
            } else {
                break;
            }
        }
        double v = std::strtod(digits.c_str(), nullptr);
        if (begin > 0 && text[begin - 1] == '-') v = -v;
        out.emplace_back(begin, v);
    }
    return out;
}

bool same_number(double a, double b) { return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

}  // namespace

const std::vector<std::string>& answer_checker_names() {
    static const std::vector<std::string> names = {"ages", "gsm8k"};
    return names;
}

std::optional<double> last_decimal(const std::string& text) {
    const auto all = numbers(text);
    if (all.empty()) return std::nullopt;
    return all.back().second;
}

std::optional<double> first_decimal(const std::string& text, size_t from) {
    for (const auto& [at, v] : numbers(text)) {
        if (at >= from) return v;
    }
    return std::nullopt;
}

std::optional<double> gold_answer(const std::string& checker, const nlohmann::json& field) {
    if (checker == "ages") {
        if (field.is_number_integer()) return field.get<double>();
        if (field.is_string()) {
            const std::string s = field.get<std::string>();
            const auto n = last_number(s);
            if (n && s.find_first_not_of("0123456789 ") == std::string::npos) return static_cast<double>(*n);
        }
        return std::nullopt;
    }
    if (checker == "gsm8k") {
        if (field.is_number()) return field.get<double>();
        if (!field.is_string()) return std::nullopt;
        const std::string s = field.get<std::string>();
        const size_t hashes = s.rfind("####");
        if (hashes != std::string::npos) return first_decimal(s, hashes + 4);
        const auto n = last_decimal(s);
        // Without "####" the field must be the number itself, not a solution text.
        if (n && s.find_first_not_of("0123456789,.- \t\n") == std::string::npos) return n;
        return std::nullopt;
    }
    throw Error("unknown checker '" + checker + "'", "ppo.reward", "known checkers: checker:ages, checker:gsm8k");
}

CheckerVerdict check_answer(const std::string& checker, const std::string& response, double gold) {
    CheckerVerdict v;
    if (checker == "ages") {
        const auto n = last_number(response);
        v.formatted = n.has_value();
        v.correct = n && static_cast<double>(*n) == gold;
        return v;
    }
    if (checker == "gsm8k") {
        const size_t hashes = response.rfind("####");
        std::optional<double> n;
        if (hashes != std::string::npos) n = first_decimal(response, hashes + 4);
        v.formatted = n.has_value();
        if (!n) n = last_decimal(response);
        v.correct = n && same_number(*n, gold);
        return v;
    }
    throw Error("unknown checker '" + checker + "'", "ppo.reward", "known checkers: checker:ages, checker:gsm8k");
}

}  // namespace rlhf
