// METHOD M8 on teacher-forced log-probabilities (loss, perplexity, Min-K%,
// Min-K%++, zlib ratio) and compute_sample_metrics() putting it all together.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/metrics.h"

namespace memskew {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Loss, MeanNllAndPerplexity) {
    // log q = (-1, -2, -3): mean NLL = 2, perplexity = e^2.
    std::vector<double> lp = {-1.0, -2.0, -3.0};
    EXPECT_DOUBLE_EQ(mean_nll(lp), 2.0);
    EXPECT_DOUBLE_EQ(perplexity(lp), std::exp(2.0));
    EXPECT_EQ(mean_nll({-1.0, -kInf}), kInf);
    EXPECT_THROW(mean_nll({}), InvalidInput);
    EXPECT_THROW(mean_nll({-1.0, 0.5}), InvalidInput);
}

TEST(MinK, CountFollowsMimirRounding) {
    // int(len * k) in double, as MIMIR: 10 * 0.2 = 2, 10 * 0.3 = 3.0000000000000004 -> 3.
    EXPECT_EQ(min_k_count(10, 0.2), 2u);
    EXPECT_EQ(min_k_count(10, 0.3), 3u);
    // 100 * 0.29 = 28.999999999999996 in double, so Python's int() gives 28, not 29
    // (/usr/bin/python3 -c "print(int(100*0.29))" prints 28).
    EXPECT_EQ(min_k_count(100, 0.29), 28u);
    // Below one token: at least one (MIMIR would average an empty list).
    EXPECT_EQ(min_k_count(4, 0.2), 1u);
    EXPECT_EQ(min_k_count(10, 1.0), 10u);
    EXPECT_THROW(min_k_count(10, 0.0), InvalidInput);
    EXPECT_THROW(min_k_count(10, 1.5), InvalidInput);
    EXPECT_THROW(min_k_count(10, std::nan("")), InvalidInput);
}

TEST(MinK, MeanOfLowestLogProbs) {
    std::vector<double> lp = {-0.1, -2.0, -0.5, -3.0, -1.0, -0.2, -4.0, -0.3, -0.05, -1.5};
    // k = 0.2: 2 lowest = -4, -3 -> mean -3.5.
    EXPECT_DOUBLE_EQ(min_k_prob(lp), -3.5);
    // k = 0.3: 3 lowest = -4, -3, -2 -> mean -3.
    EXPECT_DOUBLE_EQ(min_k_prob(lp, 0.3), -3.0);
    // k = 0.05: int(0.5) = 0 -> at least 1 -> -4.
    EXPECT_DOUBLE_EQ(min_k_prob(lp, 0.05), -4.0);
    // k = 1: the mean of all = -12.65 / 10.
    EXPECT_DOUBLE_EQ(min_k_prob(lp, 1.0), -1.265);
    EXPECT_THROW(min_k_prob({}, 0.2), InvalidInput);
}

// mu = E_p[log p] and sigma^2 = Var_p[log p] of a next-token distribution, as
// the engine computes them (0 log 0 = 0).
void moments(const std::vector<double>& p, double* mu, double* var) {
    double m = 0.0, m2 = 0.0;
    for (double pi : p) {
        if (pi > 0.0) {
            m += pi * std::log(pi);
            m2 += pi * std::log(pi) * std::log(pi);
        }
    }
    *mu = m;
    *var = m2 - m * m;
}

