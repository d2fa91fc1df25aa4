// Results store: round trip, blobs, batching, resume, foreign/corrupt files,
// empty stores, merge and export.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "memskew/error.h"
#include "memskew/store.h"
#include "store/store-impl.h"
#include "test-store-util.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;
using memskew::test::make_record;
using memskew::test::make_spec;
using memskew::test::count_rows;

namespace {

std::string tmp_db(const std::string& name = "run.db") { return memskew::test::temp_dir() + "/" + name; }

void write_run(const std::string& path, const RunSpec& spec, const std::vector<int>& indexes, int L = 64,
               bool finish = true, int64_t batch = 256) {
    WriterParams p;
    p.batch_size = batch;
    auto opened = open_run(path, spec, ResumeMode::kFresh, p);
    for (int i : indexes) opened.writer.add(make_record(i, L));
    if (finish) opened.writer.finish();
}

std::vector<int> range(int a, int b) {
    std::vector<int> v;
    for (int i = a; i < b; ++i) v.push_back(i);
    return v;
}

template <typename Fn>
std::string error_text(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.message() + " | hint: " + e.hint();
    }
    return "(no error)";
}

}  // namespace

// ---------------------------------------------------------------------------
// Blobs
// ---------------------------------------------------------------------------

TEST(StoreBlob, LittleEndianLayout) {
    EXPECT_EQ(encode_i32({1, -2}), std::string("\x01\x00\x00\x00\xfe\xff\xff\xff", 8));
    EXPECT_EQ(encode_f32({1.0f}), std::string("\x00\x00\x80\x3f", 4));
    EXPECT_EQ(encode_u8({0, 1, 255}), std::string("\x00\x01\xff", 3));
    EXPECT_EQ(encode_i32({}), "");
}

TEST(StoreBlob, RoundTrip) {
    const std::vector<int32_t> ints = {0, 1, -1, INT32_MAX, INT32_MIN, 123456};
    const std::string bi = encode_i32(ints);
    EXPECT_EQ(decode_i32(bi.data(), bi.size()), ints);
    const std::vector<float> floats = {0.0f, -0.0f, 1.5f, -std::numeric_limits<float>::infinity(), 1e-40f,
                                       std::numeric_limits<float>::max()};
    const std::string bf = encode_f32(floats);
    const auto back = decode_f32(bf.data(), bf.size());
    ASSERT_EQ(back.size(), floats.size());
    EXPECT_EQ(std::memcmp(back.data(), floats.data(), bf.size()), 0);
    const std::vector<uint8_t> bytes = {0, 1, 1, 0};
    const std::string bu = encode_u8(bytes);
    EXPECT_EQ(decode_u8(bu.data(), bu.size()), bytes);
    EXPECT_TRUE(decode_i32(nullptr, 0).empty());
}

TEST(StoreBlob, BadLengthIsFormatError) {
    const char bytes[6] = {};
    EXPECT_THROW(decode_i32(bytes, 6), FormatError);
    EXPECT_THROW(decode_f32(bytes, 3), FormatError);
}

// The bytes ranks send to the writer (record-codec.cpp): every field back,
// floats bit for bit (the records hold -inf, NaN-free extras and odd shapes),
// and malformed bytes refused.
TEST(StoreRecordCodec, RecordsRoundTripExactly) {
    std::vector<SampleRecord> records;
    for (int i = 0; i < 12; ++i) records.push_back(make_record(i, i % 4 == 0 ? 0 : 17 + i));
    records[3].tokens.reset();
    records[5].prompt_text.reset();
    SampleVectors v;
    v.prompt_embedding = {0.5f, -0.25f, 1e-30f};
    v.full_embedding = {std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f};
    v.minhash = {0, UINT64_MAX, 42};
    v.prompt_hash = UINT64_MAX - 7;
    v.reference_hash = 1;
    records[7].vectors = v;
    records[8].vectors = SampleVectors{};
    const auto back = decode_sample_records(encode_sample_records(records));
    ASSERT_EQ(back.size(), records.size());
    for (size_t i = 0; i < records.size(); ++i) {
        EXPECT_TRUE(back[i] == records[i]) << "record " << i;
        EXPECT_EQ(back[i].vectors.has_value(), records[i].vectors.has_value()) << "record " << i;
    }
    const SampleVectors& b = *back[7].vectors;
    ASSERT_EQ(b.full_embedding.size(), 3u);
    EXPECT_EQ(std::memcmp(b.prompt_embedding.data(), v.prompt_embedding.data(), 12), 0);
    EXPECT_EQ(std::memcmp(b.full_embedding.data(), v.full_embedding.data(), 12), 0);
    EXPECT_EQ(b.minhash, v.minhash);
    EXPECT_EQ(b.prompt_hash, v.prompt_hash);
    EXPECT_EQ(b.reference_hash, v.reference_hash);
    EXPECT_TRUE(back[8].vectors->minhash.empty());
    EXPECT_TRUE(decode_sample_records(encode_sample_records({})).empty());
}

TEST(StoreRecordCodec, MalformedBytesAreFormatErrors) {
    EXPECT_THROW(decode_sample_records(""), FormatError);
    EXPECT_THROW(decode_sample_records("not cbor at all"), FormatError);
    const std::string good = encode_sample_records({make_record(1)});
    EXPECT_THROW(decode_sample_records(good.substr(0, good.size() / 2)), FormatError);
    // Valid CBOR that is not a list of records.
    const auto obj = nlohmann::json::to_cbor(nlohmann::json{{"id", "x"}});
    EXPECT_THROW(decode_sample_records(std::string(obj.begin(), obj.end())), FormatError);
    const auto rec = nlohmann::json::to_cbor(nlohmann::json::array({nlohmann::json{{"id", 5}}}));
    EXPECT_THROW(decode_sample_records(std::string(rec.begin(), rec.end())), FormatError);
}

