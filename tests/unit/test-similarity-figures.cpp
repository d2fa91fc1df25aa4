// A run's similarity figures from its vectors (compute_similarity_figures)
// and the analysis section over them (M10 and the M12 triage). Every expected
// number is worked out by hand in the comments.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>

#include "memskew/analysis.h"
#include "memskew/error.h"
#include "memskew/similarity-figures.h"
#include "test-util.h"

using namespace memskew;

namespace {

std::vector<int32_t> iota_tokens(int from, int n) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) t.push_back(from + i);
    return t;
}

// Four samples (sample_index 10, 20, 30, 40) in two dimensions.
//   prompts: p0 = p1 = (1, 0), p2 = p3 = (0, 1)
//   full:    f0 = (1, 0), f1 = f2 = (0, 1), f3 = (0.6, 0.8)
// Token documents: d0 = d1 = 1..20, d3 = d0 with its last token changed
// (5-gram Jaccard 15/17 = 0.88 with d0), d2 = 100..119 (nothing shared).
RunVectors four_samples() {
    RunVectors v;
    v.run_id = 3;
    v.sample_id = {"a", "b", "c", "d"};
    v.sample_index = {10, 20, 30, 40};
    v.dim = 2;
    v.prompt = {1, 0, 1, 0, 0, 1, 0, 1};
    v.full = {1, 0, 0, 1, 0, 1, 0.6f, 0.8f};
    std::vector<int32_t> d3 = iota_tokens(1, 20);
    d3.back() = 999;
    for (const auto& d : {iota_tokens(1, 20), iota_tokens(1, 20), iota_tokens(100, 20), d3})
        v.minhash.push_back(minhash_signature(d));
    v.prompt_hash = {1, 1, 2, 3};
    v.reference_hash = {5, 6, 7, 8};
    return v;
}

}  // namespace

TEST(SimilarityFigures, HandWorkedExample) {
    SimilarityParams p;
    p.knn.k = 1;
    const SimilarityFigures f = compute_similarity_figures(four_samples(), p);
    const RunSimilarity& r = f.run;
    // S_input: of the 6 pairs only (0,1) and (2,3) have cosine 1: 2 / 6.
    EXPECT_NEAR(r.s_input, 1.0 / 3, 1e-6);
    // S_full: (0,3) 0.6, (1,2) 1, (1,3) 0.8, (2,3) 0.8, the rest 0: 3.2 / 6.
    EXPECT_NEAR(r.s_full, 3.2 / 6, 1e-6);
    EXPECT_NEAR(r.delta_s, 3.2 / 6 - 1.0 / 3, 1e-6);
    EXPECT_EQ(r.k, 1);
    EXPECT_EQ(r.knn_method, "exact");
    EXPECT_EQ(r.embed_dim, 2);
    ASSERT_EQ(f.samples.size(), 4u);
    // Nearest prompt neighbours: a<->b, c<->d, similarity 1.
    EXPECT_EQ(f.samples[0].neighbours_prompt, std::vector<int32_t>{20});
    EXPECT_EQ(f.samples[3].neighbours_prompt, std::vector<int32_t>{30});
    // Nearest full neighbours: a->d (0.6), b->c (1), c->b (1), d->b (0.8; c ties at 0.8, the smaller row wins).
    EXPECT_EQ(f.samples[0].neighbours_full, std::vector<int32_t>{40});
    EXPECT_EQ(f.samples[3].neighbours_full, std::vector<int32_t>{20});
    const double want_delta[] = {0.6 - 1, 0, 0, 0.8 - 1};
    for (int i = 0; i < 4; ++i) {
        EXPECT_NEAR(f.samples[static_cast<std::size_t>(i)].knn_sim_prompt, 1.0, 1e-6);
        EXPECT_NEAR(f.samples[static_cast<std::size_t>(i)].knn_sim_delta, want_delta[i], 1e-6) << i;
    }
    // Near-duplicates: {a, b, d} under a's sample_index, c alone.
    EXPECT_EQ(f.samples[0].cluster, 10);
    EXPECT_EQ(f.samples[1].cluster, 10);
    EXPECT_EQ(f.samples[3].cluster, 10);
    EXPECT_EQ(f.samples[0].cluster_size, 3);
    EXPECT_EQ(f.samples[2].cluster, 30);
    EXPECT_EQ(f.samples[2].cluster_size, 1);
    EXPECT_EQ(r.n_clusters, 1);
    EXPECT_EQ(r.n_clustered_samples, 3);
    EXPECT_EQ(r.largest_cluster, 3);
    // Exact duplicates: a and b share a prompt hash; no reference is shared.
    EXPECT_EQ(f.samples[0].prompt_copies, 2);
    EXPECT_EQ(f.samples[2].prompt_copies, 1);
    EXPECT_EQ(r.n_duplicate_prompts, 2);
    EXPECT_EQ(r.n_duplicate_references, 0);
    EXPECT_EQ(r.near_duplicate_params["permutations"], 128);
}

