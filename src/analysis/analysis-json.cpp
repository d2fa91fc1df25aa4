// The analysis result as a JSON document (docs/analysis-json.md) and as a
// one-screen terminal summary.
#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "memskew/analysis.h"

namespace memskew {

namespace {

using json = nlohmann::json;

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
template <typename T>
json opt(const std::optional<T>& v) {
    return v ? json(*v) : json(nullptr);
}
json reason(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
json reasons(const std::map<std::string, std::string>& m) {
    json j = json::object();
    for (const auto& [k, v] : m) j[k] = v;
    return j;
}

json summary_json(const stats::DistributionSummary& s, const std::vector<TopSample>& top) {
    json q = json::array();
    for (std::size_t i = 0; i < s.quantile_levels.size(); ++i)
        q.push_back({{"level", s.quantile_levels[i]}, {"value", num(s.quantile_values[i])}});
    json t = json::array();
    for (const auto& e : top) t.push_back({{"sample_id", e.sample_id}, {"value", num(e.value)}});
    return {{"count", s.count},
            {"mean", num(s.mean)},
            {"median", num(s.median)},
            {"quantiles", q},
            {"max", num(s.max)},
            {"top", t},
            {"skewness", num(s.shape.skewness)},
            {"skewness_adjusted", num(s.shape.skewness_adjusted)},
            {"kurtosis", num(s.shape.kurtosis)},
            {"kurtosis_adjusted", num(s.shape.kurtosis_adjusted)},
            {"gini", num(s.gini)},
            {"top_1pct_share", num(s.top_share)}};
}

json histogram_json(const stats::Histogram& h) {
    json e = json::array();
    for (double v : h.edges) e.push_back(num(v));
    return {{"edges", e}, {"counts", h.counts}};
}

json interval_json(const stats::Interval& i) {
    return {{"estimate", num(i.estimate)}, {"lower", num(i.lower)}, {"upper", num(i.upper)}};
}

json fit_json(const std::optional<stats::ModelFit>& f) {
    if (!f) return nullptr;
    json params = json::object();
    if (f->model == "geometric" && f->params.size() == 1) params["p"] = num(f->params[0]);
    if (f->model == "linear_hazard" && f->params.size() == 2) {
        params["p0"] = num(f->params[0]);
        params["alpha"] = num(f->params[1]);
    }
    json hz = json::array();
    for (double v : f->hazards) hz.push_back(num(v));
    return {{"params", params},       {"log_likelihood", num(f->log_likelihood)},
            {"aic", num(f->aic)},     {"ks_distance", num(f->ks_distance)},
            {"converged", f->converged}, {"hazards", hz}};
}

json distribution_json(const DistributionSection& d) {
    json j = {{"skipped", reason(d.skipped)}};
    if (!d.skipped.empty()) return j;
    const auto& s = d.summary;
    j["n_pre"] = summary_json(s.absolute, d.top);
    j["n_pre_frac"] = s.normalized.count ? summary_json(s.normalized, d.top_normalized) : json(nullptr);
    j["total_memorized_tokens"] = d.total_memorized_tokens;
    json th = json::array();
    for (const auto& t : s.at_least) th.push_back({{"threshold", t.threshold}, {"count", t.count}});
    j["at_least"] = th;
    j["n_exact"] = s.n_exact;
    j["histogram"] = histogram_json(s.histogram);
    j["log_histogram"] = histogram_json(s.log_histogram);
    json cv = json::array(), cf = json::array();
    for (const auto& p : s.ccdf) {
        cv.push_back(num(p.value));
        cf.push_back(num(p.fraction_at_least));
    }
    j["ccdf"] = {{"value", cv}, {"fraction_at_least", cf}};
    j["null_reasons"] = reasons(d.null_reasons);
    return j;
}

json sampling_json(const SamplingSection& s, const AnalysisResult& r) {
    json j = {{"skipped", reason(s.skipped)}, {"n_samples", s.n_samples}};
    json pm = json::array();
    for (const auto& p : s.p_miss)
        pm.push_back({{"fraction", p.fraction}, {"subset_size", p.subset_size}, {"k", p.k}, {"p_miss", num(p.p_miss)}});
    j["p_miss"] = pm;
    json nd = json::array();
    for (const auto& n : s.needed)
        nd.push_back({{"k", n.k},
                      {"delta", n.delta},
                      {"confidence", 1 - n.delta},
                      {"subset_size", n.subset_size},
                      {"fraction", num(n.fraction)}});
    j["subset_needed"] = nd;
    if (s.bootstrap) {
        const auto& b = *s.bootstrap;
        j["bootstrap"] = {{"n_resamples", b.n_resamples},
                          {"seed", r.seed},
                          {"quantile_level", 0.99},
                          {"mean", interval_json(b.mean)},
                          {"p99", interval_json(b.quantile)},
                          {"max", interval_json(b.max)}};
    } else {
        j["bootstrap"] = nullptr;
    }
    j["null_reasons"] = reasons(s.null_reasons);
    return j;
}

json hazard_json(const HazardSection& h, const AnalysisResult& r) {
    json j = {{"skipped", reason(h.skipped)}};
    json pos = {{"position", json::array()},       {"at_risk", json::array()},
                {"failures", json::array()},       {"recall", json::array()},
                {"recall_lower", json::array()},   {"recall_upper", json::array()},
                {"survival", json::array()},       {"survival_lower", json::array()},
                {"survival_upper", json::array()}};
    for (const auto& p : h.positions) {
        pos["position"].push_back(p.position);
        pos["at_risk"].push_back(p.at_risk);
        pos["failures"].push_back(p.failures);
        pos["recall"].push_back(num(p.recall));
        pos["recall_lower"].push_back(num(p.recall_lower));
        pos["recall_upper"].push_back(num(p.recall_upper));
        pos["survival"].push_back(num(p.survival));
        pos["survival_lower"].push_back(num(p.survival_lower));
        pos["survival_upper"].push_back(num(p.survival_upper));
    }
    j["positions"] = pos;
    j["fits"] = {{"geometric", fit_json(h.geometric)}, {"linear_hazard", fit_json(h.linear_hazard)}};
    json ind = {{"skipped", reason(h.independence_skipped)},
                {"n_samples_with_tokens", h.n_samples_with_tokens}};
    json ip = {{"position", json::array()},         {"n_samples", json::array()},
               {"mi_state_bits", json::array()},    {"p_value_state", json::array()},
               {"p_value_state_exact", json::array()}, {"mi_previous_bits", json::array()},
               {"p_value_previous", json::array()}, {"p_value_previous_exact", json::array()}};
    for (const auto& d : h.independence) {
        ip["position"].push_back(d.position);
        ip["n_samples"].push_back(d.n_samples);
        ip["mi_state_bits"].push_back(num(d.mi_state_bits));
        ip["p_value_state"].push_back(num(d.p_value_state));
        ip["p_value_state_exact"].push_back(num(d.p_value_state_exact));
        ip["mi_previous_bits"].push_back(num(d.mi_previous_bits));
        ip["p_value_previous"].push_back(num(d.p_value_previous));
        ip["p_value_previous_exact"].push_back(num(d.p_value_previous_exact));
    }
    ind["positions"] = ip;
    j["independence"] = ind;
    j["n_match_inconsistent"] = h.n_match_inconsistent;
    j["null_reasons"] = reasons(h.null_reasons);
    (void)r;
    return j;
}

json correlations_json(const CorrelationSection& c) {
    json e = json::array();
    for (const auto& x : c.entries)
        e.push_back({{"metric", x.metric},
                     {"n", x.n_used},
                     {"rho", num(x.spearman.statistic)},
                     {"p_value", num(x.spearman.p_value)},
                     {"null_reason", reason(x.null_reason)}});
    return {{"skipped", reason(c.skipped)},
            {"with", "n_pre"},
            {"method", "spearman"},
            {"entries", e},
            {"skipped_columns", c.skipped_columns}};
}

json predictors_json(const PredictorSection& p) {
    return {{"skipped", reason(p.skipped)},
            {"prompt_key", p.prompt_key},
            {"n_samples", p.n_samples},
            {"n_prompts", p.n_prompts},
            {"n_shared_prompts", p.n_shared_prompts},
            {"n_samples_shared_prompt", p.n_samples_shared_prompt},
            {"n_samples_without_prompt", p.n_samples_without_prompt},
            {"n_positions", p.n_positions},
            {"n_majority", p.n_majority},
            {"n_tie", p.n_tie},
            {"n_model_agrees", p.n_model_agrees},
            {"n_ambiguous_contexts", p.n_ambiguous_contexts},
            {"n_diverged", p.n_diverged},
            {"divergence", {{"data_ambiguous", p.divergence.data_ambiguous}, {"model", p.divergence.model}}},
            {"sequence_level",
             {{"n_majority", p.n_mb_majority}, {"n_majority_exact", p.n_mb_exact}, {"n_exact_not_majority", p.n_exact_not_mb}}},
            {"ambiguous_examples", p.ambiguous_examples}};
}

json bucket_json(const SimilarityBucket& b) {
    return {{"label", b.label},         {"lo", num(b.lo)},
            {"hi", num(b.hi)},          {"n", b.n},
            {"mean_n_pre", num(b.mean_n_pre)}, {"p90_n_pre", num(b.p90_n_pre)},
            {"max_n_pre", b.max_n_pre}, {"n_exact", b.n_exact}};
}

json triage_json(const TriageSection& t) {
    json sig = json::array();
    for (const auto& s : t.signals) {
        json pts = json::array();
        for (const auto& p : s.points)
            pts.push_back({{"k", p.k}, {"hits", p.hits}, {"precision", num(p.precision)}, {"recall", num(p.recall)}});
        sig.push_back({{"signal", s.signal}, {"riskier", s.direction}, {"n_used", s.n_used}, {"points", pts}});
    }
    return {{"skipped", reason(t.skipped)},
            {"ks", t.ks},
            {"tail_sizes", t.tail_sizes},
            {"tail_thresholds", t.tail_thresholds},
            {"random_precision", t.random_precision},
            {"signals", sig}};
}

json similarity_json(const SimilaritySection& s) {
    json cps = json::array();
    for (const auto& c : s.checkpoints)
        cps.push_back({{"run_id", c.run_id},
                       {"step", opt(c.step)},
                       {"epoch", opt(c.epoch)},
                       {"n_samples", c.n_samples},
                       {"s_input", num(c.s_input)},
                       {"s_full", num(c.s_full)},
                       {"delta_s", num(c.delta_s)},
                       {"knn_method", reason(c.knn_method)},
                       {"knn_recall", num(c.knn_recall)}});
    json cor = json::array();
    for (const auto& c : s.correlations)
        cor.push_back({{"figure", c.figure},
                       {"n", c.n_used},
                       {"rho", num(c.spearman.statistic)},
                       {"p_value", num(c.spearman.p_value)},
                       {"null_reason", reason(c.null_reason)}});
    json by_delta = json::array(), by_size = json::array(), clusters = json::array();
    for (const auto& b : s.by_delta) by_delta.push_back(bucket_json(b));
    for (const auto& b : s.by_cluster_size) by_size.push_back(bucket_json(b));
    for (const auto& c : s.largest_clusters) {
        json members = json::array();
        for (const auto& m : c.members)
            members.push_back({{"sample_id", m.sample_id}, {"n_pre", m.n_pre >= 0 ? json(m.n_pre) : json(nullptr)}});
        clusters.push_back({{"cluster", c.cluster},
                            {"size", c.size},
                            {"mean_n_pre", num(c.mean_n_pre)},
                            {"max_n_pre", c.max_n_pre},
                            {"members", members}});
    }
    return {{"skipped", reason(s.skipped)},
            {"run", s.run ? to_json(*s.run) : json(nullptr)},
            {"checkpoints", cps},
            {"correlations", cor},
            {"n_pre_by_delta_quintile", by_delta},
            {"n_pre_by_cluster_size", by_size},
            {"largest_clusters", clusters},
            {"claim", reason(s.claim)},
            {"claim_text", reason(s.claim_text)},
            {"triage", triage_json(s.triage)}};
}

json output_json(const OutputSummary& o) {
    return {{"n", o.n},
            {"mean_n_pre", num(o.mean_n_pre)},
            {"p99_n_pre", num(o.p99_n_pre)},
            {"max_n_pre", num(o.max_n_pre)},
            {"n_exact", o.n_exact},
            {"approx_share", num(o.approx_share)},
            {"mean_lcs", num(o.mean_lcs)},
            {"mean_rouge_l", num(o.mean_rouge_l)},
            {"mean_logprob", num(o.mean_logprob)}};
}

json mitigation_json(const MitigationSection& m) {
    json test = nullptr;
    if (m.guard_test && m.guard_test->wilcoxon) {
        const auto& w = *m.guard_test->wilcoxon;
        test = {{"n_shared", m.guard_test->n_shared}, {"mean_difference", num(m.guard_test->mean_difference)},
                {"statistic", num(w.statistic)},      {"p_value", num(w.p_value)},
                {"z", num(w.z)},                      {"effect_size_r", num(w.effect_size_r)}};
    } else if (m.guard_test) {
        test = {{"n_shared", m.guard_test->n_shared}, {"skipped", reason(m.guard_test->skipped)}};
    }
    return {{"applied", m.applied},
            {"skipped", reason(m.skipped)},
            {"greedy", m.skipped.empty() ? output_json(m.greedy) : json(nullptr)},
            {"guarded", m.guarded ? output_json(*m.guarded) : json(nullptr)},
            {"blocked_steps", m.blocked_steps},
            {"guard_test", test}};
}

json finite_or_null(const std::optional<double>& v) { return v && std::isfinite(*v) ? json(*v) : json(nullptr); }

json trends_json(const TrendSection& t) {
    json cps = json::array();
    for (const auto& c : t.checkpoints)
        cps.push_back({{"run_id", c.run_id},
                       {"step", opt(c.step)},
                       {"epoch", opt(c.epoch)},
                       {"train_loss", finite_or_null(c.train_loss)},
                       {"train_loss_last_step", finite_or_null(c.train_loss_last_step)},
                       {"n_samples", c.n_samples},
                       {"mean", num(c.mean)},
                       {"p99", num(c.p99)},
                       {"max", num(c.max)},
                       {"n_exact", c.n_exact}});
    json cmp = json::array();
    for (const auto& c : t.comparisons) {
        json w = nullptr;
        if (c.wilcoxon) {
            const auto& x = *c.wilcoxon;
            w = {{"statistic", num(x.statistic)}, {"p_value", num(x.p_value)},
                 {"z", num(x.z)},                 {"effect_size_r", num(x.effect_size_r)},
                 {"rank_biserial", num(x.rank_biserial)}, {"r_plus", num(x.r_plus)},
                 {"r_minus", num(x.r_minus)},     {"n_nonzero", x.n},
                 {"n_zero", x.n_zero},            {"exact", x.exact}};
        }
        cmp.push_back({{"run_a", c.run_a},
                       {"run_b", c.run_b},
                       {"relation", c.relation},
                       {"n_shared", c.n_shared},
                       {"mean_difference", num(c.mean_difference)},
                       {"skipped", reason(c.skipped)},
                       {"wilcoxon", w}});
    }
    return {{"skipped", reason(t.skipped)}, {"checkpoints", cps}, {"comparisons", cmp}};
}

}  // namespace

nlohmann::json to_json(const RunSimilarity& r) {
    return {{"n_samples", r.n_samples},
            {"embed_model", r.embed_model.empty() ? json("model under test") : json(r.embed_model)},
            {"embed_dim", r.embed_dim > 0 ? json(r.embed_dim) : json(nullptr)},
            {"s_input", num(r.s_input)},
            {"s_full", num(r.s_full)},
            {"delta_s", num(r.delta_s)},
            {"k", r.k > 0 ? json(r.k) : json(nullptr)},
            {"knn_method", reason(r.knn_method)},
            {"knn_recall", num(r.knn_recall)},
            {"knn_recall_queries", r.knn_recall_queries},
            {"near_duplicates", r.near_duplicate_params},
            {"n_clusters", r.n_clusters},
            {"n_clustered_samples", r.n_clustered_samples},
            {"largest_cluster", r.largest_cluster},
            {"n_duplicate_prompts", r.n_duplicate_prompts},
            {"n_duplicate_references", r.n_duplicate_references},
            {"vectors_kept", r.vectors_kept},
            {"computed_at", r.computed_at},
            {"seconds", num(r.seconds)}};
}

nlohmann::json to_json(const AnalysisResult& r) {
    const auto& s = r.run.spec;
    json run = {{"run_id", r.run.run_id},
                {"run_key", r.run.run_key},
                {"checkpoint_step", opt(s.checkpoint_step)},
                {"checkpoint_epoch", opt(s.checkpoint_epoch)},
                {"train_loss", finite_or_null(s.train_loss)},
                {"train_loss_last_step", finite_or_null(s.train_loss_last_step)},
                {"model_path", s.model_path},
                {"adapter_path", s.adapter_path.empty() ? json(nullptr) : json(s.adapter_path)},
                {"dataset_path", s.dataset_path},
                {"status", std::string(run_status_name(r.run.status))}};
    json seconds = json::object();
    for (const auto& [k, v] : r.seconds) seconds[k] = num(v);
    return {{"schema_version", r.schema_version},
            {"generator", std::string("memskew ") + MEMSKEW_VERSION},
            {"store", r.store_path},
            {"run", run},
            {"n_runs", r.n_runs},
            {"n_samples", r.n_samples},
            {"n_samples_without_n_pre", r.n_samples_without_n_pre},
            {"seed", r.seed},
            {"findings", r.findings},
            {"warnings", r.warnings},
            {"distribution", distribution_json(r.distribution)},
            {"sampling", sampling_json(r.sampling, r)},
            {"hazard", hazard_json(r.hazard, r)},
            {"correlations", correlations_json(r.correlations)},
            {"predictors", predictors_json(r.predictors)},
            {"similarity", similarity_json(r.similarity)},
            {"mitigation", mitigation_json(r.mitigation)},
            {"trends", trends_json(r.trends)},
            {"seconds", seconds}};
}

namespace {
std::string g(double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : std::string("n/a"); }
}  // namespace

std::string train_loss_text(const std::optional<double>& epoch_mean, const std::optional<double>& last_step,
                            int precision) {
    auto n = [&](double v) { return fmt::format("{:.{}g}", v, precision); };
    if (epoch_mean)
        return last_step ? fmt::format("mean of the epoch {} (last step {})", n(*epoch_mean), n(*last_step))
                         : fmt::format("mean of the epoch {}", n(*epoch_mean));
    if (last_step)
        return fmt::format("last step {} (no epoch mean recorded)", n(*last_step));
    return "";
}

std::string format_summary(const AnalysisResult& r) {
    std::string out;
    auto line = [&](const std::string& s) { out += s + "\n"; };
    const auto& sp = r.run.spec;
    std::string ckpt;
    if (sp.checkpoint_step) ckpt += fmt::format(", step {}", *sp.checkpoint_step);
    if (sp.checkpoint_epoch) ckpt += fmt::format(", epoch {}", *sp.checkpoint_epoch);
    line(fmt::format("memskew analyze: {} — run {}{} ({} samples, {} run(s) in the store)", r.store_path,
                     r.run.run_id, ckpt, r.n_samples, r.n_runs));
    if (const std::string loss = train_loss_text(sp.train_loss, sp.train_loss_last_step); !loss.empty())
        line("training loss: " + loss);
    line("");
    for (const auto& f : r.findings) line("* " + f);
    line("");
    const auto& d = r.distribution;
    if (d.skipped.empty()) {
        const auto& a = d.summary.absolute;
        std::string qs;
        for (std::size_t i = 0; i < a.quantile_levels.size(); ++i)
            qs += fmt::format(" p{:g}={}", a.quantile_levels[i] * 100, g(a.quantile_values[i]));
        line(fmt::format("M5 n_pre    mean {}  median {} {}  max {}", g(a.mean), g(a.median), qs, g(a.max)));
        line(fmt::format("            skew {} (adj {})  excess kurtosis {}  Gini {}  top-1% share {}",
                         g(a.shape.skewness), g(a.shape.skewness_adjusted), g(a.shape.kurtosis), g(a.gini),
                         g(a.top_share)));
        std::string th;
        for (const auto& t : d.summary.at_least) th += fmt::format("  >={}: {}", t.threshold, t.count);
        line(fmt::format("            counts{}  exact: {}", th, d.summary.n_exact));
        if (d.summary.normalized.count)
            line(fmt::format("   n_pre/L  mean {}  median {}  max {}  Gini {}", g(d.summary.normalized.mean),
                             g(d.summary.normalized.median), g(d.summary.normalized.max), g(d.summary.normalized.gini)));
        std::string top;
        for (std::size_t i = 0; i < d.top.size() && i < 5; ++i)
            top += fmt::format("{}{}={:g}", i ? ", " : "", d.top[i].sample_id, d.top[i].value);
        line("            top: " + top);
    }
    const auto& s = r.sampling;
    std::string miss;
    for (const auto& p : s.p_miss)
        if (p.k == 10 || (p.k == s.p_miss.back().k && p.k < 10))
            miss += fmt::format("  z={:g}%: {}", p.fraction * 100, g(p.p_miss));
    if (!miss.empty())
        line(fmt::format("M6 P(miss top-{}){}", s.p_miss.back().k, miss));
    if (s.bootstrap) {
        const auto& b = *s.bootstrap;
        line(fmt::format("   bootstrap ({} resamples, 95%): mean [{}, {}]  p99 [{}, {}]  max [{}, {}]", b.n_resamples,
                         g(b.mean.lower), g(b.mean.upper), g(b.quantile.lower), g(b.quantile.upper), g(b.max.lower),
                         g(b.max.upper)));
    }
    const auto& h = r.hazard;
    if (h.skipped.empty()) {
        std::string rec;
        for (std::size_t j : {0, 1, 4, 9, 19, 49}) {
            if (j < h.positions.size()) rec += fmt::format("  p_{}={}", j + 1, g(h.positions[j].recall));
        }
        line("M7 recall" + rec);
        if (h.geometric && h.linear_hazard)
            line(fmt::format("   geometric p={} AIC {} KS {} | linear p0={} alpha={} AIC {} KS {}",
                             g(h.geometric->params[0]), g(h.geometric->aic), g(h.geometric->ks_distance),
                             g(h.linear_hazard->params[0]), g(h.linear_hazard->params[1]), g(h.linear_hazard->aic),
                             g(h.linear_hazard->ks_distance)));
        if (h.independence_skipped.empty() && !h.independence.empty()) {
            int n_sig = 0;
            double max_mi = 0;
            for (const auto& x : h.independence) {
                if (x.p_value_state < 0.01) ++n_sig;
                max_mi = std::max(max_mi, x.mi_state_bits);
            }
            line(fmt::format("   independence: {} of {} positions with p < 0.01 (state view), max MI {} bits", n_sig,
                             h.independence.size(), g(max_mi)));
        } else {
            line("   independence: " + h.independence_skipped);
        }
    } else {
        line("M7 " + h.skipped);
    }
    const auto& c = r.correlations;
    if (c.skipped.empty()) {
        // The metrics users compare n_pre against lead (kM8LeadMetrics order),
        // then the other columns in schema order; names as in the JSON.
        std::string lead, rest;
        for (const char* name : kM8LeadMetrics)
            for (const auto& e : c.entries)
                if (e.metric == name && std::isfinite(e.spearman.statistic))
                    lead += fmt::format("  {} {:+.2f}", e.metric, e.spearman.statistic);
        int shown = 0;
        for (const auto& e : c.entries) {
            if (e.metric == "length" || e.metric == "exact" || e.metric == "n_pre_frac") continue;
            if (std::find(std::begin(kM8LeadMetrics), std::end(kM8LeadMetrics), e.metric) != std::end(kM8LeadMetrics))
                continue;
            if (!std::isfinite(e.spearman.statistic) || shown >= 6) continue;
            rest += fmt::format("  {} {:+.2f}", e.metric, e.spearman.statistic);
            ++shown;
        }
        if (lead.empty() && rest.empty()) {
            line("M8 Spearman vs n_pre: no metric columns");
        } else {
            line("M8 Spearman vs n_pre:" + (lead.empty() ? rest : lead));
            if (!lead.empty() && !rest.empty()) line("   also:" + rest);
        }
    } else {
        line("M8 " + c.skipped);
    }
    const auto& p = r.predictors;
    if (p.skipped.empty())
        line(fmt::format("M9 {} prompts ({} shared); r_j is the majority at {} of {} positions; divergences: {} "
                         "data-ambiguous, {} model",
                         p.n_prompts, p.n_shared_prompts, p.n_majority, p.n_positions, p.divergence.data_ambiguous,
                         p.divergence.model));
    else
        line("M9 " + p.skipped);
    const auto& sim = r.similarity;
    if (sim.run) {
        const auto& x = *sim.run;
        if (x.embed_dim > 0)
            line(fmt::format("M10 S_input {}  S_full {}  delta S {}  ({} neighbours, {})", g(x.s_input), g(x.s_full),
                             g(x.delta_s), x.k, x.knn_method));
        std::string cs;
        for (const auto& e : sim.correlations)
            if (std::isfinite(e.spearman.statistic)) cs += fmt::format("  {} {:+.2f}", e.figure, e.spearman.statistic);
        if (!cs.empty()) line("    Spearman vs n_pre:" + cs);
        if (!sim.claim.empty()) line(fmt::format("    claim {}: {}", sim.claim, sim.claim_text));
        line(fmt::format("    {} near-duplicate clusters ({} samples, largest {}); {} samples share a prompt, {} a "
                         "reference",
                         x.n_clusters, x.n_clustered_samples, x.largest_cluster, x.n_duplicate_prompts,
                         x.n_duplicate_references));
    }
    if (!sim.skipped.empty()) line("M10 " + sim.skipped);
    const auto& tr = sim.triage;
    if (tr.skipped.empty() && !tr.ks.empty()) {
        // The largest k: the broadest view of the tail.
        const std::size_t i = tr.ks.size() - 1;
        std::string ss;
        for (const auto& x : tr.signals)
            ss += fmt::format("  {} {}", x.signal, g(x.points[i].precision));
        line(fmt::format("M12 triage precision@{} (random {}):{}", tr.ks[i], g(tr.random_precision[i]), ss));
    }
    const auto& mi = r.mitigation;
    for (const auto& a : mi.applied) line("M12 applied: " + a);
    if (mi.skipped.empty() && mi.greedy.n > 0) {
        const auto& u = mi.greedy;
        std::string g_txt;
        if (mi.guarded)
            g_txt = fmt::format(" | guarded: max n_pre {}, exact {}, approximate {}, log-prob {} ({} steps blocked)",
                                g(mi.guarded->max_n_pre), mi.guarded->n_exact, g(mi.guarded->approx_share),
                                g(mi.guarded->mean_logprob), mi.blocked_steps);
        line(fmt::format("M12 greedy outputs: max n_pre {}, exact {}, approximate {}, log-prob {}{}", g(u.max_n_pre),
                         u.n_exact, g(u.approx_share), g(u.mean_logprob), g_txt));
    }
    const auto& t = r.trends;
    if (t.checkpoints.size() >= 2) {
        line("M11 checkpoints (step, training loss: the epoch's mean, n_pre mean, p99, max, exact):");
        bool last_step_only = false;
        for (std::size_t i = 0; i < t.checkpoints.size() && i < 8; ++i) {
            const auto& k = t.checkpoints[i];
            // A run that recorded only the last step's loss shows it, marked.
            std::string loss = "?";
            if (k.train_loss) {
                loss = g(*k.train_loss);
            } else if (k.train_loss_last_step) {
                loss = g(*k.train_loss_last_step) + " (last step)";
                last_step_only = true;
            }
            line(fmt::format("   run {} step {} loss {} mean {} p99 {} max {} exact {}", k.run_id,
                             k.step ? std::to_string(*k.step) : "?", loss, g(k.mean), g(k.p99), g(k.max), k.n_exact));
        }
        if (last_step_only)
            line("   (last step): no epoch mean recorded (a store from before schema version 3, or no loss logged in "
                 "the epoch), the last step's loss instead");
        for (const auto& x : t.comparisons) {
            if (x.relation == "pair") continue;
            if (x.wilcoxon)
                line(fmt::format("   {} {} -> {}: Wilcoxon n={} p={} r={} rank-biserial {}", x.relation, x.run_a,
                                 x.run_b, x.wilcoxon->n, g(x.wilcoxon->p_value), g(x.wilcoxon->effect_size_r),
                                 g(x.wilcoxon->rank_biserial)));
            else
                line(fmt::format("   {} {} -> {}: {}", x.relation, x.run_a, x.run_b, x.skipped));
        }
    } else if (!t.skipped.empty()) {
        line("M11 " + t.skipped);
    }
    for (const auto& w : r.warnings) line("warning: " + w);
    return out;
}

}  // namespace memskew