// ---------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------

TEST(StoreRoundTrip, EverythingWrittenReadsBack) {
    const std::string path = tmp_db();
    const RunSpec spec = make_spec();
    std::vector<SampleRecord> written;
    for (int i = 0; i < 23; ++i) written.push_back(make_record(i));
    written.push_back(make_record(23, 0));  // empty reference
    SampleRecord no_tokens = make_record(24);
    no_tokens.tokens.reset();
    no_tokens.prompt_text.reset();
    written.push_back(no_tokens);
    SampleRecord empty_gen = make_record(25);
    empty_gen.tokens->generated = std::vector<int32_t>{};  // generated nothing: not NULL
    written.push_back(empty_gen);
    {
        WriterParams p;
        p.batch_size = 7;
        auto opened = open_run(path, spec, ResumeMode::kFresh, p);
        EXPECT_FALSE(opened.resumed);
        EXPECT_TRUE(opened.done_sample_ids.empty());
        // Out of index order on purpose: readers return index order.
        for (auto it = written.rbegin(); it != written.rend(); ++it) opened.writer.add(*it);
        opened.writer.finish();
    }
    const auto reader = ResultReader::open(path);
    const auto runs = reader.runs();
    ASSERT_EQ(runs.size(), 1u);
    const RunInfo& run = runs[0];
    EXPECT_EQ(run.run_key, run_key(spec));
    EXPECT_EQ(run.spec.model_path, spec.model_path);
    EXPECT_EQ(run.spec.model_fingerprint, spec.model_fingerprint);
    EXPECT_EQ(run.spec.adapter_path, spec.adapter_path);
    EXPECT_EQ(run.spec.adapter_fingerprint, spec.adapter_fingerprint);
    EXPECT_EQ(run.spec.checkpoint_step, spec.checkpoint_step);
    EXPECT_EQ(run.spec.checkpoint_epoch, spec.checkpoint_epoch);
    EXPECT_EQ(run.spec.train_loss, spec.train_loss);
    EXPECT_EQ(run.spec.train_loss_last_step, spec.train_loss_last_step);
    EXPECT_EQ(run.spec.dataset_path, spec.dataset_path);
    EXPECT_EQ(run.spec.dataset_hash, spec.dataset_hash);
    EXPECT_EQ(run.spec.options, spec.options);
    EXPECT_EQ(run.spec.n_samples_planned, spec.n_samples_planned);
    EXPECT_EQ(run.memskew_version, MEMSKEW_VERSION);
    EXPECT_EQ(run.status, RunStatus::kDone);
    EXPECT_TRUE(run.finished_at.has_value());
    EXPECT_EQ(run.n_samples, static_cast<int64_t>(written.size()));
    EXPECT_EQ(reader.only_run().run_id, run.run_id);

    const auto back = reader.load_samples(run.run_id);
    ASSERT_EQ(back.size(), written.size());
    for (std::size_t i = 0; i < back.size(); ++i) EXPECT_TRUE(back[i] == written[i]) << "sample " << i;

    const auto t3 = reader.load_tokens(run.run_id, "s00003");
    ASSERT_TRUE(t3.has_value());
    EXPECT_TRUE(*t3 == *written[3].tokens);
    EXPECT_FALSE(reader.load_tokens(run.run_id, "s00024").has_value());  // stored without arrays
    EXPECT_FALSE(reader.load_tokens(run.run_id, "nope").has_value());

    std::size_t n_streamed = 0;
    reader.for_each_tokens(run.run_id, [&](const std::string& id, const StoredTokens& t) {
        const int i = std::stoi(id.substr(1));
        EXPECT_TRUE(t == *written[static_cast<std::size_t>(i)].tokens) << id;
        ++n_streamed;
    });
    EXPECT_EQ(n_streamed, written.size() - 1);

    const RunColumns cols = reader.load_columns(run.run_id);
    ASSERT_EQ(cols.size(), written.size());
    EXPECT_EQ(cols.metric_names, metric_column_names());
    for (std::size_t i = 0; i < cols.size(); ++i) {
        const auto& w = written[i];
        EXPECT_EQ(cols.sample_id[i], w.sample_id);
        EXPECT_EQ(cols.sample_index[i], w.sample_index);
        EXPECT_EQ(cols.prompt_tokens[i], w.prompt_tokens);
        EXPECT_EQ(cols.reference_tokens[i], w.reference_tokens);
        EXPECT_EQ(cols.truncated[i] != 0, w.truncated);
        EXPECT_EQ(cols.n_pre[i], *w.metrics.n_pre);
        EXPECT_EQ(cols.length[i], *w.metrics.length);
        const auto& frac = cols.metric("n_pre_frac");
        EXPECT_DOUBLE_EQ(frac[i], *w.metrics.n_pre_frac);
        const double lpz = cols.metric("log_p_z")[i];
        EXPECT_EQ(lpz, *w.metrics.log_p_z);  // -inf survives
        EXPECT_EQ(std::isnan(cols.metric("rouge1")[i]), !w.metrics.rouge1.has_value());
        EXPECT_EQ(std::isnan(cols.metric("k_extractable")[i]), !w.metrics.k_extractable.has_value());
    }
    EXPECT_THROW(cols.metric("no_such_metric"), InvalidInput);
}

