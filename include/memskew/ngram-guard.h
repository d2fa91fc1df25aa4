// A decoding guard against verbatim reproduction (MemFree decoding, Ippolito
// et al. 2022): greedy generation that never emits a token completing an
// n-gram of the training references. This is the exact n-gram map the engine
// consults (GenerateParams::guard, memskew/engine.h); it is LibTorch-free.
//
// The map: every (n-1)-gram of the training sequences -> the sorted set of
// tokens that follow it somewhere in them. The table is keyed by a 64-bit hash
// of the (n-1)-gram, but every hit is confirmed against the (n-1)-gram's ids
// (kept in the guard), so the answer is exact: a hash collision costs a probe,
// never a false block or a missed one (unlike the Bloom filter of the paper).
//
// A guard holds token ids, so it is only valid with the tokenizer that made
// them: it carries that tokenizer's fingerprint (tokenizer_fingerprint(),
// memskew/tokenizer.h) and the engine refuses a guard whose fingerprint is not
// the model's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace memskew {

// Hash of `count` token ids (XXH3-64 of their bytes).
uint64_t ngram_hash(const int32_t* ids, std::size_t count);
// The hash the map is keyed by; a seam so tests can force collisions.
using NgramHashFn = uint64_t (*)(const int32_t* ids, std::size_t count);

struct NgramGuardParams {
    // tokenizer_fingerprint() of the tokenizer that produced the sequences.
    std::string tokenizer_fingerprint;
    // n may not exceed the model's context (<= 0: no limit): an n-gram longer
    // than any sequence the model sees blocks nothing.
    int64_t max_context = 0;
    NgramHashFn hash = nullptr;  // nullptr: ngram_hash
};

// A read-only view of the sorted tokens blocked after one context (C++17 has no std::span).
class BlockedTokens {
public:
    BlockedTokens() = default;
    BlockedTokens(const int32_t* data, std::size_t size) : data_(data), size_(size) {}
    const int32_t* begin() const { return data_; }
    const int32_t* end() const { return data_ + size_; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    int32_t operator[](std::size_t i) const { return data_[i]; }
    bool contains(int32_t token) const { return std::binary_search(begin(), end(), token); }

private:
    const int32_t* data_ = nullptr;
    std::size_t size_ = 0;
};

class NgramGuard {
public:
    // Every n-gram of `sequences` (sequences shorter than n contribute none).
    // Throws InvalidInput for n < 2 (a 1-gram guard would block tokens with no
    // context at all), n above params.max_context, a negative token id, or
    // more than 2^32 - 2 tokens in all.
    static NgramGuard build(const std::vector<std::vector<int32_t>>& sequences, int n,
                            const NgramGuardParams& params = {});

    // Tokens that would complete a training n-gram after `context`, the last
    // n-1 tokens (context[0] the oldest); sorted ascending, empty if none.
    BlockedTokens blocked(const int32_t* context) const;
    // The same after a whole history (prompt ‖ generated so far); empty while
    // the history is shorter than n-1 tokens.
    BlockedTokens blocked_after(const std::vector<int32_t>& history) const;
    bool blocks(const int32_t* context, int32_t token) const { return blocked(context).contains(token); }

    int n() const { return n_; }
    std::size_t n_contexts() const { return offsets_.empty() ? 0 : offsets_.size() - 1; }  // distinct (n-1)-grams
    std::size_t n_ngrams() const { return tokens_.size(); }  // distinct n-grams
    std::size_t n_sequences() const { return n_sequences_; }
    std::size_t n_source_tokens() const { return n_source_tokens_; }  // tokens of all sequences
    // Heap bytes held (the table, the keys, the token lists).
    std::size_t memory_bytes() const;
    double build_seconds() const { return build_seconds_; }
    const std::string& tokenizer_fingerprint() const { return tokenizer_fingerprint_; }

private:
    NgramGuard() = default;
    // Slot index of `context` in slots_, or slots_.size() when absent.
    std::size_t find_slot(const int32_t* context, uint64_t h) const;
    void rehash(std::size_t capacity);

    // Open addressing with linear probing; a slot is {context index + 1
    // (0 = empty), the hash's upper 32 bits} so most misses end without
    // touching the keys.
    struct Slot {
        uint32_t context = 0;
        uint32_t tag = 0;
    };
    int n_ = 0;
    NgramHashFn hash_ = nullptr;
    std::vector<Slot> slots_;        // power-of-two size
    std::vector<int32_t> keys_;      // the sequences' tokens, concatenated: the (n-1)-grams' ids
    std::vector<uint32_t> key_at_;   // [contexts]: where each context's ids start in keys_
    std::vector<uint32_t> offsets_;  // [contexts + 1]: each context's tokens in tokens_
    std::vector<int32_t> tokens_;    // blocked tokens, sorted per context
    std::size_t n_sequences_ = 0, n_source_tokens_ = 0;
    double build_seconds_ = 0.0;
    std::string tokenizer_fingerprint_;
};

// ---------------------------------------------------------------------------
// Built from a training set (LibTorch side: src/pipeline/guard-build.cpp,
// library memskew)
// ---------------------------------------------------------------------------

struct TrainParams;  // memskew/train.h
class Tokenizer;     // memskew/tokenizer.h

struct TrainingGuardParams {
    int n = 10;
    // Also the n-grams of the prompt and across the prompt/reference boundary
    // (prompt ‖ reference ‖ EOS). Default: the references (+ EOS when
    // training appended it), the tokens training's loss teaches.
    bool include_prompt = false;
};

// The guard of a training set, read and encoded exactly as train_model() feeds
// it (encode_training_set(): same template, truncation, max_context and EOS
// decision), so its ids are the trained ids. Carries tokenizer_fingerprint(tok).
NgramGuard build_training_guard(const TrainParams& training, const Tokenizer& tok, int64_t max_context,
                                const TrainingGuardParams& params = {});

}  // namespace memskew
