#include "tokenizer/hf-components.h"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <unordered_map>

#include "memskew/error.h"
#include "tokenizer/unicode-util.h"

namespace memskew::detail::hf {

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

// One character of a piece: code point and byte length. In the mapped domain
// every byte is one character (its GPT-2 byte-to-unicode code point).
struct Char {
    uint32_t cp;
    size_t len;
};

inline Char char_at(std::string_view s, size_t pos, bool mapped) {
    if (mapped) return {unicode::byte_unicode_table().byte_to_cp[static_cast<uint8_t>(s[pos])], 1};
    size_t n = 1;
    const uint32_t cp = unicode::decode_utf8(s, pos, n);
    return {cp, n};
}

// Rust's char::is_whitespace is the White_Space property, like \s here.
inline bool is_whitespace(uint32_t cp) { return unicode::char_class(cp) == unicode::kClassSpace; }

inline bool is_word_char(uint32_t cp) {
    const auto cls = unicode::char_class(cp);
    return cls == unicode::kClassLetter || cls == unicode::kClassNumber || cp == '_';
}

// The code point that ends `s` (walking back over UTF-8 continuation bytes).
uint32_t last_char(std::string_view s) {
    if (s.empty()) return unicode::kInvalidCodepoint;
    size_t start = s.size() - 1;
    for (size_t k = 0; k < 3 && start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80; ++k) --start;
    size_t n = 1;
    const uint32_t cp = unicode::decode_utf8(s, start, n);
    return start + n == s.size() ? cp : unicode::kInvalidCodepoint;
}

bool is_ascii(std::string_view s) {
    for (char c : s) {
        if (static_cast<uint8_t>(c) >= 0x80) return false;
    }
    return true;
}

// Calls fn(run, valid) for the maximal runs of valid / invalid UTF-8 in s, so
// that ICU only ever sees valid text and invalid bytes pass through verbatim.
template <typename Fn>
void for_each_utf8_run(std::string_view s, Fn&& fn) {
    size_t run_start = 0;
    bool run_valid = true;
    for (size_t pos = 0; pos < s.size();) {
        size_t n = 1;
        const bool valid = unicode::decode_utf8(s, pos, n) != unicode::kInvalidCodepoint;
        if (valid != run_valid && pos > run_start) {
            fn(s.substr(run_start, pos - run_start), run_valid);
            run_start = pos;
        }
        run_valid = valid;
        pos += n;
    }
    if (run_start < s.size()) fn(s.substr(run_start), run_valid);
}

using Spans = std::vector<std::pair<uint32_t, uint32_t>>;  // [start, end) byte offsets of matches

// HF's NormalizedString::split: the piece is cut into alternating non-matches
// and matches, then `behavior` decides what becomes of the matches.
void apply_behavior(std::string_view piece, const Spans& spans, SplitBehavior behavior, bool invert,
                    std::vector<std::string_view>& out) {
    struct Part {
        uint32_t b, e;
        bool match;
    };
    thread_local std::vector<Part> parts;
    parts.clear();
    uint32_t prev = 0;
    for (const auto& [b, e] : spans) {
        if (b > prev) parts.push_back({prev, b, invert});
        parts.push_back({b, e, !invert});
        prev = e;
    }
    if (prev < piece.size()) parts.push_back({prev, static_cast<uint32_t>(piece.size()), invert});

    thread_local std::vector<Part> merged;
    merged.clear();
    switch (behavior) {
        case SplitBehavior::kIsolated:
        case SplitBehavior::kRemoved:
            merged = parts;
            break;
        case SplitBehavior::kContiguous: {
            bool previous_match = false;
            for (const Part& p : parts) {
                if (p.match == previous_match && !merged.empty()) {
                    merged.back().e = p.e;
                } else {
                    merged.push_back(p);
                }
                previous_match = p.match;
            }
            break;
        }
        case SplitBehavior::kMergedWithPrevious: {
            bool previous_match = false;
            for (const Part& p : parts) {
                if (p.match && !previous_match && !merged.empty()) {
                    merged.back().e = p.e;
                } else {
                    merged.push_back(p);
                }
                previous_match = p.match;
            }
            break;
        }
        case SplitBehavior::kMergedWithNext: {
            bool previous_match = false;
            for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
                if (it->match && !previous_match && !merged.empty()) {
                    merged.back().b = it->b;
                } else {
                    merged.push_back(*it);
                }
                previous_match = it->match;
            }
            std::reverse(merged.begin(), merged.end());
            break;
        }
    }
    for (const Part& p : merged) {
        if (behavior == SplitBehavior::kRemoved && p.match) continue;
        if (p.e > p.b) out.push_back(piece.substr(p.b, p.e - p.b));
    }
}

}  // namespace

// ---------------------------------------------------------------- Oniguruma -> ICU

