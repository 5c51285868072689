// Tokenizer: one of two kinds behind one interface, with distinct special ids.
//
//  - SentencePiece (BPE, unigram or char), the kind `rlhf tokenizer train` makes;
//  - GPT-2's byte-level BPE (gpt2_bpe.h), imported from OpenAI's or Hugging Face's files. Its
//    `<|endoftext|>` is both BOS and EOS, it has no UNK (every byte has an id), and its PAD is the
//    added token `<|pad|>` (GPT-2 has none; PAD must never be EOS).
//
// Id layout of every SentencePiece tokenizer we train:  0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3 <pad>, 4 "\n",
// 5 "\t", then user symbols, byte pieces (with byte fallback) and learned pieces. PAD is never EOS: the
// reward model reads its score at the last real token, which must not be confused with padding.
// encode() adds no BOS/EOS; callers add them explicitly where a format calls for them.
//
// Added tokens (the chat format's role markers) live after the SentencePiece vocabulary, at ids
// spm_size, spm_size + 1, …: no text encodes to them, so a user cannot type a role marker. They
// are stored beside the model as added_tokens.json and travel with every checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rlhf/tokenizer/chat_template.h"

struct RlhfSpm;

namespace rlhf {

class Gpt2Bpe;

class Tokenizer {
public:
    enum class Kind { sentencepiece, gpt2_bpe };

    // `path` is a tokenizer directory or a file in one: tokenizer.model (SentencePiece);
    // vocab.json + merges.txt, encoder.json + vocab.bpe or tokenizer.json (GPT-2 BPE).
    static Tokenizer load(const std::filesystem::path& path);
    // Whether `dir` holds a tokenizer load() reads.
    static bool is_tokenizer_dir(const std::filesystem::path& dir);
    // From the serialized model proto; `source` names where it came from, for error messages.
    static Tokenizer from_model_bytes(std::string model_bytes, const std::string& source);
    // GPT-2 BPE; adds the <|pad|> token. The end of text must be `eos_piece`.
    static Tokenizer from_gpt2_bpe(Gpt2Bpe bpe, const std::string& source,
                                   const std::string& eos_piece = "<|endoftext|>");

    Kind kind() const { return bpe_ ? Kind::gpt2_bpe : Kind::sentencepiece; }

    std::vector<int32_t> encode(std::string_view text) const;
    // A whole document as the tokenizer's post-processor encodes it: with the special tokens a
    // Hugging Face tokenizer.json puts around a text (Llama-3's BOS); the same as encode() otherwise.
    std::vector<int32_t> encode_document(std::string_view text) const;
    // Special ids (BOS, EOS, PAD) and added tokens are dropped; ids outside the vocabulary are an error.
    std::string decode(const std::vector<int32_t>& ids) const;
    std::string piece(int32_t id) const;
    // Id of an exact piece, or -1 if the vocabulary lacks it.
    int32_t piece_to_id(std::string_view piece) const;

    // This tokenizer plus `tokens` appended as added tokens (those already present are kept once).
    Tokenizer with_added_tokens(const std::vector<std::string>& tokens) const;
    // The same from (id, token) pairs as Hugging Face stores them, in id order: ids inside the
    // base vocabulary are skipped, and each other token must land on its id (else an
    // rlhf::Error naming `where`).
    Tokenizer with_added_tokens_at(std::vector<std::pair<int64_t, std::string>> by_id, const std::string& where) const;
    const std::vector<std::string>& added_tokens() const { return added_; }
    // Id of an added token, or -1.
    int32_t added_token_id(std::string_view token) const;

    // The chat format its model speaks (rlhf unless recorded: chat_template.json, or a Hugging
    // Face tokenizer_config.json's template as read by checkpoint/hf_dir).
    const ChatTemplate& chat_template() const { return *chat_template_; }
    Tokenizer with_chat_template(ChatTemplate t) const;
    // Same base vocabulary and same added tokens: ids mean the same thing in both.
    bool same_vocabulary(const Tokenizer& other) const {
        return fingerprint_ == other.fingerprint_ && added_ == other.added_;
    }

    int32_t vocab_size() const { return spm_size_ + static_cast<int32_t>(added_.size()); }
    // The base vocabulary (SentencePiece pieces or BPE entries), before the added tokens.
    int32_t spm_vocab_size() const { return spm_size_; }
    int32_t unk_id() const { return unk_id_; }  // -1 for GPT-2 BPE
    int32_t bos_id() const { return bos_id_; }
    int32_t eos_id() const { return eos_id_; }
    int32_t pad_id() const { return pad_id_; }

    // The serialized SentencePiece model (SentencePiece only), and the fingerprint of the base
    // vocabulary (checked against shards, which hold base ids only, so added tokens do not enter it).
    const std::string& model_bytes() const;
    // The byte-level BPE behind a gpt2_bpe tokenizer (an rlhf::Error for SentencePiece).
    const Gpt2Bpe& bpe() const;
    uint64_t fingerprint() const { return fingerprint_; }
    const std::string& source() const { return source_; }

    // Write <dir>/tokenizer.model (SentencePiece) or <dir>/vocab.json + merges.txt (GPT-2 BPE), a
    // human-readable <dir>/tokenizer.vocab, <dir>/added_tokens.json when there are added tokens, and
    // <dir>/chat_template.json when the chat format is not ours or came from a Hugging Face template.
    void save(const std::filesystem::path& dir) const;
    // Only the base vocabulary's files (tokenizer.model, or vocab.json + merges.txt): what other
    // tools read, who keep added tokens in their own formats (Hugging Face: tokenizer_config.json).
    void save_base_files(const std::filesystem::path& dir) const;

private:
    std::shared_ptr<RlhfSpm> spm_;
    std::shared_ptr<const Gpt2Bpe> bpe_;
    std::shared_ptr<const std::string> model_bytes_;
    std::string source_;
    uint64_t fingerprint_ = 0;
    std::vector<std::string> added_;
    std::shared_ptr<const ChatTemplate> chat_template_ = std::make_shared<const ChatTemplate>();
    int32_t spm_size_ = 0, unk_id_ = -1, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

// File name of the model inside a tokenizer directory.
inline constexpr const char* kTokenizerModelFile = "tokenizer.model";
inline constexpr const char* kAddedTokensFile = "added_tokens.json";
inline constexpr const char* kBpeVocabFile = "vocab.json";   // Hugging Face's names (OpenAI's: encoder.json,
inline constexpr const char* kBpeMergesFile = "merges.txt";  // vocab.bpe; both are read)
inline constexpr const char* kBpeOptionsFile = "bpe.json";  // ours: split, ignore_merges, EOS when not GPT-2's
inline constexpr const char* kChatTemplateFile = "chat_template.json";  // ours: chat_template.h
inline constexpr const char* kGpt2PadToken = "<|pad|>";

}  // namespace rlhf
