// Correlation and two-sample tests (METHOD M8's Spearman correlations, M11's
// paired Wilcoxon test, and a two-sample Kolmogorov–Smirnov test), matching
// SciPy 1.10's definitions where noted so results can be checked against it.
#pragma once

#include <cstddef>
#include <vector>

namespace memskew::stats {

// Ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average').
std::vector<double> rank_average(const std::vector<double>& values);

struct CorrelationResult {
    double statistic = 0;  // rho; NaN when either input is constant (as SciPy)
    double p_value = 0;    // two-sided; NaN when rho is NaN or n < 3
    std::size_t n = 0;
};

// Spearman's rho = Pearson correlation of average ranks, and its p-value as
// scipy.stats.spearmanr: t = rho sqrt((n - 2) / ((1 + rho)(1 - rho))) against
// Student's t with n - 2 degrees of freedom, two-sided (0 when |rho| = 1).
// Requires equal sizes and n >= 2.
CorrelationResult spearman(const std::vector<double>& x, const std::vector<double>& y);

enum class TestMethod {
    kAuto,    // see each test
    kExact,
    kAsymptotic,
};

struct WilcoxonResult {
    // min(R+, R-) as SciPy reports for the two-sided test.
    double statistic = 0;
    double p_value = 1;      // two-sided
    double r_plus = 0;       // rank sum of positive differences x - y
    double r_minus = 0;
    // Normal score of R+: (R+ - n(n+1)/4) / sigma, sigma with the tie
    // correction, no continuity correction; signed (> 0: x tends to exceed y).
    double z = 0;
    double effect_size_r = 0;  // z / sqrt(n), n = #non-zero differences (Rosenthal's r)
    double rank_biserial = 0;  // (R+ - R-) / (R+ + R-), in [-1, 1]
    std::size_t n = 0;         // non-zero differences used
    std::size_t n_zero = 0;    // zero differences dropped
    bool exact = false;        // p-value from the exact null distribution
};

// Wilcoxon signed-rank test of paired samples, two-sided, matching
// scipy.stats.wilcoxon(x, y, zero_method='wilcox', correction=False,
// alternative='two-sided', mode=...):
//  - zero differences are dropped (zero_method='wilcox');
//  - kAsymptotic ('approx'): z = (T - n(n+1)/4) / sqrt(n(n+1)(2n+1)/24 - sum(t^3 - t)/48)
//    over tie groups t, p = 2 sf(|z|);
//  - kExact ('exact'): the exact distribution of R+ (subset-sum counts), only
//    valid without zeros and ties — InvalidInput otherwise;
//  - kAuto: exact when n <= 50 and there are no zeros and no ties, else the
//    normal approximation. SciPy 1.10's 'auto' also picks exact for n <= 50
//    with tied ranks (then truncating R+ to an integer); we use the tie-
//    corrected approximation there, so only compare with SciPy in that case
//    when passing mode='approx'.
// Requires equal sizes and at least one non-zero difference.
WilcoxonResult wilcoxon(const std::vector<double>& x, const std::vector<double>& y,
                        TestMethod method = TestMethod::kAuto);

struct KsResult {
    double statistic = 0;  // D = sup |F1 - F2|
    double p_value = 1;    // two-sided
    bool exact = false;
};

// Two-sample Kolmogorov–Smirnov test, two-sided, like scipy.stats.ks_2samp:
//  - kExact: the exact null probability P(D >= d) of the lattice-path
//    (permutation) distribution: for n1 == n2 SciPy's alternating binomial
//    sum, otherwise 1 - P(path stays inside the band) by dynamic programming
//    over path probabilities (no big binomials), O(n1 n2) at worst; being a
//    complement, its absolute error is ~1e-15, so p-values far below 1e-12
//    carry little relative precision (SciPy's inside method shares this);
//  - kAsymptotic: the limiting Kolmogorov distribution, p = Q_KS(sqrt(en) D),
//    en = n1 n2 / (n1 + n2). SciPy >= 1.5's 'asymp' uses the finite-n
//    distribution kstwo(round(en)) instead; the two differ by O(1/sqrt(en)),
//    so this equals scipy.stats.kstwobign.sf(sqrt(en) * D).
//  - kAuto: exact when max(n1, n2) <= 10000 (SciPy's cut-off), else asymptotic.
KsResult ks_2samp(const std::vector<double>& x, const std::vector<double>& y,
                  TestMethod method = TestMethod::kAuto);

// Survival function of the Kolmogorov distribution, P(K > z), K = sup|Brownian bridge|.
double kolmogorov_sf(double z);

}  // namespace memskew::stats
