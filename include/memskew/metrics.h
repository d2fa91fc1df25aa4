// Per-sample memorization metrics (docs/method.md, M2-M4 and M8).
//
// Inputs are the per-token arrays the engine produces for the L reference
// positions of one sample (teacher forcing, METHOD M3) and, when the sample was
// also generated, the generated tokens/text. Everything here is a pure function
// of its arguments: no models, no files, no global state.
//
// Conventions
//   - Logarithms are natural (nats). Probabilities that can underflow are kept
//     as logs (`log_*`); a probability of 0 is a log of -inf.
//   - Per-token log-probabilities may carry float rounding from the engine: a
//     value in (0, kLogProbTolerance] is read as 0 (probability 1); a larger
//     positive value, or NaN, is an InvalidInput.
//   - "reference" is the training reference r_1..r_L, "generated" the model's
//     output. Function arguments take the reference first, like rouge-score's
//     score(target, prediction).
//   - Bad arguments (k out of range, temperature <= 0, arrays of mismatched
//     lengths, ...) throw memskew::InvalidInput (include/memskew/error.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memskew/sampling.h"

namespace memskew {

// Largest positive per-token log-probability accepted as float rounding of 0.
inline constexpr double kLogProbTolerance = 1e-4;

// ---------------------------------------------------------------------------
// M2/M3: prefix match length from teacher-forced match flags
// ---------------------------------------------------------------------------

struct PrefixMatch {
    int64_t n_pre = 0;        // leading reference tokens reproduced by greedy decoding
    int64_t length = 0;       // L
    bool exact = false;       // n_pre == L
    double fraction = 0.0;    // n_pre / L
};

// match[j] = c_j = [argmax z_j == r_j] (any non-zero byte counts as a match).
// n_pre = index of the first 0 flag, or L when all flags are 1 (METHOD M3: the
// greedy context equals the teacher-forced context until the first miss).
// Throws InvalidInput for L = 0: an empty reference has nothing to measure.
PrefixMatch prefix_match(const std::vector<uint8_t>& match);

// Length of the common prefix of two token sequences: n_pre measured on a real
// greedy generation, to check it against prefix_match() (METHOD M3).
int64_t common_prefix_length(const std::vector<int32_t>& reference,
                             const std::vector<int32_t>& generated);

// ---------------------------------------------------------------------------
// M4: sampling-based extraction, in log space
// ---------------------------------------------------------------------------

// log P(N_pre >= k) = sum_{j<=k} log p_j^T for k = 1..L (element k-1).
// Entries of log_p must be <= 0 (see kLogProbTolerance); -inf is allowed.
std::vector<double> log_survival(const std::vector<double>& log_p);

// E[N_pre] = sum_{k=1..L} prod_{j<=k} p_j^T. Each term is exp of a log-sum,
// at most 1, summed smallest first; underflowing terms contribute nothing.
double expected_prefix_length(const std::vector<double>& log_p);

// log p_z = sum_j log p_j^T: log-probability that one sampled continuation
// reproduces the whole reference.
double log_sequence_probability(const std::vector<double>& log_p);

// log P(extracted within n tries) = log(1 - (1 - p_z)^n), (n,p)-discoverable
// extraction (Hayes et al. 2024). Computed as log(-expm1(n * log1p(-p_z)))
// without ever forming p_z when it underflows: for log p_z = -2000 the result
// is log(n) - 2000 to double precision. n >= 0 may be fractional; n = 0 gives
// -inf. Throws for log_p_z > 0 or NaN, n < 0 or NaN.
double log_prob_extracted_within(double log_p_z, double n_tries);
// The same as a probability; rounds to 0 when it underflows (use the log form).
double prob_extracted_within(double log_p_z, double n_tries);

// Tries n for which P(extracted within n) = p: n = log(1 - p) / log(1 - p_z),
// real-valued (take max(1, ceil(n)) for a count). Stable for tiny p_z
// (n ~ -log(1 - p) / p_z). Special cases: p = 0 -> 0; p_z = 0 -> +inf;
// p_z = 1 -> 1 (one try is certain; the formula's 0 is not a count);
// p = 1 with p_z < 1 -> +inf. p must be in [0, 1].
double tries_for_probability(double log_p_z, double p);
// log of tries_for_probability(); finite where n itself overflows
// (log p_z = -2000, p = 0.5 gives log(log 2) + 2000).
double log_tries_for_probability(double log_p_z, double p);

// ---------------------------------------------------------------------------
// M4: the sampling transform on one logits vector
// ---------------------------------------------------------------------------

// SamplingParams and sampling_logprob(): memskew/sampling.h (the engine uses them too).

// ---------------------------------------------------------------------------
// M8: generated output vs reference (token ids unless stated)
// ---------------------------------------------------------------------------

struct RougeScore {
    double precision = 0.0;
    double recall = 0.0;
    double f1 = 0.0;
};

// Whole sequences identical. Generation is capped at L tokens (METHOD M2), so
// this is verbatim reproduction of the reference.
bool exact_match(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated);

// ROUGE-N as Google's rouge-score package (Lin 2004): n-gram counts clipped
// (overlap = sum over n-grams of min(count_ref, count_gen)),
// precision = overlap / max(#generated n-grams, 1),
// recall = overlap / max(#reference n-grams, 1), F1 = 2PR / (P + R), 0 when
// P + R = 0. Operates on the given ids: no tokenization, stemming or lower-casing.
// n >= 1.
RougeScore rouge_n(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated,
                   int n);
// ROUGE-L (sentence level, rouge-score's rougeL): LCS / len(generated),
// LCS / len(reference), F1; all 0 if either sequence is empty.
RougeScore rouge_l(const std::vector<int32_t>& reference, const std::vector<int32_t>& generated);
// Length of the longest common subsequence. O(|a| |b|) time, O(min) memory.
std::size_t lcs_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// Length of the longest common substring (contiguous run of tokens) of a and b;
// 0 if either is empty. O(|a| |b|) time, O(min) memory.
std::size_t longest_common_substring(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// Approximate memorization (Ippolito et al. 2022): the output is within a
// normalised edit distance of the reference window,
//   levenshtein_distance(reference_window, output) / max(|reference_window|, |output|)
//     <= max_normalized_distance,
// i.e. levenshtein_similarity() >= 1 - max_normalized_distance. Normalising by
// the longer sequence keeps the distance in [0, 1] (and symmetric); 0.1 lets
// one token in ten differ. Two empty sequences are at distance 0 (true).
// max_normalized_distance must be in [0, 1].
bool approximately_memorized(const std::vector<int32_t>& reference_window, const std::vector<int32_t>& output,
                             double max_normalized_distance = 0.1);

// Levenshtein distance (unit-cost insert, delete, substitute).
std::size_t levenshtein_distance(const std::vector<int32_t>& a, const std::vector<int32_t>& b);
// 1 - d / max(|a|, |b|); 1 when both are empty.
double levenshtein_similarity(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// What a character is for character-level distances on UTF-8 text.
enum class TextUnit {
    kCodePoint,  // Unicode code points; an ill-formed UTF-8 sequence is one U+FFFD per
                 // maximal subpart (ICU's U8_NEXT), so invalid model output still compares
    kByte,       // raw bytes
};
// Character-level Levenshtein on UTF-8 text: "café" vs "cafe" is 1 in code
// points (é is one code point) but 2 in bytes (é is two bytes, C3 A9). No
// Unicode normalization: a precomposed é and e + U+0301 differ.
std::size_t levenshtein_distance_text(std::string_view a, std::string_view b,
                                      TextUnit unit = TextUnit::kCodePoint);
double levenshtein_similarity_text(std::string_view a, std::string_view b,
                                   TextUnit unit = TextUnit::kCodePoint);

// Pythia memorization score: fraction of the first L = |reference| positions
// where generated equals the reference; positions the generated output does not
// reach count as mismatches, tokens past L are ignored. Throws for L = 0.
double pythia_memorization_score(const std::vector<int32_t>& reference,
                                 const std::vector<int32_t>& generated);

// k-extractable (Carlini et al. 2022): generated[0:k] == reference[0:k].
// nullopt (not applicable) when the reference has fewer than k tokens; false
// when the generated output is shorter than k. k >= 1.
std::optional<bool> k_extractable(const std::vector<int32_t>& reference,
                                  const std::vector<int32_t>& generated, int64_t k);

// ---------------------------------------------------------------------------
// M8: teacher-forced log-probabilities log q_j (T = 1)
// ---------------------------------------------------------------------------

// Mean negative log-likelihood -mean_j log q_j (the LM loss), and exp of it.
double mean_nll(const std::vector<double>& log_probs);
double perplexity(const std::vector<double>& log_probs);

// Number of lowest values min-k% averages over n tokens: floor(n * k) computed
// in double like MIMIR's int(len(probs) * k), but at least 1. MIMIR itself then
// averages an empty list (NaN) for short texts; at least one token follows the
// Min-K% authors' reference code. k in (0, 1].
std::size_t min_k_count(std::size_t n, double k);

// Min-K% Prob (Shi et al. 2024): mean of the min_k_count(L, k) lowest log q_j.
// Returned as a mean log-probability (<= 0, higher = more member-like); MIMIR
// reports its negation.
double min_k_prob(const std::vector<double>& log_probs, double k = 0.2);

// Min-K%++ (Zhang et al. 2024): token score s_j = (log q_j - mu_j) / sigma_j with
// mu_j = E_{z~p_j}[log p_j(z)] and sigma_j^2 = Var_{z~p_j}[log p_j(z)] under the
// model's own next-token distribution p_j; returns the mean of the
// min_k_count(L, k) lowest s_j. var_log_probs is the variance (not sigma);
// small negative values from E[x^2] - E[x]^2 rounding are read as 0. With
// sigma_j = 0 (a one-hot p_j) the score is 0 when log q_j = mu_j and -inf
// otherwise (the reference code would give NaN / -inf).
double min_k_plus_plus(const std::vector<double>& log_probs,
                       const std::vector<double>& mean_log_probs,
                       const std::vector<double>& var_log_probs, double k = 0.2);
// The per-token scores s_j themselves.
std::vector<double> min_k_plus_plus_scores(const std::vector<double>& log_probs,
                                           const std::vector<double>& mean_log_probs,
                                           const std::vector<double>& var_log_probs);

// Length in bytes of zlib.compress(text) at the given level; -1 is
// Z_DEFAULT_COMPRESSION (level 6), Python's zlib.compress default.
std::size_t zlib_compressed_size(std::string_view text, int level = -1);

// zlib ratio as MIMIR's ZLIBAttack: loss / len(zlib.compress(text.encode("utf-8")))
// with loss the MEAN NLL per token (MIMIR's get_ll returns -mean(log-probs));
// this equals Carlini et al. 2021's log(perplexity) / zlib entropy. Here both
// the loss and the text are those of the reference.
double zlib_ratio(double mean_nll_value, std::string_view text);

// ---------------------------------------------------------------------------
// Everything for one sample
// ---------------------------------------------------------------------------

// Per reference position j = 1..L, as the engine produces them. Vectors marked
// optional may be left empty; any non-empty one must have length L.
struct TokenArrays {
    std::vector<uint8_t> match;             // c_j, required
    std::vector<double> log_prob;           // log q_j at T = 1, required
    std::vector<double> entropy;            // H_j (nats), optional
    std::vector<double> mean_log_prob;      // mu_j for min-k%++, optional (with var)
    std::vector<double> var_log_prob;       // sigma_j^2 for min-k%++, optional (with mean)
    std::vector<double> sampling_log_prob;  // log p_j^T under SamplingParams, optional
};

struct GeneratedOutput {
    std::vector<int32_t> tokens;      // at most L tokens (METHOD M2)
    std::optional<std::string> text;  // decoded; needed for character-level distance
    // The model's log-probability of each emitted token (GenerateResult::logprobs);
    // empty: GenerationMetrics::mean_logprob is NaN.
    std::vector<float> logprobs;
    int64_t n_blocked = 0;            // steps where a decoding guard replaced the argmax
};

struct SampleInputs {
    TokenArrays tokens;
    std::vector<int32_t> reference_tokens;         // r_1..r_L; required with generation
    std::optional<std::string> reference_text;     // for zlib ratio and char-level distance
    std::optional<GeneratedOutput> generated;      // absent: generation-based metrics absent
    // The output of guarded decoding (M12, memskew/ngram-guard.h): the same
    // metrics are computed on it.
    std::optional<GeneratedOutput> guarded;
};

struct SampleMetricsParams {
    double min_k = 0.2;               // fraction for min-k% and min-k%++
    int64_t k_extractable = 50;       // k of k-extractable (lm-extraction-benchmark's 50)
    double n_tries = 100;             // n of P(extracted within n tries)
    double target_probability = 0.5;  // p of tries_for_probability
    int zlib_level = -1;              // Python's default
};

// Metrics of a generated output; present only when the sample was generated.
struct GenerationMetrics {
    int64_t n_pre_generated = 0;  // common prefix with the reference (check of M3)
    bool exact_match = false;
    RougeScore rouge1, rouge2, rouge_l;
    std::size_t levenshtein_tokens = 0;
    double levenshtein_similarity_tokens = 0.0;
    // Code-point level; absent without both texts.
    std::optional<std::size_t> levenshtein_chars;
    std::optional<double> levenshtein_similarity_chars;
    double pythia_score = 0.0;
    std::optional<bool> k_extractable;  // absent when L < k
    // M12: longest common substring with the reference (tokens), approximate
    // memorization (approximately_memorized(), 10%), the mean log-probability
    // of the emitted tokens (NaN without them) and the guard's blocked steps.
    std::size_t longest_common_substring = 0;
    bool approximately_memorized = false;
    double mean_logprob = 0.0;
    int64_t n_blocked = 0;
};

// The metrics of one generated output against its reference (what
// compute_sample_metrics does for SampleInputs::generated and ::guarded).
GenerationMetrics compute_generation_metrics(const std::vector<int32_t>& reference, const GeneratedOutput& output,
                                             const std::optional<std::string>& reference_text,
                                             const SampleMetricsParams& params);

struct SampleMetrics {
    // M2/M3
    PrefixMatch prefix;
    // M7 per-sample view at T = 1: log prod_j q_j and E[N_pre] under plain sampling.
    double log_p_full_t1 = 0.0;
    double expected_n_pre_t1 = 0.0;
    // M4 under SamplingParams; NaN without sampling_log_prob.
    double log_p_z = 0.0;
    double expected_n_pre = 0.0;
    double log_p_extracted = 0.0;  // log P(extracted within params.n_tries)
    double log_tries = 0.0;        // log tries_for_probability(params.target_probability)
    // M8 teacher-forced
    double nll_mean = 0.0;
    double perplexity = 0.0;
    double min_k_prob = 0.0;
    double min_k_plus_plus = 0.0;  // NaN without mean/var arrays
    double zlib_ratio = 0.0;       // NaN without reference text
    double mean_entropy = 0.0;     // NaN without entropies
    // M8 on the generated output
    std::optional<GenerationMetrics> generation;
    // The same on the guarded output (M12)
    std::optional<GenerationMetrics> guarded;
};

// Computes every metric the inputs allow; fields whose inputs are missing are
// NaN (doubles) or absent (optionals), as documented on SampleMetrics.
SampleMetrics compute_sample_metrics(const SampleInputs& inputs,
                                     const SampleMetricsParams& params = {});

}  // namespace memskew