// ICU runs \p{..} (general categories, scripts, binary properties) and \d as
// Oniguruma does, but some shorthand classes mean other things there:
// Oniguruma's \w is Alphabetic + Mark + Nd + Pc (ICU adds U+200C/U+200D and,
// outside brackets, lacks the Latin-1 extras below), its \h is a hex digit
// (ICU: horizontal space), and its \s is White_Space (ICU documents
// [\t\n\f\r\p{Z}], which lacks U+000B and U+0085, though ICU 72 matches them;
// spelled out so it never depends on the ICU version).

// Word characters in Oniguruma's Unicode tables: Alphabetic, Mark,
// Decimal_Number, Connector_Punctuation (add_posix_props() in Oniguruma's
// make_unicode_property_data.py).
constexpr const char* kOnigWordSet = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc})";
// Outside brackets Oniguruma tests code points below 256 against its Latin-1
// ctype table (EncUNICODE_ISO_8859_1_CtypeTable in unicode.c), which also
// marks ¹ ² ³ ¼ ½ ¾ (category No) as word characters.
constexpr const char* kOnigWordLatin1Extras = R"(\u00B2\u00B3\u00B9\u00BC-\u00BE)";

std::string oniguruma_to_icu(const std::string& pattern) {
    std::string out;
    out.reserve(pattern.size() + 32);
    int depth = 0;  // bracket nesting: > 0 inside a character class
    const size_t n = pattern.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            const char e = pattern[++i];
            switch (e) {
                case 's': out += R"(\p{White_Space})"; break;
                case 'S': out += R"(\P{White_Space})"; break;
                case 'h': out += R"(\p{ASCII_Hex_Digit})"; break;
                case 'H': out += R"(\P{ASCII_Hex_Digit})"; break;
                case 'w':
                    if (depth > 0) out += kOnigWordSet;
                    else out += std::string("[") + kOnigWordSet + kOnigWordLatin1Extras + "]";
                    break;
                case 'W':
                    out += std::string("[^") + kOnigWordSet + (depth > 0 ? "" : kOnigWordLatin1Extras) + "]";
                    break;
                case 'Q': {  // \Q...\E: literal text, copied as is
                    const size_t end = pattern.find("\\E", i + 1);
                    const size_t stop = end == std::string::npos ? n : end + 2;
                    out.append(pattern, i - 1, stop - (i - 1));
                    i = stop - 1;
                    break;
                }
                default:  // any other escape (\p{..}, \d, \x{..}, \n, \\, ...): ICU reads it as Oniguruma does
                    out.push_back('\\');
                    out.push_back(e);
            }
            continue;
        }
        if (c == '[') {
            if (depth > 0 && i + 1 < n && pattern[i + 1] == ':') {  // POSIX bracket [:alpha:] inside a class
                const size_t end = pattern.find(":]", i + 2);
                if (end != std::string::npos) {
                    out.append(pattern, i, end + 2 - i);
                    i = end + 1;
                    continue;
                }
            }
            ++depth;
            out.push_back(c);
            // A ']' first in a class (after an optional '^') is a literal.
            if (i + 1 < n && pattern[i + 1] == '^') out.push_back(pattern[++i]);
            if (i + 1 < n && pattern[i + 1] == ']') {
                out += "\\]";
                ++i;
            }
            continue;
        }
        if (c == ']' && depth > 0) --depth;
        out.push_back(c);
    }
    return out;
}

namespace {

// ---------------------------------------------------------------- ICU regex

// Compiled once; each thread keeps its own matcher per pattern (ICU matchers
// are not shareable, and creating one per piece would dominate the cost).
class IcuRegex {
public:
    explicit IcuRegex(const std::string& pattern) : text_(pattern), key_(next_key()) {
        UErrorCode status = U_ZERO_ERROR;
        UParseError parse_error{};
        const std::string icu_pattern = oniguruma_to_icu(pattern);
        pattern_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(icu_pattern), 0, parse_error, status));
        if (U_FAILURE(status) || !pattern_) {
            // The offset counts UTF-16 units of the pattern ICU compiled.
            throw FormatError("invalid regex '" + pattern + "': " + u_errorName(status) + " at offset " +
                                  std::to_string(parse_error.offset) +
                                  (icu_pattern == pattern ? std::string() : " of its ICU form '" + icu_pattern + "'"),
                              "the pattern must be valid ICU (Oniguruma-like) regex syntax");
        }
    }

    // Appends the non-empty matches in `s` as byte spans.
    void find(std::string_view s, bool mapped, Spans& spans) const {
        thread_local icu::UnicodeString u;
        thread_local std::vector<uint32_t> u16_to_byte;
        u.remove();
        u16_to_byte.clear();
        if (mapped) {
            // Mapped characters are all in the BMP: UTF-16 index == byte offset.
            const auto& table = unicode::byte_unicode_table();
            for (char c : s) u.append(static_cast<UChar>(table.byte_to_cp[static_cast<uint8_t>(c)]));
        } else {
            for (size_t pos = 0; pos < s.size();) {
                size_t n = 1;
                uint32_t c = unicode::decode_utf8(s, pos, n);
                if (c == unicode::kInvalidCodepoint) c = 0xFFFD;  // stands for exactly one byte
                const int32_t before = u.length();
                u.append(static_cast<UChar32>(c));
                for (int32_t k = before; k < u.length(); ++k) u16_to_byte.push_back(static_cast<uint32_t>(pos));
                pos += n;
            }
            u16_to_byte.push_back(static_cast<uint32_t>(s.size()));
        }
        auto to_byte = [&](int32_t i) { return mapped ? static_cast<uint32_t>(i) : u16_to_byte[static_cast<size_t>(i)]; };

        thread_local std::unordered_map<uint64_t, std::unique_ptr<icu::RegexMatcher>> matchers;
        UErrorCode status = U_ZERO_ERROR;
        auto& m = matchers[key_];
        if (!m) m.reset(pattern_->matcher(status));
        if (U_FAILURE(status) || !m) throw FormatError("cannot run regex '" + text_ + "': " + u_errorName(status));
        m->reset(u);
        while (m->find(status) && U_SUCCESS(status)) {
            const int32_t b = m->start(status), e = m->end(status);
            if (e > b) spans.emplace_back(to_byte(b), to_byte(e));
        }
        if (U_FAILURE(status)) {
            throw FormatError("regex '" + text_ + "' failed: " + u_errorName(status),
                              "the pattern may backtrack catastrophically on this input");
        }
        m->reset(icu::UnicodeString());  // drop the reference to the thread_local text
    }

