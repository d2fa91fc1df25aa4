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
    // first among ties. A token stays iff the mass ranked strictly above it
    // is < top_p (the first token always stays), so the nucleus is the
    // shortest ranked prefix whose mass reaches top_p. No sort: the target's
    // fate needs only the mass above it, and the nucleus' mass comes from a
    // weighted quickselect for the prefix's last token, O(V) expected (a
    // nucleus can hold most of a flat distribution's 100k tokens).
    auto ranked_before = [&](std::size_t a, std::size_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
    double above_t = 0.0;
    bool any_above = false;
    std::vector<std::size_t> idx;
    std::vector<double> prob;  // exp(x - lse) by position in idx
    idx.reserve(n_vocab);
    prob.reserve(n_vocab);
    for (std::size_t i = 0; i < n_vocab; ++i) {
        if (!kept(i)) continue;
        const double p_i = std::exp(x[i] - lse);
        idx.push_back(i);
        prob.push_back(p_i);
        if (ranked_before(i, t)) {
            above_t += p_i;
            any_above = true;
        }
    }
    if (any_above && above_t >= params.top_p) return -kInf;

    // The prefix's last token: the first in rank order whose cumulative mass
    // (itself included) reaches top_p. `base` is the mass of every token
    // ranked above the current range [lo, hi).
    std::size_t lo = 0, hi = idx.size();
    double base = 0.0, nucleus = -1.0;
    while (lo < hi) {
        // Pivot: the middle element; partition [lo, hi) into ranked-before
        // (front), the pivot, ranked-after (back).
        std::swap(idx[lo + (hi - lo) / 2], idx[hi - 1]);
        std::swap(prob[lo + (hi - lo) / 2], prob[hi - 1]);
        const std::size_t pivot = idx[hi - 1];
        std::size_t store = lo;
        double front = 0.0;
        for (std::size_t k = lo; k + 1 < hi; ++k) {
            if (ranked_before(idx[k], pivot)) {
                front += prob[k];
                std::swap(idx[k], idx[store]);
                std::swap(prob[k], prob[store]);
                ++store;
            }
        }
        std::swap(idx[store], idx[hi - 1]);
        std::swap(prob[store], prob[hi - 1]);
        if (store > lo && base + front >= params.top_p) {
            hi = store;  // the prefix ends among the tokens ranked before the pivot
            continue;
        }
        const double through_pivot = base + front + prob[store];
        if (through_pivot >= params.top_p) {
            nucleus = through_pivot;  // it ends at the pivot
            break;
        }
        base = through_pivot;  // it ends after the pivot
        lo = store + 1;
    }
    if (nucleus < 0) nucleus = base;  // every survivor
    return x_t - lse - std::log(nucleus);
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
