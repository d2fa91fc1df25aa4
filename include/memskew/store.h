// The results store: one SQLite file per probe output (`memskew probe --out
// RUN.db`), holding one run per checkpoint with per-sample rows, metrics and
// per-token arrays. Schema and conventions: docs/store-schema.md.
//
// Guarantees
//   - Writes are batched: ResultWriter commits every WriterParams::batch_size
//     samples in one transaction (WAL, synchronous=NORMAL). A crash or SIGKILL
//     loses at most the uncommitted batch and never leaves a sample half
//     written: its sample row, metrics row and token arrays commit together.
//   - A file that is not a memskew store (another SQLite database, random
//     bytes) is a FormatError saying "not a memskew results store"; a damaged
//     store is a FormatError saying it is corrupted. Unopenable or unwritable
//     files are IoError; a --resume that does not match the stored run is
//     InvalidInput naming the differing fields.
//   - Not thread-safe: one writer or reader object per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "memskew/metrics.h"

namespace memskew {
namespace store_detail {
struct ReaderAccess;
}

// Version of the schema this build writes and reads (PRAGMA user_version and
// meta.schema_version).
// Version 2 added the similarity tables (sample_vectors, sample_similarity,
// run_similarity); a version-1 store is upgraded in place when opened for
// writing and read as a store without similarity figures otherwise.
// Version 3 made runs.train_loss the epoch's mean training loss and added
// runs.train_loss_last_step; an older store's train_loss (the last logged
// step's) becomes train_loss_last_step, its train_loss NULL (upgraded in place
// when writable, read that way otherwise).
inline constexpr int kStoreSchemaVersion = 3;
// PRAGMA application_id of a memskew store: "MSKW" in ASCII.
inline constexpr int32_t kStoreApplicationId = 0x4D534B57;
// Key of RunSpec::options that is excluded from the run key, so shards of one
// run (options {"shard": "0/4"}, {"shard": "1/4"}, ...) share a key and merge.
inline constexpr const char* kShardOptionKey = "shard";
// Key of RunSpec::options excluded from the run key as well: whether the
// sample embeddings are kept after the similarity figures are computed. It
// changes what the store holds, not any result.
inline constexpr const char* kKeepEmbeddingsOptionKey = "keep_embeddings";

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

// What identifies a run: the model (and adapter/checkpoint), the dataset and
// the probe options. Paths are recorded but are not part of the key, so shards
// probed on different machines (different paths, same files) merge.
struct RunSpec {
    std::string model_path;
    std::string model_fingerprint;    // content hash, or file_fingerprint(); required
    std::string adapter_path;         // empty: no adapter
    std::string adapter_fingerprint;  // empty: no adapter
    std::optional<int64_t> checkpoint_step;
    std::optional<int64_t> checkpoint_epoch;
    // Training loss of the checkpoint (recorded, not part of the key): the mean
    // of the logged step losses of its epoch up to its step (checkpoint_loss,
    // trainer-state.h), and the last logged step's loss. A store from before
    // schema version 3 recorded only the latter: train_loss is absent there.
    std::optional<double> train_loss;
    std::optional<double> train_loss_last_step;
    std::string dataset_path;
    std::string dataset_hash;  // required
    // Probe options (sampling, k, n, shard, ...): any JSON object. Part of the
    // key except kShardOptionKey.
    nlohmann::json options = nlohmann::json::object();
    int64_t n_samples_planned = 0;  // recorded, not part of the key
};

// Hex digest identifying a spec: xxh3-128 of the canonical JSON of
// {model_fingerprint, adapter_fingerprint, checkpoint_step, checkpoint_epoch,
// dataset_hash, options without "shard"}.
std::string run_key(const RunSpec& spec);

// "size=<bytes>,mtime=<ns>" of a file: a cheap model fingerprint when hashing
// gigabytes is too slow. Throws IoError when the file cannot be stat'ed.
std::string file_fingerprint(const std::string& path);

enum class RunStatus { kRunning, kDone };
std::string_view run_status_name(RunStatus status);

struct RunInfo {
    int64_t run_id = 0;
    std::string run_key;
    RunSpec spec;
    std::string memskew_version;
    std::string started_at;                  // ISO 8601 UTC
    std::optional<std::string> finished_at;  // absent while running
    RunStatus status = RunStatus::kRunning;
    int64_t n_samples = 0;  // samples stored so far
};

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

// The per-sample metric columns of the `metrics` table, absent = NULL. Names
// follow the columns (docs/store-schema.md); to_metrics_row() fills them from
// SampleMetrics.
struct MetricsRow {
    // M2/M3
    std::optional<int64_t> n_pre;
    std::optional<int64_t> length;
    std::optional<bool> exact;
    std::optional<double> n_pre_frac;
    // M7 per-sample view at T = 1
    std::optional<double> log_p_full_t1;
    std::optional<double> expected_n_pre_t1;
    // M4 under the run's sampling transform
    std::optional<double> log_p_z;
    std::optional<double> expected_n_pre;
    std::optional<double> log_p_extract_n;  // log P(extracted within n tries)
    std::optional<double> log_tries;        // log of tries for the target probability
    std::optional<double> log_p_ge_5;       // log P(N_pre >= k) for the M5 thresholds
    std::optional<double> log_p_ge_10;
    std::optional<double> log_p_ge_20;
    std::optional<double> log_p_ge_50;
    // M8 teacher-forced
    std::optional<double> loss;  // mean NLL
    std::optional<double> perplexity;
    std::optional<double> min_k_prob;
    std::optional<double> min_k_plus_plus;
    std::optional<double> zlib_ratio;
    std::optional<double> mean_entropy;
    // M8 on the generated output (absent without generation)
    std::optional<int64_t> n_pre_generated;
    std::optional<bool> gen_exact;
    std::optional<double> rouge1;  // F1
    std::optional<double> rouge2;  // F1
    std::optional<double> rouge_l;  // F1
    std::optional<int64_t> lev_tokens;
    std::optional<double> lev_sim_tokens;
    std::optional<int64_t> lev_chars;
    std::optional<double> lev_sim_chars;
    std::optional<double> pythia_score;
    std::optional<bool> k_extractable;
    // M12 on the generated output: longest common substring with the
    // reference (tokens), approximate memorization (normalised edit distance
    // <= 0.1) and the model's mean log-probability of the emitted tokens.
    std::optional<int64_t> gen_lcs;
    std::optional<bool> gen_approx;
    std::optional<double> gen_mean_logprob;
    // M12 decoding guard (probe --generate --guard): the guarded output's
    // metrics, the steps where the guard blocked the argmax, and the cost.
    std::optional<int64_t> guard_n_pre;
    std::optional<bool> guard_exact;
    std::optional<double> guard_rouge_l;
    std::optional<double> guard_lev_sim_tokens;
    std::optional<int64_t> guard_lcs;
    std::optional<bool> guard_approx;
    std::optional<int64_t> guard_blocked;
    std::optional<double> guard_mean_logprob;
    // Metrics without a column (JSON object); null = NULL.
    nlohmann::json extra;