TEST(StoreRoundTrip, ToMetricsRowMapsSampleMetrics) {
    SampleMetrics m;
    m.prefix = {3, 10, false, 0.3};
    m.log_p_z = -std::numeric_limits<double>::infinity();
    m.min_k_plus_plus = std::nan("");
    m.nll_mean = 2.0;
    GenerationMetrics g;
    g.rouge_l.f1 = 0.7;
    g.levenshtein_chars = 4;
    m.generation = g;
    const std::vector<double> surv(12, -1.0);
    const MetricsRow r = to_metrics_row(m, &surv);
    EXPECT_EQ(r.n_pre, 3);
    EXPECT_EQ(r.length, 10);
    EXPECT_EQ(r.exact, false);
    EXPECT_EQ(r.log_p_z, -std::numeric_limits<double>::infinity());
    EXPECT_FALSE(r.min_k_plus_plus.has_value());  // NaN -> NULL
    EXPECT_EQ(r.loss, 2.0);
    EXPECT_EQ(r.rouge_l, 0.7);
    EXPECT_EQ(r.lev_chars, 4);
    EXPECT_FALSE(r.lev_sim_chars.has_value());
    EXPECT_FALSE(r.k_extractable.has_value());
    EXPECT_EQ(r.log_p_ge_5, -1.0);
    EXPECT_EQ(r.log_p_ge_10, -1.0);
    EXPECT_FALSE(r.log_p_ge_20.has_value());  // L = 12 < 20
    EXPECT_FALSE(to_metrics_row(SampleMetrics{}).rouge1.has_value());
}

TEST(StoreRoundTrip, RejectsBadRecords) {
    const std::string path = tmp_db();
    auto opened = open_run(path, make_spec(), ResumeMode::kFresh);
    SampleRecord r = make_record(1);
    r.tokens->rank.pop_back();
    EXPECT_THAT(error_text([&] { opened.writer.add(r); }), ::testing::HasSubstr("'rank' has 63 entries"));
    opened.writer.add(make_record(2));
    EXPECT_THAT(error_text([&] { opened.writer.add(make_record(2)); }),
                ::testing::HasSubstr("sample id 's00002' is already in run"));
    opened.writer.flush();
    EXPECT_THAT(error_text([&] { opened.writer.add(make_record(2)); }),
                ::testing::HasSubstr("sample id 's00002' is already in run"));
    SampleRecord empty = make_record(3);
    empty.sample_id.clear();
    EXPECT_THROW(opened.writer.add(empty), InvalidInput);
}

// ---------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------

TEST(StoreBatching, CommitsEveryBatchSize) {
    const std::string path = tmp_db();
    WriterParams p;
    p.batch_size = 4;
    auto opened = open_run(path, make_spec(), ResumeMode::kFresh, p);
    auto& w = opened.writer;
    const auto visible = [&] { return count_rows(path, "SELECT count(*) FROM samples"); };
    for (int i = 0; i < 3; ++i) w.add(make_record(i));
    EXPECT_EQ(w.n_buffered(), 3);
    EXPECT_EQ(w.n_committed(), 0);
    EXPECT_EQ(visible(), 0);  // nothing committed before the batch is full
    w.add(make_record(3));
    EXPECT_EQ(w.n_buffered(), 0);
    EXPECT_EQ(w.n_committed(), 4);
    EXPECT_EQ(visible(), 4);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM metrics"), 4);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM token_arrays"), 4);
    for (int i = 4; i < 10; ++i) w.add(make_record(i));
    EXPECT_EQ(visible(), 8);
    EXPECT_EQ(w.n_buffered(), 2);
    w.flush();
    EXPECT_EQ(visible(), 10);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
    w.add(make_record(10));
    w.finish();
    EXPECT_EQ(visible(), 11);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs WHERE status = 'done' AND finished_at IS NOT NULL"), 1);
    EXPECT_THROW(w.add(make_record(11)), InvalidInput);
}

TEST(StoreBatching, DestructorCommitsTheLastPartialBatch) {
    const std::string path = tmp_db();
    {
        auto opened = open_run(path, make_spec(), ResumeMode::kFresh);
        for (int i = 0; i < 5; ++i) opened.writer.add(make_record(i));
    }
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM samples"), 5);
    // Not finished: the run stays resumable.
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs WHERE status = 'running' AND finished_at IS NULL"), 1);
}

