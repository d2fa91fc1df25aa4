// METHOD M10 (does inter-sample similarity explain the tail?) and the data
// side of M12 (which cheap signal finds the tail) over a run's stored
// similarity figures and metric columns.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <unordered_map>

#include "analysis/analysis-impl.h"

namespace memskew::analysis_detail {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Spearman's rho of n_pre with one figure over the samples where it is finite.
SimilarityCorrelation correlate(const std::string& name, const NPreView& v, const std::vector<double>& figure) {
    SimilarityCorrelation c;
    c.figure = name;
    std::vector<double> x, y;
    for (std::size_t k = 0; k < v.column.size(); ++k) {
        const double f = figure[v.column[k]];
        if (!std::isfinite(f)) continue;
        x.push_back(static_cast<double>(v.n_pre[k]));
        y.push_back(f);
    }
    c.n_used = y.size();
    c.spearman.n = y.size();
    if (y.size() < 3) {
        c.spearman.statistic = c.spearman.p_value = kNaN;
        c.null_reason = "needs at least 3 samples with this figure";
        return c;
    }
    c.spearman = stats::spearman(x, y);
    if (std::isnan(c.spearman.statistic)) c.null_reason = "constant over the samples used (n_pre or the figure)";
    return c;
}

SimilarityBucket bucket_of(std::string label, const std::vector<std::size_t>& members, const NPreView& v,
                           const std::vector<double>& figure) {
    SimilarityBucket b;
    b.label = std::move(label);
    b.n = static_cast<int64_t>(members.size());
    if (members.empty()) return b;
    std::vector<double> n_pre;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (std::size_t k : members) {
        n_pre.push_back(static_cast<double>(v.n_pre[k]));
        b.max_n_pre = std::max(b.max_n_pre, v.n_pre[k]);
        b.n_exact += v.exact[k];
        lo = std::min(lo, figure[v.column[k]]);
        hi = std::max(hi, figure[v.column[k]]);
    }
    b.lo = lo;
    b.hi = hi;
    b.mean_n_pre = std::accumulate(n_pre.begin(), n_pre.end(), 0.0) / static_cast<double>(n_pre.size());
    b.p90_n_pre = stats::quantile(n_pre, 0.9);
    return b;
}

// Quintiles of the per-sample ΔS: five groups of (nearly) equal count by rank.
std::vector<SimilarityBucket> delta_buckets(const NPreView& v, const std::vector<double>& delta) {
    std::vector<std::size_t> order;
    for (std::size_t k = 0; k < v.column.size(); ++k)
        if (std::isfinite(delta[v.column[k]])) order.push_back(k);
    std::vector<SimilarityBucket> out;
    if (order.size() < 5) return out;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return delta[v.column[a]] < delta[v.column[b]]; });
    const std::size_t n = order.size();
    for (std::size_t q = 0; q < 5; ++q) {
        const std::vector<std::size_t> members(order.begin() + static_cast<std::ptrdiff_t>(q * n / 5),
                                               order.begin() + static_cast<std::ptrdiff_t>((q + 1) * n / 5));
        out.push_back(bucket_of(fmt::format("Q{}{}", q + 1, q == 0 ? " (lowest)" : q == 4 ? " (highest)" : ""),
                                members, v, delta));
    }
    return out;
}

std::vector<SimilarityBucket> cluster_size_buckets(const NPreView& v, const std::vector<double>& size) {
    struct Class {
        const char* label;
        double lo, hi;
    };
    const Class classes[] = {{"1 (no near-duplicate)", 1, 1}, {"2", 2, 2}, {"3-4", 3, 4}, {"5-9", 5, 9},
                             {"10+", 10, std::numeric_limits<double>::infinity()}};
    std::vector<SimilarityBucket> out;
    for (const auto& c : classes) {
        std::vector<std::size_t> members;
        for (std::size_t k = 0; k < v.column.size(); ++k) {
            const double s = size[v.column[k]];
            if (s >= c.lo && s <= c.hi) members.push_back(k);
        }
        if (!members.empty()) out.push_back(bucket_of(c.label, members, v, size));
    }
    return out;
}

std::vector<ClusterSummary> largest_clusters(const RunColumns& columns, const std::vector<double>& cluster,
                                             const std::vector<double>& size, std::size_t top_k) {
    std::map<int64_t, std::vector<std::size_t>> members;  // cluster -> column rows
    for (std::size_t i = 0; i < columns.size(); ++i)
        if (size[i] >= 2) members[static_cast<int64_t>(cluster[i])].push_back(i);
    std::vector<ClusterSummary> out;
    for (auto& [id, rows] : members) {
        ClusterSummary c;
        c.cluster = id;
        c.size = static_cast<int64_t>(rows.size());
        double sum = 0;
        int64_t n = 0;
        for (std::size_t i : rows) {
            const int64_t x = columns.n_pre[i];
            c.members.push_back({columns.sample_id[i], x});
            if (x < 0) continue;
            sum += static_cast<double>(x);
            ++n;
            c.max_n_pre = std::max(c.max_n_pre, x);
        }
        c.mean_n_pre = n ? sum / static_cast<double>(n) : kNaN;
        std::stable_sort(c.members.begin(), c.members.end(),
                         [](const ClusterMember& a, const ClusterMember& b) { return a.n_pre > b.n_pre; });
        if (c.members.size() > top_k) c.members.resize(top_k);
        out.push_back(std::move(c));
    }
    std::stable_sort(out.begin(), out.end(), [](const ClusterSummary& a, const ClusterSummary& b) {
        if (a.size != b.size) return a.size > b.size;
        return a.mean_n_pre > b.mean_n_pre;
    });
    if (out.size() > top_k) out.resize(top_k);
    return out;
}