    bool operator==(const MetricsRow& other) const;
};

// Maps SampleMetrics to columns; NaN doubles become absent (NULL). When
// log_survival (metrics.h: element k-1 = log P(N_pre >= k)) is given, the
// log_p_ge_* columns it reaches are filled.
// The row as a JSON object with the export's column names (absent = null,
// non-finite reals = null as in JSON Lines export) and "extra_json" parsed.
nlohmann::json metrics_row_json(const MetricsRow& row);
MetricsRow to_metrics_row(const SampleMetrics& metrics,
                          const std::vector<double>* log_survival = nullptr);

// Per-token arrays of one sample, length L each (the reference positions).
struct StoredTokens {
    std::vector<uint8_t> match;     // c_j (0/1)
    std::vector<int32_t> argmax;    // a_j
    std::vector<float> logprob;     // log q_j
    std::vector<int32_t> rank;      // rank of r_j
    std::vector<float> entropy;     // H_j
    std::vector<float> logprob_sampling;  // log p_j^T; empty = NULL (no sampling transform)
    std::vector<int32_t> reference;       // r_j
    std::optional<std::vector<int32_t>> generated;  // absent = NULL (not generated); any length

    bool operator==(const StoredTokens& other) const;
};

// The per-sample inputs of the similarity figures (METHOD M10), written with
// the sample and kept until the run's figures are computed (then dropped
// unless the run keeps its embeddings): see store-similarity.h.
struct SampleVectors {
    // Unit-length embeddings, [d] each, stored as float16; empty: none (both
    // or neither). Every sample of a run has the same d.
    std::vector<float> prompt_embedding;
    std::vector<float> full_embedding;
    // MinHash signature of the full sample's token 5-grams (near-duplicates.h).
    std::vector<uint64_t> minhash;
    // xxh3-64 of the prompt's and of the reference's token ids (exact duplicates).
    uint64_t prompt_hash = 0;
    uint64_t reference_hash = 0;
};

struct SampleRecord {
    std::string sample_id;  // unique within a run
    int64_t sample_index = 0;
    int64_t prompt_tokens = 0;
    int64_t reference_tokens = 0;
    bool truncated = false;
    std::optional<std::string> prompt_text;
    std::optional<std::string> reference_text;
    std::optional<std::string> generated_text;
    MetricsRow metrics;
    std::optional<StoredTokens> tokens;  // absent: no token_arrays row
    // Absent: no sample_vectors row. Written by ResultWriter::add; not read
    // back by load_samples (load_vectors() in store-similarity.h reads them).
    std::optional<SampleVectors> vectors;

