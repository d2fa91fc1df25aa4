// METHOD M7: how per-token recall produces the skew. Censored per-position
// recall (hazard), model PMFs, the geometric and linear-hazard fits, and the
// independence check.
//
// Data: per sample the prefix match length n_pre_i and the reference length
// L_i (0 <= n_pre_i <= L_i, L_i >= 1). Positions j are 1-based as in METHOD.
// A sample is at risk at j if it survived j - 1 positions (n_pre_i >= j - 1)
// and its reference has a position j (L_i >= j); it fails at j if
// n_pre_i = j - 1 < L_i. A sample with n_pre_i = L_i never fails: it is
// censored after L_i (Kaplan–Meier logic: a short reference is not a failure).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace memskew::stats {

struct HazardParams {
    double confidence = 0.95;  // pointwise level of the Wilson / Greenwood bands
};

struct PositionHazard {
    std::int64_t position = 0;  // j (1-based)
    std::int64_t at_risk = 0;
    std::int64_t failures = 0;
    // p_j^o = 1 - failures / at_risk; NaN when nobody is at risk.
    double recall = 0;
    // Wilson score interval for p_j^o treated as a binomial proportion of the
    // at_risk samples: well behaved at p near 0 or 1 and for few samples at
    // risk, where the Wald interval collapses to a point.
    double recall_lower = 0, recall_upper = 0;
    // Kaplan–Meier survival S(j) = P(N_pre >= j) = prod_{i<=j} p_i^o and its
    // Greenwood band S ± z S sqrt(sum_i d_i / (n_i (n_i - d_i))), clipped to [0, 1].
    double survival = 0;
    double survival_lower = 0, survival_upper = 0;
};

// One entry per position 1..max L_i. O(M + max L).
std::vector<PositionHazard> empirical_hazard(const std::vector<std::int64_t>& n_pre,
                                             const std::vector<std::int64_t>& lengths,
                                             const HazardParams& params = {});

// P(N = n) for n = 0..L from per-position recall p_1..p_L (hazards[j-1] = p_j):
// P(N = n) = (prod_{j<=n} p_j)(1 - p_{n+1}) for n < L, and P(N = L) = prod_{j<=L} p_j
// (the reference ends: the whole of it reproduced). Sums to 1. Log space inside.
std::vector<double> pmf_from_hazards(const std::vector<double>& hazards);

// Hazards of the two models at positions 1..L.
std::vector<double> geometric_hazards(double p, std::int64_t L);
// p_j = clip(p0 + alpha j, 0, 1).
std::vector<double> linear_hazards(double p0, double alpha, std::int64_t L);

// log prod_{j=1..n} clip(p0 + alpha j, 0, 1). When alpha > 0 and no factor is
// clipped (p0 + alpha > 0, p0 + alpha n <= 1) this is the closed form
//   n log(alpha) + lgamma(n + 1 + p0/alpha) - lgamma(1 + p0/alpha)
// (Boost.Math lgamma); otherwise, or when p0/alpha is so large that the
// lgamma difference would cancel badly, the direct sum of logs. -inf when a
// factor is 0.
double log_linear_hazard_product(double p0, double alpha, std::int64_t n);
// The closed form alone, for any alpha > 0 and p0 + alpha > 0 (no clipping
// applied): n log(alpha) + lgamma(n + 1 + p0/alpha) - lgamma(1 + p0/alpha).
double log_linear_hazard_product_closed_form(double p0, double alpha, std::int64_t n);

// Censored log-likelihood of a hazard sequence (hazards[j-1] = p_j, covering
// positions 1..max L_i): sum over samples of log prod_{j<=n_i} p_j plus, for
// samples that failed (n_i < L_i), log(1 - p_{n_i + 1}).
double censored_log_likelihood(const std::vector<std::int64_t>& n_pre,
                               const std::vector<std::int64_t>& lengths,
                               const std::vector<double>& hazards);

// Kolmogorov–Smirnov distance between the empirical CDF of the observed n_pre
// and the CDF the hazards imply for the *observed* (censored) n_pre of these
// samples: F(n) = 1 - S(n + 1) #{i: L_i > n} / M, S(k) = prod_{j<=k} p_j.
// Comparing against the uncensored model CDF would blame the model for the
// references being short. Maximum over n = 0..max L.
double ks_distance_to_hazards(const std::vector<std::int64_t>& n_pre,
                              const std::vector<std::int64_t>& lengths,
                              const std::vector<double>& hazards);

struct ModelFit {
    std::string model;           // "geometric" or "linear_hazard"
    std::vector<double> params;  // geometric: {p}; linear hazard: {p0, alpha}
    double log_likelihood = 0;
    double aic = 0;              // 2 k - 2 log L
    double ks_distance = 0;      // ks_distance_to_hazards of the fitted hazards
    std::vector<double> hazards; // fitted p_j, j = 1..max L (the curve to plot)
    bool converged = true;
};

// Censored MLE of the geometric model (p_j = p): closed form
// p = sum n_i / (sum n_i + #samples that failed before their end).
ModelFit fit_geometric(const std::vector<std::int64_t>& n_pre, const std::vector<std::int64_t>& lengths);

struct LinearHazardFitParams {
    std::size_t max_iterations = 2000;  // per Nelder–Mead run
    std::size_t n_restarts = 3;         // restarts from the best point (NM can stall)
    double tolerance = 1e-10;           // on the spread of -log L over the simplex
};
// Censored MLE of p_j = clip(p0 + alpha j, 0, 1) by Nelder–Mead over
// (p0, alpha), started from the geometric fit (alpha = 0) and from a weighted
// least-squares line through the empirical hazards; the likelihood goes
// through log_linear_hazard_product.
ModelFit fit_linear_hazard(const std::vector<std::int64_t>& n_pre,
                           const std::vector<std::int64_t>& lengths,
                           const LinearHazardFitParams& params = {});

// ---- independence check ------------------------------------------------------

// Mutual information in bits of two binary variables from their 2x2 table
// (counts[a][b] = #(X = a, Y = b)): H(X) - H(X | Y). 0 for an empty table.
double mutual_information_bits(const std::int64_t counts[2][2]);

struct IndependenceParams {
    std::size_t n_permutations = 1000;
    std::uint64_t seed = 0;
};

struct PositionDependence {
    std::int64_t position = 0;  // j >= 2
    std::int64_t n_samples = 0; // samples with L_i >= j
    // View 1: state = survived to j - 1 (c_1..c_{j-1} all 1).
    double mi_state_bits = 0;
    double p_value_state = 1;        // permutation test, (1 + #{MI* >= MI}) / (1 + n_permutations)
    double p_value_state_exact = 1;  // the permutation distribution itself (see below)
    // View 2: state = c_{j-1}.
    double mi_previous_bits = 0;
    double p_value_previous = 1;
    double p_value_previous_exact = 1;
};

// MI(C_j; state_{j-1}) per position j = 2..max L from ragged per-sample match
// flags (flags[i][j-1] = c_j of sample i, one entry per reference position).
// Permuting C_j across samples keeps both margins of the 2x2 table, so the
// permuted count of (C_j = 1, state = 1) is hypergeometric: each permutation
// is drawn from that distribution (seeded std::mt19937_64) instead of
// shuffling M flags, which keeps the test O(1) per permutation for any M.
// The exact permutation p-value (sum of the hypergeometric probabilities of
// tables with MI >= the observed one) is reported alongside.
std::vector<PositionDependence> independence_check(const std::vector<std::vector<std::uint8_t>>& flags,
                                                   const IndependenceParams& params = {});

}  // namespace memskew::stats
