// METHOD M8: similarity of a generated output to its reference (exact match,
// ROUGE, Levenshtein, Pythia score, k-extractable). ROUGE follows Google's
// rouge-score package formula for formula, applied to token ids.
#include <algorithm>
#include <map>

#include <unicode/utf8.h>

#include "metrics/metrics-util.h"

namespace memskew {
namespace {

double f_measure(double precision, double recall) {
    return precision + recall > 0.0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
}

std::map<std::vector<int32_t>, int64_t> count_ngrams(const std::vector<int32_t>& tokens,
                                                     std::size_t n) {
    std::map<std::vector<int32_t>, int64_t> counts;
    for (std::size_t i = 0; i + n <= tokens.size(); ++i) {
        ++counts[std::vector<int32_t>(tokens.begin() + i, tokens.begin() + i + n)];
    }
    return counts;
}

// Classic two-row dynamic programme; the shorter sequence indexes the row.
template <typename T>
std::size_t levenshtein(const std::vector<T>& a, const std::vector<T>& b) {
    const std::vector<T>& s = a.size() < b.size() ? a : b;  // shorter
    const std::vector<T>& l = a.size() < b.size() ? b : a;
    std::vector<std::size_t> prev(s.size() + 1), cur(s.size() + 1);
    for (std::size_t j = 0; j <= s.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= l.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= s.size(); ++j) {
            std::size_t substitute = prev[j - 1] + (l[i - 1] == s[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
        }
        std::swap(prev, cur);
    }
    return prev[s.size()];
}

double similarity(std::size_t distance, std::size_t len_a, std::size_t len_b) {
    std::size_t longest = std::max(len_a, len_b);
    if (longest == 0) return 1.0;  // two empty sequences are identical
    return 1.0 - static_cast<double>(distance) / static_cast<double>(longest);
}

// UTF-8 -> code points; each ill-formed maximal subpart becomes U+FFFD (ICU's U8_NEXT).
std::vector<UChar32> code_points(std::string_view text) {
    if (text.size() > static_cast<std::size_t>(INT32_MAX)) {
        throw InvalidInput(fmt::format("text of {} bytes is too long", text.size()));
    }
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const auto length = static_cast<int32_t>(text.size());
    std::vector<UChar32> out;
    out.reserve(text.size());
    int32_t i = 0;
    while (i < length) {
        UChar32 c;
        U8_NEXT(s, i, length, c);
        out.push_back(c < 0 ? 0xFFFD : c);
    }
    return out;
}

std::vector<char> bytes(std::string_view text) { return {text.begin(), text.end()}; }

}  // namespace

bool exact_match(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated) {
    return reference == generated;
}

RougeScore rouge_n(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated,
                   int n) {
    if (n < 1) throw InvalidInput(fmt::format("ROUGE-N needs n >= 1, got {}", n));
    auto ref = count_ngrams(reference, static_cast<std::size_t>(n));
    auto gen = count_ngrams(generated, static_cast<std::size_t>(n));
    int64_t overlap = 0, n_ref = 0, n_gen = 0;
    for (const auto& [gram, count] : ref) {
        n_ref += count;
        auto it = gen.find(gram);
        if (it != gen.end()) overlap += std::min(count, it->second);
    }
    for (const auto& [gram, count] : gen) n_gen += count;
    RougeScore out;
    out.precision = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(n_gen, 1));
    out.recall = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(n_ref, 1));
    out.f1 = f_measure(out.precision, out.recall);
    return out;
}

std::size_t lcs_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    const auto& s = a.size() < b.size() ? a : b;
    const auto& l = a.size() < b.size() ? b : a;
    std::vector<std::size_t> prev(s.size() + 1, 0), cur(s.size() + 1, 0);
    for (std::size_t i = 1; i <= l.size(); ++i) {
        for (std::size_t j = 1; j <= s.size(); ++j) {
            cur[j] = l[i - 1] == s[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
        }
        std::swap(prev, cur);
    }
    return prev[s.size()];
}

