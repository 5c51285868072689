#include "rlhf/core/command_line.h"

#include <cstdlib>

namespace rlhf {

namespace {

std::vector<std::string>& remembered() {
    static std::vector<std::string> words;
    return words;
}

std::string& inherited() {  // from `rlhf launch`, already quoted
    static std::string line;
    return line;
}

}  // namespace

std::string shell_quote(const std::string& word) {
    const bool safe = !word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                              "0123456789_-+=./:,@%") == std::string::npos;
    if (safe) return word;
    std::string out = "'";
    for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

void remember_command_line(int argc, char** argv) {
    remembered().assign(argv, argv + argc);
    // Only a rank started by `rlhf launch` (which sets RANK too) takes the launcher's command; a
    // stray RLHF_COMMAND_LINE in a user's shell must not replace the real one.
    const char* launched = std::getenv("RLHF_COMMAND_LINE");
    if (launched && *launched && std::getenv("RANK")) inherited() = launched;
}

std::string command_line() {
    if (!inherited().empty()) return inherited();
    std::string out;
    for (const auto& w : remembered()) out += (out.empty() ? "" : " ") + shell_quote(w);
    return out;
}

std::string resume_command(const std::string& fallback) {
    const std::string line = command_line();
    if (line.empty()) return fallback;
    bool has_resume = inherited().empty() ? false : line.find(" --resume") != std::string::npos;
    for (const auto& w : remembered()) has_resume |= w == "--resume";
    return has_resume ? line : line + " --resume";
}

}  // namespace rlhf
