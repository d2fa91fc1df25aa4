// The HTML report (`memskew report RUN.db --out report.html`): one
// self-contained file — inline CSS and inline SVG charts, no scripts, fonts,
// images or network requests — rendered from the AnalysisResult of
// `memskew analyze` plus a few per-sample records from the store.
//
// What the page shows (element ids in parentheses; tests look for them):
//   a plain-language finding; the M5 summary table; histogram of n_pre on a
//   log count axis (chart-histogram); CCDF of n_pre, log–log (chart-ccdf);
//   per-position recall p_j^o with its confidence band and the geometric and
//   linear-hazard fits (chart-hazard); n_pre against ROUGE-L, loss and min-k%
//   (chart-scatter-rouge-l, chart-scatter-loss, chart-scatter-min-k); the
//   sampling-miss curve P(miss top-k) vs subset size (chart-sampling-miss);
//   per-checkpoint trends when the store has several runs (chart-trend-tail,
//   chart-trend-loss); the top memorized samples (table-top); Spearman
//   correlations and the M9 predictor counts.
//
// Guarantees
//   - All text is HTML-escaped; sample texts are user data.
//   - With ReportParams::redact no prompt, reference or generated text (nor a
//     fragment of one) is written: samples appear as ids plus short hashes.
//   - The same inputs give a byte-identical page (no clock, deterministic
//     scatter subsampling).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "memskew/analysis.h"
#include "memskew/store.h"

namespace memskew {

struct ReportParams {
    bool redact = false;
    std::size_t top_k = 10;                  // rows of the top-samples table
    std::size_t max_scatter_points = 5000;   // above: deterministic subsample (the page says so)
    std::size_t max_text_chars = 600;        // longer texts are cut in the table (the page says so)
    std::string title = "memskew memorization report";
};

// Per-sample data the AnalysisResult does not carry.
struct ReportInputs {
    // Columns of the analysed run (ResultReader::load_columns): n_pre and the
    // metric columns for the scatter plots. Empty: the scatter section says so.
    RunColumns columns;
    // Records of the samples in the top-samples table (texts and metrics; token
    // arrays not needed), any order, looked up by sample_id.
    std::vector<SampleRecord> samples;
};

// Writes the page. Throws IoError when the stream fails.
void write_report(const AnalysisResult& result, const ReportInputs& inputs, const ReportParams& params,
                  std::ostream& out);
std::string render_report(const AnalysisResult& result, const ReportInputs& inputs, const ReportParams& params = {});

}  // namespace memskew