TEST(StoreBatching, PragmasAndIdentity) {
    const std::string path = tmp_db();
    write_run(path, make_spec(), {0});
    EXPECT_EQ(count_rows(path, "PRAGMA application_id"), kStoreApplicationId);
    EXPECT_EQ(count_rows(path, "PRAGMA user_version"), kStoreSchemaVersion);
    EXPECT_EQ(count_rows(path, "SELECT value FROM meta WHERE key = 'schema_version'"), kStoreSchemaVersion);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

// ---------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------

TEST(StoreResume, SkipsDoneSamplesAndContinues) {
    const std::string path = tmp_db();
    const RunSpec spec = make_spec();
    write_run(path, spec, range(0, 10), 64, /*finish=*/false);
    int64_t run_id = 0;
    {
        // The recorded (not keyed) training losses are taken from the resume.
        RunSpec again = spec;
        again.train_loss = 0.7;
        again.train_loss_last_step = 0.6;
        auto opened = open_run(path, again, ResumeMode::kResume);
        EXPECT_TRUE(opened.resumed);
        EXPECT_EQ(opened.run.n_samples, 10);
        EXPECT_EQ(opened.done_sample_ids.size(), 10u);
        EXPECT_TRUE(opened.done_sample_ids.count("s00009"));
        run_id = opened.run.run_id;
        for (int i = 0; i < 20; ++i) {
            const auto r = make_record(i);
            if (!opened.done_sample_ids.count(r.sample_id)) opened.writer.add(r);
        }
        opened.writer.finish();
    }
    const auto reader = ResultReader::open(path);
    ASSERT_EQ(reader.runs().size(), 1u);
    EXPECT_EQ(reader.only_run().run_id, run_id);
    EXPECT_EQ(reader.only_run().n_samples, 20);
    EXPECT_EQ(reader.only_run().status, RunStatus::kDone);
    EXPECT_EQ(reader.only_run().spec.train_loss, 0.7);
    EXPECT_EQ(reader.only_run().spec.train_loss_last_step, 0.6);
    EXPECT_EQ(reader.only_run().spec.n_samples_planned, spec.n_samples_planned);
    // Resuming a finished run re-opens it (status running) with nothing to do.
    auto again = open_run(path, spec, ResumeMode::kResume);
    EXPECT_EQ(again.done_sample_ids.size(), 20u);
    EXPECT_EQ(again.run.status, RunStatus::kRunning);
}

TEST(StoreResume, ShardFieldAndPathsAreNotPartOfTheKey) {
    RunSpec a = make_spec(), b = make_spec();
    a.options["shard"] = "0/2";
    b.options["shard"] = "1/2";
    b.model_path = "/elsewhere/tiny.gguf";
    b.dataset_path = "/elsewhere/train.jsonl";
    b.n_samples_planned = 7;
    b.train_loss = 0.1;
    EXPECT_EQ(run_key(a), run_key(b));
    b.options["temperature"] = 0.7;
    EXPECT_NE(run_key(a), run_key(b));
    RunSpec c = make_spec();
    c.checkpoint_step = 200;
    EXPECT_NE(run_key(make_spec()), run_key(c));
}

TEST(StoreResume, MismatchedSpecNamesTheDifferingFields) {
    const std::string path = tmp_db();
    write_run(path, make_spec(), range(0, 3), 64, /*finish=*/false);
    RunSpec other = make_spec();
    other.dataset_hash = "ffff0000";
    other.options["temperature"] = 0.7;
    const std::string msg = error_text([&] { open_run(path, other, ResumeMode::kResume); });
    EXPECT_THAT(msg, ::testing::HasSubstr("cannot resume run 1"));
    EXPECT_THAT(msg, ::testing::HasSubstr("dataset_hash ('d41d8cd9' vs 'ffff0000')"));
    EXPECT_THAT(msg, ::testing::HasSubstr("options_json.temperature (1.0 vs 0.7)"));
    EXPECT_THAT(msg, ::testing::Not(::testing::HasSubstr("model_fingerprint")));
    EXPECT_THROW(open_run(path, other, ResumeMode::kResume), InvalidInput);

    RunSpec model = make_spec();
    model.model_fingerprint = "size=1,mtime=2";
    EXPECT_THAT(error_text([&] { open_run(path, model, ResumeMode::kResume); }),
                ::testing::HasSubstr("model_fingerprint ('size=1234,mtime=5678' vs 'size=1,mtime=2')"));
    // Nothing was added by the refused opens.
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs"), 1);
}

TEST(StoreResume, AnotherCheckpointIsANewRun) {
    const std::string path = tmp_db();
    write_run(path, make_spec(100), range(0, 3));
    RunSpec next = make_spec(200);
    next.adapter_fingerprint = "def456";
    next.train_loss = 0.5;
    auto opened = open_run(path, next, ResumeMode::kResume);
    EXPECT_FALSE(opened.resumed);
    EXPECT_TRUE(opened.done_sample_ids.empty());
    EXPECT_EQ(opened.run.run_id, 2);
    opened.writer.add(make_record(0));
    opened.writer.finish();
    const auto reader = ResultReader::open(path);
    const auto runs = reader.runs();
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0].n_samples, 3);
    EXPECT_EQ(runs[1].n_samples, 1);
    EXPECT_EQ(runs[1].spec.checkpoint_step, 200);
    EXPECT_THAT(error_text([&] { reader.only_run(); }), ::testing::HasSubstr("holds 2 runs"));
}

// Adapters without a step (no trainer_state.json) are told apart by their
// paths: another adapter is another run, and the same adapter under other
// options is still refused.
TEST(StoreResume, StepLessAdaptersAreToldApartByPath) {
    const std::string path = tmp_db();
    RunSpec a = make_spec(std::nullopt);
    a.checkpoint_epoch.reset();
    write_run(path, a, range(0, 3));
    RunSpec b = a;
    b.adapter_path = "/ckpt/other-adapter";
    b.adapter_fingerprint = "fedcba";
    auto opened = open_run(path, b, ResumeMode::kResume);
    EXPECT_FALSE(opened.resumed);
    EXPECT_EQ(opened.run.run_id, 2);
    opened.writer.finish();
    RunSpec a_other_options = a;
    a_other_options.options["temperature"] = 0.5;
    EXPECT_THAT(error_text([&] { open_run(path, a_other_options, ResumeMode::kResume); }),
                ::testing::HasSubstr("cannot resume run 1"));
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs"), 2);
}

TEST(StoreResume, FreshOpenOfNonEmptyRunIsRefused) {
    const std::string path = tmp_db();
    write_run(path, make_spec(), range(0, 3));
    const std::string msg = error_text([&] { open_run(path, make_spec(), ResumeMode::kFresh); });
    EXPECT_THAT(msg, ::testing::HasSubstr("already holds 3 samples"));
    EXPECT_THAT(msg, ::testing::HasSubstr("--resume"));
    EXPECT_THAT(msg, ::testing::HasSubstr("another --out"));
    EXPECT_THROW(open_run(path, make_spec(), ResumeMode::kFresh), InvalidInput);
}

