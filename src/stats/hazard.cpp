// METHOD M7: censored hazards, model PMFs and fits. See include/memskew/stats/hazard.h.
#include "memskew/stats/hazard.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <boost/math/distributions/normal.hpp>
#include <boost/math/special_functions/gamma.hpp>

#include "memskew/error.h"
#include "memskew/stats/optimize.h"

namespace memskew::stats {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The data aggregated by value: everything in M7 depends on the samples only
// through these counts, which keeps fits O(max L) per likelihood evaluation.
struct Censored {
    std::int64_t M = 0;
    std::int64_t max_len = 0;
    std::vector<std::int64_t> failed;    // failed[n]: #samples with n_pre = n < L
    std::vector<std::int64_t> censored;  // censored[n]: #samples with n_pre = L = n
    std::vector<std::int64_t> lengths;   // lengths[l]: #samples with L = l
    std::int64_t sum_n = 0;
    std::int64_t n_failed = 0;
};

Censored aggregate(const std::vector<std::int64_t>& n_pre, const std::vector<std::int64_t>& lengths,
                   const char* fn) {
    if (n_pre.empty()) throw InvalidInput(std::string(fn) + ": n_pre is empty");
    if (lengths.size() != n_pre.size()) {
        throw InvalidInput(std::string(fn) + ": " + std::to_string(lengths.size()) + " lengths for " +
                           std::to_string(n_pre.size()) + " n_pre values");
    }
    Censored c;
    c.M = static_cast<std::int64_t>(n_pre.size());
    for (std::size_t i = 0; i < n_pre.size(); ++i) {
        if (lengths[i] < 1 || n_pre[i] < 0 || n_pre[i] > lengths[i]) {
            throw InvalidInput(std::string(fn) + ": sample " + std::to_string(i) + " has n_pre = " +
                               std::to_string(n_pre[i]) + ", L = " + std::to_string(lengths[i]) +
                               " (need 0 <= n_pre <= L, L >= 1)");
        }
        c.max_len = std::max(c.max_len, lengths[i]);
    }
    const auto size = static_cast<std::size_t>(c.max_len) + 1;
    c.failed.assign(size, 0);
    c.censored.assign(size, 0);
    c.lengths.assign(size, 0);
    for (std::size_t i = 0; i < n_pre.size(); ++i) {
        const auto n = static_cast<std::size_t>(n_pre[i]);
        if (n_pre[i] < lengths[i]) {
            ++c.failed[n];
            ++c.n_failed;
        } else {
            ++c.censored[n];
        }
        ++c.lengths[static_cast<std::size_t>(lengths[i])];
        c.sum_n += n_pre[i];
    }
    return c;
}

double clip01(double p) { return std::clamp(p, 0.0, 1.0); }

double safe_log(double p) { return p > 0 ? std::log(p) : kNegInf; }

// sum_n count[n] * value[n], treating 0 * -inf as 0 (no sample there).
void add_weighted(double& acc, std::int64_t count, double value) {
    if (count != 0) acc += static_cast<double>(count) * value;
}

// Log-likelihood from cumulative log-products cum[n] = log prod_{j<=n} p_j and
// the hazards p_j (hazard(j)).
template <typename Hazard>
double loglik_from_cum(const Censored& c, const std::vector<double>& cum, Hazard hazard) {
    double ll = 0;
    for (std::int64_t n = 0; n <= c.max_len; ++n) {
        const auto k = static_cast<std::size_t>(n);
        if (c.failed[k] != 0) add_weighted(ll, c.failed[k], cum[k] + std::log1p(-hazard(n + 1)));
        if (c.censored[k] != 0) add_weighted(ll, c.censored[k], cum[k]);
        if (ll == kNegInf) return ll;
    }
    return std::isnan(ll) ? kNegInf : ll;
}

double loglik_hazards(const Censored& c, const std::vector<double>& hazards) {
    if (static_cast<std::int64_t>(hazards.size()) < c.max_len) {
        throw InvalidInput("censored_log_likelihood: " + std::to_string(hazards.size()) +
                           " hazards for references up to " + std::to_string(c.max_len) + " tokens");
    }
    std::vector<double> cum(static_cast<std::size_t>(c.max_len) + 1, 0.0);
    for (std::int64_t j = 1; j <= c.max_len; ++j) {
        cum[j] = cum[j - 1] + safe_log(hazards[static_cast<std::size_t>(j - 1)]);
    }
    return loglik_from_cum(c, cum, [&](std::int64_t j) {
        // p_{L+1} is never needed: failures have n < L.
        return hazards[static_cast<std::size_t>(j - 1)];
    });
}

double ks_from_hazards(const Censored& c, const std::vector<double>& hazards) {
    if (static_cast<std::int64_t>(hazards.size()) < c.max_len) {
        throw InvalidInput("ks_distance_to_hazards: " + std::to_string(hazards.size()) +
                           " hazards for references up to " + std::to_string(c.max_len) + " tokens");
    }
    const double M = static_cast<double>(c.M);
    // longer[n] = #{L_i > n}, emp = #{n_pre_i <= n}.
    std::int64_t longer = c.M;  // all L_i >= 1 > 0
    std::int64_t emp = 0;
    double log_s = 0;  // log S(n + 1), built incrementally
    double ks = 0;
    for (std::int64_t n = 0; n <= c.max_len; ++n) {
        const auto k = static_cast<std::size_t>(n);
        longer -= c.lengths[k];
        emp += c.failed[k] + c.censored[k];
        double model;
        if (n < c.max_len) {
            log_s += safe_log(hazards[k]);  // hazards[n] = p_{n+1}
            model = 1.0 - std::exp(log_s) * static_cast<double>(longer) / M;
        } else {
            model = 1.0;
        }
        ks = std::max(ks, std::abs(model - static_cast<double>(emp) / M));
    }
    return ks;
}

}  // namespace

