// `memskew probe --nproc N`, end to end: the CLI starts N ranks on this
// machine (the same variables torchrun sets), they rendezvous over c10d and
// rank 0 writes the one store. Independent source of the expected values: a
// one-process probe of the same model and data into its own store; the two
// stores must hold the same runs and samples with bit-identical metrics and
// per-token arrays (compared as the store's own bytes: each sample's record
// encoded with encode_sample_records, which carries the store's blobs).
// Bit-identical is the claim because every rank scores a sample in the same
// planned batch as one process does (the batch plan does not depend on the
// number of ranks) with the same kernels and one thread per rank.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "memskew/local-launch.h"
#include "memskew/model.h"
#include "memskew/store.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

extern char** environ;

using namespace memskew;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    std::string dir, model, data;
};

// A tiny random Llama (saved as a Hugging Face folder) and `n` QA samples of
// varied lengths (so batches differ in size and ranks in load).
Fixture make_setup(const std::string& name, int n) {
    Fixture s;
    s.dir = test::temp_dir() + "/" + name;
    fs::remove_all(s.dir);
    fs::create_directories(s.dir);
    s.model = s.dir + "/model";
    ModelConfig c = test::tiny_llama_config(256);
    Model::random_llama(c, make_byte_vocab(), 7, {}, 0.3)->save_hf(s.model);
    s.data = s.dir + "/qa.jsonl";
    std::ofstream f(s.data);
    std::mt19937 rng(3);
    for (int i = 0; i < n; ++i) {
        const std::string q(1 + rng() % 40, static_cast<char>('a' + i % 26));
        const std::string a(2 + rng() % 60, static_cast<char>('A' + i % 26));
        f << fmt::format(R"({{"id": "s{}", "question": "{} {}?", "answer": "{} {}."}})", i, q, i, a, i) << "\n";
    }
    return s;
}

std::string memskew_binary() { return test::binary_dir() + "/memskew"; }

// Runs `memskew probe` with `extra` options (stdout and stderr to files in
// the setup's folder); returns the exit code.
int run_probe(const Fixture& s, const std::string& out, const std::string& extra, const std::string& tag,
              pid_t* launched = nullptr, int batch_size = 4) {
    const std::string cmd =
        fmt::format("exec '{}' probe -m '{}' -d '{}' -o '{}' -q --batch-size {} --batch-tokens 256 --generate {} "
                    "> '{}/{}.out' 2> '{}/{}.err'",
                    memskew_binary(), s.model, s.data, out, batch_size, extra, s.dir, tag, s.dir, tag);
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    if (launched) {
        *launched = pid;
        return 0;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Each sample's stored record as the store's bytes, by sample id (run 1).
std::map<std::string, std::string> stored_records(const std::string& db) {
    auto r = ResultReader::open(db);
    const auto runs = r.runs();
    EXPECT_EQ(runs.size(), 1u) << db;
    std::map<std::string, std::string> out;
    if (runs.empty()) return out;
    for (const SampleRecord& rec : r.load_samples(runs.front().run_id))
        out[rec.sample_id] = encode_sample_records({rec});
    return out;
}

void expect_same_store(const std::string& want_db, const std::string& got_db, const char* what) {
    const auto want = stored_records(want_db), got = stored_records(got_db);
    ASSERT_EQ(want.size(), got.size()) << what;
    size_t differ = 0;
    for (const auto& [id, bytes] : want) {
        const auto it = got.find(id);
        ASSERT_NE(it, got.end()) << what << ": sample " << id << " missing";
        if (it->second != bytes) ++differ;
    }
    std::printf("%s: %zu samples, %zu differ from the one-process store (bytes of metrics and token arrays)\n", what,
                want.size(), differ);
    EXPECT_EQ(differ, 0u) << what;
    // The run-level figures rank 0 computed (similarity, n_samples).
    auto a = ResultReader::open(want_db), b = ResultReader::open(got_db);
    EXPECT_EQ(a.only_run().n_samples, b.only_run().n_samples);
    EXPECT_EQ(a.only_run().run_key, b.only_run().run_key);  // model, data and options
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The pid of the launcher's child whose environment says RANK=rank.
pid_t rank_pid(pid_t launcher, int rank) {
    const std::string want = fmt::format("RANK={}", rank);
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream st(e.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        int ppid = 0;
        char state = 0;
        if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != launcher) continue;
        const std::string env = slurp((e.path() / "environ").string());
        size_t pos = 0;
        while (pos < env.size()) {
            const size_t end = env.find('\0', pos);
            if (env.compare(pos, (end == std::string::npos ? env.size() : end) - pos, want) == 0)
                return static_cast<pid_t>(std::stoi(name));
            if (end == std::string::npos) break;
            pos = end + 1;
        }
    }
    return -1;
}

}  // namespace

TEST(ProbeDist, TwoAndThreeRanksWriteTheOneProcessStore) {
    const Fixture s = make_setup("probe-dist", 60);
    ASSERT_EQ(run_probe(s, s.dir + "/one.db", "--threads 1", "one"), 0) << slurp(s.dir + "/one.err");
    for (int world : {2, 3}) {
        const std::string db = fmt::format("{}/ranks{}.db", s.dir, world);
        const std::string tag = fmt::format("ranks{}", world);
        ASSERT_EQ(run_probe(s, db, fmt::format("--nproc {} --threads {}", world, world), tag), 0)
            << slurp(s.dir + "/" + tag + ".err");
        expect_same_store(s.dir + "/one.db", db, tag.c_str());
        // Rank 0 alone reports: one summary, as one process prints it.
        const std::string out = slurp(s.dir + "/" + tag + ".out");
        EXPECT_EQ(out.find("probed "), out.rfind("probed ")) << out;
        EXPECT_NE(out.find("probed 60 samples"), std::string::npos) << out;
    }
}

TEST(ProbeDist, RanksWithOtherOptionsAreRefusedBeforeAnythingIsWritten) {
    const Fixture s = make_setup("probe-dist-mismatch", 8);
    const std::string db = s.dir + "/run.db";
    // As torchrun would start them, each rank with its own command line; rank 1 asks for another min-k fraction than rank 0.
    const std::string cmd = fmt::format(
        "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} GLOO_SOCKET_IFNAME=lo; "
        "RANK=0 '{}' probe -m '{}' -d '{}' -o '{}' -q --threads 1 2> '{}/r0.err' & "
        "RANK=1 '{}' probe -m '{}' -d '{}' -o '{}' -q --threads 1 --min-k 0.3 2> '{}/r1.err'; c1=$?; wait $!; c0=$?; "
        "exit $((c0 * 16 + c1))",
        free_local_port(), memskew_binary(), s.model, s.data, db, s.dir, memskew_binary(), s.model, s.data, db,
        s.dir);
    const int code = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(code));
    EXPECT_EQ(WEXITSTATUS(code), 3 * 16 + 3);  // both ranks: invalid input
    for (const char* f : {"/r0.err", "/r1.err"}) {
        const std::string err = slurp(s.dir + f);
        EXPECT_NE(err.find("rank 1 was started on another run than rank 0"), std::string::npos) << err;
        EXPECT_NE(err.find("option min_k"), std::string::npos) << err;
    }
    EXPECT_FALSE(fs::exists(db)) << "a refused job wrote a store";
}

