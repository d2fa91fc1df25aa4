// The similarity tables of the results store: vectors written with their
// sample, float16 round trips, dimension checks, saving the figures (and
// dropping the vectors), the version-1 upgrade, merge and the NumPy export.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"
#include "test-store-util.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;
using memskew::test::make_record;
using memskew::test::make_spec;
using memskew::test::count_rows;

namespace {

std::string tmp_db(const std::string& name) { return memskew::test::temp_dir() + "/" + name; }

// Values that float16 holds exactly (small powers of two and their sums), so
// the stored vectors must come back bit for bit.
SampleVectors vectors_of(int i, int dim = 4) {
    SampleVectors v;
    for (int j = 0; j < dim; ++j) {
        v.prompt_embedding.push_back(static_cast<float>((i + j) % 4) * 0.25f - 0.5f);
        v.full_embedding.push_back(static_cast<float>((i * j) % 3) * 0.125f + 0.0625f);
    }
    v.minhash = {static_cast<uint64_t>(i), 7, 0xFFFFFFFFFFFFFFFFull, static_cast<uint64_t>(i) << 40};
    v.prompt_hash = 0x8000000000000001ull + static_cast<uint64_t>(i);  // above INT64_MAX: stored bit for bit
    v.reference_hash = static_cast<uint64_t>(i % 2);
    return v;
}

void write_with_vectors(const std::string& path, const RunSpec& spec, const std::vector<int>& indexes, int dim = 4) {
    auto opened = open_run(path, spec, ResumeMode::kFresh);
    for (int i : indexes) {
        SampleRecord r = make_record(i, 8);
        r.vectors = vectors_of(i, dim);
        opened.writer.add(std::move(r));
    }
    opened.writer.finish();
}

void exec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(db);
}

RunSimilarity figures_for(int64_t run_id, int64_t n, bool keep) {
    RunSimilarity r;
    r.run_id = run_id;
    r.n_samples = n;
    r.embed_dim = 4;
    r.s_input = 0.25;
    r.s_full = 0.5;
    r.delta_s = 0.25;
    r.k = 2;
    r.knn_method = "exact";
    r.near_duplicate_params = {{"threshold", 0.7}};
    r.n_clusters = 1;
    r.n_clustered_samples = 2;
    r.largest_cluster = 2;
    r.vectors_kept = keep;
    return r;
}

SampleSimilarity sample_figures(int i) {
    SampleSimilarity s;
    s.sample_id = make_record(i, 8).sample_id;
    s.sample_index = i;
    s.knn_sim_prompt = 0.5;
    s.knn_sim_full = 0.75;
    s.knn_sim_delta = 0.25;
    s.neighbours_prompt = {(i + 1) % 3, (i + 2) % 3};
    s.similarity_prompt = {0.75f, 0.25f};
    s.neighbours_full = {(i + 2) % 3, (i + 1) % 3};
    s.similarity_full = {1.0f, 0.5f};
    s.cluster = i < 2 ? 0 : i;
    s.cluster_size = i < 2 ? 2 : 1;
    s.prompt_copies = 1;
    s.reference_copies = i < 2 ? 2 : 1;
    return s;
}

}  // namespace

TEST(StoreSimilarity, VectorsRoundTripInFloat16) {
    const std::string path = tmp_db("vec.db");
    write_with_vectors(path, make_spec(), {2, 0, 1});
    const auto reader = ResultReader::open(path);
    const int64_t run = reader.only_run().run_id;
    EXPECT_EQ(count_vectors(reader, run), 3);
    const RunVectors v = load_vectors(reader, run);
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v.dim, 4);
    // sample_index order, whatever the order written.
    EXPECT_THAT(v.sample_index, ::testing::ElementsAre(0, 1, 2));
    for (int i = 0; i < 3; ++i) {
        const SampleVectors want = vectors_of(i);
        for (int j = 0; j < 4; ++j) {
            EXPECT_EQ(v.prompt[static_cast<std::size_t>(i * 4 + j)], want.prompt_embedding[static_cast<std::size_t>(j)]);
            EXPECT_EQ(v.full[static_cast<std::size_t>(i * 4 + j)], want.full_embedding[static_cast<std::size_t>(j)]);
        }
        EXPECT_EQ(v.minhash[static_cast<std::size_t>(i)], want.minhash);
        EXPECT_EQ(v.prompt_hash[static_cast<std::size_t>(i)], want.prompt_hash);
        EXPECT_EQ(v.reference_hash[static_cast<std::size_t>(i)], want.reference_hash);
    }
    // 2 bytes per value: 4 values -> 8-byte blobs.
    EXPECT_EQ(count_rows(path, "SELECT max(length(prompt_embedding)) FROM sample_vectors"), 8);
}

