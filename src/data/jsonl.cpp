#include "rlhf/data/jsonl.h"

#include <fstream>

#include "rlhf/core/error.h"

namespace rlhf {

void read_jsonl(const std::filesystem::path& path,
                const std::function<void(const nlohmann::json&, const std::string&)>& fn,
                const std::function<void(const Error&)>& skip) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(std::filesystem::exists(path) ? "cannot read file" : "file not found", path.string(), "check the path");
    std::string line;
    for (size_t line_no = 1; std::getline(in, line); ++line_no) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = path.string() + ":" + std::to_string(line_no);
        try {
            nlohmann::json record;
            try {
                record = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error& e) {
                std::string msg = e.what();
                auto colon = msg.find("parse error");
                throw Error("invalid JSON: " + (colon == std::string::npos ? msg : msg.substr(colon)), where,
                            "each line must be one complete JSON object");
            }
            fn(record, where);
        } catch (const Error& e) {
            if (!skip) throw;
            skip(e);
        }
    }
}

std::string json_string_field(const nlohmann::json& record, const std::string& key, const std::string& where) {
    if (!record.is_object()) throw Error("expected a JSON object", where, "");
    auto it = record.find(key);
    if (it == record.end()) throw Error("missing field \"" + key + "\"", where, "");
    if (!it->is_string()) throw Error("field \"" + key + "\" must be a string, got " + it->dump(), where, "");
    return it->get<std::string>();
}

}  // namespace rlhf
