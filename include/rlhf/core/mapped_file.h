// A read-only memory-mapped file (token shards are read this way: the OS pages them in on demand
// and shares them between processes).
#pragma once

#include <cstddef>
#include <filesystem>

namespace rlhf {

class MappedFile {
public:
    explicit MappedFile(const std::filesystem::path& path);  // throws rlhf::Error naming the path
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& other) noexcept;

    const unsigned char* data() const { return data_; }
    size_t size() const { return size_; }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    const unsigned char* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace rlhf
