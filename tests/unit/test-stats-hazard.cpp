// METHOD M7: censored hazards, model PMFs, geometric and linear-hazard fits,
// the log-gamma product identity, and the independence check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "memskew/error.h"
#include "memskew/stats/hazard.h"

using namespace memskew;
using namespace memskew::stats;

namespace {

struct Simulated {
    std::vector<std::int64_t> n_pre, lengths;
};

// n_pre under per-position recall hazards(j) with references of the given
// lengths: walk positions until the first miss or the end.
template <typename Hazard>
Simulated simulate(std::size_t M, std::int64_t min_len, std::int64_t max_len, Hazard hazard, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<std::int64_t> len(min_len, max_len);
    Simulated s;
    for (std::size_t i = 0; i < M; ++i) {
        const std::int64_t L = len(rng);
        std::int64_t n = 0;
        while (n < L && u(rng) < hazard(n + 1)) ++n;
        s.n_pre.push_back(n);
        s.lengths.push_back(L);
    }
    return s;
}

// Standard errors from the observed information (numerical Hessian of the
// censored log-likelihood at the estimate) — the tolerance the fit tests use.
std::vector<double> linear_hazard_standard_errors(const Simulated& s, double p0, double alpha) {
    const std::int64_t L = *std::max_element(s.lengths.begin(), s.lengths.end());
    auto ll = [&](double a, double b) {
        return censored_log_likelihood(s.n_pre, s.lengths, linear_hazards(a, b, L));
    };
    const double h0 = 1e-4, h1 = 1e-6;
    const double f = ll(p0, alpha);
    const double faa = (ll(p0 + h0, alpha) - 2 * f + ll(p0 - h0, alpha)) / (h0 * h0);
    const double fbb = (ll(p0, alpha + h1) - 2 * f + ll(p0, alpha - h1)) / (h1 * h1);
    const double fab = (ll(p0 + h0, alpha + h1) - ll(p0 + h0, alpha - h1) - ll(p0 - h0, alpha + h1) +
                        ll(p0 - h0, alpha - h1)) / (4 * h0 * h1);
    // Inverse of the information matrix -H.
    const double a = -faa, b = -fab, d = -fbb, det = a * d - b * b;
    return {std::sqrt(d / det), std::sqrt(a / det)};
}

}  // namespace

TEST(StatsHazard, EmpiricalHazardHandExample) {
    // sample: n_pre / L      -> fails at 1; censored after 2; fails at 4; censored after 5
    const std::vector<std::int64_t> n_pre{0, 2, 3, 5}, len{4, 2, 8, 5};
    const auto h = empirical_hazard(n_pre, len);
    ASSERT_EQ(h.size(), 8u);
    const std::int64_t at_risk[] = {4, 3, 2, 2, 1, 0, 0, 0};
    const std::int64_t failures[] = {1, 0, 0, 1, 0, 0, 0, 0};
    for (int j = 0; j < 8; ++j) {
        EXPECT_EQ(h[j].position, j + 1);
        EXPECT_EQ(h[j].at_risk, at_risk[j]) << "j=" << j + 1;
        EXPECT_EQ(h[j].failures, failures[j]) << "j=" << j + 1;
    }
    EXPECT_DOUBLE_EQ(h[0].recall, 0.75);
    EXPECT_DOUBLE_EQ(h[1].recall, 1.0);
    EXPECT_DOUBLE_EQ(h[3].recall, 0.5);
    EXPECT_TRUE(std::isnan(h[5].recall));
    EXPECT_DOUBLE_EQ(h[3].survival, 0.375);
    EXPECT_DOUBLE_EQ(h[4].survival, 0.375);
    EXPECT_TRUE(std::isnan(h[5].survival));
    // Wilson interval of 3/4 at 95%: (0.3006418, 0.9544127).
    EXPECT_NEAR(h[0].recall_lower, 0.3006418, 1e-6);
    EXPECT_NEAR(h[0].recall_upper, 0.9544127, 1e-6);
    // Greenwood at j = 1: S = 0.75, var = S^2 * 1 / (4 * 3).
    EXPECT_NEAR(h[0].survival_lower, 0.75 - 1.959964 * 0.75 * std::sqrt(1.0 / 12), 1e-6);
    for (const auto& p : h) {
        if (std::isnan(p.recall)) continue;
        EXPECT_LE(p.recall_lower, p.recall);
        EXPECT_GE(p.recall_upper, p.recall);
    }
}

