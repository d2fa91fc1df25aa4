// The page of `memskew study`: arms, the tail per epoch against training
// loss, the tail against dataset size and the composition tests, as one
// self-contained HTML file with inline SVG charts (report/svg.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "memskew/study-report.h"
#include "report/svg.h"

namespace memskew {

namespace {

const char* kColors[] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"};

std::string num(double v, int digits = 3) {
    if (!std::isfinite(v)) return "–";
    return report::format_number(v, digits);
}

std::string pval(double p) {
    if (!std::isfinite(p)) return "–";
    if (p < 1e-4) return fmt::format("{:.2e}", p);
    return fmt::format("{:.4f}", p);
}


// Arms side by side at their last epoch (METHOD M12): what each applies, the
// tail, the exact and approximate reproduction, and what it costs (training
// and held-out loss; for the guard, the log-probability of what it emitted).
std::string mitigation_table(const StudySummary& sum) {
    using report::escape_html;
    bool any = false;
    for (const auto& a : sum.arms) {
        any = any || !a.mitigation.empty();
        for (const auto& p : a.points) any = any || std::isfinite(p.held_out_loss) || p.greedy;
    }
    if (!any) return {};
    std::string h =
        "<h2>Mitigation side by side</h2>\n<p class=\"note\">At each arm's last epoch. n_pre: of the greedy output "
        "(teacher-forced for unguarded decoding, which equals greedy generation; the guarded output's own otherwise). "
        "Approximate: outputs within 10% normalised edit distance of the reference (a guard stops exact n-gram "
        "copies, not near-verbatim ones). Held-out loss: mean teacher-forced loss on samples no arm trained on. "
        "Guard cost: the model's mean log-probability of the tokens it emitted, unguarded minus guarded.</p>\n"
        "<table id=\"table-mitigation\"><tr><th class=\"l\">arm</th><th class=\"l\">mitigation</th><th>epoch</th>"
        "<th>mean n_pre</th><th>p99</th><th>max</th><th>exact</th><th>approximate</th><th>mean training loss of the epoch</th>"
        "<th>held-out loss</th><th>blocked steps</th><th>guard cost</th></tr>\n";
    auto pct = [](double f) { return std::isfinite(f) ? report::format_number(100 * f, 3) + "%" : std::string("–"); };
    for (const auto& a : sum.arms) {
        if (a.points.empty()) continue;
        const StudyPoint& p = a.points.back();
        h += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                         "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>–</td><td>–</td></tr>\n",
                         escape_html(a.name), escape_html(a.mitigation.empty() ? "none" : a.mitigation), p.epoch,
                         num(p.mean_n_pre), num(p.p99_n_pre), num(p.max_n_pre), p.n_exact,
                         pct(p.greedy ? p.greedy->approx_share : NAN),
                         num(p.train_loss, 4), num(p.held_out_loss, 4));
        if (p.guarded)
            h += fmt::format("<tr><td class=\"l\">{} + guard</td><td class=\"l\">decoding guard</td><td>{}</td>"
                             "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                             "<td>{}</td></tr>\n",
                             escape_html(a.name), p.epoch, num(p.guarded->mean_n_pre), num(p.guarded->p99_n_pre),
                             num(p.guarded->max_n_pre), p.guarded->n_exact, pct(p.guarded->approx_share),
                             num(p.train_loss, 4), num(p.held_out_loss, 4), num(p.guard_blocked),
                             num(p.greedy ? p.greedy->mean_logprob - p.guarded->mean_logprob : NAN));
    }
    return h + "</table>\n";
}

}  // namespace

std::string study_sources_text(const std::vector<StudySource>& sources) {
    std::string s;
    for (const auto& src : sources) s += fmt::format("{}{} {}", s.empty() ? "" : " + ", src.dataset, src.n);
    return s;
}

