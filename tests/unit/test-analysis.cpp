// `memskew analyze` (include/memskew/analysis.h): small stores built with the
// store API, analysed end to end, checked against hand-computed values.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "memskew/analysis.h"
#include "memskew/pipeline.h"
#include "memskew/error.h"
#include "memskew/store.h"
#include "store/store-impl.h"
#include "test-store-util.h"
#include "test-util.h"

namespace {

using namespace memskew;

std::string tmp_db(const std::string& name = "run.db") { return test::temp_dir() + "/" + name; }

RunSpec spec(std::optional<int64_t> step = std::nullopt, std::optional<double> loss = std::nullopt) {
    RunSpec s;
    s.model_path = "/models/m.gguf";
    s.model_fingerprint = "fp";
    s.checkpoint_step = step;
    s.train_loss = loss;
    s.dataset_path = "/data/d.jsonl";
    s.dataset_hash = "h";
    return s;
}

// A sample whose model argmax follows `argmax` against reference `ref`; n_pre,
// match and exact are derived from them, as the probe would.
SampleRecord sample(const std::string& id, int64_t index, const std::string& prompt, std::vector<int32_t> ref,
                    std::vector<int32_t> argmax) {
    SampleRecord r;
    r.sample_id = id;
    r.sample_index = index;
    r.prompt_tokens = 4;
    r.reference_tokens = static_cast<int64_t>(ref.size());
    r.prompt_text = prompt;
    StoredTokens t;
    int64_t n_pre = -1;
    for (std::size_t j = 0; j < ref.size(); ++j) {
        t.match.push_back(argmax[j] == ref[j] ? 1 : 0);
        if (n_pre < 0 && argmax[j] != ref[j]) n_pre = static_cast<int64_t>(j);
        t.logprob.push_back(-0.5f);
        t.rank.push_back(argmax[j] == ref[j] ? 1 : 2);
        t.entropy.push_back(1.0f);
    }
    const int64_t L = static_cast<int64_t>(ref.size());
    if (n_pre < 0) n_pre = L;
    t.reference = std::move(ref);
    t.argmax = std::move(argmax);
    r.tokens = t;
    r.metrics.n_pre = n_pre;
    r.metrics.length = L;
    r.metrics.exact = n_pre == L;
    r.metrics.n_pre_frac = double(n_pre) / L;
    return r;
}

// Sample with L tokens of which the first n_pre are reproduced.
SampleRecord sample_n(const std::string& id, int64_t index, int64_t n_pre, int64_t L, int32_t base) {
    std::vector<int32_t> ref, arg;
    for (int64_t j = 0; j < L; ++j) {
        ref.push_back(base + static_cast<int32_t>(j));
        arg.push_back(j < n_pre ? ref.back() : ref.back() + 1);
    }
    return sample(id, index, "prompt " + id, ref, arg);
}

// The 10-sample store: L = 10, n_pre = 0 0 1 1 2 2 3 5 8 10.
const std::vector<int64_t> kTen{0, 0, 1, 1, 2, 2, 3, 5, 8, 10};

std::string ten_sample_store() {
    const std::string path = tmp_db("ten.db");
    auto run = open_run(path, spec(), ResumeMode::kFresh);
    for (std::size_t i = 0; i < kTen.size(); ++i) {
        SampleRecord r = sample_n(fmt::format("s{}", i), static_cast<int64_t>(i), kTen[i], 10, 1000 * int(i));
        // loss falls as n_pre grows (Spearman -1, ties in both at the same places);
        // log_p_z rises with n_pre and is -inf where nothing is reproduced (+1).
        r.metrics.loss = 5.0 - 0.1 * kTen[i];
        r.metrics.log_p_z = kTen[i] == 0 ? -std::numeric_limits<double>::infinity() : -(10.0 - kTen[i]);
        run.writer.add(r);
    }
    run.writer.finish();
    return path;
}

const CorrelationEntry* find_corr(const AnalysisResult& r, const std::string& name) {
    for (const auto& e : r.correlations.entries)
        if (e.metric == name) return &e;
    return nullptr;
}

TEST(Analysis, TenSampleStoreMatchesHandComputedValues) {
    const AnalysisResult r = analyze_store(ten_sample_store());
    EXPECT_EQ(r.schema_version, kAnalysisSchemaVersion);
    EXPECT_EQ(r.n_samples, 10);
    const auto& d = r.distribution;
    ASSERT_TRUE(d.skipped.empty());
    const auto& a = d.summary.absolute;
    // Sum 0+0+1+1+2+2+3+5+8+10 = 32 -> mean 3.2; sorted middle pair (2, 2) -> median 2.
    EXPECT_EQ(a.count, 10u);
    EXPECT_DOUBLE_EQ(a.mean, 3.2);
    EXPECT_DOUBLE_EQ(a.median, 2.0);
    EXPECT_DOUBLE_EQ(a.max, 10.0);
    EXPECT_EQ(d.total_memorized_tokens, 32);
    // Top 1% of 10 samples = ceil(0.1) = 1 sample holding 10 of 32 tokens.
    EXPECT_DOUBLE_EQ(a.top_share, 10.0 / 32.0);
    ASSERT_FALSE(d.top.empty());
    EXPECT_EQ(d.top[0].sample_id, "s9");
    EXPECT_EQ(d.top[1].sample_id, "s8");
    // >= 5: {5, 8, 10}; >= 10: {10}; >= 20, >= 50: none; exact: s9 only.
    ASSERT_EQ(d.summary.at_least.size(), 4u);
    EXPECT_EQ(d.summary.at_least[0].count, 3u);
    EXPECT_EQ(d.summary.at_least[1].count, 1u);
    EXPECT_EQ(d.summary.at_least[2].count, 0u);
    EXPECT_EQ(d.summary.at_least[3].count, 0u);
    EXPECT_EQ(d.summary.n_exact, 1u);
    EXPECT_DOUBLE_EQ(d.summary.normalized.mean, 0.32);
    // p90 (numpy linear): h = 9 * 0.9 = 8.1 -> 8 + 0.1 * (10 - 8) = 8.2.
    EXPECT_NEAR(a.quantile_values[0], 8.2, 1e-12);

    // M6, M = 10. P(miss top-1, z = 5) = 5/10; P(miss top-5, z = 5) =
    // 5/10 * 4/9 * 3/8 * 2/7 * 1/6 = 1/252.
    bool saw1 = false, saw5 = false;
    for (const auto& p : r.sampling.p_miss) {
        if (p.fraction == 0.5 && p.k == 1) {
            EXPECT_EQ(p.subset_size, 5);
            EXPECT_NEAR(p.p_miss, 0.5, 1e-12);
            saw1 = true;
        }
        if (p.fraction == 0.5 && p.k == 5) {
            EXPECT_NEAR(p.p_miss, 1.0 / 252.0, 1e-12);
            saw5 = true;
        }
        // z = ceil(0.01 * 10) = 1 sample: misses the top one with 9/10.
        if (p.fraction == 0.01 && p.k == 1) {
            EXPECT_NEAR(p.p_miss, 0.9, 1e-12);
        }
    }
    EXPECT_TRUE(saw1 && saw5);
    // Top-1 with 95%: (10 - z)/10 <= 0.05 -> z = 10. Top-5: C(5,z)/C(10,z):
    // z = 3 -> 10/120 = 0.083, z = 4 -> 5/210 = 0.024 -> 4.
    for (const auto& n : r.sampling.needed) {
        if (n.k == 1 && n.delta == 0.05) {
            EXPECT_EQ(n.subset_size, 10);
        }
        if (n.k == 5 && n.delta == 0.05) {
            EXPECT_EQ(n.subset_size, 4);
        }
    }
    ASSERT_TRUE(r.sampling.bootstrap.has_value());
    EXPECT_DOUBLE_EQ(r.sampling.bootstrap->mean.estimate, 3.2);
    EXPECT_LE(r.sampling.bootstrap->mean.lower, 3.2);
    EXPECT_GE(r.sampling.bootstrap->mean.upper, 3.2);
    EXPECT_EQ(r.sampling.bootstrap->n_resamples, 1000u);

    // M7: position 1 has 10 at risk and 2 failures -> p_1 = 0.8. Geometric
    // MLE: sum n = 32, failures = 9 (all but the exact one) -> 32 / 41.
    ASSERT_TRUE(r.hazard.skipped.empty());
    ASSERT_EQ(r.hazard.positions.size(), 10u);
    EXPECT_EQ(r.hazard.positions[0].at_risk, 10);
    EXPECT_EQ(r.hazard.positions[0].failures, 2);
    EXPECT_DOUBLE_EQ(r.hazard.positions[0].recall, 0.8);
    ASSERT_TRUE(r.hazard.geometric.has_value());
    EXPECT_NEAR(r.hazard.geometric->params[0], 32.0 / 41.0, 1e-12);
    ASSERT_TRUE(r.hazard.linear_hazard.has_value());
    EXPECT_TRUE(r.hazard.independence_skipped.empty()) << r.hazard.independence_skipped;
    EXPECT_EQ(r.hazard.independence.size(), 9u);  // positions 2..10
    EXPECT_EQ(r.hazard.n_samples_with_tokens, 10);
    EXPECT_EQ(r.hazard.n_match_inconsistent, 0);

    // M8
    const CorrelationEntry* loss = find_corr(r, "loss");
    ASSERT_NE(loss, nullptr);
    EXPECT_EQ(loss->n_used, 10u);
    EXPECT_NEAR(loss->spearman.statistic, -1.0, 1e-12);
    const CorrelationEntry* lpz = find_corr(r, "log_p_z");
    ASSERT_NE(lpz, nullptr);
    EXPECT_NEAR(lpz->spearman.statistic, 1.0, 1e-12);  // -inf ranks lowest
    EXPECT_EQ(find_corr(r, "rouge1"), nullptr);         // never computed
    EXPECT_NE(std::find(r.correlations.skipped_columns.begin(), r.correlations.skipped_columns.end(), "rouge1"),
              r.correlations.skipped_columns.end());
    EXPECT_EQ(find_corr(r, "n_pre"), nullptr);

    // M9: every prompt unique -> every position is its own majority; all
    // divergences are the model's.
    ASSERT_TRUE(r.predictors.skipped.empty()) << r.predictors.skipped;
    EXPECT_EQ(r.predictors.n_prompts, 10);
    EXPECT_EQ(r.predictors.n_shared_prompts, 0);
    EXPECT_EQ(r.predictors.n_diverged, 9);
    EXPECT_EQ(r.predictors.divergence.model, 9);
    EXPECT_EQ(r.predictors.divergence.data_ambiguous, 0);
    EXPECT_EQ(r.predictors.n_positions, 100);
    EXPECT_EQ(r.predictors.n_majority, 100);
    EXPECT_EQ(r.predictors.n_model_agrees, 32);

    EXPECT_FALSE(r.trends.skipped.empty());  // one run
    ASSERT_FALSE(r.findings.empty());
    EXPECT_NE(r.findings[0].find("31.2%"), std::string::npos) << r.findings[0];
    EXPECT_NE(r.findings[0].find("1 samples are reproduced verbatim"), std::string::npos) << r.findings[0];

    // JSON and summary.
    const nlohmann::json j = to_json(r);
    EXPECT_EQ(j["schema_version"], 2);
    EXPECT_DOUBLE_EQ(j["distribution"]["n_pre"]["mean"].get<double>(), 3.2);
    EXPECT_TRUE(j["distribution"]["skipped"].is_null());
    EXPECT_EQ(j["distribution"]["at_least"][0]["count"], 3);
    EXPECT_EQ(j["hazard"]["positions"]["recall"].size(), 10u);
    EXPECT_TRUE(j["trends"]["skipped"].is_string());
    const std::string text = format_summary(r);
    EXPECT_EQ(text.rfind("memskew analyze:", 0), 0u);
    EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 40);
}

