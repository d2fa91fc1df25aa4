#include "tokenizer/pre-tokenizer.h"

#include <unicode/regex.h>
#include <unicode/utypes.h>

#include <cstdint>

#include "memskew/error.h"
#include "tokenizer/unicode-util.h"

namespace memskew {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<std::string> PreTokenizer::split_to_strings(std::string_view text) const {
    std::vector<std::string_view> views;
    split(text, views);
    return std::vector<std::string>(views.begin(), views.end());
}

namespace {

// One decoded character: code point, class and byte length (0 past the end).
struct Char {
    uint32_t cp;
    uint8_t cls;
    uint8_t len;
};

// Past the end: a class that no alternative consumes, so scans stop there.
constexpr uint8_t kClassEnd = 0xFF;

inline Char char_at(std::string_view text, size_t pos) {
    if (pos >= text.size()) return {unicode::kInvalidCodepoint, kClassEnd, 0};
    size_t n = 1;
    const uint32_t cp = unicode::decode_utf8(text, pos, n);
    return {cp, unicode::char_class(cp), static_cast<uint8_t>(n)};
}

// Scans the bytes directly, decoding as it goes, so no per-call buffers grow
// with the input (a document can be hundreds of MB).
class Gpt2PreTokenizer final : public PreTokenizer {
public:
    void split(std::string_view text, std::vector<std::string_view>& pieces) const override {
        const size_t n = text.size();
        auto emit = [&](size_t begin, size_t end) { pieces.emplace_back(text.data() + begin, end - begin); };

        size_t pos = 0;
        while (pos < n) {
            const Char c = char_at(text, pos);
            // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2). The
            // apostrophe is one byte, and the letters checked are ASCII.
            if (c.cp == '\'') {
                const Char c1 = char_at(text, pos + 1);
                if (c1.cp == 's' || c1.cp == 't' || c1.cp == 'm' || c1.cp == 'd') {
                    emit(pos, pos + 2);
                    pos += 2;
                    continue;
                }
                if (c1.cp == 'r' || c1.cp == 'v' || c1.cp == 'l') {
                    const Char c2 = char_at(text, pos + 2);
                    if ((c1.cp == 'r' && c2.cp == 'e') || (c1.cp == 'v' && c2.cp == 'e') ||
                        (c1.cp == 'l' && c2.cp == 'l')) {
                        emit(pos, pos + 3);
                        pos += 3;
                        continue;
                    }
                }
            }
            // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: an optional ASCII space,
            // then a run of one class.
            const Char body = c.cp == ' ' ? char_at(text, pos + 1) : c;
            if (body.cls == unicode::kClassLetter || body.cls == unicode::kClassNumber ||
                body.cls == unicode::kClassOther) {
                size_t end = (c.cp == ' ' ? pos + 1 : pos) + body.len;
                for (Char x = char_at(text, end); x.cls == body.cls; x = char_at(text, end)) end += x.len;
                emit(pos, end);
                pos = end;
                continue;
            }
            // Whitespace (a lone space before whitespace or the end lands here
            // too, as in the regex). `\s+(?!\S)` backtracks one character when
            // a non-space follows, leaving it to prefix the next word; `\s+`
            // takes a single whitespace character or a run at the end.
            size_t end = pos, last_start = pos, n_spaces = 0;
            for (Char x = char_at(text, end); x.cls == unicode::kClassSpace; x = char_at(text, end)) {
                last_start = end;
                end += x.len;
                ++n_spaces;
            }
            if (end < n && n_spaces > 1) end = last_start;
            emit(pos, end);
            pos = end;
        }
    }
};

class IcuRegexPreTokenizer final : public PreTokenizer {
public:
    explicit IcuRegexPreTokenizer(const std::string& pattern) : pattern_text_(pattern) {
        UErrorCode status = U_ZERO_ERROR;
        UParseError parse_error{};
        pattern_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern), 0, parse_error,
                                                  status));
        if (U_FAILURE(status) || !pattern_) {
            throw FormatError("invalid pre-tokenizer regex '" + pattern + "': " + u_errorName(status) +
                                  " at offset " + std::to_string(parse_error.offset),
                              "the pattern must be valid ICU regex syntax");
        }
    }

    void split(std::string_view text, std::vector<std::string_view>& pieces) const override {
        if (text.empty()) return;
        // ICU works on UTF-16. Convert code point by code point so that every
        // UTF-16 index maps back to a byte offset; invalid bytes become U+FFFD
        // standing for exactly one byte, so they still round-trip.
        icu::UnicodeString u;
        std::vector<uint32_t> u16_to_byte;
        u16_to_byte.reserve(text.size() + 1);
        for (size_t pos = 0; pos < text.size();) {
            size_t n = 1;
            uint32_t c = unicode::decode_utf8(text, pos, n);
            if (c == unicode::kInvalidCodepoint) c = 0xFFFD;
            const int32_t before = u.length();
            u.append(static_cast<UChar32>(c));
            for (int32_t k = before; k < u.length(); ++k) u16_to_byte.push_back(static_cast<uint32_t>(pos));
            pos += n;
        }
        u16_to_byte.push_back(static_cast<uint32_t>(text.size()));

        UErrorCode status = U_ZERO_ERROR;
        std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(u, status));
        if (U_FAILURE(status)) {
            throw FormatError("cannot run pre-tokenizer regex '" + pattern_text_ + "': " + u_errorName(status));
        }
        auto emit = [&](int32_t b, int32_t e) {
            const uint32_t bb = u16_to_byte[b], be = u16_to_byte[e];
            if (be > bb) pieces.emplace_back(text.data() + bb, be - bb);
        };
        int32_t last = 0;
        while (m->find(status) && U_SUCCESS(status)) {
            const int32_t b = m->start(status);
            const int32_t e = m->end(status);
            if (e == b) continue;  // empty matches split nothing
            emit(last, b);
            emit(b, e);
            last = e;
        }
        if (U_FAILURE(status)) {
            throw FormatError("pre-tokenizer regex '" + pattern_text_ + "' failed: " + u_errorName(status),
                              "the pattern may backtrack catastrophically on this input");
        }
        emit(last, u.length());
    }

private:
    std::string pattern_text_;
    std::unique_ptr<icu::RegexPattern> pattern_;  // immutable after compile, so shareable across threads
};

class SequencePreTokenizer final : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> stages)
        : stages_(std::move(stages)) {}

    void split(std::string_view text, std::vector<std::string_view>& pieces) const override {
        if (stages_.empty()) {
            if (!text.empty()) pieces.push_back(text);
            return;
        }
        std::vector<std::string_view> current{text}, next;
        for (const auto& stage : stages_) {
            next.clear();
            for (std::string_view piece : current) stage->split(piece, next);
            current.swap(next);
        }
        pieces.insert(pieces.end(), current.begin(), current.end());
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer() { return std::make_unique<Gpt2PreTokenizer>(); }

std::unique_ptr<PreTokenizer> make_regex_pre_tokenizer(const std::string& pattern) {
    return std::make_unique<IcuRegexPreTokenizer>(pattern);
}

std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> stages) {
    return std::make_unique<SequencePreTokenizer>(std::move(stages));
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const std::string& name) {
    // llama.cpp's converter writes "gpt-2" for GPT-2 itself and "default" when
    // it does not recognise the tokenizer; both mean the GPT-2 regex here.
    if (name == "default" || name == "gpt-2" || name.empty()) return make_gpt2_pre_tokenizer();
    throw FormatError("unsupported pre-tokenizer '" + name + "' (tokenizer.ggml.pre)",
                      "supported: default, gpt-2");
}

}  // namespace memskew
