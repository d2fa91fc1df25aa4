// open_run and ResultWriter: batched, transactional writes and resume.
#include <xxhash.h>

#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

using namespace store_detail;

namespace {

void validate_spec(const RunSpec& spec) {
    if (spec.model_fingerprint.empty())
        throw InvalidInput("run spec has no model fingerprint", "use a content hash or file_fingerprint(model)");
    if (spec.dataset_hash.empty()) throw InvalidInput("run spec has no dataset hash");
    if (!spec.options.is_object())
        throw InvalidInput(fmt::format("run options must be a JSON object, got {}", spec.options.type_name()));
    if (spec.adapter_path.empty() != spec.adapter_fingerprint.empty())
        throw InvalidInput("run spec: adapter_path and adapter_fingerprint must be given together");
}

void validate_record(const SampleRecord& r) {
    if (r.sample_id.empty()) throw InvalidInput(fmt::format("sample at index {} has an empty sample id", r.sample_index));
    if (!r.tokens) return;
    const auto& t = *r.tokens;
    const std::size_t n = t.reference.size();
    auto check = [&](const char* name, std::size_t size, bool optional) {
        if (size != n && !(optional && size == 0))
            throw InvalidInput(fmt::format("sample '{}': token array '{}' has {} entries, reference has {}",
                                           r.sample_id, name, size, n));
    };
    check("match", t.match.size(), false);
    check("argmax", t.argmax.size(), false);
    check("logprob", t.logprob.size(), false);
    check("rank", t.rank.size(), false);
    check("entropy", t.entropy.size(), false);
    check("logprob_sampling", t.logprob_sampling.size(), true);
}

void validate_vectors(const SampleRecord& r) {
    if (!r.vectors) return;
    const auto& v = *r.vectors;
    if (v.prompt_embedding.size() != v.full_embedding.size())
        throw InvalidInput(fmt::format("sample '{}': prompt embedding has {} values, full-sample embedding {}",
                                       r.sample_id, v.prompt_embedding.size(), v.full_embedding.size()),
                           "both embeddings come from the same model");
    if (v.minhash.empty())
        throw InvalidInput(fmt::format("sample '{}': the MinHash signature is empty", r.sample_id));
}

std::vector<std::string> load_done_ids(const Db& db, int64_t run_id) {
    Statement st(db, "SELECT sample_id FROM samples WHERE run_id = ?");
    st.bind_int(1, run_id);
    std::vector<std::string> ids;
    while (st.step()) ids.push_back(st.column_text(0));
    return ids;
}

std::string metrics_insert_sql() {
    std::string cols = "run_id, sample_id", qs = "?, ?";
    for (const auto& c : metric_columns()) {
        cols += std::string(", ") + c.name;
        qs += ", ?";
    }
    return "INSERT INTO metrics(" + cols + ", extra_json) VALUES(" + qs + ", ?)";
}

}  // namespace

struct ResultWriter::Impl {
    // Declared first so the statements below are finalized before it closes.
    std::unique_ptr<Db> db;
    int64_t run_id = 0;
    int64_t batch_size = 256;
    std::vector<SampleRecord> buffer;
    // Hashes of every id in the run (committed or buffered): a cheap duplicate
    // check for millions of ids; a hash hit is confirmed against the real ids.
    std::unordered_set<uint64_t> id_hashes;
    int64_t n_committed = 0;
    bool finished = false;
    std::unique_ptr<Statement> insert_sample, insert_metrics, insert_tokens, insert_vectors, find_sample;
    // Dimension of the run's embeddings (-1: none seen yet; 0: a run without
    // embeddings): every sample of a run must match the first.
    int64_t embed_dim = -1;
    std::size_t n_minhash = 0;

    // The dimension and signature length of what the run stored before (resume).
    void load_vector_shape() {
        Statement st(*db,
                     "SELECT length(prompt_embedding), length(minhash) FROM sample_vectors WHERE run_id = ? LIMIT 1");
        st.bind_int(1, run_id);
        if (!st.step()) return;
        embed_dim = st.is_null(0) ? 0 : st.column_int(0) / 2;
        n_minhash = static_cast<std::size_t>(st.column_int(1) / 8);
    }

    void check_vector_shape(const SampleRecord& r) {
        if (!r.vectors) return;
        const auto dim = static_cast<int64_t>(r.vectors->prompt_embedding.size());
        if (embed_dim < 0) {
            embed_dim = dim;
            n_minhash = r.vectors->minhash.size();
            return;
        }
        if (dim != embed_dim)
            throw InvalidInput(fmt::format("{}: sample '{}' has embeddings of dimension {}, but run {} holds "
                                           "dimension {}",
                                           db->path(), r.sample_id, dim, run_id, embed_dim),
                               "embeddings of one run come from one model; probe another embedding model into "
                               "another --out");
        if (r.vectors->minhash.size() != n_minhash)
            throw InvalidInput(fmt::format("{}: sample '{}' has a MinHash signature of {} values, run {} holds {}",
                                           db->path(), r.sample_id, r.vectors->minhash.size(), run_id, n_minhash));
    }

