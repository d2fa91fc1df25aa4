// export_run: the per-sample table as CSV (RFC 4180 quoting) or JSON Lines.
#include <cmath>
#include <iterator>
#include <ostream>

#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

using namespace store_detail;

namespace {

// Shortest text that reads back to the same double, with ".0" on integral
// values so pandas keeps float columns float (as Python's repr does).
std::string format_double(double v) {
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::string s = fmt::format("{}", v);
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

void write_csv_field(std::ostream& out, std::string_view text) {
    if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
        out << text;
        return;
    }
    out << '"';
    for (char ch : text) {
        if (ch == '"') out << '"';
        out << ch;
    }
    out << '"';
}

// The per-sample similarity figures (sample_similarity), after extra_json;
// empty / null where the run's figures were not computed.
constexpr const char* kSimilarityColumns[] = {"knn_sim_prompt", "knn_sim_full", "knn_sim_delta", "cluster",
                                             "cluster_size",   "prompt_copies", "reference_copies"};
constexpr int kNumSimilarityColumns = static_cast<int>(std::size(kSimilarityColumns));

// The column list the export writes, and the SELECT that feeds it (minus the
// three run-level columns, which come from RunInfo).
std::vector<std::string> export_columns() {
    std::vector<std::string> cols = {"run_id", "checkpoint_step", "checkpoint_epoch", "sample_id",
                                     "sample_index", "prompt_tokens", "reference_tokens"};
    for (const auto& c : metric_columns()) cols.emplace_back(c.name);
    cols.emplace_back("extra_json");
    for (const char* c : kSimilarityColumns) cols.emplace_back(c);
    return cols;
}

}  // namespace

ExportFormat parse_export_format(std::string_view name) {
    if (name == "csv") return ExportFormat::kCsv;
    if (name == "jsonl" || name == "ndjson") return ExportFormat::kJsonl;
    throw InvalidInput(fmt::format("unknown export format '{}'", name), "use csv or jsonl");
}

int64_t export_run(const ResultReader& reader, const ExportParams& params, std::ostream& out) {
    const Db& db = ReaderAccess::db(reader);
    std::vector<RunInfo> runs;
    if (params.run_id)
        runs.push_back(reader.run(*params.run_id));
    else
        runs = reader.runs();

    const auto columns = export_columns();
    const int n_metric = static_cast<int>(metric_columns().size());
    const bool csv = params.format == ExportFormat::kCsv;
    if (csv) {
        for (std::size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
        out << '\n';
    }
    // A version-1 store has no similarity table: its columns are NULL.
    const bool has_similarity = has_table(db, "sample_similarity");
    std::string similarity_list;
    for (const char* c : kSimilarityColumns) similarity_list += std::string(", ") + (has_similarity ? "q." : "NULL AS ") + c;
    Statement st(db,
                 "SELECT s.sample_id, s.sample_index, s.prompt_tokens, s.reference_tokens, " +
                     metric_select_list("m") + similarity_list +
                     " FROM samples s LEFT JOIN metrics m ON m.run_id = s.run_id AND m.sample_id = s.sample_id" +
                     (has_similarity ? " LEFT JOIN sample_similarity q ON q.run_id = s.run_id AND q.sample_id = "
                                       "s.sample_id"
                                     : "") +
                     " WHERE s.run_id = ? ORDER BY s.sample_index, s.sample_id");
    const int first_similarity = 4 + n_metric + 1;
    int64_t n_rows = 0;
    for (const auto& run : runs) {
        st.bind_int(1, run.run_id);
        auto opt_int = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
        while (st.step()) {
            if (csv) {
                out << run.run_id << ',';
                if (run.spec.checkpoint_step) out << *run.spec.checkpoint_step;
                out << ',';
                if (run.spec.checkpoint_epoch) out << *run.spec.checkpoint_epoch;
                out << ',';
                write_csv_field(out, st.column_text(0));
                for (int i = 1; i < first_similarity + kNumSimilarityColumns; ++i) {
                    out << ',';
                    switch (sqlite3_column_type(st.handle(), i)) {
                        case SQLITE_NULL: break;
                        case SQLITE_INTEGER: out << st.column_int(i); break;
                        case SQLITE_FLOAT: out << format_double(st.column_double(i)); break;
                        default: write_csv_field(out, st.column_text(i)); break;
                    }
                }
                out << '\n';
            } else {
                nlohmann::ordered_json row;
                row["run_id"] = run.run_id;
                row["checkpoint_step"] = opt_int(run.spec.checkpoint_step);
                row["checkpoint_epoch"] = opt_int(run.spec.checkpoint_epoch);
                row["sample_id"] = st.column_text(0);
                auto put_value = [&](int i) {
                    auto& v = row[columns[static_cast<std::size_t>(i) + 3]];
                    switch (sqlite3_column_type(st.handle(), i)) {
                        case SQLITE_NULL: v = nullptr; break;
                        case SQLITE_INTEGER: v = st.column_int(i); break;
                        case SQLITE_FLOAT: {
                            // JSON has no infinities: null, as for NaN (documented).
                            const double d = st.column_double(i);
                            v = std::isfinite(d) ? nlohmann::ordered_json(d) : nlohmann::ordered_json();
                            break;
                        }
                        default: v = st.column_text(i); break;
                    }
                };
                for (int i = 1; i < 4 + n_metric; ++i) put_value(i);
                const int extra = 4 + n_metric;
                if (st.is_null(extra)) {
                    row["extra_json"] = nullptr;
                } else {
                    try {
                        row["extra_json"] = nlohmann::ordered_json::parse(st.column_text(extra));
                    } catch (const nlohmann::json::exception& e) {
                        throw FormatError(fmt::format("{}: run {} sample '{}': extra_json is not valid JSON: {}",
                                                      reader.path(), run.run_id, st.column_text(0), e.what()),
                                          kCorruptHint);
                    }
                }
                for (int i = first_similarity; i < first_similarity + kNumSimilarityColumns; ++i) put_value(i);
                out << row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            }
            ++n_rows;
        }
        st.reset();
        if (!out) throw IoError(fmt::format("error writing the export of {}", reader.path()), "check free disk space");
    }
    return n_rows;
}

}  // namespace memskew
