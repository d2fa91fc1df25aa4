// MinHash + LSH near-duplicate clusters (see include/memskew/near-duplicates.h).
#include "memskew/near-duplicates.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "memskew/error.h"

namespace memskew {

namespace {

constexpr uint64_t kMersenne61 = (uint64_t{1} << 61) - 1;

// (a * x + b) mod (2^61 - 1) for a, b, x < 2^61, without division.
inline uint64_t mul_add_mod61(uint64_t a, uint64_t x, uint64_t b) {
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * x + b;
    uint64_t r = static_cast<uint64_t>(p & kMersenne61) + static_cast<uint64_t>(p >> 61);
    r = (r & kMersenne61) + (r >> 61);
    return r >= kMersenne61 ? r - kMersenne61 : r;
}

void check(const NearDuplicateParams& p) {
    if (p.shingle < 1) throw InvalidInput(fmt::format("near-duplicates: shingle size {} must be at least 1", p.shingle));
    if (p.n_permutations < 1 || p.n_bands < 1 || p.n_permutations % p.n_bands != 0)
        throw InvalidInput(fmt::format("near-duplicates: {} permutations cannot be split into {} bands",
                                       p.n_permutations, p.n_bands),
                           "use a number of bands that divides the number of permutations (e.g. 128 and 16)");
    if (!(p.threshold >= 0.0 && p.threshold <= 1.0))
        throw InvalidInput(fmt::format("near-duplicates: threshold {} must be in [0, 1]", p.threshold));
}

// The 64-bit hashes of a sequence's shingles (the set is what matters:
// repeats give the same hash, and a minimum ignores them).
template <typename Fn>
void for_each_shingle_hash(const std::vector<int32_t>& tokens, int shingle, Fn&& fn) {
    if (tokens.empty()) return;
    const size_t k = std::min<size_t>(static_cast<size_t>(shingle), tokens.size());
    for (size_t i = 0; i + k <= tokens.size(); ++i) fn(XXH3_64bits(tokens.data() + i, k * sizeof(int32_t)));
}

struct Permutations {
    std::vector<uint64_t> a, b;
    Permutations(int n, uint64_t seed) : a(static_cast<size_t>(n)), b(static_cast<size_t>(n)) {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < n; ++i) {
            a[static_cast<size_t>(i)] = 1 + rng() % (kMersenne61 - 1);
            b[static_cast<size_t>(i)] = rng() % kMersenne61;
        }
    }
};

std::vector<uint64_t> signature_with(const std::vector<int32_t>& tokens, const NearDuplicateParams& p,
                                     const Permutations& perm) {
    std::vector<uint64_t> sig(static_cast<size_t>(p.n_permutations), std::numeric_limits<uint64_t>::max());
    for_each_shingle_hash(tokens, p.shingle, [&](uint64_t h) {
        const uint64_t x = h & kMersenne61;
        for (size_t i = 0; i < sig.size(); ++i) sig[i] = std::min(sig[i], mul_add_mod61(perm.a[i], x, perm.b[i]));
    });
    return sig;
}

// Union-find with path halving and union by size.
struct DisjointSets {
    std::vector<int64_t> parent, size;
    explicit DisjointSets(size_t n) : parent(n), size(n, 1) { std::iota(parent.begin(), parent.end(), 0); }
    int64_t find(int64_t x) {
        while (parent[static_cast<size_t>(x)] != x) {
            parent[static_cast<size_t>(x)] = parent[static_cast<size_t>(parent[static_cast<size_t>(x)])];
            x = parent[static_cast<size_t>(x)];
        }
        return x;
    }
    void unite(int64_t a, int64_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return;
        if (size[static_cast<size_t>(a)] < size[static_cast<size_t>(b)]) std::swap(a, b);
        parent[static_cast<size_t>(b)] = a;
        size[static_cast<size_t>(a)] += size[static_cast<size_t>(b)];
    }
};

}  // namespace

std::vector<uint64_t> minhash_signature(const std::vector<int32_t>& tokens, const NearDuplicateParams& params) {
    check(params);
    return signature_with(tokens, params, Permutations(params.n_permutations, params.seed));
}

double estimated_jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
    if (a.size() != b.size() || a.empty())
        throw InvalidInput(fmt::format("MinHash signatures of {} and {} values cannot be compared", a.size(), b.size()));
    size_t same = 0;
    for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
    return static_cast<double>(same) / static_cast<double>(a.size());
}

