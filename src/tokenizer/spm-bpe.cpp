// SentencePiece-style BPE over token scores (GGUF tokenizer.ggml.model =
// "llama"), following llama.cpp's llm_tokenizer_spm step for step so that ids
// match llama.cpp and Hugging Face's Llama tokenizers: symbols start as UTF-8
// characters, the adjacent pair whose concatenation is the highest-scoring
// token is merged first (ties: leftmost), and leftover characters fall back
// to <0xNN> byte tokens.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "memskew/error.h"
#include "tokenizer/tokenizer-impl.h"
#include "tokenizer/unicode-util.h"

namespace memskew::detail {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

class SpmTokenizer final : public Tokenizer {
public:
    explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)), piece_to_id_(vocab_.tokens) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        for (int b = 0; b < 256; ++b) {
            const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
            int32_t id = piece_to_id_.find(std::string_view(name, 6));
            if (id < 0) {
                // Like llama.cpp: fall back to the byte itself as a piece.
                const char raw = static_cast<char>(b);
                id = piece_to_id_.find(std::string_view(&raw, 1));
            }
            byte_to_id_[b] = id >= 0 ? id : vocab_.unk;
        }
        // Decoding needs the byte value of <0xNN> tokens without re-parsing.
        // Without token types (a Vocab built in code) the piece's form decides.
        byte_value_.assign(vocab_.tokens.size(), -1);
        for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
            const std::string& p = vocab_.tokens[id];
            const bool is_byte = vocab_.types.empty() ||
                                 token_type(vocab_, static_cast<int32_t>(id)) == TokenType::kByte;
            if (is_byte && p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') {
                const int hi = hex_value(p[3]), lo = hex_value(p[4]);
                if (hi >= 0 && lo >= 0) byte_value_[id] = static_cast<int16_t>(hi * 16 + lo);
            }
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
        std::vector<int32_t> out;
        if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
        // Empty text gives no tokens, not a lone "▁" (SentencePiece and llama.cpp agree).
        if (!text.empty()) tokenize(text, out);
        if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
        return out;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::string raw;
        raw.reserve(ids.size() * 4);
        for (int32_t id : ids) {
            check_id(id, n_vocab());
            if (token_type(vocab_, id) == TokenType::kControl) continue;
            const int16_t byte = byte_value_[static_cast<size_t>(id)];
            if (byte >= 0) {
                raw.push_back(static_cast<char>(byte));
            } else {
                raw.append(vocab_.tokens[static_cast<size_t>(id)]);
            }
        }
        // "▁" -> " " over the whole output, byte-fallback bytes included: when
        // a malformed UTF-8 lead byte swallows the start of an escaped space
        // (llama.cpp splits characters after escaping), the space comes back
        // as bytes E2 96 81, and this turns it back into the original space.
        std::string out;
        out.reserve(raw.size());
        for (size_t pos = 0; pos < raw.size();) {
            if (raw.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0) {
                out.push_back(' ');
                pos += kSpaceMarker.size();
            } else {
                out.push_back(raw[pos++]);
            }
        }
        // Undo the space that add_space_prefix put in front of the text.
        if (vocab_.add_space_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
        return out;
    }

