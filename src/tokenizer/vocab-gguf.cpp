// Reading tokenizer.ggml.* from GGUF. Kept apart from vocab.cpp so that
// programs using only built-in vocabularies do not pull in the GGUF reader.
#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "memskew/tokenizer.h"

namespace memskew {

namespace {

// Special token ids are stored as uint32 or int32; llama.cpp writes
// 0xFFFFFFFF (or -1) for "none".
int32_t read_token_id(const GgufFile& gguf, const std::string& key, int32_t fallback) {
    const GgufValue* v = gguf.find(key);
    if (!v) return fallback;
    const int64_t id = v->as_int(key);
    if (id == -1 || id == 0xFFFFFFFFLL) return -1;
    if (id < -1 || id > INT32_MAX) {
        throw FormatError(fmt::format("{} = {} is not a valid token id", key, id));
    }
    return static_cast<int32_t>(id);
}

bool read_bool(const GgufFile& gguf, const std::string& key, bool fallback) {
    const GgufValue* v = gguf.find(key);
    return v ? v->as_bool(key) : fallback;
}

}  // namespace

Vocab vocab_from_gguf(const GgufFile& gguf) {
    Vocab v;
    v.model = gguf.get("tokenizer.ggml.model").as_string("tokenizer.ggml.model");
    const bool is_llama = v.model == "llama";
    if (const GgufValue* pre = gguf.find("tokenizer.ggml.pre")) v.pre = pre->as_string("tokenizer.ggml.pre");
    v.tokens = gguf.get("tokenizer.ggml.tokens").as_strings("tokenizer.ggml.tokens");
    if (const GgufValue* s = gguf.find("tokenizer.ggml.scores")) v.scores = s->as_floats("tokenizer.ggml.scores");
    if (const GgufValue* t = gguf.find("tokenizer.ggml.token_type")) {
        const std::vector<int64_t> types = t->as_ints("tokenizer.ggml.token_type");
        v.types.reserve(types.size());
        for (size_t i = 0; i < types.size(); ++i) {
            if (types[i] < 0 || types[i] > static_cast<int64_t>(TokenType::kByte)) {
                throw FormatError(fmt::format("tokenizer.ggml.token_type[{}] = {} is not a known token type (0-6)",
                                              i, types[i]));
            }
            v.types.push_back(static_cast<int32_t>(types[i]));
        }
    }
    if (v.model == "gpt2") {
        v.merges = gguf.get("tokenizer.ggml.merges").as_strings("tokenizer.ggml.merges");
    } else if (const GgufValue* m = gguf.find("tokenizer.ggml.merges")) {
        v.merges = m->as_strings("tokenizer.ggml.merges");
    }
    // llama.cpp's defaults when the keys are absent: SentencePiece vocabularies
    // put <unk>, <s>, </s> at 0, 1, 2 and add BOS and the space prefix.
    v.bos = read_token_id(gguf, "tokenizer.ggml.bos_token_id", is_llama ? 1 : -1);
    v.eos = read_token_id(gguf, "tokenizer.ggml.eos_token_id", is_llama ? 2 : -1);
    v.unk = read_token_id(gguf, "tokenizer.ggml.unknown_token_id", is_llama ? 0 : -1);
    v.pad = read_token_id(gguf, "tokenizer.ggml.padding_token_id", -1);
    const auto n = static_cast<int64_t>(v.tokens.size());
    if (is_llama) {
        // Defaults that do not fit a small vocabulary mean "none", not an error.
        if (!gguf.find("tokenizer.ggml.bos_token_id") && v.bos >= n) v.bos = -1;
        if (!gguf.find("tokenizer.ggml.eos_token_id") && v.eos >= n) v.eos = -1;
        if (!gguf.find("tokenizer.ggml.unknown_token_id") && v.unk >= n) v.unk = -1;
    }
    v.add_bos = read_bool(gguf, "tokenizer.ggml.add_bos_token", is_llama);
    v.add_eos = read_bool(gguf, "tokenizer.ggml.add_eos_token", false);
    v.add_space_prefix = read_bool(gguf, "tokenizer.ggml.add_space_prefix", is_llama);
    return v;
}

std::unique_ptr<Tokenizer> load_tokenizer_gguf(const std::string& path) {
    return with_context("error loading tokenizer from " + path, [&] {
        const auto gguf = GgufFile::open(path);
        return Tokenizer::from_vocab(vocab_from_gguf(*gguf));
    });
}

}  // namespace memskew
