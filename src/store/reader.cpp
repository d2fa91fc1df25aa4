// ResultReader: runs, column vectors, records and token arrays.
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

using namespace store_detail;

namespace {

StoredTokens read_tokens(const Statement& st, int first) {
    auto blob = [&](int i) { return st.column_blob(first + i); };
    StoredTokens t;
    auto [p0, n0] = blob(0);
    t.match = decode_u8(p0, n0);
    auto [p1, n1] = blob(1);
    t.argmax = decode_i32(p1, n1);
    auto [p2, n2] = blob(2);
    t.logprob = decode_f32(p2, n2);
    auto [p3, n3] = blob(3);
    t.rank = decode_i32(p3, n3);
    auto [p4, n4] = blob(4);
    t.entropy = decode_f32(p4, n4);
    if (!st.is_null(first + 5)) {
        auto [p, n] = blob(5);
        t.logprob_sampling = decode_f32(p, n);
    }
    auto [p6, n6] = blob(6);
    t.reference = decode_i32(p6, n6);
    if (!st.is_null(first + 7)) {
        auto [p, n] = blob(7);
        t.generated = decode_i32(p, n);
    }
    return t;
}

constexpr const char* kTokenColumns =
    "\"match\", \"argmax\", \"logprob\", \"rank\", \"entropy\", \"logprob_sampling\", \"reference\", \"generated\"";

}  // namespace

void ResultReader::Impl::require_run(int64_t run_id) const {
    Statement st(*db, "SELECT 1 FROM runs WHERE run_id = ?");
    st.bind_int(1, run_id);
    if (st.step()) return;
    std::string ids;
    Statement all(*db, "SELECT run_id FROM runs ORDER BY run_id");
    while (all.step()) ids += (ids.empty() ? "" : ", ") + std::to_string(all.column_int(0));
    throw InvalidInput(fmt::format("{}: no run with id {}", db->path(), run_id),
                       ids.empty() ? std::string("the store holds no runs")
                                   : fmt::format("the store holds runs {}", ids));
}

ResultReader::ResultReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ResultReader::ResultReader(ResultReader&&) noexcept = default;
ResultReader& ResultReader::operator=(ResultReader&&) noexcept = default;
ResultReader::~ResultReader() = default;

ResultReader ResultReader::open(const std::string& db_path, bool memory_map) {
    auto impl = std::make_unique<Impl>();
    impl->db = open_store_for_read(db_path);
    // Loading a whole run reads every page of two tables once; a larger page
    // cache helps index look-ups (load_samples, load_tokens).
    // Memory-mapped reads skip a pread copy per page (~15% of a full load).
    impl->db->exec(memory_map ? "PRAGMA cache_size = -65536; PRAGMA mmap_size = 2147418112"
                              : "PRAGMA cache_size = -65536; PRAGMA mmap_size = 0");
    return ResultReader(std::move(impl));
}

std::optional<SampleRecord> ResultReader::load_sample_texts(int64_t run_id, const std::string& sample_id) const {
    Statement st(*impl_->db,
                 "SELECT prompt_tokens, reference_tokens, truncated, prompt_text, reference_text, generated_text, "
                 "sample_index FROM samples WHERE run_id = ? AND sample_id = ?");
    st.bind_int(1, run_id);
    st.bind_text(2, sample_id);
    if (!st.step()) return std::nullopt;
    SampleRecord r;
    r.sample_id = sample_id;
    r.prompt_tokens = st.column_int(0);
    r.reference_tokens = st.column_int(1);
    r.truncated = st.column_int(2) != 0;
    if (!st.is_null(3)) r.prompt_text = st.column_text(3);
    if (!st.is_null(4)) r.reference_text = st.column_text(4);
    if (!st.is_null(5)) r.generated_text = st.column_text(5);
    r.sample_index = st.column_int(6);
    return r;
}

void ResultReader::for_each_prompt(
    int64_t run_id, const std::function<void(const std::string& sample_id, const std::string& prompt)>& fn) const {
    impl_->require_run(run_id);
    Statement st(*impl_->db, "SELECT sample_id, prompt_text FROM samples WHERE run_id = ?");
    st.bind_int(1, run_id);
    while (st.step()) {
        if (st.is_null(1)) continue;
        fn(st.column_text(0), st.column_text(1));
    }
}

const std::string& ResultReader::path() const { return impl_->db->path(); }

std::vector<RunInfo> ResultReader::runs() const { return load_runs(*impl_->db); }

