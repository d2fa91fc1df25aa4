// METHOD M8: membership-inference style scores from teacher-forced
// log-probabilities (loss, perplexity, Min-K%, Min-K%++, zlib ratio), matching
// the reference implementations named in metrics.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <zlib.h>

#include "metrics/metrics-util.h"

namespace memskew {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Mean of the `count` smallest values (order among them does not matter).
double mean_of_lowest(std::vector<double> values, std::size_t count) {
    std::nth_element(values.begin(), values.begin() + (count - 1), values.end());
    double sum = 0.0;
    for (std::size_t i = 0; i < count; ++i) sum += values[i];
    return sum / static_cast<double>(count);
}

}  // namespace

double mean_nll(const std::vector<double>& log_probs) {
    metrics_detail::require_non_empty(log_probs.size(), "log-probabilities");
    auto lp = metrics_detail::checked_log_probs(log_probs, "log q");
    return -std::accumulate(lp.begin(), lp.end(), 0.0) / static_cast<double>(lp.size());
}

double perplexity(const std::vector<double>& log_probs) { return std::exp(mean_nll(log_probs)); }

std::size_t min_k_count(std::size_t n, double k) {
    if (std::isnan(k) || k <= 0.0 || k > 1.0) {
        throw InvalidInput(fmt::format("min-k fraction {} must be in (0, 1]", k),
                           "k is a fraction: 0.2 for min-20%");
    }
    // Same double product and truncation as Python's int(len(probs) * k).
    auto count = static_cast<std::size_t>(static_cast<double>(n) * k);
    return std::min(n, std::max<std::size_t>(count, 1));
}

double min_k_prob(const std::vector<double>& log_probs, double k) {
    std::size_t count = min_k_count(log_probs.size(), k);
    metrics_detail::require_non_empty(log_probs.size(), "log-probabilities");
    return mean_of_lowest(metrics_detail::checked_log_probs(log_probs, "log q"), count);
}

std::vector<double> min_k_plus_plus_scores(const std::vector<double>& log_probs,
                                           const std::vector<double>& mean_log_probs,
                                           const std::vector<double>& var_log_probs) {
    using metrics_detail::require_same_length;
    require_same_length(mean_log_probs.size(), log_probs.size(), "mean log p (mu)", "log q");
    require_same_length(var_log_probs.size(), log_probs.size(), "variance of log p", "log q");
    std::vector<double> scores(log_probs.size());
    for (std::size_t j = 0; j < log_probs.size(); ++j) {
        double lp = metrics_detail::checked_log_prob(log_probs[j], "log q", j);
        double mu = mean_log_probs[j];
        double var = var_log_probs[j];
        if (!std::isfinite(mu) || mu > kLogProbTolerance) {
            throw InvalidInput(fmt::format("mu[{}] = {} is not a mean log-probability", j, mu));
        }
        // E[x^2] - E[x]^2 can round a little below 0 for a near one-hot p_j.
        if (std::isnan(var) || var < -1e-6 * std::max(1.0, mu * mu)) {
            throw InvalidInput(fmt::format("variance[{}] = {} is negative", j, var),
                               "pass the variance sigma^2, not sigma or a log");
        }
        double sigma = std::sqrt(std::max(var, 0.0));
        double diff = lp - mu;
        if (sigma > 0.0) {
            scores[j] = diff / sigma;
        } else {
            // One-hot p_j: the only token scores 0, anything else is infinitely unlikely.
            scores[j] = diff == 0.0 ? 0.0 : std::copysign(kInf, diff);
        }
    }
    return scores;
}

double min_k_plus_plus(const std::vector<double>& log_probs,
                       const std::vector<double>& mean_log_probs,
                       const std::vector<double>& var_log_probs, double k) {
    std::size_t count = min_k_count(log_probs.size(), k);
    metrics_detail::require_non_empty(log_probs.size(), "log-probabilities");
    return mean_of_lowest(min_k_plus_plus_scores(log_probs, mean_log_probs, var_log_probs), count);
}

std::size_t zlib_compressed_size(std::string_view text, int level) {
    if (level < -1 || level > 9) {
        throw InvalidInput(fmt::format("zlib level {} must be in [-1, 9]", level));
    }
    uLongf size = compressBound(static_cast<uLong>(text.size()));
    std::vector<Bytef> buffer(size);
    int rc = compress2(buffer.data(), &size, reinterpret_cast<const Bytef*>(text.data()),
                       static_cast<uLong>(text.size()), level);
    if (rc != Z_OK) throw InvalidInput(fmt::format("zlib compress2 failed with code {}", rc));
    return static_cast<std::size_t>(size);
}

double zlib_ratio(double mean_nll_value, std::string_view text) {
    if (std::isnan(mean_nll_value)) throw InvalidInput("mean NLL is NaN");
    return mean_nll_value / static_cast<double>(zlib_compressed_size(text));
}

}  // namespace memskew
