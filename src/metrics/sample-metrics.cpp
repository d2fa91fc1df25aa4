// All per-sample metrics from the engine's per-token arrays and, when present,
// the generated output. Missing inputs give NaN / absent fields, never errors;
// inconsistent inputs (mismatched lengths) are errors.
#include <cmath>
#include <limits>
#include <numeric>

#include "metrics/metrics-util.h"

namespace memskew {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_optional_length(const std::vector<double>& v, std::size_t n, const char* what) {
    if (!v.empty()) metrics_detail::require_same_length(v.size(), n, what, "match flags");
}

void check_params(const SampleMetricsParams& params) {
    min_k_count(1, params.min_k);  // throws for a fraction outside (0, 1]
    if (params.k_extractable < 1) {
        throw InvalidInput(fmt::format("k-extractable needs k >= 1, got {}", params.k_extractable));
    }
    if (std::isnan(params.n_tries) || params.n_tries < 0.0) {
        throw InvalidInput(fmt::format("number of tries {} must be >= 0", params.n_tries));
    }
    if (std::isnan(params.target_probability) || params.target_probability < 0.0 ||
        params.target_probability > 1.0) {
        throw InvalidInput(
            fmt::format("target probability {} must be in [0, 1]", params.target_probability));
    }
    if (params.zlib_level < -1 || params.zlib_level > 9) {
        throw InvalidInput(fmt::format("zlib level {} must be in [-1, 9]", params.zlib_level));
    }
}

}  // namespace

GenerationMetrics compute_generation_metrics(const std::vector<int32_t>& ref, const GeneratedOutput& output,
                                             const std::optional<std::string>& reference_text,
                                             const SampleMetricsParams& params) {
    const auto& gen = output.tokens;
    GenerationMetrics g;
    g.n_pre_generated = common_prefix_length(ref, gen);
    g.exact_match = exact_match(ref, gen);
    g.rouge1 = rouge_n(ref, gen, 1);
    g.rouge2 = rouge_n(ref, gen, 2);
    g.rouge_l = rouge_l(ref, gen);
    g.levenshtein_tokens = levenshtein_distance(ref, gen);
    g.levenshtein_similarity_tokens = levenshtein_similarity(ref, gen);
    if (reference_text && output.text) {
        auto d = metrics_detail::levenshtein_text(*reference_text, *output.text, TextUnit::kCodePoint);
        g.levenshtein_chars = d.distance;
        g.levenshtein_similarity_chars = d.similarity;
    }
    g.pythia_score = pythia_memorization_score(ref, gen);
    g.k_extractable = k_extractable(ref, gen, params.k_extractable);
    g.longest_common_substring = longest_common_substring(ref, gen);
    g.approximately_memorized = approximately_memorized(ref, gen);
    g.mean_logprob = output.logprobs.empty()
                         ? kNaN
                         : std::accumulate(output.logprobs.begin(), output.logprobs.end(), 0.0) /
                               static_cast<double>(output.logprobs.size());
    g.n_blocked = output.n_blocked;
    return g;
}

SampleMetrics compute_sample_metrics(const SampleInputs& inputs, const SampleMetricsParams& params) {
    using metrics_detail::require_same_length;
    check_params(params);
    const TokenArrays& tok = inputs.tokens;
    metrics_detail::require_non_empty(tok.match.size(), "match flags (reference of length 0)");
    const std::size_t n = tok.match.size();
    require_same_length(tok.log_prob.size(), n, "log q", "match flags");
    check_optional_length(tok.entropy, n, "entropies");
    check_optional_length(tok.mean_log_prob, n, "mean log p (mu)");
    check_optional_length(tok.var_log_prob, n, "variance of log p");
    check_optional_length(tok.sampling_log_prob, n, "log p^T");
    if (tok.mean_log_prob.empty() != tok.var_log_prob.empty()) {
        throw InvalidInput("min-k%++ needs both the mean and the variance of log p, got one");
    }
    if (!inputs.reference_tokens.empty()) {
        require_same_length(inputs.reference_tokens.size(), n, "reference tokens", "match flags");
    }

    SampleMetrics out;
    out.prefix = prefix_match(tok.match);

    out.log_p_full_t1 = log_sequence_probability(tok.log_prob);
    out.expected_n_pre_t1 = expected_prefix_length(tok.log_prob);

    if (tok.sampling_log_prob.empty()) {
        out.log_p_z = out.expected_n_pre = out.log_p_extracted = out.log_tries = kNaN;
    } else {
        out.log_p_z = log_sequence_probability(tok.sampling_log_prob);
        out.expected_n_pre = expected_prefix_length(tok.sampling_log_prob);
        out.log_p_extracted = log_prob_extracted_within(out.log_p_z, params.n_tries);
        out.log_tries = log_tries_for_probability(out.log_p_z, params.target_probability);
    }

    out.nll_mean = mean_nll(tok.log_prob);
    out.perplexity = std::exp(out.nll_mean);
    out.min_k_prob = min_k_prob(tok.log_prob, params.min_k);
    out.min_k_plus_plus = tok.mean_log_prob.empty()
                              ? kNaN
                              : min_k_plus_plus(tok.log_prob, tok.mean_log_prob, tok.var_log_prob,
                                                params.min_k);
    out.zlib_ratio = inputs.reference_text
                         ? out.nll_mean / static_cast<double>(zlib_compressed_size(
                                              *inputs.reference_text, params.zlib_level))
                         : kNaN;
    out.mean_entropy = tok.entropy.empty() ? kNaN
                                           : std::accumulate(tok.entropy.begin(), tok.entropy.end(),
                                                             0.0) /
                                                 static_cast<double>(n);

    if (inputs.generated || inputs.guarded) {
        if (inputs.reference_tokens.empty()) {
            throw InvalidInput("generation metrics need the reference tokens",
                               "fill SampleInputs::reference_tokens");
        }
        if (inputs.generated)
            out.generation = compute_generation_metrics(inputs.reference_tokens, *inputs.generated,
                                                        inputs.reference_text, params);
        if (inputs.guarded)
            out.guarded = compute_generation_metrics(inputs.reference_tokens, *inputs.guarded, inputs.reference_text,
                                                     params);
    }
    return out;
}

}  // namespace memskew