private:
    static uint64_t next_key() {
        static std::atomic<uint64_t> counter{0};
        return counter++;
    }
    std::string text_;
    uint64_t key_;  // not the address: a later regex could reuse it while a thread still caches the old matcher
    std::unique_ptr<icu::RegexPattern> pattern_;
};

void find_literal(std::string_view s, std::string_view literal, Spans& spans) {
    if (literal.empty()) return;
    for (size_t pos = s.find(literal); pos != std::string_view::npos; pos = s.find(literal, pos + literal.size())) {
        spans.emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + literal.size()));
    }
}

// ---------------------------------------------------------------- split stages

// Runs `split_one` on every piece.
template <typename Fn>
void for_each_piece(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch, Fn&& split_one) {
    scratch.clear();
    for (std::string_view p : pieces) split_one(p, scratch);
    pieces.swap(scratch);
}

// ---------------------------------------------------------------- Llama-3 / Qwen2 splitter

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// hand-coded like the GPT-2 splitter: the alternatives are tried in order at
// each position, with the regex engine's backtracking worked out per case.
class Llama3PreTokenizer final : public PreTokenizer {
public:
    explicit Llama3PreTokenizer(int max_digits) : max_digits_(max_digits) {}

    void split(std::string_view text, std::vector<std::string_view>& pieces) const override {
        const size_t n = text.size();
        struct C {
            uint32_t cp;
            uint8_t cls;
            uint8_t len;
        };
        auto at = [&](size_t pos) -> C {
            if (pos >= n) return {unicode::kInvalidCodepoint, 0xFF, 0};
            size_t k = 1;
            const uint32_t cp = unicode::decode_utf8(text, pos, k);
            return {cp, unicode::char_class(cp), static_cast<uint8_t>(k)};
        };
        auto is_newline = [](uint32_t cp) { return cp == '\r' || cp == '\n'; };
        auto lower = [](uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : (cp == 0x17F ? uint32_t{'s'} : cp); };
        auto letters_end = [&](size_t pos) {
            for (C x = at(pos); x.cls == unicode::kClassLetter; x = at(pos)) pos += x.len;
            return pos;
        };
        size_t pos = 0;
        while (pos < n) {
            const C c = at(pos);
            size_t end = 0;
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if (c.cp == '\'') {
                const C c1 = at(pos + 1);
                const uint32_t l1 = lower(c1.cp);
                if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd') {
                    end = pos + 1 + c1.len;
                } else if (l1 == 'r' || l1 == 'v' || l1 == 'l') {
                    const uint32_t l2 = lower(at(pos + 1 + c1.len).cp);
                    if ((l1 != 'l' && l2 == 'e') || (l1 == 'l' && l2 == 'l')) end = pos + 2 + c1.len;
                }
            }
            if (end == 0) {
                if (c.cls == unicode::kClassLetter) {
                    end = letters_end(pos);  // \p{L}+
                } else if (c.cls != unicode::kClassNumber && !is_newline(c.cp) && at(pos + c.len).cls == unicode::kClassLetter) {
                    end = letters_end(pos + c.len);  // [^\r\n\p{L}\p{N}]\p{L}+
                } else if (c.cls == unicode::kClassNumber) {
                    end = pos;  // \p{N}{1,max}
                    for (int k = 0; k < max_digits_; ++k) {
                        const C x = at(end);
                        if (x.cls != unicode::kClassNumber) break;
                        end += x.len;
                    }
                } else {
                    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                    const size_t body = c.cp == ' ' ? pos + 1 : pos;
                    if (at(body).cls == unicode::kClassOther) {
                        end = body;
                        for (C x = at(end); x.cls == unicode::kClassOther; x = at(end)) end += x.len;
                        for (C x = at(end); is_newline(x.cp); x = at(end)) end += x.len;
                    } else {
                        // Whitespace: `\s*[\r\n]+` ends after the run's last newline;
                        // else `\s+(?!\S)` leaves the last character to the next
                        // piece when something follows; else `\s+` takes one.
                        size_t run_end = pos, last_start = pos, after_newline = 0, n_spaces = 0;
                        for (C x = at(run_end); x.cls == unicode::kClassSpace; x = at(run_end)) {
                            last_start = run_end;
                            run_end += x.len;
                            if (is_newline(x.cp)) after_newline = run_end;
                            ++n_spaces;
                        }
                        if (after_newline > 0) {
                            end = after_newline;
                        } else if (run_end >= n || n_spaces == 1) {
                            end = run_end;
                        } else {
                            end = last_start;
                        }
                    }
                }
            }
            pieces.emplace_back(text.data() + pos, end - pos);
            pos = end;
        }
    }