TEST(MinKPlusPlus, ThreeTokenVocabulary) {
    // p = (1/2, 1/4, 1/4): log p = (-ln2, -2 ln2, -2 ln2);
    // mu = 1/2 (-ln2) + 1/2 (-2 ln2) = -1.5 ln2;
    // E[(log p)^2] = 1/2 ln2^2 + 1/2 4 ln2^2 = 2.5 ln2^2, var = 2.5 - 2.25 = 0.25 ln2^2,
    // sigma = 0.5 ln2. Token 0 scores (-ln2 + 1.5 ln2) / (0.5 ln2) = +1,
    // tokens 1, 2 score (-2 ln2 + 1.5 ln2) / (0.5 ln2) = -1.
    // Uniform p = (1/3, 1/3, 1/3): sigma = 0 and log q = mu, score 0.
    const double ln2 = std::log(2.0);
    const std::vector<std::vector<double>> dists = {
        {0.5, 0.25, 0.25}, {1.0 / 3, 1.0 / 3, 1.0 / 3}, {0.25, 0.5, 0.25},
        {0.5, 0.25, 0.25}, {0.5, 0.25, 0.25}};
    const std::vector<int> ref = {1, 0, 1, 0, 2};  // scores -1, 0, +1, +1, -1
    std::vector<double> lp, mu, var;
    for (std::size_t j = 0; j < ref.size(); ++j) {
        double m, v;
        moments(dists[j], &m, &v);
        lp.push_back(std::log(dists[j][ref[j]]));
        mu.push_back(m);
        var.push_back(v);
    }
    EXPECT_NEAR(mu[0], -1.5 * ln2, 1e-15);
    EXPECT_NEAR(var[0], 0.25 * ln2 * ln2, 1e-15);

    std::vector<double> s = min_k_plus_plus_scores(lp, mu, var);
    ASSERT_EQ(s.size(), 5u);
    EXPECT_NEAR(s[0], -1.0, 1e-12);
    EXPECT_NEAR(s[1], 0.0, 1e-7);  // sigma is rounding noise here, numerator exactly 0
    EXPECT_NEAR(s[2], 1.0, 1e-12);
    EXPECT_NEAR(s[3], 1.0, 1e-12);
    EXPECT_NEAR(s[4], -1.0, 1e-12);
    // k = 0.2 -> 1 lowest = -1; k = 0.4 -> mean(-1, -1) = -1;
    // k = 0.6 -> int(3.0000000000000004) = 3 -> mean(-1, -1, 0) = -2/3; k = 1 -> 0.
    EXPECT_NEAR(min_k_plus_plus(lp, mu, var), -1.0, 1e-12);
    EXPECT_NEAR(min_k_plus_plus(lp, mu, var, 0.4), -1.0, 1e-12);
    EXPECT_NEAR(min_k_plus_plus(lp, mu, var, 0.6), -2.0 / 3.0, 1e-7);
    EXPECT_NEAR(min_k_plus_plus(lp, mu, var, 1.0), 0.0, 1e-7);
}

TEST(MinKPlusPlus, DegenerateDistribution) {
    // One-hot p_j (sigma = 0): the certain token scores 0, any other -inf.
    std::vector<double> s = min_k_plus_plus_scores({0.0, -kInf}, {0.0, 0.0}, {0.0, 0.0});
    EXPECT_EQ(s[0], 0.0);
    EXPECT_EQ(s[1], -kInf);
    // A variance a hair below 0 from rounding is read as 0.
    EXPECT_EQ(min_k_plus_plus_scores({-1.0}, {-1.0}, {-1e-12})[0], 0.0);
}

TEST(MinKPlusPlus, BadArguments) {
    EXPECT_THROW(min_k_plus_plus_scores({-1.0, -2.0}, {-1.0}, {1.0, 1.0}), InvalidInput);
    EXPECT_THROW(min_k_plus_plus_scores({-1.0}, {-1.0}, {1.0, 1.0}), InvalidInput);
    EXPECT_THROW(min_k_plus_plus_scores({-1.0}, {-1.0}, {-0.5}), InvalidInput);
    EXPECT_THROW(min_k_plus_plus_scores({-1.0}, {std::nan("")}, {1.0}), InvalidInput);
    EXPECT_THROW(min_k_plus_plus({-1.0}, {-1.0}, {1.0}, 0.0), InvalidInput);
}

