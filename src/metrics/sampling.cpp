// METHOD M4: probability of emitting a given token under temperature / top-k /
// top-p sampling, mirroring Hugging Face's warper chain so that p_j^T agrees
// with what `generate(do_sample=True, ...)` would sample from.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "memskew/sampling.h"
#include "metrics/metrics-util.h"

namespace memskew {

void check_sampling_params(const SamplingParams& params) {
    if (!(params.temperature > 0.0) || !std::isfinite(params.temperature)) {
        throw InvalidInput(fmt::format("temperature {} must be > 0 and finite", params.temperature),
                           "temperature 0 is greedy decoding: use the match flags (n_pre) instead");
    }
    if (params.top_k < 0) {
        throw InvalidInput(fmt::format("top_k {} must be >= 0 (0 = off)", params.top_k));
    }
    if (std::isnan(params.top_p) || params.top_p < 0.0 || params.top_p > 1.0) {
        throw InvalidInput(fmt::format("top_p {} must be in [0, 1] (1 = off)", params.top_p));
    }
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

template <typename T>
double sampling_logprob_impl(const T* logits, std::size_t n_vocab, int64_t target,
                             const SamplingParams& params) {
    check_sampling_params(params);
    if (n_vocab == 0) throw InvalidInput("logits vector is empty");
    if (target < 0 || static_cast<std::size_t>(target) >= n_vocab) {
        throw InvalidInput(
            fmt::format("target token {} is outside the vocabulary [0, {})", target, n_vocab));
    }

    // Temperature: HF's TemperatureLogitsWarper divides the scores by T.
    std::vector<double> x(n_vocab);
    for (std::size_t i = 0; i < n_vocab; ++i) {
        double v = static_cast<double>(logits[i]);
        if (std::isnan(v) || v == kInf) {
            throw InvalidInput(fmt::format("logit {} is {}", i, v),
                               "logits may be -inf (masked) but not NaN or +inf");
        }
        x[i] = v / params.temperature;
        if (std::isfinite(v) && !std::isfinite(x[i])) {
            throw InvalidInput(fmt::format("logit {} / temperature {} overflows", v,
                                           params.temperature));
        }
    }
    const std::size_t t = static_cast<std::size_t>(target);
    const double x_t = x[t];
    if (x_t == -kInf) return -kInf;

    // Top-k: remove scores strictly below the k-th largest (ties with it stay).
    double k_threshold = -kInf;
    if (params.top_k > 0 && static_cast<std::size_t>(params.top_k) < n_vocab) {
        std::vector<double> tmp = x;
        auto kth = tmp.begin() + (params.top_k - 1);
        std::nth_element(tmp.begin(), kth, tmp.end(), std::greater<double>());
        k_threshold = *kth;
        if (x_t < k_threshold) return -kInf;
    }
    auto kept = [&](std::size_t i) { return x[i] >= k_threshold && x[i] != -kInf; };

    double m = x_t;
    for (std::size_t i = 0; i < n_vocab; ++i) {
        if (kept(i)) m = std::max(m, x[i]);
    }
    double sum = 0.0;
    for (std::size_t i = 0; i < n_vocab; ++i) {
        if (kept(i)) sum += std::exp(x[i] - m);
    }
    const double lse = m + std::log(sum);
    if (params.top_p >= 1.0) return x_t - lse;

    // Top-p over the top-k survivors. Rank: higher probability first, lower id
    // first among ties. The nucleus is the ranked prefix that stops before the
    // first token whose mass ranked above it is >= top_p (the first token always
    // stays). It is usually short, so sort a growing prefix instead of everything.
    std::vector<int32_t> idx;
    idx.reserve(n_vocab);
    for (std::size_t i = 0; i < n_vocab; ++i) {
        if (kept(i)) idx.push_back(static_cast<int32_t>(i));
    }
    auto ranked_before = [&](int32_t a, int32_t b) {
        return x[a] > x[b] || (x[a] == x[b] && a < b);
    };
    std::size_t n_sorted = std::min<std::size_t>(64, idx.size());
    std::size_t end = idx.size();  // first position outside the nucleus
    for (;;) {
        std::partial_sort(idx.begin(), idx.begin() + n_sorted, idx.end(), ranked_before);
        double cum = 0.0;
        std::size_t pos = 0;
        for (; pos < n_sorted; ++pos) {
            if (pos > 0 && cum >= params.top_p) break;
            cum += std::exp(x[idx[pos]] - lse);
        }
        if (pos < n_sorted) {
            end = pos;
            break;
        }
        if (n_sorted == idx.size()) break;  // the nucleus is every survivor
        n_sorted = std::min(idx.size(), n_sorted * 4);
    }
    if (end < idx.size() && !ranked_before(static_cast<int32_t>(t), idx[end])) return -kInf;

    const double m_nucleus = x[idx[0]];
    double sum_nucleus = 0.0;
    for (std::size_t pos = 0; pos < end; ++pos) sum_nucleus += std::exp(x[idx[pos]] - m_nucleus);
    return x_t - (m_nucleus + std::log(sum_nucleus));
}

}  // namespace

double sampling_logprob(const float* logits, std::size_t n_vocab, int64_t target,
                        const SamplingParams& params) {
    return sampling_logprob_impl(logits, n_vocab, target, params);
}

double sampling_logprob(const std::vector<float>& logits, int64_t target,
                        const SamplingParams& params) {
    return sampling_logprob_impl(logits.data(), logits.size(), target, params);
}

double sampling_logprob(const std::vector<double>& logits, int64_t target,
                        const SamplingParams& params) {
    return sampling_logprob_impl(logits.data(), logits.size(), target, params);
}

}  // namespace memskew