TriageSection compute_triage(const NPreView& v, const std::vector<std::pair<std::string, const std::vector<double>*>>& signals,
                             const std::vector<std::string>& lower_is_riskier, const AnalyzeParams& params) {
    TriageSection t;
    const std::size_t m = v.column.size();
    if (m < 2) {
        t.skipped = "needs at least 2 samples with n_pre";
        return t;
    }
    std::vector<int64_t> ks = {static_cast<int64_t>(params.top_k)};
    for (double f : params.triage_fractions) ks.push_back(static_cast<int64_t>(std::ceil(f * static_cast<double>(m) - 1e-9)));
    for (auto& k : ks) k = std::clamp<int64_t>(k, 1, static_cast<int64_t>(m));
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    std::vector<int64_t> sorted_n_pre(v.n_pre.begin(), v.n_pre.end());
    std::sort(sorted_n_pre.begin(), sorted_n_pre.end(), std::greater<>());
    if (sorted_n_pre.front() == 0) {
        t.skipped = "no sample reproduces even its first reference token (n_pre = 0 everywhere): there is no tail "
                    "to find";
        return t;
    }
    t.ks = ks;
    for (int64_t k : ks) {
        // A tail of samples with n_pre = 0 says nothing (it would hold every
        // sample): at least 1, so the tail may be smaller than k.
        const int64_t threshold = std::max<int64_t>(1, sorted_n_pre[static_cast<std::size_t>(k - 1)]);
        const int64_t tail = static_cast<int64_t>(
            std::count_if(v.n_pre.begin(), v.n_pre.end(), [&](int64_t x) { return x >= threshold; }));
        t.tail_thresholds.push_back(threshold);
        t.tail_sizes.push_back(tail);
        t.random_precision.push_back(static_cast<double>(tail) / static_cast<double>(m));
    }
    for (const auto& [name, values] : signals) {
        TriageSignal s;
        s.signal = name;
        const bool lower = std::find(lower_is_riskier.begin(), lower_is_riskier.end(), name) != lower_is_riskier.end();
        s.direction = lower ? "lower" : "higher";
        std::vector<double> score(m);
        for (std::size_t k = 0; k < m; ++k) {
            double x = (*values)[v.column[k]];
            if (std::isnan(x)) {
                score[k] = -std::numeric_limits<double>::infinity();  // ranks last
                continue;
            }
            ++s.n_used;
            score[k] = lower ? -x : x;
        }
        if (s.n_used == 0) continue;
        std::vector<std::size_t> order(m);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] > score[b]; });
        for (std::size_t i = 0; i < ks.size(); ++i) {
            TriagePoint p;
            p.k = ks[i];
            for (int64_t r = 0; r < p.k; ++r) p.hits += v.n_pre[order[static_cast<std::size_t>(r)]] >= t.tail_thresholds[i];
            p.precision = static_cast<double>(p.hits) / static_cast<double>(p.k);
            p.recall = static_cast<double>(p.hits) / static_cast<double>(t.tail_sizes[i]);
            s.points.push_back(p);
        }
        t.signals.push_back(std::move(s));
    }
    return t;
}

std::string fmt_p(double p) { return std::isnan(p) ? std::string("n/a") : fmt::format("{:.2g}", p); }

}  // namespace

