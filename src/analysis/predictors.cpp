// METHOD M9: term-wise (M_t) and sequence-level (M_b) optimal predictors from
// a trie over the (prompt, reference) pairs of a run.
//
// The trie is never built as nodes. A context (x, r_<j) is identified by a
// 64-bit rolling hash h_j = xxh3(r_j, seed = h_{j-1}), h_0 = the prompt key,
// and the counts of its continuations live in flat open-addressing maps
// (child hash -> count; parent hash -> majority so far). The maps are built
// one depth j at a time over the samples whose context at j is still shared
// with another sample, then dropped: a context reached by a single sample has
// one continuation, its own, which is trivially the unique majority, and so
// are all its descendants. Most prompts are unique, so memory stays O(samples
// with shared contexts) per level instead of O(M L). Hash collisions (two
// different contexts with one 64-bit hash) are possible in principle; at
// 64M contexts the chance is ~1e-4 and it would merge two contexts' counts.
#include <algorithm>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "analysis/analysis-impl.h"

namespace memskew::analysis_detail {

namespace {

uint64_t extend(uint64_t context, int32_t token) { return XXH3_64bits_withSeed(&token, sizeof token, context); }

// uint64 -> V with linear probing; key 0 is remapped (it marks empty slots).
template <typename V>
class FlatU64Map {
public:
    explicit FlatU64Map(std::size_t n) {
        std::size_t cap = 16;
        while (cap < 2 * n) cap *= 2;
        keys_.assign(cap, 0);
        values_.assign(cap, V{});
        mask_ = cap - 1;
    }
    // The value of key, default-constructed on first access.
    V& operator[](uint64_t key) {
        key = key ? key : 1;
        for (std::size_t k = mix(key) & mask_;; k = (k + 1) & mask_) {
            if (keys_[k] == key) return values_[k];
            if (keys_[k] == 0) {
                keys_[k] = key;
                ++size_;
                return values_[k];
            }
        }
    }
    std::size_t size() const { return size_; }
    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (std::size_t k = 0; k < keys_.size(); ++k)
            if (keys_[k]) fn(keys_[k], values_[k]);
    }

private:
    // The keys are already hashes, but mixing keeps sequential remapped keys apart.
    static uint64_t mix(uint64_t x) { return (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ULL; }
    std::vector<uint64_t> keys_;
    std::vector<V> values_;
    std::size_t mask_ = 0, size_ = 0;
};

// The running majority of a context's continuations. Counts grow by one at a
// time, so a continuation that passes best_count is the unique maximum, and
// one that reaches it is a tie.
struct Majority {
    uint64_t best = 0;  // token (or full-reference hash) with the highest count
    uint32_t best_count = 0;
    uint32_t n_distinct = 0;
    bool tie = false;
    void add(uint64_t what, uint32_t new_count) {
        if (new_count == 1) ++n_distinct;
        if (new_count > best_count) {
            tie = false;
            best = what;
            best_count = new_count;
        } else if (new_count == best_count && what != best) {
            tie = true;
        }
    }
};

}  // namespace

PredictorSection compute_predictors(const PredictorInput& input, const RunColumns& columns,
                                    std::size_t max_examples) {
    PredictorSection out;
    out.prompt_key = input.prompt_key_kind;
    const auto& S = input.samples;
    const std::size_t n = S.size();
    out.n_samples = static_cast<int64_t>(n);
    if (n == 0) {
        out.skipped = "no token arrays stored for this run";
        return out;
    }
    auto ref = [&](std::size_t i, std::size_t j) { return input.reference[S[i].offset + j]; };
    auto arg = [&](std::size_t i, std::size_t j) { return input.argmax[S[i].offset + j]; };

    // Prompts and M_b (the most frequent full reference per prompt).
    FlatU64Map<uint32_t> prompt_count(n);
    for (const auto& s : S) {
        ++prompt_count[s.prompt_key];
        if (!s.has_prompt) ++out.n_samples_without_prompt;
    }
    out.n_prompts = static_cast<int64_t>(prompt_count.size());
    std::vector<uint64_t> ref_hash(n);
    FlatU64Map<uint32_t> pair_count(n);
    FlatU64Map<Majority> mb(n);
    for (std::size_t i = 0; i < n; ++i) {
        ref_hash[i] = XXH3_64bits(input.reference.data() + S[i].offset, S[i].length * sizeof(int32_t));
        const uint32_t c = ++pair_count[XXH3_64bits_withSeed(&ref_hash[i], sizeof(uint64_t), S[i].prompt_key)];
        mb[S[i].prompt_key].add(ref_hash[i], c);
    }
    prompt_count.for_each([&](uint64_t, uint32_t c) {
        if (c >= 2) {
            ++out.n_shared_prompts;
            out.n_samples_shared_prompt += c;
        }
    });
    for (std::size_t i = 0; i < n; ++i) {
        const Majority& m = mb[S[i].prompt_key];
        if (!m.tie && m.best == ref_hash[i]) {
            ++out.n_mb_majority;
            if (S[i].exact) ++out.n_mb_exact;
        } else if (S[i].exact) {
            ++out.n_exact_not_mb;
        }
    }

    // Per sample: the first position where the model's argmax leaves the
    // reference (= L: none), and whether that position's r_j is the unique majority.
    std::vector<uint32_t> diverge(n);
    for (std::size_t i = 0; i < n; ++i) {
        uint32_t d = 0;
        while (d < S[i].length && arg(i, d) == ref(i, d)) ++d;
        diverge[i] = d;
    }
    // depth_trivial[i]: from this position on, sample i's context is its own.
    std::vector<uint32_t> trivial_from(n, 0);
    std::vector<uint8_t> diverge_majority(n, 1);
    // First position whose r_j is not the unique majority continuation (= L: none).
    std::vector<uint32_t> first_ambiguous(n);
    for (std::size_t i = 0; i < n; ++i) first_ambiguous[i] = S[i].length;
    std::vector<std::size_t> active;
    std::vector<uint64_t> context(n);
    for (std::size_t i = 0; i < n; ++i) {
        context[i] = S[i].prompt_key;
        if (prompt_count[S[i].prompt_key] >= 2) active.push_back(i);
    }
    for (uint32_t j = 0; !active.empty(); ++j) {
        // Drop samples whose reference ends before position j.
        active.erase(std::remove_if(active.begin(), active.end(),
                                    [&](std::size_t i) {
                                        if (S[i].length > j) return false;
                                        trivial_from[i] = S[i].length;
                                        return true;
                                    }),
                     active.end());
        if (active.empty()) break;
        FlatU64Map<uint32_t> child(active.size());
        FlatU64Map<Majority> parent(active.size());
        std::vector<uint64_t> next(active.size());
        for (std::size_t a = 0; a < active.size(); ++a) {
            const std::size_t i = active[a];
            const int32_t r = ref(i, j);
            next[a] = extend(context[i], r);
            parent[context[i]].add(static_cast<uint32_t>(r), ++child[next[a]]);
        }
        parent.for_each([&](uint64_t, const Majority& m) {
            if (m.n_distinct >= 2) ++out.n_ambiguous_contexts;
        });
        std::vector<std::size_t> still;
        still.reserve(active.size());
        for (std::size_t a = 0; a < active.size(); ++a) {
            const std::size_t i = active[a];
            const Majority& m = parent[context[i]];
            const bool majority = !m.tie && m.best == static_cast<uint32_t>(ref(i, j));
            ++out.n_positions;
            if (m.tie) ++out.n_tie;
            if (majority) ++out.n_majority;
            if (!m.tie && m.best == static_cast<uint32_t>(arg(i, j))) ++out.n_model_agrees;
            if (diverge[i] == j) diverge_majority[i] = majority ? 1 : 0;
            if (!majority && first_ambiguous[i] > j) first_ambiguous[i] = j;
            if (child[next[a]] >= 2) {
                context[i] = next[a];
                still.push_back(i);
            } else {
                trivial_from[i] = j + 1;
            }
        }
        active.swap(still);
    }
    out.unambiguous_prefix.assign(columns.size(), -1);
    for (std::size_t i = 0; i < n; ++i) out.unambiguous_prefix[S[i].column] = first_ambiguous[i];
    // Positions in a context of its own: r_j is the unique continuation.
    int64_t n_examples = 0;
    for (std::size_t i = 0; i < n; ++i) {
        for (uint32_t j = trivial_from[i]; j < S[i].length; ++j) {
            ++out.n_positions;
            ++out.n_majority;
            if (arg(i, j) == ref(i, j)) ++out.n_model_agrees;
        }
        if (diverge[i] < S[i].length) {
            ++out.n_diverged;
            if (diverge_majority[i]) {
                ++out.divergence.model;
            } else {
                ++out.divergence.data_ambiguous;
                if (n_examples < static_cast<int64_t>(max_examples)) {
                    out.ambiguous_examples.push_back(columns.sample_id[S[i].column]);
                    ++n_examples;
                }
            }
        }
    }
    return out;
}

}  // namespace memskew::analysis_detail
