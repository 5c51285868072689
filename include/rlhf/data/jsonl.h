// JSON Lines: one JSON value per line. Errors name file:line, so a broken record in a
// 100k-line file is found at once.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "rlhf/core/error.h"

namespace rlhf {

// Calls fn(record, where) for each non-blank line, where = "file:line". A line that is not valid
// JSON throws rlhf::Error naming file:line; fn may throw rlhf::Error(…, where) for bad content.
// With `skip`, both kinds of error go to skip(error) instead and reading goes on (data.on_error:
// skip); skip may rethrow to stop.
void read_jsonl(const std::filesystem::path& path,
                const std::function<void(const nlohmann::json& record, const std::string& where)>& fn,
                const std::function<void(const Error& error)>& skip = nullptr);

// record[key] as a string; an rlhf::Error naming `where` and the key if missing or not a string.
std::string json_string_field(const nlohmann::json& record, const std::string& key, const std::string& where);

}  // namespace rlhf