    void prepare() {
        insert_sample = std::make_unique<Statement>(
            *db,
            "INSERT INTO samples(run_id, sample_id, sample_index, prompt_tokens, reference_tokens, truncated, "
            "prompt_text, reference_text, generated_text) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
        insert_metrics = std::make_unique<Statement>(*db, metrics_insert_sql());
        insert_tokens = std::make_unique<Statement>(
            *db,
            "INSERT INTO token_arrays(run_id, sample_id, \"match\", \"argmax\", \"logprob\", \"rank\", \"entropy\", "
            "\"logprob_sampling\", \"reference\", \"generated\") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        insert_vectors = std::make_unique<Statement>(
            *db,
            "INSERT INTO sample_vectors(run_id, sample_id, prompt_embedding, full_embedding, minhash, prompt_hash, "
            "reference_hash) VALUES(?, ?, ?, ?, ?, ?, ?)");
        find_sample = std::make_unique<Statement>(*db, "SELECT 1 FROM samples WHERE run_id = ? AND sample_id = ?");
    }

    bool is_duplicate(const std::string& id) {
        const uint64_t h = XXH3_64bits(id.data(), id.size());
        if (id_hashes.insert(h).second) return false;
        for (const auto& r : buffer)
            if (r.sample_id == id) return true;
        find_sample->bind_int(1, run_id);
        find_sample->bind_text(2, id);
        const bool found = find_sample->step();
        find_sample->reset();
        return found;
    }

    void write(const SampleRecord& r) {
        auto opt_text = [](Statement& st, int i, const std::optional<std::string>& v) {
            v ? st.bind_text(i, *v) : st.bind_null(i);
        };
        Statement& s = *insert_sample;
        s.bind_int(1, run_id);
        s.bind_text(2, r.sample_id);
        s.bind_int(3, r.sample_index);
        s.bind_int(4, r.prompt_tokens);
        s.bind_int(5, r.reference_tokens);
        s.bind_int(6, r.truncated ? 1 : 0);
        opt_text(s, 7, r.prompt_text);
        opt_text(s, 8, r.reference_text);
        opt_text(s, 9, r.generated_text);
        s.run();

        Statement& m = *insert_metrics;
        m.bind_int(1, run_id);
        m.bind_text(2, r.sample_id);
        bind_metrics(m, 3, r.metrics);
        m.run();

        if (r.vectors) {
            const auto& v = *r.vectors;
            Statement& w = *insert_vectors;
            w.bind_int(1, run_id);
            w.bind_text(2, r.sample_id);
            if (v.prompt_embedding.empty()) {
                w.bind_null(3);
                w.bind_null(4);
            } else {
                const std::string p = encode_f16(v.prompt_embedding), f = encode_f16(v.full_embedding);
                w.bind_blob(3, p.data(), p.size());
                w.bind_blob(4, f.data(), f.size());
            }
            const std::string mh = encode_u64(v.minhash);
            w.bind_blob(5, mh.data(), mh.size());
            // SQLite integers are signed: the hashes are stored bit for bit.
            w.bind_int(6, static_cast<int64_t>(v.prompt_hash));
            w.bind_int(7, static_cast<int64_t>(v.reference_hash));
            w.run();
        }
        if (!r.tokens) return;
        const auto& t = *r.tokens;
        Statement& a = *insert_tokens;
        auto blob = [&](int i, const std::string& bytes) { a.bind_blob(i, bytes.data(), bytes.size()); };
        a.bind_int(1, run_id);
        a.bind_text(2, r.sample_id);
        blob(3, encode_u8(t.match));
        blob(4, encode_i32(t.argmax));
        blob(5, encode_f32(t.logprob));
        blob(6, encode_i32(t.rank));
        blob(7, encode_f32(t.entropy));
        if (t.logprob_sampling.empty())
            a.bind_null(8);
        else
            blob(8, encode_f32(t.logprob_sampling));
        blob(9, encode_i32(t.reference));
        if (t.generated)
            blob(10, encode_i32(*t.generated));
        else
            a.bind_null(10);
        a.run();
    }

    void flush() {
        if (buffer.empty()) return;
        // Statement errors already name the file.
        Transaction tx(*db);
        for (const auto& r : buffer) write(r);
        tx.commit();
        n_committed += static_cast<int64_t>(buffer.size());
        buffer.clear();
    }
};

ResultWriter::ResultWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ResultWriter::ResultWriter(ResultWriter&&) noexcept = default;
ResultWriter& ResultWriter::operator=(ResultWriter&&) noexcept = default;

ResultWriter::~ResultWriter() {
    if (!impl_) return;
    try {
        impl_->flush();
    } catch (const std::exception& e) {
        spdlog::error("{} samples not written to {}: {}", impl_->buffer.size(), impl_->db->path(), e.what());
    }
}

int64_t ResultWriter::run_id() const { return impl_->run_id; }
const std::string& ResultWriter::path() const { return impl_->db->path(); }
int64_t ResultWriter::n_committed() const { return impl_->n_committed; }
int64_t ResultWriter::n_buffered() const { return static_cast<int64_t>(impl_->buffer.size()); }

void ResultWriter::add(SampleRecord record) {
    if (impl_->finished)
        throw InvalidInput(fmt::format("{}: run {} is already finished; sample '{}' not added", path(), run_id(),
                                       record.sample_id));
    validate_record(record);
    validate_vectors(record);
    impl_->check_vector_shape(record);
    if (impl_->is_duplicate(record.sample_id))
        throw InvalidInput(fmt::format("{}: sample id '{}' is already in run {}", path(), record.sample_id, run_id()),
                           "sample ids must be unique within a dataset");
    impl_->buffer.push_back(std::move(record));
    if (static_cast<int64_t>(impl_->buffer.size()) >= impl_->batch_size) impl_->flush();
}

void ResultWriter::flush() { impl_->flush(); }

void ResultWriter::finish() {
    impl_->flush();
    Statement st(*impl_->db, "UPDATE runs SET status = 'done', finished_at = ? WHERE run_id = ?");
    st.bind_text(1, utc_now_iso8601());
    st.bind_int(2, impl_->run_id);
    st.run();
    impl_->finished = true;
}

OpenedRun open_run(const std::string& db_path, const RunSpec& spec, ResumeMode mode, const WriterParams& params) {
    validate_spec(spec);
    if (params.batch_size < 1)
        throw InvalidInput(fmt::format("writer batch size must be >= 1, got {}", params.batch_size));
    const std::string key = run_key(spec);
    auto impl = std::make_unique<ResultWriter::Impl>();
    impl->db = open_store_for_write(db_path, params.busy_timeout_ms);
    impl->batch_size = params.batch_size;
    Db& db = *impl->db;

    RunInfo run;
    bool resumed = false;
    std::vector<std::string> done;
    {
        // IMMEDIATE: the look-up and the insert/update are one atomic step
        // even with two probes opening the same file.
        Transaction tx(db);
        if (auto existing = find_run_by_key(db, key)) {
            if (mode == ResumeMode::kFresh && existing->n_samples > 0)
                throw InvalidInput(fmt::format("{}: run {} ({}) already holds {} samples of this model, dataset and "
                                               "options",
                                               db_path, existing->run_id, describe_checkpoint(existing->spec),
                                               existing->n_samples),
                                   "pass --resume to continue it, or write to another --out");
            resumed = existing->n_samples > 0;
            Statement st(db,
                         "UPDATE runs SET model_path = ?, adapter_path = ?, dataset_path = ?, options_json = ?, "
                         "train_loss = ?, train_loss_last_step = ?, n_samples_planned = ?, status = 'running', "
                         "finished_at = NULL, started_at = CASE WHEN ? THEN started_at ELSE ? END WHERE run_id = ?");
            st.bind_text(1, spec.model_path);
            spec.adapter_path.empty() ? st.bind_null(2) : st.bind_text(2, spec.adapter_path);
            st.bind_text(3, spec.dataset_path);
            st.bind_text(4, spec.options.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            spec.train_loss ? st.bind_double(5, *spec.train_loss) : st.bind_null(5);
            spec.train_loss_last_step ? st.bind_double(6, *spec.train_loss_last_step) : st.bind_null(6);
            st.bind_int(7, spec.n_samples_planned);
            st.bind_int(8, resumed ? 1 : 0);
            st.bind_text(9, utc_now_iso8601());
            st.bind_int(10, existing->run_id);
            st.run();
            if (resumed) done = load_done_ids(db, existing->run_id);
            run = *find_run_by_key(db, key);
        } else {
            if (mode == ResumeMode::kResume) {
                for (const auto& other : load_runs(db)) {
                    if (!same_checkpoint(other.spec, spec)) continue;
                    std::string fields;
                    for (const auto& d : diff_specs(other.spec, spec)) fields += (fields.empty() ? "" : "; ") + d;
                    throw InvalidInput(fmt::format("{}: cannot resume run {} ({}): it was made with a different "
                                                   "spec; differing fields (stored vs requested): {}",
                                                   db_path, other.run_id, describe_checkpoint(other.spec), fields),
                                       "resume with the original model, dataset and options, or write to "
                                       "another --out");
                }
            }
            const int64_t id = insert_run(db, key, spec, utc_now_iso8601(), std::nullopt, RunStatus::kRunning,
                                          MEMSKEW_VERSION);
            Statement st(db, run_select(db) + " WHERE run_id = ?");
            st.bind_int(1, id);
            st.step();
            run = read_run(st);
        }
        tx.commit();
    }
    impl->run_id = run.run_id;
    impl->n_committed = run.n_samples;
    impl->id_hashes.reserve(done.size());
    for (const auto& id : done) impl->id_hashes.insert(XXH3_64bits(id.data(), id.size()));
    impl->prepare();
    impl->load_vector_shape();
    return OpenedRun{std::move(run), resumed, std::unordered_set<std::string>(done.begin(), done.end()),
                     ResultWriter(std::move(impl))};
}

}  // namespace memskew