TEST(SimilarityFigures, ApproximateBeyondTheExactLimit) {
    SimilarityParams p;
    p.knn.k = 1;
    p.knn.exact_limit = 2;
    const SimilarityFigures f = compute_similarity_figures(four_samples(), p);
    EXPECT_EQ(f.run.knn_method, "approximate");
    // Four points: the graph search is exhaustive, recall 1.
    EXPECT_NEAR(f.run.knn_recall, 1.0, 1e-12);
    EXPECT_EQ(f.samples[1].neighbours_full, std::vector<int32_t>{30});
}

TEST(SimilarityFigures, WithoutEmbeddingsOnlyDuplicates) {
    RunVectors v = four_samples();
    v.dim = 0;
    v.prompt.clear();
    v.full.clear();
    const SimilarityFigures f = compute_similarity_figures(v);
    EXPECT_TRUE(std::isnan(f.run.s_input));
    EXPECT_TRUE(f.run.knn_method.empty());
    EXPECT_TRUE(std::isnan(f.samples[0].knn_sim_delta));
    EXPECT_TRUE(f.samples[0].neighbours_full.empty());
    EXPECT_EQ(f.samples[1].cluster_size, 3);
}

TEST(SimilarityFigures, NoVectorsIsAnError) {
    RunVectors v;
    v.run_id = 9;
    test::expect_error<InvalidInput>([&] { compute_similarity_figures(v); }, {"run 9 holds no sample vectors"},
                                     "--keep-embeddings");
}

// ---- the analysis section ----------------------------------------------------------

namespace {

// Six samples: n_pre 10, 0, 5, 0, 8, 1 (L = 10: sample 0 verbatim).
RunInput six_samples(bool with_similarity, double delta_sign = +1) {
    RunInput in;
    in.info.run_id = 1;
    const int64_t n_pre[] = {10, 0, 5, 0, 8, 1};
    const double expected[] = {9, 1, 0.5, 0.1, 7, 0.2};
    const double loss[] = {3, 1, 2, 0.5, 4, 5};
    auto& c = in.columns;
    c.metric_names = {"expected_n_pre", "loss"};
    c.metric_values.assign(2, {});
    for (int i = 0; i < 6; ++i) {
        c.sample_id.push_back(fmt::format("s{}", i));
        c.sample_index.push_back(i);
        c.prompt_tokens.push_back(3);
        c.reference_tokens.push_back(10);
        c.truncated.push_back(0);
        c.n_pre.push_back(n_pre[i]);
        c.length.push_back(10);
        c.metric_values[0].push_back(expected[i]);
        c.metric_values[1].push_back(loss[i]);
    }
    if (with_similarity) {
        RunSimilarity r;
        r.run_id = 1;
        r.n_samples = 6;
        r.embed_dim = 8;
        r.s_input = 0.5;
        r.s_full = 0.4;
        r.delta_s = -0.1;
        r.k = 2;
        r.knn_method = "exact";
        in.similarity = r;
        for (int i = 0; i < 6; ++i) {
            SampleSimilarity s;
            s.sample_id = c.sample_id[static_cast<std::size_t>(i)];
            s.sample_index = i;
            s.knn_sim_prompt = 0.5;
            // ΔS_i in the order of n_pre (or against it): Spearman rho = +-1 up to the tie at n_pre 0.
            s.knn_sim_delta = delta_sign * static_cast<double>(n_pre[i]) / 10 + 0.01 * i;
            s.knn_sim_full = 0.5 + s.knn_sim_delta;
            s.cluster = i < 2 ? 0 : i;  // s0 and s1 are near-duplicates
            s.cluster_size = i < 2 ? 2 : 1;
            in.sample_similarity.push_back(s);
        }
    }
    return in;
}

AnalyzeParams small_params() {
    AnalyzeParams p;
    p.top_k = 2;
    p.n_bootstrap = 0;
    p.n_permutations = 0;
    p.predictors = false;
    return p;
}

const TriageSignal& signal(const AnalysisResult& r, const std::string& name) {
    for (const auto& s : r.similarity.triage.signals)
        if (s.signal == name) return s;
    throw std::runtime_error("no signal " + name);
}

}  // namespace