RunInfo ResultReader::run(int64_t run_id) const {
    impl_->require_run(run_id);
    Statement st(*impl_->db, run_select(*impl_->db) + " WHERE run_id = ?");
    st.bind_int(1, run_id);
    st.step();
    return read_run(st);
}

RunInfo ResultReader::only_run() const {
    auto all = runs();
    if (all.empty())
        throw InvalidInput(fmt::format("{}: the results store holds no runs", path()),
                           "was the probe interrupted before it started? run `memskew probe --out` again");
    if (all.size() > 1) {
        std::string ids;
        for (const auto& r : all) ids += fmt::format("{}{} ({})", ids.empty() ? "" : ", ", r.run_id,
                                                     describe_checkpoint(r.spec));
        throw InvalidInput(fmt::format("{}: the results store holds {} runs: {}", path(), all.size(), ids),
                           "pick one with --run ID");
    }
    return all.front();
}

RunColumns ResultReader::load_columns(int64_t run_id) const {
    impl_->require_run(run_id);
    const Db& db = *impl_->db;
    RunColumns c;
    c.run_id = run_id;
    const auto& cols = metric_columns();
    c.metric_names = metric_column_names();
    c.metric_values.resize(cols.size());

    int64_t n = 0;
    {
        Statement count(db, "SELECT count(*) FROM samples WHERE run_id = ?");
        count.bind_int(1, run_id);
        count.step();
        n = count.column_int(0);
    }
    auto reserve = [&](auto& v) { v.reserve(static_cast<std::size_t>(n)); };
    reserve(c.sample_id), reserve(c.sample_index), reserve(c.prompt_tokens), reserve(c.reference_tokens);
    reserve(c.truncated), reserve(c.n_pre), reserve(c.length);
    for (auto& v : c.metric_values) reserve(v);

    // Two table scans in storage order (the unary + keeps SQLite off the
    // (run_id, sample_id) index, whose order would cost a random lookup per
    // row), zipped by position: a sample's metrics row is written right after
    // its sample row, so both tables list a run's samples in the same order.
    // Only when that does not hold (a hand-edited file) are metrics placed by id.
    Statement samples(db,
                      "SELECT sample_id, sample_index, prompt_tokens, reference_tokens, truncated FROM samples "
                      "WHERE +run_id = ?");
    samples.bind_int(1, run_id);
    while (samples.step()) {
        c.sample_id.push_back(samples.column_text(0));
        c.sample_index.push_back(samples.column_int(1));
        c.prompt_tokens.push_back(samples.column_int(2));
        c.reference_tokens.push_back(samples.column_int(3));
        c.truncated.push_back(samples.column_int(4) != 0);
    }
    constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    for (auto& v : c.metric_values) v.assign(c.size(), kNaN);
    std::string select = "SELECT sample_id";
    for (const auto& col : cols) select += std::string(", ") + col.name;
    select += " FROM metrics WHERE +run_id = ?";
    Statement metrics(db, select);
    metrics.bind_int(1, run_id);
    std::unordered_map<std::string, std::size_t> position;  // built only if the orders differ
    std::size_t row = 0;
    while (metrics.step()) {
        std::size_t at = row;
        const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(metrics.handle(), 0));
        const auto id_len = static_cast<std::size_t>(sqlite3_column_bytes(metrics.handle(), 0));
        if (row >= c.size() || c.sample_id[row].compare(0, std::string::npos, id, id_len) != 0) {
            if (position.empty())
                for (std::size_t i = 0; i < c.size(); ++i) position.emplace(c.sample_id[i], i);
            const auto it = position.find(std::string(id, id_len));
            ++row;
            if (it == position.end()) continue;  // metrics without a sample row: ignored
            at = it->second;
        } else {
            ++row;
        }
        for (std::size_t k = 0; k < cols.size(); ++k) {
            const int pos = 1 + static_cast<int>(k);
            if (!metrics.is_null(pos)) c.metric_values[k][at] = metrics.column_double(pos);
        }
    }
    const auto& n_pre = c.metric("n_pre");
    const auto& length = c.metric("length");
    for (std::size_t i = 0; i < c.size(); ++i) {
        c.n_pre.push_back(std::isnan(n_pre[i]) ? -1 : static_cast<int64_t>(n_pre[i]));
        c.length.push_back(std::isnan(length[i]) ? -1 : static_cast<int64_t>(length[i]));
    }

    // Storage order is insertion order; sort in memory (cheaper than SQL's
    // ORDER BY over a million joined rows).
    std::vector<std::size_t> order(c.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    auto less = [&](std::size_t a, std::size_t b) {
        return c.sample_index[a] != c.sample_index[b] ? c.sample_index[a] < c.sample_index[b]
                                                       : c.sample_id[a] < c.sample_id[b];
    };
    if (!std::is_sorted(order.begin(), order.end(), less)) {
        std::sort(order.begin(), order.end(), less);
        auto permute = [&](auto& v) {
            std::remove_reference_t<decltype(v)> out;
            out.reserve(v.size());
            for (std::size_t i : order) out.push_back(std::move(v[i]));
            v = std::move(out);
        };
        permute(c.sample_id), permute(c.sample_index), permute(c.prompt_tokens), permute(c.reference_tokens);
        permute(c.truncated), permute(c.n_pre), permute(c.length);
        for (auto& v : c.metric_values) permute(v);
    }
    return c;
}