TEST(StoreResume, FreshOpenOfEmptyRunReusesIt) {
    const std::string path = tmp_db();
    { auto opened = open_run(path, make_spec(), ResumeMode::kFresh); }
    auto opened = open_run(path, make_spec(), ResumeMode::kFresh);
    EXPECT_EQ(opened.run.run_id, 1);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs"), 1);
}

// ---------------------------------------------------------------------------
// Foreign, corrupted and empty files
// ---------------------------------------------------------------------------

TEST(StoreFiles, MissingFileAndFolder) {
    const std::string dir = memskew::test::temp_dir();
    EXPECT_THAT(error_text([&] { ResultReader::open(dir + "/nope.db"); }), ::testing::HasSubstr("no such file"));
    EXPECT_THROW(ResultReader::open(dir + "/nope.db"), IoError);
    EXPECT_FALSE(fs::exists(dir + "/nope.db"));
    EXPECT_THROW(open_run(dir + "/no/such/folder/run.db", make_spec(), ResumeMode::kFresh), IoError);
    EXPECT_THROW(ResultReader::open(dir), IoError);
}

TEST(StoreFiles, ForeignSqliteFileIsRejected) {
    const std::string path = tmp_db("other.sqlite");
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE recipes(name TEXT, minutes INT); INSERT INTO recipes VALUES('x', 3);",
                               nullptr, nullptr, nullptr),
                  SQLITE_OK);
        sqlite3_close(db);
    }
    const auto before = memskew::test::read_file(path);
    const std::string msg = error_text([&] { ResultReader::open(path); });
    EXPECT_THAT(msg, ::testing::HasSubstr(path + ": not a memskew results store"));
    EXPECT_THAT(msg, ::testing::HasSubstr("tables recipes"));
    EXPECT_THROW(ResultReader::open(path), FormatError);
    EXPECT_THROW(open_run(path, make_spec(), ResumeMode::kResume), FormatError);
    EXPECT_THROW(merge_stores({path}, tmp_db("merged.db")), FormatError);
    EXPECT_EQ(memskew::test::read_file(path), before);  // left untouched

    // Another application's id.
    const std::string other = tmp_db("app.sqlite");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA application_id = 42; CREATE TABLE t(x);", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    EXPECT_THAT(error_text([&] { ResultReader::open(other); }),
                ::testing::HasSubstr("not a memskew results store (SQLite application_id 0x2a"));
}

TEST(StoreFiles, RandomBytesAreRejected) {
    const std::string path = tmp_db("random.db");
    {
        std::mt19937 rng(7);
        std::ofstream f(path, std::ios::binary);
        for (int i = 0; i < 8192; ++i) f.put(static_cast<char>(rng()));
    }
    const std::string msg = error_text([&] { ResultReader::open(path); });
    EXPECT_THAT(msg, ::testing::HasSubstr(path + ": not a memskew results store"));
    EXPECT_THROW(ResultReader::open(path), FormatError);
    EXPECT_THROW(open_run(path, make_spec(), ResumeMode::kResume), FormatError);
    // A short text file as well.
    const std::string text = tmp_db("notes.txt");
    std::ofstream(text) << "hello\n";
    EXPECT_THROW(ResultReader::open(text), FormatError);
}

TEST(StoreFiles, EmptyFileIsNotAStoreForReadersButCanBeWritten) {
    const std::string path = tmp_db("empty.db");
    std::ofstream(path).close();
    EXPECT_THAT(error_text([&] { ResultReader::open(path); }),
                ::testing::HasSubstr("not a memskew results store (an empty SQLite database)"));
    // A writer treats a zero-length file (e.g. from mktemp) as a new store.
    write_run(path, make_spec(), {0});
    EXPECT_EQ(ResultReader::open(path).only_run().n_samples, 1);
}

TEST(StoreFiles, OverwrittenBytesInARealStoreAreFormatErrors) {
    const std::string path = tmp_db();
    write_run(path, make_spec(), range(0, 1500));
    ASSERT_FALSE(fs::exists(path + "-wal"));  // checkpointed on close: everything is in the main file
    const auto size = fs::file_size(path);
    ASSERT_GT(size, 1000000u);
    {
        // Random bytes over four whole pages in the middle of the file.
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        std::mt19937 rng(11);
        f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
        for (int i = 0; i < 4 * 4096; ++i) f.put(static_cast<char>(rng()));
    }
    const std::string msg = error_text([&] { ResultReader::open(path).check_integrity(); });
    EXPECT_THAT(msg, ::testing::HasSubstr(path + ": the results store is corrupted"));
    EXPECT_THAT(msg, ::testing::HasSubstr("integrity_check"));  // the hint
    // Reading everything hits the damaged pages too.
    bool noticed = false;
    try {
        const auto reader = ResultReader::open(path);
        for (const auto& run : reader.runs()) {
            reader.load_columns(run.run_id);
            reader.load_samples(run.run_id);
            reader.for_each_tokens(run.run_id, [](const std::string&, const StoredTokens&) {});
        }
    } catch (const FormatError& e) {
        noticed = true;
        EXPECT_THAT(e.what(), ::testing::HasSubstr(path));
        EXPECT_THAT(e.what(), ::testing::HasSubstr("corrupted"));
    }
    EXPECT_TRUE(noticed) << "reading a store with damaged pages did not fail";
    // A damaged header (the first page) makes it unrecognisable.
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(0);
        f << "garbage garbage garbage";
    }
    EXPECT_THAT(error_text([&] { ResultReader::open(path); }),
                ::testing::HasSubstr("not a memskew results store (not an SQLite database, or its header is damaged)"));
}

