// Spearman, Wilcoxon signed-rank, two-sample KS. See include/memskew/stats/rank-tests.h.
#include "memskew/stats/rank-tests.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include <boost/math/constants/constants.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>

#include "memskew/error.h"
#include "stats/check.h"

namespace memskew::stats {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void require_paired(const std::vector<double>& x, const std::vector<double>& y, const char* fn) {
    detail::require_non_empty(x, fn, "x");
    detail::require_non_empty(y, fn, "y");
    if (x.size() != y.size()) {
        throw InvalidInput(std::string(fn) + ": x has " + std::to_string(x.size()) + " values, y has " +
                           std::to_string(y.size()) + " (paired data need equal sizes)");
    }
    detail::require_finite(x, fn, "x");
    detail::require_finite(y, fn, "y");
}

// Sizes of the groups of equal values in an already sorted vector.
std::vector<std::size_t> tie_groups(const std::vector<double>& sorted) {
    std::vector<std::size_t> groups;
    for (std::size_t i = 0; i < sorted.size();) {
        std::size_t j = i;
        while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
        groups.push_back(j - i);
        i = j;
    }
    return groups;
}
}  // namespace

std::vector<double> rank_average(const std::vector<double>& values) {
    detail::require_finite(values, "rank_average");
    std::vector<std::size_t> idx(values.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
    std::vector<double> ranks(values.size());
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j < idx.size() && values[idx[j]] == values[idx[i]]) ++j;
        // Positions i..j-1 (0-based) share the mean of ranks i+1..j.
        const double r = 0.5 * (static_cast<double>(i + 1) + static_cast<double>(j));
        for (std::size_t k = i; k < j; ++k) ranks[idx[k]] = r;
        i = j;
    }
    return ranks;
}

CorrelationResult spearman(const std::vector<double>& x, const std::vector<double>& y) {
    require_paired(x, y, "spearman");
    if (x.size() < 2) throw InvalidInput("spearman: need at least 2 pairs");
    const std::vector<double> rx = rank_average(x), ry = rank_average(y);
    const double n = static_cast<double>(x.size());
    // Ranks always average (n + 1) / 2; center on it exactly.
    const double mean = (n + 1.0) / 2.0;
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < rx.size(); ++i) {
        const double a = rx[i] - mean, b = ry[i] - mean;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    CorrelationResult r;
    r.n = x.size();
    if (sxx == 0 || syy == 0) {
        r.statistic = r.p_value = kNaN;
        return r;
    }
    double rho = sxy / std::sqrt(sxx * syy);
    rho = std::clamp(rho, -1.0, 1.0);
    r.statistic = rho;
    if (x.size() < 3) {
        r.p_value = kNaN;
        return r;
    }
    if (std::abs(rho) >= 1.0) {
        r.p_value = 0.0;
        return r;
    }
    const double dof = n - 2.0;
    const double t = rho * std::sqrt(dof / ((rho + 1.0) * (1.0 - rho)));
    const boost::math::students_t dist(dof);
    r.p_value = std::min(1.0, 2.0 * boost::math::cdf(boost::math::complement(dist, std::abs(t))));
    return r;
}

namespace {

// P(R+ = s), s = 0..n(n+1)/2, under H0 without ties: the number of subsets of
// {1..n} summing to s over 2^n. Counts stay below 2^50 for n <= 50, exact in double.
std::vector<double> signed_rank_pmf(std::size_t n) {
    const std::size_t max_sum = n * (n + 1) / 2;
    std::vector<double> count(max_sum + 1, 0.0);
    count[0] = 1.0;
    for (std::size_t k = 1; k <= n; ++k) {
        for (std::size_t s = max_sum; s >= k; --s) count[s] += count[s - k];
    }
    const double total = std::ldexp(1.0, static_cast<int>(n));
    for (auto& c : count) c /= total;
    return count;
}

constexpr std::size_t kMaxExactWilcoxon = 50;

}  // namespace