std::vector<PositionHazard> empirical_hazard(const std::vector<std::int64_t>& n_pre,
                                             const std::vector<std::int64_t>& lengths,
                                             const HazardParams& params) {
    const Censored c = aggregate(n_pre, lengths, "empirical_hazard");
    if (!(params.confidence > 0 && params.confidence < 1)) {
        throw InvalidInput("empirical_hazard: confidence = " + std::to_string(params.confidence) +
                           " must lie in (0, 1)");
    }
    const double z = boost::math::quantile(boost::math::normal(), 0.5 + params.confidence / 2.0);
    std::vector<PositionHazard> out;
    // survivors = #{n_pre >= j - 1}, updated as j grows.
    std::int64_t survivors = c.M;
    double survival = 1.0, greenwood = 0.0;
    bool survival_defined = true;
    for (std::int64_t j = 1; j <= c.max_len; ++j) {
        const auto prev = static_cast<std::size_t>(j - 1);
        if (j >= 2) survivors -= c.failed[prev - 1] + c.censored[prev - 1];
        PositionHazard h;
        h.position = j;
        // n_pre >= j - 1 and L >= j: drop those censored exactly at j - 1.
        h.at_risk = survivors - c.censored[prev];
        h.failures = c.failed[prev];
        if (h.at_risk > 0) {
            const double n = static_cast<double>(h.at_risk);
            const double p = 1.0 - static_cast<double>(h.failures) / n;
            h.recall = p;
            const double z2n = z * z / n;
            const double center = (p + z2n / 2.0) / (1.0 + z2n);
            const double half = z / (1.0 + z2n) * std::sqrt(p * (1.0 - p) / n + z2n / (4.0 * n));
            h.recall_lower = std::max(0.0, center - half);
            h.recall_upper = std::min(1.0, center + half);
            survival *= p;
            if (h.at_risk > h.failures) {
                greenwood += static_cast<double>(h.failures) /
                             (n * static_cast<double>(h.at_risk - h.failures));
            }
        } else {
            h.recall = h.recall_lower = h.recall_upper = kNaN;
            survival_defined = false;  // nobody left: S beyond the data is unknown
        }
        if (survival_defined) {
            h.survival = survival;
            const double se = survival * std::sqrt(greenwood);
            h.survival_lower = std::max(0.0, survival - z * se);
            h.survival_upper = std::min(1.0, survival + z * se);
        } else {
            h.survival = h.survival_lower = h.survival_upper = kNaN;
        }
        out.push_back(h);
    }
    return out;
}

std::vector<double> pmf_from_hazards(const std::vector<double>& hazards) {
    for (std::size_t j = 0; j < hazards.size(); ++j) {
        if (!(hazards[j] >= 0 && hazards[j] <= 1)) {
            throw InvalidInput("pmf_from_hazards: p_" + std::to_string(j + 1) + " = " +
                               std::to_string(hazards[j]) + " must lie in [0, 1]");
        }
    }
    std::vector<double> pmf(hazards.size() + 1);
    double log_s = 0;
    for (std::size_t n = 0; n < hazards.size(); ++n) {
        pmf[n] = std::exp(log_s) * (1.0 - hazards[n]);
        log_s += safe_log(hazards[n]);
    }
    pmf.back() = std::exp(log_s);
    return pmf;
}

