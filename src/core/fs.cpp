#include "rlhf/core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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

size_t invalid_utf8_at(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        // The lead byte fixes the length and the allowed range of the first continuation byte,
        // which rules out overlong forms, UTF-16 surrogates and code points above U+10FFFF.
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) len = 3;
        else if (c == 0xED) len = 3, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        else return i;
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
        }
        i += len;
    }
    return std::string_view::npos;
}

std::string read_text_file(const fs::path& path) {
    std::string raw = read_file(path);
    // Not UTF-8 is an error, not U+FFFD: replacing bytes silently trains on text the user never
    // wrote, and a binary file given by mistake would train as "text" with a huge alphabet.
    if (const size_t bad = invalid_utf8_at(raw); bad != std::string_view::npos) {
        // Lines as the normalised text will have them: LF, CRLF and a lone CR each end one.
        size_t line = 1, line_start = 0;
        for (size_t i = 0; i < bad; ++i) {
            if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 >= raw.size() || raw[i + 1] != '\n'))) {
                ++line;
                line_start = i + 1;
            }
        }
        const size_t column = bad - line_start + 1;  // in bytes
        char byte[8];
        std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(raw[bad]));
        throw Error(std::string("not UTF-8 text: byte ") + byte + " at offset " + std::to_string(bad) +
                        " does not start a valid character",
                    path.string() + ":" + std::to_string(line) + ":" + std::to_string(column),
                    "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8), or check it is text at all");
    }
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
