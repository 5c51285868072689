// Logging: spdlog to the console (stderr) and, once a run directory exists, to <run_dir>/train.log.
//
// The console sink also owns a "status line" (the progress bar): log messages clear it, print,
// and redraw it, so bars and log lines never garble each other. On a non-terminal stderr the
// status line is not drawn at all.
#pragma once

#include <spdlog/spdlog.h>

#include <filesystem>
#include <string>

namespace rlhf {

// Console logging at `level` ("debug", "info", "warn", "error"). Safe to call more than once.
void init_logging(const std::string& level = "info");

// In a distributed run, ranks other than 0 log only warnings and errors, marked "[rank N]", draw
// no progress bar and write no train.log: rank 0 speaks for the run.
void set_log_rank(int rank);

// Log every message to `path` as well (appends), replacing the file of an earlier call; throws
// rlhf::Error when the file cannot be opened.
void add_log_file(const std::filesystem::path& path);

// Show `line` as the live status line (nothing happens when stderr is not a terminal).
void set_status_line(const std::string& line);

// Remove the status line, leaving the terminal at the start of an empty line.
void clear_status_line();

// True when stderr is an interactive terminal.
bool stderr_is_tty();

}  // namespace rlhf