WilcoxonResult wilcoxon(const std::vector<double>& x, const std::vector<double>& y, TestMethod method) {
    require_paired(x, y, "wilcoxon");
    WilcoxonResult res;
    std::vector<double> d;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double diff = x[i] - y[i];
        if (diff == 0) {
            ++res.n_zero;
        } else {
            d.push_back(diff);
        }
    }
    if (d.empty()) throw InvalidInput("wilcoxon: all differences are zero; the test is undefined");
    res.n = d.size();
    std::vector<double> abs_d(d.size());
    for (std::size_t i = 0; i < d.size(); ++i) abs_d[i] = std::abs(d[i]);
    const std::vector<double> r = rank_average(abs_d);
    for (std::size_t i = 0; i < d.size(); ++i) (d[i] > 0 ? res.r_plus : res.r_minus) += r[i];
    res.statistic = std::min(res.r_plus, res.r_minus);
    res.rank_biserial = (res.r_plus - res.r_minus) / (res.r_plus + res.r_minus);

    std::sort(abs_d.begin(), abs_d.end());
    const auto groups = tie_groups(abs_d);
    const bool ties = groups.size() < abs_d.size();
    const double n = static_cast<double>(res.n);
    const double mean = n * (n + 1.0) * 0.25;
    double var24 = n * (n + 1.0) * (2.0 * n + 1.0);
    for (auto t : groups) {
        const double td = static_cast<double>(t);
        var24 -= 0.5 * td * (td * td - 1.0);
    }
    const double se = std::sqrt(var24 / 24.0);
    res.z = se > 0 ? (res.r_plus - mean) / se : 0.0;
    res.effect_size_r = res.z / std::sqrt(n);

    bool exact = false;
    switch (method) {
        case TestMethod::kExact:
            if (res.n_zero > 0 || ties) {
                throw InvalidInput("wilcoxon: the exact distribution needs differences without zeros and "
                                   "ties (" + std::to_string(res.n_zero) + " zeros" +
                                   (ties ? ", tied |differences|" : "") + "); use the normal approximation");
            }
            exact = true;
            break;
        case TestMethod::kAuto:
            exact = x.size() <= kMaxExactWilcoxon && res.n_zero == 0 && !ties;
            break;
        case TestMethod::kAsymptotic:
            exact = false;
            break;
    }
    res.exact = exact;
    if (exact) {
        const std::vector<double> pmf = signed_rank_pmf(res.n);
        // No ties: R+ is an integer.
        const auto rp = static_cast<std::size_t>(std::llround(res.r_plus));
        if (rp == (pmf.size() - 1) / 2) {
            res.p_value = 1.0;  // the centre (SciPy's convention)
        } else {
            double p_less = 0, p_greater = 0;
            for (std::size_t s = 0; s <= rp; ++s) p_less += pmf[s];
            for (std::size_t s = rp; s < pmf.size(); ++s) p_greater += pmf[s];
            res.p_value = std::min(1.0, 2.0 * std::min(p_less, p_greater));
        }
    } else {
        if (se <= 0) {
            res.p_value = 1.0;  // all |differences| tied with n = 1: no spread to test
        } else {
            res.p_value = 2.0 * boost::math::cdf(boost::math::complement(boost::math::normal(), std::abs(res.z)));
        }
        res.p_value = std::min(1.0, res.p_value);
    }
    return res;
}

double kolmogorov_sf(double z) {
    if (std::isnan(z)) return kNaN;
    if (z <= 0) return 1.0;
    constexpr double kPi = boost::math::constants::pi<double>();
    if (z < 1.18) {
        // Jacobi theta form of the CDF converges fast for small z.
        double s = 0;
        const double f = -kPi * kPi / (8.0 * z * z);
        for (int k = 1; k <= 20; ++k) {
            const double odd = 2.0 * k - 1.0;
            s += std::exp(odd * odd * f);
        }
        const double cdf = std::sqrt(2.0 * kPi) / z * s;
        return std::clamp(1.0 - cdf, 0.0, 1.0);
    }
    double s = 0;
    for (int k = 1; k <= 100; ++k) {
        const double term = std::exp(-2.0 * k * k * z * z);
        s += (k % 2 == 1 ? term : -term);
        if (term < 1e-300) break;
    }
    return std::clamp(2.0 * s, 0.0, 1.0);
}