    bool operator==(const SampleRecord& other) const;
};

// Records as bytes and back, exactly (floats bit for bit, embeddings as
// float32): how the ranks of a distributed probe send their results to rank
// 0, the store's one writer (src/store/record-codec.cpp). decode throws
// FormatError for bytes that are not records.
std::string encode_sample_records(const std::vector<SampleRecord>& records);
std::vector<SampleRecord> decode_sample_records(const std::string& bytes);

// ---------------------------------------------------------------------------
// Blob encoding: little-endian packed arrays (uint8, int32, float32)
// ---------------------------------------------------------------------------

std::string encode_u8(const std::vector<uint8_t>& values);
std::string encode_i32(const std::vector<int32_t>& values);
std::string encode_f32(const std::vector<float>& values);
// Throw FormatError when n_bytes is not a multiple of the element size.
std::vector<uint8_t> decode_u8(const void* data, std::size_t n_bytes);
std::vector<int32_t> decode_i32(const void* data, std::size_t n_bytes);
std::vector<float> decode_f32(const void* data, std::size_t n_bytes);

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

enum class ResumeMode {
    kFresh,   // start the run; error if a run with this key already has samples
    kResume,  // continue the run with this key (or start it); error on a mismatched spec
};

struct WriterParams {
    int64_t batch_size = 256;  // samples per transaction
    // Milliseconds to wait for a lock held by another connection.
    int busy_timeout_ms = 5000;
};

struct OpenedRun;
class ResultWriter {
public:
    ResultWriter(ResultWriter&&) noexcept;
    ResultWriter& operator=(ResultWriter&&) noexcept;
    // Commits what is buffered (errors are logged, not thrown); does not mark
    // the run done: an interrupted probe stays 'running' and can be resumed.
    ~ResultWriter();

    int64_t run_id() const;
    const std::string& path() const;
    // Buffers one sample; commits when batch_size samples are buffered. Throws
    // InvalidInput for a sample id already in the run or arrays of mismatched
    // lengths, before anything is buffered.
    void add(SampleRecord record);
    // Commits the buffered samples now.
    void flush();
    // flush() and marks the run done with its finished_at time.
    void finish();
    int64_t n_committed() const;  // samples of this run committed to the file
    int64_t n_buffered() const;

    struct Impl;  // src/store/writer.cpp

private:
    explicit ResultWriter(std::unique_ptr<Impl> impl);
    friend OpenedRun open_run(const std::string& db_path, const RunSpec& spec, ResumeMode mode,
                              const WriterParams& params);
    std::unique_ptr<Impl> impl_;
};

struct OpenedRun {
    RunInfo run;
    bool resumed = false;  // the run existed with samples and continues
    std::unordered_set<std::string> done_sample_ids;  // committed before this open
    ResultWriter writer;
};

// Opens (creating if needed) the store at db_path and the run of `spec`:
//   kFresh:  a run with this key that already has samples is an InvalidInput
//            (hint: --resume, or another --out); an empty one is reused.
//   kResume: the run with this key continues (status back to 'running'); if
//            there is none but a run of the same checkpoint (step, epoch) with a
//            different model, adapter, dataset or options exists, InvalidInput
//            lists the fields that differ; otherwise a new run starts.
// Other runs of the store (other checkpoints) are left alone.
OpenedRun open_run(const std::string& db_path, const RunSpec& spec, ResumeMode mode,
                   const WriterParams& params = {});

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

// Every per-sample value of a run as column vectors, ordered by sample_index
// (then sample_id). Metric columns are doubles with NULL as NaN, in schema
// order (names as in the metrics table; booleans as 0/1).
struct RunColumns {
    int64_t run_id = 0;
    std::vector<std::string> sample_id;
    std::vector<int64_t> sample_index;
    std::vector<int64_t> prompt_tokens;
    std::vector<int64_t> reference_tokens;
    std::vector<uint8_t> truncated;
    std::vector<int64_t> n_pre;   // NULL as -1
    std::vector<int64_t> length;  // NULL as -1
    std::vector<std::string> metric_names;
    std::vector<std::vector<double>> metric_values;  // [metric][sample]

