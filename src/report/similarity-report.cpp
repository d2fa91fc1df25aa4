// The report's section "Does similarity explain it?" (METHOD M10 and the
// data side of M12), from AnalysisResult::similarity.
#include <fmt/format.h>

#include <cmath>
#include <set>

#include "memskew/stats.h"
#include "report/report-sections.h"
#include "report/svg.h"

namespace memskew {

namespace {

using report::Chart;
using report::format_number;
using report::format_p_value;
using report::ScaleKind;

std::string num(double v, int digits = 3) { return std::isfinite(v) ? format_number(v, digits) : std::string("n/a"); }
std::string pct(double f) { return std::isfinite(f) ? format_number(std::round(f * 1000) / 10, 3) + "%" : "n/a"; }

class Section : HtmlSection {
public:
    using HtmlSection::HtmlSection;

    std::string render() {
        const auto& s = r_.similarity;
        s_ += "<h2 id=\"similarity\">Does similarity explain it? Neighbours, near-duplicates and which signal finds "
              "the tail</h2>\n";
        if (!s.skipped.empty()) note(s.skipped);
        if (s.run) {
            checkpoint_table();
            if (!s.claim_text.empty())
                s_ += fmt::format("<p class=\"finding-line\" id=\"similarity-claim\"><b>{}</b> {}</p>\n",
                                  h(s.claim == "holds" ? "The paper's remark holds here." : s.claim == "does not hold"
                                                                                             ? "The paper's remark does not hold here."
                                                                                             : "Inconclusive."),
                                  h(s.claim_text));
            s_ += "<div class=\"charts\">\n";
            delta_scatter();
            buckets_chart("chart-similarity-delta-quintiles", "Mean n_pre by quintile of per-sample ΔS", s.by_delta,
                          "Samples split into five equal groups by ΔS_i (mean similarity to the k nearest neighbours, "
                          "full sample minus prompt). Bars: mean n_pre; the tooltip has the 90th percentile and "
                          "the verbatim count.");
            buckets_chart("chart-similarity-cluster-size", "Mean n_pre by near-duplicate cluster size",
                          s.by_cluster_size,
                          "Clusters of near-duplicate samples (MinHash over token 5-grams, LSH, estimated Jaccard "
                          "≥ the threshold in the table below). Repeated content is what gets memorized.");
            s_ += "</div>\n";
            correlation_table();
            cluster_table();
        }
        triage_table();
        return s_;
    }

private:

    void checkpoint_table() {
        const auto& s = r_.similarity;
        const RunSimilarity& x = *s.run;
        s_ += "<table id=\"table-similarity-runs\">\n<tr><th>run</th><th class=\"num\">step</th><th "
              "class=\"num\">epoch</th><th class=\"num\">samples</th><th class=\"num\">S_input</th><th "
              "class=\"num\">S_full</th><th class=\"num\">ΔS</th><th>neighbours</th></tr>\n";
        for (const auto& c : s.checkpoints)
            s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
                              "class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
                              "class=\"num\">{}</td><td>{}</td></tr>\n",
                              c.run_id, c.step ? std::to_string(*c.step) : "–", c.epoch ? std::to_string(*c.epoch) : "–",
                              c.n_samples, num(c.s_input), num(c.s_full), num(c.delta_s),
                              h(c.knn_method.empty()
                                    ? std::string("none (no embeddings)")
                                    : c.knn_method + (std::isfinite(c.knn_recall)
                                                          ? fmt::format(", recall@k {}", num(c.knn_recall))
                                                          : std::string())));
        s_ += "</table>\n";
        note(fmt::format(
            "S_input and S_full are the mean pairwise cosine similarities of the prompt and of the full-sample "
            "embeddings ({}; mean of the final hidden states), ΔS = S_full − S_input. This run: {} near-duplicate "
            "clusters holding {} samples (largest {}); {} samples share their exact prompt with another, {} their "
            "exact reference.",
            x.embed_model.empty() ? "from the model under test" : "from " + x.embed_model, x.n_clusters,
            x.n_clustered_samples, x.largest_cluster, x.n_duplicate_prompts, x.n_duplicate_references));
    }

