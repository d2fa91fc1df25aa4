// METHOD M5: distribution summaries. See include/memskew/stats/summary.h.
#include "memskew/stats/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "memskew/error.h"
#include "stats/check.h"

namespace memskew::stats {

namespace {

// numpy's _lerp: a + (b - a) t, evaluated from the nearer end for t >= 0.5 so
// that the result is bit-identical to np.quantile(method='linear').
double numpy_lerp(double a, double b, double t) {
    const double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

// numpy's virtual index for the 'linear' method: (n - 1) * p, evaluated the
// same way so the rounding matches.
double numpy_virtual_index(std::size_t n, double p) {
    return static_cast<double>(n - 1) * p;
}

void check_quantile_level(double p, const char* fn) {
    detail::require_probability_level(p, fn, "quantile level");
}

}  // namespace

double quantile_sorted(const std::vector<double>& sorted, double p) {
    detail::require_non_empty(sorted, "quantile");
    check_quantile_level(p, "quantile");
    const std::size_t n = sorted.size();
    const double h = numpy_virtual_index(n, p);
    double lo_d = std::floor(h);
    lo_d = std::clamp(lo_d, 0.0, static_cast<double>(n - 1));
    const auto lo = static_cast<std::size_t>(lo_d);
    const std::size_t hi = std::min(lo + 1, n - 1);
    const double gamma = h - lo_d;
    return numpy_lerp(sorted[lo], sorted[hi], gamma);
}

double quantile(std::vector<double> values, double p) {
    detail::require_non_empty(values, "quantile");
    detail::require_finite(values, "quantile");
    std::sort(values.begin(), values.end());
    return quantile_sorted(values, p);
}

double quantile_from_counts(const std::vector<double>& values, const std::vector<std::int64_t>& counts, double p) {
    check_quantile_level(p, "quantile_from_counts");
    if (values.size() != counts.size())
        throw InvalidInput(fmt::format("quantile_from_counts: {} values but {} counts", values.size(), counts.size()));
    std::int64_t n = 0;
    for (auto c : counts) {
        if (c < 0) throw InvalidInput("quantile_from_counts: negative count");
        n += c;
    }
    if (n == 0) throw InvalidInput("quantile_from_counts: histogram is empty");
    const double h = numpy_virtual_index(static_cast<std::size_t>(n), p);
    const double lo_d = std::clamp(std::floor(h), 0.0, static_cast<double>(n - 1));
    const auto lo = static_cast<std::int64_t>(lo_d);
    const std::int64_t hi = std::min<std::int64_t>(lo + 1, n - 1);
    // Walk the cumulative counts to the order statistics lo and hi (0-based).
    double x_lo = 0, x_hi = 0;
    bool have_lo = false;
    std::int64_t cum = 0;
    for (std::size_t v = 0; v < counts.size(); ++v) {
        cum += counts[v];
        if (!have_lo && cum > lo) {
            x_lo = values[v];
            have_lo = true;
        }
        if (cum > hi) {
            x_hi = values[v];
            break;
        }
    }
    return numpy_lerp(x_lo, x_hi, h - lo_d);
}

double quantile_from_counts(const std::vector<std::int64_t>& counts, double p) {
    std::vector<double> values(counts.size());
    for (std::size_t v = 0; v < values.size(); ++v) values[v] = static_cast<double>(v);
    return quantile_from_counts(values, counts, p);
}

Shape shape(const std::vector<double>& values) {
    detail::require_non_empty(values, "shape");
    detail::require_finite(values, "shape");
    const double n = static_cast<double>(values.size());
    // Two passes: the mean first, then central moments, as SciPy's moment().
    double sum = 0;
    for (double v : values) sum += v;
    const double mean = sum / n;
    double m2 = 0, m3 = 0, m4 = 0;
    for (double v : values) {
        const double d = v - mean;
        const double d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    Shape s;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // SciPy treats m2 below (resolution * mean)^2 as constant data -> NaN.
    const double eps = 1e-15 * mean;
    if (m2 <= eps * eps) {
        s.skewness = s.skewness_adjusted = s.kurtosis = s.kurtosis_adjusted = nan;
        return s;
    }
    s.skewness = m3 / std::pow(m2, 1.5);
    s.kurtosis = m4 / (m2 * m2) - 3.0;
    s.skewness_adjusted = n > 2 ? s.skewness * std::sqrt(n * (n - 1.0)) / (n - 2.0) : nan;
    s.kurtosis_adjusted =
        n > 3 ? ((n * n - 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0) * (n - 1.0)) / ((n - 2.0) * (n - 3.0))
              : nan;
    return s;
}

namespace {

// Gini from ascending data: G = sum_i (2i - n - 1) x_(i) / (n sum x), i = 1..n,
// which equals sum |x_i - x_j| / (2 n^2 mean) and avoids the O(n^2) pair sum.
double gini_sorted(const std::vector<double>& sorted) {
    const double n = static_cast<double>(sorted.size());
    double total = 0, weighted = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        total += sorted[i];
        weighted += (2.0 * static_cast<double>(i + 1) - n - 1.0) * sorted[i];
    }
    if (total <= 0) return 0.0;
    return weighted / (n * total);
}

std::size_t top_count(std::size_t n, double fraction) {
    if (!(fraction > 0 && fraction <= 1)) {
        throw InvalidInput("top_share: fraction = " + std::to_string(fraction) + " must lie in (0, 1]");
    }
    // ceil with a guard against 0.01 * 300 = 3.0000000000000004 rounding up to 4.
    const double raw = fraction * static_cast<double>(n);
    auto k = static_cast<std::size_t>(std::ceil(raw - 1e-9 * std::max(1.0, raw)));
    return std::clamp<std::size_t>(k, 1, n);
}

double top_share_sorted(const std::vector<double>& sorted, double fraction) {
    const std::size_t k = top_count(sorted.size(), fraction);
    double total = 0, top = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        total += sorted[i];
        if (i >= sorted.size() - k) top += sorted[i];
    }
    return total > 0 ? top / total : 0.0;
}

std::vector<double> sorted_non_negative(const std::vector<double>& values, const char* fn) {
    detail::require_non_empty(values, fn);
    detail::require_non_negative(values, fn);
    std::vector<double> s = values;
    std::sort(s.begin(), s.end());
    return s;
}

}  // namespace

double gini(const std::vector<double>& values) {
    return gini_sorted(sorted_non_negative(values, "gini"));
}

double top_share(const std::vector<double>& values, double fraction) {
    return top_share_sorted(sorted_non_negative(values, "top_share"), fraction);
}

std::vector<TopEntry> top_k(const std::vector<double>& values, std::size_t k) {
    detail::require_non_empty(values, "top_k");
    detail::require_finite(values, "top_k");
    k = std::min(k, values.size());
    std::vector<std::size_t> idx(values.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](std::size_t a, std::size_t b) {
                          return values[a] > values[b] || (values[a] == values[b] && a < b);
                      });
    std::vector<TopEntry> out(k);
    for (std::size_t i = 0; i < k; ++i) out[i] = {idx[i], values[idx[i]]};
    return out;
}