    std::size_t size() const { return sample_id.size(); }
    // The column of one metric; InvalidInput for an unknown name.
    const std::vector<double>& metric(std::string_view name) const;
};

// Names of the metric columns, in schema order (without extra_json).
const std::vector<std::string>& metric_column_names();

class ResultReader {
public:
    // Opens an existing store. IoError when it cannot be opened, FormatError
    // when it is not a memskew store, is corrupted, or has a newer schema.
    // memory_map: read through a memory mapping (faster full loads; the
    // mapped pages count as the process's resident memory).
    static ResultReader open(const std::string& db_path, bool memory_map = true);
    ResultReader(ResultReader&&) noexcept;
    ResultReader& operator=(ResultReader&&) noexcept;
    ~ResultReader();

    const std::string& path() const;
    // All runs, by run_id; empty for a store without runs.
    std::vector<RunInfo> runs() const;
    // InvalidInput when there is no such run (the message lists the run ids).
    RunInfo run(int64_t run_id) const;
    // The single run of the store; InvalidInput when it has none ("empty
    // store") or several (hint: pick a run id).
    RunInfo only_run() const;

    RunColumns load_columns(int64_t run_id) const;
    // Full records (texts, metrics, tokens) in sample_index order.
    std::vector<SampleRecord> load_samples(int64_t run_id) const;
    // Token arrays of one sample; absent when the sample or its arrays are not stored.
    std::optional<StoredTokens> load_tokens(int64_t run_id, const std::string& sample_id) const;
    // Streams the token arrays of every sample of the run in storage order,
    // one at a time (memory stays O(L)).
    void for_each_tokens(int64_t run_id,
                         const std::function<void(const std::string& sample_id,
                                                  const StoredTokens& tokens)>& fn) const;
    // The texts and counts of one sample (no metrics, no token arrays):
    // sample_id, sample_index, prompt/reference tokens, truncated and the
    // stored texts. nullopt when the run does not hold the sample.
    std::optional<SampleRecord> load_sample_texts(int64_t run_id, const std::string& sample_id) const;
    // Streams (sample_id, prompt_text) of every sample of the run whose prompt
    // text is stored, in storage order.
    void for_each_prompt(int64_t run_id,
                         const std::function<void(const std::string& sample_id, const std::string& prompt)>& fn) const;
    // PRAGMA integrity_check over the whole file (reads every page: seconds
    // per GB). Throws FormatError listing the first problems.
    void check_integrity() const;

    struct Impl;  // src/store/store-impl.h

private:
    explicit ResultReader(std::unique_ptr<Impl> impl);
    friend struct store_detail::ReaderAccess;  // the store's own files (export)
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------
// Merge and export
// ---------------------------------------------------------------------------

struct MergeReport {
    int64_t n_runs = 0;     // runs in the output touched by the merge
    int64_t n_samples = 0;  // samples copied
    std::vector<int64_t> run_ids;  // the output runs touched, ascending
    // Output runs that gained samples from several inputs (shards): their
    // similarity figures, if any, were dropped and need computing again over
    // the whole run (the CLI's merge does it).
    std::vector<int64_t> unioned_run_ids;
};

// Copies every run of `inputs` into `output` (created if missing; an existing
// store gains the runs). Runs with the same run key (shards: the options may
// differ only in "shard") become one run whose options drop "shard"; runs with
// different keys are copied as separate runs, except that a run of the same
// checkpoint (step, epoch) as a run from another input but with a different
// key is an InvalidInput listing the differing fields. A sample id present in
// two shards is an InvalidInput naming it and both files. All or nothing: on
// error the output is left as it was.
MergeReport merge_stores(const std::vector<std::string>& inputs, const std::string& output);

enum class ExportFormat { kCsv, kJsonl };
ExportFormat parse_export_format(std::string_view name);  // "csv" | "jsonl"

struct ExportParams {
    std::optional<int64_t> run_id;  // absent: every run, by run_id
    ExportFormat format = ExportFormat::kCsv;
};

// Writes the per-sample table: run_id, checkpoint_step, checkpoint_epoch,
// sample_id, sample_index, prompt_tokens, reference_tokens, the metric columns,
// extra_json. CSV (RFC 4180, header row, CRLF-free "\n" line ends): NULL/NaN as
// an empty field, +-inf as inf/-inf. JSONL: one object per sample, NULL/NaN and
// +-inf as null, extra_json as an object. Returns the number of rows.
int64_t export_run(const ResultReader& reader, const ExportParams& params, std::ostream& out);

}  // namespace memskew
