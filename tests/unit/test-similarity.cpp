// Global similarity (METHOD M10): the closed form against the brute-force
// mean over all pairs computed in this test, and hand-made cases.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "memskew/error.h"
#include "memskew/similarity.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;

namespace {

EmbeddingMatrix random_unit(int64_t n, int64_t d, uint32_t seed, double shared = 0.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> g;
    std::vector<double> common(static_cast<size_t>(d));
    for (auto& c : common) c = g(rng);
    EmbeddingMatrix e{n, d, std::vector<float>(static_cast<size_t>(n * d))};
    for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < d; ++k) e.values[static_cast<size_t>(i * d + k)] = static_cast<float>(g(rng) + shared * common[static_cast<size_t>(k)]);
    normalize_rows(e);
    return e;
}

double brute_force(const EmbeddingMatrix& e) {
    double sum = 0;
    int64_t pairs = 0;
    for (int64_t i = 0; i < e.n; ++i)
        for (int64_t j = i + 1; j < e.n; ++j) {
            double dot = 0;
            for (int64_t k = 0; k < e.dim; ++k) dot += static_cast<double>(e.row(i)[k]) * e.row(j)[k];
            sum += dot;
            ++pairs;
        }
    return sum / static_cast<double>(pairs);
}

}  // namespace

TEST(Similarity, ClosedFormEqualsTheMeanOverAllPairs) {
    double max_diff = 0;
    for (const auto& [n, d, shared] : std::vector<std::tuple<int64_t, int64_t, double>>{
             {2, 3, 0.0}, {17, 8, 0.0}, {300, 16, 0.0}, {300, 16, 2.0}, {1000, 64, 0.5}}) {
        const EmbeddingMatrix e = random_unit(n, d, static_cast<uint32_t>(n + d), shared);
        const double got = mean_pairwise_cosine(e), want = brute_force(e);
        max_diff = std::max(max_diff, std::fabs(got - want));
        EXPECT_NEAR(got, want, 1e-9) << n << " x " << d;
    }
    std::printf("[similarity] max |closed form - brute force| = %.3g\n", max_diff);
}

TEST(Similarity, HandCases) {
    // Two identical unit vectors: similarity 1; opposite: -1; orthogonal: 0.
    EXPECT_NEAR(mean_pairwise_cosine({2, 2, {1, 0, 1, 0}}), 1.0, 1e-15);
    EXPECT_NEAR(mean_pairwise_cosine({2, 2, {1, 0, -1, 0}}), -1.0, 1e-15);
    EXPECT_NEAR(mean_pairwise_cosine({3, 3, {1, 0, 0, 0, 1, 0, 0, 0, 1}}), 0.0, 1e-15);
    // Three vectors, two equal and one orthogonal: pairs 1, 0, 0 -> 1/3.
    EXPECT_NEAR(mean_pairwise_cosine({3, 2, {1, 0, 1, 0, 0, 1}}), 1.0 / 3.0, 1e-15);
    // normalize_rows: (3, 4) -> (0.6, 0.8).
    EmbeddingMatrix e{1, 2, {3, 4}};
    normalize_rows(e);
    EXPECT_FLOAT_EQ(e.values[0], 0.6f);
    EXPECT_FLOAT_EQ(e.values[1], 0.8f);
}

TEST(Similarity, BadInput) {
    expect_error<InvalidInput>([] { mean_pairwise_cosine({1, 2, {1, 0}}); }, {"at least 2"});
    expect_error<InvalidInput>([] { mean_pairwise_cosine({2, 2, {1, 0, 1}}); }, {"2 x 2 holds 3"});
    EmbeddingMatrix zero{2, 2, {1, 0, 0, 0}};
    expect_error<InvalidInput>([&] { normalize_rows(zero); }, {"embedding 1 has norm 0"});
}
