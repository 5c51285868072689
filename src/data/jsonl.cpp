#include "rlhf/data/jsonl.h"

#include <zlib.h>

#include <fstream>
#include <memory>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

namespace {

bool is_gzip_path(const std::filesystem::path& path) { return path.extension() == ".gz"; }

// Lines of a plain or gzipped file. next() returns false at the end; a damaged archive throws.
class LineReader {
public:
    explicit LineReader(const std::filesystem::path& path) : path_(path) {
        if (!std::filesystem::exists(path)) throw Error("file not found", path.string(), "check the path");
        if (is_gzip_path(path)) {
            gz_ = gzopen(path.c_str(), "rb");
            if (!gz_) throw Error("cannot open gzip file", path.string(), "check its permissions");
            gzbuffer(gz_, 1 << 16);
        } else {
            plain_.open(path, std::ios::binary);
            if (!plain_) throw Error("cannot read file", path.string(), "check its permissions");
        }
    }
    ~LineReader() {
        if (gz_) gzclose(gz_);
    }
    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;

    bool next(std::string& line, size_t line_no) {
        if (!gz_) return static_cast<bool>(std::getline(plain_, line));
        line.clear();
        char buf[1 << 14];
        while (gzgets(gz_, buf, sizeof(buf))) {
            line += buf;
            if (!line.empty() && line.back() == '\n') {
                line.pop_back();
                return true;
            }
        }
        int err = Z_OK;
        const char* msg = gzerror(gz_, &err);
        if (err != Z_OK && err != Z_STREAM_END) {
            throw Error(std::string("corrupted gzip data (") + msg + ")",
                        path_.string() + ":" + std::to_string(line_no),
                        "the archive is damaged or truncated; download or copy it again");
        }
        return !line.empty();  // a last line without a newline
    }

private:
    std::filesystem::path path_;
    std::ifstream plain_;
    gzFile gz_ = nullptr;
};

// The line on which each top-level element of a JSON array starts, so a record of a 50 MB
// Alpaca file is reported as file:line like a JSONL one. Assumes `text` parsed as an array.
std::vector<size_t> array_element_lines(const std::string& text) {
    std::vector<size_t> lines;
    size_t line = 1;
    int depth = 0;
    bool in_string = false, escaped = false, expect_element = false;
    for (char c : text) {
        if (c == '\n') ++line;
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (depth == 1 && expect_element && c != ']') {
            lines.push_back(line);
            expect_element = false;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth == 1) expect_element = true;
        } else if (c == ']' || c == '}') --depth;
        else if (c == ',' && depth == 1) expect_element = true;
    }
    return lines;
}

}  // namespace

void read_jsonl(const std::filesystem::path& path, const RecordFn& fn, const SkipFn& skip) {
    LineReader reader(path);
    std::string line;
    for (size_t line_no = 1; reader.next(line, line_no); ++line_no) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = path.string() + ":" + std::to_string(line_no);
        try {
            nlohmann::json record;
            try {
                record = nlohmann::json::parse(line);
            } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number too large
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

void read_records(const std::filesystem::path& path, const RecordFn& fn, const SkipFn& skip) {
    if (!std::filesystem::exists(path)) throw Error("file not found", path.string(), "check the path");
    if (is_gzip_path(path)) {
        read_jsonl(path, fn, skip);
        return;
    }
    // Peek at the first non-blank character: '[' means one JSON array.
    {
        std::ifstream in(path, std::ios::binary);
        char c = 0;
        while (in.get(c) && (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\xEF' || c == '\xBB' || c == '\xBF')) {
        }
        if (!in || c != '[') {
            read_jsonl(path, fn, skip);
            return;
        }
    }
    const std::string text = read_file(path);
    nlohmann::json array;
    try {
        array = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number too large
        throw Error(std::string("invalid JSON: ") + e.what(), path.string(),
                    "a .json file must be one JSON array of records (or use JSON Lines)");
    }
    const auto lines = array_element_lines(text);
    for (size_t i = 0; i < array.size(); ++i) {
        const std::string where = path.string() + ":" + std::to_string(i < lines.size() ? lines[i] : 1);
        try {
            fn(array[i], where);
        } catch (const Error& e) {
            if (!skip) throw;
            skip(e);
        }
    }
}

SkipFn count_skips(bool enabled, int64_t& skipped, std::string& first) {
    if (!enabled) return nullptr;
    return [&skipped, &first](const Error& e) {
        if (skipped++ == 0) first = e.one_line();
    };
}

std::string json_string_field(const nlohmann::json& record, const std::string& key, const std::string& where) {
    if (!record.is_object()) throw Error("expected a JSON object", where, "");
    auto it = record.find(key);
    if (it == record.end()) throw Error("missing field \"" + key + "\"", where, "");
    if (!it->is_string()) throw Error("field \"" + key + "\" must be a string, got " + it->dump(), where, "");
    return it->get<std::string>();
}

}  // namespace rlhf
