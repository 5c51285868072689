#include "rlhf/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include "rlhf/core/error.h"
#include "rlhf/tokenizer/gpt2_pretokenize.h"

namespace rlhf {

// A pattern compiled once (UTF-8, Unicode properties for \p{L} and \s, JIT when the CPU has
// one); invalid UTF-8 in the text is matched byte by byte rather than refused.
class SplitRegex {
public:
    SplitRegex(const std::string& pattern, const std::string& where) {
        int error = 0;
        PCRE2_SIZE offset = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
        if (!code_) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(error, message, sizeof message);
            throw Error("its split regex does not compile at offset " + std::to_string(offset) + ": " +
                            reinterpret_cast<const char*>(message),
                        where, "");
        }
        pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // without a JIT, the interpreter runs it
    }
    ~SplitRegex() { pcre2_code_free(code_); }
    SplitRegex(const SplitRegex&) = delete;
    SplitRegex& operator=(const SplitRegex&) = delete;

    // Matches and the text between them, in order (an empty match splits nothing).
    void split(std::string_view text, std::vector<std::string_view>& out) const {
        std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
            pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
        const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
        size_t pos = 0, kept = 0;  // next search start; end of the last piece emitted
        while (pos < text.size()) {
            const int rc = pcre2_match(code_, subject, text.size(), pos, 0, match.get(), nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) throw Error("the split regex failed on a text (PCRE2 error " + std::to_string(rc) + ")", "tokenizer", "");
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
            const size_t begin = ov[0], end = ov[1];
            if (end > begin) {
                if (begin > kept) out.push_back(text.substr(kept, begin - kept));
                out.push_back(text.substr(begin, end - begin));
                kept = pos = end;
            } else {  // empty: move on by one character
                pos = begin + 1;
                while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
            }
        }
        if (kept < text.size()) out.push_back(text.substr(kept));
    }

private:
    pcre2_code* code_ = nullptr;
};

namespace {

bool valid_utf8(std::string_view s) {
    int32_t i = 0;
    const auto n = static_cast<int32_t>(s.size());
    while (i < n) {
        UChar32 c;
        U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), i, n, c);
        if (c < 0) return false;
    }
    return true;
}

// The normalizer: none or NFC (alone or as the only member of a Sequence).
bool wants_nfc(const nlohmann::json& normalizer, const std::string& where) {
    if (normalizer.is_null()) return false;
    const std::string type = normalizer.is_object() ? normalizer.value("type", "") : "";
    if (type == "NFC") return true;
    if (type == "Sequence" && normalizer.contains("normalizers") && normalizer["normalizers"].is_array()) {
        bool nfc = false;
        for (const auto& n : normalizer["normalizers"]) nfc = wants_nfc(n, where) || nfc;
        return nfc;
    }
    throw Error("normalizer '" + (type.empty() ? normalizer.dump() : type) + "' is not supported", where + ": normalizer",
                "NFC or none are");
}

// Flattens the pre_tokenizer into steps; `byte_level` records that a ByteLevel was seen.
void add_steps(const nlohmann::json& pre, std::vector<PreTokenizer::Step>& steps, bool& byte_level, const std::string& where) {
    const std::string type = pre.is_object() ? pre.value("type", "") : "";
    auto refuse = [&](const std::string& what) {
        throw Error("pre_tokenizer " + what + " is not supported", where + ": pre_tokenizer",
                    "Split (Isolated), Digits, ByteLevel and Sequence are");
    };
    if (type == "Sequence") {
        if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array()) refuse("Sequence without a list");
        for (const auto& p : pre["pretokenizers"]) add_steps(p, steps, byte_level, where);
    } else if (type == "ByteLevel") {
        if (pre.value("add_prefix_space", false)) refuse("ByteLevel with add_prefix_space");
        byte_level = true;
        if (pre.value("use_regex", true)) steps.push_back({PreTokenizer::Kind::gpt2, "", true});
    } else if (type == "Split") {
        if (pre.value("behavior", "") != "Isolated") refuse("Split with behavior '" + pre.value("behavior", std::string()) + "'");
        if (pre.value("invert", false)) refuse("an inverted Split");
        const auto pattern = pre.value("pattern", nlohmann::json());
        if (!pattern.is_object() || !pattern.contains("Regex") || !pattern["Regex"].is_string()) {
            refuse("Split on a plain string");
        }
        steps.push_back({PreTokenizer::Kind::regex, pattern["Regex"].get<std::string>(), true});
    } else if (type == "Digits") {
        steps.push_back({PreTokenizer::Kind::digits, "", pre.value("individual_digits", false)});
    } else {
        refuse("'" + (type.empty() ? pre.dump() : type) + "'");
    }
}

}  // namespace