private:
    int max_digits_;
};

class RegexSplitStage final : public PreTokenizerStage {
public:
    RegexSplitStage(const std::string& pattern, SplitBehavior behavior, bool invert)
        : behavior_(behavior), invert_(invert), regex_(pattern) {
        // The GPT-2 regex matches every character, so with Isolated its
        // matches are exactly the hand-coded splitter's pieces.
        if (pattern == kGpt2Pattern && behavior == SplitBehavior::kIsolated && !invert) {
            fast_ = make_gpt2_pre_tokenizer();
        } else if (pattern == kLlama3Pattern && behavior == SplitBehavior::kIsolated && !invert) {
            fast_ = make_llama3_pre_tokenizer(3);
        } else if (pattern == kQwen2Pattern && behavior == SplitBehavior::kIsolated && !invert) {
            fast_ = make_llama3_pre_tokenizer(1);
        }
        three_digits_ = pattern == "[0-9][0-9][0-9]";
    }
    void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
             PreTokenizeState& state) const override {
        if (fast_ && !state.mapped) {
            for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) { fast_->split(p, out); });
            return;
        }
        for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) {
            thread_local Spans spans;
            spans.clear();
            if (three_digits_) {
                find_three_digits(p, spans);
            } else {
                regex_.find(p, state.mapped, spans);
            }
            apply_behavior(p, spans, behavior_, invert_, out);
        });
    }

private:
    // Falcon's "[0-9][0-9][0-9]": non-overlapping runs of three ASCII digits,
    // leftmost first (the same bytes in the raw and mapped domains). A
    // byte scan instead of an ICU call per piece.
    static void find_three_digits(std::string_view p, Spans& spans) {
        auto digit = [&](size_t i) { return p[i] >= '0' && p[i] <= '9'; };
        for (size_t i = 0; i + 2 < p.size();) {
            if (digit(i) && digit(i + 1) && digit(i + 2)) {
                spans.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(i + 3));
                i += 3;
            } else {
                ++i;
            }
        }
    }

    SplitBehavior behavior_;
    bool invert_;
    IcuRegex regex_;
    std::unique_ptr<PreTokenizer> fast_;
    bool three_digits_ = false;
};

class StringSplitStage final : public PreTokenizerStage {
public:
    StringSplitStage(std::string literal, SplitBehavior behavior, bool invert)
        : literal_(std::move(literal)), behavior_(behavior), invert_(invert) {}
    void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
             PreTokenizeState& state) const override {
        // In the mapped domain the literal must be compared with mapped text:
        // map it back to the bytes it stands for (if it can be).
        std::string_view literal = literal_;
        std::string unmapped;
        if (state.mapped) {
            unmapped = byte_level_token_bytes(literal_);
            literal = unmapped;
        }
        for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) {
            thread_local Spans spans;
            spans.clear();
            find_literal(p, literal, spans);
            apply_behavior(p, spans, behavior_, invert_, out);
        });
    }

private:
    std::string literal_;
    SplitBehavior behavior_;
    bool invert_;
};

// Each character for which pred(cp) holds is one match (HF's Pattern for Fn(char) -> bool).
template <typename Pred>
class PredicateSplitStage final : public PreTokenizerStage {
public:
    PredicateSplitStage(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
    void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
             PreTokenizeState& state) const override {
        const bool mapped = state.mapped;
        for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) {
            thread_local Spans spans;
            spans.clear();
            for (size_t pos = 0; pos < p.size();) {
                const Char c = char_at(p, pos, mapped);
                if (pred_(c.cp)) spans.emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + c.len));
                pos += c.len;
            }
            if (spans.empty()) {
                if (!p.empty()) out.push_back(p);  // the common case: nothing to split
                return;
            }
            apply_behavior(p, spans, behavior_, false, out);
        });
    }

private:
    Pred pred_;
    SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizerStage> make_predicate_stage(Pred pred, SplitBehavior behavior) {
    return std::make_unique<PredicateSplitStage<Pred>>(pred, behavior);
}

