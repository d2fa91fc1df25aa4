// METHOD M2-M4: prefix match from flags, extraction probabilities in log
// space, and the temperature / top-k / top-p sampling transform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "memskew/error.h"
#include "memskew/metrics.h"

namespace memskew {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- M2/M3 -----------------------------------------------------------------

TEST(PrefixMatch, FirstMissGivesNPre) {
    // c = 1 1 0 1: greedy diverges at the third token, so n_pre = 2 of L = 4.
    PrefixMatch m = prefix_match({1, 1, 0, 1});
    EXPECT_EQ(m.n_pre, 2);
    EXPECT_EQ(m.length, 4);
    EXPECT_FALSE(m.exact);
    EXPECT_DOUBLE_EQ(m.fraction, 0.5);
}

TEST(PrefixMatch, AllMatchIsExact) {
    PrefixMatch m = prefix_match({1, 1, 1});
    EXPECT_EQ(m.n_pre, 3);
    EXPECT_TRUE(m.exact);
    EXPECT_DOUBLE_EQ(m.fraction, 1.0);
}

TEST(PrefixMatch, FirstTokenWrongIsZero) {
    PrefixMatch m = prefix_match({0, 1, 1});
    EXPECT_EQ(m.n_pre, 0);
    EXPECT_DOUBLE_EQ(m.fraction, 0.0);
}

TEST(PrefixMatch, NonZeroByteCountsAsMatch) { EXPECT_EQ(prefix_match({2, 255, 0}).n_pre, 2); }

TEST(PrefixMatch, EmptyReferenceIsAnError) { EXPECT_THROW(prefix_match({}), InvalidInput); }

TEST(PrefixMatch, CommonPrefixOfGeneration) {
    EXPECT_EQ(common_prefix_length({1, 2, 3, 4}, {1, 2, 9, 4}), 2);
    EXPECT_EQ(common_prefix_length({1, 2, 3}, {1, 2, 3, 4, 5}), 3);
    EXPECT_EQ(common_prefix_length({1, 2, 3}, {1, 2}), 2);
    EXPECT_EQ(common_prefix_length({1, 2, 3}, {}), 0);
}

// ---- M4 --------------------------------------------------------------------

TEST(Extraction, LogSurvivalIsCumulativeSum) {
    std::vector<double> log_p = {std::log(0.5), std::log(0.25), 0.0};
    std::vector<double> s = log_survival(log_p);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_DOUBLE_EQ(s[0], std::log(0.5));
    EXPECT_DOUBLE_EQ(s[1], std::log(0.125));  // 0.5 * 0.25
    EXPECT_DOUBLE_EQ(s[2], std::log(0.125));  // * 1
    EXPECT_DOUBLE_EQ(log_sequence_probability(log_p), std::log(0.125));
}

TEST(Extraction, ExpectedPrefixLengthMatchesGeometricClosedForm) {
    // All p_j^T = p: E[N_pre] = sum_{k=1..L} p^k = p (1 - p^L) / (1 - p).
    for (double p : {0.1, 0.5, 0.9, 0.999}) {
        for (int L : {1, 5, 20, 200}) {
            std::vector<double> log_p(L, std::log(p));
            double closed = p * (1.0 - std::pow(p, L)) / (1.0 - p);
            EXPECT_NEAR(expected_prefix_length(log_p), closed, 1e-12 * closed) << p << " " << L;
        }
    }
}

TEST(Extraction, ExpectedPrefixLengthHandCase) {
    // p = (0.5, 0.5, 1): E = 0.5 + 0.25 + 0.25 = 1.
    EXPECT_DOUBLE_EQ(expected_prefix_length({std::log(0.5), std::log(0.5), 0.0}), 1.0);
    // A zero probability stops the sum: p = (1, 0, 1) gives E = 1.
    EXPECT_DOUBLE_EQ(expected_prefix_length({0.0, -kInf, 0.0}), 1.0);
}

TEST(Extraction, LongReferenceDoesNotUnderflowInLogSpace) {
    // 5000 tokens at p = 0.5: p_z = 2^-5000 underflows, its log does not.
    std::vector<double> log_p(5000, std::log(0.5));
    EXPECT_NEAR(log_sequence_probability(log_p), 5000 * std::log(0.5), 1e-9);
    EXPECT_NEAR(expected_prefix_length(log_p), 1.0, 1e-12);  // sum 2^-k -> 1
}

TEST(Extraction, RoundingAboveZeroIsClampedLargerIsAnError) {
    // Engine log-softmax can give +1e-7 for a certain token: read as 0.
    EXPECT_DOUBLE_EQ(log_sequence_probability({1e-7, std::log(0.5)}), std::log(0.5));
    EXPECT_THROW(log_survival({0.5}), InvalidInput);
    EXPECT_THROW(log_survival({std::nan("")}), InvalidInput);
}

TEST(Extraction, ProbWithinNTriesMatchesDirectFormula) {
    // Moderate p_z: 1 - (1 - p_z)^n computed directly is accurate here.
    for (double p_z : {0.01, 0.3, 0.9}) {
        for (double n : {1.0, 2.0, 50.0, 1000.0}) {
            double direct = 1.0 - std::pow(1.0 - p_z, n);
            EXPECT_NEAR(prob_extracted_within(std::log(p_z), n), direct, 1e-13) << p_z << " " << n;
            EXPECT_NEAR(log_prob_extracted_within(std::log(p_z), n), std::log(direct), 1e-12);
        }
    }
    // One try: P = p_z exactly.
    EXPECT_NEAR(prob_extracted_within(std::log(0.37), 1.0), 0.37, 1e-15);
}

TEST(Extraction, ProbWithinNTriesUnderflowRegime) {
    // log p_z = -2000: p_z = exp(-2000) is 0 in double, yet
    // 1 - (1 - p_z)^n = n p_z (1 - (n - 1) p_z / 2 + ...) = n p_z to double
    // precision, so log P = log(n) - 2000.
    for (double n : {1.0, 1000.0, 1e12}) {
        EXPECT_NEAR(log_prob_extracted_within(-2000.0, n), std::log(n) - 2000.0, 1e-9) << n;
    }
    EXPECT_EQ(prob_extracted_within(-2000.0, 1000.0), 0.0);  // the probability itself underflows
}

TEST(Extraction, ProbWithinNTriesTinyButRepresentablePz) {
    // log p_z = -40 (p_z = 4.2e-18): 1 - p_z rounds to 1, so the naive
    // 1 - pow(1 - p_z, n) is 0; the answer is n p_z (1 - n p_z / 2).
    double p_z = std::exp(-40.0), n = 1e6;
    EXPECT_EQ(1.0 - std::pow(1.0 - p_z, n), 0.0);
    double expected_log = std::log(n * p_z) + std::log1p(-n * p_z / 2.0);
    EXPECT_NEAR(log_prob_extracted_within(-40.0, n), expected_log, 1e-12);
}

TEST(Extraction, ProbWithinNTriesNearCertain) {
    // p_z = 1/2, n = 100: P = 1 - 2^-100, log P = log1p(-2^-100) = -2^-100.
    double expected = -std::ldexp(1.0, -100);
    EXPECT_NEAR(log_prob_extracted_within(std::log(0.5), 100.0), expected, 1e-12 * -expected);
}

TEST(Extraction, ProbWithinNTriesEdges) {
    EXPECT_EQ(log_prob_extracted_within(std::log(0.5), 0.0), -kInf);  // no tries
    EXPECT_EQ(log_prob_extracted_within(-kInf, 10.0), -kInf);          // p_z = 0
    EXPECT_EQ(log_prob_extracted_within(0.0, 3.0), 0.0);               // p_z = 1
    EXPECT_THROW(log_prob_extracted_within(0.1, 3.0), InvalidInput);
    EXPECT_THROW(log_prob_extracted_within(std::nan(""), 3.0), InvalidInput);
    EXPECT_THROW(log_prob_extracted_within(-1.0, -1.0), InvalidInput);
}

TEST(Extraction, TriesForProbability) {
    // p_z = 0.01, p = 0.5: n = log(0.5) / log(0.99) = 68.96756393652842
    // (/usr/bin/python3 -c "import math;print(math.log(0.5)/math.log(0.99))").
    EXPECT_NEAR(tries_for_probability(std::log(0.01), 0.5), 68.96756393652842, 1e-10);
    // Inverse of prob_extracted_within.
    for (double p_z : {1e-3, 0.2, 0.7}) {
        double n = tries_for_probability(std::log(p_z), 0.9);
        EXPECT_NEAR(prob_extracted_within(std::log(p_z), n), 0.9, 1e-12);
    }
}

TEST(Extraction, TriesForProbabilityTinyPz) {
    // n = -log(1 - p) / -log(1 - p_z) ~ log(2) / p_z for p = 0.5.
    EXPECT_NEAR(log_tries_for_probability(-2000.0, 0.5), std::log(std::log(2.0)) + 2000.0, 1e-9);
    EXPECT_EQ(tries_for_probability(-2000.0, 0.5), kInf);  // n itself overflows double
    EXPECT_NEAR(tries_for_probability(-40.0, 0.5), std::log(2.0) * std::exp(40.0),
                1e-12 * std::exp(40.0));
}

TEST(Extraction, TriesForProbabilityEdges) {
    EXPECT_EQ(tries_for_probability(-kInf, 0.5), kInf);  // p_z = 0: never
    EXPECT_EQ(tries_for_probability(0.0, 0.5), 1.0);     // p_z = 1: one try
    EXPECT_EQ(tries_for_probability(0.0, 1.0), 1.0);
    EXPECT_EQ(tries_for_probability(std::log(0.5), 0.0), 0.0);
    EXPECT_EQ(tries_for_probability(std::log(0.5), 1.0), kInf);
    EXPECT_THROW(tries_for_probability(std::log(0.5), 1.5), InvalidInput);
    EXPECT_THROW(tries_for_probability(std::log(0.5), -0.1), InvalidInput);
    EXPECT_THROW(tries_for_probability(0.2, 0.5), InvalidInput);
}

// ---- sampling transform --------------------------------------------------

// A hand-made 4-token distribution: logits = log(0.4, 0.3, 0.2, 0.1).
std::vector<double> four_token_logits() {
    return {std::log(0.4), std::log(0.3), std::log(0.2), std::log(0.1)};
}

TEST(SamplingLogprob, TemperatureOneIsSoftmax) {
    auto z = four_token_logits();
    EXPECT_NEAR(sampling_logprob(z, 0), std::log(0.4), 1e-14);
    EXPECT_NEAR(sampling_logprob(z, 3), std::log(0.1), 1e-14);
    // Shifting logits changes nothing; float logits work the same.
    std::vector<float> zf = {10.0f + std::log(0.4f), 10.0f + std::log(0.3f),
                             10.0f + std::log(0.2f), 10.0f + std::log(0.1f)};
    EXPECT_NEAR(sampling_logprob(zf, 1), std::log(0.3), 1e-6);
    EXPECT_NEAR(sampling_logprob(zf.data(), zf.size(), 1), std::log(0.3), 1e-6);
}

TEST(SamplingLogprob, Temperature) {
    auto z = four_token_logits();
    // T = 0.5: p_i ∝ p_i^2 = (0.16, 0.09, 0.04, 0.01), sum 0.30.
    SamplingParams cold{0.5, 0, 1.0};
    EXPECT_NEAR(sampling_logprob(z, 0, cold), std::log(0.16 / 0.30), 1e-13);
    EXPECT_NEAR(sampling_logprob(z, 3, cold), std::log(0.01 / 0.30), 1e-13);
    // T = 2: p_i ∝ sqrt(p_i).
    SamplingParams hot{2.0, 0, 1.0};
    double s = std::sqrt(0.4) + std::sqrt(0.3) + std::sqrt(0.2) + std::sqrt(0.1);
    EXPECT_NEAR(sampling_logprob(z, 2, hot), std::log(std::sqrt(0.2) / s), 1e-13);
}

TEST(SamplingLogprob, TopK) {
    auto z = four_token_logits();
    SamplingParams k2{1.0, 2, 1.0};
    // Keep {0, 1}: renormalized 0.4/0.7 and 0.3/0.7; tokens 2, 3 cannot be emitted.
    EXPECT_NEAR(sampling_logprob(z, 0, k2), std::log(4.0 / 7.0), 1e-13);
    EXPECT_NEAR(sampling_logprob(z, 1, k2), std::log(3.0 / 7.0), 1e-13);
    EXPECT_EQ(sampling_logprob(z, 2, k2), -kInf);
    EXPECT_EQ(sampling_logprob(z, 3, k2), -kInf);
    // top_k >= V is a no-op.
    EXPECT_NEAR(sampling_logprob(z, 3, SamplingParams{1.0, 4, 1.0}), std::log(0.1), 1e-13);
    EXPECT_NEAR(sampling_logprob(z, 3, SamplingParams{1.0, 100, 1.0}), std::log(0.1), 1e-13);
}

TEST(SamplingLogprob, TopKKeepsTiesLikeHuggingFace) {
    // Logits (1, 1, 1, 0), top_k = 2: the 2nd largest is 1 and HF removes only
    // scores < 1, so all three tied tokens stay, each with probability 1/3.
    std::vector<double> z = {1.0, 1.0, 1.0, 0.0};
    SamplingParams k2{1.0, 2, 1.0};
    EXPECT_NEAR(sampling_logprob(z, 2, k2), std::log(1.0 / 3.0), 1e-14);
    EXPECT_EQ(sampling_logprob(z, 3, k2), -kInf);
}

TEST(SamplingLogprob, TopP) {
    auto z = four_token_logits();
    // Mass ranked above each token: 0, 0.4, 0.7, 0.9. A token stays iff that is < top_p.
    // top_p = 0.65: nucleus {0, 1} (0.4 + 0.3 = 0.7 >= 0.65).
    SamplingParams p65{1.0, 0, 0.65};
    EXPECT_NEAR(sampling_logprob(z, 0, p65), std::log(4.0 / 7.0), 1e-13);
    EXPECT_NEAR(sampling_logprob(z, 1, p65), std::log(3.0 / 7.0), 1e-13);
    EXPECT_EQ(sampling_logprob(z, 2, p65), -kInf);
    // top_p = 0.75: nucleus {0, 1, 2} (mass 0.9), token 2 has 0.2 / 0.9.
    SamplingParams p75{1.0, 0, 0.75};
    EXPECT_NEAR(sampling_logprob(z, 2, p75), std::log(2.0 / 9.0), 1e-13);
    EXPECT_EQ(sampling_logprob(z, 3, p75), -kInf);
    // top_p = 0.3 < 0.4: only the top token, which then has probability 1.
    SamplingParams p30{1.0, 0, 0.3};
    EXPECT_NEAR(sampling_logprob(z, 0, p30), 0.0, 1e-15);
    EXPECT_EQ(sampling_logprob(z, 1, p30), -kInf);
    // top_p = 0 keeps the top token (HF's min_tokens_to_keep = 1).
    EXPECT_NEAR(sampling_logprob(z, 0, SamplingParams{1.0, 0, 0.0}), 0.0, 1e-15);
    // top_p = 1 is off.
    EXPECT_NEAR(sampling_logprob(z, 3, SamplingParams{1.0, 0, 1.0}), std::log(0.1), 1e-13);
}

TEST(SamplingLogprob, TopPTiesRankedByTokenId) {
    // Uniform over 4 tokens, top_p = 0.4: the first ranked token has 0 above it,
    // the second 0.25 < 0.4, the third 0.5 >= 0.4. Among equal probabilities the
    // lower id ranks first, so tokens 0 and 1 stay (1/2 each) and 2, 3 go.
    std::vector<double> z = {0.0, 0.0, 0.0, 0.0};
    SamplingParams p40{1.0, 0, 0.4};
    EXPECT_NEAR(sampling_logprob(z, 0, p40), std::log(0.5), 1e-14);
    EXPECT_NEAR(sampling_logprob(z, 1, p40), std::log(0.5), 1e-14);
    EXPECT_EQ(sampling_logprob(z, 2, p40), -kInf);
    EXPECT_EQ(sampling_logprob(z, 3, p40), -kInf);
}

TEST(SamplingLogprob, TemperatureThenTopKThenTopP) {
    auto z = four_token_logits();
    // T = 0.5 -> (16, 9, 4, 1) / 30; top_k = 3 -> (16, 9, 4) / 29;
    // top_p = 0.8: mass above token 2 is 25/29 = 0.862 >= 0.8, so nucleus {0, 1}
    // and token 1 has 9 / 25.
    SamplingParams all{0.5, 3, 0.8};
    EXPECT_NEAR(sampling_logprob(z, 1, all), std::log(9.0 / 25.0), 1e-13);
    EXPECT_EQ(sampling_logprob(z, 2, all), -kInf);
    EXPECT_EQ(sampling_logprob(z, 3, all), -kInf);
}

TEST(SamplingLogprob, MaskedLogits) {
    // -inf logits are masked tokens: probability 0, the rest renormalize.
    std::vector<double> z = {std::log(0.5), -kInf, std::log(0.5)};
    EXPECT_NEAR(sampling_logprob(z, 0), std::log(0.5), 1e-15);
    EXPECT_EQ(sampling_logprob(z, 1), -kInf);
    EXPECT_EQ(sampling_logprob(z, 2, SamplingParams{1.0, 0, 0.4}), -kInf);  // 0.5 above it
}

// Hugging Face's TopPLogitsWarper, literally: sort ascending, cumulative sum,
// remove where cumsum <= 1 - top_p, but never the last (largest) token.
double hf_reference(const std::vector<double>& z, int64_t target, double top_p) {
    std::size_t n = z.size();
    double m = *std::max_element(z.begin(), z.end());
    double s = 0.0;
    for (double v : z) s += std::exp(v - m);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return z[a] < z[b]; });
    std::vector<bool> keep(n, true);
    double cum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        cum += std::exp(z[order[i]] - m) / s;
        if (cum <= 1.0 - top_p && i + 1 < n) keep[order[i]] = false;
    }
    if (!keep[target]) return -kInf;
    double kept = 0.0;
    for (std::size_t i = 0; i < n; ++i) kept += keep[i] ? std::exp(z[i] - m) : 0.0;
    return z[target] - m - std::log(kept);
}

