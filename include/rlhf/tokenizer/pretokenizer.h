// What a byte-level BPE does to text before merging: an optional normalizer and a sequence of
// splits, as a Hugging Face tokenizer.json describes them.
//
//   GPT-2: no normalizer; ByteLevel's own pattern (gpt2_pretokenize.h, a hand-written scanner).
//   Qwen2/2.5/3: NFC; Split on the file's regex (digits one by one, …); ByteLevel without regex.
//   Llama-3: Split on its regex (digits in threes); ByteLevel without regex.
//   SmolLM2: Digits (one by one); ByteLevel with GPT-2's pattern.
//
// Each step splits every piece the previous step left; a Split regex (run by PCRE2 with Unicode
// properties) keeps both its matches and the text between them as pieces ("Isolated"). What this
// does not reproduce (another normalizer, a Split behaviour other than Isolated, an inverted
// Split, ByteLevel's add_prefix_space, a regex PCRE2 refuses) is an rlhf::Error naming it.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rlhf {

class SplitRegex;  // a compiled PCRE2 pattern (pretokenizer.cpp)

class PreTokenizer {
public:
    enum class Kind { gpt2, regex, digits };
    struct Step {
        Kind kind = Kind::gpt2;
        std::string pattern;      // regex
        bool individual = true;   // digits: one piece per digit (false: runs of digits)
    };

    // GPT-2's: no normalizer, its pattern.
    PreTokenizer();
    // From a tokenizer.json's "normalizer" and "pre_tokenizer" (`source` names the file in errors).
    static PreTokenizer from_tokenizer_json(const nlohmann::json& doc, const std::string& source);
    // Our own record of it (bpe.json in a tokenizer directory), and back.
    nlohmann::json to_json() const;
    static PreTokenizer from_json(const nlohmann::json& j, const std::string& source);

    // The normalizer and pre_tokenizer as a tokenizer.json holds them (the inverse of from_tokenizer_json).
    nlohmann::json normalizer_json() const;
    nlohmann::json pre_tokenizer_json() const;

    bool is_gpt2() const { return !nfc_ && steps_.size() == 1 && steps_[0].kind == Kind::gpt2; }
    // The text as the splits see it: NFC-normalised when the tokenizer asks for it.
    std::string normalize(std::string_view text) const;
    // The pieces of already-normalised text, in order; together they are exactly `text`.
    std::vector<std::string_view> split(std::string_view text) const;

private:
    void compile(const std::string& source);
    bool nfc_ = false;
    std::vector<Step> steps_;
    std::vector<std::shared_ptr<const SplitRegex>> regexes_;  // per step; null for gpt2 / digits
};

}  // namespace rlhf