TEST(SimilaritySection, TriageByHand) {
    const AnalysisResult r = analyze_runs({six_samples(false)}, 0, small_params());
    const auto& t = r.similarity.triage;
    // k: top_k = 2, ceil(1% of 6) = ceil(5% of 6) = 1 -> {1, 2}.
    ASSERT_EQ(t.ks, (std::vector<int64_t>{1, 2}));
    // True tails: k = 1 -> n_pre >= 10 {s0}; k = 2 -> n_pre >= 8 {s0, s4}.
    EXPECT_EQ(t.tail_thresholds, (std::vector<int64_t>{10, 8}));
    EXPECT_EQ(t.tail_sizes, (std::vector<int64_t>{1, 2}));
    EXPECT_NEAR(t.random_precision[1], 2.0 / 6, 1e-12);
    // expected_n_pre ranks s0 (9), s4 (7) first: both tails found.
    const auto& e = signal(r, "expected_n_pre");
    EXPECT_EQ(e.direction, "higher");
    EXPECT_EQ(e.points[0].hits, 1);
    EXPECT_EQ(e.points[1].hits, 2);
    EXPECT_DOUBLE_EQ(e.points[1].precision, 1.0);
    EXPECT_DOUBLE_EQ(e.points[1].recall, 1.0);
    // loss (lower is riskier) ranks s3 (0.5), s1 (1) first: no hit.
    const auto& l = signal(r, "loss");
    EXPECT_EQ(l.direction, "lower");
    EXPECT_EQ(l.points[1].hits, 0);
    EXPECT_DOUBLE_EQ(l.points[1].recall, 0.0);
    // Without figures the M10 part names the probe options.
    EXPECT_THAT(r.similarity.skipped, ::testing::HasSubstr("--embed-model"));
    const auto j = to_json(r);
    EXPECT_THAT(j["similarity"]["skipped"].get<std::string>(), ::testing::HasSubstr("has no similarity figures"));
    EXPECT_EQ(j["similarity"]["triage"]["signals"].size(), t.signals.size());
}

TEST(SimilaritySection, ClaimBucketsAndClusters) {
    const AnalysisResult r = analyze_runs({six_samples(true, +1)}, 0, small_params());
    const auto& s = r.similarity;
    EXPECT_TRUE(s.skipped.empty()) << s.skipped;
    ASSERT_TRUE(s.run);
    EXPECT_EQ(s.checkpoints.size(), 1u);
    // ΔS_i follows n_pre (ties at n_pre 0 broken by +0.01 i): rho = 1 - 6 sum d^2 / (n (n^2 - 1)) with the
    // average rank 1.5 for the two zeros: d = 0, +-0.5, ... gives rho = 0.986 (> 0, p < 0.05).
    const auto& delta = s.correlations[2];
    EXPECT_EQ(delta.figure, "knn_sim_delta");
    EXPECT_GT(delta.spearman.statistic, 0.95);
    EXPECT_EQ(s.claim, "holds");
    // Quintiles of 6 samples by rank: sizes 1, 1, 1, 1, 2 (boundaries q * 6 / 5).
    ASSERT_EQ(s.by_delta.size(), 5u);
    EXPECT_EQ(s.by_delta[4].n, 2);
    // The top group holds s4 (8) and s0 (10): mean 9, 1 verbatim.
    EXPECT_DOUBLE_EQ(s.by_delta[4].mean_n_pre, 9.0);
    EXPECT_EQ(s.by_delta[4].n_exact, 1);
    EXPECT_EQ(s.by_delta[0].max_n_pre, 0);
    // Cluster sizes: {s0, s1} of size 2 (mean n_pre 5), four singletons.
    ASSERT_EQ(s.by_cluster_size.size(), 2u);
    EXPECT_EQ(s.by_cluster_size[1].label, "2");
    EXPECT_DOUBLE_EQ(s.by_cluster_size[1].mean_n_pre, 5.0);
    ASSERT_EQ(s.largest_clusters.size(), 1u);
    EXPECT_EQ(s.largest_clusters[0].size, 2);
    EXPECT_EQ(s.largest_clusters[0].members[0].sample_id, "s0");  // by n_pre
    // The per-sample ΔS reaches the report's scatter in column order.
    ASSERT_EQ(s.sample_delta.size(), 6u);
    EXPECT_NEAR(s.sample_delta[4], 0.84, 1e-12);
    // The claim is a finding.
    EXPECT_THAT(r.findings, ::testing::Contains(::testing::HasSubstr("memorized less")));

    const AnalysisResult opposite = analyze_runs({six_samples(true, -1)}, 0, small_params());
    EXPECT_EQ(opposite.similarity.claim, "does not hold");
}

TEST(SimilaritySection, NoEmbeddingsNamesTheOption) {
    RunInput in = six_samples(true);
    in.similarity->embed_dim = 0;
    for (auto& s : in.sample_similarity) s.knn_sim_prompt = s.knn_sim_full = s.knn_sim_delta = NAN;
    const AnalysisResult r = analyze_runs({in}, 0, small_params());
    EXPECT_THAT(r.similarity.skipped, ::testing::HasSubstr("--no-embeddings"));
    EXPECT_TRUE(r.similarity.claim.empty());
    EXPECT_TRUE(r.similarity.by_delta.empty());
    // The duplicate figures are still there.
    EXPECT_EQ(r.similarity.largest_clusters.size(), 1u);
}
