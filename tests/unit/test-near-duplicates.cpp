// MinHash + LSH near-duplicate clusters. Independent sources:
//   - Jaccard similarities computed in this test from std::set of 5-gram
//     token vectors (no hashing), against both exact_jaccard() and the
//     MinHash estimate, whose error is binomial: sd = sqrt(J (1 - J) / 128),
//     on a grid of 1/128 (so the bound below adds one step);
//   - clusters known by construction (edited copies of a few documents among
//     unrelated ones);
//   - real text: medquad answers from ../shared, each against a copy with
//     one sentence removed (skipped without ../shared).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "memskew/data.h"
#include "memskew/error.h"
#include "memskew/near-duplicates.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;

namespace {

using Tokens = std::vector<int32_t>;

double jaccard_by_sets(const Tokens& a, const Tokens& b, size_t k = 5) {
    auto shingles = [&](const Tokens& t) {
        std::set<Tokens> s;
        const size_t n = std::min(k, t.size());
        for (size_t i = 0; i + n <= t.size() && n > 0; ++i) s.insert(Tokens(t.begin() + i, t.begin() + i + n));
        return s;
    };
    const auto sa = shingles(a), sb = shingles(b);
    size_t inter = 0;
    for (const auto& x : sa) inter += sb.count(x);
    return static_cast<double>(inter) / static_cast<double>(sa.size() + sb.size() - inter);
}

Tokens random_tokens(std::mt19937& rng, size_t n) {
    Tokens t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 5000);
    return t;
}

// Replaces `n_edits` random positions with new tokens.
Tokens edited(Tokens t, std::mt19937& rng, int n_edits) {
    for (int e = 0; e < n_edits; ++e) t[rng() % t.size()] = static_cast<int32_t>(5000 + rng() % 5000);
    return t;
}

}  // namespace

TEST(NearDuplicates, EstimatesFollowExactJaccard) {
    std::mt19937 rng(5);
    int n_pairs = 0;
    double sum_err = 0;
    for (int edits : {0, 2, 5, 10, 20, 40, 80}) {
        for (int rep = 0; rep < 6; ++rep) {
            const Tokens a = random_tokens(rng, 200);
            const Tokens b = edited(a, rng, edits);
            const double j = jaccard_by_sets(a, b);
            EXPECT_NEAR(exact_jaccard(a, b), j, 1e-12);
            const double est = estimated_jaccard(minhash_signature(a), minhash_signature(b));
            const double sd = std::sqrt(j * (1 - j) / 128.0);
            EXPECT_LE(std::fabs(est - j), 4.5 * sd + 1.0 / 128) << "edits " << edits << " J " << j << " est " << est;
            sum_err += est - j;
            ++n_pairs;
        }
    }
    // Unbiased: the mean error over 42 pairs stays within a few standard errors of 0.
    EXPECT_LT(std::fabs(sum_err / n_pairs), 0.03);
    // Identical sets agree everywhere; disjoint ones (almost) nowhere.
    const Tokens x = random_tokens(rng, 50);
    EXPECT_EQ(estimated_jaccard(minhash_signature(x), minhash_signature(x)), 1.0);
    EXPECT_LT(estimated_jaccard(minhash_signature(x), minhash_signature(random_tokens(rng, 50))), 0.05);
}

TEST(NearDuplicates, ClustersKnownByConstruction) {
    std::mt19937 rng(9);
    const Tokens x = random_tokens(rng, 300), y = random_tokens(rng, 120);
    std::vector<Tokens> docs;
    docs.push_back(random_tokens(rng, 100));  // 0: unique
    docs.push_back(x);                         // 1: cluster X
    docs.push_back(edited(x, rng, 3));         // 2: X, J ~ 0.9
    docs.push_back(y);                         // 3: cluster Y
    docs.push_back(random_tokens(rng, 100));  // 4: unique
    docs.push_back(edited(x, rng, 3));         // 5: X
    docs.push_back(y);                         // 6: Y, exact copy
    docs.push_back({});                        // 7: empty: never a duplicate
    docs.push_back({1, 2, 3});                 // 8: shorter than a shingle: one shingle
    docs.push_back({1, 2, 3});                 // 9: its copy
    const NearDuplicateClusters c = near_duplicate_clusters(docs);
    EXPECT_EQ(c.cluster, (std::vector<int64_t>{0, 1, 1, 3, 4, 1, 3, 7, 8, 8}));
    EXPECT_EQ(c.cluster_size, (std::vector<int64_t>{1, 3, 3, 2, 1, 3, 2, 1, 2, 2}));
    EXPECT_EQ(c.n_clusters, 3);
    EXPECT_GE(c.n_kept_pairs, 4);  // X: 3 pairs (2 suffice to join), Y: 1, the short pair: 1
    // A threshold of 1 keeps only signatures that agree everywhere.
    NearDuplicateParams strict;
    strict.threshold = 1.0;
    const NearDuplicateClusters s = near_duplicate_clusters(docs, strict);
    EXPECT_EQ(s.cluster_size[3], 2);  // exact copies
    EXPECT_EQ(s.cluster_size[8], 2);
}

TEST(NearDuplicates, RealTextWithOneSentenceRemoved) {
    MEMSKEW_REQUIRE_SHARED(path, "data/medquad.jsonl");
    DatasetParams dp;
    dp.limit = 200;
    dp.skip_empty_reference = true;
    dp.dedupe_ids = true;
    const Dataset ds = load_dataset(path, dp);
    auto tok = Tokenizer::from_vocab(make_byte_vocab());
    int n_checked = 0;
    double max_z = 0;
    for (const Sample& s : ds.samples) {
        const std::string& text = s.reference;
        const size_t dot = text.find(". ", text.size() / 3);
        const size_t next = dot == std::string::npos ? dot : text.find(". ", dot + 2);
        if (next == std::string::npos || text.size() < 300) continue;
        const std::string cut = text.substr(0, dot + 2) + text.substr(next + 2);
        const Tokens a = tok->encode(text), b = tok->encode(cut);
        const double j = jaccard_by_sets(a, b);
        const double est = estimated_jaccard(minhash_signature(a), minhash_signature(b));
        const double sd = std::sqrt(j * (1 - j) / 128.0);
        if (sd > 0) max_z = std::max(max_z, std::fabs(est - j) / sd);
        EXPECT_LE(std::fabs(est - j), 4.5 * sd + 1.0 / 128) << s.id << " J " << j << " est " << est;
        ++n_checked;
    }
    std::printf("[minhash] %d medquad pairs, largest |estimate - exact| = %.2f sd\n", n_checked, max_z);
    EXPECT_GT(n_checked, 50);
}

TEST(NearDuplicates, BadParameters) {
    NearDuplicateParams p;
    p.n_bands = 7;
    expect_error<InvalidInput>([&] { near_duplicate_clusters({{1, 2, 3}}, p); }, {"128 permutations", "7 bands"});
    p = {};
    p.shingle = 0;
    expect_error<InvalidInput>([&] { minhash_signature({1}, p); }, {"shingle size 0"});
    p = {};
    p.threshold = 1.5;
    expect_error<InvalidInput>([&] { near_duplicate_clusters({}, p); }, {"threshold 1.5"});
    expect_error<InvalidInput>([] { estimated_jaccard({1, 2}, {1}); }, {"cannot be compared"});
}
