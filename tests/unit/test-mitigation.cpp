// METHOD M12 on a run: the guarded and unguarded output metrics from one
// sample's inputs to the store's columns, and the analysis section over a
// run's columns (values worked out by hand in the comments).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "memskew/analysis.h"
#include "memskew/metrics.h"
#include "memskew/report.h"
#include "memskew/store.h"

using namespace memskew;

TEST(Mitigation, GeneratedAndGuardedMetricsReachTheColumns) {
    SampleInputs in;
    in.reference_tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    in.tokens.match.assign(10, 1);
    in.tokens.log_prob.assign(10, -0.1);
    // Unguarded: the reference verbatim, log-probs -0.5 and -1.5 alternating (mean -1).
    GeneratedOutput gen;
    gen.tokens = in.reference_tokens;
    for (int i = 0; i < 10; ++i) gen.logprobs.push_back(i % 2 ? -1.5f : -0.5f);
    in.generated = gen;
    // Guarded: the guard replaced token 4 (5 -> 50) and token 8 (9 -> 90):
    // prefix 4, longest common substring 5..8 = {6, 7, 8} -> 3 tokens; 2
    // substitutions in 10: normalised edit distance 0.2 > 0.1, not approximate.
    GeneratedOutput guarded;
    guarded.tokens = {1, 2, 3, 4, 50, 6, 7, 8, 90, 10};
    guarded.logprobs.assign(10, -2.0f);
    guarded.n_blocked = 2;
    in.guarded = guarded;
    const SampleMetrics m = compute_sample_metrics(in);
    const MetricsRow r = to_metrics_row(m);
    EXPECT_EQ(r.n_pre_generated, 10);
    EXPECT_EQ(r.gen_lcs, 10);
    EXPECT_EQ(r.gen_approx, true);
    EXPECT_NEAR(*r.gen_mean_logprob, -1.0, 1e-12);
    EXPECT_EQ(r.guard_n_pre, 4);
    EXPECT_EQ(r.guard_exact, false);
    EXPECT_EQ(r.guard_lcs, 4);  // {1, 2, 3, 4} is longer than {6, 7, 8}
    EXPECT_EQ(r.guard_approx, false);
    EXPECT_NEAR(*r.guard_lev_sim_tokens, 0.8, 1e-12);
    EXPECT_EQ(r.guard_blocked, 2);
    EXPECT_NEAR(*r.guard_mean_logprob, -2.0, 1e-12);
    // One substitution in 10 is within 10%: approximate.
    in.guarded->tokens = {1, 2, 3, 4, 50, 6, 7, 8, 9, 10};
    EXPECT_EQ(to_metrics_row(compute_sample_metrics(in)).guard_approx, true);
    // Without generation the columns stay NULL.
    in.generated.reset();
    in.guarded.reset();
    const MetricsRow none = to_metrics_row(compute_sample_metrics(in));
    EXPECT_FALSE(none.gen_lcs);
    EXPECT_FALSE(none.guard_n_pre);
}

namespace {

// Four samples of L = 10: unguarded output n_pre 10, 10, 2, 0 (two verbatim);
// guarded 3, 4, 2, 0 (none verbatim), 5 blocked steps in all.
RunInput guarded_run() {
    RunInput in;
    in.info.run_id = 1;
    in.info.spec.options = {{"guard_n", 10}, {"training", {{"goldfish_k", 4}, {"goldfish_h", 13}}}};
    auto& c = in.columns;
    c.metric_names = {"n_pre_generated", "gen_approx",   "gen_mean_logprob",  "guard_n_pre",
                      "guard_approx",    "guard_blocked", "guard_mean_logprob"};
    c.metric_values = {{10, 10, 2, 0},    {1, 1, 0, 0}, {-0.5, -0.5, -1, -2}, {3, 4, 2, 0},
                       {0, 1, 0, 0},      {2, 2, 1, 0}, {-1, -1, -1.5, -2.5}};
    for (int i = 0; i < 4; ++i) {
        c.sample_id.push_back("s" + std::to_string(i));
        c.sample_index.push_back(i);
        c.prompt_tokens.push_back(2);
        c.reference_tokens.push_back(10);
        c.truncated.push_back(0);
        c.n_pre.push_back(c.metric_values[0][static_cast<std::size_t>(i)] > 5 ? 10 : 1);
        c.length.push_back(10);
    }
    return in;
}

}  // namespace

