// The exact n-gram map of the decoding guard (memskew/ngram-guard.h).
//
// Build: the sequences are concatenated into keys_ (each context's ids are a
// slice of it, so the exact key costs 4 bytes per training token rather than
// 4 (n-1)); every window of n tokens maps its first n-1 to a context index
// through the hash table, then the windows' last tokens are bucketed by
// context (counting sort), sorted and deduplicated within each bucket.
#include "memskew/ngram-guard.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "memskew/error.h"

namespace memskew {

namespace {

// Slots for m contexts at a load factor of at most 0.7 (linear probing stays
// short), a power of two so the index is a mask.
std::size_t capacity_for(std::size_t m) {
    const std::size_t want = std::max<std::size_t>(16, m + m * 3 / 7 + 1);
    std::size_t c = 16;
    while (c < want) c <<= 1;
    return c;
}

}  // namespace

uint64_t ngram_hash(const int32_t* ids, std::size_t count) { return XXH3_64bits(ids, count * sizeof(int32_t)); }

NgramGuard NgramGuard::build(const std::vector<std::vector<int32_t>>& sequences, int n,
                             const NgramGuardParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    if (n < 2) {
        throw InvalidInput(fmt::format("--guard-n must be at least 2, got {}", n),
                           "the guard blocks the token that completes an n-gram after the n-1 tokens before it; "
                           "MemFree decoding uses n around 10");
    }
    if (params.max_context > 0 && n > params.max_context) {
        throw InvalidInput(fmt::format("--guard-n {} exceeds the model's context of {} tokens", n, params.max_context),
                           "an n-gram longer than the context never occurs in generation; use a smaller n");
    }
    NgramGuard g;
    g.n_ = n;
    g.hash_ = params.hash ? params.hash : ngram_hash;
    g.tokenizer_fingerprint_ = params.tokenizer_fingerprint;
    g.n_sequences_ = sequences.size();
    const std::size_t N = static_cast<std::size_t>(n), k = N - 1;

    std::size_t kept_tokens = 0, windows = 0;
    for (std::size_t s = 0; s < sequences.size(); ++s) {
        const auto& seq = sequences[s];
        g.n_source_tokens_ += seq.size();
        for (int32_t id : seq) {
            if (id < 0) throw InvalidInput(fmt::format("guard sequence {}: token id {} is negative", s, id));
        }
        if (seq.size() < N) continue;  // holds no n-gram
        kept_tokens += seq.size();
        windows += seq.size() - N + 1;
    }
    // uint32 offsets (half the memory of size_t); context index + 1 must fit too.
    if (kept_tokens >= std::numeric_limits<uint32_t>::max()) {
        throw InvalidInput(fmt::format("guard sequences hold {} tokens; at most {} are supported", kept_tokens,
                                       std::numeric_limits<uint32_t>::max() - 1),
                           "build the guard from a subset of the training data (--guard-limit)");
    }

    // Pass 1: each window's context index (find or insert its (n-1)-gram).
    g.keys_.reserve(kept_tokens);  // no reallocation below: window pointers stay valid
    g.slots_.assign(capacity_for(windows), Slot{});
    const std::size_t mask = g.slots_.size() - 1;
    std::vector<uint32_t> window_context;
    window_context.reserve(windows);
    g.key_at_.reserve(windows);
    for (const auto& seq : sequences) {
        if (seq.size() < N) continue;
        const std::size_t base = g.keys_.size();
        g.keys_.insert(g.keys_.end(), seq.begin(), seq.end());
        for (std::size_t i = 0; i + N <= seq.size(); ++i) {
            const int32_t* key = g.keys_.data() + base + i;
            const uint64_t h = g.hash_(key, k);
            const auto tag = static_cast<uint32_t>(h >> 32);
            std::size_t at = static_cast<std::size_t>(h) & mask;
            uint32_t context;
            for (;;) {
                Slot& slot = g.slots_[at];
                if (slot.context == 0) {
                    context = static_cast<uint32_t>(g.key_at_.size());
                    g.key_at_.push_back(static_cast<uint32_t>(base + i));
                    slot = Slot{context + 1, tag};
                    break;
                }
                if (slot.tag == tag &&
                    std::memcmp(g.keys_.data() + g.key_at_[slot.context - 1], key, k * sizeof(int32_t)) == 0) {
                    context = slot.context - 1;
                    break;
                }
                at = (at + 1) & mask;
            }
            window_context.push_back(context);
        }
    }

    // Pass 2: bucket the windows' last tokens by context, then sort and
    // deduplicate each bucket in place (most buckets hold one token).
    const std::size_t C = g.key_at_.size();
    std::vector<uint32_t> fill(C + 1, 0);
    for (uint32_t c : window_context) ++fill[c + 1];
    for (std::size_t c = 0; c < C; ++c) fill[c + 1] += fill[c];
    g.offsets_ = fill;
    g.tokens_.resize(windows);
    std::size_t w = 0;
    for (const auto& seq : sequences) {
        if (seq.size() < N) continue;
        for (std::size_t i = 0; i + N <= seq.size(); ++i, ++w) g.tokens_[fill[window_context[w]]++] = seq[i + k];
    }
    std::size_t out = 0;
    for (std::size_t c = 0; c < C; ++c) {
        const auto first = g.tokens_.begin() + g.offsets_[c], last = g.tokens_.begin() + g.offsets_[c + 1];
        std::sort(first, last);
        const auto unique_end = std::unique(first, last);
        g.offsets_[c] = static_cast<uint32_t>(out);
        out = static_cast<std::size_t>(std::copy(first, unique_end, g.tokens_.begin() + out) - g.tokens_.begin());
    }
    g.offsets_[C] = static_cast<uint32_t>(out);
    g.tokens_.resize(out);
    g.tokens_.shrink_to_fit();
    g.key_at_.shrink_to_fit();
    // Sized for every window; repeated contexts (duplicate samples, common
    // phrases) may leave it far emptier than it needs to be.
    if (capacity_for(C) < g.slots_.size()) g.rehash(capacity_for(C));
    g.build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return g;
}

void NgramGuard::rehash(std::size_t capacity) {
    std::vector<Slot> slots(capacity);
    const std::size_t mask = capacity - 1, k = static_cast<std::size_t>(n_) - 1;
    for (std::size_t c = 0; c < key_at_.size(); ++c) {
        const uint64_t h = hash_(keys_.data() + key_at_[c], k);
        std::size_t at = static_cast<std::size_t>(h) & mask;
        while (slots[at].context != 0) at = (at + 1) & mask;
        slots[at] = Slot{static_cast<uint32_t>(c + 1), static_cast<uint32_t>(h >> 32)};
    }
    slots_ = std::move(slots);
}

std::size_t NgramGuard::find_slot(const int32_t* context, uint64_t h) const {
    const std::size_t mask = slots_.size() - 1, k = static_cast<std::size_t>(n_) - 1;
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (std::size_t at = static_cast<std::size_t>(h) & mask;; at = (at + 1) & mask) {
        const Slot& slot = slots_[at];
        if (slot.context == 0) return slots_.size();
        if (slot.tag == tag && std::memcmp(keys_.data() + key_at_[slot.context - 1], context, k * sizeof(int32_t)) == 0)
            return at;
    }
}

BlockedTokens NgramGuard::blocked(const int32_t* context) const {
    if (key_at_.empty()) return {};
    const std::size_t at = find_slot(context, hash_(context, static_cast<std::size_t>(n_) - 1));
    if (at == slots_.size()) return {};
    const uint32_t c = slots_[at].context - 1;
    return {tokens_.data() + offsets_[c], static_cast<std::size_t>(offsets_[c + 1] - offsets_[c])};
}

BlockedTokens NgramGuard::blocked_after(const std::vector<int32_t>& history) const {
    const std::size_t k = static_cast<std::size_t>(n_) - 1;
    if (history.size() < k) return {};
    return blocked(history.data() + history.size() - k);
}

std::size_t NgramGuard::memory_bytes() const {
    return slots_.capacity() * sizeof(Slot) + keys_.capacity() * sizeof(int32_t) +
           key_at_.capacity() * sizeof(uint32_t) + offsets_.capacity() * sizeof(uint32_t) +
           tokens_.capacity() * sizeof(int32_t) + tokenizer_fingerprint_.capacity();
}

}  // namespace memskew
