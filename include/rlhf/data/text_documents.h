// Documents of plain text for `rlhf eval --perplexity`: a text file holds one document per block
// of lines separated by blank lines; a JSONL file (or .jsonl.gz, or a JSON array) one per record,
// in its "text" field.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace rlhf {

struct TextDocument {
    std::string text;
    std::string where;  // file:line where it starts
};

// Throws rlhf::Error (file:line) for a record without a string "text", or when no document is found.
std::vector<TextDocument> read_text_documents(const std::filesystem::path& path);

}  // namespace rlhf
