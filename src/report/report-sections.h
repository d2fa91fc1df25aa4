// Sections of the audit page that live in files of their own (private to
// src/report/). Each returns its HTML; report.cpp puts them in page order.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "memskew/report.h"
#include "report/svg.h"

namespace memskew {

// What every part of the page holds: the analysis, its inputs, the page
// parameters and the HTML written so far, with the two helpers every section
// uses (escaped paragraphs, charts with captions).
class HtmlSection {
public:
    HtmlSection(const AnalysisResult& r, const ReportInputs& in, const ReportParams& p) : r_(r), in_(in), p_(p) {}

protected:
    const AnalysisResult& r_;
    const ReportInputs& in_;
    const ReportParams& p_;
    std::string s_;

    static std::string h(std::string_view text) { return report::escape_html(text); }
    void note(const std::string& text, const char* cls = "note") {
        s_ += fmt::format("<p class=\"{}\">{}</p>\n", cls, h(text));
    }
    void figure(const report::Chart& c, const std::string& caption_html) {
        s_ += "<figure>\n" + c.render() + "<figcaption>" + caption_html + "</figcaption>\n</figure>\n";
    }
};

// The samples an n_pre scatter plot draws, as rows of RunColumns: every row
// of `valid`, or a deterministic subsample of max_points that always keeps
// the rows with the largest n_pre (min(200, max_points / 10) of them), which
// are also the ones given tooltips (`labelled`).
struct ScatterRows {
    std::vector<std::size_t> rows;
    std::set<std::size_t> labelled;
};
ScatterRows scatter_rows(const RunColumns& columns, const std::vector<std::size_t>& valid, std::size_t max_points,
                         uint64_t seed);

// "Does similarity explain it?": the S / ΔS table per checkpoint, n_pre
// against the per-sample ΔS, n_pre by ΔS quintile and by near-duplicate
// cluster size, the largest clusters with their members' n_pre, and the
// risk-triage table (src/report/similarity-report.cpp).
std::string render_similarity_section(const AnalysisResult& result, const ReportInputs& inputs,
                                      const ReportParams& params);

// "What does the mitigation buy?": the run's greedy outputs unguarded and
// guarded side by side, with the paired test and the guard's cost
// (src/report/mitigation-report.cpp). Empty when the run generated nothing.
std::string render_mitigation_section(const AnalysisResult& result, const ReportInputs& inputs,
                                      const ReportParams& params);

}  // namespace memskew