TEST(StoreFiles, EmptyStoreReaders) {
    // A store without runs: created, then nothing probed into it.
    const std::string path = tmp_db();
    store_detail::open_store_for_write(path, 1000);
    const auto reader = ResultReader::open(path);
    EXPECT_TRUE(reader.runs().empty());
    EXPECT_THAT(error_text([&] { reader.only_run(); }), ::testing::HasSubstr("holds no runs"));
    EXPECT_THAT(error_text([&] { reader.load_columns(1); }),
                ::testing::HasSubstr("no run with id 1 | hint: the store holds no runs"));
    EXPECT_THROW(reader.load_samples(1), InvalidInput);
    EXPECT_THROW(reader.for_each_tokens(1, [](const std::string&, const StoredTokens&) {}), InvalidInput);
    EXPECT_FALSE(reader.load_tokens(1, "x").has_value());
    reader.check_integrity();
    std::ostringstream csv, jsonl;
    EXPECT_EQ(export_run(reader, {std::nullopt, ExportFormat::kCsv}, csv), 0);
    EXPECT_EQ(csv.str().find('\n'), csv.str().size() - 1);  // header only
    EXPECT_EQ(export_run(reader, {std::nullopt, ExportFormat::kJsonl}, jsonl), 0);
    EXPECT_EQ(jsonl.str(), "");
    EXPECT_THROW(export_run(reader, {int64_t{1}, ExportFormat::kCsv}, csv), InvalidInput);
}

// A version-2 store (before the epoch's mean training loss) kept each run's
// last logged step loss in runs.train_loss and had no train_loss_last_step.
// It still opens: read-only as it is, writable upgraded in place (the value
// moves to train_loss_last_step, train_loss becomes NULL), and then takes new
// runs with both.
TEST(StoreFiles, VersionTwoStoreOpensWithItsLastStepLoss) {
    const std::string path = tmp_db("v2.db");
    RunSpec old_spec = make_spec(100);
    old_spec.train_loss = 2.25;  // what a version-2 probe stored: the last step's loss
    old_spec.train_loss_last_step.reset();
    write_run(path, old_spec, {0, 1});
    test::downgrade_to_schema_2(path);
    {
        // A file memskew cannot write: read as it is, nothing changed.
        store_detail::Db db(path, store_detail::Db::Mode::kReadOnly);
        store_detail::init_or_check_schema(db, /*create=*/false, /*writable=*/false);
        const auto runs = store_detail::load_runs(db);
        ASSERT_EQ(runs.size(), 1u);
        EXPECT_FALSE(runs[0].spec.train_loss.has_value());
        EXPECT_EQ(runs[0].spec.train_loss_last_step, 2.25);
        EXPECT_EQ(runs[0].n_samples, 2);
    }
    EXPECT_EQ(count_rows(path, "PRAGMA user_version"), 2);
    {
        const auto reader = ResultReader::open(path);
        const RunInfo run = reader.only_run();
        EXPECT_FALSE(run.spec.train_loss.has_value());
        EXPECT_EQ(run.spec.train_loss_last_step, 2.25);
        EXPECT_EQ(run.spec.checkpoint_step, 100);
        EXPECT_EQ(reader.load_samples(run.run_id).size(), 2u);
        EXPECT_EQ(run.run_key, run_key(old_spec));  // the losses are not part of the key
    }
    EXPECT_EQ(count_rows(path, "PRAGMA user_version"), kStoreSchemaVersion);
    EXPECT_EQ(count_rows(path, "SELECT value FROM meta WHERE key = 'schema_version'"), kStoreSchemaVersion);
    EXPECT_EQ(count_rows(path, "SELECT count(*) FROM runs WHERE train_loss IS NULL AND train_loss_last_step = 2.25"), 1);
    write_run(path, make_spec(200), {0});
    const auto runs = ResultReader::open(path).runs();
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[1].spec.train_loss, 0.75);
    EXPECT_EQ(runs[1].spec.train_loss_last_step, 0.5);
}

TEST(StoreFiles, NewerSchemaIsRefused) {
    const std::string path = tmp_db();
    write_run(path, make_spec(), {0});
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    EXPECT_THAT(error_text([&] { ResultReader::open(path); }),
                ::testing::HasSubstr("schema version 99 is newer than this memskew"));
}

// ---------------------------------------------------------------------------
// Merge
// ---------------------------------------------------------------------------

namespace {

std::vector<int> every(int n, int start, int step) {
    std::vector<int> v;
    for (int i = start; i < n; i += step) v.push_back(i);
    return v;
}

RunSpec shard_spec(int shard, int n_shards, int64_t planned) {
    RunSpec s = make_spec();
    s.options["shard"] = fmt::format("{}/{}", shard, n_shards);
    s.n_samples_planned = planned;
    return s;
}

}  // namespace

