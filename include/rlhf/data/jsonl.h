// Record files as users have them: JSON Lines (one JSON value per line), the same gzipped
// (*.gz, read directly), or one JSON array of records (Alpaca, PandaLM). Errors name file:line,
// so a broken record in a 100k-line file is found at once.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "rlhf/core/error.h"

namespace rlhf {

using RecordFn = std::function<void(const nlohmann::json& record, const std::string& where)>;
using SkipFn = std::function<void(const Error& error)>;

// Calls fn(record, where) for each non-blank line, where = "file:line". A path ending in .gz is
// decompressed as it is read; a corrupted or truncated archive is an rlhf::Error at the line
// where reading failed. A line that is not valid JSON throws rlhf::Error naming file:line; fn may
// throw rlhf::Error(…, where) for bad content. With `skip`, bad lines and bad content go to
// skip(error) instead and reading goes on (data.on_error: skip); skip may rethrow to stop.
// (A damaged archive always stops: nothing after it can be read.)
void read_jsonl(const std::filesystem::path& path, const RecordFn& fn, const SkipFn& skip = nullptr);

// read_jsonl, or — when the file's first non-blank character is '[' — each element of one JSON
// array, with `where` = file:line of the line the element starts on.
void read_records(const std::filesystem::path& path, const RecordFn& fn, const SkipFn& skip = nullptr);

// The skip callback of data.on_error: counts into `skipped` and keeps the first error's line in
// `first`; nullptr (errors stop reading) when not `enabled`. Every record reader uses it.
SkipFn count_skips(bool enabled, int64_t& skipped, std::string& first);

// record[key] as a string; an rlhf::Error naming `where` and the key if missing or not a string.
std::string json_string_field(const nlohmann::json& record, const std::string& key, const std::string& where);

}  // namespace rlhf
