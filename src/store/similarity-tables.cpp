// The similarity tables (store-similarity.h): reading the vectors, saving and
// reading the figures, exporting kept embeddings as NumPy files.
#include "memskew/store-similarity.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "store-impl.h"
#include "util/f16.h"

namespace memskew {

using namespace store_detail;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double real_or_nan(const Statement& st, int i) { return st.is_null(i) ? kNaN : st.column_double(i); }

void bind_real(Statement& st, int i, double v) { std::isnan(v) ? st.bind_null(i) : st.bind_double(i, v); }

void bind_bytes(Statement& st, int i, const std::string& bytes) { st.bind_blob(i, bytes.data(), bytes.size()); }

std::string encode_neighbours(const std::vector<int32_t>& v) { return encode_i32(v); }

const Db& reader_db(const ResultReader& r) { return store_detail::ReaderAccess::db(r); }

void require_run(const Db& db, int64_t run_id) {
    Statement st(db, "SELECT 1 FROM runs WHERE run_id = ?");
    st.bind_int(1, run_id);
    if (!st.step())
        throw InvalidInput(fmt::format("{}: no run with id {}", db.path(), run_id), "list the runs with `memskew info`");
}

}  // namespace

int64_t count_vectors(const ResultReader& reader, int64_t run_id) {
    const Db& db = reader_db(reader);
    if (!has_table(db, "sample_vectors")) return 0;
    Statement st(db, "SELECT count(*) FROM sample_vectors WHERE run_id = ?");
    st.bind_int(1, run_id);
    st.step();
    return st.column_int(0);
}

RunVectors load_vectors(const ResultReader& reader, int64_t run_id) {
    const Db& db = reader_db(reader);
    require_run(db, run_id);
    RunVectors out;
    out.run_id = run_id;
    if (!has_table(db, "sample_vectors")) return out;
    Statement st(db,
                 "SELECT v.sample_id, s.sample_index, v.prompt_embedding, v.full_embedding, v.minhash, v.prompt_hash, "
                 "v.reference_hash FROM sample_vectors v JOIN samples s ON s.run_id = v.run_id AND s.sample_id = "
                 "v.sample_id WHERE v.run_id = ? ORDER BY s.sample_index, s.sample_id");
    st.bind_int(1, run_id);
    int64_t dim = -1;
    while (st.step()) {
        const std::string id = st.column_text(0);
        auto corrupt = [&](const std::string& what) {
            return FormatError(fmt::format("{}: run {}, sample '{}': {}", db.path(), run_id, id, what), kCorruptHint);
        };
        int64_t d = 0;
        if (st.is_null(2) != st.is_null(3)) throw corrupt("one of its two embeddings is missing");
        if (!st.is_null(2)) {
            auto [pp, np] = st.column_blob(2);
            auto [pf, nf] = st.column_blob(3);
            if (np != nf) throw corrupt(fmt::format("embeddings of {} and {} bytes", np, nf));
            std::vector<float> p, f;
            try {
                p = decode_f16(pp, np);
                f = decode_f16(pf, nf);
            } catch (const FormatError& e) {
                throw corrupt(e.what());
            }
            d = static_cast<int64_t>(p.size());
            out.prompt.insert(out.prompt.end(), p.begin(), p.end());
            out.full.insert(out.full.end(), f.begin(), f.end());
        }
        if (dim >= 0 && d != dim)
            throw FormatError(fmt::format("{}: run {} mixes embeddings of dimension {} and {} (sample '{}')",
                                          db.path(), run_id, dim, d, id),
                              "embeddings of one run must come from one model; probe the run again into a new --out");
        dim = d;
        auto [pm, nm] = st.column_blob(4);
        try {
            out.minhash.push_back(decode_u64(pm, nm));
        } catch (const FormatError& e) {
            throw corrupt(e.what());
        }
        if (!out.minhash.empty() && out.minhash.back().size() != out.minhash.front().size())
            throw corrupt("MinHash signatures of different lengths in one run");
        out.sample_id.push_back(id);
        out.sample_index.push_back(st.column_int(1));
        out.prompt_hash.push_back(static_cast<uint64_t>(st.column_int(5)));
        out.reference_hash.push_back(static_cast<uint64_t>(st.column_int(6)));
    }
    out.dim = std::max<int64_t>(dim, 0);
    return out;
}