class ByteLevelStage final : public PreTokenizerStage {
public:
    ByteLevelStage(bool add_prefix_space, bool use_regex)
        : add_prefix_space_(add_prefix_space), gpt2_(use_regex ? make_gpt2_pre_tokenizer() : nullptr) {}
    bool is_byte_level() const override { return true; }
    void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
             PreTokenizeState& state) const override {
        if (add_prefix_space_) {
            // HF prefixes every piece that does not start with a space, not
            // only the first one.
            for (std::string_view& p : pieces) {
                if (!p.empty() && p[0] == ' ') continue;
                const bool was_start = p.data() == state.text_start;
                state.storage.push_back(" " + std::string(p));
                p = state.storage.back();
                if (was_start) state.text_start = p.data();
            }
        }
        if (gpt2_) {
            if (state.mapped) {
                // A second ByteLevel after the first: the regex sees mapped text.
                static const IcuRegex regex(kGpt2Pattern);
                for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) {
                    thread_local Spans spans;
                    spans.clear();
                    regex.find(p, true, spans);
                    apply_behavior(p, spans, SplitBehavior::kIsolated, false, out);
                });
            } else {
                for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) { gpt2_->split(p, out); });
            }
        }
        state.mapped = true;
    }

private:
    bool add_prefix_space_;
    std::unique_ptr<PreTokenizer> gpt2_;
};

class MetaspaceStage final : public PreTokenizerStage {
public:
    MetaspaceStage(std::string replacement, PrependScheme scheme, bool split)
        : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
    void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
             PreTokenizeState& state) const override {
        for_each_piece(pieces, scratch, [&](std::string_view p, auto& out) {
            std::string s;
            s.reserve(p.size() + replacement_.size() * 2);
            for (char c : p) {
                if (c == ' ') {
                    s += replacement_;
                } else {
                    s.push_back(c);
                }
            }
            const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
            if (!starts && (scheme_ == PrependScheme::kAlways ||
                            (scheme_ == PrependScheme::kFirst && p.data() == state.text_start))) {
                s.insert(0, replacement_);
            }
            state.storage.push_back(std::move(s));
            const std::string_view v = state.storage.back();
            if (!split_) {
                if (!v.empty()) out.push_back(v);
                return;
            }
            thread_local Spans spans;
            spans.clear();
            find_literal(v, replacement_, spans);
            apply_behavior(v, spans, SplitBehavior::kMergedWithNext, false, out);
        });
    }

private:
    std::string replacement_;
    PrependScheme scheme_;
    bool split_;
};

// ---------------------------------------------------------------- normalizers

class UnicodeNormalizer final : public Normalizer {
public:
    explicit UnicodeNormalizer(UnicodeForm form) {
        UErrorCode status = U_ZERO_ERROR;
        switch (form) {
            case UnicodeForm::kNfc: norm_ = icu::Normalizer2::getNFCInstance(status); break;
            case UnicodeForm::kNfd: norm_ = icu::Normalizer2::getNFDInstance(status); break;
            case UnicodeForm::kNfkc: norm_ = icu::Normalizer2::getNFKCInstance(status); break;
            case UnicodeForm::kNfkd: norm_ = icu::Normalizer2::getNFKDInstance(status); break;
        }
        if (U_FAILURE(status) || !norm_) throw FormatError(std::string("ICU normalizer unavailable: ") + u_errorName(status));
    }
    bool normalize(std::string_view in, std::string& out) const override {
        // ASCII is invariant under all four forms, and most text is already normalized.
        if (is_ascii(in)) return false;
        UErrorCode status = U_ZERO_ERROR;
        bool all_valid = true;
        for_each_utf8_run(in, [&](std::string_view, bool valid) { all_valid &= valid; });
        if (all_valid && norm_->isNormalizedUTF8(icu::StringPiece(in.data(), static_cast<int32_t>(in.size())), status) &&
            U_SUCCESS(status)) {
            return false;
        }
        out.clear();
        icu::StringByteSink<std::string> sink(&out);
        for_each_utf8_run(in, [&](std::string_view run, bool valid) {
            if (!valid) {
                out.append(run);
                return;
            }
            UErrorCode st = U_ZERO_ERROR;
            norm_->normalizeUTF8(0, icu::StringPiece(run.data(), static_cast<int32_t>(run.size())), sink, nullptr, st);
            if (U_FAILURE(st)) out.append(run);
        });
        return true;
    }

private:
    const icu::Normalizer2* norm_ = nullptr;  // owned by ICU
};