SimilaritySection compute_similarity_section(const std::vector<RunInput>& runs, std::size_t selected,
                                             const NPreView& v, const PredictorSection& predictors,
                                             const AnalyzeParams& params) {
    SimilaritySection out;
    const RunInput& run = runs[selected];
    const RunColumns& c = run.columns;
    const std::size_t n = c.size();

    // The S table over every run with figures, in checkpoint order.
    std::vector<std::size_t> order(runs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return checkpoint_before(runs[a].info, runs[b].info); });
    for (std::size_t i : order) {
        const auto& s = runs[i].similarity;
        if (!s) continue;
        RunSimilarityRow row;
        row.run_id = runs[i].info.run_id;
        row.step = runs[i].info.spec.checkpoint_step;
        row.epoch = runs[i].info.spec.checkpoint_epoch;
        row.s_input = s->s_input;
        row.s_full = s->s_full;
        row.delta_s = s->delta_s;
        row.n_samples = s->n_samples;
        row.knn_method = s->knn_method;
        row.knn_recall = s->knn_recall;
        out.checkpoints.push_back(row);
    }

    // Per-sample columns, NaN where absent.
    std::vector<double> knn_prompt(n, kNaN), knn_full(n, kNaN), delta(n, kNaN), cluster(n, kNaN), cluster_size(n, kNaN),
        prompt_copies(n, kNaN), reference_copies(n, kNaN);
    if (run.similarity) {
        out.run = run.similarity;
        std::unordered_map<std::string_view, std::size_t> row_of;
        row_of.reserve(n);
        for (std::size_t i = 0; i < n; ++i) row_of.emplace(c.sample_id[i], i);
        for (const auto& s : run.sample_similarity) {
            const auto it = row_of.find(s.sample_id);
            if (it == row_of.end()) continue;
            const std::size_t i = it->second;
            knn_prompt[i] = s.knn_sim_prompt;
            knn_full[i] = s.knn_sim_full;
            delta[i] = s.knn_sim_delta;
            cluster[i] = static_cast<double>(s.cluster);
            cluster_size[i] = static_cast<double>(s.cluster_size);
            prompt_copies[i] = static_cast<double>(s.prompt_copies);
            reference_copies[i] = static_cast<double>(s.reference_copies);
        }
        const bool embeddings = run.similarity->embed_dim > 0;
        if (embeddings) {
            for (const char* name : {"knn_sim_prompt", "knn_sim_full", "knn_sim_delta"})
                out.correlations.push_back(correlate(name, v,
                                                     std::string(name) == "knn_sim_prompt" ? knn_prompt
                                                     : std::string(name) == "knn_sim_full" ? knn_full
                                                                                           : delta));
            out.by_delta = delta_buckets(v, delta);
            out.sample_delta = delta;
        }
        out.correlations.push_back(correlate("cluster_size", v, cluster_size));
        out.correlations.push_back(correlate("prompt_copies", v, prompt_copies));
        out.correlations.push_back(correlate("reference_copies", v, reference_copies));
        out.by_cluster_size = cluster_size_buckets(v, cluster_size);
        out.largest_clusters = largest_clusters(c, cluster, cluster_size, params.top_k);

        // The paper's remark: similar prompts with diverging full sequences
        // (low per-sample ΔS) are memorized less, so rho(n_pre, ΔS) > 0.
        if (embeddings) {
            const auto& r = out.correlations[2].spearman;
            if (std::isnan(r.statistic) || std::isnan(r.p_value)) {
                out.claim = "inconclusive";
                out.claim_text = "Spearman's rho of n_pre with the per-sample delta S is undefined on this run (" +
                                 out.correlations[2].null_reason + ").";
            } else if (r.p_value < 0.05 && r.statistic > 0) {
                out.claim = "holds";
                out.claim_text = fmt::format(
                    "Samples whose prompts are similar to their neighbours' while their full sequences diverge (low "
                    "per-sample delta S) are memorized less: rho(n_pre, delta S) = {:+.3f}, p = {}.",
                    r.statistic, fmt_p(r.p_value));
            } else if (r.p_value < 0.05) {
                out.claim = "does not hold";
                out.claim_text = fmt::format(
                    "On this run n_pre falls as the per-sample delta S rises (rho = {:+.3f}, p = {}): the opposite of "
                    "the paper's remark that diverging full sequences are memorized less.",
                    r.statistic, fmt_p(r.p_value));
            } else {
                out.claim = "inconclusive";
                out.claim_text = fmt::format(
                    "No significant link between n_pre and the per-sample delta S on this run (rho = {:+.3f}, p = {}).",
                    r.statistic, fmt_p(r.p_value));
            }
        } else {
            out.skipped = fmt::format(
                "run {} was probed with --no-embeddings: no S_input/S_full or neighbour figures (probe without it, "
                "or with --embed-model M, to get them); the duplicate figures are below",
                run.info.run_id);
        }
    } else {
        out.skipped = fmt::format(
            "run {} has no similarity figures: probe it with this memskew (sample embeddings are on by default; "
            "--embed-model M takes them from another model, --keep-embeddings keeps the vectors); a shard's figures "
            "are computed by `memskew merge`",
            run.info.run_id);
    }

    // Risk triage (M12): which cheap signal finds the tail.
    std::vector<std::pair<std::string, const std::vector<double>*>> signals;
    for (const char* name : {"expected_n_pre", "log_p_z", "min_k_plus_plus", "loss"})
        if (std::find(c.metric_names.begin(), c.metric_names.end(), name) != c.metric_names.end())
            signals.emplace_back(name, &c.metric(name));
    std::vector<double> unambiguous(n, kNaN);
    if (predictors.unambiguous_prefix.size() == n)
        for (std::size_t i = 0; i < n; ++i)
            if (predictors.unambiguous_prefix[i] >= 0) unambiguous[i] = static_cast<double>(predictors.unambiguous_prefix[i]);
    if (run.similarity) {
        if (run.similarity->embed_dim > 0) {
            signals.emplace_back("knn_sim_full", &knn_full);
            signals.emplace_back("knn_sim_delta", &delta);
        }
        signals.emplace_back("cluster_size", &cluster_size);
        signals.emplace_back("reference_copies", &reference_copies);
    }
    signals.emplace_back("unambiguous_prefix", &unambiguous);
    out.triage = compute_triage(v, signals, {"loss"}, params);
    return out;
}

}  // namespace memskew::analysis_detail