PreTokenizer::PreTokenizer() : steps_{Step{}}, regexes_{nullptr} {}

PreTokenizer PreTokenizer::from_tokenizer_json(const nlohmann::json& doc, const std::string& source) {
    PreTokenizer p;
    p.nfc_ = wants_nfc(doc.value("normalizer", nlohmann::json()), source);
    p.steps_.clear();
    bool byte_level = false;
    const auto pre = doc.value("pre_tokenizer", nlohmann::json());
    if (pre.is_null()) throw Error("has no pre_tokenizer", source + ": pre_tokenizer", "a byte-level BPE has one");
    add_steps(pre, p.steps_, byte_level, source);
    p.compile(source);
    if (!byte_level) throw Error("pre_tokenizer has no ByteLevel step: not a byte-level BPE", source + ": pre_tokenizer", "");
    return p;
}

nlohmann::json PreTokenizer::to_json() const {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : steps_) {
        if (s.kind == Kind::gpt2) steps.push_back({{"type", "gpt2"}});
        if (s.kind == Kind::regex) steps.push_back({{"type", "regex"}, {"pattern", s.pattern}});
        if (s.kind == Kind::digits) steps.push_back({{"type", "digits"}, {"individual", s.individual}});
    }
    return {{"normalizer", nfc_ ? "nfc" : "none"}, {"steps", steps}};
}

nlohmann::json PreTokenizer::normalizer_json() const { return nfc_ ? nlohmann::json{{"type", "NFC"}} : nlohmann::json(); }

nlohmann::json PreTokenizer::pre_tokenizer_json() const {
    nlohmann::json steps = nlohmann::json::array();
    bool gpt2 = false;
    for (const auto& s : steps_) {
        if (s.kind == Kind::regex) {
            steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", s.pattern}}}, {"behavior", "Isolated"}, {"invert", false}});
        } else if (s.kind == Kind::digits) {
            steps.push_back({{"type", "Digits"}, {"individual_digits", s.individual}});
        } else {
            steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}});
            gpt2 = true;
        }
    }
    if (!gpt2) steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
    return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& source) {
    PreTokenizer p;
    try {
        p.nfc_ = j.at("normalizer").get<std::string>() == "nfc";
        p.steps_.clear();
        for (const auto& s : j.at("steps")) {
            const std::string type = s.at("type").get<std::string>();
            if (type == "gpt2") p.steps_.push_back({Kind::gpt2, "", true});
            else if (type == "regex") p.steps_.push_back({Kind::regex, s.at("pattern").get<std::string>(), true});
            else if (type == "digits") p.steps_.push_back({Kind::digits, "", s.at("individual").get<bool>()});
            else throw Error("unknown pre-tokenizer step '" + type + "'", source, "");
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("malformed pre-tokenizer: ") + e.what(), source, "");
    }
    p.compile(source);
    return p;
}

void PreTokenizer::compile(const std::string& source) {
    regexes_.clear();
    for (const auto& s : steps_) {
        if (s.kind == Kind::regex) regexes_.push_back(std::make_shared<const SplitRegex>(s.pattern, source));
        else if (s.kind == Kind::digits) regexes_.push_back(std::make_shared<const SplitRegex>(s.individual ? "\\p{N}" : "\\p{N}+", source));
        else regexes_.push_back(nullptr);
    }
}

std::string PreTokenizer::normalize(std::string_view text) const {
    if (!nfc_ || !valid_utf8(text)) return std::string(text);  // invalid bytes pass through, as bytes
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    const auto unicode = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
    if (U_FAILURE(status) || nfc->isNormalized(unicode, status)) return std::string(text);
    std::string out;
    nfc->normalize(unicode, status).toUTF8String(out);
    if (U_FAILURE(status)) throw Error("NFC normalisation failed", "tokenizer", "");
    return out;
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
    std::vector<std::string_view> pieces = {text}, next;
    for (size_t i = 0; i < steps_.size(); ++i) {
        next.clear();
        for (std::string_view piece : pieces) {
            if (steps_[i].kind == Kind::gpt2) {
                for (auto p : gpt2_pretokenize(piece)) next.push_back(p);
            } else {
                regexes_[i]->split(piece, next);
            }
        }
        pieces.swap(next);
    }
    return pieces;
}

}  // namespace rlhf