TEST(StoreSimilarity, Float16RoundsToNearest) {
    // 1 + 2^-11 lies halfway between 1 and the next float16 (1 + 2^-10): ties
    // go to even (1); 1 + 3 * 2^-12 rounds up. 70000 overflows to infinity.
    const std::string path = tmp_db("round.db");
    auto opened = open_run(path, make_spec(), ResumeMode::kFresh);
    SampleRecord r = make_record(0, 8);
    r.vectors = vectors_of(0, 3);
    r.vectors->prompt_embedding = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 4096, 70000.0f};
    opened.writer.add(std::move(r));
    opened.writer.finish();
    const RunVectors v = load_vectors(ResultReader::open(path), opened.run.run_id);
    EXPECT_EQ(v.prompt[0], 1.0f);
    EXPECT_EQ(v.prompt[1], 1.0f + 1.0f / 1024);
    EXPECT_TRUE(std::isinf(v.prompt[2]));
}

TEST(StoreSimilarity, MixedDimensionsAreRefused) {
    const std::string path = tmp_db("mixed.db");
    write_with_vectors(path, make_spec(), {0, 1}, 4);
    // Another dimension in the same run, also after a resume.
    auto opened = open_run(path, make_spec(), ResumeMode::kResume);
    SampleRecord r = make_record(5, 8);
    r.vectors = vectors_of(5, 6);
    test::expect_error<InvalidInput>([&] { opened.writer.add(r); }, {"dimension 6", "holds dimension 4"},
                                     "another --out");
    // Prompt and full embeddings of different lengths.
    r.vectors = vectors_of(5, 4);
    r.vectors->full_embedding.pop_back();
    test::expect_error<InvalidInput>([&] { opened.writer.add(r); }, {"prompt embedding has 4 values"});
    // Nothing of the refused samples reached the store.
    opened.writer.flush();
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM samples"), 2);
}

TEST(StoreSimilarity, SaveDropsVectorsUnlessKept) {
    std::string kept_path;
    for (const bool keep : {false, true}) {
        const std::string path = tmp_db(keep ? "keep.db" : "drop.db");
        if (keep) kept_path = path;
        write_with_vectors(path, make_spec(), {0, 1, 2});
        const int64_t run = ResultReader::open(path).only_run().run_id;
        save_similarity(path, figures_for(run, 3, keep), {sample_figures(0), sample_figures(1), sample_figures(2)});
        const auto reader = ResultReader::open(path);
        EXPECT_EQ(count_vectors(reader, run), keep ? 3 : 0);
        const auto r = load_run_similarity(reader, run);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->s_full, 0.5);
        EXPECT_EQ(r->knn_method, "exact");
        EXPECT_TRUE(std::isnan(r->knn_recall));
        EXPECT_EQ(r->near_duplicate_params["threshold"], 0.7);
        EXPECT_EQ(r->vectors_kept, keep);
        EXPECT_FALSE(r->computed_at.empty());
        const auto s = load_sample_similarity(reader, run);
        ASSERT_EQ(s.size(), 3u);
        EXPECT_EQ(s[1].neighbours_full, (std::vector<int32_t>{0, 2}));
        EXPECT_EQ(s[1].similarity_prompt, (std::vector<float>{0.75f, 0.25f}));
        EXPECT_EQ(s[0].cluster_size, 2);
        EXPECT_EQ(s[2].reference_copies, 1);
    }
    // Saving again replaces the figures (no duplicate rows).
    const std::string path = kept_path;
    const int64_t run = ResultReader::open(path).only_run().run_id;
    save_similarity(path, figures_for(run, 3, true), {sample_figures(0)});
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM sample_similarity"), 1);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM run_similarity"), 1);
}

TEST(StoreSimilarity, SaveRefusesUnknownRunsAndSamples) {
    const std::string path = tmp_db("unknown.db");
    write_with_vectors(path, make_spec(), {0, 1});
    test::expect_error<InvalidInput>([&] { save_similarity(path, figures_for(99, 2, false), {}); }, {"no run with id 99"});
    SampleSimilarity stranger = sample_figures(0);
    stranger.sample_id = "nobody";
    const int64_t run = ResultReader::open(path).only_run().run_id;
    test::expect_error<InvalidInput>([&] { save_similarity(path, figures_for(run, 2, false), {stranger}); },
                                     {"holds no sample 'nobody'"});
    // All or nothing: the vectors are still there.
    EXPECT_EQ(count_vectors(ResultReader::open(path), run), 2);
}

