// `memskew report`: store -> analysis -> page -> file, with the report's
// per-sample inputs read through the store's readers.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/pipeline.h"
#include "memskew/report.h"

namespace memskew {

ReportInputs load_report_inputs(const ResultReader& reader, const AnalysisResult& result, const ReportParams& params) {
    ReportInputs in;
    const int64_t run_id = result.run.run_id;
    in.columns = reader.load_columns(run_id);

    std::unordered_map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < in.columns.size(); ++i) index.emplace(in.columns.sample_id[i], i);
    const std::vector<double>* length_col = nullptr;
    for (std::size_t m = 0; m < in.columns.metric_names.size(); ++m)
        if (in.columns.metric_names[m] == "length") length_col = &in.columns.metric_values[m];

    // Only the texts of the table's rows: load_samples would read every
    // sample's token arrays (gigabytes for large runs).
    std::size_t n = 0;
    for (const auto& t : result.distribution.top) {
        if (n++ >= params.top_k) break;
        std::optional<SampleRecord> rec = reader.load_sample_texts(run_id, t.sample_id);
        if (!rec) continue;
        SampleRecord& r = *rec;
        if (auto it = index.find(t.sample_id); it != index.end()) {
            const std::size_t i = it->second;
            if (in.columns.n_pre[i] >= 0) r.metrics.n_pre = in.columns.n_pre[i];
            if (in.columns.length[i] >= 0) r.metrics.length = in.columns.length[i];
            else if (length_col && std::isfinite((*length_col)[i])) r.metrics.length = static_cast<int64_t>((*length_col)[i]);
        }
        in.samples.push_back(std::move(r));
    }
    return in;
}

void write_report_file(const std::string& db_path, const std::string& out_path, const AnalyzeParams& analyze_params,
                       const ReportParams& params) {
    AnalyzeParams ap = analyze_params;
    ap.top_k = std::max(ap.top_k, params.top_k);
    const AnalysisResult result = analyze_store(db_path, ap);
    const ReportInputs inputs = with_context(db_path, [&] {
        const ResultReader reader = ResultReader::open(db_path);
        return load_report_inputs(reader, result, params);
    });
    const std::string page = render_report(result, inputs, params);

    // Written beside the target and renamed, so a failure leaves no partial file.
    write_text_file_atomic(out_path, page);
}

}  // namespace memskew