class LowercaseNormalizer final : public Normalizer {
public:
    bool normalize(std::string_view in, std::string& out) const override {
        if (is_ascii(in)) {
            if (std::none_of(in.begin(), in.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return false;
            out.assign(in);
            for (char& c : out) {
                if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            }
            return true;
        }
        out.clear();
        for_each_utf8_run(in, [&](std::string_view run, bool valid) {
            if (!valid) {
                out.append(run);
                return;
            }
            icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(run.data(), static_cast<int32_t>(run.size())));
            u.toLower(icu::Locale::getRoot());
            u.toUTF8String(out);
        });
        return out != in;
    }
};

class PrependNormalizer final : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    bool normalize(std::string_view in, std::string& out) const override {
        if (in.empty()) return false;  // HF prepends only to non-empty text
        out.clear();
        out.reserve(prefix_.size() + in.size());
        out.append(prefix_).append(in);
        return true;
    }

private:
    std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
public:
    ReplaceNormalizer(const std::string& pattern, bool is_regex, std::string content)
        : literal_(is_regex ? "" : pattern), content_(std::move(content)) {
        if (is_regex) regex_ = std::make_unique<IcuRegex>(pattern);
    }
    bool normalize(std::string_view in, std::string& out) const override {
        thread_local Spans spans;
        spans.clear();
        if (regex_) {
            regex_->find(in, false, spans);
        } else {
            find_literal(in, literal_, spans);
        }
        if (spans.empty()) return false;
        out.clear();
        out.reserve(in.size() + spans.size() * content_.size());
        uint32_t prev = 0;
        for (const auto& [b, e] : spans) {
            out.append(in.substr(prev, b - prev)).append(content_);
            prev = e;
        }
        out.append(in.substr(prev));
        return true;
    }

private:
    std::string literal_;
    std::string content_;
    std::unique_ptr<IcuRegex> regex_;
};

class StripNormalizer final : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    bool normalize(std::string_view in, std::string& out) const override {
        size_t b = 0, e = in.size();
        if (left_) {
            while (b < e) {
                const Char c = char_at(in, b, false);
                if (!is_whitespace(c.cp)) break;
                b += c.len;
            }
        }
        if (right_) {
            while (e > b) {
                const uint32_t cp = last_char(in.substr(b, e - b));
                if (!is_whitespace(cp)) break;
                std::string tmp;
                unicode::append_utf8(tmp, cp);
                e -= tmp.size();
            }
        }
        if (b == 0 && e == in.size()) return false;
        out.assign(in.substr(b, e - b));
        return true;
    }

private:
    bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> stages) : stages_(std::move(stages)) {}
    bool normalize(std::string_view in, std::string& out) const override {
        std::string buf[2];
        int which = 0;
        std::string_view cur = in;
        bool changed = false;
        for (const auto& stage : stages_) {
            if (stage->normalize(cur, buf[which])) {
                cur = buf[which];
                which ^= 1;
                changed = true;
            }
        }
        if (!changed) return false;
        out.swap(buf[which ^ 1]);
        return true;
    }

private:
    std::vector<std::unique_ptr<Normalizer>> stages_;
};

// ---------------------------------------------------------------- decoders

class ByteLevelDecoder final : public Decoder {
public:
    void decode(std::vector<std::string>& tokens) const override {
        // HF joins the bytes of all tokens and decodes them once (lossily);
        // here the raw bytes are kept, so any input round-trips.
        std::string all;
        for (const std::string& t : tokens) all += byte_level_token_bytes(t);
        tokens.assign(1, std::move(all));
    }
};

class MetaspaceDecoder final : public Decoder {
public:
    MetaspaceDecoder(std::string replacement, bool strip_first_space)
        : replacement_(std::move(replacement)), strip_first_space_(strip_first_space) {}
    void decode(std::vector<std::string>& tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string s;
            const std::string& t = tokens[i];
            for (size_t pos = 0; pos < t.size();) {
                if (!replacement_.empty() && t.compare(pos, replacement_.size(), replacement_) == 0) {
                    s.push_back(' ');
                    pos += replacement_.size();
                } else {
                    s.push_back(t[pos++]);
                }
            }
            if (i == 0 && strip_first_space_ && !s.empty() && s[0] == ' ') s.erase(0, 1);
            tokens[i] = std::move(s);
        }
    }

private:
    std::string replacement_;
    bool strip_first_space_;
};

