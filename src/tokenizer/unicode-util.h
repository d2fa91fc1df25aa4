// UTF-8 decoding and Unicode character classes for the tokenizers.
//
// Tokenizers must accept any byte string (dataset text is not guaranteed to
// be valid UTF-8), so decoding never fails: a malformed sequence yields one
// byte at a time as kInvalidCodepoint, which callers treat as "other" (not a
// letter, number or space) and whose raw byte still round-trips through the
// byte-level vocabularies.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace memskew::unicode {

// Returned by decode_utf8 for a byte that does not start a valid sequence.
inline constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;

// Decodes the code point starting at text[pos]; sets n_bytes to its length
// (1 for an invalid byte). Rejects overlong forms, surrogates and values
// above U+10FFFF, as a strict decoder (and Rust's String) would.
uint32_t decode_utf8(std::string_view text, size_t pos, size_t& n_bytes);

// Appends the UTF-8 encoding of `cp` (must be a valid scalar value).
void append_utf8(std::string& out, uint32_t cp);

// Length of the UTF-8 sequence a lead byte announces, by its high nibble, as
// llama.cpp's unicode_len_utf8 does (continuation bytes count as 1). Used by
// the SentencePiece path, which splits exactly like llama.cpp.
inline size_t utf8_len_from_lead(uint8_t lead) {
    static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLengths[lead >> 4];
}

// Character classes the pre-tokenizer regexes ask about.
enum CharClass : uint8_t {
    kClassOther = 0,   // anything else, including invalid bytes and unassigned code points
    kClassLetter = 1,  // \p{L}
    kClassNumber = 2,  // \p{N}
    kClassSpace = 3,   // \s (Unicode White_Space)
};

// Classifies a code point via ICU (with a table for ASCII, the common case).
CharClass char_class(uint32_t cp);
// Unicode general category group "P" (punctuation), for \p{P}.
bool is_punctuation(uint32_t cp);

// GPT-2's bytes_to_unicode: each byte maps to one printable code point, so
// byte-level BPE vocabularies can store arbitrary bytes as text.
struct ByteUnicodeTable {
    std::array<uint32_t, 256> byte_to_cp{};
    std::array<std::string, 256> byte_to_utf8{};  // the same, UTF-8 encoded
    // Inverse map over the code point range the table uses (< 324); -1 if none.
    std::array<int16_t, 324> cp_to_byte{};
};
const ByteUnicodeTable& byte_unicode_table();

}  // namespace memskew::unicode
