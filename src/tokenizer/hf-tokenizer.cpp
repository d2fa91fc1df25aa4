// Hugging Face tokenizer.json with a BPE model, following the `tokenizers`
// library's Tokenizer::encode: added tokens are cut out of the raw text
// (normalized=false ones) or of the normalized text (normalized=true ones),
// the rest is normalized, pre-tokenized, and each piece is merged by the BPE
// model. The model is HF's, not SentencePiece's: the adjacent pair with the
// lowest merge rank is merged first (ties: leftmost), which for converted
// SentencePiece vocabularies (Llama-2) is what AutoTokenizer does too.
//
// Byte-level pieces (after a ByteLevel pre-tokenizer) start as one symbol per
// byte; other pieces as one symbol per UTF-8 character, with <0xNN> tokens
// for characters missing from the vocabulary (byte_fallback) or <unk>.
#include "tokenizer/hf-tokenizer.h"

#include <algorithm>

#include <fmt/format.h>

#include "memskew/error.h"
#include "tokenizer/bpe-merge.h"
#include "tokenizer/tokenizer-impl.h"
#include "tokenizer/unicode-util.h"

namespace memskew::detail::hf {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

class BpeTokenizer final : public Tokenizer {
public:
    explicit BpeTokenizer(BpeSpec spec)
        : Tokenizer(std::move(spec.vocab)),
          piece_to_id_(vocab_.tokens),
          byte_fallback_(spec.byte_fallback),
          fuse_unk_(spec.fuse_unk),
          ignore_merges_(spec.ignore_merges),
          unk_(spec.unk),
          normalizer_(std::move(spec.normalizer)),
          pre_tokenizer_(std::move(spec.pre_tokenizer)),
          decoder_(std::move(spec.decoder)) {
        for (const auto& stage : pre_tokenizer_) byte_level_ |= stage->is_byte_level();
        std::vector<AddedToken> raw, normalized;
        for (const AddedToken& t : spec.added_tokens) {
            (t.normalized && normalizer_ ? normalized : raw).push_back(t);
            if (t.special) special_.push_back(t.id);
        }
        std::sort(special_.begin(), special_.end());
        raw_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw));
        normalized_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(normalized));

        const auto& table = unicode::byte_unicode_table();
        static constexpr char kHex[] = "0123456789ABCDEF";
        for (int b = 0; b < 256; ++b) {
            byte_symbol_[b] = byte_level_ ? find_model(table.byte_to_utf8[static_cast<size_t>(b)]) : -1;
            const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
            fallback_id_[b] = find_model(std::string_view(name, 6));
        }
        build_merges(spec.merges);
        words_split_at_marker_ = !byte_level_ && markers_only_leading(spec.merges);
        if (spec.decoder_byte_level_only) {
            decoded_.resize(vocab_.tokens.size());
            for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
                if (!is_special(static_cast<int32_t>(id))) decoded_[id] = byte_level_token_bytes(vocab_.tokens[id]);
            }
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
        if (text.size() > static_cast<size_t>(INT32_MAX)) {
            throw InvalidInput(fmt::format("text of {} bytes is too long to tokenize", text.size()),
                               "split it into documents under 2 GiB");
        }
        std::vector<int32_t> out;
        out.reserve(text.size() / 3 + 4);
        if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
        std::vector<Segment> segments;
        if (raw_matcher_->empty()) {
            segments.push_back({-1, text});
        } else {
            raw_matcher_->split(text, segments);
        }
        std::string normalized;
        std::vector<Segment> sub;
        for (const Segment& seg : segments) {
            if (seg.id >= 0) {
                out.push_back(seg.id);
                continue;
            }
            std::string_view s = seg.text;
            const bool at_start = s.data() == text.data();
            if (normalizer_ && normalizer_->normalize(s, normalized)) s = normalized;
            if (normalized_matcher_->empty()) {
                encode_text(s, at_start ? s.data() : nullptr, out);
                continue;
            }
            sub.clear();
            normalized_matcher_->split(s, sub);
            for (const Segment& x : sub) {
                if (x.id >= 0) {
                    out.push_back(x.id);
                } else {
                    encode_text(x.text, at_start && x.text.data() == s.data() ? x.text.data() : nullptr, out);
                }
            }
        }
        if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
        return out;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        if (!decoded_.empty()) {
            std::string out;
            out.reserve(ids.size() * 4);
            for (int32_t id : ids) {
                check_id(id, n_vocab());
                out += decoded_[static_cast<size_t>(id)];
            }
            return out;
        }
        std::vector<std::string> tokens;
        tokens.reserve(ids.size());
        for (int32_t id : ids) {
            check_id(id, n_vocab());
            if (!is_special(id)) tokens.push_back(vocab_.tokens[static_cast<size_t>(id)]);
        }
        std::string out;
        if (decoder_) {
            decoder_->decode(tokens);
            for (const std::string& t : tokens) out += t;
        } else {
            for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];  // HF joins with spaces
        }
        return out;
    }

