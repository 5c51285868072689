#include "rlhf/core/progress.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <cstdio>

#include "rlhf/core/logging.h"

namespace rlhf {

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    auto s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    else std::snprintf(buf, sizeof(buf), "%lld:%02lld", s / 60, s % 60);
    return buf;
}

Progress::Progress(std::string label, int64_t total, int64_t start)
    : label_(std::move(label)), total_(total), start_(start),
      t0_(std::chrono::steady_clock::now()), last_draw_(t0_ - std::chrono::seconds(1)) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

double Progress::eta_s(int64_t done) const {
    int64_t progressed = done - start_;
    if (progressed <= 0) return NAN;
    return elapsed_s() / static_cast<double>(progressed) * static_cast<double>(total_ - done);
}

void Progress::update(int64_t done, const std::string& detail) {
    auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    char head[160];
    std::snprintf(head, sizeof(head), "%s [%s] %lld/%lld", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_));
    std::string line = head;
    if (!detail.empty()) line += " " + detail;
    line += " | " + format_duration(elapsed_s()) + " < " + format_duration(eta_s(done));
    set_status_line(line);
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    clear_status_line();
}

std::string format_rate(double per_s) {
    return per_s >= 1000 ? fmt::format("{:.1f}k", per_s / 1000) : fmt::format("{:.0f}", per_s);
}

}  // namespace rlhf