std::optional<RunSimilarity> load_run_similarity(const ResultReader& reader, int64_t run_id) {
    const Db& db = reader_db(reader);
    if (!has_table(db, "run_similarity")) return std::nullopt;
    Statement st(db,
                 "SELECT n_samples, embed_model, embed_dim, s_input, s_full, delta_s, k, knn_method, knn_recall, "
                 "knn_recall_queries, near_duplicate_params, n_clusters, n_clustered_samples, largest_cluster, "
                 "n_duplicate_prompts, n_duplicate_references, vectors_kept, computed_at, seconds "
                 "FROM run_similarity WHERE run_id = ?");
    st.bind_int(1, run_id);
    if (!st.step()) return std::nullopt;
    RunSimilarity r;
    r.run_id = run_id;
    r.n_samples = st.column_int(0);
    if (!st.is_null(1)) r.embed_model = st.column_text(1);
    r.embed_dim = st.is_null(2) ? 0 : st.column_int(2);
    r.s_input = real_or_nan(st, 3);
    r.s_full = real_or_nan(st, 4);
    r.delta_s = real_or_nan(st, 5);
    r.k = st.is_null(6) ? 0 : st.column_int(6);
    if (!st.is_null(7)) r.knn_method = st.column_text(7);
    r.knn_recall = real_or_nan(st, 8);
    r.knn_recall_queries = st.is_null(9) ? 0 : st.column_int(9);
    try {
        r.near_duplicate_params = nlohmann::json::parse(st.column_text(10));
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("{}: run {}: run_similarity.near_duplicate_params is not JSON: {}", db.path(),
                                      run_id, e.what()),
                          kCorruptHint);
    }
    r.n_clusters = st.column_int(11);
    r.n_clustered_samples = st.column_int(12);
    r.largest_cluster = st.column_int(13);
    r.n_duplicate_prompts = st.column_int(14);
    r.n_duplicate_references = st.column_int(15);
    r.vectors_kept = st.column_int(16) != 0;
    r.computed_at = st.column_text(17);
    r.seconds = st.column_double(18);
    return r;
}

std::vector<SampleSimilarity> load_sample_similarity(const ResultReader& reader, int64_t run_id) {
    const Db& db = reader_db(reader);
    std::vector<SampleSimilarity> out;
    if (!has_table(db, "sample_similarity")) return out;
    Statement st(db,
                 "SELECT m.sample_id, s.sample_index, m.knn_sim_prompt, m.knn_sim_full, m.knn_sim_delta, "
                 "m.neighbours_prompt, m.similarity_prompt, m.neighbours_full, m.similarity_full, m.cluster, "
                 "m.cluster_size, m.prompt_copies, m.reference_copies FROM sample_similarity m JOIN samples s ON "
                 "s.run_id = m.run_id AND s.sample_id = m.sample_id WHERE m.run_id = ? "
                 "ORDER BY s.sample_index, s.sample_id");
    st.bind_int(1, run_id);
    while (st.step()) {
        SampleSimilarity x;
        x.sample_id = st.column_text(0);
        x.sample_index = st.column_int(1);
        x.knn_sim_prompt = real_or_nan(st, 2);
        x.knn_sim_full = real_or_nan(st, 3);
        x.knn_sim_delta = real_or_nan(st, 4);
        try {
            auto i32 = [&](int i) {
                if (st.is_null(i)) return std::vector<int32_t>{};
                auto [p, n] = st.column_blob(i);
                return decode_i32(p, n);
            };
            auto f32 = [&](int i) {
                if (st.is_null(i)) return std::vector<float>{};
                auto [p, n] = st.column_blob(i);
                return decode_f32(p, n);
            };
            x.neighbours_prompt = i32(5);
            x.similarity_prompt = f32(6);
            x.neighbours_full = i32(7);
            x.similarity_full = f32(8);
        } catch (const FormatError& e) {
            throw FormatError(fmt::format("{}: run {}, sample '{}': {}", db.path(), run_id, x.sample_id, e.what()),
                              kCorruptHint);
        }
        x.cluster = st.column_int(9);
        x.cluster_size = st.column_int(10);
        x.prompt_copies = st.column_int(11);
        x.reference_copies = st.column_int(12);
        out.push_back(std::move(x));
    }
    return out;
}

