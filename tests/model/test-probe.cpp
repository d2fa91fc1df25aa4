// memskew probe end to end on stories260K and medquad: resume after SIGKILL
// gives exactly the uninterrupted results, shards merged give the unsharded
// run, and a resume with other options is refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "memskew/error.h"
#include "memskew/pipeline.h"
#include "memskew/probe.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"
#include "test-util.h"

extern char** environ;

using namespace memskew;

namespace {

struct Shared {
    std::string model, data;
};

ProbeParams base_params(const Shared& s, const std::string& out, size_t limit) {
    ProbeParams p;
    p.model_path = s.model;
    p.data_path = s.data;
    p.data.limit = limit;
    p.max_reference_tokens = 48;
    p.out_path = out;
    p.max_batch_size = 8;
    return p;
}

pid_t spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int64_t stored_samples(const std::string& db) {
    try {
        auto r = ResultReader::open(db);
        auto runs = r.runs();
        return runs.empty() ? 0 : runs.front().n_samples;
    } catch (const Error&) {
        return 0;  // not created yet
    }
}

}  // namespace

TEST(Probe, KillAndResumeEqualsUninterrupted) {
    MEMSKEW_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    const std::string dir = test::temp_dir();
    const std::string bin = test::binary_dir() + "/memskew";
    auto probe_args = [&](const std::string& out) {
        return std::vector<std::string>{bin, "probe", "-m", model, "-d", data, "--limit", "240",
                                        "--max-reference-tokens", "48", "--batch-size", "4", "--threads", "1",
                                        "-q", "-o", out};
    };
    const std::string killed = dir + "/killed.db", whole = dir + "/whole.db";
    pid_t pid = spawn(probe_args(killed));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (stored_samples(killed) < 24 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kill(pid, SIGKILL);
    EXPECT_EQ(wait_exit(pid), -SIGKILL);
    const int64_t before = stored_samples(killed);
    ASSERT_GE(before, 24);
    ASSERT_LT(before, 240) << "the probe finished before it could be killed";
    {
        auto r = ResultReader::open(killed);
        r.check_integrity();
        EXPECT_EQ(r.only_run().status, RunStatus::kRunning);
    }
    auto resume = probe_args(killed);
    resume.push_back("--resume");
    ASSERT_EQ(wait_exit(spawn(resume)), 0);
    ASSERT_EQ(wait_exit(spawn(probe_args(whole))), 0);

    auto a = ResultReader::open(killed), b = ResultReader::open(whole);
    const RunInfo ra = a.only_run(), rb = b.only_run();
    EXPECT_EQ(ra.status, RunStatus::kDone);
    EXPECT_EQ(ra.n_samples, 240);
    const auto sa = a.load_samples(ra.run_id), sb = b.load_samples(rb.run_id);
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(sa[i] == sb[i]) << "sample " << sa[i].sample_id << " differs";
    // The similarity figures come from the vectors stored before the kill and
    // after the resume: the same batches give the same embeddings, so the same
    // figures, and the vectors are gone once they are computed.
    const auto fa = load_run_similarity(a, ra.run_id), fb = load_run_similarity(b, rb.run_id);
    ASSERT_TRUE(fa && fb);
    EXPECT_EQ(fa->n_samples, 240);
    EXPECT_EQ(fa->s_input, fb->s_input);
    EXPECT_EQ(fa->s_full, fb->s_full);
    EXPECT_EQ(fa->n_clusters, fb->n_clusters);
    EXPECT_EQ(count_vectors(a, ra.run_id), 0);
    const auto xa = load_sample_similarity(a, ra.run_id), xb = load_sample_similarity(b, rb.run_id);
    ASSERT_EQ(xa.size(), 240u);
    ASSERT_EQ(xa.size(), xb.size());
    for (size_t i = 0; i < xa.size(); ++i) {
        EXPECT_EQ(xa[i].neighbours_full, xb[i].neighbours_full) << xa[i].sample_id;
        EXPECT_EQ(xa[i].cluster, xb[i].cluster) << xa[i].sample_id;
    }
    std::printf("[ info ] killed after %lld of 240 samples; resumed run equals the uninterrupted one "
                "(S_input %.4f, S_full %.4f)\n",
                static_cast<long long>(before), fa->s_input, fa->s_full);
}

TEST(Probe, ShardsMergedEqualUnsharded) {
    MEMSKEW_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    const Shared s{model, data};
    const std::string dir = test::temp_dir();
    run_probe(base_params(s, dir + "/all.db", 150));
    for (size_t i = 0; i < 2; ++i) {
        ProbeParams p = base_params(s, dir + "/shard" + std::to_string(i) + ".db", 150);
        p.data.shard_index = i;
        p.data.n_shards = 2;
        run_probe(p);
    }
    const MergeReport m = merge_stores({dir + "/shard0.db", dir + "/shard1.db"}, dir + "/merged.db");
    EXPECT_EQ(m.n_samples, 150);
    EXPECT_EQ(m.n_runs, 1);
    auto a = ResultReader::open(dir + "/all.db"), b = ResultReader::open(dir + "/merged.db");
    const auto ca = a.load_columns(a.only_run().run_id), cb = b.load_columns(b.only_run().run_id);
    ASSERT_EQ(ca.size(), 150u);
    ASSERT_EQ(cb.size(), 150u);
    EXPECT_EQ(ca.sample_id, cb.sample_id);
    EXPECT_EQ(ca.n_pre, cb.n_pre);
    EXPECT_EQ(ca.length, cb.length);
    // Shards batch samples differently, so float sums may be ordered
    // differently: metrics agree to float precision, integers exactly.
    double worst = 0;
    for (size_t k = 0; k < ca.metric_names.size(); ++k) {
        for (size_t i = 0; i < ca.size(); ++i) {
            const double x = ca.metric_values[k][i], y = cb.metric_values[k][i];
            if (std::isnan(x) || std::isnan(y)) {
                EXPECT_EQ(std::isnan(x), std::isnan(y)) << ca.metric_names[k];
                continue;
            }
            if (std::isinf(x) || std::isinf(y)) {
                EXPECT_EQ(x, y) << ca.metric_names[k];
                continue;
            }
            const double rel = std::fabs(x - y) / std::max(1.0, std::fabs(x));
            worst = std::max(worst, rel);
            EXPECT_LE(rel, 1e-4) << ca.metric_names[k] << " of " << ca.sample_id[i];
        }
    }
    std::printf("[ info ] merged shards vs unsharded: worst relative metric difference %.2e\n", worst);

    // A shard leaves its figures to the merge; over the merged vectors they
    // match the unsharded run's (embeddings to float precision, the
    // near-duplicate and duplicate figures exactly: they come from the ids).
    EXPECT_FALSE(load_run_similarity(ResultReader::open(dir + "/shard0.db"), 1));
    const auto merged = compute_store_similarity(dir + "/merged.db", b.only_run().run_id);
    const auto whole = load_run_similarity(a, a.only_run().run_id);
    ASSERT_TRUE(merged && whole);
    EXPECT_EQ(merged->n_samples, 150);
    EXPECT_NEAR(merged->s_input, whole->s_input, 1e-4);
    EXPECT_NEAR(merged->s_full, whole->s_full, 1e-4);
    EXPECT_EQ(merged->n_clusters, whole->n_clusters);
    EXPECT_EQ(merged->n_duplicate_prompts, whole->n_duplicate_prompts);
    const auto xa = load_sample_similarity(a, a.only_run().run_id);
    const auto xb = load_sample_similarity(ResultReader::open(dir + "/merged.db"), b.only_run().run_id);
    ASSERT_EQ(xa.size(), xb.size());
    double worst_knn = 0;
    for (size_t i = 0; i < xa.size(); ++i) {
        worst_knn = std::max(worst_knn, std::fabs(xa[i].knn_sim_full - xb[i].knn_sim_full));
        EXPECT_EQ(xa[i].cluster_size, xb[i].cluster_size);
    }
    EXPECT_LE(worst_knn, 1e-3);
    std::printf("[ info ] merged shards' similarity vs unsharded: S_input %.6f vs %.6f, worst kNN mean difference "
                "%.2e\n",
                merged->s_input, whole->s_input, worst_knn);
}

TEST(Probe, ResumeWithOtherOptionsIsRefused) {
    MEMSKEW_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    const Shared s{model, data};
    const std::string dir = test::temp_dir();
    run_probe(base_params(s, dir + "/r.db", 16));
    // Same options again without --resume: refused, nothing overwritten.
    try {
        run_probe(base_params(s, dir + "/r.db", 16));
        FAIL() << "a second fresh probe into the same store was accepted";
    } catch (const InvalidInput& e) {
        EXPECT_NE(e.message().find("already"), std::string::npos) << e.message();
    }
    ProbeParams other = base_params(s, dir + "/r.db", 16);
    other.sampling.temperature = 0.7;
    other.resume = true;
    try {
        run_probe(other);
        FAIL() << "resume with another temperature was accepted";
    } catch (const InvalidInput& e) {
        EXPECT_NE(e.message().find("temperature"), std::string::npos) << e.message();
    }
    // The original run is intact.
    auto r = ResultReader::open(dir + "/r.db");
    EXPECT_EQ(r.only_run().n_samples, 16);
}

TEST(Probe, GenerateAgreesOnMedquad) {
    MEMSKEW_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    const std::string dir = test::temp_dir();
    ProbeParams p = base_params({model, data}, dir + "/g.db", 500);
    p.generate = true;
    p.max_batch_size = 32;
    const ProbeSummary s = run_probe(p);
    EXPECT_EQ(s.n_probed, 500);
    EXPECT_EQ(s.n_generated, 500);
    EXPECT_TRUE(s.disagreements.empty());
    auto r = ResultReader::open(dir + "/g.db");
    const auto cols = r.load_columns(r.only_run().run_id);
    const auto& gen = cols.metric("n_pre_generated");
    for (size_t i = 0; i < cols.size(); ++i) EXPECT_EQ(gen[i], static_cast<double>(cols.n_pre[i]));
}
