// METHOD M4: sampling-based extraction, entirely in log space. p_z is a
// product of L per-token probabilities and underflows double for long
// references, so nothing here forms p_z unless it is representable.
#include <cmath>
#include <limits>

#include "metrics/metrics-util.h"

namespace memskew {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kLn2 = 0.69314718055994530942;

void check_log_p_z(double log_p_z) {
    if (std::isnan(log_p_z) || log_p_z > 0.0) {
        throw InvalidInput(fmt::format("log p_z = {} is not a log-probability (must be <= 0)",
                                       log_p_z));
    }
}

// log(1 - e^x) for x <= 0, accurate on both sides of -ln 2 (Maechler 2012).
double log1mexp(double x) {
    return x > -kLn2 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x));
}

// log(-log(1 - p_z)) from log p_z. -log(1 - p) = p (1 + p/2 + p^2/3 + ...), so
// for tiny p_z this is log p_z + log1p(p_z/2 + p_z^2/3) with no underflow, even
// when p_z itself rounds to 0 (log p_z = -2000 gives -2000).
double log_neg_log1m(double log_p_z) {
    if (log_p_z == -kInf) return -kInf;
    if (log_p_z < -20.0) {
        // p <= 2e-9: the series' next term (p^3/4 relative) is below double precision.
        double p = std::exp(log_p_z);
        return log_p_z + std::log1p(p / 2.0 + p * p / 3.0);
    }
    return std::log(-log1mexp(log_p_z));  // +inf at p_z = 1
}

}  // namespace

std::vector<double> log_survival(const std::vector<double>& log_p) {
    std::vector<double> out(log_p.size());
    double sum = 0.0;
    for (std::size_t j = 0; j < log_p.size(); ++j) {
        sum += metrics_detail::checked_log_prob(log_p[j], "log p^T", j);
        out[j] = sum;
    }
    return out;
}

double expected_prefix_length(const std::vector<double>& log_p) {
    std::vector<double> s = log_survival(log_p);
    // Terms are non-increasing in k; adding the smallest first loses least.
    double e = 0.0;
    for (auto it = s.rbegin(); it != s.rend(); ++it) e += std::exp(*it);
    return e;
}

double log_sequence_probability(const std::vector<double>& log_p) {
    std::vector<double> s = log_survival(log_p);
    return s.empty() ? 0.0 : s.back();
}

double log_prob_extracted_within(double log_p_z, double n_tries) {
    check_log_p_z(log_p_z);
    if (std::isnan(n_tries) || n_tries < 0.0) {
        throw InvalidInput(fmt::format("number of tries {} must be >= 0", n_tries));
    }
    if (n_tries == 0.0) return -kInf;
    // 1 - (1 - p_z)^n = 1 - exp(-x) with x = -n log1p(-p_z) = exp(la).
    double la = std::log(n_tries) + log_neg_log1m(log_p_z);
    if (la == kInf) return 0.0;
    if (la == -kInf) return -kInf;
    // Below this, exp(la) is subnormal or zero and 1 - e^-x = x (1 - x/2 + ...)
    // is x to double precision: the answer is la itself.
    if (la < -700.0) return la;
    double x = std::exp(la);
    return x <= kLn2 ? std::log(-std::expm1(-x)) : std::log1p(-std::exp(-x));
}

double prob_extracted_within(double log_p_z, double n_tries) {
    return std::exp(log_prob_extracted_within(log_p_z, n_tries));
}

double log_tries_for_probability(double log_p_z, double p) {
    check_log_p_z(log_p_z);
    if (std::isnan(p) || p < 0.0 || p > 1.0) {
        throw InvalidInput(fmt::format("target probability {} must be in [0, 1]", p));
    }
    if (p == 0.0) return -kInf;      // zero tries reach probability 0
    if (log_p_z == 0.0) return 0.0;  // p_z = 1: one try is certain
    if (log_p_z == -kInf || p == 1.0) return kInf;
    // n = -log1p(-p) / -log1p(-p_z), as a difference of logs so that a tiny
    // p_z (n beyond double range) still has a finite log n.
    return std::log(-std::log1p(-p)) - log_neg_log1m(log_p_z);
}

double tries_for_probability(double log_p_z, double p) {
    return std::exp(log_tries_for_probability(log_p_z, p));
}

}  // namespace memskew