void save_similarity(const std::string& db_path, const RunSimilarity& run,
                     const std::vector<SampleSimilarity>& samples) {
    auto db = open_store_for_write(db_path, 5000);
    {
        Transaction tx(*db);
        require_run(*db, run.run_id);
        for (const char* table : {"sample_similarity", "run_similarity"}) {
            Statement del(*db, fmt::format("DELETE FROM {} WHERE run_id = ?", table));
            del.bind_int(1, run.run_id);
            del.run();
        }
        Statement has(*db, "SELECT 1 FROM samples WHERE run_id = ? AND sample_id = ?");
        Statement ins(*db,
                      "INSERT INTO sample_similarity(run_id, sample_id, knn_sim_prompt, knn_sim_full, knn_sim_delta, "
                      "neighbours_prompt, similarity_prompt, neighbours_full, similarity_full, cluster, cluster_size, "
                      "prompt_copies, reference_copies) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        for (const auto& x : samples) {
            has.bind_int(1, run.run_id);
            has.bind_text(2, x.sample_id);
            const bool found = has.step();
            has.reset();
            if (!found)
                throw InvalidInput(fmt::format("{}: run {} holds no sample '{}'; its similarity figures are not saved",
                                               db_path, run.run_id, x.sample_id));
            ins.bind_int(1, run.run_id);
            ins.bind_text(2, x.sample_id);
            bind_real(ins, 3, x.knn_sim_prompt);
            bind_real(ins, 4, x.knn_sim_full);
            bind_real(ins, 5, x.knn_sim_delta);
            auto blob_or_null = [&](int i, const std::string& bytes, bool present) {
                present ? bind_bytes(ins, i, bytes) : ins.bind_null(i);
            };
            blob_or_null(6, encode_neighbours(x.neighbours_prompt), !x.neighbours_prompt.empty());
            blob_or_null(7, encode_f32(x.similarity_prompt), !x.similarity_prompt.empty());
            blob_or_null(8, encode_neighbours(x.neighbours_full), !x.neighbours_full.empty());
            blob_or_null(9, encode_f32(x.similarity_full), !x.similarity_full.empty());
            ins.bind_int(10, x.cluster);
            ins.bind_int(11, x.cluster_size);
            ins.bind_int(12, x.prompt_copies);
            ins.bind_int(13, x.reference_copies);
            ins.run();
        }
        Statement r(*db,
                    "INSERT INTO run_similarity(run_id, n_samples, embed_model, embed_dim, s_input, s_full, delta_s, "
                    "k, knn_method, knn_recall, knn_recall_queries, near_duplicate_params, n_clusters, "
                    "n_clustered_samples, largest_cluster, n_duplicate_prompts, n_duplicate_references, "
                    "vectors_kept, computed_at, seconds) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        r.bind_int(1, run.run_id);
        r.bind_int(2, run.n_samples);
        run.embed_model.empty() ? r.bind_null(3) : r.bind_text(3, run.embed_model);
        run.embed_dim > 0 ? r.bind_int(4, run.embed_dim) : r.bind_null(4);
        bind_real(r, 5, run.s_input);
        bind_real(r, 6, run.s_full);
        bind_real(r, 7, run.delta_s);
        run.k > 0 ? r.bind_int(8, run.k) : r.bind_null(8);
        run.knn_method.empty() ? r.bind_null(9) : r.bind_text(9, run.knn_method);
        bind_real(r, 10, run.knn_recall);
        run.knn_recall_queries > 0 ? r.bind_int(11, run.knn_recall_queries) : r.bind_null(11);
        r.bind_text(12, run.near_duplicate_params.dump());
        r.bind_int(13, run.n_clusters);
        r.bind_int(14, run.n_clustered_samples);
        r.bind_int(15, run.largest_cluster);
        r.bind_int(16, run.n_duplicate_prompts);
        r.bind_int(17, run.n_duplicate_references);
        r.bind_int(18, run.vectors_kept ? 1 : 0);
        r.bind_text(19, run.computed_at.empty() ? utc_now_iso8601() : run.computed_at);
        r.bind_double(20, run.seconds);
        r.run();
        if (!run.vectors_kept) {
            Statement del(*db, "DELETE FROM sample_vectors WHERE run_id = ?");
            del.bind_int(1, run.run_id);
            del.run();
        }
        tx.commit();
    }
    // Stores made by this version use incremental auto-vacuum: the dropped
    // vectors' pages go back to the file system (a no-op otherwise).
    if (!run.vectors_kept) db->exec("PRAGMA incremental_vacuum");
}

namespace {

// NumPy .npy version 1.0: magic, header length, a Python dict literal padded
// with spaces to a multiple of 64 bytes ending in "\n", then the raw data.
std::string npy_header(const char* descr, int64_t rows, int64_t cols) {
    std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}), }}", descr, rows, cols);
    const std::size_t prefix = 10;  // magic (6) + version (2) + header length (2)
    std::size_t total = prefix + dict.size() + 1;
    dict.append((64 - total % 64) % 64, ' ');
    dict += '\n';
    std::string out = "\x93NUMPY";
    out += static_cast<char>(1);
    out += static_cast<char>(0);
    const auto len = static_cast<uint16_t>(dict.size());
    out += static_cast<char>(len & 0xFF);
    out += static_cast<char>(len >> 8);
    return out + dict;
}

}  // namespace

