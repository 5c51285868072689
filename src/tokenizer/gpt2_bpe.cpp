#include "rlhf/tokenizer/gpt2_bpe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <limits>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/gpt2_pretokenize.h"

namespace rlhf {

namespace {

// GPT-2's bytes_to_unicode(): the code point that names each byte.
std::vector<uint32_t> byte_code_points() {
    std::vector<uint32_t> cp(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? b : next++;
    }
    return cp;
}

void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

// A piece in the byte-as-character alphabet -> its bytes; false if it holds another character.
bool piece_bytes(const std::string& piece, const std::unordered_map<uint32_t, uint8_t>& byte_of, std::string& out) {
    out.clear();
    const auto* s = reinterpret_cast<const unsigned char*>(piece.data());
    for (size_t i = 0; i < piece.size();) {
        uint32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < piece.size()) {
            c = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
            i += 2;
        } else if ((s[i] & 0xF0) == 0xE0 && i + 2 < piece.size()) {
            c = ((s[i] & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
            i += 3;
        } else {
            return false;
        }
        auto it = byte_of.find(c);
        if (it == byte_of.end()) return false;
        out += static_cast<char>(it->second);
    }
    return true;
}

}  // namespace

Gpt2Bpe::Gpt2Bpe(std::string_view vocab_json, const std::string& vocab_source, std::string_view merges,
                 const std::string& merges_source) {
    nlohmann::json vocab;
    try {
        vocab = nlohmann::json::parse(vocab_json);
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("not valid JSON: ") + e.what(), vocab_source, "expected GPT-2's encoder.json / vocab.json");
    }
    if (!vocab.is_object() || vocab.empty()) {
        throw Error("not a vocabulary (a JSON object of piece -> id)", vocab_source, "expected GPT-2's encoder.json / vocab.json");
    }
    pieces_.assign(vocab.size(), std::string());
    for (const auto& [piece, id] : vocab.items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= static_cast<int64_t>(vocab.size())) {
            throw Error("piece '" + piece + "' has id " + id.dump() + "; ids must be 0 … " + std::to_string(vocab.size() - 1),
                        vocab_source, "");
        }
        auto& slot = pieces_[id.get<size_t>()];
        if (!slot.empty()) throw Error("id " + id.dump() + " is given to two pieces", vocab_source, "");
        slot = piece;
    }
    std::vector<std::pair<std::string, std::string>> pairs;
    std::vector<int64_t> lines;
    int64_t line_no = 0;
    size_t pos = 0;
    while (pos <= merges.size()) {
        size_t end = merges.find('\n', pos);
        if (end == std::string_view::npos) end = merges.size();
        std::string_view line = merges.substr(pos, end - pos);
        ++line_no;
        pos = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || (line_no == 1 && line.substr(0, 8) == "#version")) continue;
        const size_t space = line.find(' ');
        if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
            line.find(' ', space + 1) != std::string_view::npos) {
            throw Error("a merge is two pieces separated by one space, not '" + std::string(line) + "'",
                        merges_source + ":" + std::to_string(line_no), "expected GPT-2's vocab.bpe / merges.txt");
        }
        pairs.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
        lines.push_back(line_no);
    }
    build(std::move(pairs), vocab_source, merges_source, lines);
}