std::vector<double> geometric_hazards(double p, std::int64_t L) {
    if (!(p >= 0 && p <= 1)) throw InvalidInput("geometric_hazards: p must lie in [0, 1]");
    if (L < 0) throw InvalidInput("geometric_hazards: L must be >= 0");
    return std::vector<double>(static_cast<std::size_t>(L), p);
}

std::vector<double> linear_hazards(double p0, double alpha, std::int64_t L) {
    if (!std::isfinite(p0) || !std::isfinite(alpha)) throw InvalidInput("linear_hazards: non-finite parameter");
    if (L < 0) throw InvalidInput("linear_hazards: L must be >= 0");
    std::vector<double> h(static_cast<std::size_t>(L));
    for (std::int64_t j = 1; j <= L; ++j) h[static_cast<std::size_t>(j - 1)] = clip01(p0 + alpha * j);
    return h;
}

namespace {
// Closed form only while lgamma(n + 1 + c) - lgamma(1 + c) does not cancel
// badly: for c = p0 / alpha <= 1e4 the rounding error of the difference stays
// around 1e-11 (lgamma(1e4) ~ 8e4), negligible even summed over 1e6 samples.
constexpr double kMaxClosedFormRatio = 1e4;

bool closed_form_applies(double p0, double alpha, std::int64_t n) {
    return alpha > 0 && p0 + alpha > 0 && p0 + alpha * static_cast<double>(n) <= 1.0 &&
           p0 / alpha <= kMaxClosedFormRatio;
}

double closed_form(double p0, double alpha, std::int64_t n) {
    const double c = p0 / alpha;
    const double nd = static_cast<double>(n);
    return nd * std::log(alpha) + boost::math::lgamma(nd + 1.0 + c) - boost::math::lgamma(1.0 + c);
}
}  // namespace

double log_linear_hazard_product(double p0, double alpha, std::int64_t n) {
    if (n < 0) throw InvalidInput("log_linear_hazard_product: n must be >= 0");
    if (!std::isfinite(p0) || !std::isfinite(alpha)) {
        throw InvalidInput("log_linear_hazard_product: non-finite parameter");
    }
    if (n == 0) return 0.0;
    if (closed_form_applies(p0, alpha, n)) return closed_form(p0, alpha, n);
    double s = 0;
    for (std::int64_t j = 1; j <= n; ++j) {
        const double p = clip01(p0 + alpha * static_cast<double>(j));
        if (p <= 0) return kNegInf;
        s += std::log(p);
    }
    return s;
}

double log_linear_hazard_product_closed_form(double p0, double alpha, std::int64_t n) {
    if (n < 0) throw InvalidInput("log_linear_hazard_product_closed_form: n must be >= 0");
    if (!(alpha > 0) || !(p0 + alpha > 0) || !std::isfinite(p0) || !std::isfinite(alpha)) {
        throw InvalidInput("log_linear_hazard_product_closed_form: needs alpha > 0 and p0 + alpha > 0");
    }
    return closed_form(p0, alpha, n);
}

double censored_log_likelihood(const std::vector<std::int64_t>& n_pre,
                               const std::vector<std::int64_t>& lengths,
                               const std::vector<double>& hazards) {
    return loglik_hazards(aggregate(n_pre, lengths, "censored_log_likelihood"), hazards);
}

double ks_distance_to_hazards(const std::vector<std::int64_t>& n_pre,
                              const std::vector<std::int64_t>& lengths,
                              const std::vector<double>& hazards) {
    return ks_from_hazards(aggregate(n_pre, lengths, "ks_distance_to_hazards"), hazards);
}