private:

    bool is_special(int32_t id) const { return std::binary_search(special_.begin(), special_.end(), id); }

    // Looks up a model piece; the empty string (a damaged entry, see
    // load_tokenizer_json) is never a piece.
    int32_t find_model(std::string_view piece) const { return piece.empty() ? -1 : piece_to_id_.find(piece); }

    void build_merges(const std::vector<std::pair<std::string, std::string>>& merges) {
        merges_.reserve(merges.size());
        std::vector<std::pair<uint64_t, MergeResult>> entries;
        entries.reserve(merges.size());
        for (size_t rank = 0; rank < merges.size(); ++rank) {
            const auto& [a, b] = merges[rank];
            auto find = [&](const std::string& piece) {
                const int32_t id = find_model(piece);
                if (id < 0) {
                    throw FormatError(fmt::format("merge model.merges[{}] '{} {}' names token '{}' that is not in the "
                                                  "vocabulary (tokenizer.json: model.merges[{}])",
                                                  rank, a, b, piece, rank),
                                      "the merges and the vocabulary come from different tokenizers");
                }
                return id;
            };
            const int32_t left = find(a), right = find(b), merged = find(a + b);
            entries.push_back({pair_key(left, right), MergeResult{static_cast<int32_t>(rank), merged}});
            vocab_.merges.push_back(a + " " + b);
        }
        // HF collects the merges into a hash map, so a repeated pair keeps its
        // last rank; inserting in reverse (first insert wins) does the same.
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) merges_.insert(it->first, it->second);
    }

    // Whether every merge result is a run of "▁" followed by text without
    // "▁": then no merge spans a "▁" that follows other text, so such words
    // merge independently (exactly) and can be cached. The "▁" must be a
    // token itself, so it never becomes <unk> and fuses with a neighbour.
    bool markers_only_leading(const std::vector<std::pair<std::string, std::string>>& merges) const {
        if (find_model(kSpaceMarker) < 0) return false;
        for (const auto& [a, b] : merges) {
            const std::string t = a + b;
            size_t p = 0;
            while (t.compare(p, kSpaceMarker.size(), kSpaceMarker) == 0) p += kSpaceMarker.size();
            if (t.find(kSpaceMarker, p) != std::string::npos) return false;
        }
        return true;
    }

    // Pre-tokenizes one normalized stretch of text and encodes its pieces.
    // text_start: where the whole input starts, if it is in `s` (Metaspace "first").
    void encode_text(std::string_view s, const char* text_start, std::vector<int32_t>& out) const {
        if (s.empty()) return;
        if (pre_tokenizer_.empty()) {
            encode_piece(s, out);
            return;
        }
        thread_local std::vector<std::string_view> pieces, scratch;
        PreTokenizeState state;
        state.text_start = text_start;
        pieces.assign(1, s);
        for (const auto& stage : pre_tokenizer_) stage->run(pieces, scratch, state);
        for (std::string_view p : pieces) encode_piece(p, out);
        // pieces may point into state.storage, which dies here; clear them.
        pieces.clear();
        scratch.clear();
        release_if_large(pieces);
        release_if_large(scratch);
    }

    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
        if (ignore_merges_) {
            // Llama-3: a piece that is itself a token is emitted whole.
            const int32_t id = byte_level_ ? find_model(to_mapped(piece)) : find_model(piece);
            if (id >= 0) {
                out.push_back(id);
                return;
            }
        }
        if (!words_split_at_marker_) {
            encode_word(piece, out);
            return;
        }
        // Words: a run of "▁" and the text up to the next "▁" after it.
        size_t begin = 0;
        bool prev_marker = false;
        for (size_t pos = 0; pos < piece.size();) {
            const bool marker = piece.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0;
            if (marker && !prev_marker && pos > begin) {
                encode_word(piece.substr(begin, pos - begin), out);
                begin = pos;
            }
            prev_marker = marker;
            pos += marker ? kSpaceMarker.size() : 1;
        }
        encode_word(piece.substr(begin), out);
    }

    static std::string to_mapped(std::string_view piece) {
        const auto& table = unicode::byte_unicode_table();
        std::string s;
        for (char c : piece) s += table.byte_to_utf8[static_cast<uint8_t>(c)];
        return s;
    }

    void encode_word(std::string_view word, std::vector<int32_t>& out) const {
        if (word.empty()) return;
        if (cache_.lookup(word, out)) return;
        const size_t first = out.size();
        merge_word(word, out);
        cache_.store(word, out.data() + first, out.size() - first);
    }

    // HF's BPE::merge_word + Word::merge_all.
    void merge_word(std::string_view word, std::vector<int32_t>& out) const {
        thread_local std::vector<BpeSymbol> symbols;
        symbols.clear();
        auto add = [&](int32_t id) { symbols.push_back({id, static_cast<int32_t>(symbols.size()) - 1, -1}); };
        if (byte_level_) {
            for (char c : word) {
                const int32_t id = byte_symbol_[static_cast<uint8_t>(c)];
                if (id >= 0) {
                    add(id);
                } else if (unk_ >= 0) {
                    add(unk_);  // a byte the vocabulary lacks (never for GPT-2-style vocabularies)
                }
            }
        } else {
            int32_t pending_unk = -1;  // HF keeps one pending <unk>, fused with the next when fuse_unk
            for (size_t pos = 0; pos < word.size();) {
                size_t n = 1;
                unicode::decode_utf8(word, pos, n);
                const std::string_view ch = word.substr(pos, n);
                pos += n;
                const int32_t id = find_model(ch);
                if (id >= 0) {
                    if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
                    add(id);
                    continue;
                }
                if (byte_fallback_ &&
                    std::all_of(ch.begin(), ch.end(), [&](char c) { return fallback_id_[static_cast<uint8_t>(c)] >= 0; })) {
                    for (char c : ch) add(fallback_id_[static_cast<uint8_t>(c)]);
                    continue;
                }
                if (unk_ >= 0) {
                    if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
                    pending_unk = unk_;
                }
                // Without an unk token HF drops the character.
            }
            if (pending_unk >= 0) add(pending_unk);
        }
        const auto n = static_cast<int32_t>(symbols.size());
        if (n > 0) symbols.back().next = -1;
        for (int32_t i = 0; i + 1 < n; ++i) symbols[static_cast<size_t>(i)].next = i + 1;

        bpe_merge(symbols, merges_);
        for (int32_t i = 0; i != -1 && n > 0; i = symbols[static_cast<size_t>(i)].next) {
            out.push_back(symbols[static_cast<size_t>(i)].id);
        }
        release_if_large(symbols);
    }

    PieceMap piece_to_id_;
    bool byte_fallback_, fuse_unk_, ignore_merges_;
    int32_t unk_;
    bool byte_level_ = false;
    bool words_split_at_marker_ = false;
    std::unique_ptr<Normalizer> normalizer_;
    std::vector<std::unique_ptr<PreTokenizerStage>> pre_tokenizer_;
    std::unique_ptr<Decoder> decoder_;
    std::unique_ptr<AddedTokenMatcher> raw_matcher_, normalized_matcher_;
    std::vector<int32_t> special_;  // sorted ids of special added tokens (skipped by decode)
    int32_t byte_symbol_[256];      // byte-level: id of each byte's mapped character
    int32_t fallback_id_[256];      // id of <0xNN>, or -1
    MergeMap merges_;
    std::vector<std::string> decoded_;  // ByteLevel-only decoder: the bytes of each token
    WordCache cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec) { return std::make_unique<BpeTokenizer>(std::move(spec)); }

}  // namespace memskew::detail::hf