    void delta_scatter() {
        const auto& s = r_.similarity;
        const RunColumns& c = in_.columns;
        if (s.sample_delta.size() != c.size() || c.size() == 0) return;
        std::vector<std::size_t> valid;
        for (std::size_t i = 0; i < c.size(); ++i)
            if (c.n_pre[i] >= 0 && std::isfinite(s.sample_delta[i])) valid.push_back(i);
        if (valid.empty()) return;
        const ScatterRows picked = scatter_rows(c, valid, p_.max_scatter_points, 0x64656c7461ULL);
        Chart ch;
        ch.id = "chart-similarity-scatter";
        ch.title = "n_pre vs per-sample ΔS";
        ch.width = 360;
        ch.height = 320;
        report::Points pts;
        pts.color = "#e15759";
        for (std::size_t i : picked.rows) {
            pts.x.push_back(s.sample_delta[i]);
            pts.y.push_back(static_cast<double>(c.n_pre[i]));
            pts.titles.push_back(picked.labelled.count(i) ? fmt::format("{}: n_pre {}, ΔS_i {}", c.sample_id[i], c.n_pre[i],
                                                                 num(s.sample_delta[i]))
                                                   : std::string());
        }
        ch.points.push_back(pts);
        ch.x = report::fit_axis(ScaleKind::kLinear, pts.x, "ΔS_i (full − prompt neighbour similarity)");
        ch.y = report::fit_axis(ScaleKind::kLinear, pts.y, "n_pre", true);
        ch.y.integer = true;
        std::string cap = "Each point a sample: left, its prompt resembles its neighbours' more than its full "
                          "sequence does (similar prompts, diverging answers).";
        for (const auto& e : s.correlations)
            if (e.figure == "knn_sim_delta" && std::isfinite(e.spearman.statistic))
                cap += fmt::format(" Spearman ρ = {} (n = {}, p = {}).", num(e.spearman.statistic, 2), e.n_used,
                                   format_p_value(e.spearman.p_value));
        if (picked.rows.size() < valid.size())
            cap += fmt::format(" Showing {} of {} samples (the most memorized always).", picked.rows.size(), valid.size());
        figure(ch, h(cap));
    }

    void buckets_chart(const std::string& id, const std::string& title, const std::vector<SimilarityBucket>& buckets,
                       const std::string& caption) {
        if (buckets.empty()) return;
        Chart ch;
        ch.id = id;
        ch.title = title;
        ch.width = 360;
        ch.height = 320;
        report::Bars bars;
        bars.color = "#4e79a7";
        std::vector<double> ys;
        for (std::size_t b = 0; b < buckets.size(); ++b) {
            const auto& x = buckets[b];
            bars.x0.push_back(static_cast<double>(b) + 0.1);
            bars.x1.push_back(static_cast<double>(b) + 0.9);
            bars.y.push_back(std::isfinite(x.mean_n_pre) ? x.mean_n_pre : 0.0);
            bars.titles.push_back(fmt::format("{}: {} samples, mean n_pre {}, p90 {}, max {}, {} verbatim", x.label,
                                              x.n, num(x.mean_n_pre), num(x.p90_n_pre), x.max_n_pre, x.n_exact));
            ys.push_back(bars.y.back());
        }
        ch.bars.push_back(bars);
        ch.x = report::fit_axis(ScaleKind::kLinear, {0.0, static_cast<double>(buckets.size())},
                                "bucket (left to right: " + buckets.front().label + " … " + buckets.back().label + ")");
        ch.x.nice = false;
        ch.y = report::fit_axis(ScaleKind::kLinear, ys, "mean n_pre", true);
        std::string rows;
        for (const auto& x : buckets)
            rows += fmt::format("{}{}: {} samples, mean {}", rows.empty() ? " " : "; ", x.label, x.n, num(x.mean_n_pre));
        figure(ch, h(caption + rows + "."));
    }