TEST(Mitigation, AnalysisSectionByHand) {
    AnalyzeParams p;
    p.n_bootstrap = 0;
    p.n_permutations = 0;
    p.predictors = false;
    const AnalysisResult r = analyze_runs({guarded_run()}, 0, p);
    const MitigationSection& m = r.mitigation;
    EXPECT_THAT(m.applied, ::testing::ElementsAre("Goldfish loss k = 4, h = 13 (training)", "decoding guard n = 10 (probe)"));
    EXPECT_TRUE(m.skipped.empty());
    // Unguarded: mean (10 + 10 + 2 + 0) / 4 = 5.5, max 10, 2 verbatim, 2 of 4 approximate, log-prob -1.
    EXPECT_DOUBLE_EQ(m.greedy.mean_n_pre, 5.5);
    EXPECT_DOUBLE_EQ(m.greedy.max_n_pre, 10);
    EXPECT_EQ(m.greedy.n_exact, 2);
    EXPECT_DOUBLE_EQ(m.greedy.approx_share, 0.5);
    EXPECT_DOUBLE_EQ(m.greedy.mean_logprob, -1.0);
    ASSERT_TRUE(m.guarded);
    // Guarded: mean 9 / 4 = 2.25, max 4, none verbatim, 1 of 4 approximate, log-prob -1.5.
    EXPECT_DOUBLE_EQ(m.guarded->mean_n_pre, 2.25);
    EXPECT_DOUBLE_EQ(m.guarded->max_n_pre, 4);
    EXPECT_EQ(m.guarded->n_exact, 0);
    EXPECT_DOUBLE_EQ(m.guarded->approx_share, 0.25);
    EXPECT_DOUBLE_EQ(m.guarded->mean_logprob, -1.5);
    EXPECT_EQ(m.blocked_steps, 5);
    ASSERT_TRUE(m.guard_test);
    EXPECT_EQ(m.guard_test->n_shared, 4);
    // Differences guarded - unguarded: -7, -6, 0, 0 -> mean -3.25.
    EXPECT_DOUBLE_EQ(m.guard_test->mean_difference, -3.25);
    EXPECT_THAT(r.findings, ::testing::Contains(::testing::HasSubstr("max n_pre from 10 to 4")));
    const auto j = to_json(r);
    EXPECT_EQ(j["mitigation"]["guarded"]["n_exact"], 0);
    EXPECT_EQ(j["mitigation"]["blocked_steps"], 5);
    // The report says what was applied at the top and sets the outputs side by side.
    const std::string page = render_report(r, ReportInputs{});
    EXPECT_NE(page.find("id=\"mitigation-applied\""), std::string::npos);
    EXPECT_NE(page.find("Goldfish loss k = 4, h = 13"), std::string::npos);
    EXPECT_NE(page.find("greedy with the guard"), std::string::npos);
}

TEST(Mitigation, NoGenerationSaysSo) {
    RunInput in = guarded_run();
    in.columns.metric_names.clear();
    in.columns.metric_values.clear();
    in.info.spec.options = nlohmann::json::object();
    AnalyzeParams p;
    p.n_bootstrap = 0;
    p.n_permutations = 0;
    const AnalysisResult r = analyze_runs({in}, 0, p);
    EXPECT_TRUE(r.mitigation.applied.empty());
    EXPECT_THAT(r.mitigation.skipped, ::testing::HasSubstr("--generate"));
    EXPECT_EQ(render_report(r, ReportInputs{}).find("id=\"table-mitigation\""), std::string::npos);
}
