#include "rlhf/tokenizer/train.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/runtime.h"
#include "rlhf/tokenizer/spm_loader.h"

namespace rlhf {

namespace {

// SentencePiece trains on "sentences". We cut the text at newlines into chunks of at most
// kMaxSentenceBytes (each keeping its "\n", a piece of its own); a longer line is cut at a UTF-8
// character boundary.
constexpr size_t kMaxSentenceBytes = 4096;

std::vector<std::string_view> split_sentences(std::string_view text) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = std::min(text.size(), start + kMaxSentenceBytes);
        if (end < text.size()) {
            // Search this chunk only: rfind over the whole text rescans everything before it for
            // every chunk of a long line, which made a 50 MB text without newlines quadratic.
            size_t nl = text.substr(start, end - start).rfind('\n');
            if (nl != std::string_view::npos) {
                end = start + nl + 1;
            } else {
                while (end > start + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
            }
        }
        out.push_back(text.substr(start, end - start));
        start = end;
    }
    return out;
}

size_t count_code_points(const std::vector<std::string>& texts) {
    std::unordered_set<uint32_t> seen;
    for (const auto& t : texts) {
        for (size_t i = 0; i < t.size();) {
            auto c = static_cast<unsigned char>(t[i]);
            size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
            uint32_t cp = 0;
            for (size_t k = 0; k < len && i + k < t.size(); ++k) cp = (cp << 8) | static_cast<unsigned char>(t[i + k]);
            seen.insert(cp);
            i += len;
        }
    }
    return seen.size();
}

}  // namespace

Tokenizer train_tokenizer(const TokenizerTrainOptions& opts) {
    const std::string& type = opts.model_type;
    if (type != "bpe" && type != "unigram" && type != "char") {
        throw Error("unknown model type '" + type + "'", "--model-type", "use bpe, unigram or char");
    }
    if (opts.inputs.empty()) throw Error("no input files", "--input", "pass one or more text files");
    if (type != "char" && opts.vocab_size <= 0) {
        throw Error("vocab size is required for " + type, "--vocab-size", "e.g. --vocab-size 4096");
    }
    if (opts.vocab_size < 0 || opts.vocab_size > 1 << 20) {
        throw Error("vocab size " + std::to_string(opts.vocab_size) + " is out of range", "--vocab-size",
                    "use 0 < vocab size <= 1048576");
    }

    std::vector<std::string> texts;
    size_t total_bytes = 0;
    for (const auto& path : opts.inputs) {
        texts.push_back(read_text_file(path));
        total_bytes += texts.back().size();
    }
    if (total_bytes == 0) {
        throw Error("the input files hold no text", opts.inputs.front().string(),
                    "train the tokenizer on a non-empty corpus");
    }

    std::vector<const char*> sentence_ptrs;
    std::vector<size_t> sentence_lens;
    for (const auto& t : texts) {
        for (auto s : split_sentences(t)) {
            sentence_ptrs.push_back(s.data());
            sentence_lens.push_back(s.size());
        }
    }

    const bool byte_fallback = opts.byte_fallback < 0 ? type != "char" : opts.byte_fallback == 1;
    // For char, "0" means the whole alphabet: ask for more than can exist and let
    // hard_vocab_limit=false keep what the corpus has.
    const size_t alphabet = count_code_points(texts);
    const int vocab = opts.vocab_size > 0 ? opts.vocab_size : static_cast<int>(alphabet + 6 + 256);

    // "\n" and "\t" are pieces of their own: the trainer never learns a tab (SentencePiece drops
    // it from training sentences), and a char model without byte fallback would map it to <unk>.
    std::string user_symbols = "\n,\t";
    for (const auto& s : opts.user_symbols) {
        if (s.find(',') != std::string::npos || s.empty()) {
            throw Error("user symbol '" + s + "' is empty or contains a comma", "--user-symbols", "");
        }
        user_symbols += "," + s;
    }

    const int threads = opts.threads > 0 ? opts.threads : available_cores();
    std::vector<std::pair<std::string, std::string>> kw = {
        {"model_type", type},
        {"vocab_size", std::to_string(vocab)},
        // Lossless text: no Unicode normalisation, whitespace kept as is, no dummy prefix (a chunk
        // boundary must not invent a space), "\n" a piece of its own.
        {"normalization_rule_name", "identity"},
        {"remove_extra_whitespaces", "false"},
        {"add_dummy_prefix", "false"},
        {"allow_whitespace_only_pieces", "true"},
        {"split_digits", "true"},
        {"user_defined_symbols", user_symbols},
        {"byte_fallback", byte_fallback ? "true" : "false"},
        {"character_coverage", "1.0"},
        {"hard_vocab_limit", "false"},
        {"max_sentence_length", std::to_string(kMaxSentenceBytes * 4)},
        {"input_sentence_size", "2000000"},  // sample at most 2M chunks from a huge corpus
        {"shuffle_input_sentence", "true"},
        {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "3"},
        {"num_threads", std::to_string(threads)},
        {"minloglevel", "2"},  // SentencePiece's own INFO chatter off
    };
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : kw) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }

    spdlog::info("training {} tokenizer on {} bytes ({} chunks), target vocab {}", type, total_bytes,
                 sentence_ptrs.size(), opts.vocab_size > 0 ? std::to_string(vocab) : "all characters");
    const SpmApi& api = spm_api();
    char err[1024] = {0};
    char* model = nullptr;
    size_t model_len = 0;
    int rc = api.train(keys.data(), values.data(), static_cast<int>(keys.size()), sentence_ptrs.data(),
                       sentence_lens.data(), sentence_ptrs.size(), &model, &model_len, err, sizeof(err));
    if (rc != 0) {
        // The usual failure is too few pieces for the corpus's characters (too many is not an
        // error: hard_vocab_limit is off), so the hint must ask for a larger size, not a smaller one.
        const std::string message = err;
        const bool too_small = message.find("smaller than required_chars") != std::string::npos;
        throw Error("SentencePiece training failed: " + message, opts.inputs.front().string(),
                    too_small ? "the corpus has more distinct characters than that: use a larger --vocab-size "
                                "(tokenizer.vocab_size), or model type char with size 0 (all characters)"
                              : "check the input text and --vocab-size");
    }
    std::string bytes(model, model_len);
    api.free(model);
    Tokenizer tok = Tokenizer::from_model_bytes(std::move(bytes), "trained tokenizer");
    spdlog::info("tokenizer trained: {} pieces (alphabet {} characters, byte fallback {})", tok.vocab_size(),
                 alphabet, byte_fallback ? "on" : "off");
    return tok;
}

}  // namespace rlhf
