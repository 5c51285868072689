// GPT-2's byte-level BPE (Radford et al. 2019; OpenAI's encoder.py, tiktoken's "gpt2"):
//
//   1. the text is cut into pieces by GPT-2's pattern (gpt2_pretokenize.h), or by what a
//      tokenizer.json asks for (pretokenizer.h: NFC, Qwen's or Llama-3's regex, digits);
//   2. each byte of a piece is one initial symbol, named by a printable character: bytes
//      '!'..'~', '¡'..'¬', '®'..'ÿ' stand for themselves, the other 68 for U+0100 + n (so the
//      vocabulary files hold no control characters or spaces);
//   3. the adjacent pair with the lowest merge rank (its line in vocab.bpe / merges.txt) merges,
//      again and again, until no adjacent pair has a rank; the symbols left are looked up in
//      encoder.json / vocab.json.
//
//   With ignore_merges (Llama-3), a piece that is a vocabulary entry as a whole is that entry.
//
// Decoding maps each id back to its bytes: exact for any text. `<|endoftext|>` (50256 in GPT-2)
// is a vocabulary entry no text encodes to, like any special token here; a tokenizer.json's
// added tokens (Qwen's <|im_end|>, Llama-3's <|eot_id|>) join the vocabulary at their ids, and
// text that spells them is still encoded as plain text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rlhf/tokenizer/pretokenizer.h"

namespace rlhf {

class Gpt2Bpe {
public:
    // `vocab_json`: {"piece": id, …} (encoder.json / vocab.json); `merges`: "a b" per line after an
    // optional "#version" line (vocab.bpe / merges.txt). `vocab_source`/`merges_source` name the
    // files in errors (file:line for a broken merge).
    Gpt2Bpe(std::string_view vocab_json, const std::string& vocab_source, std::string_view merges,
            const std::string& merges_source);
    // From a tokenizer.json of Hugging Face's `tokenizers` (model.type BPE): vocabulary, merges
    // (strings or pairs), ignore_merges, the normalizer and pre-tokenizer, and the added tokens
    // past the vocabulary (which must follow it, id by id).
    static Gpt2Bpe from_tokenizer_json(std::string_view json, const std::string& source);

    // The split and merge options (GPT-2's by default); they enter the fingerprint.
    void set_options(PreTokenizer pre, bool ignore_merges);
    const PreTokenizer& pre_tokenizer() const { return pre_; }
    bool ignore_merges() const { return ignore_merges_; }
    bool default_options() const { return pre_.is_gpt2() && !ignore_merges_; }
    // A tokenizer.json's added tokens as it listed them ({id, content, special, …}: Qwen's
    // <|im_start|> special, Qwen3's <think> not), kept so that an export lists them again and
    // transformers splits them out of a chat template's text. Empty for GPT-2's files.
    const nlohmann::json& hf_added_tokens() const { return hf_added_tokens_; }
    void set_hf_added_tokens(nlohmann::json tokens) { hf_added_tokens_ = std::move(tokens); }
    // A tokenizer.json's post_processor (null for none), kept for export, and the special tokens
    // its TemplateProcessing puts around a single text: Llama-3's <|begin_of_text|> before it.
    const nlohmann::json& hf_post_processor() const { return hf_post_processor_; }
    void set_hf_post_processor(nlohmann::json post_processor, const std::string& source);
    const std::vector<int32_t>& post_prefix() const { return post_prefix_; }
    const std::vector<int32_t>& post_suffix() const { return post_suffix_; }
    // The merges in rank order.
    const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }

    std::vector<int32_t> encode(std::string_view text) const;
    // The bytes of one id.
    const std::string& bytes_of(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
    // The vocabulary entry (in the byte-as-character alphabet) of an id, and back (-1 if absent).
    const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
    int32_t piece_to_id(std::string_view piece) const;
    int32_t size() const { return static_cast<int32_t>(pieces_.size()); }

    // The files again, in Hugging Face's form (vocab.json, merges.txt with its "#version" line).
    std::string vocab_json() const;
    std::string merges_txt() const;
    // Identifies the vocabulary and merges (not their file formatting).
    uint64_t fingerprint() const { return fingerprint_; }

private:
    Gpt2Bpe() = default;
    void build(std::vector<std::pair<std::string, std::string>> merges, const std::string& vocab_source,
               const std::string& merges_source,
               const std::vector<int64_t>& merge_lines);
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

    std::vector<std::string> pieces_;  // id -> piece
    std::vector<std::string> bytes_;   // id -> bytes
    std::unordered_map<std::string, int32_t> ids_;
    std::vector<std::pair<std::string, std::string>> merges_;  // in rank order
    // (left id << 32 | right id) -> (rank, merged id)
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of_;
    int32_t byte_id_[256] = {};
    std::string bytes_as_piece_[256];  // each byte's character in the vocabulary's alphabet
    uint64_t fingerprint_ = 0, base_fingerprint_ = 0;  // with and without the options
    PreTokenizer pre_;
    bool ignore_merges_ = false;
    nlohmann::json hf_added_tokens_ = nlohmann::json::array();
    nlohmann::json hf_post_processor_;
    std::vector<int32_t> post_prefix_, post_suffix_;
};

}  // namespace rlhf