TEST(StoreMerge, ShardsEqualTheSingleStore) {
    const int n = 41;
    const std::string single = tmp_db("single.db"), a = tmp_db("a.db"), b = tmp_db("b.db"), out = tmp_db("m.db");
    RunSpec spec = make_spec();
    spec.n_samples_planned = n;
    write_run(single, spec, range(0, n));
    write_run(a, shard_spec(0, 2, 21), every(n, 0, 2), 64, true, 5);
    write_run(b, shard_spec(1, 2, 20), every(n, 1, 2), 64, true, 5);
    const MergeReport rep = merge_stores({b, a}, out);
    EXPECT_EQ(rep.n_runs, 1);
    EXPECT_EQ(rep.n_samples, n);

    const auto rs = ResultReader::open(single), rm = ResultReader::open(out);
    const RunInfo s = rs.only_run(), m = rm.only_run();
    EXPECT_EQ(m.run_key, s.run_key);
    EXPECT_EQ(m.spec.options, s.spec.options);  // "shard" dropped
    EXPECT_EQ(m.spec.model_fingerprint, s.spec.model_fingerprint);
    EXPECT_EQ(m.spec.dataset_hash, s.spec.dataset_hash);
    EXPECT_EQ(m.spec.checkpoint_step, s.spec.checkpoint_step);
    EXPECT_EQ(m.spec.n_samples_planned, n);
    EXPECT_EQ(m.status, RunStatus::kDone);
    EXPECT_EQ(m.n_samples, n);
    const auto ss = rs.load_samples(s.run_id), ms = rm.load_samples(m.run_id);
    ASSERT_EQ(ms.size(), ss.size());
    for (std::size_t i = 0; i < ss.size(); ++i) EXPECT_TRUE(ms[i] == ss[i]) << ss[i].sample_id;
    std::ostringstream e1, e2;
    export_run(rs, {}, e1);
    export_run(rm, {}, e2);
    EXPECT_EQ(e1.str(), e2.str());
}

TEST(StoreMerge, DuplicateSampleIdNamesItAndBothFiles) {
    const std::string a = tmp_db("a.db"), c = tmp_db("c.db"), out = tmp_db("m.db");
    write_run(a, shard_spec(0, 2, 3), {0, 2, 4});
    write_run(c, shard_spec(1, 2, 3), {1, 4, 5});
    const std::string msg = error_text([&] { merge_stores({a, c}, out); });
    EXPECT_THAT(msg, ::testing::HasSubstr("duplicate sample id 's00004'"));
    EXPECT_THAT(msg, ::testing::HasSubstr(a));
    EXPECT_THAT(msg, ::testing::HasSubstr(c));
    EXPECT_THROW(merge_stores({a, c}, out), InvalidInput);
    EXPECT_FALSE(fs::exists(out));  // all or nothing
}

TEST(StoreMerge, DistinctRunsAreCopiedSeparately) {
    const std::string a = tmp_db("a.db"), b = tmp_db("b.db"), d = tmp_db("d.db"), out = tmp_db("m.db");
    write_run(a, shard_spec(0, 2, 2), {0, 2});
    write_run(b, shard_spec(1, 2, 2), {1, 3});
    RunSpec later = make_spec(200);
    later.adapter_fingerprint = "ckpt200";
    write_run(d, later, {0, 1, 2, 3, 4});
    const auto rep = merge_stores({a, d, b}, out);
    EXPECT_EQ(rep.n_runs, 2);
    EXPECT_EQ(rep.n_samples, 9);
    const auto runs = ResultReader::open(out).runs();
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0].n_samples, 4);
    EXPECT_EQ(runs[0].spec.checkpoint_step, 100);
    EXPECT_EQ(runs[1].n_samples, 5);
    EXPECT_EQ(runs[1].spec.checkpoint_step, 200);
    // Merging into an existing output adds to it.
    const std::string e = tmp_db("e.db");
    RunSpec third = make_spec(300);
    write_run(e, third, {7});
    merge_stores({e}, out);
    EXPECT_EQ(ResultReader::open(out).runs().size(), 3u);
}

TEST(StoreMerge, SameCheckpointDifferentSpecIsRefused) {
    const std::string a = tmp_db("a.db"), b = tmp_db("b.db"), out = tmp_db("m.db");
    write_run(a, shard_spec(0, 2, 2), {0, 2});
    RunSpec other = shard_spec(1, 2, 2);
    other.options["top_k"] = 40;
    write_run(b, other, {1, 3});
    const std::string msg = error_text([&] { merge_stores({a, b}, out); });
    EXPECT_THAT(msg, ::testing::HasSubstr("options_json.top_k (0 vs 40)"));
    EXPECT_THAT(msg, ::testing::Not(::testing::HasSubstr("options_json.shard")));
    EXPECT_FALSE(fs::exists(out));
    EXPECT_THROW(merge_stores({a, a}, out), InvalidInput);
    EXPECT_THROW(merge_stores({a}, a), InvalidInput);
}

// ---------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------

namespace {

std::string write_export_store() {
    const std::string path = tmp_db("export.db");
    RunSpec spec = make_spec(100);
    auto opened = open_run(path, spec, ResumeMode::kFresh);
    SampleRecord a;
    a.sample_id = "q,1 \"x\"";
    a.sample_index = 0;
    a.prompt_tokens = 12;
    a.reference_tokens = 4;
    a.metrics.n_pre = 2;
    a.metrics.length = 4;
    a.metrics.exact = false;
    a.metrics.n_pre_frac = 0.5;
    a.metrics.log_p_z = -std::numeric_limits<double>::infinity();
    a.metrics.loss = 1.25;
    a.metrics.perplexity = 3.0;
    a.metrics.extra = {{"note", "a,b"}};
    SampleRecord b;
    b.sample_id = "q2";
    b.sample_index = 1;
    b.prompt_tokens = 8;
    b.reference_tokens = 3;
    b.truncated = true;
    b.metrics.n_pre = 3;
    b.metrics.length = 3;
    b.metrics.exact = true;
    b.metrics.n_pre_frac = 1.0;
    b.metrics.loss = 0.1;
    b.metrics.n_pre_generated = 3;
    b.metrics.gen_exact = true;
    b.metrics.rouge1 = 1.0;
    b.metrics.k_extractable = false;
    opened.writer.add(b);  // index order is restored by the export
    opened.writer.add(a);
    opened.writer.finish();
    return path;
}

}  // namespace