TEST(Analysis, SameSeedSameDocument) {
    const std::string path = ten_sample_store();
    AnalyzeParams p;
    p.seed = 7;
    nlohmann::json a = to_json(analyze_store(path, p)), b = to_json(analyze_store(path, p));
    a.erase("seconds");
    b.erase("seconds");
    EXPECT_EQ(a, b);
}

// M9: three prompts shared by several samples, one unique.
//   P: s1 [1 2 3], s2 [1 2 4], s3 [1 2 4]; argmax [1 2 4] for all. At (P,1,2)
//      the majority is 4 (2 vs 1): s1 diverges at position 3 on a token that is
//      not the majority -> data-ambiguous.
//   Q: s4 [7 8], s5 [7 9]; argmax [7 8]: (Q,7) is a tie 8/9, s5 diverges there
//      -> data-ambiguous.
//   R: s6 [5 6 7], s7 [5 6 7]; argmax s6 [5 6 7], s7 [5 0 7]: s7 diverges at
//      position 2 where 6 is the unique majority -> model.
//   S: s8 [1 2 3], argmax [1 9 3] -> its own context -> model.
TEST(Analysis, PredictorsClassifyDivergences) {
    const std::string path = tmp_db("m9.db");
    {
        auto run = open_run(path, spec(), ResumeMode::kFresh);
        run.writer.add(sample("s1", 1, "P", {1, 2, 3}, {1, 2, 4}));
        run.writer.add(sample("s2", 2, "P", {1, 2, 4}, {1, 2, 4}));
        run.writer.add(sample("s3", 3, "P", {1, 2, 4}, {1, 2, 4}));
        run.writer.add(sample("s4", 4, "Q", {7, 8}, {7, 8}));
        run.writer.add(sample("s5", 5, "Q", {7, 9}, {7, 8}));
        run.writer.add(sample("s6", 6, "R", {5, 6, 7}, {5, 6, 7}));
        run.writer.add(sample("s7", 7, "R", {5, 6, 7}, {5, 0, 7}));
        run.writer.add(sample("s8", 8, "S", {1, 2, 3}, {1, 9, 3}));
        run.writer.finish();
    }
    const AnalysisResult r = analyze_store(path);
    const PredictorSection& p = r.predictors;
    ASSERT_TRUE(p.skipped.empty()) << p.skipped;
    EXPECT_EQ(p.prompt_key, "prompt_text");
    EXPECT_EQ(p.n_samples, 8);
    EXPECT_EQ(p.n_prompts, 4);
    EXPECT_EQ(p.n_shared_prompts, 3);
    EXPECT_EQ(p.n_samples_shared_prompt, 7);
    EXPECT_EQ(p.n_diverged, 4);
    EXPECT_EQ(p.divergence.data_ambiguous, 2);  // s1, s5
    EXPECT_EQ(p.divergence.model, 2);           // s7, s8
    // Positions: 3*3 + 2*2 + 2*3 + 3 = 22. Majority: P 3+3+2, Q 2+0 (tie),
    // R 6, S 3 -> 19. Ties: both Q samples at position 2.
    EXPECT_EQ(p.n_positions, 22);
    EXPECT_EQ(p.n_majority, 19);
    EXPECT_EQ(p.n_tie, 2);
    // argmax == M_t: P 9, Q 2 (position 1), R 3 + 2, S 2 (positions 1, 3) -> 18.
    EXPECT_EQ(p.n_model_agrees, 18);
    EXPECT_EQ(p.n_ambiguous_contexts, 2);  // (P,1,2) and (Q,7)
    // M_b: P -> [1 2 4] (s2, s3, both exact); Q tie (s4 exact, not M_b);
    // R -> [5 6 7] (s6 exact, s7 not); S -> itself (not exact).
    EXPECT_EQ(p.n_mb_majority, 5);
    EXPECT_EQ(p.n_mb_exact, 3);
    EXPECT_EQ(p.n_exact_not_mb, 1);
    ASSERT_EQ(p.ambiguous_examples.size(), 2u);
    EXPECT_EQ(p.ambiguous_examples[0], "s1");
    EXPECT_EQ(p.ambiguous_examples[1], "s5");
    const nlohmann::json j = to_json(r);
    EXPECT_EQ(j["predictors"]["divergence"]["data_ambiguous"], 2);
}

