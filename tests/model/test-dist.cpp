// ProcessGroup over c10d with real processes on 127.0.0.1: this test binary
// starts copies of itself as the ranks (DistWorker.Run, which only runs with
// MEMSKEW_DIST_WORKER set). Independent source of the expected values: the
// closed forms in the worker (sum of 1..W, each rank's known bytes).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <fmt/format.h>

#include "memskew/dist.h"
#include "memskew/error.h"
#include "memskew/local-launch.h"
#include "memskew/process-group.h"

using namespace memskew;

namespace {

std::string rank_bytes(int rank) {
    // Different lengths per rank, rank 1's empty, and a NUL inside.
    if (rank == 1) return {};
    return std::string("rank ") + std::to_string(rank) + std::string(1, '\0') + std::string(static_cast<std::size_t>(rank) * 7, 'x');
}

// Starts `world` ranks of this binary (the local launcher, as `--nproc` does); their exit codes by rank.
std::vector<int> run_ranks(int world, const std::vector<std::string>& extra_env = {}) {
    LocalLaunchParams p;
    p.nproc = world;
    p.args = {"--gtest_filter=DistWorker.Run"};
    p.env = {"MEMSKEW_DIST_WORKER=1"};
    p.env.insert(p.env.end(), extra_env.begin(), extra_env.end());
    return launch_local(p).exit_codes;
}

}  // namespace

// One rank's part (run by run_ranks only).
TEST(DistWorker, Run) {
    if (!std::getenv("MEMSKEW_DIST_WORKER")) GTEST_SKIP() << "runs as a rank of Dist.* only";
    const DistEnv env = dist_env_from(launcher_environment());
    ProcessGroupParams params;
    params.timeout = std::chrono::seconds(20);
    auto pg = ProcessGroup::connect(env, params);
    const int W = env.world_size, R = env.rank;
    const char* die = std::getenv("MEMSKEW_DIST_DIE");
    if (die && std::atoi(die) == R) std::_Exit(3);  // a rank that dies after the rendezvous
    if (die) {
        // The others learn it at their next collective, as an IoError naming themselves.
        try {
            pg->barrier();
            torch::Tensor t = torch::ones({4});
            pg->allreduce_sum(t);
            FAIL() << "a collective with a dead rank succeeded";
        } catch (const IoError& e) {
            EXPECT_NE(e.message().find(fmt::format("rank {} of {}", R, W)), std::string::npos) << e.message();
            // The heartbeats name the rank that is gone.
            EXPECT_NE(e.message().find(fmt::format("rank {} stopped", die)), std::string::npos) << e.message();
        }
        return;
    }
    pg->barrier();
    torch::Tensor t = torch::full({3}, static_cast<float>(R + 1));
    pg->allreduce_sum(t);
    EXPECT_EQ(t[2].item<float>(), static_cast<float>(W * (W + 1) / 2));  // 1 + 2 + ... + W
    const auto got = pg->gather_to_root(rank_bytes(R));
    if (R == 0) {
        ASSERT_EQ(static_cast<int>(got.size()), W);
        for (int r = 0; r < W; ++r) EXPECT_EQ(got[static_cast<std::size_t>(r)], rank_bytes(r)) << r;
    } else {
        EXPECT_TRUE(got.empty());
    }
    EXPECT_EQ(pg->broadcast_bytes(R == W - 1 ? "from the last rank" : "ignored", W - 1), "from the last rank");
    // Rank 0's result, and its error, reach every rank (fn runs on rank 0 only).
    EXPECT_EQ(pg->from_root([&] { return fmt::format("made by rank {}", R); }), "made by rank 0");
    try {
        pg->from_root([]() -> std::string { throw InvalidInput("the store is foreign", "use another --out"); });
        ADD_FAILURE() << "rank 0's error did not reach rank " << R;
    } catch (const InvalidInput& e) {
        EXPECT_EQ(e.message(), "the store is foreign");
        EXPECT_EQ(e.hint(), "use another --out");
    }
    // Every rank's own outcome: all fine, then the last rank fails (with its
    // error type) and every rank throws it, naming that rank.
    pg->agree("");
    try {
        pg->agree(R == W - 1 ? failure_bytes(FormatError("bad bytes", "a hint")) : std::string());
        ADD_FAILURE() << "the last rank's failure did not reach rank " << R;
    } catch (const FormatError& e) {
        EXPECT_EQ(e.message(), fmt::format("rank {}: bad bytes", W - 1));
        EXPECT_EQ(e.hint(), "a hint");
    }
    pg->barrier();
}

TEST(Dist, TwoAndThreeLocalRanks) {
    for (int world : {2, 3}) {
        const auto codes = run_ranks(world);
        for (int r = 0; r < world; ++r) EXPECT_EQ(codes[static_cast<std::size_t>(r)], 0) << "rank " << r << " of " << world;
    }
}

TEST(Dist, ADeadRankEndsTheOthersWithAnError) {
    const auto codes = run_ranks(3, {"MEMSKEW_DIST_DIE=1"});
    EXPECT_EQ(codes[1], 3);
    EXPECT_EQ(codes[0], 0);  // the worker checked its IoError
    EXPECT_EQ(codes[2], 0);
}

TEST(Dist, OneProcessNeedsNoRendezvous) {
    auto pg = ProcessGroup::connect(DistEnv{});
    EXPECT_EQ(pg->world_size(), 1);
    EXPECT_EQ(pg->gather_to_root("abc"), std::vector<std::string>{"abc"});
    EXPECT_EQ(pg->broadcast_bytes("x"), "x");
    torch::Tensor t = torch::ones({2});
    pg->allreduce_sum(t);
    EXPECT_EQ(t[0].item<float>(), 1.0f);
    pg->barrier();
}

TEST(Dist, UnreachableMasterIsAnIoError) {
    DistEnv env;
    env.rank = 1;
    env.world_size = 2;
    env.master_addr = "127.0.0.1";
    env.master_port = free_local_port();  // nobody serves it
    ProcessGroupParams params;
    params.timeout = std::chrono::seconds(3);
    params.agent_store = "no";
    try {
        ProcessGroup::connect(env, params);
        FAIL() << "connected to nobody";
    } catch (const IoError& e) {
        EXPECT_NE(e.message().find("rank 1 of 2: the rendezvous failed"), std::string::npos) << e.message();
    }
}

TEST(Dist, APortInUseIsNamed) {
    // Something listens on the port rank 0 would serve the rendezvous on.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = 0;
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(fd, 1), 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    DistEnv env;
    env.rank = 0;
    env.world_size = 2;
    env.master_addr = "127.0.0.1";
    env.master_port = ntohs(a.sin_port);
    ProcessGroupParams params;
    params.timeout = std::chrono::seconds(3);
    params.agent_store = "no";
    try {
        ProcessGroup::connect(env, params);
        ADD_FAILURE() << "served a rendezvous on a port in use";
    } catch (const IoError& e) {
        EXPECT_NE(e.message().find(fmt::format("rank 0 of 2: the rendezvous failed: port {} on 127.0.0.1 is in use",
                                               env.master_port)),
                  std::string::npos)
            << e.message();
        EXPECT_NE(e.hint().find("--master-port"), std::string::npos);
    }
    close(fd);
}