class ReplaceDecoder final : public Decoder {
public:
    ReplaceDecoder(std::string pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void decode(std::vector<std::string>& tokens) const override {
        if (pattern_.empty()) return;
        for (std::string& t : tokens) {
            std::string s;
            size_t prev = 0;
            for (size_t pos = t.find(pattern_); pos != std::string::npos; pos = t.find(pattern_, prev)) {
                s.append(t, prev, pos - prev).append(content_);
                prev = pos + pattern_.size();
            }
            s.append(t, prev, std::string::npos);
            t = std::move(s);
        }
    }

private:
    std::string pattern_, content_;
};

class ByteFallbackDecoder final : public Decoder {
public:
    void decode(std::vector<std::string>& tokens) const override {
        // HF turns runs of <0xNN> tokens into text, or U+FFFD per byte when the
        // run is not valid UTF-8; the raw bytes are kept here so that text
        // with invalid UTF-8 round-trips.
        std::vector<std::string> out;
        std::string bytes;
        for (std::string& t : tokens) {
            const int v = byte_value(t);
            if (v >= 0) {
                bytes.push_back(static_cast<char>(v));
                continue;
            }
            if (!bytes.empty()) out.push_back(std::move(bytes)), bytes.clear();
            out.push_back(std::move(t));
        }
        if (!bytes.empty()) out.push_back(std::move(bytes));
        tokens.swap(out);
    }

private:
    static int hex(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    }
    static int byte_value(const std::string& t) {
        if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
        const int hi = hex(t[3]), lo = hex(t[4]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }
};

class FuseDecoder final : public Decoder {
public:
    void decode(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

class StripDecoder final : public Decoder {
public:
    StripDecoder(std::string content, size_t start, size_t stop)
        : content_(std::move(content)), start_(start), stop_(stop) {}
    void decode(std::vector<std::string>& tokens) const override {
        if (content_.empty()) return;
        for (std::string& t : tokens) {
            size_t b = 0, e = t.size();
            for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
            for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                               t.compare(e - content_.size(), content_.size(), content_) == 0;
                 ++k) {
                e -= content_.size();
            }
            t = t.substr(b, e - b);
        }
    }

private:
    std::string content_;
    size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> stages) : stages_(std::move(stages)) {}
    void decode(std::vector<std::string>& tokens) const override {
        for (const auto& s : stages_) s->decode(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> stages_;
};

}  // namespace

// ---------------------------------------------------------------- added tokens

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
    nodes_.emplace_back();  // root
    for (size_t i = 0; i < tokens_.size(); ++i) {
        const std::string& s = tokens_[i].content;
        if (s.empty()) continue;  // HF ignores empty added tokens
        first_byte_[static_cast<uint8_t>(s[0])] = true;
        int32_t node = 0;
        for (char ch : s) {
            const auto b = static_cast<uint8_t>(ch);
            int32_t c = child(node, b);
            if (c < 0) {
                c = static_cast<int32_t>(nodes_.size());
                Node n;
                n.byte = b;
                n.next_sibling = nodes_[static_cast<size_t>(node)].first_child;
                nodes_.push_back(n);
                nodes_[static_cast<size_t>(node)].first_child = c;
            }
            node = c;
        }
        // A duplicate content keeps its first entry.
        if (nodes_[static_cast<size_t>(node)].token < 0) nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(i);
    }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
    for (int32_t c = nodes_[static_cast<size_t>(node)].first_child; c >= 0; c = nodes_[static_cast<size_t>(c)].next_sibling) {
        if (nodes_[static_cast<size_t>(c)].byte == byte) return c;
    }
    return -1;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
    const size_t n = text.size();
    size_t start_offset = 0;  // end of the last emitted token
    size_t pos = 0;
    while (pos < n) {
        if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
            ++pos;
            continue;
        }
        int32_t best = -1;
        size_t match_end = 0;
        int32_t node = 0;
        for (size_t k = pos; k < n; ++k) {
            node = child(node, static_cast<uint8_t>(text[k]));
            if (node < 0) break;
            if (nodes_[static_cast<size_t>(node)].token >= 0) {
                best = nodes_[static_cast<size_t>(node)].token;
                match_end = k + 1;
            }
        }
        if (best < 0) {
            ++pos;
            continue;
        }
        const AddedToken& t = tokens_[static_cast<size_t>(best)];
        size_t start = pos, stop = match_end;
        // Matches do not overlap: the search resumes after this one even
        // when it is dropped below (as HF's find_iter does).
        pos = match_end;
        if (t.single_word) {
            const bool start_ok = start == 0 || !is_word_char(last_char(text.substr(0, start)));
            const bool stop_ok = stop == n || !is_word_char(char_at(text, stop, false).cp);
            if (!start_ok || !stop_ok) continue;
        }
        if (t.lstrip) {
            size_t b = start;
            while (b > start_offset) {
                const uint32_t cp = last_char(text.substr(start_offset, b - start_offset));
                if (!is_whitespace(cp)) break;
                std::string tmp;
                unicode::append_utf8(tmp, cp);
                b -= tmp.size();
            }
            start = b;
        }
        if (t.rstrip) {
            while (stop < n) {
                const Char c = char_at(text, stop, false);
                if (!is_whitespace(c.cp)) break;
                stop += c.len;
            }
            pos = stop;
        }
        if (start > start_offset) out.push_back({-1, text.substr(start_offset, start - start_offset)});
        out.push_back({t.id, text.substr(start, stop - start)});
        start_offset = stop;
    }
    if (start_offset < n) out.push_back({-1, text.substr(start_offset)});
}

// ---------------------------------------------------------------- factories

std::unique_ptr<Normalizer> make_unicode_normalizer(UnicodeForm form) {
    return std::make_unique<UnicodeNormalizer>(form);
}
std::unique_ptr<Normalizer> make_lowercase_normalizer() { return std::make_unique<LowercaseNormalizer>(); }
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix) {
    return std::make_unique<PrependNormalizer>(std::move(prefix));
}
std::unique_ptr<Normalizer> make_replace_normalizer(const std::string& pattern, bool is_regex, std::string content) {
    return std::make_unique<ReplaceNormalizer>(pattern, is_regex, std::move(content));
}
std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right) {
    return std::make_unique<StripNormalizer>(left, right);
}
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> stages) {
    return std::make_unique<SequenceNormalizer>(std::move(stages));
}

