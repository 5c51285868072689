// Train a SentencePiece tokenizer on text files:
//   rlhf tokenizer train --input a.txt b.txt --vocab-size 4096 --model-type bpe --out DIR
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

struct TokenizerTrainOptions {
    std::vector<std::filesystem::path> inputs;  // UTF-8 text files (BOM and CRLF are normalised away)
    int vocab_size = 0;            // target size; 0 = "all characters" for char, required otherwise
    std::string model_type = "bpe";  // bpe | unigram | char
    int byte_fallback = -1;        // 1 on, 0 off, -1 = on for bpe/unigram, off for char
    std::vector<std::string> user_symbols;  // extra pieces that are never split (chat markers…)
    int threads = 0;               // 0 = all cores
};

// Trains and returns the tokenizer; throws rlhf::Error for bad options, missing or empty input.
Tokenizer train_tokenizer(const TokenizerTrainOptions& opts);

}  // namespace rlhf
