// METHOD M2/M3: n_pre from teacher-forced match flags.
#include <algorithm>

#include "metrics/metrics-util.h"

namespace memskew {

PrefixMatch prefix_match(const std::vector<uint8_t>& match) {
    metrics_detail::require_non_empty(match.size(), "match flags (reference of length 0)");
    PrefixMatch out;
    out.length = static_cast<int64_t>(match.size());
    auto first_miss = std::find(match.begin(), match.end(), uint8_t{0});
    out.n_pre = static_cast<int64_t>(first_miss - match.begin());
    out.exact = out.n_pre == out.length;
    out.fraction = static_cast<double>(out.n_pre) / static_cast<double>(out.length);
    return out;
}

int64_t common_prefix_length(const std::vector<int32_t>& reference,
                             const std::vector<int32_t>& generated) {
    std::size_t n = std::min(reference.size(), generated.size());
    auto mismatch = std::mismatch(reference.begin(), reference.begin() + n, generated.begin());
    return static_cast<int64_t>(mismatch.first - reference.begin());
}

}  // namespace memskew
