#include "tokenizer/unicode-util.h"

#include <unicode/uchar.h>

namespace memskew::unicode {

uint32_t decode_utf8(std::string_view text, size_t pos, size_t& n_bytes) {
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    const uint8_t b0 = s[pos];
    n_bytes = 1;
    if (b0 < 0x80) return b0;
    size_t len;
    uint32_t cp;
    uint32_t min_cp;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min_cp = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min_cp = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min_cp = 0x10000;
    } else {
        return kInvalidCodepoint;  // continuation byte or 0xF8..0xFF
    }
    if (pos + len > n) return kInvalidCodepoint;
    for (size_t k = 1; k < len; ++k) {
        const uint8_t b = s[pos + k];
        if ((b & 0xC0) != 0x80) return kInvalidCodepoint;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidCodepoint;
    n_bytes = len;
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

namespace {

CharClass icu_class(uint32_t cp) {
    const auto c = static_cast<UChar32>(cp);
    // White_Space first: it is what \s means in the Unicode-aware engines
    // (Oniguruma, ICU, Python's regex) that the published patterns target.
    if (u_hasBinaryProperty(c, UCHAR_WHITE_SPACE)) return kClassSpace;
    switch (u_charType(c)) {
        case U_UPPERCASE_LETTER:
        case U_LOWERCASE_LETTER:
        case U_TITLECASE_LETTER:
        case U_MODIFIER_LETTER:
        case U_OTHER_LETTER:
            return kClassLetter;
        case U_DECIMAL_DIGIT_NUMBER:
        case U_LETTER_NUMBER:
        case U_OTHER_NUMBER:
            return kClassNumber;
        default:
            return kClassOther;
    }
}

struct AsciiClasses {
    std::array<CharClass, 128> cls{};
    AsciiClasses() {
        for (uint32_t c = 0; c < 128; ++c) cls[c] = icu_class(c);
    }
};

}  // namespace

CharClass char_class(uint32_t cp) {
    static const AsciiClasses ascii;
    if (cp < 128) return ascii.cls[cp];
    if (cp == kInvalidCodepoint) return kClassOther;
    return icu_class(cp);
}

bool is_punctuation(uint32_t cp) {
    if (cp == kInvalidCodepoint) return false;
    return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_P_MASK) != 0;
}

const ByteUnicodeTable& byte_unicode_table() {
    static const ByteUnicodeTable table = [] {
        ByteUnicodeTable t;
        t.cp_to_byte.fill(-1);
        // Printable Latin-1 bytes map to themselves; the rest are shifted to
        // U+0100 onwards in byte order (GPT-2's encoder.py).
        auto keeps_itself = [](uint32_t b) {
            return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        };
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const uint32_t cp = keeps_itself(b) ? b : next++;
            t.byte_to_cp[b] = cp;
            append_utf8(t.byte_to_utf8[b], cp);
            t.cp_to_byte[cp] = static_cast<int16_t>(b);
        }
        return t;
    }();
    return table;
}

}  // namespace memskew::unicode
