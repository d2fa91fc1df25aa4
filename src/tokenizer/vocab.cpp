// Vocabulary plumbing shared by the tokenizers: validation, lookup maps, the
// built-in byte vocabulary and the factory.
#include <cmath>
#include <new>

#include <fmt/format.h>
#include <xxhash.h>

#include "memskew/error.h"
#include "memskew/tokenizer.h"
#include "tokenizer/tokenizer-impl.h"
#include "tokenizer/unicode-util.h"

namespace memskew {

namespace detail {

void validate_vocab(const Vocab& vocab) {
    const size_t n = vocab.tokens.size();
    if (n == 0) {
        throw FormatError("empty vocabulary (tokenizer.ggml.tokens has no entries)",
                          "the file may be a weights-only export without a tokenizer");
    }
    if (n > static_cast<size_t>(INT32_MAX)) {
        throw FormatError(fmt::format("vocabulary of {} tokens is too large for int32 ids", n));
    }
    if (!vocab.scores.empty() && vocab.scores.size() != n) {
        throw FormatError(fmt::format("tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
                                      vocab.scores.size(), n));
    }
    for (size_t i = 0; i < vocab.scores.size(); ++i) {
        // NaN would break the strict ordering the merge queue relies on.
        if (std::isnan(vocab.scores[i])) {
            throw FormatError(fmt::format("tokenizer.ggml.scores[{}] (token '{}') is NaN", i, vocab.tokens[i]));
        }
    }
    if (!vocab.types.empty() && vocab.types.size() != n) {
        throw FormatError(fmt::format(
            "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}", vocab.types.size(), n));
    }
    auto check_special = [&](int32_t id, const char* key) {
        if (id < -1 || id >= static_cast<int64_t>(n)) {
            throw FormatError(fmt::format("{} = {} is outside the vocabulary of {} tokens", key, id, n),
                              "the special token ids do not belong to this vocabulary");
        }
    };
    check_special(vocab.bos, "tokenizer.ggml.bos_token_id");
    check_special(vocab.eos, "tokenizer.ggml.eos_token_id");
    check_special(vocab.unk, "tokenizer.ggml.unknown_token_id");
    check_special(vocab.pad, "tokenizer.ggml.padding_token_id");
}

void check_id(int32_t id, int32_t n_vocab) {
    if (id < 0 || id >= n_vocab) {
        throw InvalidInput(fmt::format("token id {} is outside the vocabulary [0, {})", id, n_vocab),
                           "the ids were produced by a different tokenizer or model");
    }
}

TokenType token_type(const Vocab& vocab, int32_t id) {
    if (vocab.types.empty()) return TokenType::kNormal;
    return static_cast<TokenType>(vocab.types[static_cast<size_t>(id)]);
}

}  // namespace detail

const std::string& Tokenizer::piece(int32_t id) const {
    detail::check_id(id, n_vocab());
    return vocab_.tokens[static_cast<size_t>(id)];
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(Vocab vocab) {
    if (vocab.model == "llama") {
        detail::validate_vocab(vocab);
        return detail::make_spm_tokenizer(std::move(vocab));
    }
    if (vocab.model == "gpt2") {
        detail::validate_vocab(vocab);
        return detail::make_byte_bpe_tokenizer(std::move(vocab));
    }
    throw FormatError("unsupported tokenizer model '" + vocab.model + "' (tokenizer.ggml.model)",
                      "supported: llama (SentencePiece-style BPE), gpt2 (byte-level BPE)");
}

Vocab make_byte_vocab() {
    const auto& table = unicode::byte_unicode_table();
    Vocab v;
    v.model = "gpt2";
    v.pre = "default";
    v.tokens.reserve(258);
    for (int b = 0; b < 256; ++b) v.tokens.push_back(table.byte_to_utf8[static_cast<size_t>(b)]);
    v.tokens.emplace_back("<s>");
    v.tokens.emplace_back("</s>");
    v.types.assign(256, static_cast<int32_t>(TokenType::kNormal));
    v.types.push_back(static_cast<int32_t>(TokenType::kControl));
    v.types.push_back(static_cast<int32_t>(TokenType::kControl));
    v.bos = 256;
    v.eos = 257;
    v.add_bos = true;
    v.add_eos = false;
    v.add_space_prefix = false;
    return v;
}

std::string tokenizer_fingerprint(const Tokenizer& tok) {
    const Vocab& v = tok.vocab();
    XXH3_state_t* state = XXH3_createState();
    if (state == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state);
    auto add = [&](const void* p, size_t n) { XXH3_64bits_update(state, p, n); };
    // Length-prefixed pieces: "ab" + "c" and "a" + "bc" must differ.
    auto add_string = [&](const std::string& s) {
        const uint64_t n = s.size();
        add(&n, sizeof n);
        add(s.data(), s.size());
    };
    add_string(v.model);
    const uint64_t n_tokens = v.tokens.size();
    add(&n_tokens, sizeof n_tokens);
    for (const std::string& t : v.tokens) add_string(t);
    const int32_t special[4] = {v.bos, v.eos, v.unk, v.pad};
    add(special, sizeof special);
    const uint64_t h = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return fmt::format("xxh3:{:016x}", h);
}

}  // namespace memskew
