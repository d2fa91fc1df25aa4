// The HTML page: sections in the order a reader asks questions — how skewed
// is it (finding, summary, histogram, CCDF), why (per-position recall and the
// two models), do the usual metrics see it (scatter, correlations), how big an
// audit catches it (sampling-miss curve), does it grow with training (trends),
// and which samples (top-k table).
#include "memskew/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/stats.h"
#include "report/report-sections.h"
#include "report/svg.h"
#include "report/text-marks.h"

namespace memskew {

namespace {

using report::Axis;
using report::Chart;
using report::escape_html;
using report::format_number;
using report::ScaleKind;

constexpr const char* kBlue = "#4e79a7";
constexpr const char* kOrange = "#f28e2b";
constexpr const char* kRed = "#e15759";
constexpr const char* kGreen = "#59a14f";
constexpr const char* kPurple = "#b07aa1";
constexpr const char* kTeal = "#2f8f89";

const double kNaN = std::numeric_limits<double>::quiet_NaN();


std::string pct(double fraction) {
    if (!std::isfinite(fraction)) return "n/a";
    const double p = 100 * fraction;
    if (p != 0 && std::fabs(p) < 0.1) return fmt::format("{:.2g}%", p);
    return format_number(std::round(p * 10) / 10, 3) + "%";
}

std::string plural(int64_t n, const char* one, const char* many) {
    return format_number(static_cast<double>(n)) + " " + (n == 1 ? one : many);
}

std::string pval(double p) { return report::format_p_value(p); }

const CorrelationEntry* find_correlation(const AnalysisResult& r, const std::string& metric) {
    for (const auto& e : r.correlations.entries)
        if (e.metric == metric) return &e;
    return nullptr;
}

const std::vector<double>* metric_column(const RunColumns& c, const std::string& name) {
    for (std::size_t i = 0; i < c.metric_names.size() && i < c.metric_values.size(); ++i)
        if (c.metric_names[i] == name) return &c.metric_values[i];
    return nullptr;
}

class Page : HtmlSection {
public:
    using HtmlSection::HtmlSection;

    std::string render() {
        head();
        header();
        finding();
        summary_section();
        distribution_charts();
        hazard_section();
        scatter_section();
        sampling_section();
        trend_section();
        top_section();
        other_section();
        s_ += render_mitigation_section(r_, in_, p_);
        s_ += render_similarity_section(r_, in_, p_);
        footer();
        return s_;
    }

private:

    // ---- page frame -------------------------------------------------------

