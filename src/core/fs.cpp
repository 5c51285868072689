#include "rlhf/core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "rlhf/core/error.h"

namespace rlhf {

std::string read_file(const fs::path& path) {
    if (fs::is_directory(path)) throw Error("is a directory, not a file", path.string(), "pass a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw Error(fs::exists(path) ? "cannot read file" : "file not found", path.string(),
                    fs::exists(path) ? "check its permissions" : "check the path");
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

static std::string unique_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::to_string(::getpid()) + "-" + std::to_string(rng() % 1000000000ULL);
}

void fsync_path(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

void atomic_write(const fs::path& path, std::string_view bytes) {
    fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    fs::path tmp = dir / (".tmp-" + path.filename().string() + "-" + unique_suffix());
    {
        int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) throw Error(std::string("cannot create file: ") + std::strerror(errno), tmp.string(),
                                "check that the directory exists and is writable");
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                int err = errno;
                ::close(fd);
                fs::remove(tmp);
                throw Error(std::string("write failed: ") + std::strerror(err), path.string(),
                            "is the disk full?");
            }
            done += static_cast<size_t>(n);
        }
        ::fsync(fd);
        ::close(fd);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp);
        throw Error("cannot rename into place: " + ec.message(), path.string(), "");
    }
    fsync_path(dir);
}

void atomic_symlink(const fs::path& target, const fs::path& link) {
    fs::path tmp = link.parent_path() / (".tmp-" + link.filename().string() + "-" + unique_suffix());
    std::error_code ec;
    fs::create_symlink(target, tmp, ec);
    if (ec) throw Error("cannot create symlink: " + ec.message(), tmp.string(), "");
    fs::rename(tmp, link, ec);  // rename(2) replaces the old link atomically
    if (ec) {
        fs::remove(tmp);
        throw Error("cannot update symlink: " + ec.message(), link.string(), "");
    }
    fsync_path(link.parent_path());
}

void ensure_dir(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create directory: " + ec.message(), dir.string(), "check permissions");
}

std::string read_text_file(const fs::path& path) {
    std::string raw = read_file(path);
    size_t start = 0;
    if (raw.size() >= 3 && static_cast<unsigned char>(raw[0]) == 0xEF &&
        static_cast<unsigned char>(raw[1]) == 0xBB && static_cast<unsigned char>(raw[2]) == 0xBF) {
        start = 3;  // UTF-8 byte-order mark
    }
    std::string text;
    text.reserve(raw.size() - start);
    for (size_t i = start; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\r') {
            text.push_back('\n');
            if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;  // CRLF -> LF
        } else {
            text.push_back(c);
        }
    }
    return text;
}

uint64_t fnv1a64(const void* data, size_t n, uint64_t seed) {
    const auto* p = static_cast<const unsigned char*>(data);
    uint64_t h = seed;
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t file_fnv1a64(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open", path.string(), "");
    std::vector<char> buf(1 << 20);
    uint64_t h = 0xcbf29ce484222325ULL;
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h = fnv1a64(buf.data(), static_cast<size_t>(in.gcount()), h);
    }
    if (in.bad()) throw Error("read failed", path.string(), "");
    return h;
}

std::string hex64(uint64_t value) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
    return buf;
}

}  // namespace rlhf
