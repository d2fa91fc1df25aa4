#include "report/text-marks.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace memskew::report {

namespace {
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
}  // namespace

std::size_t utf8_length(std::string_view text) {
    std::size_t n = 0;
    for (char c : text) n += is_continuation(c) ? 0 : 1;
    return n;
}

std::size_t utf8_prefix_bytes(std::string_view text, std::size_t n_chars) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (!is_continuation(text[i])) {
            if (seen == n_chars) return i;
            ++seen;
        }
    }
    return text.size();
}

MatchBoundary match_boundary(std::string_view reference, const std::optional<std::string>& generated,
                             int64_t n_pre, int64_t length) {
    MatchBoundary mb;
    if (n_pre <= 0 || reference.empty()) return mb;
    if (length > 0 && n_pre >= length) {
        mb.bytes = reference.size();
        mb.method = MatchMethod::kWhole;
        return mb;
    }
    if (generated) {
        std::size_t i = 0;
        const std::size_t n = std::min(reference.size(), generated->size());
        while (i < n && reference[i] == (*generated)[i]) ++i;
        // Never split a code point.
        while (i > 0 && i < reference.size() && is_continuation(reference[i])) --i;
        if (i > 0) {
            mb.bytes = i;
            mb.method = MatchMethod::kGenerated;
            return mb;
        }
    }
    if (length <= 0) return mb;
    // Approximate: the same share of characters as of tokens.
    const std::size_t chars = utf8_length(reference);
    const auto target = static_cast<std::size_t>(
        std::llround(static_cast<double>(chars) * static_cast<double>(n_pre) / static_cast<double>(length)));
    const std::size_t aim = std::min(std::max<std::size_t>(target, 1), chars);
    std::size_t best = aim;
    // Snap to the nearest space within a small window: token boundaries are
    // usually at word starts, and a cut inside a word looks more exact than it is.
    std::vector<std::size_t> spaces;
    {
        std::size_t ci = 0;
        for (std::size_t i = 0; i < reference.size(); ++i) {
            if (is_continuation(reference[i])) continue;
            const char c = reference[i];
            if (c == ' ' || c == '\n' || c == '\t') spaces.push_back(ci);
            ++ci;
        }
    }
    const std::size_t window = std::max<std::size_t>(4, chars / 20);
    std::size_t best_dist = window + 1;
    for (std::size_t sp : spaces) {
        if (sp == 0) continue;
        const std::size_t d = sp > aim ? sp - aim : aim - sp;
        if (d < best_dist) best_dist = d, best = sp;
    }
    mb.bytes = utf8_prefix_bytes(reference, best);
    mb.method = MatchMethod::kProportion;
    mb.exact = false;
    return mb;
}

}  // namespace memskew::report
