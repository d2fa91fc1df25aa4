// Loading the report's per-sample inputs from a store, and the whole
// store -> analysis -> page -> file pipeline behind `memskew report`.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/report.h"
#include "store/sqlite-util.h"
#include "store/store-impl.h"

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
    store_detail::Statement st(*reader.impl().db,
                               "SELECT prompt_tokens, reference_tokens, truncated, prompt_text, reference_text, "
                               "generated_text, sample_index FROM samples WHERE run_id = ? AND sample_id = ?");
    std::size_t n = 0;
    for (const auto& t : result.distribution.top) {
        if (n++ >= params.top_k) break;
        st.reset();
        st.bind_int(1, run_id);
        st.bind_text(2, t.sample_id);
        if (!st.step()) continue;
        SampleRecord r;
        r.sample_id = t.sample_id;
        r.prompt_tokens = st.column_int(0);
        r.reference_tokens = st.column_int(1);
        r.truncated = st.column_int(2) != 0;
        if (!st.is_null(3)) r.prompt_text = st.column_text(3);
        if (!st.is_null(4)) r.reference_text = st.column_text(4);
        if (!st.is_null(5)) r.generated_text = st.column_text(5);
        r.sample_index = st.column_int(6);
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
    const std::string tmp = out_path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw IoError(fmt::format("cannot write '{}'", out_path), "check that the folder exists and is writable");
        f.write(page.data(), static_cast<std::streamsize>(page.size()));
        f.close();
        if (!f) {
            std::remove(tmp.c_str());
            throw IoError(fmt::format("error writing '{}'", out_path), "is the disk full?");
        }
    }
    if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw IoError(fmt::format("cannot write '{}'", out_path), "check that the folder is writable");
    }
}

}  // namespace memskew
