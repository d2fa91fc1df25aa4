// METHOD M6: subset sampling bias and bootstrap. See include/memskew/stats/sampling.h.
#include "memskew/stats/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <boost/random/binomial_distribution.hpp>
#include <boost/random/uniform_int_distribution.hpp>

#include "memskew/error.h"
#include "memskew/stats/summary.h"
#include "stats/check.h"

namespace memskew::stats {

namespace {

void check_mkz(std::int64_t M, std::int64_t k, const char* fn) {
    if (M < 1) throw InvalidInput(std::string(fn) + ": M = " + std::to_string(M) + " must be >= 1");
    if (k < 1 || k > M) {
        throw InvalidInput(std::string(fn) + ": k = " + std::to_string(k) + " must lie in [1, M = " +
                           std::to_string(M) + "]");
    }
}

}  // namespace

double log_p_miss_top_k(std::int64_t M, std::int64_t k, std::int64_t z) {
    check_mkz(M, k, "p_miss_top_k");
    if (z < 0 || z > M) {
        throw InvalidInput("p_miss_top_k: z = " + std::to_string(z) + " must lie in [0, M = " +
                           std::to_string(M) + "]");
    }
    if (z > M - k) return -std::numeric_limits<double>::infinity();
    // Each factor is 1 - z / (M - i); log1p keeps full precision when z << M.
    double s = 0;
    const double zd = static_cast<double>(z);
    for (std::int64_t i = 0; i < k; ++i) s += std::log1p(-zd / static_cast<double>(M - i));
    return s;
}

double p_miss_top_k(std::int64_t M, std::int64_t k, std::int64_t z) {
    return std::exp(log_p_miss_top_k(M, k, z));
}

std::int64_t min_subset_size(std::int64_t M, std::int64_t k, double delta) {
    check_mkz(M, k, "min_subset_size");
    if (!(delta > 0 && delta < 1)) {
        throw InvalidInput("min_subset_size: delta = " + std::to_string(delta) + " must lie in (0, 1)");
    }
    // A relative slack of 1e-12 so that a z meeting delta exactly (1 - 950/1000
    // = 0.05) is not rejected for the last bit of rounding in the logs.
    const double log_delta = std::log(delta) + 1e-12;
    // Invariant: P(lo) > delta, P(hi) <= delta. P(0) = 1; P(M - k + 1) = 0.
    std::int64_t lo = 0, hi = M - k + 1;
    while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (log_p_miss_top_k(M, k, mid) <= log_delta) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return hi;
}

namespace {



Interval percentile_interval(double estimate, std::vector<double>& replicates, double confidence) {
    std::sort(replicates.begin(), replicates.end());
    const double a = (1.0 - confidence) / 2.0;
    return {estimate, quantile_sorted(replicates, a), quantile_sorted(replicates, 1.0 - a)};
}

}  // namespace

BootstrapResult bootstrap(const std::vector<double>& values, const BootstrapParams& params) {
    detail::require_non_empty(values, "bootstrap");
    detail::require_finite(values, "bootstrap");
    if (params.n_resamples < 1) throw InvalidInput("bootstrap: n_resamples must be >= 1");
    if (!(params.confidence > 0 && params.confidence < 1)) {
        throw InvalidInput("bootstrap: confidence = " + std::to_string(params.confidence) +
                           " must lie in (0, 1)");
    }
    detail::require_probability_level(params.quantile, "bootstrap", "quantile");

    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    const auto M = static_cast<std::int64_t>(sorted.size());

    BootstrapResult res;
    res.n_resamples = params.n_resamples;
    double total = 0;
    for (double v : sorted) total += v;
    const double est_mean = total / static_cast<double>(M);
    const double est_q = quantile_sorted(sorted, params.quantile);
    const double est_max = sorted.back();

    // Distinct values and their multiplicities.
    std::vector<double> distinct;
    std::vector<std::int64_t> mult;
    for (double v : sorted) {
        if (distinct.empty() || v != distinct.back()) {
            distinct.push_back(v);
            mult.push_back(0);
        }
        ++mult.back();
    }

    std::mt19937_64 rng(params.seed);
    std::vector<double> rep_mean(params.n_resamples), rep_q(params.n_resamples),
        rep_max(params.n_resamples);
    const std::size_t D = distinct.size();
    res.used_histogram = D <= sorted.size() / 8 || D == 1;
    if (res.used_histogram) {
        std::vector<std::int64_t> draw(D);
        for (std::size_t b = 0; b < params.n_resamples; ++b) {
            std::int64_t remaining = M;          // draws still to place
            std::int64_t population_left = M;    // multiplicity of values not yet visited
            double sum = 0, mx = distinct.front();
            for (std::size_t d = 0; d < D; ++d) {
                std::int64_t c = 0;
                if (remaining > 0) {
                    if (mult[d] == population_left) {
                        c = remaining;
                    } else {
                        const double p = static_cast<double>(mult[d]) / static_cast<double>(population_left);
                        boost::random::binomial_distribution<std::int64_t, double> bin(remaining, p);
                        c = bin(rng);
                    }
                }
                draw[d] = c;
                remaining -= c;
                population_left -= mult[d];
                sum += static_cast<double>(c) * distinct[d];
                if (c > 0) mx = distinct[d];
            }
            rep_mean[b] = sum / static_cast<double>(M);
            rep_max[b] = mx;
            rep_q[b] = quantile_from_counts(distinct, draw, params.quantile);
        }
    } else {
        boost::random::uniform_int_distribution<std::size_t> pick(0, sorted.size() - 1);
        std::vector<double> sample(sorted.size());
        for (std::size_t b = 0; b < params.n_resamples; ++b) {
            double sum = 0;
            for (auto& s : sample) {
                s = sorted[pick(rng)];
                sum += s;
            }
            std::sort(sample.begin(), sample.end());
            rep_mean[b] = sum / static_cast<double>(M);
            rep_max[b] = sample.back();
            rep_q[b] = quantile_sorted(sample, params.quantile);
        }
    }
    res.mean = percentile_interval(est_mean, rep_mean, params.confidence);
    res.quantile = percentile_interval(est_q, rep_q, params.confidence);
    res.max = percentile_interval(est_max, rep_max, params.confidence);
    return res;
}

}  // namespace memskew::stats
