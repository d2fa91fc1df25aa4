// Per-sample k-nearest neighbours (METHOD M10): the exact search against a
// brute-force double-precision loop over all pairs written in this test, ties
// and self-exclusion on hand-made rows, the approximate search's recall on
// clustered vectors, the switch between the two, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

#include "memskew/error.h"
#include "memskew/knn.h"
#include "memskew/similarity.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;

namespace {

EmbeddingMatrix random_unit(int64_t n, int64_t d, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> g;
    EmbeddingMatrix e{n, d, std::vector<float>(static_cast<size_t>(n * d))};
    for (auto& v : e.values) v = static_cast<float>(g(rng));
    normalize_rows(e);
    return e;
}

// n vectors around `clusters` random centres (spread: the noise's share).
EmbeddingMatrix clustered_unit(int64_t n, int64_t d, int clusters, double spread, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> g;
    std::vector<double> centres(static_cast<size_t>(clusters * d));
    for (auto& c : centres) c = g(rng);
    EmbeddingMatrix e{n, d, std::vector<float>(static_cast<size_t>(n * d))};
    for (int64_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(rng() % static_cast<uint32_t>(clusters));
        for (int64_t t = 0; t < d; ++t)
            e.values[static_cast<size_t>(i * d + t)] =
                static_cast<float>(centres[static_cast<size_t>(c * d + t)] + spread * g(rng));
    }
    normalize_rows(e);
    return e;
}

double dot(const EmbeddingMatrix& e, int64_t i, int64_t j) {
    double s = 0;
    for (int64_t t = 0; t < e.dim; ++t) s += static_cast<double>(e.row(i)[t]) * e.row(j)[t];
    return s;
}

// Brute force: all M - 1 dot products of a row in double, sorted by
// (similarity descending, row ascending), the first k kept.
struct Brute {
    std::vector<int32_t> index;  // [M, k]
    std::vector<double> sim;     // [M, k]
};

Brute brute_force(const EmbeddingMatrix& e, int k) {
    const int64_t n = e.n;
    Brute b;
    std::vector<double> row(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        std::vector<int32_t> order;
        for (int64_t j = 0; j < n; ++j) {
            row[static_cast<size_t>(j)] = dot(e, i, j);
            if (j != i) order.push_back(static_cast<int32_t>(j));
        }
        std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return row[x] > row[y]; });
        for (int c = 0; c < k; ++c) {
            b.index.push_back(order[static_cast<size_t>(c)]);
            b.sim.push_back(row[order[static_cast<size_t>(c)]]);
        }
    }
    return b;
}

// got against the brute force: similarities within tol at every position;
// the same rows, except where two candidates lie within tol of each other
// (float rounding may order them either way), where the row we list must be
// as similar as the one brute force lists. Returns max |sim difference|.
double compare(const KnnResult& got, const Brute& want, const EmbeddingMatrix& e, double tol) {
    double max_diff = 0;
    for (int64_t i = 0; i < got.n; ++i)
        for (int c = 0; c < got.k; ++c) {
            const size_t p = static_cast<size_t>(i * got.k + c);
            const double diff = std::fabs(got.similarity[p] - want.sim[p]);
            max_diff = std::max(max_diff, diff);
            EXPECT_LE(diff, tol) << "row " << i << " position " << c;
            EXPECT_NE(got.index[p], i) << "row " << i << " lists itself";
            if (got.index[p] != want.index[p]) {
                const double listed = dot(e, i, got.index[p]);
                EXPECT_NEAR(listed, want.sim[p], tol) << "row " << i << " position " << c << ": lists "
                                                      << got.index[p] << ", brute force " << want.index[p];
            }
        }
    return max_diff;
}

}  // namespace

TEST(Knn, ExactEqualsBruteForce) {
    double max_diff = 0;
    int64_t positions = 0, same = 0;
    // Sizes around the blocks (2048 rows x 4096 columns) and not multiples of them.
    for (const auto& [n, d, k] : std::vector<std::tuple<int64_t, int64_t, int>>{
             {2, 3, 1}, {3, 5, 2}, {17, 8, 5}, {300, 16, 10}, {1000, 33, 10}, {2049, 24, 7}, {4500, 12, 3}}) {
        const EmbeddingMatrix e = random_unit(n, d, static_cast<uint32_t>(n * 31 + d));
        KnnParams p;
        p.k = k;
        const KnnResult got = exact_knn(e, p);
        ASSERT_EQ(got.n, n);
        ASSERT_EQ(got.k, k);
        ASSERT_EQ(got.index.size(), static_cast<size_t>(n * k));
        EXPECT_FALSE(got.approximate);
        EXPECT_EQ(got.recall, 1.0);
        const Brute want = brute_force(e, k);
        max_diff = std::max(max_diff, compare(got, want, e, 1e-5));
        for (size_t p2 = 0; p2 < got.index.size(); ++p2) same += got.index[p2] == want.index[p2];
        positions += static_cast<int64_t>(got.index.size());
        for (int64_t i = 0; i < n; ++i)
            for (int c = 1; c < k; ++c)
                EXPECT_GE(got.similarity[static_cast<size_t>(i * k + c - 1)], got.similarity[static_cast<size_t>(i * k + c)]);
    }
    std::printf("[knn] exact vs brute force: max |similarity difference| = %.3g, %lld of %lld positions list the "
                "same row\n",
                max_diff, static_cast<long long>(same), static_cast<long long>(positions));
}

