#include "rlhf/tokenizer/gpt2_pretokenize.h"

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <cstdint>

namespace rlhf {

namespace {

enum class CharClass : uint8_t { letter, number, space, other };

struct CodePoint {
    uint32_t begin, end;  // byte range in the text
    CharClass cls;
};

CharClass classify(UChar32 c) {
    if (c < 0) return CharClass::other;  // not valid UTF-8
    if (c < 128) {                       // ASCII without a table lookup
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::letter;
        if (c >= '0' && c <= '9') return CharClass::number;
        if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::space;
        return CharClass::other;
    }
    if (u_hasBinaryProperty(c, UCHAR_WHITE_SPACE)) return CharClass::space;
    switch (u_charType(c)) {
        case U_UPPERCASE_LETTER: case U_LOWERCASE_LETTER: case U_TITLECASE_LETTER: case U_MODIFIER_LETTER:
        case U_OTHER_LETTER:
            return CharClass::letter;
        case U_DECIMAL_DIGIT_NUMBER: case U_LETTER_NUMBER: case U_OTHER_NUMBER:
            return CharClass::number;
        default:
            return CharClass::other;
    }
}

// 's 't 're 've 'm 'll 'd at `at` (case-sensitive, as GPT-2's pattern): its length, or 0.
size_t contraction_at(std::string_view text, size_t at) {
    if (text[at] != '\'' || at + 1 >= text.size()) return 0;
    const char a = text[at + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (at + 2 < text.size()) {
        const char b = text[at + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

}  // namespace

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
    std::vector<CodePoint> cps;
    cps.reserve(text.size());
    const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
    const auto length = static_cast<int32_t>(text.size());
    for (int32_t i = 0; i < length;) {
        const int32_t begin = i;
        UChar32 c;
        U8_NEXT(bytes, i, length, c);  // advances i; c < 0 for an ill-formed sequence
        if (c < 0) i = begin + 1;       // one byte per invalid unit, so nothing is dropped or merged
        cps.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(i), classify(c)});
    }
    std::vector<std::string_view> pieces;
    const size_t n = cps.size();
    auto emit = [&](size_t from, size_t to) {  // code points [from, to)
        pieces.push_back(text.substr(cps[from].begin, cps[to - 1].end - cps[from].begin));
    };
    auto run_end = [&](size_t from, CharClass cls) {
        size_t j = from;
        while (j < n && cps[j].cls == cls) ++j;
        return j;
    };
    size_t i = 0;
    while (i < n) {
        // 's 't 're 've 'm 'll 'd (all ASCII: one code point per byte)
        if (const size_t k = contraction_at(text, cps[i].begin); k > 0) {
            emit(i, i + k);
            i += k;
            continue;
        }
        // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a space joins the run that follows it.
        const bool space_prefix = text[cps[i].begin] == ' ' && i + 1 < n && cps[i + 1].cls != CharClass::space;
        if (space_prefix) {
            const size_t end = run_end(i + 1, cps[i + 1].cls);
            emit(i, end);
            i = end;
            continue;
        }
        if (cps[i].cls != CharClass::space) {
            const size_t end = run_end(i, cps[i].cls);
            emit(i, end);
            i = end;
            continue;
        }
        // "\s+(?!\S)" then "\s+": a run of white space gives its last character to what follows
        // (so " word" keeps its space), unless the run is one character or ends the text.
        const size_t end = run_end(i, CharClass::space);
        const size_t take = (end < n && end - i >= 2) ? end - 1 : end;
        emit(i, take);
        i = take;
    }
    return pieces;
}

}  // namespace rlhf
