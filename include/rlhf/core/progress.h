// A progress bar for long work:  "pretrain [#####.....] 120/2000 loss 2.345 | 31.2k tok/s | ETA 2:30"
// Drawn as the console status line (see logging.h); redrawn at most every 100 ms.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rlhf {

class Progress {
public:
    // total: number of units (steps, bytes…); start: units already done (e.g. after a resume).
    Progress(std::string label, int64_t total, int64_t start = 0);
    ~Progress();

    // Advance to `done` units; `detail` is printed after the counter ("loss 2.345 | 31k tok/s").
    void update(int64_t done, const std::string& detail = "");
    void finish();

    // Seconds since construction and the estimate of what remains, from the average rate.
    double elapsed_s() const;
    double eta_s(int64_t done) const;

private:
    std::string label_;
    int64_t total_, start_;
    std::chrono::steady_clock::time_point t0_, last_draw_;
    bool finished_ = false;
};

// "1:02:03" or "2:03".
std::string format_duration(double seconds);
// 23456.7 -> "23.5k", 512.3 -> "512" (tokens/s on progress lines).
std::string format_rate(double per_second);

}  // namespace rlhf