TEST(Knn, OutputDoesNotDependOnThreads) {
    const EmbeddingMatrix e = random_unit(2500, 20, 5);
    KnnParams p;
    p.threads = 1;
    const KnnResult one = exact_knn(e, p);
    p.threads = 3;
    const KnnResult three = exact_knn(e, p);
    EXPECT_EQ(one.index, three.index);
    EXPECT_EQ(one.similarity, three.similarity);
}

TEST(Knn, KIsCappedAtTheOtherRows) {
    const EmbeddingMatrix e = random_unit(4, 6, 9);
    KnnParams p;
    p.k = 10;
    const KnnResult r = exact_knn(e, p);
    EXPECT_EQ(r.k, 3);
    const Brute want = brute_force(e, 3);
    compare(r, want, e, 1e-6);
    // M = 2: each row's only neighbour is the other.
    const KnnResult two = exact_knn(random_unit(2, 4, 1), p);
    EXPECT_EQ(two.k, 1);
    EXPECT_EQ(two.index, (std::vector<int32_t>{1, 0}));
    EXPECT_FLOAT_EQ(two.similarity[0], two.similarity[1]);
    // The capped k applies to the approximate search too.
    const KnnResult approx = approximate_knn(e, p);
    EXPECT_EQ(approx.k, 3);
}

TEST(Knn, TiesGoToTheSmallerRowAndSelfIsNeverListed) {
    // Rows of four entries ±0.5: unit length, and every dot product a multiple
    // of 0.25, exact in float. Rows 1, 3, 4 and 6 repeat row 0.
    const std::vector<std::vector<float>> rows = {
        {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},  // 0
        {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},  // 1 = 0
        {0, 0, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f},  // 2
        {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},  // 3 = 0
        {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},  // 4 = 0
        {0.5f, 0.5f, 0, 0, 0.5f, 0.5f, 0, 0},  // 5: 0.5 with 0 and 2
        {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},  // 6 = 0
    };
    EmbeddingMatrix e{static_cast<int64_t>(rows.size()), 8, {}};
    for (const auto& r : rows) e.values.insert(e.values.end(), r.begin(), r.end());
    KnnParams p;
    p.k = 5;
    const KnnResult r = exact_knn(e, p);
    ASSERT_EQ(r.k, 5);
    auto list = [&](int i) {
        return std::vector<int32_t>(r.index.begin() + i * r.k, r.index.begin() + (i + 1) * r.k);
    };
    EXPECT_EQ(list(0), (std::vector<int32_t>{1, 3, 4, 6, 5}));
    EXPECT_EQ(list(3), (std::vector<int32_t>{0, 1, 4, 6, 5}));
    EXPECT_EQ(list(6), (std::vector<int32_t>{0, 1, 3, 4, 5}));
    // Row 2: 5 at 0.5, then all others at 0, smallest rows first.
    EXPECT_EQ(list(2), (std::vector<int32_t>{5, 0, 1, 3, 4}));
    EXPECT_FLOAT_EQ(r.similarity[2 * 5], 0.5f);
    // Row 5: 0.5 with every other row, so the five smallest.
    EXPECT_EQ(list(5), (std::vector<int32_t>{0, 1, 2, 3, 4}));
    const std::vector<double> mean = r.mean_similarity();
    EXPECT_DOUBLE_EQ(mean[0], (4 * 1.0 + 0.5) / 5);
    EXPECT_DOUBLE_EQ(mean[2], 0.5 / 5);
    // The brute force agrees position by position (ties broken alike).
    const Brute want = brute_force(e, 5);
    EXPECT_EQ(r.index, want.index);
    // The query helper lists the same for any subset, in the order asked.
    const KnnResult some = exact_knn_of(e, {6, 2, 0}, p);
    ASSERT_EQ(some.n, 3);
    EXPECT_EQ(std::vector<int32_t>(some.index.begin(), some.index.begin() + 5), list(6));
    EXPECT_EQ(std::vector<int32_t>(some.index.begin() + 5, some.index.begin() + 10), list(2));
    EXPECT_EQ(std::vector<int32_t>(some.index.begin() + 10, some.index.end()), list(0));
}