namespace {

// SciPy's _compute_prob_outside_square: P(D >= h/n) for two samples of size n,
// 2 sum_{k>=1} (-1)^(k-1) C(2n, n - kh) / C(2n, n) in Horner form.
double prob_outside_square(std::int64_t n, std::int64_t h) {
    double P = 0.0;
    for (std::int64_t k = n / h; k >= 0; --k) {
        double p1 = 1.0;
        for (std::int64_t j = 0; j < h; ++j) {
            p1 = static_cast<double>(n - k * h - j) * p1 / static_cast<double>(n + k * h + j + 1);
        }
        P = p1 * (1.0 - P);
    }
    return 2.0 * P;
}

// 1 - P(a uniformly random lattice path from (0,0) to (m,n) keeps
// |x ng - y mg| < h at every point). Path probabilities instead of path
// counts: no overflow, no huge binomial to divide by.
double prob_outside_band(std::int64_t m, std::int64_t n, std::int64_t g, std::int64_t h) {
    const std::int64_t mg = m / g, ng = n / g;
    auto inside = [&](std::int64_t x, std::int64_t y) { return std::llabs(x * ng - y * mg) < h; };
    std::vector<double> prev(static_cast<std::size_t>(n) + 1, 0.0), cur(prev.size(), 0.0);
    // Column x = 0: only y-steps.
    prev[0] = 1.0;
    for (std::int64_t y = 1; y <= n; ++y) {
        // P(step (0, y-1) -> (0, y)) = (y-steps left) / (steps left).
        const double p = prev[y - 1] * static_cast<double>(n - y + 1) / static_cast<double>(m + n - y + 1);
        prev[y] = inside(0, y) ? p : 0.0;
    }
    for (std::int64_t x = 1; x <= m; ++x) {
        for (std::int64_t y = 0; y <= n; ++y) {
            double p = prev[y] * static_cast<double>(m - x + 1) / static_cast<double>(m + n - x + 1 - y);
            if (y > 0) p += cur[y - 1] * static_cast<double>(n - y + 1) / static_cast<double>(m + n - x - y + 1);
            cur[y] = inside(x, y) ? p : 0.0;
        }
        std::swap(prev, cur);
    }
    return std::clamp(1.0 - prev[static_cast<std::size_t>(n)], 0.0, 1.0);
}

constexpr std::size_t kMaxAutoExactKs = 10000;

}  // namespace

KsResult ks_2samp(const std::vector<double>& x, const std::vector<double>& y, TestMethod method) {
    detail::require_non_empty(x, "ks_2samp", "x");
    detail::require_non_empty(y, "ks_2samp", "y");
    detail::require_finite(x, "ks_2samp", "x");
    detail::require_finite(y, "ks_2samp", "y");
    std::vector<double> a = x, b = y;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    const auto n1 = static_cast<std::int64_t>(a.size()), n2 = static_cast<std::int64_t>(b.size());
    // Walk both sorted samples; evaluate F1 - F2 after all copies of a value.
    double d = 0;
    std::size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        const double v = j >= b.size() || (i < a.size() && a[i] <= b[j]) ? a[i] : b[j];
        while (i < a.size() && a[i] == v) ++i;
        while (j < b.size() && b[j] == v) ++j;
        d = std::max(d, std::abs(static_cast<double>(i) / n1 - static_cast<double>(j) / n2));
    }
    KsResult res;
    res.statistic = d;
    bool exact = method == TestMethod::kExact ||
                 (method == TestMethod::kAuto && std::max(a.size(), b.size()) <= kMaxAutoExactKs);
    if (exact) {
        const std::int64_t g = std::gcd(n1, n2);
        const double lcm = static_cast<double>(n1 / g) * static_cast<double>(n2);
        const auto h = static_cast<std::int64_t>(std::llround(d * lcm));
        res.statistic = static_cast<double>(h) / lcm;  // as SciPy: D on the lattice
        res.exact = true;
        if (h == 0) {
            res.p_value = 1.0;
        } else if (n1 == n2) {
            res.p_value = std::clamp(prob_outside_square(n1, h), 0.0, 1.0);
        } else {
            res.p_value = prob_outside_band(std::max(n1, n2), std::min(n1, n2), g, h);
        }
        return res;
    }
    const double m = static_cast<double>(n1), n = static_cast<double>(n2);
    const double en = m * n / (m + n);
    res.p_value = kolmogorov_sf(std::sqrt(en) * d);
    return res;
}

}  // namespace memskew::stats
