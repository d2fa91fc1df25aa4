// METHOD M6: P(miss top-k), minimum subset size, bootstrap.
#include <gtest/gtest.h>

#include <boost/math/special_functions/binomial.hpp>
#include <boost/math/special_functions/gamma.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "memskew/error.h"
#include "memskew/stats/sampling.h"

using namespace memskew;
using namespace memskew::stats;

namespace {
// log C(n, k) via lgamma, the independent route for large arguments.
double log_choose(double n, double k) {
    return boost::math::lgamma(n + 1) - boost::math::lgamma(k + 1) - boost::math::lgamma(n - k + 1);
}
}  // namespace

TEST(StatsSampling, PMissMatchesBinomialRatioExactly) {
    // Small: Boost's binomial_coefficient is exact up to double rounding.
    for (unsigned M : {10u, 37u, 100u}) {
        for (unsigned k : {1u, 2u, 5u}) {
            for (unsigned z = 0; z <= M; z += 3) {
                const double expected =
                    z > M - k ? 0.0
                              : boost::math::binomial_coefficient<double>(M - k, z) /
                                    boost::math::binomial_coefficient<double>(M, z);
                EXPECT_NEAR(p_miss_top_k(M, k, z), expected, 1e-13 * std::max(expected, 1e-300))
                    << "M=" << M << " k=" << k << " z=" << z;
            }
        }
    }
    // Large: through lgamma (relative error ~1e-10 from the cancellation there).
    const std::int64_t M = 1000000;
    for (std::int64_t k : {1, 10, 100}) {
        for (std::int64_t z : {100, 10000, 500000}) {
            const double expected = log_choose(M - k, z) - log_choose(M, z);
            EXPECT_NEAR(log_p_miss_top_k(M, k, z), expected, 1e-6 * std::max(1.0, std::abs(expected)));
        }
    }
    // z << M: ~ (1 - z/M)^k.
    EXPECT_NEAR(p_miss_top_k(1000000, 10, 1000), std::pow(1 - 1e-3, 10), 1e-7);
    EXPECT_EQ(p_miss_top_k(10, 3, 8), 0.0);  // z > M - k: must include one
    EXPECT_EQ(p_miss_top_k(10, 3, 0), 1.0);
}

TEST(StatsSampling, MinSubsetSizeIsTheSmallestSufficient) {
    for (std::int64_t M : {50, 9723, 1000000}) {
        for (std::int64_t k : {1, 5, 20}) {
            for (double delta : {0.5, 0.05, 0.001}) {
                const std::int64_t z = min_subset_size(M, k, delta);
                EXPECT_LE(p_miss_top_k(M, k, z), delta * (1 + 1e-11));
                EXPECT_GT(p_miss_top_k(M, k, z - 1), delta);
            }
        }
    }
    // k = 1: P(miss) = 1 - z/M exactly; delta = 0.05 -> z = 0.95 M.
    EXPECT_EQ(min_subset_size(1000, 1, 0.05), 950);
}

TEST(StatsSampling, InvalidArguments) {
    EXPECT_THROW(p_miss_top_k(10, 11, 1), InvalidInput);  // k > M
    EXPECT_THROW(p_miss_top_k(10, 0, 1), InvalidInput);
    EXPECT_THROW(p_miss_top_k(10, 2, 11), InvalidInput);
    EXPECT_THROW(p_miss_top_k(0, 1, 0), InvalidInput);
    EXPECT_THROW(min_subset_size(10, 11, 0.1), InvalidInput);
    EXPECT_THROW(min_subset_size(10, 1, 0.0), InvalidInput);
    EXPECT_THROW(min_subset_size(10, 1, 1.0), InvalidInput);
    EXPECT_THROW(min_subset_size(10, 1, -0.5), InvalidInput);
    EXPECT_THROW(bootstrap({}), InvalidInput);
    BootstrapParams bad;
    bad.confidence = 1.0;
    EXPECT_THROW(bootstrap({1, 2}, bad), InvalidInput);
}