TEST(Zlib, CompressedSizeMatchesPython) {
    // /usr/bin/python3 -c "import zlib;print(len(zlib.compress(b'the cat sat on the mat;
    //   the cat sat on the mat; the dog sat on the log.')))"  -> 41
    const std::string text = "the cat sat on the mat; the cat sat on the mat; the dog sat on the log.";
    EXPECT_EQ(zlib_compressed_size(text), 41u);
    // python3 -c "import zlib;print(len(zlib.compress(b'')))"  -> 8 (header + empty block + adler)
    EXPECT_EQ(zlib_compressed_size(""), 8u);
    // python3 -c "import zlib;print(len(zlib.compress('caf\u00e9 na\u00efve r\u00e9sum\u00e9'.encode())))" -> 30
    EXPECT_EQ(zlib_compressed_size("caf\u00e9 na\u00efve r\u00e9sum\u00e9"), 30u);
    EXPECT_THROW(zlib_compressed_size("x", 10), InvalidInput);
}

TEST(Zlib, RatioIsMeanNllOverCompressedBytes) {
    const std::string text = "the cat sat on the mat; the cat sat on the mat; the dog sat on the log.";
    // mean NLL 2 (log q = -1, -2, -3) over 41 bytes.
    EXPECT_DOUBLE_EQ(zlib_ratio(mean_nll({-1.0, -2.0, -3.0}), text), 2.0 / 41.0);
    EXPECT_THROW(zlib_ratio(std::nan(""), text), InvalidInput);
}

// ---- compute_sample_metrics ----------------------------------------------

SampleInputs base_inputs() {
    SampleInputs in;
    in.tokens.match = {1, 1, 0, 1};
    in.tokens.log_prob = {std::log(0.9), std::log(0.8), std::log(0.1), std::log(0.7)};
    return in;
}

TEST(SampleMetrics, TeacherForcedOnly) {
    SampleMetrics m = compute_sample_metrics(base_inputs());
    EXPECT_EQ(m.prefix.n_pre, 2);
    EXPECT_EQ(m.prefix.length, 4);
    EXPECT_FALSE(m.prefix.exact);
    double sum = std::log(0.9 * 0.8 * 0.1 * 0.7);
    EXPECT_NEAR(m.log_p_full_t1, sum, 1e-14);
    // E[N_pre] at T = 1: 0.9 + 0.72 + 0.072 + 0.0504.
    EXPECT_NEAR(m.expected_n_pre_t1, 0.9 + 0.72 + 0.072 + 0.0504, 1e-14);
    EXPECT_NEAR(m.nll_mean, -sum / 4.0, 1e-14);
    EXPECT_NEAR(m.perplexity, std::exp(-sum / 4.0), 1e-12);
    EXPECT_NEAR(m.min_k_prob, std::log(0.1), 1e-15);  // int(4 * 0.2) = 0 -> 1 lowest
    EXPECT_TRUE(std::isnan(m.min_k_plus_plus));
    EXPECT_TRUE(std::isnan(m.zlib_ratio));
    EXPECT_TRUE(std::isnan(m.mean_entropy));
    EXPECT_TRUE(std::isnan(m.log_p_z));
    EXPECT_TRUE(std::isnan(m.expected_n_pre));
    EXPECT_TRUE(std::isnan(m.log_p_extracted));
    EXPECT_FALSE(m.generation.has_value());
}

