// Argument checks shared by the metrics sources (private to src/metrics/).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/metrics.h"

namespace memskew::metrics_detail {

// A per-token log-probability with float rounding above 0 folded back to 0
// (the engine's log_softmax can land a few ulps above 0 for a near-certain token).
inline double checked_log_prob(double v, const char* what, std::size_t index) {
    if (std::isnan(v)) {
        throw InvalidInput(fmt::format("{}[{}] is NaN", what, index));
    }
    if (v > 0.0) {
        if (v <= kLogProbTolerance) return 0.0;
        throw InvalidInput(fmt::format("{}[{}] = {} is a log-probability above 0", what, index, v),
                           "pass natural-log probabilities (<= 0)");
    }
    return v;
}

inline std::vector<double> checked_log_probs(const std::vector<double>& v, const char* what) {
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = checked_log_prob(v[i], what, i);
    return out;
}

inline void require_non_empty(std::size_t n, const char* what) {
    if (n == 0) throw InvalidInput(fmt::format("{} is empty", what));
}

inline void require_same_length(std::size_t n, std::size_t expected, const char* what,
                                const char* expected_what) {
    if (n != expected) {
        throw InvalidInput(fmt::format("{} has {} entries but {} has {}", what, n, expected_what,
                                       expected));
    }
}

// Character-level Levenshtein distance and similarity in one pass (overlap.cpp).
struct TextDistance {
    std::size_t distance = 0;
    double similarity = 1.0;
};
TextDistance levenshtein_text(std::string_view a, std::string_view b, TextUnit unit);

}  // namespace memskew::metrics_detail