TEST(StatsHazard, GeometricMleHandExample) {
    // sum n = 10, failures (n < L) = 2 -> p = 10 / 12.
    const std::vector<std::int64_t> n_pre{0, 2, 3, 5}, len{4, 2, 8, 5};
    const ModelFit g = fit_geometric(n_pre, len);
    EXPECT_DOUBLE_EQ(g.params[0], 10.0 / 12.0);
    const double ll = 10 * std::log(10.0 / 12.0) + 2 * std::log(2.0 / 12.0);
    EXPECT_NEAR(g.log_likelihood, ll, 1e-12);
    EXPECT_NEAR(g.aic, 2 - 2 * ll, 1e-12);
    EXPECT_NEAR(censored_log_likelihood(n_pre, len, geometric_hazards(10.0 / 12.0, 8)), ll, 1e-12);
    // The MLE: the likelihood is lower on both sides.
    EXPECT_LT(censored_log_likelihood(n_pre, len, geometric_hazards(0.82, 8)), ll);
    EXPECT_LT(censored_log_likelihood(n_pre, len, geometric_hazards(0.85, 8)), ll);
    // Nothing failed: p = 1 and log L = 0.
    EXPECT_DOUBLE_EQ(fit_geometric({3, 4}, {3, 4}).params[0], 1.0);
    EXPECT_DOUBLE_EQ(fit_geometric({3, 4}, {3, 4}).log_likelihood, 0.0);
}

TEST(StatsHazard, LogGammaProductIdentity) {
    struct Case { double p0, alpha; std::int64_t n; };
    const Case cases[] = {{0.5, 0.01, 50}, {0.3, 0.005, 64}, {0.9, 0.001, 100}, {0.05, 0.2, 4},
                          {-0.05, 0.1, 8}, {0.7, 1e-4, 64},  {1e-3, 0.05, 19}, {0.2, 0.3, 2}};
    for (const auto& c : cases) {
        long double direct = 0;
        for (std::int64_t j = 1; j <= c.n; ++j) direct += std::log(static_cast<long double>(c.p0 + c.alpha * j));
        const double closed = log_linear_hazard_product_closed_form(c.p0, c.alpha, c.n);
        EXPECT_NEAR(closed, static_cast<double>(direct), 1e-10 * std::max(1.0, std::abs(static_cast<double>(direct))))
            << "p0=" << c.p0 << " alpha=" << c.alpha << " n=" << c.n;
        EXPECT_NEAR(log_linear_hazard_product(c.p0, c.alpha, c.n), static_cast<double>(direct), 1e-10 * std::max(1.0, std::abs(static_cast<double>(direct))));
    }
    // The authors' variant p0^n Γ(n+1+α/p0)/Γ(1+α/p0) is not this product (METHOD M7).
    const double p0 = 0.5, alpha = 0.01;
    const std::int64_t n = 10;
    const double authors = n * std::log(p0) + std::lgamma(n + 1 + alpha / p0) - std::lgamma(1 + alpha / p0);
    EXPECT_GT(std::abs(authors - log_linear_hazard_product(p0, alpha, n)), 1.0);
    // Clipping: factors above 1 count as 1, a zero factor gives -inf.
    EXPECT_NEAR(log_linear_hazard_product(0.9, 0.05, 10), std::log(0.95), 1e-15);
    EXPECT_EQ(log_linear_hazard_product(-0.5, 0.1, 6), -INFINITY);
    EXPECT_EQ(log_linear_hazard_product(0.3, 0.0, 0), 0.0);
    EXPECT_NEAR(log_linear_hazard_product(0.3, 0.0, 7), 7 * std::log(0.3), 1e-13);
    EXPECT_THROW(log_linear_hazard_product_closed_form(0.5, 0.0, 3), InvalidInput);
}

TEST(StatsHazard, PmfFromHazards) {
    const auto pmf = pmf_from_hazards({0.5, 0.8, 1.0, 0.25});
    ASSERT_EQ(pmf.size(), 5u);
    EXPECT_DOUBLE_EQ(pmf[0], 0.5);
    EXPECT_DOUBLE_EQ(pmf[1], 0.5 * 0.2);
    EXPECT_DOUBLE_EQ(pmf[2], 0.0);
    EXPECT_DOUBLE_EQ(pmf[3], 0.4 * 0.75);
    EXPECT_DOUBLE_EQ(pmf[4], 0.4 * 0.25);
    double total = 0;
    for (double p : pmf_from_hazards(geometric_hazards(0.7, 64))) total += p;
    EXPECT_NEAR(total, 1.0, 1e-14);
    EXPECT_NEAR(pmf_from_hazards(geometric_hazards(0.7, 64))[3], std::pow(0.7, 3) * 0.3, 1e-15);
    EXPECT_THROW(pmf_from_hazards({0.5, 1.5}), InvalidInput);
}