private:
    struct Symbol {
        uint32_t offset;  // into the escaped text
        uint32_t n;       // bytes; 0 once merged into its left neighbour
        int32_t prev, next;
    };
    struct Bigram {
        float score;
        int32_t left, right;
        uint32_t size;  // byte length of the merged text, to detect stale entries
    };
    struct BigramLess {
        // Highest score first; on ties the leftmost pair (llama.cpp's comparator).
        bool operator()(const Bigram& l, const Bigram& r) const {
            return l.score < r.score || (l.score == r.score && l.left > r.left);
        }
    };

    static int hex_value(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    }

    float score(int32_t id) const {
        return vocab_.scores.empty() ? 0.0f : vocab_.scores[static_cast<size_t>(id)];
    }

    int32_t lookup(std::string_view s) const {
        return piece_to_id_.find(s);
    }

    void tokenize(std::string_view text, std::vector<int32_t>& out) const {
        // "▁" replaces every space, and one is prepended when add_space_prefix.
        thread_local std::string escaped;
        escaped.clear();
        escaped.reserve(text.size() + 16);
        if (vocab_.add_space_prefix) escaped.append(kSpaceMarker);
        for (char c : text) {
            if (c == ' ') {
                escaped.append(kSpaceMarker);
            } else {
                escaped.push_back(c);
            }
        }
        if (escaped.size() > INT32_MAX) {
            throw InvalidInput(fmt::format("text of {} bytes is too long to tokenize", text.size()),
                               "split it into smaller documents");
        }
        const std::string_view s(escaped);

        // Split into characters the way llama.cpp does (length from the lead
        // byte, clipped at the end), so malformed UTF-8 is grouped identically.
        thread_local std::vector<uint32_t> char_offsets;  // start of each character, plus the end
        char_offsets.clear();
        for (size_t offs = 0; offs < s.size();) {
            char_offsets.push_back(static_cast<uint32_t>(offs));
            offs += std::min(unicode::utf8_len_from_lead(static_cast<uint8_t>(s[offs])), s.size() - offs);
        }
        const size_t n_chars = char_offsets.size();
        char_offsets.push_back(static_cast<uint32_t>(s.size()));

        if (!words_independent_) {
            merge(s, char_offsets, 0, n_chars, out);
        } else {
            merge_by_word(s, char_offsets, out);
        }
        release_if_large(escaped);
        release_if_large(char_offsets);
    }

    void merge_by_word(std::string_view s, const std::vector<uint32_t>& char_offsets,
                       std::vector<int32_t>& out) const {
        const size_t n_chars = char_offsets.size() - 1;
        // Words are a run of "▁" followed by a run of other characters. No
        // token spans a word boundary (checked at construction), so merging
        // word by word gives exactly the whole-text result, and words can be
        // cached.
        auto is_marker = [&](size_t i) {
            return char_offsets[i + 1] - char_offsets[i] == kSpaceMarker.size() &&
                   s.compare(char_offsets[i], kSpaceMarker.size(), kSpaceMarker) == 0;
        };
        size_t begin = 0;
        bool prev_marker = n_chars > 0 && is_marker(0);
        for (size_t i = 1; i <= n_chars; ++i) {
            const bool marker = i < n_chars && is_marker(i);
            if (i == n_chars || (marker && !prev_marker)) {
                const std::string_view word = s.substr(char_offsets[begin], char_offsets[i] - char_offsets[begin]);
                if (!cache_.lookup(word, out)) {
                    const size_t first = out.size();
                    merge(s, char_offsets, begin, i, out);
                    cache_.store(word, out.data() + first, out.size() - first);
                }
                begin = i;
            }
            prev_marker = marker;
        }
    }

    // Runs llama.cpp's merge loop over characters [first, last) of `s` (the
    // i-th starting at offsets[i]) and appends the resulting ids.
    void merge(std::string_view s, const std::vector<uint32_t>& offsets, size_t first, size_t last,
               std::vector<int32_t>& out) const {
        thread_local std::vector<Symbol> symbols;
        thread_local std::vector<Bigram> heap;
        symbols.clear();
        heap.clear();
        const auto n = static_cast<int32_t>(last - first);
        for (int32_t i = 0; i < n; ++i) {
            const uint32_t off = offsets[first + static_cast<size_t>(i)];
            symbols.push_back({off, offsets[first + static_cast<size_t>(i) + 1] - off, i - 1, i + 1 < n ? i + 1 : -1});
        }
        auto try_add_bigram = [&](int32_t left, int32_t right) {
            if (left < 0 || right < 0) return;
            const Symbol& l = symbols[static_cast<size_t>(left)];
            const Symbol& r = symbols[static_cast<size_t>(right)];
            const std::string_view merged = s.substr(l.offset, l.n + r.n);
            const int32_t id = lookup(merged);
            if (id < 0) return;
            heap.push_back({score(id), left, right, static_cast<uint32_t>(merged.size())});
            std::push_heap(heap.begin(), heap.end(), BigramLess{});
        };
        for (int32_t i = 1; i < n; ++i) try_add_bigram(i - 1, i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), BigramLess{});
            const Bigram b = heap.back();
            heap.pop_back();
            Symbol& l = symbols[static_cast<size_t>(b.left)];
            Symbol& r = symbols[static_cast<size_t>(b.right)];
            // Skip pairs whose symbols changed since the pair was queued.
            if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
            try_add_bigram(l.prev, b.left);
            try_add_bigram(b.left, l.next);
        }

        // Every merged symbol is a token by construction; only single
        // characters can be missing, and those become byte tokens.
        for (int32_t i = 0; i != -1 && n > 0; i = symbols[static_cast<size_t>(i)].next) {
            const Symbol& sym = symbols[static_cast<size_t>(i)];
            const std::string_view piece = s.substr(sym.offset, sym.n);
            const int32_t id = lookup(piece);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (char c : piece) {
                const int32_t byte_id = byte_to_id_[static_cast<uint8_t>(c)];
                if (byte_id >= 0) out.push_back(byte_id);
            }
        }
        release_if_large(symbols);
        release_if_large(heap);
    }

    // Whether no token has "▁" after another character (only leading runs of
    // "▁"), which makes word-by-word merging exact.
    static bool markers_only_leading(const std::vector<std::string>& tokens) {
        for (const std::string& t : tokens) {
            size_t p = 0;
            while (t.compare(p, kSpaceMarker.size(), kSpaceMarker) == 0) p += kSpaceMarker.size();
            if (t.find(kSpaceMarker, p) != std::string::npos) return false;
        }
        return true;
    }

    PieceMap piece_to_id_;
    bool words_independent_ = markers_only_leading(vocab_.tokens);
    WordCache cache_;
    int32_t byte_to_id_[256];
    std::vector<int16_t> byte_value_;  // byte of each <0xNN> token, -1 for others
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) { return std::make_unique<SpmTokenizer>(std::move(vocab)); }

}  // namespace memskew::detail
