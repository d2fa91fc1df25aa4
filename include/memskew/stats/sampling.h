// METHOD M6: sampling bias when auditing a subset, and bootstrap uncertainty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memskew::stats {

// P(a uniformly random subset of size z out of M contains none of the k most
// memorized samples) = C(M-k, z) / C(M, z) = prod_{i=0..k-1} (M - z - i) / (M - i),
// evaluated as a sum of log1p(-z / (M - i)): exact up to rounding and no
// underflow. log of 0 is -inf (z > M - k: the subset must contain one).
// Requires 1 <= k <= M and z <= M.
double log_p_miss_top_k(std::int64_t M, std::int64_t k, std::int64_t z);
double p_miss_top_k(std::int64_t M, std::int64_t k, std::int64_t z);

// Smallest z with P(miss top-k) <= delta, i.e. a subset that catches at least
// one of the top k with confidence 1 - delta (binary search on the exact
// product, which decreases in z). Requires 1 <= k <= M and 0 < delta < 1.
std::int64_t min_subset_size(std::int64_t M, std::int64_t k, double delta);

struct BootstrapParams {
    std::size_t n_resamples = 1000;
    std::uint64_t seed = 0;
    double confidence = 0.95;  // percentile interval [(1-c)/2, (1+c)/2]
    double quantile = 0.99;    // the quantile whose uncertainty is reported (numpy 'linear')
};

struct Interval {
    double estimate = 0;  // the statistic on the original data
    double lower = 0;
    double upper = 0;
};

struct BootstrapResult {
    Interval mean;
    Interval quantile;
    Interval max;
    std::size_t n_resamples = 0;
    bool used_histogram = false;  // true: multinomial resampling over distinct values
};

// Non-parametric bootstrap (resampling M values with replacement) of the mean,
// one quantile and the maximum, with percentile intervals (numpy 'linear'
// quantiles of the replicates).
//
// Speed: a resample is fully described by how many times each *distinct*
// value is drawn, and those counts are Multinomial(M, count_v / M). When the
// data have few distinct values (n_pre: at most L + 1) each resample is drawn
// as D sequential binomials, count_v ~ Bin(M - drawn so far,
// p_v / (remaining probability)), and the statistics are read off the counts
// in O(D) — 1000 resamples of M = 1,000,000 integers take milliseconds.
// This is the same distribution as drawing M indices. With many distinct
// values (D > M / 8) indices are drawn directly instead.
//
// Reproducible: std::mt19937_64 seeded with params.seed and Boost.Random's
// distributions (their algorithms are fixed, unlike the std:: ones), so one
// seed gives the same intervals on every platform.
BootstrapResult bootstrap(const std::vector<double>& values, const BootstrapParams& params = {});

}  // namespace memskew::stats
