// merge_stores: shard stores of one run -> one run; distinct runs side by side.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

using namespace store_detail;

namespace {

constexpr int kNoInput = -1;  // origin of runs the output held before the merge

std::vector<std::string> table_columns(const Db& db, const char* table) {
    Statement st(db, fmt::format("PRAGMA table_info({})", table));
    std::vector<std::string> cols;
    while (st.step()) cols.push_back(st.column_text(1));
    return cols;
}

std::string join_quoted(const std::vector<std::string>& cols) {
    std::string s;
    for (const auto& c : cols) s += (s.empty() ? "\"" : ", \"") + c + "\"";
    return s;
}

bool input_has_sample(const std::string& path, int64_t run_id_in_input, const std::string& sample_id) {
    auto db = open_store_for_read(path);
    Statement st(*db, "SELECT 1 FROM samples WHERE run_id = ? AND sample_id = ?");
    st.bind_int(1, run_id_in_input);
    st.bind_text(2, sample_id);
    return st.step();
}

struct Origin {
    int input = kNoInput;
    int64_t run_id = 0;  // the run's id inside that input
};

class Merger {
public:
    Merger(Db& out, const std::vector<std::string>& inputs) : out_(out), inputs_(inputs) {
        for (const auto& r : load_runs(out_)) origins_[r.run_id].push_back({kNoInput, r.run_id});
    }

    void merge_input(int i, MergeReport& report) {
        auto in = open_store_for_read(inputs_[static_cast<std::size_t>(i)]);
        for (const auto& run : load_runs(*in)) {
            const int64_t id = target_run(i, run);
            touched_.insert(id);
            report.n_samples += copy_run(*in, i, run.run_id, id);
            if (origins_[id].size() == 1) copy_run_similarity(*in, run.run_id, id);
        }
        report.n_runs = static_cast<int64_t>(touched_.size());
    }

    // Runs that gained samples from several inputs: figures computed over one
    // shard (or over the output's earlier samples) no longer describe the run.
    void finish(MergeReport& report) {
        report.run_ids.assign(touched_.begin(), touched_.end());
        for (int64_t id : touched_) {
            if (origins_[id].size() < 2) continue;
            report.unioned_run_ids.push_back(id);
            for (const char* table : {"sample_similarity", "run_similarity"}) {
                Statement del(out_, fmt::format("DELETE FROM {} WHERE run_id = ?", table));
                del.bind_int(1, id);
                del.run();
            }
        }
    }

private:
    // The output run that receives `run` of input i: the run with the same
    // key (a shard of it), or a new one.
    int64_t target_run(int i, const RunInfo& run) {
        if (auto existing = find_run_by_key(out_, run.run_key)) {
            Statement st(out_,
                         "UPDATE runs SET n_samples_planned = n_samples_planned + ?, "
                         "started_at = min(started_at, ?), "
                         "finished_at = CASE WHEN finished_at IS NULL OR ? IS NULL THEN NULL "
                         "ELSE max(finished_at, ?) END, "
                         "status = CASE WHEN status = 'done' AND ? = 'done' THEN 'done' ELSE 'running' END "
                         "WHERE run_id = ?");
            st.bind_int(1, run.spec.n_samples_planned);
            st.bind_text(2, run.started_at);
            run.finished_at ? st.bind_text(3, *run.finished_at) : st.bind_null(3);
            run.finished_at ? st.bind_text(4, *run.finished_at) : st.bind_null(4);
            st.bind_text(5, run_status_name(run.status));
            st.bind_int(6, existing->run_id);
            st.run();
            origins_[existing->run_id].push_back({i, run.run_id});
            return existing->run_id;
        }
        for (const auto& other : load_runs(out_)) {
            if (!same_checkpoint(other.spec, run.spec)) continue;
            const auto& from = origins_[other.run_id];
            // Two runs of one input may share a checkpoint (e.g. probed at two
            // temperatures): they were distinct runs there and stay distinct.
            if (from.size() == 1 && from.front().input == i) continue;
            std::string fields;
            for (const auto& d : diff_specs(other.spec, run.spec)) fields += (fields.empty() ? "" : "; ") + d;
            throw InvalidInput(
                fmt::format("cannot merge run {} of {} ({}): a run of the same checkpoint from {} has a different "
                            "spec; differing fields: {}",
                            run.run_id, inputs_[static_cast<std::size_t>(i)], describe_checkpoint(run.spec),
                            describe_origin(from), fields),
                "merge only shards probed with the same model, dataset and options (they may differ in "
                "\"shard\"); merge other runs into another output");
        }
        RunSpec spec = run.spec;
        if (spec.options.is_object()) spec.options.erase(kShardOptionKey);  // the merged run is no longer one shard
        const int64_t id = insert_run(out_, run.run_key, spec, run.started_at, run.finished_at, run.status,
                                      run.memskew_version);
        origins_[id].push_back({i, run.run_id});
        return id;
    }

    std::string describe_origin(const std::vector<Origin>& from) const {
        std::string s;
        for (const auto& o : from)
            s += (s.empty() ? "" : ", ") +
                 (o.input == kNoInput ? out_.path() : inputs_[static_cast<std::size_t>(o.input)]);
        return s;
    }