TEST(SamplingLogprob, TopPMatchesHuggingFaceAlgorithmOnLargeVocab) {
    // Flat-ish logits so the nucleus holds hundreds of tokens (the weighted
    // quickselect recurses on both sides), no ties (continuous draws).
    std::mt19937_64 rng(1234);
    std::uniform_real_distribution<double> uni(0.0, 2.0);
    std::vector<double> z(1000);
    for (double& v : z) v = uni(rng);
    for (double top_p : {0.05, 0.5, 0.9, 0.99}) {
        for (int64_t t = 0; t < 1000; t += 37) {
            double got = sampling_logprob(z, t, SamplingParams{1.0, 0, top_p});
            double want = hf_reference(z, t, top_p);
            if (std::isinf(want)) {
                EXPECT_EQ(got, want) << top_p << " " << t;
            } else {
                EXPECT_NEAR(got, want, 1e-10) << top_p << " " << t;
            }
        }
    }
}

TEST(SamplingLogprob, BadArguments) {
    auto z = four_token_logits();
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{0.0, 0, 1.0}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{-1.0, 0, 1.0}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{std::nan(""), 0, 1.0}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{1.0, -1, 1.0}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{1.0, 0, 1.5}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 0, SamplingParams{1.0, 0, -0.1}), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, 4), InvalidInput);
    EXPECT_THROW(sampling_logprob(z, -1), InvalidInput);
    EXPECT_THROW(sampling_logprob(std::vector<double>{}, 0), InvalidInput);
    EXPECT_THROW(sampling_logprob(std::vector<double>{0.0, std::nan("")}, 0), InvalidInput);
    EXPECT_THROW(sampling_logprob(std::vector<double>{0.0, kInf}, 0), InvalidInput);
    // 1e300 / 1e-300 overflows: the temperature is too small to be meaningful.
    EXPECT_THROW(sampling_logprob(std::vector<double>{1e300, 0.0}, 0, SamplingParams{1e-300, 0, 1.0}),
                 InvalidInput);
}

}  // namespace
}  // namespace memskew