TEST(StatsSampling, BootstrapContainsTrueMeanAndIsReproducible) {
    // Integer data (histogram path): geometric with p = 0.7 -> mean 0.7 / 0.3.
    std::mt19937_64 rng(7);
    std::geometric_distribution<int> geo(0.3);
    std::vector<double> v(20000);
    for (auto& x : v) x = geo(rng);
    BootstrapParams p;
    p.seed = 42;
    const BootstrapResult a = bootstrap(v, p);
    EXPECT_TRUE(a.used_histogram);
    EXPECT_LE(a.mean.lower, 0.7 / 0.3);
    EXPECT_GE(a.mean.upper, 0.7 / 0.3);
    EXPECT_LE(a.mean.lower, a.mean.estimate);
    EXPECT_GE(a.mean.upper, a.mean.estimate);
    EXPECT_LE(a.quantile.lower, a.quantile.upper);
    EXPECT_LE(a.max.upper, a.max.estimate);  // a resample never exceeds the data's max
    const BootstrapResult b = bootstrap(v, p);
    EXPECT_EQ(a.mean.lower, b.mean.lower);
    EXPECT_EQ(a.mean.upper, b.mean.upper);
    EXPECT_EQ(a.quantile.lower, b.quantile.lower);
    EXPECT_EQ(a.max.lower, b.max.lower);
    p.seed = 43;
    const BootstrapResult c = bootstrap(v, p);
    EXPECT_NE(a.mean.lower, c.mean.lower);

    // Continuous data (direct resampling path): normal mean 3.
    std::normal_distribution<double> norm(3.0, 1.0);
    std::vector<double> w(2000);
    for (auto& x : w) x = norm(rng);
    const BootstrapResult d = bootstrap(w, p);
    EXPECT_FALSE(d.used_histogram);
    EXPECT_LE(d.mean.lower, 3.0);
    EXPECT_GE(d.mean.upper, 3.0);
    // Interval width ~ 2 * 1.96 * sigma / sqrt(n) = 0.0877.
    EXPECT_NEAR(d.mean.upper - d.mean.lower, 0.0877, 0.015);
    EXPECT_EQ(bootstrap(w, p).mean.upper, d.mean.upper);
}

TEST(StatsSampling, BootstrapHistogramPathMatchesDirectInDistribution) {
    // Same data, both paths: the interval widths must agree (they are the same
    // distribution; only the random streams differ).
    std::mt19937_64 rng(3);
    std::geometric_distribution<int> geo(0.5);
    std::vector<double> v(4000);
    for (auto& x : v) x = geo(rng);
    BootstrapParams p;
    p.n_resamples = 2000;
    const BootstrapResult hist = bootstrap(v, p);
    ASSERT_TRUE(hist.used_histogram);
    // Direct path: make every value distinct by a negligible offset.
    std::vector<double> w = v;
    for (std::size_t i = 0; i < w.size(); ++i) w[i] += 1e-9 * static_cast<double>(i) / w.size();
    const BootstrapResult direct = bootstrap(w, p);
    ASSERT_FALSE(direct.used_histogram);
    const double wh = hist.mean.upper - hist.mean.lower, wd = direct.mean.upper - direct.mean.lower;
    EXPECT_NEAR(wh / wd, 1.0, 0.1);  // MC error of a 95% width from 2000 resamples is ~3%
}

// Speed is measured by bench/bench-analyze, not asserted here.
TEST(StatsSampling, BootstrapOfAMillionIntegersUsesTheHistogram) {
    std::mt19937_64 rng(11);
    std::geometric_distribution<int> geo(0.3);
    std::vector<double> v(1000000);
    for (auto& x : v) x = std::min(geo(rng), 64);
    const BootstrapResult r = bootstrap(v, {});
    EXPECT_TRUE(r.used_histogram);
    EXPECT_LE(r.mean.lower, r.mean.estimate);
    EXPECT_GE(r.mean.upper, r.mean.estimate);
}
