// METHOD M5 summaries against NumPy/SciPy reference values
// (tests/fixtures/stats/reference.json, from
// `/usr/bin/python3 tests/fixtures/stats/make-fixtures.py`) and hand examples.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "memskew/error.h"
#include "memskew/stats/summary.h"
#include "test-stats-fixtures.h"

using namespace memskew;
using namespace memskew::stats;
using memskew::test::as_doubles;
using memskew::test::stats_reference;

TEST(StatsSummary, QuantilesMatchNumpyLinear) {
    for (const auto& [name, c] : stats_reference()["summaries"].items()) {
        SCOPED_TRACE(name);
        const auto v = as_doubles(c["values"]);
        const auto levels = as_doubles(c["quantile_levels"]);
        const auto expected = as_doubles(c["quantiles"]);
        // Integer data also through the histogram path.
        bool integer = true;
        for (double x : v) integer = integer && x >= 0 && x == std::floor(x);
        std::vector<std::int64_t> counts;
        if (integer) {
            std::vector<std::int64_t> iv(v.begin(), v.end());
            counts = integer_histogram(iv).counts;
        }
        for (std::size_t i = 0; i < levels.size(); ++i) {
            EXPECT_CLOSE(quantile(v, levels[i]), expected[i], 1e-14, 1e-14);
            if (integer) EXPECT_CLOSE(quantile_from_counts(counts, levels[i]), expected[i], 1e-14, 1e-14);
        }
    }
}

TEST(StatsSummary, ShapeMatchesScipy) {
    for (const auto& [name, c] : stats_reference()["summaries"].items()) {
        SCOPED_TRACE(name);
        const auto v = as_doubles(c["values"]);
        const Shape s = shape(v);
        EXPECT_CLOSE(s.skewness, c["skew_biased"].get<double>(), 1e-10, 1e-12);
        EXPECT_CLOSE(s.skewness_adjusted, c["skew_unbiased"].get<double>(), 1e-10, 1e-12);
        EXPECT_CLOSE(s.kurtosis, c["kurtosis_biased"].get<double>(), 1e-10, 1e-12);
        EXPECT_CLOSE(s.kurtosis_adjusted, c["kurtosis_unbiased"].get<double>(), 1e-10, 1e-12);
    }
}

TEST(StatsSummary, ShapeOfConstantDataIsNan) {
    const Shape s = shape({2, 2, 2, 2, 2});
    EXPECT_TRUE(std::isnan(s.skewness));
    EXPECT_TRUE(std::isnan(s.kurtosis_adjusted));
    // n too small for the adjusted estimators.
    EXPECT_TRUE(std::isnan(shape({0, 1}).skewness_adjusted));
    EXPECT_TRUE(std::isnan(shape({0, 1, 5}).kurtosis_adjusted));
}

TEST(StatsSummary, GiniHandExamples) {
    // sum |xi - xj| / (2 n^2 mean), no n/(n-1) factor.
    EXPECT_DOUBLE_EQ(gini({0, 0, 0, 1}), 0.75);
    EXPECT_DOUBLE_EQ(gini({5, 5, 5}), 0.0);
    EXPECT_DOUBLE_EQ(gini({0, 0, 0}), 0.0);
    // [1, 2, 3]: pair sum = 2 (1 + 2 + 1) = 8, 2 n^2 mean = 2 * 9 * 2 = 36.
    EXPECT_NEAR(gini({3, 1, 2}), 8.0 / 36.0, 1e-15);
    // One of n holds everything: 1 - 1/n.
    std::vector<double> v(100, 0.0);
    v[37] = 12;
    EXPECT_NEAR(gini(v), 0.99, 1e-14);
}

TEST(StatsSummary, TopShareUsesCeilOfOnePercent) {
    std::vector<double> v(250, 1.0);  // ceil(2.5) = 3 samples
    v[0] = v[1] = v[2] = 99.0;
    EXPECT_NEAR(top_share(v), 3 * 99.0 / (3 * 99.0 + 247.0), 1e-15);
    std::vector<double> w(300, 1.0);  // exactly 3, not 4 (0.01 * 300 rounds above 3)
    EXPECT_NEAR(top_share(w), 3.0 / 300.0, 1e-15);
    EXPECT_NEAR(top_share({0, 7}), 1.0, 0);  // at least one sample
    EXPECT_EQ(top_share({0, 0, 0}), 0.0);
    EXPECT_THROW(top_share({1, 2}, 0.0), InvalidInput);
}

TEST(StatsSummary, TopKIsStableAndLargestFirst) {
    const auto t = top_k({3, 9, 1, 9, 4}, 3);
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t[0].index, 1u);
    EXPECT_EQ(t[1].index, 3u);
    EXPECT_EQ(t[2].index, 4u);
    EXPECT_EQ(t[2].value, 4.0);
    EXPECT_EQ(top_k({1, 2}, 10).size(), 2u);
}