    void correlation_table() {
        const auto& s = r_.similarity;
        if (s.correlations.empty()) return;
        s_ += "<table id=\"table-similarity-correlations\">\n<tr><th>per-sample figure</th><th "
              "class=\"num\">samples</th><th class=\"num\">Spearman ρ with n_pre</th><th "
              "class=\"num\">p-value</th></tr>\n";
        for (const auto& e : s.correlations)
            s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
                              "class=\"num\">{}</td></tr>\n",
                              h(e.figure), e.n_used,
                              h(std::isfinite(e.spearman.statistic) ? num(e.spearman.statistic, 2)
                                                                    : (e.null_reason.empty() ? "n/a" : e.null_reason)),
                              h(format_p_value(e.spearman.p_value)));
        s_ += "</table>\n";
    }

    void cluster_table() {
        const auto& s = r_.similarity;
        if (s.largest_clusters.empty()) {
            note("No near-duplicate clusters: no two samples reach the Jaccard threshold.");
            return;
        }
        s_ += "<table id=\"table-clusters\">\n<tr><th>cluster (first sample index)</th><th class=\"num\">size</th><th "
              "class=\"num\">mean n_pre</th><th class=\"num\">max n_pre</th><th>members (n_pre)</th></tr>\n";
        for (const auto& c : s.largest_clusters) {
            std::string members;
            for (const auto& m : c.members)
                members += fmt::format("{}{} ({})", members.empty() ? "" : ", ", m.sample_id,
                                       m.n_pre >= 0 ? std::to_string(m.n_pre) : std::string("–"));
            if (static_cast<int64_t>(c.members.size()) < c.size) members += ", …";
            s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
                              "class=\"num\">{}</td><td class=\"text\">{}</td></tr>\n",
                              c.cluster, c.size, num(c.mean_n_pre), c.max_n_pre, h(members));
        }
        s_ += "</table>\n";
        note("memskew filter --max-per-cluster 1 writes the dataset without the extra members of each cluster "
             "(a manifest lists what it removed); train on it and probe again to see what that buys.");
    }

    void triage_table() {
        const auto& t = r_.similarity.triage;
        if (!t.skipped.empty()) {
            note("Risk triage skipped: " + t.skipped);
            return;
        }
        s_ += "<h3 id=\"triage\">Which cheap signal finds the tail?</h3>\n";
        s_ += "<table id=\"table-triage\">\n<tr><th>signal</th><th>riskier</th>";
        for (std::size_t i = 0; i < t.ks.size(); ++i)
            s_ += fmt::format("<th class=\"num\">precision@{0}</th><th class=\"num\">recall@{0}</th>", t.ks[i]);
        s_ += "</tr>\n<tr><td>random pick</td><td>–</td>";
        for (std::size_t i = 0; i < t.ks.size(); ++i)
            s_ += fmt::format("<td class=\"num\">{}</td><td class=\"num\">{}</td>", pct(t.random_precision[i]),
                              pct(static_cast<double>(t.ks[i]) / static_cast<double>(r_.n_samples)));
        s_ += "</tr>\n";
        for (const auto& x : t.signals) {
            s_ += fmt::format("<tr><td>{}</td><td>{}</td>", h(x.signal), h(x.direction));
            for (const auto& p : x.points)
                s_ += fmt::format("<td class=\"num\">{}</td><td class=\"num\">{}</td>", pct(p.precision), pct(p.recall));
            s_ += "</tr>\n";
        }
        s_ += "</table>\n";
        std::string tails;
        for (std::size_t i = 0; i < t.ks.size(); ++i)
            tails += fmt::format("{}k = {}: {} samples with n_pre ≥ {}", tails.empty() ? "" : "; ", t.ks[i],
                                 t.tail_sizes[i], t.tail_thresholds[i]);
        note("Each signal ranks the samples without greedy decoding; its top k is compared with the true tail, the "
             "samples whose n_pre is at least the k-th largest and at least 1 (ties included): " + tails +
             ". Teacher-forced signals need a pass over the model; the data-side ones (neighbour similarity, "
             "cluster size, copies, unambiguous prefix) need none.");
    }
};

}  // namespace

std::string render_similarity_section(const AnalysisResult& result, const ReportInputs& inputs,
                                      const ReportParams& params) {
    return Section(result, inputs, params).render();
}

}  // namespace memskew
