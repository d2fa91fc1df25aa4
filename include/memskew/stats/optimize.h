// Small derivative-free minimizer for the likelihood fits (Boost.Math has only
// one-dimensional minimizers).
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace memskew::stats {

struct NelderMeadParams {
    std::vector<double> initial_step;  // per coordinate; empty: 0.1 * max(|x0_i|, 1)
    std::size_t max_iterations = 5000;
    // Stop when max - min of f over the simplex <= f_tolerance * (|f_min| + 1e-300)
    // + f_tolerance and the simplex diameter <= x_tolerance.
    double f_tolerance = 1e-12;
    double x_tolerance = 1e-10;
};

struct NelderMeadResult {
    std::vector<double> x;
    double f = 0;
    std::size_t iterations = 0;
    bool converged = false;
};

// Minimizes f by the Nelder–Mead simplex method with the standard
// coefficients (reflection 1, expansion 2, contraction 0.5, shrink 0.5).
// f may return +inf (or NaN, treated as +inf) outside its domain, which
// makes constraints easy to express; x0 must have a finite value.
NelderMeadResult nelder_mead(const std::function<double(const std::vector<double>&)>& f,
                             const std::vector<double>& x0, const NelderMeadParams& params = {});

}  // namespace memskew::stats