TEST(StatsHazard, GeometricFitRecoversP) {
    // p = 0.7, M = 10000, lengths 16..64 (some censoring at 16).
    // SE = sqrt(p (1 - p)^2 / M) ~ 0.0025 (Fisher information of the geometric);
    // censoring only lowers information a little. Tolerance 4 SE = 0.01.
    const Simulated s = simulate(10000, 16, 64, [](std::int64_t) { return 0.7; }, 1);
    const ModelFit g = fit_geometric(s.n_pre, s.lengths);
    EXPECT_NEAR(g.params[0], 0.7, 0.01);
    // The data are geometric: its KS distance is small (~1/sqrt(M)) and the linear
    // hazard finds alpha ~ 0 with at most a small likelihood gain.
    EXPECT_LT(g.ks_distance, 0.02);
    const ModelFit lin = fit_linear_hazard(s.n_pre, s.lengths);
    EXPECT_NEAR(lin.params[1], 0.0, 0.005);
    EXPECT_GE(lin.log_likelihood, g.log_likelihood - 1e-6);  // nests the geometric
    EXPECT_LT(lin.log_likelihood - g.log_likelihood, 5.0);   // LR test: chi2_1 / 2, tiny
}

TEST(StatsHazard, LinearHazardFitRecoversParameters) {
    // p_j = clip(0.5 + 0.01 j, 0, 1) over L = 64, M = 20000. The tolerance is
    // 4 standard errors from the observed information at the estimate
    // (SE ~ 0.006 for p0 and ~ 0.0006 for alpha at this M).
    const Simulated s = simulate(20000, 64, 64, [](std::int64_t j) { return std::min(1.0, 0.5 + 0.01 * j); }, 2);
    const ModelFit lin = fit_linear_hazard(s.n_pre, s.lengths);
    ASSERT_EQ(lin.params.size(), 2u);
    const auto se = linear_hazard_standard_errors(s, lin.params[0], lin.params[1]);
    EXPECT_LT(se[0], 0.02);
    EXPECT_LT(se[1], 0.002);
    EXPECT_NEAR(lin.params[0], 0.5, 4 * se[0]) << "SE " << se[0];
    EXPECT_NEAR(lin.params[1], 0.01, 4 * se[1]) << "SE " << se[1];
    EXPECT_TRUE(lin.converged);
    // The fitted point is a maximum of the same likelihood the tests use.
    const double ll = censored_log_likelihood(s.n_pre, s.lengths, lin.hazards);
    EXPECT_NEAR(lin.log_likelihood, ll, 1e-6 * std::abs(ll));
    for (double dp : {-1e-3, 1e-3}) {
        EXPECT_LE(censored_log_likelihood(s.n_pre, s.lengths, linear_hazards(lin.params[0] + dp, lin.params[1], 64)), ll);
        EXPECT_LE(censored_log_likelihood(s.n_pre, s.lengths, linear_hazards(lin.params[0], lin.params[1] + dp / 10, 64)), ll);
    }
    // Model comparison: the linear hazard wins clearly on AIC and KS.
    const ModelFit g = fit_geometric(s.n_pre, s.lengths);
    // Likelihood-ratio statistic 2 (log L_lin - log L_geo) ~ 60 here; an AIC gap of
    // 20 (LR p < 1e-5) is a safe floor for this seed and size.
    EXPECT_LT(lin.aic, g.aic - 20);
    EXPECT_LT(lin.ks_distance, 0.02);
    EXPECT_GT(g.ks_distance, lin.ks_distance);
    EXPECT_NEAR(lin.aic, 4 - 2 * lin.log_likelihood, 1e-9);
}

TEST(StatsHazard, KsDistanceAccountsForCensoring) {
    // Everyone has L = 3 and reproduces it fully: the perfect model p = 1 has
    // distance 0 (all mass at n = 3 = L), not 1.
    EXPECT_NEAR(ks_distance_to_hazards({3, 3}, {3, 3}, {1, 1, 1}), 0.0, 1e-15);
    // n_pre = 0 everywhere vs p = 0.5: F(0) = 0.5 vs 1.
    EXPECT_NEAR(ks_distance_to_hazards({0, 0}, {2, 2}, {0.5, 0.5}), 0.5, 1e-15);
}

