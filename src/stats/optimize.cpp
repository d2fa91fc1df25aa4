// Nelder–Mead simplex minimizer. See include/memskew/stats/optimize.h.
#include "memskew/stats/optimize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "memskew/error.h"

namespace memskew::stats {

NelderMeadResult nelder_mead(const std::function<double(const std::vector<double>&)>& f,
                             const std::vector<double>& x0, const NelderMeadParams& params) {
    const std::size_t n = x0.size();
    if (n == 0) throw InvalidInput("nelder_mead: x0 is empty");
    if (!params.initial_step.empty() && params.initial_step.size() != n) {
        throw InvalidInput("nelder_mead: initial_step has " + std::to_string(params.initial_step.size()) +
                           " entries for " + std::to_string(n) + " coordinates");
    }
    constexpr double kInf = std::numeric_limits<double>::infinity();
    // NaN compares false with everything, which would corrupt the ordering.
    auto eval = [&](const std::vector<double>& x) {
        const double v = f(x);
        return std::isnan(v) ? kInf : v;
    };
    std::vector<std::vector<double>> simplex(n + 1, x0);
    std::vector<double> fx(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
        const double step = params.initial_step.empty() ? 0.1 * std::max(std::abs(x0[i]), 1.0)
                                                        : params.initial_step[i];
        simplex[i + 1][i] += step;
    }
    for (std::size_t i = 0; i <= n; ++i) fx[i] = eval(simplex[i]);
    if (!std::isfinite(fx[0])) throw InvalidInput("nelder_mead: f(x0) is not finite");

    std::vector<std::size_t> order(n + 1);
    std::vector<double> centroid(n), xr(n), xe(n), xc(n);
    NelderMeadResult res;
    std::size_t it = 0;
    for (; it < params.max_iterations; ++it) {
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return fx[a] < fx[b]; });
        const std::size_t best = order.front(), worst = order.back(), second = order[n - 1];

        double diameter = 0;
        for (std::size_t i = 0; i <= n; ++i) {
            for (std::size_t d = 0; d < n; ++d) {
                diameter = std::max(diameter, std::abs(simplex[i][d] - simplex[best][d]));
            }
        }
        const double spread = fx[worst] - fx[best];
        if (std::isfinite(spread) &&
            spread <= params.f_tolerance * std::abs(fx[best]) + params.f_tolerance &&
            diameter <= params.x_tolerance) {
            res.converged = true;
            break;
        }

        std::fill(centroid.begin(), centroid.end(), 0.0);
        for (std::size_t i = 0; i <= n; ++i) {
            if (i == worst) continue;
            for (std::size_t d = 0; d < n; ++d) centroid[d] += simplex[i][d] / static_cast<double>(n);
        }
        for (std::size_t d = 0; d < n; ++d) xr[d] = centroid[d] + (centroid[d] - simplex[worst][d]);
        const double fr = eval(xr);
        if (fr < fx[best]) {
            for (std::size_t d = 0; d < n; ++d) xe[d] = centroid[d] + 2.0 * (centroid[d] - simplex[worst][d]);
            const double fe = eval(xe);
            if (fe < fr) {
                simplex[worst] = xe;
                fx[worst] = fe;
            } else {
                simplex[worst] = xr;
                fx[worst] = fr;
            }
            continue;
        }
        if (fr < fx[second]) {
            simplex[worst] = xr;
            fx[worst] = fr;
            continue;
        }
        // Contract: outside if the reflected point beats the worst, else inside.
        const bool outside = fr < fx[worst];
        for (std::size_t d = 0; d < n; ++d) {
            xc[d] = outside ? centroid[d] + 0.5 * (xr[d] - centroid[d])
                            : centroid[d] + 0.5 * (simplex[worst][d] - centroid[d]);
        }
        const double fc = eval(xc);
        if (fc < (outside ? fr : fx[worst])) {
            simplex[worst] = xc;
            fx[worst] = fc;
            continue;
        }
        // Shrink towards the best vertex.
        for (std::size_t i = 0; i <= n; ++i) {
            if (i == best) continue;
            for (std::size_t d = 0; d < n; ++d) {
                simplex[i][d] = simplex[best][d] + 0.5 * (simplex[i][d] - simplex[best][d]);
            }
            fx[i] = eval(simplex[i]);
        }
    }
    const auto best = static_cast<std::size_t>(std::min_element(fx.begin(), fx.end()) - fx.begin());
    res.x = simplex[best];
    res.f = fx[best];
    res.iterations = it;
    return res;
}

}  // namespace memskew::stats