std::unique_ptr<PreTokenizerStage> make_split_regex_stage(const std::string& pattern, SplitBehavior behavior,
                                                          bool invert) {
    return std::make_unique<RegexSplitStage>(pattern, behavior, invert);
}
std::unique_ptr<PreTokenizerStage> make_split_string_stage(const std::string& literal, SplitBehavior behavior,
                                                           bool invert) {
    return std::make_unique<StringSplitStage>(literal, behavior, invert);
}
std::unique_ptr<PreTokenizer> make_llama3_pre_tokenizer(int max_digits) {
    return std::make_unique<Llama3PreTokenizer>(max_digits);
}
std::unique_ptr<PreTokenizerStage> make_byte_level_stage(bool add_prefix_space, bool use_regex) {
    return std::make_unique<ByteLevelStage>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizerStage> make_digits_stage(bool individual_digits) {
    // HF's Digits tests char::is_ascii_digit.
    auto is_digit = [](uint32_t cp) { return cp >= '0' && cp <= '9'; };
    return make_predicate_stage(is_digit, individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
}
std::unique_ptr<PreTokenizerStage> make_punctuation_stage(SplitBehavior behavior) {
    // HF: char::is_ascii_punctuation (which includes symbols such as $ + < = > ^ ` | ~) or Unicode P*.
    auto is_punct = [](uint32_t cp) {
        if (cp < 128) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
        return unicode::is_punctuation(cp);
    };
    return make_predicate_stage(is_punct, behavior);
}
std::unique_ptr<PreTokenizerStage> make_whitespace_stage() {
    return make_split_regex_stage(R"(\w+|[^\w\s]+)", SplitBehavior::kRemoved, true);
}
std::unique_ptr<PreTokenizerStage> make_whitespace_split_stage() {
    return make_predicate_stage([](uint32_t cp) { return is_whitespace(cp); }, SplitBehavior::kRemoved);
}
std::unique_ptr<PreTokenizerStage> make_char_delimiter_stage(uint32_t delimiter) {
    return make_predicate_stage([delimiter](uint32_t cp) { return cp == delimiter; }, SplitBehavior::kRemoved);
}
std::unique_ptr<PreTokenizerStage> make_metaspace_stage(std::string replacement, PrependScheme scheme, bool split) {
    return std::make_unique<MetaspaceStage>(std::move(replacement), scheme, split);
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }
std::unique_ptr<Decoder> make_metaspace_decoder(std::string replacement, bool strip_first_space) {
    return std::make_unique<MetaspaceDecoder>(std::move(replacement), strip_first_space);
}
std::unique_ptr<Decoder> make_replace_decoder(std::string pattern, std::string content) {
    return std::make_unique<ReplaceDecoder>(std::move(pattern), std::move(content));
}
std::unique_ptr<Decoder> make_byte_fallback_decoder() { return std::make_unique<ByteFallbackDecoder>(); }
std::unique_ptr<Decoder> make_fuse_decoder() { return std::make_unique<FuseDecoder>(); }
std::unique_ptr<Decoder> make_strip_decoder(std::string content, size_t start, size_t stop) {
    return std::make_unique<StripDecoder>(std::move(content), start, stop);
}
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> stages) {
    return std::make_unique<SequenceDecoder>(std::move(stages));
}

std::string byte_level_token_bytes(std::string_view token) {
    const auto& table = unicode::byte_unicode_table();
    std::string out;
    out.reserve(token.size());
    for (size_t pos = 0; pos < token.size();) {
        size_t n = 1;
        const uint32_t cp = unicode::decode_utf8(token, pos, n);
        if (cp >= table.cp_to_byte.size() || table.cp_to_byte[cp] < 0) return std::string(token);
        out.push_back(static_cast<char>(table.cp_to_byte[cp]));
        pos += n;
    }
    return out;
}

}  // namespace memskew::detail::hf

namespace memskew {

namespace {

// Matches and the gaps between them as pieces (Split, behavior Isolated).
class IcuRegexPreTokenizer final : public PreTokenizer {
public:
    explicit IcuRegexPreTokenizer(const std::string& pattern) : regex_(pattern) {}
    void split(std::string_view text, std::vector<std::string_view>& pieces) const override {
        detail::hf::Spans spans;
        regex_.find(text, /*mapped=*/false, spans);
        uint32_t last = 0;
        for (const auto& [b, e] : spans) {
            if (b > last) pieces.emplace_back(text.data() + last, b - last);
            pieces.emplace_back(text.data() + b, e - b);
            last = e;
        }
        if (last < text.size()) pieces.emplace_back(text.data() + last, text.size() - last);
    }

private:
    detail::hf::IcuRegex regex_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_regex_pre_tokenizer(const std::string& pattern) {
    return std::make_unique<IcuRegexPreTokenizer>(pattern);
}

}  // namespace memskew
