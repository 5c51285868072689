#include "rlhf/data/text_documents.h"

#include <sstream>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/jsonl.h"

namespace rlhf {

namespace {

bool is_records_file(const std::filesystem::path& path) {
    const std::string name = path.filename().string();
    for (const char* ext : {".jsonl", ".jsonl.gz", ".json", ".json.gz"}) {
        const std::string e = ext;
        if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return true;
    }
    return false;
}

bool blank_line(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

std::vector<TextDocument> read_text_documents(const std::filesystem::path& path) {
    if (!std::filesystem::is_regular_file(path)) throw Error("file not found", path.string(), "check the path");
    std::vector<TextDocument> docs;
    if (is_records_file(path)) {
        read_records(path, [&](const nlohmann::json& r, const std::string& where) {
            docs.push_back({json_string_field(r, "text", where), where});
        });
    } else {
        std::istringstream in(read_file(path));
        TextDocument doc;
        int line_no = 0;
        for (std::string line; std::getline(in, line);) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
            if (blank_line(line)) {
                if (!doc.text.empty()) docs.push_back(std::move(doc));
                doc = {};
                continue;
            }
            if (doc.text.empty()) doc.where = path.string() + ":" + std::to_string(line_no);
            else doc.text += '\n';
            doc.text += line;
        }
        if (!doc.text.empty()) docs.push_back(std::move(doc));
    }
    if (docs.empty()) {
        throw Error("no documents", path.string(), "text: blocks separated by blank lines; JSONL: {\"text\": ...} per line");
    }
    return docs;
}

}  // namespace rlhf