Gpt2Bpe Gpt2Bpe::from_tokenizer_json(std::string_view json, const std::string& source) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(json);
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("not valid JSON: ") + e.what(), source, "expected a Hugging Face tokenizer.json");
    }
    // Every access is checked: a tokenizer.json of the wrong shape (found by fuzzing: a bare
    // number) is this file's error, not nlohmann's type_error.
    const nlohmann::json model = doc.is_object() && doc.contains("model") ? doc.at("model") : nlohmann::json();
    const auto type = model.is_object() && model.contains("type") ? model.at("type") : nlohmann::json();
    if (!type.is_string() || type.get<std::string>() != "BPE" || !model.contains("vocab") || !model.at("vocab").is_object() ||
        !model.contains("merges") || !model.at("merges").is_array()) {
        throw Error("not a byte-level BPE tokenizer (model.type BPE with vocab and merges)", source, "");
    }
    // The split first: a tokenizer we would split differently is refused before its vocabulary is read.
    PreTokenizer pre = PreTokenizer::from_tokenizer_json(doc, source);
    // merges are "a b" strings (tokenizers < 0.20) or [a, b] pairs (later).
    std::string merges = "#version: 0.2\n";
    for (const auto& m : model.at("merges")) {
        if (m.is_string()) {
            merges += m.get<std::string>();
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            merges += m[0].get<std::string>() + " " + m[1].get<std::string>();
        } else {
            throw Error("a merge is neither \"a b\" nor [a, b]: " + m.dump(), source + ": model.merges", "");
        }
        merges += '\n';
    }
    // Added tokens past the vocabulary (Qwen's <|endoftext|>, <|im_start|>, …) join it at their ids.
    nlohmann::json vocab = model.at("vocab");
    if (doc.contains("added_tokens") && doc.at("added_tokens").is_array()) {
        std::vector<std::pair<int64_t, std::string>> added;
        for (const auto& t : doc.at("added_tokens")) {
            if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
                !t["content"].is_string()) {
                throw Error("an added token is not {id, content}: " + t.dump(), source + ": added_tokens", "");
            }
            added.emplace_back(t["id"].get<int64_t>(), t["content"].get<std::string>());
        }
        std::sort(added.begin(), added.end());
        for (const auto& [id, content] : added) {
            if (id < static_cast<int64_t>(vocab.size()) && vocab.contains(content)) continue;  // already an entry
            if (id != static_cast<int64_t>(vocab.size()) || vocab.contains(content)) {
                throw Error("added token '" + content + "' has id " + std::to_string(id) + ", not the next id " +
                                std::to_string(vocab.size()),
                            source + ": added_tokens", "added tokens must follow the vocabulary without gaps");
            }
            vocab[content] = id;
        }
    }
    Gpt2Bpe bpe(vocab.dump(), source + ": model.vocab", merges, source + ": model.merges");
    bpe.set_options(std::move(pre), model.value("ignore_merges", false));
    if (doc.contains("added_tokens")) bpe.set_hf_added_tokens(doc.at("added_tokens"));
    bpe.set_hf_post_processor(doc.value("post_processor", nlohmann::json()), source + ": post_processor");
    return bpe;
}

void Gpt2Bpe::set_hf_post_processor(nlohmann::json post_processor, const std::string& source) {
    std::vector<int32_t> prefix, suffix;
    // ByteLevel (offsets only) adds nothing; TemplateProcessing's "single" template puts special
    // tokens around the text ("$A"); a Sequence holds either.
    std::function<void(const nlohmann::json&)> read = [&](const nlohmann::json& p) {
        if (p.is_null()) return;
        const std::string type = p.is_object() ? p.value("type", "") : "";
        if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
            for (const auto& q : p["processors"]) read(q);
        } else if (type == "TemplateProcessing" && p.contains("single") && p["single"].is_array()) {
            bool after = false;
            for (const auto& item : p["single"]) {
                if (item.contains("Sequence")) {
                    after = true;
                } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
                    const std::string token = item["SpecialToken"]["id"].get<std::string>();
                    const int32_t id = piece_to_id(token);
                    if (id < 0) throw Error("the template adds '" + token + "', which is not in the vocabulary", source, "");
                    (after ? suffix : prefix).push_back(id);
                } else {
                    throw Error("a template item that is neither a SpecialToken nor the Sequence: " + item.dump(), source, "");
                }
            }
        } else if (type != "ByteLevel") {
            throw Error("post-processor '" + (type.empty() ? p.dump() : type) + "' is not supported", source,
                        "ByteLevel, TemplateProcessing or a Sequence of them");
        }
    };
    read(post_processor);
    // One that adds no token (ByteLevel's offsets) changes no id: nothing to keep.
    hf_post_processor_ = prefix.empty() && suffix.empty() ? nlohmann::json() : std::move(post_processor);
    post_prefix_ = std::move(prefix);
    post_suffix_ = std::move(suffix);
}

void Gpt2Bpe::set_options(PreTokenizer pre, bool ignore_merges) {
    pre_ = std::move(pre);
    ignore_merges_ = ignore_merges;
    fingerprint_ = base_fingerprint_;
    if (!default_options()) {  // GPT-2's own options leave the fingerprint as it always was
        const std::string options = pre_.to_json().dump() + (ignore_merges_ ? "+ignore_merges" : "");
        fingerprint_ = fnv1a64(options.data(), options.size(), fingerprint_);
    }
}

