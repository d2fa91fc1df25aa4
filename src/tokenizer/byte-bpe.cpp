// Byte-level BPE over ranked merges (GGUF tokenizer.ggml.model = "gpt2",
// Hugging Face BPE with a ByteLevel pre-tokenizer): the pre-tokenizer splits
// the text, each piece's bytes become GPT-2 byte-to-unicode symbols, and the
// adjacent pair with the lowest merge rank is merged until none is left.
//
// Speed: symbols are token ids from the start (the 256 byte tokens), merges
// are looked up by the pair of ids packed into a uint64, and the ids of every
// piece are cached (WordCache).
#include <algorithm>

#include <fmt/format.h>

#include "memskew/error.h"
#include "tokenizer/bpe-merge.h"
#include "tokenizer/pre-tokenizer.h"
#include "tokenizer/tokenizer-impl.h"
#include "tokenizer/unicode-util.h"

namespace memskew::detail {

namespace {

class ByteBpeTokenizer final : public Tokenizer {
public:
    explicit ByteBpeTokenizer(Vocab vocab)
        : Tokenizer(std::move(vocab)),
          piece_to_id_(vocab_.tokens),
          pre_tokenizer_(make_pre_tokenizer(vocab_.pre)) {
        const auto& table = unicode::byte_unicode_table();
        for (int b = 0; b < 256; ++b) {
            byte_to_id_[b] = piece_to_id_.find(table.byte_to_utf8[static_cast<size_t>(b)]);
        }
        build_merges();
        build_decode_table();
    }

    std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
        std::vector<int32_t> out;
        if (text.size() > static_cast<size_t>(INT32_MAX)) {
            throw InvalidInput(fmt::format("text of {} bytes is too long to tokenize", text.size()),
                               "split it into documents under 2 GiB");
        }
        out.reserve(text.size() / 3 + 4);
        if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
        std::vector<std::string_view> pieces;
        pre_tokenizer_->split(text, pieces);
        for (std::string_view piece : pieces) {
            if (cache_.lookup(piece, out)) continue;
            const size_t first = out.size();
            encode_piece(piece, out);
            cache_.store(piece, out.data() + first, out.size() - first);
        }
        if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
        return out;
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::string out;
        out.reserve(ids.size() * 4);
        for (int32_t id : ids) {
            check_id(id, n_vocab());
            const auto& d = decoded_[static_cast<size_t>(id)];
            out.append(d);
        }
        return out;
    }

private:
    void build_merges() {
        merges_.reserve(vocab_.merges.size());
        for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
            const std::string& line = vocab_.merges[rank];
            const std::string where = fmt::format("tokenizer.ggml.merges[{}] '{}'", rank, line);
            // Search from 1 so a first part that is itself a space still splits
            // (llama.cpp does the same).
            const size_t sep = line.size() > 1 ? line.find(' ', 1) : std::string::npos;
            if (sep == std::string::npos || sep + 1 == line.size()) {
                throw FormatError("malformed merge " + where + ": expected two tokens separated by a space");
            }
            const std::string_view left(line.data(), sep);
            const std::string_view right(line.data() + sep + 1, line.size() - sep - 1);
            const std::string merged = std::string(left) + std::string(right);
            auto find = [&](std::string_view piece) {
                const int32_t id = piece_to_id_.find(piece);
                if (id < 0) {
                    throw FormatError("merge " + where + " names token '" + std::string(piece) +
                                          "' that is not in the vocabulary",
                                      "the merges and tokens come from different tokenizers");
                }
                return id;
            };
            const int32_t left_id = find(left), right_id = find(right), merged_id = find(merged);
            // A repeated pair keeps its first (lowest) rank.
            merges_.insert(pair_key(left_id, right_id), MergeResult{static_cast<int32_t>(rank), merged_id});
        }
    }

    void build_decode_table() {
        const auto& table = unicode::byte_unicode_table();
        decoded_.resize(vocab_.tokens.size());
        for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
            const TokenType type = token_type(vocab_, static_cast<int32_t>(id));
            if (type == TokenType::kControl) continue;  // BOS/EOS contribute no text
            const std::string& p = vocab_.tokens[id];
            if (type == TokenType::kUserDefined) {
                decoded_[id] = p;  // added tokens are stored as plain text
                continue;
            }
            std::string& d = decoded_[id];
            for (size_t pos = 0; pos < p.size();) {
                size_t n = 1;
                const uint32_t cp = unicode::decode_utf8(p, pos, n);
                if (cp < table.cp_to_byte.size() && table.cp_to_byte[cp] >= 0) {
                    d.push_back(static_cast<char>(table.cp_to_byte[cp]));
                } else {
                    d.append(p, pos, n);  // not a byte symbol: keep the text as stored
                }
                pos += n;
            }
        }
    }

    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
        thread_local std::vector<BpeSymbol> symbols;
        symbols.clear();
        const auto n = static_cast<int32_t>(piece.size());
        for (int32_t i = 0; i < n; ++i) {
            symbols.push_back({byte_to_id_[static_cast<uint8_t>(piece[static_cast<size_t>(i)])], i - 1,
                               i + 1 < n ? i + 1 : -1});
        }
        bpe_merge(symbols, merges_);
        for (int32_t i = 0; i != -1 && n > 0; i = symbols[static_cast<size_t>(i)].next) {
            const int32_t id = symbols[static_cast<size_t>(i)].id;
            // A byte the vocabulary lacks (never for GPT-2-style vocabularies)
            // becomes <unk> if there is one.
            if (id >= 0) {
                out.push_back(id);
            } else if (vocab_.unk >= 0) {
                out.push_back(vocab_.unk);
            }
        }
        release_if_large(symbols);
    }

    PieceMap piece_to_id_;
    std::unique_ptr<PreTokenizer> pre_tokenizer_;
    int32_t byte_to_id_[256];
    MergeMap merges_;
    std::vector<std::string> decoded_;  // bytes each token decodes to

    WordCache cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(Vocab vocab) {
    return std::make_unique<ByteBpeTokenizer>(std::move(vocab));
}

}  // namespace memskew::detail