namespace {

double geometric_loglik(const Censored& c, double p) {
    double ll = 0;
    if (c.sum_n > 0) ll += static_cast<double>(c.sum_n) * safe_log(p);
    if (c.n_failed > 0) ll += static_cast<double>(c.n_failed) * safe_log(1.0 - p);
    return ll;
}

double linear_loglik(const Censored& c, double p0, double alpha) {
    if (!std::isfinite(p0) || !std::isfinite(alpha)) return kNegInf;
    auto hazard = [&](std::int64_t j) { return clip01(p0 + alpha * static_cast<double>(j)); };
    std::vector<double> cum(static_cast<std::size_t>(c.max_len) + 1, 0.0);
    // Largest n whose product is needed: the longest surviving run.
    if (closed_form_applies(p0, alpha, c.max_len)) {
        for (std::int64_t n = 1; n <= c.max_len; ++n) cum[n] = closed_form(p0, alpha, n);
    } else {
        for (std::int64_t n = 1; n <= c.max_len; ++n) cum[n] = cum[n - 1] + safe_log(hazard(n));
    }
    return loglik_from_cum(c, cum, hazard);
}

ModelFit finish(const Censored& c, ModelFit fit, std::vector<double> hazards, int n_params) {
    fit.hazards = std::move(hazards);
    fit.aic = 2.0 * n_params - 2.0 * fit.log_likelihood;
    fit.ks_distance = ks_from_hazards(c, fit.hazards);
    return fit;
}

}  // namespace

ModelFit fit_geometric(const std::vector<std::int64_t>& n_pre, const std::vector<std::int64_t>& lengths) {
    const Censored c = aggregate(n_pre, lengths, "fit_geometric");
    ModelFit fit;
    fit.model = "geometric";
    const double denom = static_cast<double>(c.sum_n + c.n_failed);
    // denom > 0 always: a sample with n = 0 has L >= 1 > n, so it failed.
    const double p = denom > 0 ? static_cast<double>(c.sum_n) / denom : 1.0;
    fit.params = {p};
    fit.log_likelihood = geometric_loglik(c, p);
    return finish(c, fit, geometric_hazards(p, c.max_len), 1);
}

ModelFit fit_linear_hazard(const std::vector<std::int64_t>& n_pre,
                           const std::vector<std::int64_t>& lengths, const LinearHazardFitParams& params) {
    const Censored c = aggregate(n_pre, lengths, "fit_linear_hazard");
    ModelFit fit;
    fit.model = "linear_hazard";
    const double p_geo = static_cast<double>(c.sum_n) / static_cast<double>(c.sum_n + c.n_failed);
    if (c.n_failed == 0 || c.sum_n == 0) {
        // All reproduced (p = 1) or all failed at position 1 (p = 0): a flat line
        // attains the maximum likelihood 0.
        fit.params = {p_geo, 0.0};
        fit.log_likelihood = linear_loglik(c, p_geo, 0.0);
        return finish(c, fit, linear_hazards(p_geo, 0.0, c.max_len), 2);
    }
    auto objective = [&](const std::vector<double>& x) {
        const double ll = linear_loglik(c, x[0], x[1]);
        return std::isfinite(ll) ? -ll : std::numeric_limits<double>::infinity();
    };
    std::vector<std::vector<double>> starts{{p_geo, 0.0}};
    // Weighted least squares through the empirical hazards (weights = at risk).
    {
        const auto emp = empirical_hazard(n_pre, lengths);
        double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (const auto& h : emp) {
            if (h.at_risk <= 0) continue;
            const double w = static_cast<double>(h.at_risk), x = static_cast<double>(h.position);
            sw += w;
            sx += w * x;
            sy += w * h.recall;
            sxx += w * x * x;
            sxy += w * x * h.recall;
        }
        const double det = sw * sxx - sx * sx;
        if (det > 0) {
            const double b = (sw * sxy - sx * sy) / det;
            const double a = (sy - b * sx) / sw;
            if (std::isfinite(objective({a, b}))) starts.push_back({a, b});
        }
    }
    const double scale = static_cast<double>(std::max<std::int64_t>(c.max_len, 1));
    NelderMeadParams nm;
    nm.max_iterations = params.max_iterations;
    nm.f_tolerance = params.tolerance;
    nm.x_tolerance = 1e-9;
    NelderMeadResult best;
    best.f = std::numeric_limits<double>::infinity();
    for (const auto& x0 : starts) {
        nm.initial_step = {0.05, 0.05 / scale};
        NelderMeadResult r = nelder_mead(objective, x0, nm);
        for (std::size_t k = 0; k < params.n_restarts; ++k) {
            nm.initial_step = {0.01, 0.01 / scale};
            r = nelder_mead(objective, r.x, nm);
        }
        if (r.f < best.f) best = r;
    }
    fit.params = best.x;
    fit.converged = best.converged;
    fit.log_likelihood = -best.f;
    return finish(c, fit, linear_hazards(best.x[0], best.x[1], c.max_len), 2);
}

}  // namespace memskew::stats
