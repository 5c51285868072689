// GPT-2's pre-tokenisation: the text is cut into pieces that BPE then encodes separately, by the
// regular expression of OpenAI's encoder.py (and tiktoken's "gpt2"):
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// implemented as a scanner over code points rather than a regex engine (none in the standard
// library does \p{L} or look-ahead, and this is the encoder's hot loop). Letters, numbers and
// white space are Unicode's (General_Category L*, N*, and the White_Space property), looked up in
// ICU. Bytes that are not valid UTF-8 count as "other" characters, one byte each.
#pragma once

#include <string_view>
#include <vector>

namespace rlhf {

// The pieces of `text`, in order; together they are exactly `text`.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

}  // namespace rlhf