TEST(SampleMetrics, EverythingPresent) {
    SampleInputs in = base_inputs();
    in.tokens.entropy = {0.1, 0.2, 0.3, 0.4};
    in.tokens.mean_log_prob = {-0.5, -0.5, -0.5, -0.5};
    in.tokens.var_log_prob = {1.0, 1.0, 1.0, 1.0};
    in.tokens.sampling_log_prob = {std::log(0.5), std::log(0.5), std::log(0.5), std::log(0.5)};
    in.reference_tokens = {1, 2, 3, 4};
    in.reference_text = "caf\u00e9";
    in.generated = GeneratedOutput{{1, 2, 9, 4}, std::string("cafe"), {}, 0};
    SampleMetricsParams params;
    params.k_extractable = 2;
    params.n_tries = 10;
    SampleMetrics m = compute_sample_metrics(in, params);

    EXPECT_NEAR(m.mean_entropy, 0.25, 1e-15);
    // min-k%++ scores (log q_j + 0.5) / 1; lowest one is log(0.1) + 0.5.
    EXPECT_NEAR(m.min_k_plus_plus, std::log(0.1) + 0.5, 1e-14);
    // zlib: mean NLL over len(zlib.compress("café".encode())).
    EXPECT_NEAR(m.zlib_ratio, m.nll_mean / static_cast<double>(zlib_compressed_size("caf\u00e9")),
                1e-15);
    // p^T = 1/2 at every position: p_z = 1/16, E = 1/2 + 1/4 + 1/8 + 1/16 = 15/16.
    EXPECT_NEAR(m.log_p_z, std::log(1.0 / 16.0), 1e-14);
    EXPECT_NEAR(m.expected_n_pre, 15.0 / 16.0, 1e-15);
    EXPECT_NEAR(std::exp(m.log_p_extracted), 1.0 - std::pow(15.0 / 16.0, 10), 1e-14);
    EXPECT_NEAR(std::exp(m.log_tries), std::log(0.5) / std::log(15.0 / 16.0), 1e-10);

    ASSERT_TRUE(m.generation.has_value());
    const GenerationMetrics& g = *m.generation;
    EXPECT_EQ(g.n_pre_generated, 2);  // agrees with the teacher-forced n_pre
    EXPECT_FALSE(g.exact_match);
    EXPECT_DOUBLE_EQ(g.rouge1.f1, 0.75);    // 3 of 4 unigrams each way
    EXPECT_DOUBLE_EQ(g.rouge2.f1, 1.0 / 3.0);  // only 1-2 of 3 bigrams
    EXPECT_DOUBLE_EQ(g.rouge_l.f1, 0.75);
    EXPECT_EQ(g.levenshtein_tokens, 1u);
    EXPECT_DOUBLE_EQ(g.levenshtein_similarity_tokens, 0.75);
    ASSERT_TRUE(g.levenshtein_chars.has_value());
    EXPECT_EQ(*g.levenshtein_chars, 1u);  // code points
    EXPECT_DOUBLE_EQ(*g.levenshtein_similarity_chars, 0.75);
    EXPECT_DOUBLE_EQ(g.pythia_score, 0.75);
    EXPECT_EQ(g.k_extractable, std::optional<bool>(true));
}

TEST(SampleMetrics, GenerationWithoutTextOrLongEnoughReference) {
    SampleInputs in = base_inputs();
    in.reference_tokens = {1, 2, 3, 4};
    in.generated = GeneratedOutput{{1, 2, 3, 4}, std::nullopt, {}, 0};
    SampleMetrics m = compute_sample_metrics(in);  // default k = 50 > L = 4
    ASSERT_TRUE(m.generation.has_value());
    EXPECT_TRUE(m.generation->exact_match);
    EXPECT_FALSE(m.generation->levenshtein_chars.has_value());
    EXPECT_FALSE(m.generation->k_extractable.has_value());
}

TEST(SampleMetrics, InconsistentInputs) {
    SampleInputs in = base_inputs();
    in.tokens.log_prob.pop_back();
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    in = base_inputs();
    in.tokens.entropy = {0.1};
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    in = base_inputs();
    in.tokens.mean_log_prob = {-1, -1, -1, -1};  // variance missing
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    in = base_inputs();
    in.generated = GeneratedOutput{{1, 2}, std::nullopt, {}, 0};  // no reference tokens
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    in = base_inputs();
    in.reference_tokens = {1, 2, 3};
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    in = base_inputs();
    in.tokens.match.clear();
    in.tokens.log_prob.clear();
    EXPECT_THROW(compute_sample_metrics(in), InvalidInput);

    SampleMetricsParams bad;
    bad.min_k = 0.0;
    EXPECT_THROW(compute_sample_metrics(base_inputs(), bad), InvalidInput);
    bad = {};
    bad.k_extractable = 0;
    EXPECT_THROW(compute_sample_metrics(base_inputs(), bad), InvalidInput);
    bad = {};
    bad.target_probability = 2.0;
    EXPECT_THROW(compute_sample_metrics(base_inputs(), bad), InvalidInput);
}

}  // namespace
}  // namespace memskew