void Gpt2Bpe::build(std::vector<std::pair<std::string, std::string>> merges, const std::string& vocab_source,
                    const std::string& merges_source, const std::vector<int64_t>& merge_lines) {
    const auto code_points = byte_code_points();
    std::unordered_map<uint32_t, uint8_t> byte_of;
    for (uint32_t b = 0; b < 256; ++b) byte_of[code_points[b]] = static_cast<uint8_t>(b);
    for (size_t id = 0; id < pieces_.size(); ++id) ids_.emplace(pieces_[id], static_cast<int32_t>(id));
    bytes_.resize(pieces_.size());
    for (size_t id = 0; id < pieces_.size(); ++id) {
        // Special tokens (<|endoftext|>) are not in the byte alphabet: they decode to nothing.
        if (!piece_bytes(pieces_[id], byte_of, bytes_[id])) bytes_[id].clear();
    }
    for (uint32_t b = 0; b < 256; ++b) {
        std::string name;
        append_utf8(name, code_points[b]);
        auto it = ids_.find(name);
        if (it == ids_.end()) {
            throw Error("the vocabulary lacks the piece for byte " + std::to_string(b) + " ('" + name + "')", vocab_source,
                        "a byte-level BPE vocabulary holds all 256 bytes");
        }
        byte_id_[b] = it->second;
        bytes_as_piece_[b] = name;
    }
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const auto& [a, b] = merges[rank];
        const auto ia = ids_.find(a), ib = ids_.find(b), im = ids_.find(a + b);
        if (ia == ids_.end() || ib == ids_.end() || im == ids_.end()) {
            throw Error("merge '" + a + " " + b + "' names a piece the vocabulary lacks",
                        merges_source + ":" + std::to_string(merge_lines[rank]), "the vocabulary and merges files do not belong together");
        }
        const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
        merge_of_.emplace(key, std::make_pair(static_cast<int32_t>(rank), im->second));  // the first rank wins
    }
    merges_ = std::move(merges);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const auto& p : pieces_) h = fnv1a64(p.data(), p.size() + 1, h);  // +1: the terminating NUL separates
    for (const auto& [a, b] : merges_) {
        h = fnv1a64(a.data(), a.size() + 1, h);
        h = fnv1a64(b.data(), b.size() + 1, h);
    }
    fingerprint_ = base_fingerprint_ = h;
}

int32_t Gpt2Bpe::piece_to_id(std::string_view piece) const {
    auto it = ids_.find(std::string(piece));
    return it == ids_.end() ? -1 : it->second;
}

void Gpt2Bpe::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    std::vector<int32_t> symbols;
    symbols.reserve(piece.size());
    for (unsigned char b : piece) symbols.push_back(byte_id_[b]);
    // Merge the lowest-ranked adjacent pair until none has a rank (pieces are short: quadratic is fine).
    while (symbols.size() > 1) {
        int32_t best_rank = std::numeric_limits<int32_t>::max(), merged = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
            const uint64_t key = (static_cast<uint64_t>(symbols[i]) << 32) | static_cast<uint32_t>(symbols[i + 1]);
            auto it = merge_of_.find(key);
            if (it != merge_of_.end() && it->second.first < best_rank) {
                best_rank = it->second.first;
                merged = it->second.second;
                at = i;
            }
        }
        if (merged < 0) break;
        // Every occurrence of the best pair merges in this pass, left to right (as encoder.py does).
        const int32_t left = symbols[at], right = symbols[at + 1];
        size_t w = 0;
        for (size_t r = 0; r < symbols.size(); ++r) {
            if (r + 1 < symbols.size() && symbols[r] == left && symbols[r + 1] == right) {
                symbols[w++] = merged;
                ++r;
            } else {
                symbols[w++] = symbols[r];
            }
        }
        symbols.resize(w);
    }
    out.insert(out.end(), symbols.begin(), symbols.end());
}

std::vector<int32_t> Gpt2Bpe::encode(std::string_view text) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 1);
    if (default_options()) {  // GPT-2: no copy of the text, the hand-written scanner
        for (std::string_view piece : gpt2_pretokenize(text)) encode_piece(piece, out);
        return out;
    }
    const std::string normalized = pre_.normalize(text);
    std::string whole;
    for (std::string_view piece : pre_.split(normalized)) {
        if (ignore_merges_) {  // Llama-3: a piece that is an entry as a whole needs no merges
            whole.clear();
            for (unsigned char b : piece) whole += bytes_as_piece_[b];
            if (auto it = ids_.find(whole); it != ids_.end()) {
                out.push_back(it->second);
                continue;
            }
        }
        encode_piece(piece, out);
    }
    return out;
}

std::string Gpt2Bpe::vocab_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (size_t id = 0; id < pieces_.size(); ++id) j[pieces_[id]] = id;
    return j.dump() + "\n";
}

std::string Gpt2Bpe::merges_txt() const {
    std::string out = "#version: 0.2\n";
    for (const auto& [a, b] : merges_) out += a + " " + b + "\n";
    return out;
}

}  // namespace rlhf