    void head() {
        s_ += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              // No network, ever: the page needs nothing from outside.
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
              "img-src data:\">\n";
        s_ += "<title>" + h(p_.title) + "</title>\n<style>\n";
        s_ += R"CSS(
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; background: #f6f7f9; color: #1f2328; line-height: 1.45; font-size: 15px; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 30px 0 8px; padding-top: 8px; border-top: 1px solid #d8dce1; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { color: #57606a; font-size: 13px; margin: 0 0 12px; }
.meta span { margin-right: 14px; white-space: nowrap; }
.finding { background: #fff8e6; border: 1px solid #f0c36d; border-left: 6px solid #e8a317; padding: 12px 16px;
           border-radius: 6px; font-size: 17px; margin: 14px 0; }
.finding ul { margin: 8px 0 0; padding-left: 20px; font-size: 14px; }
.note { color: #57606a; font-size: 13.5px; margin: 6px 0; }
.warn { background: #fdecea; border: 1px solid #f5b7b1; padding: 8px 12px; border-radius: 6px; font-size: 14px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; background: #fff; border: 1px solid #d8dce1; border-radius: 6px; padding: 8px; }
figure svg { display: block; max-width: 100%; height: auto; }
/* The caption wraps to the chart's width instead of widening the figure. */
figcaption { font-size: 12.5px; color: #57606a; width: 0; min-width: calc(100% - 12px); margin: 4px 6px 2px; }
table { border-collapse: collapse; background: #fff; font-size: 13.5px; margin: 6px 0; }
th, td { border: 1px solid #d8dce1; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.kv td:first-child { color: #57606a; }
table.top { width: 100%; }
table.top td.text { font-size: 13px; }
.txt { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas,
       "DejaVu Sans Mono", monospace; font-size: 12.5px; background: #f6f8fa; border-radius: 4px; padding: 4px 6px;
       margin: 2px 0 6px; }
.label { font-size: 11.5px; color: #57606a; text-transform: uppercase; letter-spacing: 0.03em; }
mark.match { background: #ffc98f; color: #1f2328; border-radius: 2px; }
mark.approx { background: #ffe3c4; border-bottom: 2px dotted #c26a00; }
.cut { color: #8c959f; }
.rest { color: #57606a; }
.diverge { color: #b42318; }
.legend-inline mark { padding: 0 4px; }
code { font-size: 12.5px; background: #eef1f4; padding: 1px 4px; border-radius: 3px; }
footer { margin-top: 36px; color: #57606a; font-size: 12.5px; }
)CSS";
        s_ += "</style>\n</head>\n<body>\n<main>\n";
    }

    void header() {
        const RunSpec& sp = r_.run.spec;
        s_ += "<h1>" + h(p_.title) + "</h1>\n<p class=\"meta\">";
        const auto item = [&](const std::string& k, const std::string& v) {
            s_ += "<span><b>" + h(k) + ":</b> " + h(v) + "</span> ";
        };
        item("store", r_.store_path);
        item("run", fmt::format("{} of {}", r_.run.run_id, r_.n_runs));
        item("model", sp.model_path);
        if (!sp.adapter_path.empty()) item("adapter", sp.adapter_path);
        item("dataset", sp.dataset_path);
        if (sp.checkpoint_step) item("step", std::to_string(*sp.checkpoint_step));
        if (sp.checkpoint_epoch) item("epoch", std::to_string(*sp.checkpoint_epoch));
        if (sp.train_loss) item("mean training loss of the epoch", format_number(*sp.train_loss, 4));
        if (sp.train_loss_last_step)
            item("last step's training loss",
                 format_number(*sp.train_loss_last_step, 4) +
                     (sp.train_loss ? "" : " (no epoch mean recorded)"));
        item("samples", format_number(static_cast<double>(r_.n_samples)));
        item("status", std::string(run_status_name(r_.run.status)));
        if (p_.redact) item("redacted", "sample texts replaced by ids and hashes");
        s_ += "</p>\n";
        if (!r_.mitigation.applied.empty()) {
            std::string applied;
            for (const auto& a : r_.mitigation.applied) applied += (applied.empty() ? "" : "; ") + a;
            s_ += "<p class=\"warn\" id=\"mitigation-applied\"><b>Mitigation applied:</b> " + h(applied) +
                  ". The figures below are of the mitigated model or outputs; the section \"What does the mitigation "
                  "buy?\" sets them beside the unmitigated ones where the run has both.</p>\n";
        }
        if (r_.n_samples_without_n_pre > 0)
            note(fmt::format("{} without n_pre (NULL in the store) are left out of every statistic.",
                             plural(r_.n_samples_without_n_pre, "sample", "samples")),
                 "warn");
        for (const auto& w : r_.warnings) note(w, "warn");
    }

    void finding() {
        const auto& d = r_.distribution;
        s_ += "<section id=\"finding\" class=\"finding\">\n";
        if (!d.skipped.empty()) {
            s_ += "No n_pre distribution could be computed: " + h(d.skipped) + "\n";
        } else {
            const auto& a = d.summary.absolute;
            const int64_t n_top = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(0.01 * static_cast<double>(a.count))));
            std::string text;
            if (d.total_memorized_tokens == 0) {
                text = fmt::format("No sample is reproduced even one token far: n_pre = 0 for all {} samples.",
                                   format_number(static_cast<double>(a.count)));
            } else {
                text = fmt::format(
                    "The top 1% of samples ({} of {}) hold <b>{}</b> of memorized tokens; the model reproduces <b>{}</b> "
                    "verbatim; the longest reproduced prefix is <b>{}</b>.",
                    format_number(static_cast<double>(n_top)), format_number(static_cast<double>(a.count)),
                    h(pct(a.top_share)), h(plural(static_cast<int64_t>(d.summary.n_exact), "sample", "samples")),
                    h(plural(static_cast<int64_t>(a.max), "token", "tokens")));
                text += fmt::format(" The median sample reproduces {} and the mean is {}: averages hide the tail.",
                                    h(plural(static_cast<int64_t>(std::floor(a.median)), "token", "tokens")),
                                    h(format_number(a.mean, 3)));
            }
            s_ += text + "\n";
        }
        if (!r_.findings.empty()) {
            s_ += "<ul>\n";
            for (const auto& f : r_.findings) s_ += "<li>" + h(f) + "</li>\n";
            s_ += "</ul>\n";
        }
        s_ += "</section>\n";
    }

    // ---- M5 ------------------------------------------------------------------

    void summary_section() {
        const auto& d = r_.distribution;
        s_ += "<h2 id=\"summary\">How skewed is memorization? (n_pre, the reproduced prefix length)</h2>\n";
        if (!d.skipped.empty()) {
            note("Skipped: " + d.skipped);
            return;
        }
        const auto& a = d.summary.absolute;
        const auto& bs = r_.sampling.bootstrap;
        const auto ci = [&](const stats::Interval& iv) {
            return fmt::format(" <span class=\"note\">[{} – {}]</span>", h(format_number(iv.lower, 3)),
                               h(format_number(iv.upper, 3)));
        };
        s_ += "<div class=\"charts\"><table class=\"kv\" id=\"table-summary\">\n<tr><th>statistic</th><th class=\"num\">n_pre</th>"
              "<th class=\"num\">n_pre / L</th></tr>\n";
        const auto& nz = d.summary.normalized;
        const bool has_norm = nz.count > 0;
        const auto row = [&](const std::string& k, const std::string& v, const std::string& vn) {
            s_ += "<tr><td>" + h(k) + "</td><td class=\"num\">" + v + "</td><td class=\"num\">" + vn + "</td></tr>\n";
        };
        const auto num = [&](double v) { return h(format_number(v, 3)); };
        const auto numn = [&](double v) { return has_norm ? h(format_number(v, 3)) : std::string("–"); };
        row("samples", num(static_cast<double>(a.count)), numn(static_cast<double>(nz.count)));
        row("mean", num(a.mean) + (bs ? ci(bs->mean) : ""), numn(nz.mean));
        row("median", num(a.median), numn(nz.median));
        for (std::size_t i = 0; i < a.quantile_levels.size() && i < a.quantile_values.size(); ++i) {
            const std::string level = fmt::format("quantile {}", format_number(a.quantile_levels[i], 4));
            std::string v = num(a.quantile_values[i]);
            if (bs && std::fabs(a.quantile_levels[i] - 0.99) < 1e-12) v += ci(bs->quantile);
            row(level, v, has_norm && i < nz.quantile_values.size() ? numn(nz.quantile_values[i]) : "–");
        }
        row("max", num(a.max) + (bs ? ci(bs->max) : ""), numn(nz.max));
        row("skewness (Fisher–Pearson / adjusted)", num(a.shape.skewness) + " / " + num(a.shape.skewness_adjusted),
            has_norm ? numn(nz.shape.skewness) : "–");
        row("excess kurtosis", num(a.shape.kurtosis), has_norm ? numn(nz.shape.kurtosis) : "–");
        row("Gini coefficient", num(a.gini), numn(nz.gini));
        row("share held by the top 1%", h(pct(a.top_share)), has_norm ? h(pct(nz.top_share)) : "–");
        s_ += "</table>\n<table id=\"table-thresholds\">\n<tr><th>n_pre at least</th><th class=\"num\">samples</th>"
              "<th class=\"num\">share</th></tr>\n";
        const double M = static_cast<double>(std::max<std::size_t>(1, a.count));
        for (const auto& t : d.summary.at_least) {
            s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n", t.threshold,
                              h(format_number(static_cast<double>(t.count))), h(pct(static_cast<double>(t.count) / M)));
        }
        s_ += fmt::format("<tr><td>exact (whole reference)</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                          h(format_number(static_cast<double>(d.summary.n_exact))),
                          h(pct(static_cast<double>(d.summary.n_exact) / M)));
        s_ += fmt::format("<tr><td>memorized tokens in all</td><td class=\"num\">{}</td><td></td></tr>\n",
                          h(format_number(static_cast<double>(d.total_memorized_tokens))));
        s_ += "</table></div>\n";
        if (bs) note(fmt::format("Brackets: bootstrap percentile intervals ({} resamples).", bs->n_resamples));
        for (const auto& [field, reason] : d.null_reasons) note(field + " is not available: " + reason);
    }

    void distribution_charts() {
        const auto& d = r_.distribution;
        if (!d.skipped.empty()) return;
        const auto& hist = d.summary.histogram;
        const auto& a = d.summary.absolute;
        s_ += "<div class=\"charts\">\n";
        // Histogram: integer bins, merged into wider ones when there are many.
        {
            Chart c;
            c.id = "chart-histogram";
            c.title = "How many samples reproduce n tokens";
            c.width = 560;
            c.height = 340;
            report::Bars bars;
            bars.color = kBlue;
            const std::size_t n_values = hist.counts.size();
            const std::size_t w = n_values > 300 ? (n_values + 149) / 150 : 1;
            double max_count = 1;
            for (std::size_t b = 0; b * w < n_values; ++b) {
                int64_t count = 0;
                for (std::size_t v = b * w; v < std::min(n_values, (b + 1) * w); ++v) count += hist.counts[v];
                if (count == 0) continue;
                const double lo = static_cast<double>(b * w), hi = static_cast<double>(std::min(n_values, (b + 1) * w) - 1);
                bars.x0.push_back(lo - 0.5);
                bars.x1.push_back(hi + 0.5);
                bars.y.push_back(static_cast<double>(count));
                bars.titles.push_back(w == 1 ? fmt::format("n_pre = {}: {} samples", b, count)
                                             : fmt::format("n_pre {}–{}: {} samples", lo, hi, count));
                max_count = std::max(max_count, static_cast<double>(count));
            }
            c.bars.push_back(bars);
            c.x = Axis{ScaleKind::kLinear, -0.5, static_cast<double>(std::max<std::size_t>(n_values, 1)) - 0.5,
                       w == 1 ? "n_pre (tokens reproduced before the first mismatch)"
                              : fmt::format("n_pre (bins of {} tokens)", w),
                       false, 8, true};
            // Counts on a log axis from below 1, so single samples in the tail stay visible.
            c.y = Axis{ScaleKind::kLog, 0.7, std::pow(10.0, std::ceil(std::log10(max_count * 1.05))), "samples (log scale)",
                       false, 8};
            figure(c, "Each bar counts the samples whose greedy output matches the reference for exactly that many "
                      "tokens. The count axis is logarithmic: the long, thin tail on the right is where "
                      "memorization lives.");
        }
        // CCDF, log–log.
        {
            Chart c;
            c.id = "chart-ccdf";
            c.title = "Share of samples reproducing at least n tokens";
            c.width = 560;
            c.height = 340;
            report::Line emp;
            emp.name = "observed P(n_pre ≥ n)";
            emp.color = kBlue;
            double p_ge_1 = 0;
            std::vector<double> ys;
            for (const auto& pt : d.summary.ccdf) {
                if (pt.value < 1) continue;
                if (emp.x.empty()) p_ge_1 = pt.fraction_at_least;
                emp.x.push_back(pt.value);
                emp.y.push_back(pt.fraction_at_least);
                ys.push_back(pt.fraction_at_least);
            }
            emp.markers = emp.x.size() <= 80;
            // Kaplan–Meier: short references are censored, not failures.
            report::Line km;
            km.name = "Kaplan–Meier (short references censored)";
            km.color = kOrange;
            km.dashed = true;
            for (const auto& ph : r_.hazard.positions) {
                if (ph.at_risk <= 0 || !(ph.survival > 0)) continue;
                km.x.push_back(static_cast<double>(ph.position));
                km.y.push_back(ph.survival);
                ys.push_back(ph.survival);
            }
            c.lines.push_back(emp);
            if (!km.x.empty()) c.lines.push_back(km);
            std::vector<double> xs = emp.x;
            xs.insert(xs.end(), km.x.begin(), km.x.end());
            xs.push_back(1);
            c.x = report::fit_axis(ScaleKind::kLog, xs, "n (tokens, log scale)");
            ys.push_back(1);
            c.y = report::fit_axis(ScaleKind::kLog, ys, "share of samples (log scale)");
            c.legend_at = Chart::LegendAt::kBottomLeft;
            const double zero_share = 1 - p_ge_1;
            std::string cap = fmt::format(
                "Complementary CDF on log–log axes: a straight, slowly falling line is a heavy tail. "
                "{} of samples reproduce at least one token; the {} with n_pre = 0 cannot be drawn on a log axis.",
                h(pct(p_ge_1)), h(pct(zero_share)));
            if (emp.x.empty()) cap = "No sample reproduces a token (n_pre = 0 everywhere): nothing to draw on a log axis.";
            figure(c, cap);
            (void)a;
        }
        s_ += "</div>\n";
    }

    // ---- M7 ------------------------------------------------------------------

    void hazard_section() {
        const auto& hz = r_.hazard;
        s_ += "<h2 id=\"hazard\">Why: per-position recall compounds along the sequence</h2>\n";
        if (!hz.skipped.empty()) {
            note("Skipped: " + hz.skipped);
            return;
        }
        Chart c;
        c.id = "chart-hazard";
        c.title = "Per-position recall p_j (given the first j−1 tokens were reproduced)";
        c.width = 900;
        c.height = 380;
        report::Band band;
        band.name = "confidence band (Wilson, pointwise)";
        band.color = kBlue;
        report::Line emp;
        emp.name = "observed p_j";
        emp.color = kBlue;
        double max_j = 1;
        // Positions where only a handful of samples are still at risk say
        // little (one failure drops p_j to 0); they are left out, and counted.
        const int64_t kMinAtRisk = !hz.positions.empty() && hz.positions[0].at_risk >= 50 ? 5 : 1;
        std::size_t n_hidden = 0;
        for (const auto& ph : hz.positions) {
            if (ph.at_risk <= 0 || !std::isfinite(ph.recall)) continue;
            if (ph.at_risk < kMinAtRisk) {
                ++n_hidden;
                continue;
            }
            const double j = static_cast<double>(ph.position);
            band.x.push_back(j);
            band.lower.push_back(ph.recall_lower);
            band.upper.push_back(ph.recall_upper);
            emp.x.push_back(j);
            emp.y.push_back(ph.recall);
            max_j = std::max(max_j, j);
        }
        emp.markers = emp.x.size() <= 64;
        c.bands.push_back(band);
        c.lines.push_back(emp);
        const auto add_fit = [&](const std::optional<stats::ModelFit>& fit, const char* name, const char* color) {
            if (!fit || fit->hazards.empty()) return;
            report::Line l;
            l.name = name;
            l.color = color;
            l.dashed = true;
            for (std::size_t j = 1; j <= fit->hazards.size() && static_cast<double>(j) <= max_j; ++j) {
                l.x.push_back(static_cast<double>(j));
                l.y.push_back(fit->hazards[j - 1]);
            }
            c.lines.push_back(l);
        };
        add_fit(hz.geometric, "geometric model (constant p)", kRed);
        add_fit(hz.linear_hazard, "linear-hazard model (p0 + αj)", kGreen);
        c.x = Axis{ScaleKind::kLinear, 1, max_j, "reference position j", true, 10, true};
        c.y = Axis{ScaleKind::kLinear, 0, 1, "p_j (recall at position j)", false, 6};
        c.legend_at = Chart::LegendAt::kBottomRight;
        s_ += "<div class=\"charts\">\n";
        figure(c, "Of the samples that reproduced the first j−1 reference tokens (and whose reference has a j-th "
                  "token), the share that also reproduce token j. P(n_pre ≥ n) is the product of these up to n, so a "
                  "recall that rises with j turns a few lucky starts into long verbatim runs. The band widens where few "
                  "samples are still at risk." +
                      (n_hidden ? fmt::format(" {} with fewer than {} samples at risk {} not drawn.",
                                              plural(static_cast<int64_t>(n_hidden), "later position", "later positions"),
                                              kMinAtRisk, n_hidden == 1 ? "is" : "are")
                                : std::string()));
        s_ += "</div>\n";

        s_ += "<table id=\"table-fits\">\n<tr><th>model</th><th>parameters</th><th class=\"num\">log-likelihood</th>"
              "<th class=\"num\">AIC</th><th class=\"num\">KS distance</th></tr>\n";
        const auto fit_row = [&](const std::optional<stats::ModelFit>& f, const char* name) {
            if (!f) return;
            std::string params;
            if (f->model == "geometric" && !f->params.empty()) params = "p = " + format_number(f->params[0], 4);
            else if (f->params.size() >= 2)
                params = "p0 = " + format_number(f->params[0], 4) + ", α = " + format_number(f->params[1], 4);
            if (!f->converged) params += " (did not converge)";
            s_ += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                              "<td class=\"num\">{}</td></tr>\n",
                              h(name), h(params), h(format_number(f->log_likelihood, 6)), h(format_number(f->aic, 6)),
                              h(format_number(f->ks_distance, 3)));
        };
        fit_row(hz.geometric, "geometric");
        fit_row(hz.linear_hazard, "linear hazard");
        s_ += "</table>\n";
        if (!hz.geometric && !hz.linear_hazard) note("The model fits were not computed.");
        else note("Lower AIC fits better; the KS distance compares each model with the observed (censored) n_pre.");
        if (!hz.independence_skipped.empty()) {
            note("Independence check skipped: " + hz.independence_skipped);
        } else if (!hz.independence.empty()) {
            int64_t n_sig = 0;
            for (const auto& d : hz.independence) n_sig += d.p_value_state < 0.05 ? 1 : 0;
            note(fmt::format("Independence check (do positions depend on the run so far?): {} of {} positions have a "
                             "permutation p-value below 0.05 for MI(C_j; survived to j−1). The models assume none do.",
                             n_sig, hz.independence.size()));
        }
        if (hz.n_match_inconsistent > 0)
            note(fmt::format("{} have stored match arrays that disagree with their n_pre.",
                             plural(hz.n_match_inconsistent, "sample", "samples")),
                 "warn");
    }

    // ---- M8 ------------------------------------------------------------------

    void scatter_section() {
        s_ += "<h2 id=\"scatter\">Do the usual metrics see it? n_pre against ROUGE-L, loss and min-k%</h2>\n";
        const RunColumns& c = in_.columns;
        if (c.size() == 0 || c.n_pre.size() != c.size()) {
            note("The per-sample columns of the run were not given: no scatter plots.");
            return;
        }
        // Which samples to draw: all, or a deterministic subsample that keeps the most memorized.
        std::vector<std::size_t> valid;
        for (std::size_t i = 0; i < c.size(); ++i)
            if (c.n_pre[i] >= 0) valid.push_back(i);
        const ScatterRows picked = scatter_rows(c, valid, p_.max_scatter_points, 0x6d656d736b6577ULL);
        const std::vector<std::size_t>& chosen = picked.rows;
        const std::set<std::size_t>& tooltip = picked.labelled;

        if (chosen.size() < valid.size()) {
            note(fmt::format("Showing {} of {} samples: a deterministic pseudo-random subsample that always keeps the "
                             "{} samples with the largest n_pre.",
                             format_number(static_cast<double>(chosen.size())),
                             format_number(static_cast<double>(valid.size())), tooltip.size()));
        }
        s_ += "<div class=\"charts\">\n";
        const auto scatter = [&](const std::string& id, const std::string& metric, const std::string& ylabel,
                                 const std::string& what, const char* color) {
            const std::vector<double>* col = metric_column(c, metric);
            Chart ch;
            ch.id = id;
            ch.title = "n_pre vs " + ylabel;
            ch.width = 360;
            ch.height = 320;
            report::Points pts;
            pts.color = color;
            std::vector<double> xs, ys;
            std::size_t n_finite = 0;
            for (std::size_t i : chosen) {
                const double yv = col && i < col->size() ? (*col)[i] : kNaN;
                if (!std::isfinite(yv)) continue;
                ++n_finite;
                pts.x.push_back(static_cast<double>(c.n_pre[i]));
                pts.y.push_back(yv);
                pts.titles.push_back(tooltip.count(i) ? fmt::format("{}: n_pre {}, {} {}", c.sample_id[i], c.n_pre[i],
                                                                    ylabel, format_number(yv, 4))
                                                      : std::string());
            }
            ch.points.push_back(pts);
            ch.x = report::fit_axis(ScaleKind::kLinear, pts.x, "n_pre", true);
            ch.x.integer = true;
            // Half a token of margin: most samples sit at n_pre = 0, on the axis itself.
            ch.x.lo -= 0.5;
            ch.x.hi += 0.5;
            ch.x.nice = false;
            ch.y = report::fit_axis(ScaleKind::kLinear, pts.y, ylabel);
            std::string cap = what;
            if (const CorrelationEntry* e = find_correlation(r_, metric)) {
                if (std::isfinite(e->spearman.statistic))
                    cap += fmt::format(" Spearman ρ = {} (n = {}, p = {}).", format_number(e->spearman.statistic, 2),
                                       format_number(static_cast<double>(e->n_used)), pval(e->spearman.p_value));
                else if (!e->null_reason.empty())
                    cap += " Spearman ρ not available: " + e->null_reason + ".";
            }
            if (n_finite == 0) cap += " (No finite values.)";
            figure(ch, h(cap));
        };
        const std::vector<double>* rouge = metric_column(c, "rouge_l");
        bool has_rouge = false;
        if (rouge)
            for (double v : *rouge) has_rouge = has_rouge || std::isfinite(v);
        if (has_rouge) {
            scatter("chart-scatter-rouge-l", "rouge_l", "ROUGE-L F1",
                    "ROUGE-L of the generated output vs the reference: high similarity is not the same as a long "
                    "verbatim prefix.",
                    kPurple);
        } else {
            s_ += "<figure id=\"chart-scatter-rouge-l\" class=\"missing\"><figcaption>No ROUGE-L: this run has no "
                  "generation metrics. Run <code>memskew probe --generate</code> to get ROUGE-L.</figcaption></figure>\n";
        }
        scatter("chart-scatter-loss", "loss", "loss (mean NLL)",
                "Mean teacher-forced loss over the reference: low loss samples are not all memorized, and the average "
                "says little about the tail.",
                kBlue);
        scatter("chart-scatter-min-k", "min_k_prob", "min-k% log-prob",
                "Mean of the lowest k% token log-probabilities (a membership-inference score).", kTeal);
        s_ += "</div>\n";
    }

    // ---- M6 ------------------------------------------------------------------

    void sampling_section() {
        const auto& sm = r_.sampling;
        s_ += "<h2 id=\"sampling\">How big an audit catches the tail? Sampling a random subset</h2>\n";
        if (!sm.skipped.empty()) {
            note("Skipped: " + sm.skipped);
            return;
        }
        const int64_t M = sm.n_samples;
        if (M < 1) {
            note("No samples.");
            return;
        }
        std::vector<int64_t> ks;
        for (const auto& p : sm.p_miss)
            if (std::find(ks.begin(), ks.end(), p.k) == ks.end()) ks.push_back(p.k);
        for (const auto& n : sm.needed)
            if (std::find(ks.begin(), ks.end(), n.k) == ks.end()) ks.push_back(n.k);
        if (ks.empty()) ks = {1, 5, 10};
        std::sort(ks.begin(), ks.end());
        ks.erase(std::remove_if(ks.begin(), ks.end(), [&](int64_t k) { return k < 1 || k > M; }), ks.end());

        // Subset sizes: log-spaced from 1 to M (exact products, cheap).
        std::vector<int64_t> zs;
        const int n_grid = 160;
        for (int i = 0; i <= n_grid; ++i) {
            const auto z = static_cast<int64_t>(std::llround(std::pow(static_cast<double>(M), double(i) / n_grid)));
            if (zs.empty() || z != zs.back()) zs.push_back(std::clamp<int64_t>(z, 1, M));
        }
        Chart c;
        c.id = "chart-sampling-miss";
        c.title = "Chance that a random audit subset misses all of the top-k samples";
        c.width = 900;
        c.height = 360;
        const char* colors[] = {kRed, kOrange, kBlue, kGreen, kPurple, kTeal};
        std::size_t ci = 0;
        for (int64_t k : ks) {
            report::Line l;
            l.name = fmt::format("top {}", k);
            l.color = colors[ci++ % 6];
            for (int64_t z : zs) {
                l.x.push_back(static_cast<double>(z));
                l.y.push_back(stats::p_miss_top_k(M, k, z));
            }
            c.lines.push_back(l);
        }
        report::Points needed;
        needed.name = "smallest subset for 95% confidence";
        needed.color = "#222";
        needed.radius = 4;
        needed.opacity = 0.9;
        for (const auto& n : sm.needed) {
            if (std::fabs(n.delta - 0.05) > 1e-12) continue;
            needed.x.push_back(static_cast<double>(n.subset_size));
            needed.y.push_back(stats::p_miss_top_k(M, n.k, n.subset_size));
            needed.titles.push_back(fmt::format("top {}: z = {}", n.k, n.subset_size));
        }
        if (!needed.x.empty()) c.points.push_back(needed);
        c.refs.push_back({false, 0.05, "5%", "#888"});
        c.x = Axis{ScaleKind::kLog, 1, static_cast<double>(std::max<int64_t>(M, 2)), "subset size z (samples audited, log scale)",
                   true, 8};
        c.y = Axis{ScaleKind::kLinear, 0, 1, "P(miss all top-k)", false, 6};
        c.legend_at = Chart::LegendAt::kBottomLeft;
        s_ += "<div class=\"charts\">\n";
        figure(c, fmt::format("Exact hypergeometric probability C(M−k, z) / C(M, z) with M = {}. Auditing a small "
                              "random subset usually misses the few samples that matter most.",
                              h(format_number(static_cast<double>(M)))));
        s_ += "</div>\n";
        if (!sm.needed.empty()) {
            s_ += "<table id=\"table-needed\">\n<tr><th>to catch at least one of the top</th><th>with confidence</th>"
                  "<th class=\"num\">audit at least</th><th class=\"num\">share of the set</th></tr>\n";
            for (const auto& n : sm.needed) {
                s_ += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                                  n.k, h(pct(1 - n.delta)), h(format_number(static_cast<double>(n.subset_size))),
                                  h(pct(n.fraction)));
            }
            s_ += "</table>\n";
        }
    }

    // ---- M11 -----------------------------------------------------------------

    void trend_section() {
        const auto& t = r_.trends;
        s_ += "<h2 id=\"trends\">Does it grow with training? Per-checkpoint trends</h2>\n";
        if (t.checkpoints.size() < 2) {
            std::string why = r_.n_runs <= 1 ? std::string("This store holds one run")
                                             : fmt::format("This store holds {} runs", r_.n_runs);
            if (!t.skipped.empty()) why += " (" + t.skipped + ")";
            note(why + ": no trend to draw.");
            note("Probe every checkpoint into the same store (memskew probe --out RUN.db, once per checkpoint) to see "
                 "how the tail (max, p99) moves against the training loss.");
            return;
        }
        bool all_step = true, all_epoch = true;
        for (const auto& cp : t.checkpoints) {
            all_step = all_step && cp.step.has_value();
            all_epoch = all_epoch && cp.epoch.has_value();
        }
        const std::string xlabel = all_step ? "training step" : all_epoch ? "epoch" : "run (store order)";
        const auto xval = [&](const CheckpointSummary& cp, std::size_t i) {
            return all_step ? static_cast<double>(*cp.step) : all_epoch ? static_cast<double>(*cp.epoch)
                                                                        : static_cast<double>(i + 1);
        };
        Chart tail;
        tail.id = "chart-trend-tail";
        tail.title = "The tail of n_pre per checkpoint";
        tail.width = 560;
        tail.height = 340;
        const auto line = [](const char* name, const char* color) {
            report::Line l;
            l.name = name;
            l.color = color;
            return l;
        };
        report::Line lmax = line("max", kRed), lp99 = line("p99", kOrange), lmean = line("mean", kBlue);
        // The epoch's mean training loss; a store that recorded only the last
        // step's loss (before schema version 3) plots that, and says so.
        bool any_mean = false;
        for (const auto& cp : t.checkpoints) any_mean = any_mean || cp.train_loss.has_value();
        report::Line loss = line(any_mean ? "mean training loss of the epoch" : "last step's training loss", kPurple);
        std::vector<double> xs, ys;
        for (std::size_t i = 0; i < t.checkpoints.size(); ++i) {
            const auto& cp = t.checkpoints[i];
            const double x = xval(cp, i);
            xs.push_back(x);
            lmax.x.push_back(x), lmax.y.push_back(cp.max);
            lp99.x.push_back(x), lp99.y.push_back(cp.p99);
            lmean.x.push_back(x), lmean.y.push_back(cp.mean);
            ys.insert(ys.end(), {cp.max, cp.p99, cp.mean});
            if (const auto& v = any_mean ? cp.train_loss : cp.train_loss_last_step; v)
                loss.x.push_back(x), loss.y.push_back(*v);
        }
        for (auto* l : {&lmax, &lp99, &lmean}) l->markers = true;
        tail.lines = {lmax, lp99, lmean};
        tail.x = report::fit_axis(ScaleKind::kLinear, xs, xlabel);
        tail.x.integer = true;
        tail.y = report::fit_axis(ScaleKind::kLinear, ys, "n_pre (tokens)", true);
        tail.y.hi *= 1.3;  // headroom for the legend above the max line
        tail.legend_at = Chart::LegendAt::kTopLeft;
        s_ += "<div class=\"charts\">\n";
        figure(tail, "Maximum, 99th percentile and mean n_pre of each checkpoint's run. The tail can keep growing "
                     "after the loss has flattened.");
        if (!loss.x.empty()) {
            Chart lc;
            lc.id = "chart-trend-loss";
            lc.title = any_mean ? "Mean training loss of the epoch per checkpoint"
                                : "Last step's training loss per checkpoint";
            lc.width = 560;
            lc.height = 340;
            loss.markers = true;
            lc.lines = {loss};
            lc.x = tail.x;
            lc.y = report::fit_axis(ScaleKind::kLinear, loss.y, "training loss", true);
            figure(lc, any_mean ? "The mean of the logged step losses of each checkpoint's epoch up to it (the whole "
                                  "epoch for a checkpoint at its end), recorded with each run (same x axis as the "
                                  "left chart)."
                                : "The last logged step's training loss recorded with each run (same x axis as the "
                                  "left chart). One step's loss is noisy; these runs recorded no epoch mean (a store "
                                  "from before schema version 3, or no loss logged in the epoch).");
        } else {
            s_ += "<figure id=\"chart-trend-loss\" class=\"missing\"><figcaption>No training loss is recorded with "
                  "these runs.</figcaption></figure>\n";
        }
        s_ += "</div>\n";
        s_ += "<table id=\"table-checkpoints\">\n<tr><th>run</th><th class=\"num\">step</th><th class=\"num\">epoch</th>"
              "<th class=\"num\">mean training loss of the epoch</th><th class=\"num\">last step's training loss</th>"
              "<th class=\"num\">samples</th><th class=\"num\">mean</th>"
              "<th class=\"num\">p99</th><th class=\"num\">max</th><th class=\"num\">exact</th></tr>\n";
        for (const auto& cp : t.checkpoints) {
            s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                              "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                              "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                              cp.run_id, cp.step ? std::to_string(*cp.step) : "–",
                              cp.epoch ? std::to_string(*cp.epoch) : "–",
                              cp.train_loss ? h(format_number(*cp.train_loss, 4)) : "–",
                              cp.train_loss_last_step ? h(format_number(*cp.train_loss_last_step, 4)) : "–",
                              h(format_number(static_cast<double>(cp.n_samples))), h(format_number(cp.mean, 3)),
                              h(format_number(cp.p99, 3)), h(format_number(cp.max, 3)),
                              h(format_number(static_cast<double>(cp.n_exact))));
        }
        s_ += "</table>\n";
        if (!t.comparisons.empty()) {
            s_ += "<h3>Paired comparisons of the shared samples (Wilcoxon signed-rank)</h3>\n"
                  "<table id=\"table-comparisons\">\n<tr><th>runs</th><th>relation</th><th class=\"num\">shared</th>"
                  "<th class=\"num\">mean change</th><th class=\"num\">statistic</th><th class=\"num\">p-value</th>"
                  "<th class=\"num\">effect r</th></tr>\n";
            for (const auto& c : t.comparisons) {
                std::string stat = "–", p = "–", eff = "–";
                if (c.wilcoxon) {
                    stat = format_number(c.wilcoxon->statistic, 4);
                    p = pval(c.wilcoxon->p_value);
                    eff = format_number(c.wilcoxon->effect_size_r, 2);
                } else if (!c.skipped.empty()) {
                    p = c.skipped;
                }
                s_ += fmt::format("<tr><td>{} → {}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                                  "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                                  c.run_a, c.run_b, h(c.relation), h(format_number(static_cast<double>(c.n_shared))),
                                  h(format_number(c.mean_difference, 3)), h(stat), h(p), h(eff));
            }
            s_ += "</table>\n";
        }
    }

    // ---- top samples -----------------------------------------------------------

    void text_block(const char* label, const std::string& body_html) {
        s_ += fmt::format("<div class=\"label\">{}</div><div class=\"txt\">{}</div>\n", label, body_html);
    }

    void top_section() {
        const auto& d = r_.distribution;
        s_ += "<h2 id=\"top\">Which samples: the most memorized</h2>\n";
        std::unordered_map<std::string, const SampleRecord*> by_id;
        for (const auto& rec : in_.samples) by_id.emplace(rec.sample_id, &rec);
        std::vector<TopSample> top = d.top;
        if (top.size() > p_.top_k) top.resize(p_.top_k);
        if (top.empty()) {
            note(d.skipped.empty() ? "No samples." : "Skipped: " + d.skipped);
            s_ += "<table id=\"table-top\" class=\"top\"><tr><th>sample</th></tr></table>\n";
            return;
        }
        if (p_.redact) {
            note("Redacted: sample texts are replaced by their ids and short hashes (xxh3-64, first 8 hex digits of "
                 "the text), so rows can be matched against your own copy of the data.");
        } else {
            s_ += "<p class=\"note legend-inline\"><mark class=\"match\">reproduced prefix</mark> the part of the "
                  "reference the model reproduces; <span class=\"diverge\">red</span>: the model's own continuation "
                  "after it diverged. The report has no tokenizer: when the generated text is stored the boundary is "
                  "the longest common prefix of generated output and reference (exact); otherwise it is placed at "
                  "the share n_pre / L of the reference's characters <mark class=\"approx\">(approximate)</mark>, "
                  "snapped to a nearby space.</p>\n";
        }
        s_ += "<table id=\"table-top\" class=\"top\">\n<tr><th class=\"num\">#</th><th>sample</th>"
              "<th class=\"num\">n_pre / L</th><th>prompt and reference</th></tr>\n";
        int rank = 0;
        for (const auto& t : top) {
            ++rank;
            const SampleRecord* rec = nullptr;
            if (auto it = by_id.find(t.sample_id); it != by_id.end()) rec = it->second;
            const int64_t n_pre = static_cast<int64_t>(t.value);
            int64_t L = -1;
            if (rec && rec->metrics.length) L = *rec->metrics.length;
            else if (rec) L = rec->reference_tokens;
            s_ += fmt::format("<tr><td class=\"num\">{}</td><td>{}", rank, h(t.sample_id));
            if (rec && rec->truncated) s_ += "<br><span class=\"note\">reference truncated</span>";
            s_ += fmt::format("</td><td class=\"num\">{} / {}{}</td><td class=\"text\">\n", n_pre,
                              L >= 0 ? std::to_string(L) : "?",
                              L > 0 && n_pre == L ? "<br><b>verbatim</b>" : "");
            if (!rec) {
                s_ += "<span class=\"note\">not found in the store's samples</span>";
            } else if (p_.redact) {
                redacted_cell(*rec);
            } else {
                text_cell(*rec, n_pre, L);
            }
            s_ += "</td></tr>\n";
        }
        s_ += "</table>\n";
    }

    void redacted_cell(const SampleRecord& rec) {
        const auto hashed = [&](const char* what, const std::optional<std::string>& text, int64_t n_tokens) {
            if (!text) return fmt::format("{}: not stored", what);
            return fmt::format("{}: #{} ({} tokens)", what, report::short_hash(*text), n_tokens);
        };
        std::string line = hashed("prompt", rec.prompt_text, rec.prompt_tokens) + " · " +
                           hashed("reference", rec.reference_text, rec.reference_tokens);
        if (rec.generated_text) line += " · generated: #" + report::short_hash(*rec.generated_text);
        s_ += "<span class=\"note\">" + h(line) + "</span>";
    }

    std::string clipped(const std::string& text, std::size_t max_chars) {
        const std::size_t cut = report::utf8_prefix_bytes(text, max_chars);
        if (cut >= text.size()) return h(text);
        return h(text.substr(0, cut)) +
               fmt::format("<span class=\"cut\"> … [{} more characters]</span>",
                           report::utf8_length(text) - max_chars);
    }

    void text_cell(const SampleRecord& rec, int64_t n_pre, int64_t L) {
        if (rec.prompt_text) text_block("prompt", clipped(*rec.prompt_text, p_.max_text_chars));
        else s_ += "<div class=\"note\">prompt text not stored</div>\n";
        if (!rec.reference_text) {
            s_ += "<div class=\"note\">reference text not stored</div>\n";
            return;
        }
        const std::string& ref = *rec.reference_text;
        const report::MatchBoundary mb = report::match_boundary(ref, rec.generated_text, n_pre, L);
        const std::size_t max_chars = std::max(p_.max_text_chars, report::utf8_length(ref.substr(0, mb.bytes)) + 200);
        std::string body;
        const std::string matched = ref.substr(0, mb.bytes), rest = ref.substr(mb.bytes);
        const std::size_t matched_chars = report::utf8_length(matched);
        if (!matched.empty()) {
            body += fmt::format("<mark class=\"{}\">{}</mark>", mb.exact ? "match" : "match approx",
                                clipped(matched, max_chars));
        }
        if (matched_chars < max_chars) body += "<span class=\"rest\">" + clipped(rest, max_chars - matched_chars) + "</span>";
        else if (!rest.empty()) body += "<span class=\"cut\"> …</span>";
        const char* how = mb.method == report::MatchMethod::kWhole       ? "reference (reproduced in full)"
                          : mb.method == report::MatchMethod::kNone      ? "reference (not reproduced)"
                          : mb.method == report::MatchMethod::kGenerated ? "reference (boundary from the generated text)"
                                                                         : "reference (boundary approximate)";
        text_block(how, body);
        if (rec.generated_text && mb.method == report::MatchMethod::kGenerated) {
            const std::string cont = rec.generated_text->substr(std::min(mb.bytes, rec.generated_text->size()));
            if (!cont.empty()) text_block("the model went on with", "<span class=\"diverge\">" + clipped(cont, 200) + "</span>");
        }
    }

    // ---- M8 table and M9 ------------------------------------------------------

    void other_section() {
        s_ += "<h2 id=\"other\">Correlations and the data's own ambiguity</h2>\n";
        const auto& cs = r_.correlations;
        if (!cs.skipped.empty()) {
            note("Correlations skipped: " + cs.skipped);
        } else if (!cs.entries.empty()) {
            s_ += "<table id=\"table-correlations\">\n<tr><th>metric</th><th class=\"num\">samples</th>"
                  "<th class=\"num\">Spearman ρ with n_pre</th><th class=\"num\">p-value</th></tr>\n";
            for (const auto& e : cs.entries) {
                const std::string rho = std::isfinite(e.spearman.statistic) ? format_number(e.spearman.statistic, 2)
                                                                              : (e.null_reason.empty() ? "n/a" : e.null_reason);
                s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                                  "<td class=\"num\">{}</td></tr>\n",
                                  h(e.metric), h(format_number(static_cast<double>(e.n_used))), h(rho),
                                  h(pval(e.spearman.p_value)));
            }
            s_ += "</table>\n";
        }
        const auto& pr = r_.predictors;
        if (!pr.skipped.empty()) {
            note("Term-wise vs sequence-level predictors (M9) skipped: " + pr.skipped);
            return;
        }
        s_ += "<table class=\"kv\" id=\"table-predictors\">\n";
        const auto kv = [&](const std::string& k, double v) {
            s_ += "<tr><td>" + h(k) + "</td><td class=\"num\">" + h(format_number(v)) + "</td></tr>\n";
        };
        kv("samples with token arrays", static_cast<double>(pr.n_samples));
        kv("distinct prompts", static_cast<double>(pr.n_prompts));
        kv("prompts shared by several samples", static_cast<double>(pr.n_shared_prompts));
        kv("samples that diverged before their end", static_cast<double>(pr.n_diverged));
        kv("… where the data itself is ambiguous", static_cast<double>(pr.divergence.data_ambiguous));
        kv("… where the model chose otherwise", static_cast<double>(pr.divergence.model));
        kv("reproduced verbatim although not the prompt's majority reference", static_cast<double>(pr.n_exact_not_mb));
        s_ += "</table>\n";
        note("A divergence is data-ambiguous when other training samples share the context but continue differently "
             "and this reference is not the majority continuation: greedy decoding can only follow the majority.");
    }

    void footer() {
        s_ += fmt::format("<footer>Made by memskew {} from {} (analysis schema {}). One self-contained file: no "
                          "scripts, no external resources. Method: M5–M12.</footer>\n",
                          h(MEMSKEW_VERSION), h(r_.store_path), r_.schema_version);
        s_ += "</main>\n</body>\n</html>\n";
    }
};

}  // namespace

ScatterRows scatter_rows(const RunColumns& c, const std::vector<std::size_t>& valid, std::size_t max_points,
                         uint64_t seed) {
    std::vector<double> n_pre;
    for (std::size_t i : valid) n_pre.push_back(static_cast<double>(c.n_pre[i]));
    std::vector<std::size_t> keep;
    for (const auto& t : stats::top_k(n_pre, std::min<std::size_t>(200, max_points / 10))) keep.push_back(t.index);
    ScatterRows out;
    for (std::size_t k : report::subsample_indices(valid.size(), max_points, seed, keep)) out.rows.push_back(valid[k]);
    for (std::size_t k : keep) out.labelled.insert(valid[k]);
    return out;
}

std::string render_report(const AnalysisResult& result, const ReportInputs& inputs, const ReportParams& params) {
    return Page(result, inputs, params).render();
}

void write_report(const AnalysisResult& result, const ReportInputs& inputs, const ReportParams& params,
                  std::ostream& out) {
    const std::string page = render_report(result, inputs, params);
    out.write(page.data(), static_cast<std::streamsize>(page.size()));
    if (!out) throw IoError("error writing the report");
}

}  // namespace memskew