double exact_jaccard(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int shingle) {
    std::unordered_set<uint64_t> sa, sb;
    for_each_shingle_hash(a, shingle, [&](uint64_t h) { sa.insert(h); });
    for_each_shingle_hash(b, shingle, [&](uint64_t h) { sb.insert(h); });
    if (sa.empty() && sb.empty()) return 1.0;
    size_t inter = 0;
    for (uint64_t h : sa) inter += sb.count(h);
    return static_cast<double>(inter) / static_cast<double>(sa.size() + sb.size() - inter);
}

NearDuplicateClusters near_duplicate_clusters(const std::vector<std::vector<int32_t>>& docs,
                                              const NearDuplicateParams& p) {
    check(p);
    const Permutations perm(p.n_permutations, p.seed);
    std::vector<std::vector<uint64_t>> sigs(docs.size());
    for (size_t i = 0; i < docs.size(); ++i) sigs[i] = signature_with(docs[i], p, perm);
    return near_duplicate_clusters_of_signatures(sigs, p);
}

NearDuplicateClusters near_duplicate_clusters_of_signatures(const std::vector<std::vector<uint64_t>>& sigs,
                                                            const NearDuplicateParams& p) {
    check(p);
    const size_t n = sigs.size();
    for (size_t i = 0; i < n; ++i)
        if (sigs[i].size() != static_cast<size_t>(p.n_permutations))
            throw InvalidInput(fmt::format("MinHash signature {} has {} values, the parameters say {} permutations", i,
                                           sigs[i].size(), p.n_permutations),
                               "compute every signature with the same NearDuplicateParams");
    // An empty document's signature is all-maximum: it has no shingles and is
    // nobody's near-duplicate.
    auto empty = [](const std::vector<uint64_t>& sig) {
        return std::all_of(sig.begin(), sig.end(), [](uint64_t v) { return v == std::numeric_limits<uint64_t>::max(); });
    };

    NearDuplicateClusters out;
    DisjointSets sets(n);
    const size_t rows = static_cast<size_t>(p.n_permutations / p.n_bands);
    // A pair found in several bands is examined once.
    std::unordered_set<uint64_t> seen;
    for (int band = 0; band < p.n_bands; ++band) {
        std::unordered_map<uint64_t, std::vector<int64_t>> buckets;
        buckets.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            if (empty(sigs[i])) continue;
            const uint64_t key =
                XXH3_64bits_withSeed(sigs[i].data() + static_cast<size_t>(band) * rows, rows * sizeof(uint64_t),
                                     static_cast<uint64_t>(band));
            buckets[key].push_back(static_cast<int64_t>(i));
        }
        for (const auto& [key, members] : buckets) {
            for (size_t x = 1; x < members.size(); ++x) {
                for (size_t y = 0; y < x; ++y) {
                    const int64_t i = members[y], j = members[x];
                    const uint64_t pair = (static_cast<uint64_t>(i) << 32) | static_cast<uint64_t>(j);
                    if (!seen.insert(pair).second) continue;
                    out.n_candidate_pairs++;
                    if (estimated_jaccard(sigs[static_cast<size_t>(i)], sigs[static_cast<size_t>(j)]) >= p.threshold) {
                        out.n_kept_pairs++;
                        sets.unite(i, j);
                    }
                }
            }
        }
    }
    // Cluster ids: the smallest index of each component.
    std::vector<int64_t> smallest(n, -1);
    for (size_t i = 0; i < n; ++i) {
        const int64_t r = sets.find(static_cast<int64_t>(i));
        if (smallest[static_cast<size_t>(r)] < 0) smallest[static_cast<size_t>(r)] = static_cast<int64_t>(i);
    }
    out.cluster.resize(n);
    out.cluster_size.resize(n);
    for (size_t i = 0; i < n; ++i) {
        const int64_t r = sets.find(static_cast<int64_t>(i));
        out.cluster[i] = smallest[static_cast<size_t>(r)];
        out.cluster_size[i] = sets.size[static_cast<size_t>(r)];
        if (out.cluster[i] == static_cast<int64_t>(i) && out.cluster_size[i] > 1) out.n_clusters++;
    }
    return out;
}

}  // namespace memskew
