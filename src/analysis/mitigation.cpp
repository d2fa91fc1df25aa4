// METHOD M12 on one run: which mitigation it was made with (the run's
// options) and, when it generated, its greedy outputs unguarded and guarded.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/analysis-impl.h"

namespace memskew::analysis_detail {

namespace {

bool has_column(const RunColumns& c, const char* name) {
    return std::find(c.metric_names.begin(), c.metric_names.end(), name) != c.metric_names.end();
}

}  // namespace

MitigationSection compute_mitigation(const RunInput& run) {
    MitigationSection m;
    const auto& o = run.info.spec.options;
    if (o.is_object()) {
        if (o.contains("training") && o["training"].is_object() && o["training"].value("goldfish_k", int64_t{0}) >= 2)
            m.applied.push_back(fmt::format("Goldfish loss k = {}, h = {} (training)", o["training"]["goldfish_k"].get<int64_t>(),
                                            o["training"].value("goldfish_h", int64_t{0})));
        if (o.contains("guard_n"))
            m.applied.push_back(fmt::format("decoding guard n = {} (probe)", o["guard_n"].get<int64_t>()));
    }
    const RunColumns& c = run.columns;
    if (!has_column(c, "n_pre_generated") || !std::isfinite(metric_mean(c, "n_pre_generated"))) {
        m.skipped = "the run has no generated outputs (probe with --generate)";
        return m;
    }
    m.greedy = summarize_outputs(run.info, c, false);
    if (has_column(c, "guard_n_pre") && std::isfinite(metric_mean(c, "guard_n_pre"))) {
        m.guarded = summarize_outputs(run.info, c, true);
        for (double v : c.metric("guard_blocked"))
            if (std::isfinite(v)) m.blocked_steps += static_cast<int64_t>(v);
        m.guard_test = compare_checkpoints(run.info, with_n_pre_from(c, "n_pre_generated"), run.info,
                                           with_n_pre_from(c, "guard_n_pre"));
    }
    return m;
}

}  // namespace memskew::analysis_detail

namespace memskew {

OutputSummary summarize_outputs(const RunInfo& info, const RunColumns& c, bool guarded) {
    OutputSummary o;
    const CheckpointSummary s = summarize_checkpoint(info, with_n_pre_from(c, guarded ? "guard_n_pre" : "n_pre_generated"));
    o.n = s.n_samples;
    o.mean_n_pre = s.mean;
    o.p99_n_pre = s.p99;
    o.max_n_pre = s.max;
    o.n_exact = s.n_exact;
    o.approx_share = metric_mean(c, guarded ? "guard_approx" : "gen_approx");
    o.mean_lcs = metric_mean(c, guarded ? "guard_lcs" : "gen_lcs");
    o.mean_rouge_l = metric_mean(c, guarded ? "guard_rouge_l" : "rouge_l");
    o.mean_logprob = metric_mean(c, guarded ? "guard_mean_logprob" : "gen_mean_logprob");
    return o;
}

double metric_mean(const RunColumns& c, std::string_view name) {
    if (std::find(c.metric_names.begin(), c.metric_names.end(), name) == c.metric_names.end()) return NAN;
    double sum = 0;
    int64_t n = 0;
    for (double v : c.metric(name))
        if (std::isfinite(v)) {
            sum += v;
            ++n;
        }
    return n ? sum / static_cast<double>(n) : NAN;
}

RunColumns with_n_pre_from(const RunColumns& c, std::string_view name) {
    RunColumns out;
    out.run_id = c.run_id;
    out.sample_id = c.sample_id;
    out.sample_index = c.sample_index;
    out.reference_tokens = c.reference_tokens;
    out.length = c.length;
    out.n_pre.assign(c.size(), -1);
    if (std::find(c.metric_names.begin(), c.metric_names.end(), name) == c.metric_names.end()) return out;
    const auto& col = c.metric(name);
    for (std::size_t i = 0; i < c.size(); ++i)
        if (std::isfinite(col[i])) out.n_pre[i] = static_cast<int64_t>(col[i]);
    return out;
}

}  // namespace memskew
