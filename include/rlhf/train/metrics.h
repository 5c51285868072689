// metrics.jsonl: one JSON object per line, written as it happens (flushed per record), so a
// crashed run keeps every step it finished. Train records carry "type":"train", evaluations
// "type":"eval"; both carry "step" (optimizer steps completed).
#pragma once

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace rlhf {

class MetricsWriter {
public:
    // Opens for appending. With resume_step >= 0, records of steps after it (written by the run
    // that crashed after its last checkpoint) are dropped first, so the file reads like one
    // uninterrupted run.
    MetricsWriter(const std::filesystem::path& path, int64_t resume_step = -1);
    ~MetricsWriter();
    MetricsWriter(const MetricsWriter&) = delete;
    MetricsWriter& operator=(const MetricsWriter&) = delete;

    void write(const nlohmann::json& record);

private:
    std::FILE* file_ = nullptr;
};

// Reads every record of a metrics.jsonl (for tests and tools).
std::vector<nlohmann::json> read_metrics(const std::filesystem::path& path);

}  // namespace rlhf