TEST(Knn, QueryHelperEqualsTheFullSearch) {
    const EmbeddingMatrix e = random_unit(5000, 16, 3);
    const KnnResult all = exact_knn(e);
    const std::vector<int64_t> queries = {0, 4999, 2048, 4096, 17, 3000};
    const KnnResult some = exact_knn_of(e, queries);
    ASSERT_EQ(some.k, all.k);
    for (size_t q = 0; q < queries.size(); ++q)
        for (int c = 0; c < all.k; ++c) {
            const size_t from = q * static_cast<size_t>(all.k) + static_cast<size_t>(c);
            const size_t to = static_cast<size_t>(queries[q] * all.k + c);
            EXPECT_EQ(some.index[from], all.index[to]) << "query " << queries[q];
            EXPECT_NEAR(some.similarity[from], all.similarity[to], 1e-6);
        }
}

TEST(Knn, ApproximateRecallOnClusteredVectors) {
    const EmbeddingMatrix e = clustered_unit(5000, 32, 50, 0.6, 11);
    KnnParams p;
    p.k = 10;
    p.recall_queries = 500;
    const KnnResult r = approximate_knn(e, p);
    EXPECT_TRUE(r.approximate);
    EXPECT_EQ(r.n, 5000);
    EXPECT_EQ(r.k, 10);
    EXPECT_EQ(r.recall_queries, 500);
    std::printf("[knn] approximate (hnswlib, M %d, ef %d/%d) on 5000 clustered vectors: recall@10 = %.4f over %lld "
                "queries\n",
                p.hnsw_m, p.hnsw_ef_construction, p.hnsw_ef_search, r.recall,
                static_cast<long long>(r.recall_queries));
    EXPECT_GE(r.recall, 0.9);
    // Self never listed, lists ordered, similarities the true dot products.
    const KnnResult exact = exact_knn(e, p);
    int64_t hits = 0;
    for (int64_t i = 0; i < r.n; ++i) {
        const std::set<int32_t> want(exact.index.begin() + i * 10, exact.index.begin() + (i + 1) * 10);
        for (int c = 0; c < 10; ++c) {
            const size_t pos = static_cast<size_t>(i * 10 + c);
            ASSERT_NE(r.index[pos], i);
            ASSERT_GE(r.index[pos], 0);
            if (c > 0) {
                EXPECT_GE(r.similarity[pos - 1], r.similarity[pos]);
            }
            EXPECT_NEAR(r.similarity[pos], dot(e, i, r.index[pos]), 1e-5);
            hits += want.count(r.index[pos]);
        }
    }
    // The sampled recall estimates the recall over all rows.
    const double full = static_cast<double>(hits) / static_cast<double>(r.n * 10);
    std::printf("[knn] recall@10 over all 5000 rows = %.4f (sampled: %.4f)\n", full, r.recall);
    EXPECT_NEAR(r.recall, full, 0.03);
}

TEST(Knn, NearestNeighboursSwitchesAtTheExactLimit) {
    const EmbeddingMatrix e = random_unit(300, 8, 2);
    KnnParams p;
    p.k = 4;
    p.recall_queries = 50;
    p.exact_limit = 300;
    const KnnResult at = nearest_neighbours(e, p);
    EXPECT_FALSE(at.approximate);
    EXPECT_EQ(at.recall, 1.0);
    p.exact_limit = 299;
    const KnnResult beyond = nearest_neighbours(e, p);
    EXPECT_TRUE(beyond.approximate);
    EXPECT_EQ(beyond.recall_queries, 50);
    EXPECT_GE(beyond.recall, 0.9);  // 300 points in 8 dimensions: HNSW is all but exact
    p.recall_queries = 0;
    EXPECT_TRUE(std::isnan(approximate_knn(e, p).recall));
}

TEST(Knn, BadInput) {
    const EmbeddingMatrix ok = random_unit(3, 2, 1);
    KnnParams p;
    p.k = 0;
    expect_error<InvalidInput>([&] { exact_knn(ok, p); }, {"k of at least 1, got 0"}, "neighbours per row");
    expect_error<InvalidInput>([&] { approximate_knn(ok, p); }, {"k of at least 1"});
    expect_error<InvalidInput>([] { exact_knn({1, 2, {1, 0}}); }, {"at least 2 embeddings, got 1"}, "other rows");
    expect_error<InvalidInput>([] { nearest_neighbours({0, 2, {}}); }, {"at least 2 embeddings, got 0"});
    expect_error<InvalidInput>([] { exact_knn({2, 2, {1, 0, 1}}); }, {"2 x 2 holds 3"}, "n * dim");
    expect_error<InvalidInput>([] { approximate_knn({2, 0, {}}); }, {"dimension of at least 1, got 0"}, "hidden size");
    expect_error<InvalidInput>([] { exact_knn({2, 2, {1, 0, NAN, 0}}); }, {"embedding 1", "non-finite"});
    expect_error<InvalidInput>([&] { exact_knn_of(ok, {0, 3}); }, {"query row 3", "3 embeddings"});
    KnnParams bad;
    bad.hnsw_m = 1;
    expect_error<InvalidInput>([&] { approximate_knn(ok, bad); }, {"HNSW parameters", "M 1"});
}