TEST(StoreExport, CsvExactText) {
    const auto reader = ResultReader::open(write_export_store());
    std::ostringstream out;
    EXPECT_EQ(export_run(reader, {std::nullopt, ExportFormat::kCsv}, out), 2);
    const std::string expected =
        "run_id,checkpoint_step,checkpoint_epoch,sample_id,sample_index,prompt_tokens,reference_tokens,"
        "n_pre,length,exact,n_pre_frac,log_p_full_t1,expected_n_pre_t1,log_p_z,expected_n_pre,log_p_extract_n,"
        "log_tries,log_p_ge_5,log_p_ge_10,log_p_ge_20,log_p_ge_50,loss,perplexity,min_k_prob,min_k_plus_plus,"
        "zlib_ratio,mean_entropy,n_pre_generated,gen_exact,rouge1,rouge2,rouge_l,lev_tokens,lev_sim_tokens,"
        "lev_chars,lev_sim_chars,pythia_score,k_extractable,gen_lcs,gen_approx,gen_mean_logprob,guard_n_pre,guard_exact,guard_rouge_l,guard_lev_sim_tokens,guard_lcs,guard_approx,guard_blocked,guard_mean_logprob,extra_json,knn_sim_prompt,knn_sim_full,"
        "knn_sim_delta,"
        "cluster,cluster_size,prompt_copies,reference_copies\n"
        "1,100,1,\"q,1 \"\"x\"\"\",0,12,4,2,4,0,0.5,,,-inf,,,,,,,,1.25,3.0,,,,,,,,,,,,,,,,,,,,,,,,,,,"
        "\"{\"\"note\"\":\"\"a,b\"\"}\",,,,,,,\n"
        "1,100,1,q2,1,8,3,3,3,1,1.0,,,,,,,,,,,0.1,,,,,,3,1,1.0,,,,,,,,0,,,,,,,,,,,,,,,,,,,\n";
    EXPECT_EQ(out.str(), expected);
}

TEST(StoreExport, JsonlExactText) {
    const auto reader = ResultReader::open(write_export_store());
    std::ostringstream out;
    EXPECT_EQ(export_run(reader, {int64_t{1}, ExportFormat::kJsonl}, out), 2);
    const std::string expected =
        R"({"run_id":1,"checkpoint_step":100,"checkpoint_epoch":1,"sample_id":"q,1 \"x\"","sample_index":0,)"
        R"("prompt_tokens":12,"reference_tokens":4,"n_pre":2,"length":4,"exact":0,"n_pre_frac":0.5,)"
        R"("log_p_full_t1":null,"expected_n_pre_t1":null,"log_p_z":null,"expected_n_pre":null,)"
        R"("log_p_extract_n":null,"log_tries":null,"log_p_ge_5":null,"log_p_ge_10":null,"log_p_ge_20":null,)"
        R"("log_p_ge_50":null,"loss":1.25,"perplexity":3.0,"min_k_prob":null,"min_k_plus_plus":null,)"
        R"("zlib_ratio":null,"mean_entropy":null,"n_pre_generated":null,"gen_exact":null,"rouge1":null,)"
        R"("rouge2":null,"rouge_l":null,"lev_tokens":null,"lev_sim_tokens":null,"lev_chars":null,)"
        R"("lev_sim_chars":null,"pythia_score":null,"k_extractable":null,)"
        R"("gen_lcs":null,"gen_approx":null,"gen_mean_logprob":null,"guard_n_pre":null,"guard_exact":null,"guard_rouge_l":null,"guard_lev_sim_tokens":null,"guard_lcs":null,"guard_approx":null,"guard_blocked":null,"guard_mean_logprob":null,"extra_json":{"note":"a,b"},)"
        R"("knn_sim_prompt":null,"knn_sim_full":null,"knn_sim_delta":null,"cluster":null,"cluster_size":null,)"
        R"("prompt_copies":null,"reference_copies":null})"
        "\n"
        R"({"run_id":1,"checkpoint_step":100,"checkpoint_epoch":1,"sample_id":"q2","sample_index":1,)"
        R"("prompt_tokens":8,"reference_tokens":3,"n_pre":3,"length":3,"exact":1,"n_pre_frac":1.0,)"
        R"("log_p_full_t1":null,"expected_n_pre_t1":null,"log_p_z":null,"expected_n_pre":null,)"
        R"("log_p_extract_n":null,"log_tries":null,"log_p_ge_5":null,"log_p_ge_10":null,"log_p_ge_20":null,)"
        R"("log_p_ge_50":null,"loss":0.1,"perplexity":null,"min_k_prob":null,"min_k_plus_plus":null,)"
        R"("zlib_ratio":null,"mean_entropy":null,"n_pre_generated":3,"gen_exact":1,"rouge1":1.0,)"
        R"("rouge2":null,"rouge_l":null,"lev_tokens":null,"lev_sim_tokens":null,"lev_chars":null,)"
        R"("lev_sim_chars":null,"pythia_score":null,"k_extractable":0,)"
        R"("gen_lcs":null,"gen_approx":null,"gen_mean_logprob":null,"guard_n_pre":null,"guard_exact":null,"guard_rouge_l":null,"guard_lev_sim_tokens":null,"guard_lcs":null,"guard_approx":null,"guard_blocked":null,"guard_mean_logprob":null,"extra_json":null,)"
        R"("knn_sim_prompt":null,"knn_sim_full":null,"knn_sim_delta":null,"cluster":null,"cluster_size":null,)"
        R"("prompt_copies":null,"reference_copies":null})"
        "\n";
    EXPECT_EQ(out.str(), expected);
    EXPECT_EQ(parse_export_format("jsonl"), ExportFormat::kJsonl);
    EXPECT_THROW(parse_export_format("xlsx"), InvalidInput);
}