TEST(StoreSimilarity, VersionOneStoreIsUpgradedInPlace) {
    const std::string path = tmp_db("v1.db");
    write_with_vectors(path, make_spec(), {0, 1});
    // Make it a version-1 store: no similarity tables, none of the metric
    // columns version 2 added, nor runs.train_loss_last_step (version 3; its
    // train_loss was the last step's loss), user_version 1.
    exec(path, "DROP TABLE sample_vectors; DROP TABLE sample_similarity; DROP TABLE run_similarity; "
               "ALTER TABLE metrics DROP COLUMN gen_lcs; ALTER TABLE metrics DROP COLUMN guard_mean_logprob; "
               "ALTER TABLE runs DROP COLUMN train_loss_last_step; "
               "PRAGMA user_version = 1; UPDATE meta SET value = '1' WHERE key = 'schema_version';");
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM pragma_table_info('metrics') WHERE name = 'gen_lcs'"), 0);
    {
        // Opening it (writable) upgrades it in place; what it held is unchanged.
        const auto reader = ResultReader::open(path);
        const int64_t run = reader.only_run().run_id;
        EXPECT_EQ(count_vectors(reader, run), 0);  // the table was dropped above
        EXPECT_FALSE(load_run_similarity(reader, run));
        EXPECT_TRUE(load_sample_similarity(reader, run).empty());
        const auto samples = reader.load_samples(run);
        ASSERT_EQ(samples.size(), 2u);
        EXPECT_EQ(samples[1].metrics, make_record(1, 8).metrics);
        std::ostringstream csv;
        EXPECT_EQ(export_run(reader, {}, csv), 2);
        // The similarity columns are there, empty.
        EXPECT_THAT(csv.str(), ::testing::HasSubstr(",prompt_copies,reference_copies\n"));
    }
    EXPECT_EQ(count_rows(path, "PRAGMA user_version"), kStoreSchemaVersion);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM pragma_table_info('metrics') WHERE name = 'gen_lcs'"), 1);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM metrics WHERE gen_lcs IS NULL"), 2);
    // Its training loss (make_spec's 0.75) is the last step's now.
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs WHERE train_loss IS NULL AND train_loss_last_step = 0.75"), 1);
    // A writer adds to it as to any store.
    write_with_vectors(path, make_spec(200), {0, 1});
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM sample_vectors"), 2);  // the new run's
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM samples"), 4);
}

TEST(StoreSimilarity, NewStoresUseIncrementalVacuum) {
    const std::string path = tmp_db("vacuum.db");
    write_with_vectors(path, make_spec(), {0});
    EXPECT_EQ(count_rows(path, "PRAGMA auto_vacuum"), 2);  // INCREMENTAL
}

TEST(StoreSimilarity, KeepEmbeddingsIsNotPartOfTheRunKey) {
    RunSpec a = make_spec(), b = make_spec();
    a.options[kKeepEmbeddingsOptionKey] = true;
    b.options[kKeepEmbeddingsOptionKey] = false;
    EXPECT_EQ(run_key(a), run_key(b));
    b.options["embeddings"] = "off";
    EXPECT_NE(run_key(a), run_key(b));
}

TEST(StoreSimilarity, MergeCarriesVectorsAndRecomputesUnionedRuns) {
    // Two shards of one run: their vectors merge, no figures yet.
    RunSpec s0 = make_spec(), s1 = make_spec();
    s0.options["shard"] = "0/2";
    s1.options["shard"] = "1/2";
    s0.options[kKeepEmbeddingsOptionKey] = s1.options[kKeepEmbeddingsOptionKey] = true;
    const std::string a = tmp_db("shard0.db"), b = tmp_db("shard1.db"), out = tmp_db("merged.db");
    write_with_vectors(a, s0, {0, 2});
    write_with_vectors(b, s1, {1, 3});
    // A shard that somehow has figures (of its half): they must not survive.
    save_similarity(a, figures_for(ResultReader::open(a).only_run().run_id, 2, true), {sample_figures(0)});
    const MergeReport rep = merge_stores({a, b}, out);
    ASSERT_EQ(rep.run_ids.size(), 1u);
    EXPECT_EQ(rep.unioned_run_ids, rep.run_ids);
    const auto reader = ResultReader::open(out);
    const int64_t run = reader.only_run().run_id;
    EXPECT_EQ(count_vectors(reader, run), 4);
    EXPECT_FALSE(load_run_similarity(reader, run));
    EXPECT_TRUE(load_sample_similarity(reader, run).empty());
    // keep_embeddings stays in the merged run's options; shard goes.
    EXPECT_FALSE(reader.only_run().spec.options.contains("shard"));
    EXPECT_EQ(reader.only_run().spec.options.value(kKeepEmbeddingsOptionKey, false), true);

    // A whole run copied into a new store keeps its figures.
    const std::string c = tmp_db("whole.db"), out2 = tmp_db("copy.db");
    write_with_vectors(c, make_spec(300), {0, 1, 2});
    save_similarity(c, figures_for(ResultReader::open(c).only_run().run_id, 3, false),
                    {sample_figures(0), sample_figures(1), sample_figures(2)});
    const MergeReport rep2 = merge_stores({c}, out2);
    EXPECT_TRUE(rep2.unioned_run_ids.empty());
    const auto r2 = ResultReader::open(out2);
    const auto sim = load_run_similarity(r2, r2.only_run().run_id);
    ASSERT_TRUE(sim);
    EXPECT_EQ(sim->s_input, 0.25);
    EXPECT_EQ(load_sample_similarity(r2, r2.only_run().run_id).size(), 3u);
}