namespace {
std::vector<CcdfPoint> ccdf_sorted(const std::vector<double>& sorted) {
    std::vector<CcdfPoint> out;
    const double n = static_cast<double>(sorted.size());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        if (i == 0 || sorted[i] != sorted[i - 1]) {
            out.push_back({sorted[i], static_cast<double>(sorted.size() - i) / n});
        }
    }
    return out;
}
}  // namespace

std::vector<CcdfPoint> ccdf(const std::vector<double>& values) {
    detail::require_non_empty(values, "ccdf");
    detail::require_finite(values, "ccdf");
    std::vector<double> s = values;
    std::sort(s.begin(), s.end());
    return ccdf_sorted(s);
}

Histogram integer_histogram(const std::vector<std::int64_t>& values) {
    detail::require_non_empty(values, "integer_histogram");
    std::int64_t mx = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i] < 0) {
            throw InvalidInput("integer_histogram: values[" + std::to_string(i) + "] = " +
                               std::to_string(values[i]) + " must be >= 0");
        }
        mx = std::max(mx, values[i]);
    }
    Histogram h;
    h.counts.assign(static_cast<std::size_t>(mx) + 1, 0);
    for (auto v : values) ++h.counts[static_cast<std::size_t>(v)];
    h.edges.resize(h.counts.size() + 1);
    for (std::size_t b = 0; b < h.edges.size(); ++b) h.edges[b] = static_cast<double>(b);
    return h;
}