std::size_t longest_common_substring(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    // run[j]: length of the common run ending at l[i-1] and s[j-1]; walking j
    // downwards lets one row hold both the previous and the current i.
    const auto& s = a.size() < b.size() ? a : b;
    const auto& l = a.size() < b.size() ? b : a;
    std::vector<std::size_t> run(s.size() + 1, 0);
    std::size_t best = 0;
    for (std::size_t i = 1; i <= l.size(); ++i) {
        for (std::size_t j = s.size(); j >= 1; --j) {
            run[j] = l[i - 1] == s[j - 1] ? run[j - 1] + 1 : 0;
            best = std::max(best, run[j]);
        }
    }
    return best;
}

bool approximately_memorized(const std::vector<int32_t>& reference_window, const std::vector<int32_t>& output,
                             double max_normalized_distance) {
    if (!(max_normalized_distance >= 0.0 && max_normalized_distance <= 1.0)) {
        throw InvalidInput(fmt::format("approximate memorization threshold must be in [0, 1], got {}",
                                       max_normalized_distance),
                           "it is a normalised edit distance; Ippolito et al. 2022 use 0.1");
    }
    const std::size_t longest = std::max(reference_window.size(), output.size());
    if (longest == 0) return true;
    // d <= t * longest with a relative slack of 1e-12: a distance right at the
    // threshold (1 in 10 at 0.1) must not be lost to the rounding of 0.1.
    const double d = static_cast<double>(levenshtein(reference_window, output));
    return d <= max_normalized_distance * static_cast<double>(longest) * (1.0 + 1e-12);
}

RougeScore rouge_l(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated) {
    RougeScore out;
    if (reference.empty() || generated.empty()) return out;
    double lcs = static_cast<double>(lcs_length(reference, generated));
    out.precision = lcs / static_cast<double>(generated.size());
    out.recall = lcs / static_cast<double>(reference.size());
    out.f1 = f_measure(out.precision, out.recall);
    return out;
}

std::size_t levenshtein_distance(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    return levenshtein(a, b);
}

double levenshtein_similarity(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    return similarity(levenshtein(a, b), a.size(), b.size());
}

std::size_t levenshtein_distance_text(std::string_view a, std::string_view b, TextUnit unit) {
    return metrics_detail::levenshtein_text(a, b, unit).distance;
}

double levenshtein_similarity_text(std::string_view a, std::string_view b, TextUnit unit) {
    return metrics_detail::levenshtein_text(a, b, unit).similarity;
}

namespace metrics_detail {

TextDistance levenshtein_text(std::string_view a, std::string_view b, TextUnit unit) {
    TextDistance out;
    if (unit == TextUnit::kByte) {
        out.distance = levenshtein(bytes(a), bytes(b));
        out.similarity = similarity(out.distance, a.size(), b.size());
    } else {
        auto ca = code_points(a);
        auto cb = code_points(b);
        out.distance = levenshtein(ca, cb);
        out.similarity = similarity(out.distance, ca.size(), cb.size());
    }
    return out;
}

}  // namespace metrics_detail

double pythia_memorization_score(const std::vector<int32_t>& reference,
                                 const std::vector<int32_t>& generated) {
    metrics_detail::require_non_empty(reference.size(), "reference");
    std::size_t n = std::min(reference.size(), generated.size());
    std::size_t equal = 0;
    for (std::size_t i = 0; i < n; ++i) equal += reference[i] == generated[i] ? 1 : 0;
    return static_cast<double>(equal) / static_cast<double>(reference.size());
}

std::optional<bool> k_extractable(const std::vector<int32_t>& reference,
                                  const std::vector<int32_t>& generated, int64_t k) {
    if (k < 1) throw InvalidInput(fmt::format("k-extractable needs k >= 1, got {}", k));
    auto uk = static_cast<std::size_t>(k);
    if (reference.size() < uk) return std::nullopt;
    if (generated.size() < uk) return false;
    return std::equal(reference.begin(), reference.begin() + k, generated.begin());
}

}  // namespace memskew