    void copy_run_similarity(const Db& in, int64_t src_run, int64_t dst_run) {
        if (!has_table(in, "run_similarity")) return;
        auto cols = table_columns(out_, "run_similarity");
        cols.erase(std::remove(cols.begin(), cols.end(), "run_id"), cols.end());
        const std::string list = join_quoted(cols);
        Statement select(in, fmt::format("SELECT {} FROM run_similarity WHERE run_id = ?", list));
        select.bind_int(1, src_run);
        if (!select.step()) return;
        std::string qs = "?";
        for (std::size_t k = 0; k < cols.size(); ++k) qs += ", ?";
        Statement insert(out_, fmt::format("INSERT OR REPLACE INTO run_similarity(run_id, {}) VALUES({})", list, qs));
        insert.bind_int(1, dst_run);
        for (int k = 0; k < static_cast<int>(cols.size()); ++k) insert.bind_value(k + 2, select.column_value(k));
        insert.run();
    }

    int64_t copy_run(const Db& in, int i, int64_t src_run, int64_t dst_run) {
        int64_t n = 0;
        for (const char* table : {"samples", "metrics", "token_arrays", "sample_vectors", "sample_similarity"}) {
            // A version-1 input has no similarity tables.
            if (!has_table(in, table)) continue;
            // Columns by name, from the output's schema: robust to column order.
            auto cols = table_columns(out_, table);
            cols.erase(std::remove(cols.begin(), cols.end(), "run_id"), cols.end());
            const std::string list = join_quoted(cols);
            Statement select(in, fmt::format("SELECT {} FROM {} WHERE run_id = ? ORDER BY rowid", list, table));
            std::string qs = "?";
            for (std::size_t k = 0; k < cols.size(); ++k) qs += ", ?";
            // DO NOTHING on the key turns a duplicate id into "no change", which
            // is reported with both file names below.
            Statement insert(out_, fmt::format("INSERT INTO {}(run_id, {}) VALUES({}) "
                                               "ON CONFLICT(run_id, sample_id) DO NOTHING",
                                               table, list, qs));
            const bool is_samples = std::string(table) == "samples";
            const int id_col = static_cast<int>(std::find(cols.begin(), cols.end(), "sample_id") - cols.begin());
            select.bind_int(1, src_run);
            while (select.step()) {
                insert.bind_int(1, dst_run);
                for (int k = 0; k < static_cast<int>(cols.size()); ++k) insert.bind_value(k + 2, select.column_value(k));
                insert.run();
                if (sqlite3_changes(out_.handle()) == 0) {
                    if (is_samples) duplicate(i, dst_run, select.column_text(id_col));
                    // metrics/token rows without their sample row: the input is damaged.
                    throw FormatError(fmt::format("{}: {} row of sample '{}' has no matching sample row",
                                                  inputs_[static_cast<std::size_t>(i)], table,
                                                  select.column_text(id_col)),
                                      kCorruptHint);
                }
                if (is_samples) ++n;
            }
        }
        return n;
    }

    [[noreturn]] void duplicate(int i, int64_t dst_run, const std::string& sample_id) {
        std::string where;
        for (const auto& o : origins_[dst_run]) {
            if (o.input == i) continue;
            if (o.input == kNoInput) {
                where = out_.path() + " (the output)";
                break;
            }
            const auto& path = inputs_[static_cast<std::size_t>(o.input)];
            if (input_has_sample(path, o.run_id, sample_id)) {
                where = path;
                break;
            }
        }
        throw InvalidInput(fmt::format("duplicate sample id '{}': it is in {} and in {}", sample_id,
                                       inputs_[static_cast<std::size_t>(i)],
                                       where.empty() ? std::string("another input") : where),
                           "shards must hold disjoint samples; was one shard probed twice or given twice?");
    }

    Db& out_;
    const std::vector<std::string>& inputs_;
    std::map<int64_t, std::vector<Origin>> origins_;
    std::set<int64_t> touched_;
};

}  // namespace

MergeReport merge_stores(const std::vector<std::string>& inputs, const std::string& output) {
    namespace fs = std::filesystem;
    if (inputs.empty()) throw InvalidInput("merge needs at least one input store");
    std::error_code ec;
    std::set<std::string> seen;
    for (const auto& p : inputs) {
        const std::string canon = fs::weakly_canonical(p, ec).string();
        if (fs::exists(output, ec) && fs::equivalent(p, output, ec))
            throw InvalidInput(fmt::format("merge input {} is also the output", p), "choose another output file");
        if (!seen.insert(canon).second)
            throw InvalidInput(fmt::format("merge input {} is given twice", p), "list each shard once");
    }
    // Check every input before touching the output.
    for (const auto& p : inputs) open_store_for_read(p);

    const bool existed = fs::exists(output, ec);
    MergeReport report;
    try {
        auto out = open_store_for_write(output, 5000);
        // One transaction: the output gains all inputs or nothing.
        Transaction tx(*out);
        Merger merger(*out, inputs);
        for (int i = 0; i < static_cast<int>(inputs.size()); ++i) merger.merge_input(i, report);
        merger.finish(report);
        tx.commit();
    } catch (...) {
        if (!existed) {
            for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(output + suffix, ec);
        }
        throw;
    }
    return report;
}

}  // namespace memskew