// M11: three checkpoints written out of step order; 8 shared samples whose
// n_pre grows from one checkpoint to the next, plus one sample only in the last.
TEST(Analysis, CheckpointTrendsAndPairedTests) {
    const std::string path = tmp_db("m11.db");
    const std::vector<int64_t> base{0, 1, 1, 2, 3, 3, 4, 6};
    auto write = [&](int64_t step, double loss, int64_t add, bool extra) {
        auto run = open_run(path, spec(step, loss), ResumeMode::kFresh);
        for (std::size_t i = 0; i < base.size(); ++i) {
            // Growth add * (1 + i % 2): differences 1/2 (or 2/4), all positive.
            const int64_t n = std::min<int64_t>(16, base[i] + add * (1 + int64_t(i % 2)));
            run.writer.add(sample_n(fmt::format("s{}", i), int64_t(i), n, 16, 100 * int(i)));
        }
        if (extra) run.writer.add(sample_n("only-last", 99, 16, 16, 7));
        run.writer.finish();
    };
    write(300, 0.45, 2, true);
    write(100, 1.0, 0, false);
    write(200, 0.5, 1, false);
    const AnalysisResult r = analyze_store(path);
    // Default run: the last checkpoint (step 300, written first: run id 1).
    EXPECT_EQ(r.run.spec.checkpoint_step, 300);
    EXPECT_EQ(r.n_samples, 9);
    const TrendSection& t = r.trends;
    ASSERT_TRUE(t.skipped.empty()) << t.skipped;
    ASSERT_EQ(t.checkpoints.size(), 3u);
    EXPECT_EQ(t.checkpoints[0].step, 100);
    EXPECT_EQ(t.checkpoints[1].step, 200);
    EXPECT_EQ(t.checkpoints[2].step, 300);
    EXPECT_DOUBLE_EQ(*t.checkpoints[0].train_loss, 1.0);
    // Step 100: n_pre = base, sum 20 -> mean 2.5, max 6.
    EXPECT_DOUBLE_EQ(t.checkpoints[0].mean, 2.5);
    EXPECT_DOUBLE_EQ(t.checkpoints[0].max, 6.0);
    EXPECT_EQ(t.checkpoints[2].n_exact, 1);  // only-last
    ASSERT_EQ(t.comparisons.size(), 3u);     // all pairs of 3 runs
    int n_consecutive = 0, n_first_last = 0;
    for (const auto& c : t.comparisons) {
        EXPECT_EQ(c.n_shared, 8);
        ASSERT_TRUE(c.wilcoxon.has_value()) << c.skipped;
        EXPECT_GT(c.wilcoxon->z, 0);  // n_pre grew
        EXPECT_DOUBLE_EQ(c.wilcoxon->r_minus, 0.0);
        EXPECT_DOUBLE_EQ(c.wilcoxon->rank_biserial, 1.0);
        EXPECT_EQ(c.wilcoxon->n, 8u);
        n_consecutive += c.relation == "consecutive";
        n_first_last += c.relation == "first_vs_last";
    }
    EXPECT_EQ(n_consecutive, 2);
    EXPECT_EQ(n_first_last, 1);
    // Step 100 -> 200: differences 1 2 1 2 1 2 1 2 -> mean 1.5.
    EXPECT_DOUBLE_EQ(t.comparisons[0].mean_difference, 1.5);

    // The training loss recorded with each run is the epoch's mean, and says so.
    EXPECT_TRUE(to_json(r)["run"]["train_loss_last_step"].is_null());
    const std::string text = format_summary(r);
    EXPECT_NE(text.find("training loss: mean of the epoch 0.45\n"), std::string::npos) << text;
    EXPECT_NE(text.find("run 2 step 100 loss 1 mean 2.5"), std::string::npos) << text;
    bool found = false;
    for (const auto& f : r.findings)
        found = found || f.find("while the mean training loss of the epoch goes 1 -> 0.45.") != std::string::npos;
    EXPECT_TRUE(found) << text;

    // --run picks another run; M11 still covers all.
    AnalyzeParams p;
    p.run_id = 2;
    const AnalysisResult r2 = analyze_store(path, p);
    EXPECT_EQ(r2.run.spec.checkpoint_step, 100);
    EXPECT_EQ(r2.trends.checkpoints.size(), 3u);
}

