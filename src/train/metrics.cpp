#include "rlhf/train/metrics.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

MetricsWriter::MetricsWriter(const std::filesystem::path& path, int64_t keep_through_step) {
    if (!distributed().is_main()) return;  // rank 0 writes for the whole run
    path_ = path;
    if (std::filesystem::is_regular_file(path)) {
        std::string kept;
        std::istringstream in(read_file(path));
        for (std::string line; std::getline(in, line);) {
            try {
                auto rec = nlohmann::json::parse(line);
                if (rec.value("step", int64_t{0}) <= keep_through_step) kept += line + "\n";
            } catch (const nlohmann::json::exception&) {
                // A line cut short by the crash: drop it.
            }
        }
        atomic_write(path, kept);
    }
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) throw Error("cannot open metrics file for writing", path.string(), "check permissions");
}

MetricsWriter::~MetricsWriter() {
    if (file_) std::fclose(file_);
}

void MetricsWriter::write(const nlohmann::json& record) {
    // After a failure, nothing more: the rescue checkpoint (whose hook may log a record, as the
    // reward stage's normalisation does) must not fail on the same full disk.
    if (!file_ || failed_) return;
    const std::string line = record.dump() + "\n";
    // A full disk shows here first (records are small and frequent): stop at once rather than
    // train on with a log that no longer records anything (the training loop then tries to save).
    errno = 0;
    const bool written = std::fwrite(line.data(), 1, line.size(), file_) == line.size();
    if (!written || std::fflush(file_) != 0) {
        const int err = errno;
        failed_ = true;
        std::clearerr(file_);
        throw Error(std::string("cannot write metrics: ") + (err ? std::strerror(err) : "write failed"), path_.string(),
                    "free disk space, then continue from the last checkpoint with --resume");
    }
}

std::vector<nlohmann::json> read_metrics(const std::filesystem::path& path) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    }
    return out;
}

}  // namespace rlhf
