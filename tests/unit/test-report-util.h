// Shared by the report tests: a hand-made, deterministic AnalysisResult with
// its ReportInputs (skewed n_pre with a rising per-position recall, metric
// columns, texts for the top samples, optional checkpoints).
#pragma once

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <fmt/format.h>

#include "memskew/analysis.h"
#include "memskew/report.h"
#include "memskew/stats.h"

namespace memskew::test {

struct ReportFixture {
    AnalysisResult result;
    ReportInputs inputs;
};

// Texts carry recognisable markers ("PROMPT-TEXT-<i>", "REFERENCE-TEXT-<i>",
// "GENERATED-TEXT-<i>") so tests can search the page for them.
inline std::string fixture_prompt(std::size_t i) {
    return fmt::format("PROMPT-TEXT-{} <script>alert('x')</script> & \"quoted\" caf\xc3\xa9", i);
}
inline std::string fixture_reference(std::size_t i) {
    return fmt::format("REFERENCE-TEXT-{} the quick brown fox jumps over the lazy dog and keeps running far away", i);
}

inline ReportFixture make_report_fixture(std::size_t n_samples = 400, bool generation = true,
                                         std::size_t n_checkpoints = 1) {
    ReportFixture f;
    AnalysisResult& r = f.result;
    RunColumns& c = f.inputs.columns;
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<int64_t> n_pre, lengths;
    std::vector<double> n_pre_d;
    c.run_id = 1;
    c.metric_names = metric_column_names();
    c.metric_values.assign(c.metric_names.size(), std::vector<double>(n_samples, std::nan("")));
    const auto col = [&](const std::string& name) -> std::vector<double>& {
        for (std::size_t m = 0; m < c.metric_names.size(); ++m)
            if (c.metric_names[m] == name) return c.metric_values[m];
        throw std::logic_error("no column " + name);
    };
    for (std::size_t i = 0; i < n_samples; ++i) {
        const int64_t L = 20 + static_cast<int64_t>(i % 41);
        int64_t n = 0;
        while (n < L && u(rng) < std::min(0.98, 0.35 + 0.03 * static_cast<double>(n))) ++n;
        n_pre.push_back(n);
        lengths.push_back(L);
        n_pre_d.push_back(static_cast<double>(n));
        c.sample_id.push_back(fmt::format("s{:05d}", i));
        c.sample_index.push_back(static_cast<int64_t>(i));
        c.prompt_tokens.push_back(12);
        c.reference_tokens.push_back(L);
        c.truncated.push_back(0);
        c.n_pre.push_back(n);
        c.length.push_back(L);
        col("loss")[i] = 2.5 / (1.0 + 0.2 * static_cast<double>(n)) + 0.3 * u(rng);
        col("min_k_prob")[i] = -6.0 + 0.15 * static_cast<double>(n) - u(rng);
        if (generation) col("rouge_l")[i] = std::min(1.0, static_cast<double>(n) / static_cast<double>(L) + 0.3 * u(rng));
    }
    r.store_path = "/tmp/run.db";
    r.run.run_id = 1;
    r.run.spec.model_path = "/models/tiny.gguf";
    r.run.spec.dataset_path = "/data/train.jsonl";
    r.run.spec.checkpoint_step = 300;
    r.run.spec.checkpoint_epoch = 3;
    r.run.spec.train_loss = 0.42;
    r.run.status = RunStatus::kDone;
    r.n_runs = static_cast<int64_t>(std::max<std::size_t>(1, n_checkpoints));
    r.n_samples = static_cast<int64_t>(n_samples);
    r.findings = {"Memorization is highly skewed (Gini 0.7)."};

    auto& d = r.distribution;
    d.summary = stats::summarize_n_pre(n_pre, lengths);
    for (const auto& t : d.summary.absolute.top) d.top.push_back({c.sample_id[t.index], t.value});
    for (int64_t n : n_pre) d.total_memorized_tokens += n;

    auto& s = r.sampling;
    s.n_samples = static_cast<int64_t>(n_samples);
    for (int64_t k : {1, 5, 10}) {
        if (k > s.n_samples) continue;
        for (double frac : {0.01, 0.1, 0.5}) {
            const auto z = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(frac * static_cast<double>(n_samples))));
            s.p_miss.push_back({frac, z, k, stats::p_miss_top_k(s.n_samples, k, z)});
        }
        const int64_t z = stats::min_subset_size(s.n_samples, k, 0.05);
        s.needed.push_back({k, 0.05, z, static_cast<double>(z) / static_cast<double>(n_samples)});
    }
    s.bootstrap = stats::bootstrap(n_pre_d);

    auto& hz = r.hazard;
    hz.positions = stats::empirical_hazard(n_pre, lengths);
    hz.geometric = stats::fit_geometric(n_pre, lengths);
    hz.linear_hazard = stats::fit_linear_hazard(n_pre, lengths);
    hz.independence_skipped = "needs token arrays";

    CorrelationEntry e;
    e.metric = "loss";
    e.spearman = stats::spearman(n_pre_d, col("loss"));
    e.n_used = n_samples;
    r.correlations.entries.push_back(e);
    r.predictors.skipped = "needs token arrays";

    if (n_checkpoints >= 2) {
        for (std::size_t k = 0; k < n_checkpoints; ++k) {
            CheckpointSummary cp;
            cp.run_id = static_cast<int64_t>(k + 1);
            cp.step = static_cast<int64_t>(100 * (k + 1));
            cp.epoch = static_cast<int64_t>(k + 1);
            cp.train_loss = 2.0 / static_cast<double>(k + 1) + 0.3;
            cp.n_samples = static_cast<int64_t>(n_samples);
            cp.mean = 1.0 + static_cast<double>(k);
            cp.p99 = 5.0 + 4.0 * static_cast<double>(k);
            cp.max = 10.0 + 9.0 * static_cast<double>(k);
            r.trends.checkpoints.push_back(cp);
        }
    } else {
        r.trends.skipped = "one run";
    }

    // Records of the top samples, with texts.
    for (const auto& t : d.top) {
        SampleRecord rec;
        rec.sample_id = t.sample_id;
        const std::size_t i = static_cast<std::size_t>(std::stoul(t.sample_id.substr(1)));
        rec.sample_index = static_cast<int64_t>(i);
        rec.prompt_tokens = 12;
        rec.reference_tokens = lengths[i];
        rec.prompt_text = fixture_prompt(i);
        rec.reference_text = fixture_reference(i);
        if (generation) rec.generated_text = fixture_reference(i).substr(0, 40) + " GENERATED-TEXT-" + std::to_string(i);
        rec.metrics.n_pre = n_pre[i];
        rec.metrics.length = lengths[i];
        f.inputs.samples.push_back(rec);
    }
    return f;
}

}  // namespace memskew::test
