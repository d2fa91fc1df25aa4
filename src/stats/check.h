// Argument checks shared by the stats sources (private).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "memskew/error.h"

namespace memskew::stats::detail {

template <typename T>
void require_non_empty(const std::vector<T>& v, const char* fn, const char* what = "values") {
    if (v.empty()) throw InvalidInput(std::string(fn) + ": " + what + " is empty");
}

inline void require_finite(const std::vector<double>& v, const char* fn, const char* what = "values") {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) {
            throw InvalidInput(std::string(fn) + ": " + what + "[" + std::to_string(i) +
                               "] is not finite");
        }
    }
}

inline void require_non_negative(const std::vector<double>& v, const char* fn,
                                 const char* what = "values") {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i]) || v[i] < 0) {
            throw InvalidInput(std::string(fn) + ": " + what + "[" + std::to_string(i) + "] = " +
                               std::to_string(v[i]) + " must be finite and >= 0");
        }
    }
}

inline void require_probability_level(double p, const char* fn, const char* what = "p") {
    if (!(p >= 0.0 && p <= 1.0)) {
        throw InvalidInput(std::string(fn) + ": " + what + " = " + std::to_string(p) +
                           " must lie in [0, 1]");
    }
}

}  // namespace memskew::stats::detail
