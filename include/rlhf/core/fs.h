// Filesystem helpers that make crashes harmless: every file we write is written to a temporary
// name, flushed and fsync'ed, then renamed over the target, so a reader sees either the old or
// the new content, never half of it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace rlhf {

namespace fs = std::filesystem;

// Read a whole file; throws rlhf::Error naming the path if it is missing or unreadable.
std::string read_file(const fs::path& path);

// Write bytes to `path` atomically (tmp file in the same directory, fsync, rename, fsync dir).
void atomic_write(const fs::path& path, std::string_view bytes);

// fsync a file or directory by path (no-op errors are ignored for directories on odd filesystems).
void fsync_path(const fs::path& path);

// Point the symlink `link` at `target` (a relative name) atomically: make a temporary symlink
// beside it, then rename() it over the old one.
void atomic_symlink(const fs::path& target, const fs::path& link);

// Create a directory (and parents); throws rlhf::Error with the path on failure.
void ensure_dir(const fs::path& dir);

// Text loaded for training: strips a UTF-8 byte-order mark and turns CRLF / lone CR into LF,
// so a Windows-edited file tokenizes like its Unix twin. A file that is not valid UTF-8 (Latin-1,
// a binary file) is an rlhf::Error naming file:line:column of the first bad byte.
std::string read_text_file(const fs::path& path);

// Offset of the first byte that does not begin a well-formed UTF-8 character (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or npos when all of `text` is UTF-8.
size_t invalid_utf8_at(std::string_view text);

// 64-bit FNV-1a of a byte range: a cheap fingerprint that tells a tokenizer or a shard apart from
// another (not a cryptographic hash). `seed` chains calls over a file read in pieces.
uint64_t fnv1a64(const void* data, size_t n, uint64_t seed = 0xcbf29ce484222325ULL);
std::string hex64(uint64_t value);
// fnv1a64 of a whole file, read in pieces (a checkpoint's weights: ~1 GB/s).
uint64_t file_fnv1a64(const fs::path& path);

}  // namespace rlhf
