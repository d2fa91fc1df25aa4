#include "tokenizer/pre-tokenizer.h"


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

// make_regex_pre_tokenizer(): src/tokenizer/hf-components.cpp, on the ICU
// regex runner tokenizer.json's Split patterns use.

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
