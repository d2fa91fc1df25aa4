// Internals shared by the store's source files: the schema, the metric column
// table, opening/validating a store, and run (de)serialization.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "memskew/store.h"
#include "sqlite-util.h"

namespace memskew::store_detail {

// One metric column: its name in the metrics table and where it lives in
// MetricsRow. Exactly one of the member pointers is set.
struct MetricColumn {
    const char* name;
    std::optional<int64_t> MetricsRow::*as_int = nullptr;
    std::optional<double> MetricsRow::*as_real = nullptr;
    std::optional<bool> MetricsRow::*as_bool = nullptr;
};
// In schema order (the order of the table's columns and of exports).
const std::vector<MetricColumn>& metric_columns();

// Binds the metric columns to positions first.. first+n-1 and extra_json after.
void bind_metrics(Statement& st, int first, const MetricsRow& row);
// Reads them from column positions first.. (and extra_json after).
MetricsRow read_metrics(const Statement& st, int first);
// The value of a column as a double (NaN when absent).
double metric_as_double(const MetricsRow& row, const MetricColumn& col);
// "n_pre, length, ..., extra_json" with an optional table alias prefix.
std::string metric_select_list(const std::string& alias = {});

// Creates the schema in an empty database or checks an existing one:
// application_id, user_version and tables. FormatError for a foreign or newer
// file. With `create` false an empty database is a FormatError too. A
// version-1 store is upgraded in place when `writable`.
void init_or_check_schema(Db& db, bool create, bool writable);
// Packed little-endian blobs of the similarity tables: float16 vectors and
// uint64 signatures. Decoding throws FormatError for a length that is not a
// whole number of values.
std::string encode_f16(const std::vector<float>& values);
std::vector<float> decode_f16(const void* data, std::size_t n_bytes);
std::string encode_u64(const std::vector<uint64_t>& values);
std::vector<uint64_t> decode_u64(const void* data, std::size_t n_bytes);

// Whether the store has the table (a version-1 store lacks the similarity tables).
bool has_table(const Db& db, const char* name);
// Opens a store for writing (created if missing), WAL + synchronous=NORMAL.
std::unique_ptr<Db> open_store_for_write(const std::string& path, int busy_timeout_ms);
// Opens an existing store for reading.
std::unique_ptr<Db> open_store_for_read(const std::string& path);

// SELECT of the runs table matching read_run() (a store older than version 3
// opened read-only: NULL mean loss, its train_loss as the last step's).
std::string run_select(const Db& db);
RunInfo read_run(const Statement& st);
std::vector<RunInfo> load_runs(const Db& db);
std::optional<RunInfo> find_run_by_key(const Db& db, const std::string& key);
// Inserts a run row; returns its run_id.
int64_t insert_run(Db& db, const std::string& key, const RunSpec& spec, const std::string& started_at,
                   const std::optional<std::string>& finished_at, RunStatus status,
                   const std::string& memskew_version);

// Options without the shard field: what the run key and comparisons see.
nlohmann::json options_for_key(const nlohmann::json& options);
// Human-readable list of the identity fields where a and b differ.
std::vector<std::string> diff_specs(const RunSpec& a, const RunSpec& b);
// Same checkpoint: the same model and adapter paths and equal (step, epoch),
// absent == absent. Two runs of one checkpoint with different keys mean its
// content or the options changed; runs of other paths are other checkpoints
// (plain adapters without a step, checkpoints of other training runs).
bool same_checkpoint(const RunSpec& a, const RunSpec& b);
std::string describe_checkpoint(const RunSpec& spec);

std::string utc_now_iso8601();

}  // namespace memskew::store_detail

namespace memskew {

struct ResultReader::Impl {
    std::unique_ptr<store_detail::Db> db;
    // InvalidInput naming the run ids the store holds when run_id is not one.
    void require_run(int64_t run_id) const;
};

namespace store_detail {
// The store's own files reach a reader's database through this; no other
// layer sends SQL.
struct ReaderAccess {
    static const Db& db(const ResultReader& r) { return *r.impl_->db; }
};
}  // namespace store_detail

}  // namespace memskew