std::vector<SampleRecord> ResultReader::load_samples(int64_t run_id) const {
    impl_->require_run(run_id);
    const Db& db = *impl_->db;
    Statement st(db,
                 "SELECT s.sample_id, s.sample_index, s.prompt_tokens, s.reference_tokens, s.truncated, "
                 "s.prompt_text, s.reference_text, s.generated_text, (t.run_id IS NOT NULL), " +
                     metric_select_list("m") + ", " +
                     std::string("t.\"match\", t.\"argmax\", t.\"logprob\", t.\"rank\", t.\"entropy\", "
                                 "t.\"logprob_sampling\", t.\"reference\", t.\"generated\"") +
                     " FROM samples s"
                     " LEFT JOIN metrics m ON m.run_id = s.run_id AND m.sample_id = s.sample_id"
                     " LEFT JOIN token_arrays t ON t.run_id = s.run_id AND t.sample_id = s.sample_id"
                     " WHERE s.run_id = ? ORDER BY s.sample_index, s.sample_id");
    st.bind_int(1, run_id);
    const int metrics_first = 9;
    const int tokens_first = metrics_first + static_cast<int>(metric_columns().size()) + 1;
    std::vector<SampleRecord> out;
    while (st.step()) {
        SampleRecord r;
        r.sample_id = st.column_text(0);
        r.sample_index = st.column_int(1);
        r.prompt_tokens = st.column_int(2);
        r.reference_tokens = st.column_int(3);
        r.truncated = st.column_int(4) != 0;
        if (!st.is_null(5)) r.prompt_text = st.column_text(5);
        if (!st.is_null(6)) r.reference_text = st.column_text(6);
        if (!st.is_null(7)) r.generated_text = st.column_text(7);
        r.metrics = with_context(fmt::format("{}: sample '{}'", path(), r.sample_id),
                                 [&] { return read_metrics(st, metrics_first); });
        if (st.column_int(8))
            r.tokens = with_context(fmt::format("{}: sample '{}'", path(), r.sample_id),
                                    [&] { return read_tokens(st, tokens_first); });
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<StoredTokens> ResultReader::load_tokens(int64_t run_id, const std::string& sample_id) const {
    Statement st(*impl_->db,
                 std::string("SELECT ") + kTokenColumns + " FROM token_arrays WHERE run_id = ? AND sample_id = ?");
    st.bind_int(1, run_id);
    st.bind_text(2, sample_id);
    if (!st.step()) return std::nullopt;
    return with_context(fmt::format("{}: sample '{}'", path(), sample_id), [&] { return read_tokens(st, 0); });
}

void ResultReader::for_each_tokens(
    int64_t run_id, const std::function<void(const std::string&, const StoredTokens&)>& fn) const {
    impl_->require_run(run_id);
    Statement st(*impl_->db,
                 std::string("SELECT sample_id, ") + kTokenColumns + " FROM token_arrays WHERE +run_id = ?");
    st.bind_int(1, run_id);
    while (st.step()) {
        const std::string id = st.column_text(0);
        const StoredTokens t =
            with_context(fmt::format("{}: sample '{}'", path(), id), [&] { return read_tokens(st, 1); });
        fn(id, t);
    }
}

void ResultReader::check_integrity() const {
    Statement st(*impl_->db, "PRAGMA integrity_check(10)");
    std::vector<std::string> problems;
    while (st.step()) {
        const std::string line = st.column_text(0);
        if (line != "ok") problems.push_back(line);
    }
    if (problems.empty()) return;
    std::string list;
    for (const auto& p : problems) list += (list.empty() ? "" : "; ") + p;
    throw FormatError(fmt::format("{}: the results store is corrupted (integrity check: {})", path(), list),
                      kCorruptHint);
}

}  // namespace memskew