TEST(StoreSimilarity, ExportSimilarityColumns) {
    const std::string path = tmp_db("export.db");
    write_with_vectors(path, make_spec(), {0, 1, 2});
    const int64_t run = ResultReader::open(path).only_run().run_id;
    save_similarity(path, figures_for(run, 3, false), {sample_figures(0), sample_figures(1), sample_figures(2)});
    std::ostringstream csv, jsonl;
    const auto reader = ResultReader::open(path);
    export_run(reader, {}, csv);
    ExportParams jp;
    jp.format = ExportFormat::kJsonl;
    export_run(reader, jp, jsonl);
    std::istringstream lines(csv.str());
    std::string header, first;
    std::getline(lines, header);
    std::getline(lines, first);
    EXPECT_THAT(header, ::testing::EndsWith(
                            "extra_json,knn_sim_prompt,knn_sim_full,knn_sim_delta,cluster,cluster_size,prompt_copies,"
                            "reference_copies"));
    // sample 0: 0.5, 0.75, 0.25, cluster 0 of size 2, 1 prompt copy, 2 reference copies.
    EXPECT_THAT(first, ::testing::EndsWith(",0.5,0.75,0.25,0,2,1,2"));
    EXPECT_THAT(jsonl.str(), ::testing::HasSubstr(R"("knn_sim_delta":0.25,"cluster":0,"cluster_size":2)"));
}

TEST(StoreSimilarity, ExportEmbeddingsAsNumpy) {
    const std::string path = tmp_db("npy.db");
    RunSpec spec = make_spec();
    write_with_vectors(path, spec, {1, 0}, 4);
    const auto reader = ResultReader::open(path);
    const std::string prefix = memskew::test::temp_dir() + "/emb";
    EXPECT_EQ(export_embeddings(reader, reader.only_run().run_id, prefix), 2);
    const std::string npy = read_text_file(prefix + ".full.npy");
    // NumPy format 1.0 (numpy.lib.format): magic, version, little-endian header
    // length, a dict literal padded with spaces to a 64-byte boundary ending in "\n".
    ASSERT_GE(npy.size(), 10u);
    EXPECT_EQ(npy.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const std::size_t header_len = static_cast<unsigned char>(npy[8]) | (static_cast<unsigned char>(npy[9]) << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
    const std::string header = npy.substr(10, header_len);
    EXPECT_THAT(header, ::testing::HasSubstr("'descr': '<f2'"));
    EXPECT_THAT(header, ::testing::HasSubstr("'shape': (2, 4)"));
    EXPECT_EQ(header.back(), '\n');
    // Data: 2 rows x 4 float16 values. Row 0 = sample_index 0; full[0] of
    // sample 0 is 0.0625 = 0x2C00 in float16 (exponent -4: (15 - 4) << 10).
    ASSERT_EQ(npy.size(), 10 + header_len + 2 * 4 * 2);
    const auto* data = reinterpret_cast<const unsigned char*>(npy.data() + 10 + header_len);
    EXPECT_EQ(data[0] | (data[1] << 8), 0x2C00);
    EXPECT_EQ(read_text_file(prefix + ".ids.txt"), make_record(0).sample_id + "\n" + make_record(1).sample_id + "\n");
}

TEST(StoreSimilarity, ExportEmbeddingsNamesTheProbeOption) {
    const std::string path = tmp_db("noemb.db");
    write_with_vectors(path, make_spec(), {0});
    const int64_t run = ResultReader::open(path).only_run().run_id;
    save_similarity(path, figures_for(run, 1, false), {sample_figures(0)});
    test::expect_error<InvalidInput>(
        [&] { export_embeddings(ResultReader::open(path), run, memskew::test::temp_dir() + "/none"); },
        {"holds no sample embeddings"}, "--keep-embeddings");
}