int64_t export_embeddings(const ResultReader& reader, int64_t run_id, const std::string& prefix) {
    const Db& db = reader_db(reader);
    require_run(db, run_id);
    const RunVectors v = load_vectors(reader, run_id);
    if (v.size() == 0 || v.dim == 0)
        throw InvalidInput(fmt::format("{}: run {} holds no sample embeddings", db.path(), run_id),
                           "probe with --keep-embeddings to keep them in the store (they are dropped once the "
                           "similarity figures are computed otherwise)");
    const auto m = static_cast<int64_t>(v.size());
    auto write_npy = [&](const std::string& path, const std::vector<float>& values) {
        write_file_atomic(path, [&](const ByteSink& put) {
            const std::string header = npy_header("<f2", m, v.dim);
            put(header.data(), header.size());
            std::vector<float> row;
            const std::size_t d = static_cast<std::size_t>(v.dim);
            for (int64_t i = 0; i < m; ++i) {
                row.assign(values.begin() + static_cast<std::ptrdiff_t>(i * v.dim),
                           values.begin() + static_cast<std::ptrdiff_t>((i + 1) * v.dim));
                const std::string bytes = encode_f16(row);  // the stored float16 values, bit for bit
                put(bytes.data(), d * 2);
            }
        });
    };
    write_npy(prefix + ".prompt.npy", v.prompt);
    write_npy(prefix + ".full.npy", v.full);
    std::string ids;
    for (const auto& id : v.sample_id) ids += id + "\n";
    write_text_file_atomic(prefix + ".ids.txt", ids);
    return m;
}

}  // namespace memskew
