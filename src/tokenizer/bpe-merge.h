// The BPE merge loop both BPE tokenizers share (GGUF byte-level BPE and
// tokenizer.json's BPE model): a word's symbols are merged pair by pair, the
// adjacent pair with the lowest merge rank first (the leftmost on ties), as
// Hugging Face's Word::merge_all does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokenizer/flat-map.h"
#include "tokenizer/tokenizer-impl.h"

namespace memskew::detail {

struct MergeResult {
    int32_t rank;
    int32_t id;  // the merged token
};

inline uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// (left id, right id) -> rank and merged id.
using MergeMap = U64Map<MergeResult>;

// One symbol of a word: a token id (< 0: never merges) in a list linked
// through indices (prev/next, -1 at the ends).
struct BpeSymbol {
    int32_t id;
    int32_t prev, next;
};

// Merges the word `symbols` (symbols[0] first, linked in order) in place.
// A queued pair whose symbols changed since it was queued still applies when
// the pair now at its position merges into the same token (Hugging Face's
// rule; llama.cpp's check of the pair's byte length amounts to the same).
// Afterwards read the result by following next from index 0; merged-away
// symbols have id -1.
inline void bpe_merge(std::vector<BpeSymbol>& symbols, const MergeMap& merges) {
    struct Candidate {
        int32_t rank;
        int32_t pos;
        int32_t new_id;
    };
    struct CandidateGreater {
        bool operator()(const Candidate& a, const Candidate& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos);
        }
    };
    thread_local std::vector<Candidate> heap;
    heap.clear();
    auto push = [&](int32_t pos, int32_t left_id, int32_t right_id) {
        if (left_id < 0 || right_id < 0) return;
        const MergeResult* m = merges.find(pair_key(left_id, right_id));
        if (!m) return;
        heap.push_back({m->rank, pos, m->id});
        std::push_heap(heap.begin(), heap.end(), CandidateGreater{});
    };
    const auto n = static_cast<int32_t>(symbols.size());
    for (int32_t i = 0; i + 1 < n; ++i)
        push(i, symbols[static_cast<size_t>(i)].id, symbols[static_cast<size_t>(i) + 1].id);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), CandidateGreater{});
        const Candidate top = heap.back();
        heap.pop_back();
        BpeSymbol& l = symbols[static_cast<size_t>(top.pos)];
        if (l.id < 0 || l.next < 0) continue;  // merged away, or last
        BpeSymbol& r = symbols[static_cast<size_t>(l.next)];
        if (r.id < 0) continue;
        const MergeResult* m = merges.find(pair_key(l.id, r.id));
        if (!m || m->id != top.new_id) continue;  // stale: the pair now there merges into something else
        l.id = top.new_id;
        r.id = -1;
        l.next = r.next;
        if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = top.pos;
        if (l.prev >= 0) push(l.prev, symbols[static_cast<size_t>(l.prev)].id, l.id);
        if (l.next >= 0) push(top.pos, l.id, symbols[static_cast<size_t>(l.next)].id);
    }
    release_if_large(heap);
}

}  // namespace memskew::detail
