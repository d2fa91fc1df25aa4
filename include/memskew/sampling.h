// METHOD M4: the one sampling transform (temperature, top-k, top-p) as
// Hugging Face's logits warpers apply it. Its implementation lives with the
// metrics (src/metrics/sampling.cpp); this header depends on nothing so the
// engine can apply the same rule to each row of logits it computes, instead
// of a second copy of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memskew {

// Hugging Face's order of warpers: temperature, then top-k, then top-p.
struct SamplingParams {
    double temperature = 1.0;  // > 0; logits are divided by it
    int64_t top_k = 0;         // 0 = off; keep tokens whose logit >= the k-th largest
    double top_p = 1.0;        // in [0, 1]; 1 = off
};

// log-probability of emitting `target` after temperature scaling, top-k
// filtering, top-p (nucleus) filtering and renormalization; -inf when the
// target is filtered out (or its logit is -inf).
//
// top-k keeps every token tied with the k-th largest logit, as HF's
// TopKLogitsWarper (scores < k-th value are removed), so more than k tokens can
// survive a tie.
// top-p keeps the smallest set of highest-probability tokens whose cumulative
// probability (after top-k, renormalized) is >= top_p, and always the top
// token: a token stays iff the mass ranked strictly above it is < top_p. This is
// HF's TopPLogitsWarper (remove where the ascending cumulative sum is
// <= 1 - top_p, min_tokens_to_keep = 1) in exact arithmetic; sums here are in
// double, HF's in the logits' dtype, so a boundary within rounding of top_p can
// differ. Ties in probability are ranked by token id, lower id first (torch's
// sort leaves the order of ties unspecified), so at a tied boundary a
// lower-id token can stay while a higher-id one with the same probability goes.
//
// Logits may contain -inf (masked tokens) but not NaN or +inf. Cost is
// O(V) plus a partial sort of the nucleus when top_p < 1.
double sampling_logprob(const float* logits, std::size_t n_vocab, int64_t target,
                        const SamplingParams& params = {});
double sampling_logprob(const std::vector<float>& logits, int64_t target,
                        const SamplingParams& params = {});
double sampling_logprob(const std::vector<double>& logits, int64_t target,
                        const SamplingParams& params = {});

// Throws InvalidInput naming the parameter when params are out of range
// (temperature <= 0 or not finite, top_k < 0, top_p outside [0, 1]).
void check_sampling_params(const SamplingParams& params);
// True when the transform leaves the distribution as it is (T = 1, no top-k,
// no top-p): log p^T is then the plain log-probability.
inline bool is_identity(const SamplingParams& p) { return p.temperature == 1.0 && p.top_k == 0 && p.top_p >= 1.0; }

}  // namespace memskew
