// Results store under a SIGKILL mid-write, and write/read throughput.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "memskew/error.h"
#include "memskew/store.h"
#include "test-store-util.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::make_record;
using memskew::test::make_spec;

namespace {

int64_t query_int(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int64_t n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

constexpr int kTotal = 3000;
constexpr int64_t kBatch = 16;

// Runs in the forked child: writes samples 0..kTotal-1, telling the parent
// through `fd` how many are committed after each batch. Never returns.
[[noreturn]] void child_writer(const std::string& path, int fd) {
    try {
        WriterParams p;
        p.batch_size = kBatch;
        auto opened = open_run(path, make_spec(), ResumeMode::kFresh, p);
        int64_t reported = 0;
        for (int i = 0; i < kTotal; ++i) {
            opened.writer.add(make_record(i));
            if (opened.writer.n_committed() != reported) {
                reported = opened.writer.n_committed();
                if (write(fd, &reported, sizeof reported) != sizeof reported) _exit(3);
            }
            // Slow enough that the kill lands mid-run (and often mid-batch).
            usleep(300);
        }
        opened.writer.finish();
    } catch (...) {
        _exit(2);
    }
    _exit(0);  // no static destructors: the parent owns the temp folder
}

}  // namespace

TEST(StoreDurability, SigkillMidWriteLosesOnlyTheUncommittedBatch) {
    const std::string dir = memskew::test::temp_dir();
    const std::string path = dir + "/killed.db";
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_writer(path, fds[1]);
    }
    close(fds[1]);
    int64_t committed = 0;
    while (committed < 5 * kBatch) {
        ASSERT_EQ(read(fds[0], &committed, sizeof committed), static_cast<ssize_t>(sizeof committed))
            << "child exited before committing 5 batches";
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child was not killed mid-run";

    // The file is consistent and every committed sample is complete.
    {
        const auto reader = ResultReader::open(path);
        reader.check_integrity();
        const RunInfo run = reader.only_run();
        EXPECT_EQ(run.status, RunStatus::kRunning);
        EXPECT_GE(run.n_samples, committed);
        EXPECT_LT(run.n_samples, kTotal);
        EXPECT_EQ(run.n_samples % kBatch, 0) << "a partial batch was committed";
        EXPECT_EQ(query_int(path, "SELECT count(*) FROM metrics"), run.n_samples);
        EXPECT_EQ(query_int(path, "SELECT count(*) FROM token_arrays"), run.n_samples);
        EXPECT_EQ(query_int(path,
                            "SELECT count(*) FROM samples s LEFT JOIN metrics m USING(run_id, sample_id) "
                            "LEFT JOIN token_arrays t USING(run_id, sample_id) "
                            "WHERE m.sample_id IS NULL OR t.sample_id IS NULL"),
                  0);
        for (const auto& r : reader.load_samples(run.run_id))
            EXPECT_TRUE(r == make_record(static_cast<int>(r.sample_index))) << r.sample_id;
        std::cout << "killed after " << committed << " reported commits; " << run.n_samples
                  << " samples in the file\n";
    }

    // Resume writes the rest; the result equals an uninterrupted run.
    {
        auto opened = open_run(path, make_spec(), ResumeMode::kResume);
        EXPECT_TRUE(opened.resumed);
        for (int i = 0; i < kTotal; ++i) {
            auto r = make_record(i);
            if (!opened.done_sample_ids.count(r.sample_id)) opened.writer.add(std::move(r));
        }
        opened.writer.finish();
    }
    const std::string clean = dir + "/clean.db";
    {
        auto opened = open_run(clean, make_spec(), ResumeMode::kFresh);
        for (int i = 0; i < kTotal; ++i) opened.writer.add(make_record(i));
        opened.writer.finish();
    }
    const auto a = ResultReader::open(path), b = ResultReader::open(clean);
    a.check_integrity();
    const auto ra = a.only_run(), rb = b.only_run();
    EXPECT_EQ(ra.run_key, rb.run_key);
    EXPECT_EQ(ra.status, RunStatus::kDone);
    EXPECT_EQ(ra.n_samples, kTotal);
    const auto sa = a.load_samples(ra.run_id), sb = b.load_samples(rb.run_id);
    ASSERT_EQ(sa.size(), sb.size());
    for (std::size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(sa[i] == sb[i]) << sb[i].sample_id;
}

// Throughput with per-token blobs of L = 64. MEMSKEW_STORE_SCALE=N writes N
// samples (e.g. 1000000 for the load-time target); default 20000. Prints the
// figures; asserts only correctness (timings on shared machines are noisy).
TEST(StorePerf, WriteAndLoadThroughput) {
    const char* env = std::getenv("MEMSKEW_STORE_SCALE");
    const int n = env ? std::atoi(env) : 20000;
    // MEMSKEW_STORE_PERF_DB=FILE keeps the store between runs (written once).
    const char* keep = std::getenv("MEMSKEW_STORE_PERF_DB");
    const std::string path = keep ? keep : memskew::test::temp_dir() + "/perf.db";
    const bool write_it = !keep || !std::filesystem::exists(path);
    // Records are built first so only the store is timed.
    std::vector<SampleRecord> records;
    const int n_distinct = std::min(n, 1000);
    for (int i = 0; i < n_distinct; ++i) records.push_back(make_record(i));
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    if (write_it) {
        auto opened = open_run(path, make_spec(), ResumeMode::kFresh);
        for (int i = 0; i < n; ++i) {
            SampleRecord r = records[static_cast<std::size_t>(i % n_distinct)];
            r.sample_id = "id" + std::to_string(i);
            r.sample_index = i;
            opened.writer.add(std::move(r));
        }
        opened.writer.finish();
    }
    const double write_s = std::chrono::duration<double>(clock::now() - t0).count();
    const auto reader = ResultReader::open(path);
    const auto t1 = clock::now();
    const RunColumns cols = reader.load_columns(reader.only_run().run_id);
    const double load_s = std::chrono::duration<double>(clock::now() - t1).count();
    const auto t2 = clock::now();
    int64_t n_tok = 0;
    reader.for_each_tokens(1, [&](const std::string&, const StoredTokens& t) { n_tok += t.match.size(); });
    const double stream_s = std::chrono::duration<double>(clock::now() - t2).count();
    ASSERT_EQ(cols.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(n_tok, int64_t{64} * n);
    std::cout << fmt::format(
        "store perf: {} samples (L=64): write {}; load_columns {:.2f} s = {:.0f} "
        "samples/s; stream tokens {:.2f} s; file {:.1f} MB\n",
        n, write_it ? fmt::format("{:.2f} s = {:.0f} samples/s", write_s, n / write_s) : std::string("skipped (kept file)"),
        load_s, n / load_s, stream_s,
        std::filesystem::file_size(path) / 1e6);
}