TEST(ProbeDist, AKilledRankStopsTheJobAndResumeCompletesIt) {
    const Fixture s = make_setup("probe-dist-kill", 240);
    const std::string db = s.dir + "/run.db";
    ASSERT_EQ(run_probe(s, s.dir + "/one.db", "--threads 1", "one", nullptr, 1), 0) << slurp(s.dir + "/one.err");
    pid_t launcher = 0;
    run_probe(s, db, "--nproc 2 --threads 2", "killed", &launcher, 1);
    // Once rank 0 has committed some samples, kill rank 1.
    int64_t stored = 0;
    for (int i = 0; i < 3000 && stored == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        try {
            auto r = ResultReader::open(db);
            const auto runs = r.runs();
            stored = runs.empty() ? 0 : runs.front().n_samples;
        } catch (const std::exception&) {
        }
    }
    ASSERT_GT(stored, 0) << "the job stored nothing in 30 s: " << slurp(s.dir + "/killed.err");
    const pid_t victim = rank_pid(launcher, 1);
    ASSERT_GT(victim, 0);
    kill(victim, SIGKILL);
    const int code = wait_exit(launcher);
    const std::string err = slurp(s.dir + "/killed.err");
    std::printf("killed rank 1 after %lld stored samples; the job ended with exit code %d:\n%s", (long long)stored,
                code, err.c_str());
    EXPECT_NE(code, 0);
    EXPECT_NE(err.find("rank 1 stopped"), std::string::npos) << err;
    // The store is consistent and resumable; the finished store equals one process's.
    ASSERT_EQ(run_probe(s, db, "--nproc 2 --threads 2 --resume", "resumed", nullptr, 1), 0)
        << slurp(s.dir + "/resumed.err");
    EXPECT_NE(slurp(s.dir + "/resumed.out").find("were already stored"), std::string::npos);
    expect_same_store(s.dir + "/one.db", db, "killed and resumed, 2 ranks");
}
