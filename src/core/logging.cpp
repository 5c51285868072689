#include "rlhf/core/logging.h"

#include "rlhf/core/error.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace rlhf {

namespace {

// Console sink that keeps one status line at the bottom of the terminal.
class StatusAwareSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit StatusAwareSink(bool tty) : tty_(tty) {}

    void set_status(const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!tty_) return;
        status_ = line;
        std::fprintf(stderr, "\r\033[K%s", status_.c_str());
        std::fflush(stderr);
    }

    void disable_status() {
        std::lock_guard<std::mutex> lock(mutex_);
        tty_ = false;
        status_.clear();
    }

    void clear_status() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!tty_ || status_.empty()) return;
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        status_.clear();
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        if (tty_ && !status_.empty()) std::fputs("\r\033[K", stderr);
        std::fwrite(formatted.data(), 1, formatted.size(), stderr);
        if (tty_ && !status_.empty()) std::fputs(status_.c_str(), stderr);
        std::fflush(stderr);
    }
    void flush_() override { std::fflush(stderr); }

private:
    bool tty_;
    std::string status_;
};

std::shared_ptr<StatusAwareSink>& console_sink() {
    static std::shared_ptr<StatusAwareSink> sink;
    return sink;
}

spdlog::sink_ptr& file_sink() {
    static spdlog::sink_ptr sink;
    return sink;
}

int g_log_rank = 0;  // set_log_rank(): a rank other than 0 speaks only of problems

}  // namespace

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

namespace {
// The console logger, made on first use at level info.
void ensure_console() {
    auto& sink = console_sink();
    if (sink) return;
    sink = std::make_shared<StatusAwareSink>(stderr_is_tty());
    sink->set_pattern("[%H:%M:%S] %^%l%$ %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("rlhf", sink));
    spdlog::set_level(spdlog::level::info);
    spdlog::flush_on(spdlog::level::info);
}
}  // namespace

void init_logging(const std::string& level) {
    ensure_console();
    auto lvl = spdlog::level::from_str(level);
    spdlog::set_level(g_log_rank > 0 ? std::max(lvl, spdlog::level::warn) : lvl);
    spdlog::flush_on(spdlog::level::info);
}

void set_log_rank(int rank) {
    ensure_console();
    g_log_rank = rank;
    if (rank == 0) return;
    console_sink()->disable_status();
    console_sink()->set_pattern(fmt::format("[%H:%M:%S] [rank {}] %^%l%$ %v", rank));
    spdlog::set_level(std::max(spdlog::default_logger()->level(), spdlog::level::warn));
}

void add_log_file(const std::filesystem::path& path) {
    ensure_console();
    if (g_log_rank > 0) return;  // rank 0 keeps the run's train.log
    auto& sinks = spdlog::default_logger()->sinks();
    if (auto& old = file_sink()) {  // one run, one log file: a second run in this process moves on
        sinks.erase(std::remove(sinks.begin(), sinks.end(), old), sinks.end());
        old.reset();
    }
    try {
        auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string(), /*truncate=*/false);
        file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
        sinks.push_back(file);
        file_sink() = file;
    } catch (const spdlog::spdlog_ex& e) {
        throw Error(std::string("cannot open the log file: ") + e.what(), path.string(),
                    "check that the run directory is writable");
    }
}

void set_status_line(const std::string& line) {
    if (auto& sink = console_sink()) sink->set_status(line);
}

void clear_status_line() {
    if (auto& sink = console_sink()) sink->clear_status();
}

}  // namespace rlhf
