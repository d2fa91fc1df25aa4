// Schema creation and validation, metric columns, runs and run keys.
#include <xxhash.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

using store_detail::MetricColumn;

namespace store_detail {

const std::vector<MetricColumn>& metric_columns() {
    using R = MetricsRow;
    auto i = [](const char* n, std::optional<int64_t> R::*m) { return MetricColumn{n, m, nullptr, nullptr}; };
    auto d = [](const char* n, std::optional<double> R::*m) { return MetricColumn{n, nullptr, m, nullptr}; };
    auto b = [](const char* n, std::optional<bool> R::*m) { return MetricColumn{n, nullptr, nullptr, m}; };
    static const std::vector<MetricColumn> kColumns = {
        i("n_pre", &R::n_pre),
        i("length", &R::length),
        b("exact", &R::exact),
        d("n_pre_frac", &R::n_pre_frac),
        d("log_p_full_t1", &R::log_p_full_t1),
        d("expected_n_pre_t1", &R::expected_n_pre_t1),
        d("log_p_z", &R::log_p_z),
        d("expected_n_pre", &R::expected_n_pre),
        d("log_p_extract_n", &R::log_p_extract_n),
        d("log_tries", &R::log_tries),
        d("log_p_ge_5", &R::log_p_ge_5),
        d("log_p_ge_10", &R::log_p_ge_10),
        d("log_p_ge_20", &R::log_p_ge_20),
        d("log_p_ge_50", &R::log_p_ge_50),
        d("loss", &R::loss),
        d("perplexity", &R::perplexity),
        d("min_k_prob", &R::min_k_prob),
        d("min_k_plus_plus", &R::min_k_plus_plus),
        d("zlib_ratio", &R::zlib_ratio),
        d("mean_entropy", &R::mean_entropy),
        i("n_pre_generated", &R::n_pre_generated),
        b("gen_exact", &R::gen_exact),
        d("rouge1", &R::rouge1),
        d("rouge2", &R::rouge2),
        d("rouge_l", &R::rouge_l),
        i("lev_tokens", &R::lev_tokens),
        d("lev_sim_tokens", &R::lev_sim_tokens),
        i("lev_chars", &R::lev_chars),
        d("lev_sim_chars", &R::lev_sim_chars),
        d("pythia_score", &R::pythia_score),
        b("k_extractable", &R::k_extractable),
        // Schema version 2 (a version-1 store gains them, NULL, when upgraded).
        i("gen_lcs", &R::gen_lcs),
        b("gen_approx", &R::gen_approx),
        d("gen_mean_logprob", &R::gen_mean_logprob),
        i("guard_n_pre", &R::guard_n_pre),
        b("guard_exact", &R::guard_exact),
        d("guard_rouge_l", &R::guard_rouge_l),
        d("guard_lev_sim_tokens", &R::guard_lev_sim_tokens),
        i("guard_lcs", &R::guard_lcs),
        b("guard_approx", &R::guard_approx),
        i("guard_blocked", &R::guard_blocked),
        d("guard_mean_logprob", &R::guard_mean_logprob),
    };
    return kColumns;
}

void bind_metrics(Statement& st, int first, const MetricsRow& row) {
    int pos = first;
    for (const auto& c : metric_columns()) {
        if (c.as_int) {
            const auto& v = row.*c.as_int;
            v ? st.bind_int(pos, *v) : st.bind_null(pos);
        } else if (c.as_real) {
            const auto& v = row.*c.as_real;
            // SQLite would store NaN as NULL anyway; be explicit.
            (v && !std::isnan(*v)) ? st.bind_double(pos, *v) : st.bind_null(pos);
        } else {
            const auto& v = row.*c.as_bool;
            v ? st.bind_int(pos, *v ? 1 : 0) : st.bind_null(pos);
        }
        ++pos;
    }
    if (row.extra.is_null())
        st.bind_null(pos);
    else
        st.bind_text(pos, row.extra.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

MetricsRow read_metrics(const Statement& st, int first) {
    MetricsRow row;
    int pos = first;
    for (const auto& c : metric_columns()) {
        if (!st.is_null(pos)) {
            if (c.as_int)
                row.*c.as_int = st.column_int(pos);
            else if (c.as_real)
                row.*c.as_real = st.column_double(pos);
            else
                row.*c.as_bool = st.column_int(pos) != 0;
        }
        ++pos;
    }
    if (!st.is_null(pos)) {
        try {
            row.extra = nlohmann::json::parse(st.column_text(pos));
        } catch (const nlohmann::json::exception& e) {
            throw FormatError(fmt::format("metrics.extra_json is not valid JSON: {}", e.what()), kCorruptHint);
        }
    }
    return row;
}

double metric_as_double(const MetricsRow& row, const MetricColumn& c) {
    constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    if (c.as_int) return (row.*c.as_int) ? static_cast<double>(*(row.*c.as_int)) : kNaN;
    if (c.as_real) return (row.*c.as_real) ? *(row.*c.as_real) : kNaN;
    return (row.*c.as_bool) ? (*(row.*c.as_bool) ? 1.0 : 0.0) : kNaN;
}

std::string metric_select_list(const std::string& alias) {
    const std::string p = alias.empty() ? "" : alias + ".";
    std::string out;
    for (const auto& c : metric_columns()) out += p + c.name + ", ";
    return out + p + "extra_json";
}

namespace {

std::string metrics_table_sql() {
    std::string cols;
    for (const auto& c : metric_columns()) cols += fmt::format("  {} {},\n", c.name, c.as_real ? "REAL" : "INTEGER");
    return "CREATE TABLE metrics(\n"
           "  run_id INTEGER NOT NULL REFERENCES runs(run_id),\n"
           "  sample_id TEXT NOT NULL,\n" +
           cols +
           "  extra_json TEXT,\n"
           "  PRIMARY KEY(run_id, sample_id)\n"
           ");\n";
}

// The tables schema version 2 added (store-similarity.h).
std::string similarity_tables_sql() {
    return "CREATE TABLE sample_vectors(\n"
           "  run_id INTEGER NOT NULL REFERENCES runs(run_id),\n"
           "  sample_id TEXT NOT NULL,\n"
           "  prompt_embedding BLOB,\n"
           "  full_embedding BLOB,\n"
           "  minhash BLOB NOT NULL,\n"
           "  prompt_hash INTEGER NOT NULL,\n"
           "  reference_hash INTEGER NOT NULL,\n"
           "  PRIMARY KEY(run_id, sample_id)\n"
           ");\n"
           "CREATE TABLE sample_similarity(\n"
           "  run_id INTEGER NOT NULL REFERENCES runs(run_id),\n"
           "  sample_id TEXT NOT NULL,\n"
           "  knn_sim_prompt REAL,\n"
           "  knn_sim_full REAL,\n"
           "  knn_sim_delta REAL,\n"
           "  neighbours_prompt BLOB,\n"
           "  similarity_prompt BLOB,\n"
           "  neighbours_full BLOB,\n"
           "  similarity_full BLOB,\n"
           "  cluster INTEGER NOT NULL,\n"
           "  cluster_size INTEGER NOT NULL,\n"
           "  prompt_copies INTEGER NOT NULL,\n"
           "  reference_copies INTEGER NOT NULL,\n"
           "  PRIMARY KEY(run_id, sample_id)\n"
           ");\n"
           "CREATE TABLE run_similarity(\n"
           "  run_id INTEGER PRIMARY KEY REFERENCES runs(run_id),\n"
           "  n_samples INTEGER NOT NULL,\n"
           "  embed_model TEXT,\n"
           "  embed_dim INTEGER,\n"
           "  s_input REAL, s_full REAL, delta_s REAL,\n"
           "  k INTEGER,\n"
           "  knn_method TEXT,\n"
           "  knn_recall REAL,\n"
           "  knn_recall_queries INTEGER,\n"
           "  near_duplicate_params TEXT NOT NULL,\n"
           "  n_clusters INTEGER NOT NULL,\n"
           "  n_clustered_samples INTEGER NOT NULL,\n"
           "  largest_cluster INTEGER NOT NULL,\n"
           "  n_duplicate_prompts INTEGER NOT NULL,\n"
           "  n_duplicate_references INTEGER NOT NULL,\n"
           "  vectors_kept INTEGER NOT NULL,\n"
           "  computed_at TEXT NOT NULL,\n"
           "  seconds REAL NOT NULL\n"
           ");\n";
}

std::string schema_sql() {
    return fmt::format(
               "PRAGMA application_id = {};\n"
               "PRAGMA user_version = {};\n"
               "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
               "INSERT INTO meta VALUES('schema_version', '{}'), ('application', 'memskew'), "
               "('created_by', 'memskew {}');\n",
               kStoreApplicationId, kStoreSchemaVersion, kStoreSchemaVersion, MEMSKEW_VERSION) +
           "CREATE TABLE runs(\n"
           "  run_id INTEGER PRIMARY KEY,\n"
           "  run_key TEXT NOT NULL UNIQUE,\n"
           "  model_path TEXT NOT NULL,\n"
           "  model_fingerprint TEXT NOT NULL,\n"
           "  adapter_path TEXT,\n"
           "  adapter_fingerprint TEXT,\n"
           "  checkpoint_step INTEGER,\n"
           "  checkpoint_epoch INTEGER,\n"
           "  train_loss REAL,\n"
           "  train_loss_last_step REAL,\n"
           "  dataset_path TEXT NOT NULL,\n"
           "  dataset_hash TEXT NOT NULL,\n"
           "  options_json TEXT NOT NULL,\n"
           "  memskew_version TEXT NOT NULL,\n"
           "  started_at TEXT NOT NULL,\n"
           "  finished_at TEXT,\n"
           "  n_samples_planned INTEGER NOT NULL,\n"
           "  status TEXT NOT NULL CHECK(status IN ('running', 'done'))\n"
           ");\n"
           "CREATE TABLE samples(\n"
           "  run_id INTEGER NOT NULL REFERENCES runs(run_id),\n"
           "  sample_id TEXT NOT NULL,\n"
           "  sample_index INTEGER NOT NULL,\n"
           "  prompt_tokens INTEGER NOT NULL,\n"
           "  reference_tokens INTEGER NOT NULL,\n"
           "  truncated INTEGER NOT NULL,\n"
           "  prompt_text TEXT,\n"
           "  reference_text TEXT,\n"
           "  generated_text TEXT,\n"
           "  PRIMARY KEY(run_id, sample_id)\n"
           ");\n" +
           metrics_table_sql() +
           "CREATE TABLE token_arrays(\n"
           "  run_id INTEGER NOT NULL REFERENCES runs(run_id),\n"
           "  sample_id TEXT NOT NULL,\n"
           "  \"match\" BLOB NOT NULL,\n"
           "  \"argmax\" BLOB NOT NULL,\n"
           "  \"logprob\" BLOB NOT NULL,\n"
           "  \"rank\" BLOB NOT NULL,\n"
           "  \"entropy\" BLOB NOT NULL,\n"
           "  \"logprob_sampling\" BLOB,\n"
           "  \"reference\" BLOB NOT NULL,\n"
           "  \"generated\" BLOB,\n"
           "  PRIMARY KEY(run_id, sample_id)\n"
           ");\n" +
           similarity_tables_sql();
}

int64_t pragma_int(const Db& db, const char* pragma) {
    Statement st(db, std::string("PRAGMA ") + pragma);
    return st.step() ? st.column_int(0) : 0;
}

std::vector<std::string> table_names(const Db& db) {
    Statement st(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    std::vector<std::string> names;
    while (st.step()) names.push_back(st.column_text(0));
    return names;
}

[[noreturn]] void throw_foreign(const std::string& path, const std::string& why) {
    throw FormatError(fmt::format("{}: not a memskew results store ({})", path, why),
                      "pass the .db file written by `memskew probe --out`");
}

void check_schema(const Db& db) {
    const std::string& path = db.path();
    const int64_t app_id = pragma_int(db, "application_id");
    if (app_id != kStoreApplicationId) {
        const auto tables = table_names(db);
        std::string list;
        for (std::size_t i = 0; i < tables.size() && i < 5; ++i) list += (i ? ", " : "") + tables[i];
        if (tables.size() > 5) list += ", ...";
        if (app_id == 0)
            throw_foreign(path, tables.empty() ? "an empty SQLite database"
                                               : fmt::format("an SQLite database with tables {}", list));
        throw_foreign(path, fmt::format("SQLite application_id {:#x}, expected {:#x}", app_id, kStoreApplicationId));
    }
    const int64_t version = pragma_int(db, "user_version");
    if (version > kStoreSchemaVersion)
        throw FormatError(fmt::format("{}: results store schema version {} is newer than this memskew ({} reads "
                                      "version {})",
                                      path, version, MEMSKEW_VERSION, kStoreSchemaVersion),
                          "upgrade memskew to read this file");
    if (version < 1)
        throw FormatError(fmt::format("{}: results store has schema version {}; this build reads {}", path, version,
                                      kStoreSchemaVersion),
                          kCorruptHint);
    // Our application id but tables missing: a damaged or truncated store.
    const auto tables = table_names(db);
    const std::set<std::string> have(tables.begin(), tables.end());
    std::vector<const char*> required = {"meta", "runs", "samples", "metrics", "token_arrays"};
    if (version >= 2) required.insert(required.end(), {"sample_vectors", "sample_similarity", "run_similarity"});
    for (const char* t : required)
        if (!have.count(t))
            throw FormatError(fmt::format("{}: the results store is corrupted (table '{}' is missing)", path, t),
                              kCorruptHint);
}

std::set<std::string> metrics_table_columns(const Db& db) {
    std::set<std::string> cols;
    Statement st(db, "PRAGMA table_info(metrics)");
    while (st.step()) cols.insert(st.column_text(1));
    return cols;
}

// Every metric column this build knows must exist: catches a store from a
// build whose schema changed without a version bump.
void check_metric_columns(const Db& db) {
    const auto cols = metrics_table_columns(db);
    const bool old = pragma_int(db, "user_version") < 2;
    for (const auto& c : metric_columns())
        if (!cols.count(c.name))
            throw FormatError(fmt::format("{}: the results store lacks metrics column '{}'", db.path(), c.name),
                              old ? "it is a version-1 store opened read-only: memskew upgrades such stores in "
                                    "place (new tables and columns, nothing removed) when it can write the file; "
                                    "copy it somewhere writable"
                                  : "was it written by another memskew version? check `memskew --version`");
}

bool runs_have_last_step_loss(const Db& db) {
    Statement st(db, "SELECT 1 FROM pragma_table_info('runs') WHERE name = 'train_loss_last_step'");
    return st.step();
}

// In place, one transaction:
// - version 1 -> 2: the similarity tables and the metric columns added since
//   (NULL for the stored samples);
// - version 2 -> 3: runs.train_loss_last_step; the loss an older store kept in
//   train_loss (the last logged step's) moves there, and train_loss (now the
//   epoch's mean, which such a store never recorded) becomes NULL.
// Nothing else changes.
void upgrade_schema(Db& db) {
    Transaction tx(db);
    const int64_t version = pragma_int(db, "user_version");
    if (version >= kStoreSchemaVersion) return;
    std::string sql;
    if (version == 1) {
        sql += similarity_tables_sql();
        const auto cols = metrics_table_columns(db);
        for (const auto& c : metric_columns())
            if (!cols.count(c.name))
                sql += fmt::format("ALTER TABLE metrics ADD COLUMN {} {};\n", c.name, c.as_real ? "REAL" : "INTEGER");
    }
    if (!runs_have_last_step_loss(db))
        sql += "ALTER TABLE runs ADD COLUMN train_loss_last_step REAL;\n"
               "UPDATE runs SET train_loss_last_step = train_loss, train_loss = NULL;\n";
    sql += fmt::format("PRAGMA user_version = {};\nUPDATE meta SET value = '{}' WHERE key = 'schema_version';\n",
                       kStoreSchemaVersion, kStoreSchemaVersion);
    db.exec(sql);
    tx.commit();
}

}  // namespace

void init_or_check_schema(Db& db, bool create, bool writable) {
    // The first read detects a file that is not SQLite at all (SQLITE_NOTADB).
    const int64_t app_id = pragma_int(db, "application_id");
    if (create && app_id == 0) {
        // Incremental auto-vacuum lets a run give the pages of its dropped
        // embeddings back to the file system. It only takes effect before the
        // first table exists and outside a transaction (a no-op on a file
        // that already has tables).
        if (table_names(db).empty()) db.exec("PRAGMA auto_vacuum = INCREMENTAL");
        // Re-check inside a write transaction so two processes creating the
        // same file do not both build the schema.
        Transaction tx(db);
        if (pragma_int(db, "application_id") == 0 && table_names(db).empty()) {
            db.exec(schema_sql());
            tx.commit();
            return;
        }
    }
    check_schema(db);
    if (writable && pragma_int(db, "user_version") < kStoreSchemaVersion) upgrade_schema(db);
    check_metric_columns(db);
}

bool has_table(const Db& db, const char* name) {
    Statement st(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    st.bind_text(1, name);
    return st.step();
}

std::unique_ptr<Db> open_store_for_write(const std::string& path, int busy_timeout_ms) {
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
        throw IoError(fmt::format("{}: cannot create the results store: folder '{}' does not exist", path,
                                  parent.string()),
                      "create the folder first, or choose another --out");
    auto db = std::make_unique<Db>(path, Db::Mode::kCreate, busy_timeout_ms);
    init_or_check_schema(*db, /*create=*/true, /*writable=*/true);
    // WAL: a crashed writer never corrupts the file, readers do not block the
    // writer. synchronous=NORMAL: a commit is durable against process crashes
    // (only a power loss may drop the last commits), at a fraction of FULL's fsyncs.
    {
        Statement st(*db, "PRAGMA journal_mode = WAL");
        if (st.step() && st.column_text(0) != "wal")
            throw IoError(fmt::format("{}: cannot switch the results store to WAL mode (got '{}')", path,
                                      st.column_text(0)),
                          "put --out on a local file system (WAL needs shared memory; network file systems "
                          "often lack it)");
    }
    db->exec("PRAGMA synchronous = NORMAL");
    return db;
}

std::unique_ptr<Db> open_store_for_read(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw IoError(fmt::format("{}: cannot open the results store: no such file", path),
                      "check the path: is it the file written by `memskew probe --out`?");
    if (std::filesystem::is_directory(path, ec))
        throw IoError(fmt::format("{}: cannot open the results store: it is a folder", path),
                      "pass the .db file written by `memskew probe --out`");
    std::unique_ptr<Db> db;
    // Read-write when allowed: recovering the WAL of a crashed writer needs to
    // write. Nothing is written otherwise.
    try {
        db = std::make_unique<Db>(path, Db::Mode::kReadWrite);
        init_or_check_schema(*db, /*create=*/false, /*writable=*/true);
    } catch (const IoError&) {
        db = std::make_unique<Db>(path, Db::Mode::kReadOnly);
        init_or_check_schema(*db, /*create=*/false, /*writable=*/false);
    }
    return db;
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

std::string run_select(const Db& db) {
    // A store older than version 3 opened read-only (not upgraded): its
    // train_loss is the last step's, and it has no epoch mean.
    const char* losses = runs_have_last_step_loss(db) ? "train_loss, train_loss_last_step"
                                                       : "NULL, train_loss";
    return fmt::format(
        "SELECT run_id, run_key, model_path, model_fingerprint, adapter_path, adapter_fingerprint, checkpoint_step, "
        "checkpoint_epoch, {}, dataset_path, dataset_hash, options_json, memskew_version, started_at, "
        "finished_at, n_samples_planned, status, "
        "(SELECT count(*) FROM samples s WHERE s.run_id = runs.run_id) FROM runs",
        losses);
}

RunInfo read_run(const Statement& st) {
    RunInfo r;
    r.run_id = st.column_int(0);
    r.run_key = st.column_text(1);
    r.spec.model_path = st.column_text(2);
    r.spec.model_fingerprint = st.column_text(3);
    r.spec.adapter_path = st.column_text(4);
    r.spec.adapter_fingerprint = st.column_text(5);
    if (!st.is_null(6)) r.spec.checkpoint_step = st.column_int(6);
    if (!st.is_null(7)) r.spec.checkpoint_epoch = st.column_int(7);
    if (!st.is_null(8)) r.spec.train_loss = st.column_double(8);
    if (!st.is_null(9)) r.spec.train_loss_last_step = st.column_double(9);
    r.spec.dataset_path = st.column_text(10);
    r.spec.dataset_hash = st.column_text(11);
    try {
        r.spec.options = nlohmann::json::parse(st.column_text(12));
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("run {}: options_json is not valid JSON: {}", r.run_id, e.what()),
                          kCorruptHint);
    }
    r.memskew_version = st.column_text(13);
    r.started_at = st.column_text(14);
    if (!st.is_null(15)) r.finished_at = st.column_text(15);
    r.spec.n_samples_planned = st.column_int(16);
    r.status = st.column_text(17) == "done" ? RunStatus::kDone : RunStatus::kRunning;
    r.n_samples = st.column_int(18);
    return r;
}

std::vector<RunInfo> load_runs(const Db& db) {
    Statement st(db, run_select(db) + " ORDER BY run_id");
    std::vector<RunInfo> runs;
    while (st.step()) {
        try {
            runs.push_back(read_run(st));
        } catch (const Error& e) {
            e.rethrow_with_context(db.path());
        }
    }
    return runs;
}

std::optional<RunInfo> find_run_by_key(const Db& db, const std::string& key) {
    Statement st(db, run_select(db) + " WHERE run_key = ?");
    st.bind_text(1, key);
    if (!st.step()) return std::nullopt;
    return read_run(st);
}

int64_t insert_run(Db& db, const std::string& key, const RunSpec& spec, const std::string& started_at,
                   const std::optional<std::string>& finished_at, RunStatus status,
                   const std::string& memskew_version) {
    Statement st(db,
                 "INSERT INTO runs(run_key, model_path, model_fingerprint, adapter_path, adapter_fingerprint, "
                 "checkpoint_step, checkpoint_epoch, train_loss, train_loss_last_step, dataset_path, dataset_hash, "
                 "options_json, memskew_version, started_at, finished_at, n_samples_planned, status) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind_text(1, key);
    st.bind_text(2, spec.model_path);
    st.bind_text(3, spec.model_fingerprint);
    spec.adapter_path.empty() ? st.bind_null(4) : st.bind_text(4, spec.adapter_path);
    spec.adapter_fingerprint.empty() ? st.bind_null(5) : st.bind_text(5, spec.adapter_fingerprint);
    spec.checkpoint_step ? st.bind_int(6, *spec.checkpoint_step) : st.bind_null(6);
    spec.checkpoint_epoch ? st.bind_int(7, *spec.checkpoint_epoch) : st.bind_null(7);
    spec.train_loss ? st.bind_double(8, *spec.train_loss) : st.bind_null(8);
    spec.train_loss_last_step ? st.bind_double(9, *spec.train_loss_last_step) : st.bind_null(9);
    st.bind_text(10, spec.dataset_path);
    st.bind_text(11, spec.dataset_hash);
    st.bind_text(12, spec.options.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    st.bind_text(13, memskew_version);
    st.bind_text(14, started_at);
    finished_at ? st.bind_text(15, *finished_at) : st.bind_null(15);
    st.bind_int(16, spec.n_samples_planned);
    st.bind_text(17, run_status_name(status));
    st.run();
    return sqlite3_last_insert_rowid(db.handle());
}

nlohmann::json options_for_key(const nlohmann::json& options) {
    nlohmann::json o = options;
    if (o.is_object()) {
        o.erase(kShardOptionKey);
        o.erase(kKeepEmbeddingsOptionKey);
    }
    return o;
}

std::vector<std::string> diff_specs(const RunSpec& a, const RunSpec& b) {
    std::vector<std::string> out;
    auto cmp = [&](const char* name, const std::string& x, const std::string& y) {
        if (x != y) out.push_back(fmt::format("{} ('{}' vs '{}')", name, x, y));
    };
    auto opt = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("none"); };
    cmp("model_fingerprint", a.model_fingerprint, b.model_fingerprint);
    cmp("adapter_fingerprint", a.adapter_fingerprint, b.adapter_fingerprint);
    if (a.checkpoint_step != b.checkpoint_step)
        out.push_back(fmt::format("checkpoint_step ({} vs {})", opt(a.checkpoint_step), opt(b.checkpoint_step)));
    if (a.checkpoint_epoch != b.checkpoint_epoch)
        out.push_back(fmt::format("checkpoint_epoch ({} vs {})", opt(a.checkpoint_epoch), opt(b.checkpoint_epoch)));
    cmp("dataset_hash", a.dataset_hash, b.dataset_hash);
    const auto oa = options_for_key(a.options), ob = options_for_key(b.options);
    if (oa != ob) {
        if (oa.is_object() && ob.is_object()) {
            std::set<std::string> keys;
            for (auto it = oa.begin(); it != oa.end(); ++it) keys.insert(it.key());
            for (auto it = ob.begin(); it != ob.end(); ++it) keys.insert(it.key());
            for (const auto& k : keys) {
                const auto va = oa.contains(k) ? oa.at(k).dump() : std::string("absent");
                const auto vb = ob.contains(k) ? ob.at(k).dump() : std::string("absent");
                if (va != vb) out.push_back(fmt::format("options_json.{} ({} vs {})", k, va, vb));
            }
        } else {
            out.push_back(fmt::format("options_json ({} vs {})", oa.dump(), ob.dump()));
        }
    }
    return out;
}

bool same_checkpoint(const RunSpec& a, const RunSpec& b) {
    return a.model_path == b.model_path && a.adapter_path == b.adapter_path &&
           a.checkpoint_step == b.checkpoint_step && a.checkpoint_epoch == b.checkpoint_epoch;
}

std::string describe_checkpoint(const RunSpec& spec) {
    if (!spec.checkpoint_step && !spec.checkpoint_epoch) return "no checkpoint step/epoch";
    std::string s;
    if (spec.checkpoint_step) s += fmt::format("step {}", *spec.checkpoint_step);
    if (spec.checkpoint_epoch) s += fmt::format("{}epoch {}", s.empty() ? "" : ", ", *spec.checkpoint_epoch);
    return s;
}

std::string utc_now_iso8601() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03}Z", buf, ms);
}

}  // namespace store_detail

std::string_view run_status_name(RunStatus status) { return status == RunStatus::kDone ? "done" : "running"; }

std::string run_key(const RunSpec& spec) {
    if (!spec.options.is_object())
        throw InvalidInput(fmt::format("run options must be a JSON object, got {}", spec.options.type_name()));
    // nlohmann's object keeps keys sorted, so dump() is canonical.
    nlohmann::json id = {
        {"model_fingerprint", spec.model_fingerprint},
        {"adapter_fingerprint", spec.adapter_fingerprint},
        {"checkpoint_step", spec.checkpoint_step ? nlohmann::json(*spec.checkpoint_step) : nlohmann::json()},
        {"checkpoint_epoch", spec.checkpoint_epoch ? nlohmann::json(*spec.checkpoint_epoch) : nlohmann::json()},
        {"dataset_hash", spec.dataset_hash},
        {"options", store_detail::options_for_key(spec.options)},
    };
    const std::string text = id.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
    return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

std::string file_fingerprint(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) throw IoError(fmt::format("{}: cannot stat file: {}", path, ec.message()), "check the path");
    const auto mtime = fs::last_write_time(path, ec);
    if (ec) throw IoError(fmt::format("{}: cannot stat file: {}", path, ec.message()), "check the path");
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
    return fmt::format("size={},mtime={}", size, ns);
}

}  // namespace memskew