// A store from before schema version 3 recorded each run's last logged step
// loss in train_loss and no epoch mean: it still opens (upgraded in place),
// and analyze shows the last step's loss labelled as such, saying that no
// epoch mean was recorded.
TEST(Analysis, OldStoreShowsTheLastStepLossAndSaysSo) {
    const std::string path = tmp_db("v2.db");
    for (auto [step, loss] : {std::pair{100, 0.9}, std::pair{200, 0.6}}) {
        auto run = open_run(path, spec(step, loss), ResumeMode::kFresh);
        for (int i = 0; i < 4; ++i) run.writer.add(sample_n(fmt::format("s{}", i), i, i + step / 100, 8, 10 * i));
        run.writer.finish();
    }
    test::downgrade_to_schema_2(path);
    const AnalysisResult r = analyze_store(path);
    EXPECT_EQ(r.run.spec.checkpoint_step, 200);
    EXPECT_FALSE(r.run.spec.train_loss.has_value());
    EXPECT_EQ(r.run.spec.train_loss_last_step, 0.6);
    const nlohmann::json j = to_json(r);
    EXPECT_TRUE(j["run"]["train_loss"].is_null());
    EXPECT_EQ(j["run"]["train_loss_last_step"], 0.6);
    EXPECT_EQ(j["trends"]["checkpoints"][0]["train_loss_last_step"], 0.9);
    const std::string text = format_summary(r);
    EXPECT_NE(text.find("training loss: last step 0.6 (no epoch mean recorded)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("step 100 loss 0.9 (last step) mean"), std::string::npos) << text;
    bool found = false;
    for (const auto& f : r.findings)
        found = found || f.find("while the last step's training loss goes 0.9 -> 0.6 (no epoch mean recorded).") !=
                             std::string::npos;
    EXPECT_TRUE(found) << text;
}

// The terminal M8 line leads with the metrics users compare n_pre against
// (loss, min-k%, min-k%++, zlib, Pythia score, ROUGE-L, Levenshtein
// similarity), the other columns after. Each metric here is a monotone
// function of n_pre, so rho is +1 (rising) or -1 (falling) by construction.
TEST(Analysis, SummaryM8LineLeadsWithTheUsualMetrics) {
    const std::string path = tmp_db("m8.db");
    {
        auto run = open_run(path, spec(), ResumeMode::kFresh);
        for (std::size_t i = 0; i < kTen.size(); ++i) {
            SampleRecord r = sample_n(fmt::format("s{}", i), static_cast<int64_t>(i), kTen[i], 10, 1000 * int(i));
            const double n = static_cast<double>(kTen[i]);
            auto& m = r.metrics;
            m.log_p_full_t1 = -(10.0 - n);     // schema order: before all of the usual ones
            m.expected_n_pre_t1 = n;
            m.loss = 5.0 - 0.1 * n;            // falls
            m.min_k_prob = -3.0 + 0.2 * n;
            m.min_k_plus_plus = -1.0 + 0.1 * n;
            m.zlib_ratio = 2.0 - 0.1 * n;      // falls
            m.pythia_score = n / 10;
            m.rouge_l = n / 10;
            m.lev_sim_tokens = n / 10;
            run.writer.add(r);
        }
        run.writer.finish();
    }
    const std::string text = format_summary(analyze_store(path));
    EXPECT_NE(text.find("\nM8 Spearman vs n_pre:  loss -1.00  min_k_prob +1.00  min_k_plus_plus +1.00  zlib_ratio -1.00  "
                        "pythia_score +1.00  rouge_l +1.00  lev_sim_tokens +1.00\n"
                        "   also:  log_p_full_t1 +1.00  expected_n_pre_t1 +1.00\n"),
              std::string::npos)
        << text;
}

TEST(Analysis, RunsWithoutSharedSamplesSaySo) {
    const std::string path = tmp_db("disjoint.db");
    for (int step : {1, 2}) {
        auto run = open_run(path, spec(step), ResumeMode::kFresh);
        for (int i = 0; i < 4; ++i) run.writer.add(sample_n(fmt::format("r{}-s{}", step, i), i, i, 8, 10 * i));
        run.writer.finish();
    }
    const AnalysisResult r = analyze_store(path);
    ASSERT_EQ(r.trends.comparisons.size(), 1u);
    const auto& c = r.trends.comparisons[0];
    EXPECT_EQ(c.n_shared, 0);
    EXPECT_FALSE(c.wilcoxon.has_value());
    EXPECT_NE(c.skipped.find("no shared samples"), std::string::npos) << c.skipped;
    EXPECT_TRUE(to_json(r)["trends"]["comparisons"][0]["wilcoxon"].is_null());
}

TEST(Analysis, OneSampleGivesNullsWithReasons) {
    const std::string path = tmp_db("one.db");
    {
        auto run = open_run(path, spec(), ResumeMode::kFresh);
        run.writer.add(sample_n("only", 0, 3, 8, 1));
        run.writer.finish();
    }
    const AnalysisResult r = analyze_store(path);
    EXPECT_EQ(r.distribution.summary.absolute.count, 1u);
    EXPECT_DOUBLE_EQ(r.distribution.summary.absolute.mean, 3.0);
    EXPECT_TRUE(std::isnan(r.distribution.summary.absolute.shape.skewness));
    EXPECT_EQ(r.distribution.null_reasons.at("skewness_adjusted"), "needs at least 3 samples");
    EXPECT_FALSE(r.sampling.bootstrap.has_value());
    EXPECT_EQ(r.sampling.null_reasons.at("bootstrap"), "needs at least 2 samples");
    EXPECT_EQ(r.sampling.null_reasons.count("k=5"), 1u);
    EXPECT_FALSE(r.hazard.geometric.has_value());
    EXPECT_FALSE(r.hazard.independence_skipped.empty());
    EXPECT_FALSE(r.correlations.skipped.empty());
    const nlohmann::json j = to_json(r);
    EXPECT_TRUE(j["distribution"]["n_pre"]["skewness"].is_null());
    EXPECT_TRUE(j["sampling"]["bootstrap"].is_null());
    EXPECT_TRUE(j["hazard"]["fits"]["geometric"].is_null());
    EXPECT_FALSE(format_summary(r).empty());
}

template <typename E>
std::string error_of(const std::string& path, const AnalyzeParams& p = {}) {
    try {
        analyze_store(path, p);
    } catch (const E& e) {
        return e.message() + " | " + e.hint();
    }
    return "(no error)";
}

TEST(Analysis, EmptyStoreAndEmptyRun) {
    const std::string empty = tmp_db("empty.db");
    store_detail::open_store_for_write(empty, 1000);  // schema, no runs
    EXPECT_NE(error_of<InvalidInput>(empty).find("holds no runs"), std::string::npos) << error_of<InvalidInput>(empty);

    const std::string no_samples = tmp_db("nosamples.db");
    open_run(no_samples, spec(), ResumeMode::kFresh).writer.finish();
    const std::string msg = error_of<InvalidInput>(no_samples);
    EXPECT_NE(msg.find("holds no samples"), std::string::npos) << msg;
}

TEST(Analysis, UnknownRunIdListsTheRuns) {
    AnalyzeParams p;
    p.run_id = 99;
    const std::string msg = error_of<InvalidInput>(ten_sample_store(), p);
    EXPECT_NE(msg.find("no run with id 99"), std::string::npos) << msg;
    EXPECT_NE(msg.find("holds runs 1"), std::string::npos) << msg;
}

TEST(Analysis, ForeignAndCorruptFilesAreFormatErrors) {
    const std::string foreign = tmp_db("foreign.db");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    std::string msg = error_of<FormatError>(foreign);
    EXPECT_NE(msg.find("not a memskew results store"), std::string::npos) << msg;

    const std::string garbage = tmp_db("garbage.db");
    {
        std::ofstream f(garbage, std::ios::binary);
        for (int i = 0; i < 4096; ++i) f.put(static_cast<char>(i * 37 + 11));
    }
    msg = error_of<FormatError>(garbage);
    EXPECT_NE(msg.find(garbage), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a memskew results store"), std::string::npos) << msg;

    EXPECT_NE(error_of<IoError>(tmp_db("missing.db")), "(no error)");
}

// analyze_runs on already loaded columns: no token stream -> M7 independence
// and M9 skipped with reasons, the rest computed.
TEST(Analysis, LoadedColumnsWithoutTokens) {
    RunInput in;
    in.info.run_id = 5;
    for (int i = 0; i < 20; ++i) {
        in.columns.sample_id.push_back(fmt::format("x{}", i));
        in.columns.sample_index.push_back(i);
        in.columns.prompt_tokens.push_back(3);
        in.columns.reference_tokens.push_back(32);
        in.columns.truncated.push_back(0);
        in.columns.n_pre.push_back(i == 3 ? -1 : i % 7);
        in.columns.length.push_back(32);
    }
    const AnalysisResult r = analyze_runs({in}, 0);
    EXPECT_EQ(r.n_samples_without_n_pre, 1);
    EXPECT_EQ(r.distribution.summary.absolute.count, 19u);
    EXPECT_FALSE(r.hazard.independence_skipped.empty());
    EXPECT_FALSE(r.predictors.skipped.empty());
    EXPECT_TRUE(r.correlations.entries.empty());
    EXPECT_THROW(analyze_runs({}, 0), InvalidInput);
}

}  // namespace