Histogram log_histogram(const std::vector<double>& values, int bins_per_decade, bool integer_edges) {
    detail::require_non_empty(values, "log_histogram");
    detail::require_non_negative(values, "log_histogram");
    if (bins_per_decade < 1) throw InvalidInput("log_histogram: bins_per_decade must be >= 1");
    const double mx = *std::max_element(values.begin(), values.end());
    Histogram h;
    h.edges = {0.0, 1.0};
    for (int k = 1; h.edges.back() <= mx; ++k) {
        double e = std::pow(10.0, static_cast<double>(k) / bins_per_decade);
        if (integer_edges) e = std::ceil(e - 1e-9);
        if (e > h.edges.back()) h.edges.push_back(e);
    }
    h.counts.assign(h.edges.size() - 1, 0);
    for (double v : values) {
        // First edge > v, minus one, is the bin; edges grow so upper_bound works.
        auto it = std::upper_bound(h.edges.begin(), h.edges.end(), v);
        std::size_t b = static_cast<std::size_t>(it - h.edges.begin()) - 1;
        b = std::min(b, h.counts.size() - 1);
        ++h.counts[b];
    }
    return h;
}

DistributionSummary summarize(const std::vector<double>& values, const SummaryParams& params) {
    const std::vector<double> sorted = sorted_non_negative(values, "summarize");
    DistributionSummary s;
    s.count = sorted.size();
    double sum = 0;
    for (double v : sorted) sum += v;
    s.mean = sum / static_cast<double>(s.count);
    s.median = quantile_sorted(sorted, 0.5);
    s.quantile_levels = params.quantiles;
    for (double p : params.quantiles) s.quantile_values.push_back(quantile_sorted(sorted, p));
    s.max = sorted.back();
    s.top = top_k(values, params.top_k);
    s.shape = shape(sorted);
    s.gini = gini_sorted(sorted);
    s.top_share = top_share_sorted(sorted, params.top_share_fraction);
    return s;
}

NPreSummary summarize_n_pre(const std::vector<std::int64_t>& n_pre,
                            const std::vector<std::int64_t>& lengths,
                            const std::vector<std::uint8_t>& exact, const NPreSummaryParams& params) {
    detail::require_non_empty(n_pre, "summarize_n_pre", "n_pre");
    if (!lengths.empty() && lengths.size() != n_pre.size()) {
        throw InvalidInput("summarize_n_pre: " + std::to_string(lengths.size()) + " lengths for " +
                           std::to_string(n_pre.size()) + " n_pre values");
    }
    if (!exact.empty() && exact.size() != n_pre.size()) {
        throw InvalidInput("summarize_n_pre: " + std::to_string(exact.size()) + " exact flags for " +
                           std::to_string(n_pre.size()) + " n_pre values");
    }
    NPreSummary out;
    out.histogram = integer_histogram(n_pre);  // also checks n_pre >= 0
    std::vector<double> values(n_pre.begin(), n_pre.end());
    out.absolute = summarize(values, params.summary);
    out.log_histogram = log_histogram(values, params.log_bins_per_decade, true);
    // CCDF from the histogram: O(max) instead of a second sort.
    const double n = static_cast<double>(n_pre.size());
    std::int64_t at_least = static_cast<std::int64_t>(n_pre.size());
    for (std::size_t v = 0; v < out.histogram.counts.size(); ++v) {
        if (out.histogram.counts[v] > 0) {
            out.ccdf.push_back({static_cast<double>(v), static_cast<double>(at_least) / n});
        }
        at_least -= out.histogram.counts[v];
    }
    for (auto t : params.thresholds) {
        std::size_t c = 0;
        for (auto v : n_pre) c += v >= t ? 1 : 0;
        out.at_least.push_back({t, c});
    }
    if (!lengths.empty()) {
        std::vector<double> ratio(n_pre.size());
        for (std::size_t i = 0; i < n_pre.size(); ++i) {
            if (lengths[i] <= 0 || lengths[i] < n_pre[i]) {
                throw InvalidInput("summarize_n_pre: sample " + std::to_string(i) + " has n_pre = " +
                                   std::to_string(n_pre[i]) + " and L = " + std::to_string(lengths[i]) +
                                   " (need 0 <= n_pre <= L, L > 0)");
            }
            ratio[i] = static_cast<double>(n_pre[i]) / static_cast<double>(lengths[i]);
        }
        out.normalized = summarize(ratio, params.summary);
    }
    if (!exact.empty()) {
        for (auto e : exact) out.n_exact += e ? 1 : 0;
    } else if (!lengths.empty()) {
        for (std::size_t i = 0; i < n_pre.size(); ++i) out.n_exact += n_pre[i] == lengths[i] ? 1 : 0;
    }
    return out;
}

}  // namespace memskew::stats
