// Spearman, Wilcoxon signed-rank and two-sample KS against SciPy 1.10.1
// (tests/fixtures/stats/reference.json, from
// `/usr/bin/python3 tests/fixtures/stats/make-fixtures.py`; the script passes
// zero_method='wilcox', correction=False, alternative='two-sided' and the
// method named in each case to scipy.stats.wilcoxon, and the named method to
// scipy.stats.ks_2samp).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/stats/rank-tests.h"
#include "test-stats-fixtures.h"

using namespace memskew;
using namespace memskew::stats;
using memskew::test::as_doubles;
using memskew::test::stats_reference;

TEST(StatsRankTests, RankAverage) {
    EXPECT_EQ(rank_average({10, 20, 10, 30, 20, 20}), (std::vector<double>{1.5, 4, 1.5, 6, 4, 4}));
    EXPECT_EQ(rank_average({3, 1, 2}), (std::vector<double>{3, 1, 2}));
}

TEST(StatsRankTests, SpearmanMatchesScipy) {
    for (const auto& c : stats_reference()["spearman"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const auto r = spearman(as_doubles(c["x"]), as_doubles(c["y"]));
        EXPECT_CLOSE(r.statistic, c["statistic"].get<double>(), 1e-12, 1e-14);
        EXPECT_CLOSE(r.p_value, c["pvalue"].get<double>(), 1e-8, 1e-300);
    }
}

TEST(StatsRankTests, SpearmanEdgeCases) {
    EXPECT_EQ(spearman({1, 2, 3, 4}, {2, 4, 8, 16}).statistic, 1.0);
    EXPECT_EQ(spearman({1, 2, 3, 4}, {2, 4, 8, 16}).p_value, 0.0);
    EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3}).statistic));
    EXPECT_THROW(spearman({1, 2}, {1}), InvalidInput);
    EXPECT_THROW(spearman({}, {}), InvalidInput);
}

TEST(StatsRankTests, WilcoxonMatchesScipy) {
    for (const auto& c : stats_reference()["wilcoxon"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const std::string method = c["method"];
        const auto r = wilcoxon(as_doubles(c["x"]), as_doubles(c["y"]),
                                method == "exact" ? TestMethod::kExact : TestMethod::kAsymptotic);
        EXPECT_EQ(r.exact, method == "exact");
        EXPECT_CLOSE(r.statistic, c["statistic"].get<double>(), 1e-12, 1e-12);
        EXPECT_CLOSE(r.p_value, c["pvalue"].get<double>(), 1e-9, 1e-300);
        EXPECT_NEAR(r.effect_size_r, r.z / std::sqrt(static_cast<double>(r.n)), 1e-15);
        EXPECT_NEAR(r.rank_biserial, (r.r_plus - r.r_minus) / (r.r_plus + r.r_minus), 1e-15);
        EXPECT_NEAR(r.r_plus + r.r_minus, r.n * (r.n + 1) / 2.0, 1e-9);
    }
}

TEST(StatsRankTests, WilcoxonAutoAndEdgeCases) {
    // Auto picks exact for small data without zeros/ties.
    const std::vector<double> x{1.1, 2.5, 3.2, 4.8, 0.3, 7.7, 2.2, 9.1};
    const std::vector<double> y{0.0, 1.0, 1.1, 3.0, 1.0, 2.0, 2.0, 1.0};
    const auto r = wilcoxon(x, y);
    EXPECT_TRUE(r.exact);
    // d = 1.1, 1.5, 2.1, 1.8, -0.7, 5.7, 0.2, 8.1: R- = rank(0.7) = 2, R+ = 34.
    EXPECT_DOUBLE_EQ(r.r_minus, 2.0);
    EXPECT_DOUBLE_EQ(r.statistic, 2.0);
    // P(R+ <= 2) = #{{}, {1}, {2}} / 256 -> p = 2 * 3 / 256.
    EXPECT_NEAR(r.p_value, 6.0 / 256.0, 1e-15);
    EXPECT_NEAR(r.rank_biserial, 32.0 / 36.0, 1e-15);
    // Zero differences are dropped (and force the approximation).
    auto with_zero = x;
    auto y0 = y;
    with_zero.push_back(5);
    y0.push_back(5);
    const auto z = wilcoxon(with_zero, y0);
    EXPECT_FALSE(z.exact);
    EXPECT_EQ(z.n, 8u);
    EXPECT_EQ(z.n_zero, 1u);
    EXPECT_THROW(wilcoxon(with_zero, y0, TestMethod::kExact), InvalidInput);
    EXPECT_THROW(wilcoxon({1, 2}, {1, 2}), InvalidInput);  // all zero
    EXPECT_THROW(wilcoxon({1, 2}, {1}), InvalidInput);
    EXPECT_THROW(wilcoxon({}, {}), InvalidInput);
}

TEST(StatsRankTests, KsTwoSampleMatchesScipy) {
    for (const auto& c : stats_reference()["ks_2samp"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const std::string method = c["method"];
        const auto x = as_doubles(c["x"]), y = as_doubles(c["y"]);
        const auto r = ks_2samp(x, y, method == "exact" ? TestMethod::kExact : TestMethod::kAsymptotic);
        EXPECT_CLOSE(r.statistic, c["statistic"].get<double>(), 1e-12, 1e-14);
        if (method == "exact") {
            EXPECT_TRUE(r.exact);
            EXPECT_CLOSE(r.p_value, c["pvalue"].get<double>(), 1e-9, 1e-12);
            // kAuto is exact at these sizes.
            EXPECT_EQ(ks_2samp(x, y).p_value, r.p_value);
        } else {
            // Limiting distribution: equals kstwobign exactly, and SciPy's finite-n
            // 'asymp' (kstwo(round(en))) to O(1/sqrt(en)).
            EXPECT_CLOSE(r.p_value, c["pvalue_kstwobign"].get<double>(), 1e-10, 1e-14);
            EXPECT_NEAR(r.p_value, c["pvalue"].get<double>(), 0.03);
        }
    }
}

TEST(StatsRankTests, KolmogorovSfMatchesScipy) {
    for (const auto& c : stats_reference()["kolmogorov_sf"]) {
        SCOPED_TRACE("z=" + std::to_string(c["z"].get<double>()));
        EXPECT_CLOSE(kolmogorov_sf(c["z"].get<double>()), c["sf"].get<double>(), 1e-12, 1e-15);
    }
    EXPECT_EQ(kolmogorov_sf(0), 1.0);
}

TEST(StatsRankTests, KsEdgeCases) {
    EXPECT_EQ(ks_2samp({1, 2, 3}, {1, 2, 3}).statistic, 0.0);
    EXPECT_EQ(ks_2samp({1, 2, 3}, {1, 2, 3}).p_value, 1.0);
    const auto r = ks_2samp({1, 2, 3}, {4, 5, 6, 7});
    EXPECT_EQ(r.statistic, 1.0);
    // Only the two fully separated orderings of C(7, 3) = 35 reach D = 1.
    EXPECT_NEAR(r.p_value, 2.0 / 35.0, 1e-14);
    EXPECT_THROW(ks_2samp({}, {1}), InvalidInput);
}
