// The command line this process was started with, for hints a user can paste back: after a
// SIGTERM, "continue with: <the same command> --resume" must carry every --set, or it continues a
// different run. A rank started by `rlhf launch` reports the launcher's command, which is what
// the user typed (launch passes it down in RLHF_COMMAND_LINE).
#pragma once

#include <string>
#include <vector>

namespace rlhf {

// Called once from main().
void remember_command_line(int argc, char** argv);

// The remembered command, each word shell-quoted where it needs it; "" when main() never called
// remember_command_line (a stage run from a test or a library user).
std::string command_line();

// The remembered command with --resume added (unless it has it), or `fallback` when there is none.
std::string resume_command(const std::string& fallback);

// `word` as a POSIX shell reads it back: unchanged when it holds only safe characters, else in
// single quotes.
std::string shell_quote(const std::string& word);

}  // namespace rlhf