TEST(StatsSummary, HistogramsAndCcdf) {
    const Histogram h = integer_histogram({0, 0, 3, 1, 3, 3});
    EXPECT_EQ(h.counts, (std::vector<std::int64_t>{2, 1, 0, 3}));
    EXPECT_EQ(h.edges.size(), 5u);

    const Histogram lh = log_histogram({0, 1, 2, 3, 9, 10, 11, 150}, 1);
    // Edges 0, 1, 10, 100, 1000.
    EXPECT_EQ(lh.edges, (std::vector<double>{0, 1, 10, 100, 1000}));
    EXPECT_EQ(lh.counts, (std::vector<std::int64_t>{1, 4, 2, 1}));
    // Integer edges with 5 per decade: 1, 2 (1.58), 3 (2.51), 4 (3.98), 7 (6.31), 10 ...
    const Histogram l5 = log_histogram({0, 1, 5, 12}, 5);
    EXPECT_EQ(std::vector<double>(l5.edges.begin(), l5.edges.begin() + 7),
              (std::vector<double>{0, 1, 2, 3, 4, 7, 10}));
    std::int64_t total = 0;
    for (auto c : l5.counts) total += c;
    EXPECT_EQ(total, 4);

    const auto c = ccdf({2, 0, 2, 5});
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0].value, 0.0);
    EXPECT_EQ(c[0].fraction_at_least, 1.0);
    EXPECT_EQ(c[1].value, 2.0);
    EXPECT_EQ(c[1].fraction_at_least, 0.75);
    EXPECT_EQ(c[2].fraction_at_least, 0.25);
}

TEST(StatsSummary, SummarizeNPre) {
    const std::vector<std::int64_t> n_pre{0, 0, 1, 5, 10, 64, 20, 3, 50, 0};
    const std::vector<std::int64_t> len{8, 8, 8, 8, 16, 64, 32, 8, 50, 4};
    const NPreSummary s = summarize_n_pre(n_pre, len);
    EXPECT_EQ(s.absolute.count, 10u);
    EXPECT_DOUBLE_EQ(s.absolute.mean, 15.3);
    EXPECT_DOUBLE_EQ(s.absolute.median, 4.0);
    EXPECT_EQ(s.absolute.max, 64.0);
    EXPECT_EQ(s.absolute.top.front().index, 5u);
    EXPECT_DOUBLE_EQ(s.absolute.top_share, 64.0 / 153.0);  // ceil(0.1) = 1 sample
    ASSERT_EQ(s.at_least.size(), 4u);
    EXPECT_EQ(s.at_least[0].count, 5u);  // >= 5: 5, 10, 64, 20, 50
    EXPECT_EQ(s.at_least[1].count, 4u);
    EXPECT_EQ(s.at_least[2].count, 3u);
    EXPECT_EQ(s.at_least[3].count, 2u);
    EXPECT_EQ(s.n_exact, 2u);  // 64/64, 50/50
    EXPECT_EQ(s.normalized.count, 10u);
    EXPECT_DOUBLE_EQ(s.normalized.max, 1.0);
    EXPECT_EQ(s.histogram.counts.size(), 65u);
    EXPECT_EQ(s.ccdf.front().fraction_at_least, 1.0);
    EXPECT_EQ(s.ccdf.back().value, 64.0);
    EXPECT_DOUBLE_EQ(s.ccdf.back().fraction_at_least, 0.1);
    // Exact flags given: taken as is.
    std::vector<std::uint8_t> flags(10, 0);
    flags[0] = 1;
    EXPECT_EQ(summarize_n_pre(n_pre, len, flags).n_exact, 1u);
    // Without lengths: no normalized summary.
    EXPECT_EQ(summarize_n_pre(n_pre).normalized.count, 0u);
}

TEST(StatsSummary, InvalidArguments) {
    EXPECT_THROW(summarize({}), InvalidInput);
    EXPECT_THROW(summarize({1, -1}), InvalidInput);
    EXPECT_THROW(summarize({1, NAN}), InvalidInput);
    EXPECT_THROW(quantile({}, 0.5), InvalidInput);
    EXPECT_THROW(quantile({1, 2}, 1.5), InvalidInput);
    EXPECT_THROW(shape({}), InvalidInput);
    EXPECT_THROW(gini({}), InvalidInput);
    EXPECT_THROW(summarize_n_pre({}), InvalidInput);
    EXPECT_THROW(summarize_n_pre({1, 2}, {3}), InvalidInput);
    EXPECT_THROW(summarize_n_pre({5}, {3}), InvalidInput);  // n_pre > L
    EXPECT_THROW(integer_histogram({-1}), InvalidInput);
    EXPECT_THROW(quantile_from_counts({0, 0}, 0.5), InvalidInput);
}
