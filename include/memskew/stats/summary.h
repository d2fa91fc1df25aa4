// METHOD M5: describing the distribution of n_pre (and n_pre / L) over a dataset.
//
// Pure functions on vectors. Every function that takes a data vector throws
// memskew::InvalidInput for an empty vector and for NaN/inf values; the
// summaries additionally require values >= 0 (n_pre and n_pre / L are
// non-negative, and the Gini coefficient and the top-1% share are only
// meaningful for non-negative data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memskew::stats {

// Quantile with numpy's default method ('linear', Hyndman & Fan type 7):
// with the data sorted ascending as x[0..n-1], h = (n - 1) * p,
// q = x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
// p must lie in [0, 1]. `sorted` must already be sorted ascending.
double quantile_sorted(const std::vector<double>& sorted, double p);
// Same, sorting a copy first.
double quantile(std::vector<double> values, double p);
// Same definition, computed from a histogram of integer values: counts[v] is
// the number of samples equal to v (v = 0..counts.size()-1). O(#bins).
double quantile_from_counts(const std::vector<std::int64_t>& counts, double p);
// Same definition for values given once each with their multiplicities:
// `values` ascending and distinct, counts[i] copies of values[i] (>= 0, not
// all zero). O(#values).
double quantile_from_counts(const std::vector<double>& values, const std::vector<std::int64_t>& counts, double p);

// Central-moment shape statistics, defined exactly as SciPy does:
//   g1 = m3 / m2^1.5                               skew(bias=True)
//   G1 = g1 * sqrt(n (n - 1)) / (n - 2)            skew(bias=False), n > 2
//   g2 = m4 / m2^2 - 3                             kurtosis(fisher=True, bias=True)
//   G2 = ((n^2 - 1) m4 / m2^2 - 3 (n - 1)^2) / ((n - 2)(n - 3))
//                                                  kurtosis(fisher=True, bias=False), n > 3
// with m_k = mean((x - mean)^k). NaN when the data are constant (m2 == 0) or
// n is too small for the adjusted estimator (SciPy returns NaN there too).
struct Shape {
    double skewness = 0;           // g1, Fisher–Pearson
    double skewness_adjusted = 0;  // G1
    double kurtosis = 0;           // g2, excess
    double kurtosis_adjusted = 0;  // G2, excess
};
Shape shape(const std::vector<double>& values);

// Gini coefficient without the n / (n - 1) small-sample factor:
//   G = sum_i sum_j |x_i - x_j| / (2 n^2 mean)
// so [0, 0, 0, 1] -> 0.75 and one sample holding everything among n gives
// 1 - 1/n. 0 when all values are 0 (nobody holds anything, no inequality).
double gini(const std::vector<double>& values);

// Share of the total held by the ceil(fraction * M) largest values
// (fraction = 0.01: the top 1% of samples, at least one sample). 0 when the
// total is 0. fraction must lie in (0, 1].
double top_share(const std::vector<double>& values, double fraction = 0.01);

struct TopEntry {
    std::size_t index = 0;  // position in the input vector (the caller maps it to a sample id)
    double value = 0;
};
// The k largest values, largest first; equal values keep input order (lower
// index first) so the result is deterministic. k is clamped to the size.
std::vector<TopEntry> top_k(const std::vector<double>& values, std::size_t k);

struct CcdfPoint {
    double value = 0;
    double fraction_at_least = 0;  // P(X >= value), for a log-scale plot
};
// One point per distinct value, ascending.
std::vector<CcdfPoint> ccdf(const std::vector<double>& values);

struct Histogram {
    // Bin b covers [edges[b], edges[b + 1]); the last bin is closed on the right.
    std::vector<double> edges;
    std::vector<std::int64_t> counts;
};
// Integer bins 0, 1, ..., max: counts[v] = #samples with value v. Values must
// be integers >= 0.
Histogram integer_histogram(const std::vector<std::int64_t>& values);
// Log-spaced bins for heavy tails: [0, 1) then edges 1, 10^(1/b), 10^(2/b), ...
// (b = bins_per_decade) until the maximum is covered. For integer data bins
// narrower than 1 would be empty, so every edge >= 1 is rounded up to an
// integer and duplicates are dropped when `integer_edges` is set.
Histogram log_histogram(const std::vector<double>& values, int bins_per_decade = 5,
                        bool integer_edges = true);

struct SummaryParams {
    std::vector<double> quantiles{0.9, 0.99, 0.999};
    std::size_t top_k = 10;
    double top_share_fraction = 0.01;  // "top 1%"
};

struct DistributionSummary {
    std::size_t count = 0;
    double mean = 0;
    double median = 0;
    std::vector<double> quantile_levels;  // = params.quantiles
    std::vector<double> quantile_values;  // numpy 'linear'
    double max = 0;
    std::vector<TopEntry> top;
    Shape shape;
    double gini = 0;
    double top_share = 0;  // share of the total held by the top fraction
};
// Summary of any non-negative vector (n_pre, n_pre / L, a metric).
DistributionSummary summarize(const std::vector<double>& values, const SummaryParams& params = {});

struct NPreSummaryParams {
    SummaryParams summary;
    std::vector<std::int64_t> thresholds{5, 10, 20, 50};
    int log_bins_per_decade = 5;
};

struct ThresholdCount {
    std::int64_t threshold = 0;
    std::size_t count = 0;  // #samples with n_pre >= threshold
};

struct NPreSummary {
    DistributionSummary absolute;    // of n_pre
    DistributionSummary normalized;  // of n_pre / L (empty count when no lengths given)
    std::vector<ThresholdCount> at_least;
    std::size_t n_exact = 0;         // #samples reproduced verbatim
    Histogram histogram;             // integer bins 0..max
    Histogram log_histogram;
    std::vector<CcdfPoint> ccdf;
};
// M5 over a dataset. `lengths` (L_i, >= n_pre_i, > 0) may be empty, then the
// normalized summary is left empty. `exact` flags may be empty, then
// exact = (n_pre == L) when lengths are given, else 0; when given they are
// taken as is (the caller's own definition, e.g. a maximum generation length).
NPreSummary summarize_n_pre(const std::vector<std::int64_t>& n_pre,
                            const std::vector<std::int64_t>& lengths = {},
                            const std::vector<std::uint8_t>& exact = {},
                            const NPreSummaryParams& params = {});

}  // namespace memskew::stats
