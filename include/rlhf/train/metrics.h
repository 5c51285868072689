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
    // Opens for appending after dropping the records of steps after `keep_through_step`: on a
    // resume those a crashed run wrote after its last checkpoint, so the file reads like one
    // uninterrupted run; on a fresh start (-1) all of them. In a distributed run only rank 0
    // writes; elsewhere the writer does nothing.
    MetricsWriter(const std::filesystem::path& path, int64_t keep_through_step);
    ~MetricsWriter();
    MetricsWriter(const MetricsWriter&) = delete;
    MetricsWriter& operator=(const MetricsWriter&) = delete;

    // Appends one record and flushes it. A failed write (a full disk) is an rlhf::Error naming
    // the file; failed() then stays true and later writes do nothing.
    void write(const nlohmann::json& record);
    bool failed() const { return failed_; }

private:
    std::FILE* file_ = nullptr;
    std::filesystem::path path_;
    bool failed_ = false;
};

// Reads every record of a metrics.jsonl (for tests and tools).
std::vector<nlohmann::json> read_metrics(const std::filesystem::path& path);

}  // namespace rlhf