std::string render_study_report(const StudySummary& sum) {
    using report::escape_html;
    std::string h;
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape_html(sum.name) +
         " — memskew study</title>\n<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;"
         "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:"
         "3px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}h2{margin-top:2em}"
         ".note{color:#555;font-size:0.9em}svg{display:block;margin:1em 0}</style></head><body>\n";
    h += "<h1>" + escape_html(sum.name) + "</h1>\n";
    h += "<p class=\"note\">memskew study (METHOD M11). Model: " +
         escape_html(sum.model) + ". Store: " +
         escape_html(sum.store_path) + ". n_pre: the number of leading reference tokens the model reproduces "
         "greedily, teacher-forced, probed on each arm's own training samples.</p>\n";

    // Arms table.
    h += "<h2>Arms</h2>\n<table id=\"table-arms\"><tr><th class=\"l\">arm</th><th class=\"l\">training set</th>"
         "<th>samples</th><th>epochs</th><th>final mean training loss of the epoch</th><th>final mean n_pre</th><th>final p99</th>"
         "<th>final max</th><th>exact</th></tr>\n";
    for (const auto& a : sum.arms) {
        const StudyPoint* last = a.points.empty() ? nullptr : &a.points.back();
        h += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                         "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
                         escape_html(a.name), escape_html(study_sources_text(a.sources)), a.n_train_samples, a.points.size(),
                         last ? num(last->train_loss, 4) : "–", last ? num(last->mean_n_pre) : "–",
                         last ? num(last->p99_n_pre) : "–", last ? num(last->max_n_pre) : "–",
                         last ? std::to_string(last->n_exact) : "–");
    }
    h += "</table>\n";
    h += mitigation_table(sum);

    // Trend charts.
    auto epoch_chart = [&](const std::string& id, const std::string& title, const std::string& ylabel, bool loss_axis) {
        report::Chart ch;
        ch.id = id;
        ch.title = title;
        std::vector<double> xs, ys;
        size_t k = 0;
        for (const auto& a : sum.arms) {
            const std::string color = kColors[k++ % 10];
            report::Line max_l, p99_l;
            max_l.name = a.name + (loss_axis ? "" : " max");
            max_l.color = p99_l.color = color;
            max_l.markers = p99_l.markers = true;
            p99_l.name = a.name + " p99";
            p99_l.dashed = true;
            for (const auto& p : a.points) {
                const double x = static_cast<double>(p.epoch);
                if (loss_axis) {
                    max_l.x.push_back(x);
                    max_l.y.push_back(p.train_loss);
                    ys.push_back(p.train_loss);
                } else {
                    max_l.x.push_back(x);
                    max_l.y.push_back(p.max_n_pre);
                    p99_l.x.push_back(x);
                    p99_l.y.push_back(p.p99_n_pre);
                    ys.push_back(p.max_n_pre);
                    ys.push_back(p.p99_n_pre);
                }
                xs.push_back(x);
            }
            ch.lines.push_back(max_l);
            if (!loss_axis) ch.lines.push_back(p99_l);
        }
        if (xs.empty()) return std::string("<p class=\"note\">No probed checkpoints yet.</p>\n");
        ch.x = report::fit_axis(report::ScaleKind::kLinear, xs, "epoch");
        ch.x.integer = true;
        ch.y = report::fit_axis(report::ScaleKind::kLinear, ys, ylabel, !loss_axis);
        ch.legend_at = loss_axis ? report::Chart::LegendAt::kTopRight : report::Chart::LegendAt::kTopLeft;
        return ch.render() + "\n";
    };
    h += "<h2>Tail of n_pre per epoch</h2>\n<p class=\"note\">Solid: max n_pre; dashed: p99. The finding to "
         "reproduce (METHOD M11): the tail keeps growing after the loss has flattened.</p>\n";
    h += epoch_chart("chart-study-tail", "max and p99 of n_pre per epoch", "n_pre (tokens)", false);
    h += epoch_chart("chart-study-loss", "mean training loss of the epoch (mean of its logged step losses)", "loss",
                     true);
    {
        report::Chart ch;
        ch.id = "chart-study-tail-vs-loss";
        ch.title = "max n_pre against the mean training loss of the epoch (one point per checkpoint)";
        std::vector<double> xs, ys;
        size_t k = 0;
        for (const auto& a : sum.arms) {
            report::Line l;
            l.name = a.name;
            l.color = kColors[k++ % 10];
            l.markers = true;
            for (const auto& p : a.points) {
                l.x.push_back(p.train_loss);
                l.y.push_back(p.max_n_pre);
                xs.push_back(p.train_loss);
                ys.push_back(p.max_n_pre);
            }
            ch.lines.push_back(l);
        }
        if (!xs.empty()) {
            ch.x = report::fit_axis(report::ScaleKind::kLinear, xs, "mean training loss of the epoch");
            ch.y = report::fit_axis(report::ScaleKind::kLinear, ys, "max n_pre (tokens)", true);
            h += ch.render() + "\n";
        }
    }

    // Per-epoch tables.
    h += "<h2>Per checkpoint</h2>\n";
    for (const auto& a : sum.arms) {
        h += "<h3>" + escape_html(a.name) + " <span class=\"note\">(" + escape_html(study_sources_text(a.sources)) + ")</span></h3>\n";
        if (!a.mitigation.empty()) h += "<p class=\"note\">Mitigation: " + escape_html(a.mitigation) + "</p>\n";
        // Optional columns, shown when some checkpoint has them.
        bool approx = false, held = false, guarded = false;
        for (const auto& p : a.points) {
            approx = approx || p.greedy;
            held = held || std::isfinite(p.held_out_loss);
            guarded = guarded || p.guarded;
        }
        h += "<table class=\"table-arm\"><tr><th>epoch</th><th>step</th><th>mean training loss of the epoch</th>"
             "<th>last step's training loss</th><th>samples</th><th>mean n_pre</th><th>p99</th><th>max</th><th>exact</th>";
        if (approx) h += "<th>approximate</th>";
        if (held) h += "<th>held-out loss</th>";
        if (guarded) h += "<th>guarded mean</th><th>guarded max</th><th>guarded exact</th><th>guarded approximate</th>";
        h += "<th>run</th></tr>\n";
        const auto share = [](double f) { return std::isfinite(f) ? report::format_number(100 * f, 3) + "%" : std::string("–"); };
        for (const auto& p : a.points) {
            h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                             "<td>{}</td>",
                             p.epoch, p.step, num(p.train_loss, 4), num(p.train_loss_last_step, 4), p.n_samples,
                             num(p.mean_n_pre), num(p.p99_n_pre), num(p.max_n_pre), p.n_exact);
            if (approx) h += "<td>" + share(p.greedy ? p.greedy->approx_share : NAN) + "</td>";
            if (held) h += "<td>" + num(p.held_out_loss, 4) + "</td>";
            if (guarded)
                h += p.guarded ? fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td>", num(p.guarded->mean_n_pre),
                                             num(p.guarded->max_n_pre), p.guarded->n_exact,
                                             share(p.guarded->approx_share))
                               : std::string("<td>–</td><td>–</td><td>–</td><td>–</td>");
            h += fmt::format("<td>{}</td></tr>\n", p.run_id);
        }
        h += "</table>\n";
    }

    // Dataset size: single-source arms grouped by dataset (and seed).
    {
        std::map<std::string, std::vector<const StudyArmResult*>> groups;
        for (size_t i = 0; i < sum.arms.size(); ++i) {
            const auto& a = sum.arms[i];
            if (a.sources.size() != 1 || a.points.empty()) continue;
            groups[a.sources[0].dataset + " (seed " + std::to_string(a.seed) + ")"].push_back(&a);
        }
        h += "<h2>Dataset size</h2>\n";
        bool any = false;
        for (auto& [g, arms] : groups) {
            if (arms.size() < 2) continue;
            any = true;
            std::sort(arms.begin(), arms.end(),
                      [](const StudyArmResult* x, const StudyArmResult* y) { return x->n_train_samples < y->n_train_samples; });
            // The last epoch every size reached.
            int64_t epoch = INT64_MAX;
            for (const auto* a : arms) epoch = std::min(epoch, a->points.back().epoch);
            report::Chart ch;
            ch.id = "chart-study-size";
            ch.title = fmt::format("{}: tail of n_pre against training-set size, epoch {}", g, epoch);
            report::Line mx, p99;
            mx.name = "max";
            p99.name = "p99";
            p99.color = kColors[1];
            mx.markers = p99.markers = true;
            std::vector<double> xs, ys;
            h += fmt::format("<table class=\"table-size\"><tr><th>arm</th><th>samples</th><th>epoch</th><th>mean</th>"
                             "<th>p99</th><th>max</th></tr>\n");
            for (const auto* a : arms) {
                const StudyPoint* p = nullptr;
                for (const auto& q : a->points)
                    if (q.epoch == epoch) p = &q;
                if (!p) continue;
                const double n = static_cast<double>(a->n_train_samples);
                mx.x.push_back(n);
                mx.y.push_back(p->max_n_pre);
                p99.x.push_back(n);
                p99.y.push_back(p->p99_n_pre);
                xs.push_back(n);
                ys.push_back(p->max_n_pre);
                ys.push_back(p->p99_n_pre);
                h += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                                 escape_html(a->name), a->n_train_samples, epoch, num(p->mean_n_pre), num(p->p99_n_pre),
                                 num(p->max_n_pre));
            }
            h += "</table>\n";
            ch.lines = {mx, p99};
            ch.x = report::fit_axis(report::ScaleKind::kLinear, xs, "training samples", true);
            ch.y = report::fit_axis(report::ScaleKind::kLinear, ys, "n_pre (tokens)", true);
            h += ch.render() + "\n";
        }
        if (!any) h += "<p class=\"note\">No two single-dataset arms of different sizes (declare [sizes]).</p>\n";
    }

    // Composition.
    h += "<h2>Composition</h2>\n<p class=\"note\">Paired Wilcoxon signed-rank test (two-sided) on n_pre of the samples "
         "both arms trained on (same ids), at each epoch both reached; differences are b − a; r = z/√n; "
         "rank-biserial = (R+ − R−)/(R+ + R−).</p>\n";
    if (sum.comparisons.empty()) h += "<p class=\"note\">No comparison: declare [[compare]] or an arm mixing datasets.</p>\n";
    else {
        h += "<table id=\"table-composition\"><tr><th class=\"l\">a</th><th class=\"l\">b</th><th>epoch</th><th>shared</th>"
             "<th>mean a</th><th>mean b</th><th>mean b−a</th><th>W</th><th>p</th><th>z</th><th>r</th><th>rank-biserial</th>"
             "<th>non-zero</th></tr>\n";
        for (const auto& r : sum.comparisons) {
            h += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                             escape_html(r.a), escape_html(r.b), r.epoch, r.n_shared, num(r.mean_a), num(r.mean_b),
                             num(r.mean_difference));
            if (r.wilcoxon)
                h += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                                 num(r.wilcoxon->statistic, 6), pval(r.wilcoxon->p_value), num(r.wilcoxon->z),
                                 num(r.wilcoxon->effect_size_r), num(r.wilcoxon->rank_biserial), r.wilcoxon->n);
            else
                h += "<td colspan=\"6\" class=\"l\">" + escape_html(r.skipped) + "</td></tr>\n";
        }
        h += "</table>\n";
    }
    h += "</body></html>\n";
    return h;
}

}  // namespace memskew