TEST(StatsHazard, InvalidArguments) {
    EXPECT_THROW(empirical_hazard({}, {}), InvalidInput);
    EXPECT_THROW(empirical_hazard({1}, {}), InvalidInput);
    EXPECT_THROW(empirical_hazard({5}, {4}), InvalidInput);
    EXPECT_THROW(fit_geometric({0}, {0}), InvalidInput);
    EXPECT_THROW(fit_linear_hazard({-1}, {3}), InvalidInput);
    EXPECT_THROW(censored_log_likelihood({1, 2}, {3, 3}, {0.5}), InvalidInput);
    HazardParams bad;
    bad.confidence = 1.5;
    EXPECT_THROW(empirical_hazard({1}, {2}, bad), InvalidInput);
    EXPECT_THROW(independence_check({}), InvalidInput);
}

TEST(StatsIndependence, ZeroForExactlyIndependentFlags) {
    // All four (c1, c2) combinations equally often: MI(C2; C1) = 0 exactly.
    std::vector<std::vector<std::uint8_t>> flags;
    for (int r = 0; r < 50; ++r) {
        flags.push_back({1, 1});
        flags.push_back({1, 0});
        flags.push_back({0, 1});
        flags.push_back({0, 0});
    }
    const auto d = independence_check(flags);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].position, 2);
    EXPECT_EQ(d[0].n_samples, 200);
    EXPECT_EQ(d[0].mi_state_bits, 0.0);
    EXPECT_EQ(d[0].mi_previous_bits, 0.0);
    EXPECT_EQ(d[0].p_value_state_exact, 1.0);
    EXPECT_EQ(d[0].p_value_state, 1.0);
}

TEST(StatsIndependence, MutualInformationHandValues) {
    const std::int64_t perfect[2][2] = {{50, 0}, {0, 50}};
    EXPECT_NEAR(mutual_information_bits(perfect), 1.0, 1e-15);
    const std::int64_t indep[2][2] = {{10, 30}, {20, 60}};
    EXPECT_NEAR(mutual_information_bits(indep), 0.0, 1e-15);
    const std::int64_t empty[2][2] = {{0, 0}, {0, 0}};
    EXPECT_EQ(mutual_information_bits(empty), 0.0);
}

TEST(StatsIndependence, DetectsDependenceAndNotIndependence) {
    std::mt19937_64 rng(5);
    std::bernoulli_distribution stay(0.85), coin(0.7);
    std::vector<std::vector<std::uint8_t>> markov, iid;
    for (int i = 0; i < 600; ++i) {
        const std::size_t L = 6 + i % 5;  // ragged
        std::vector<std::uint8_t> m(L), f(L);
        m[0] = coin(rng);
        f[0] = coin(rng);
        for (std::size_t j = 1; j < L; ++j) {
            m[j] = stay(rng) ? m[j - 1] : !m[j - 1];  // c_j depends on c_{j-1}
            f[j] = coin(rng);
        }
        markov.push_back(m);
        iid.push_back(f);
    }
    IndependenceParams p;
    p.seed = 9;
    const auto dm = independence_check(markov, p);
    ASSERT_EQ(dm.size(), 9u);
    for (const auto& d : dm) {
        if (d.n_samples < 300) continue;
        EXPECT_GT(d.mi_previous_bits, 0.1) << "j=" << d.position;
        EXPECT_LE(d.p_value_previous, 2.0 / 1001.0);
        EXPECT_LT(d.p_value_previous_exact, 1e-6);
    }
    EXPECT_GT(dm[0].mi_state_bits, 0.1);  // j = 2: state = c_1
    const auto di = independence_check(iid, p);
    int small = 0;
    for (const auto& d : di) {
        EXPECT_LT(d.mi_previous_bits, 0.02);
        small += d.p_value_previous < 0.01 ? 1 : 0;
        // Monte Carlo p-value tracks the exact permutation p-value (SE <= 0.016 at 1000).
        EXPECT_NEAR(d.p_value_previous, d.p_value_previous_exact, 0.07);
    }
    EXPECT_LE(small, 1);
    // Reproducible with the same seed.
    const auto again = independence_check(iid, p);
    for (std::size_t j = 0; j < di.size(); ++j) EXPECT_EQ(di[j].p_value_state, again[j].p_value_state);
}
