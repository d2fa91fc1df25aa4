// The rank from torchrun's and Slurm's variables, the refusals of an
// inconsistent environment, and the token-balanced spread of samples (the LPT
// rule, checked against assignments worked out by hand).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "memskew/dist.h"
#include "memskew/error.h"
#include "memskew/local-launch.h"
#include "test-util.h"

using namespace memskew;

TEST(DistEnv, OneProcessWithoutLauncherVariables) {
    const DistEnv d = dist_env_from({});
    EXPECT_EQ(d.launcher, "none");
    EXPECT_EQ(d.rank, 0);
    EXPECT_EQ(d.world_size, 1);
    EXPECT_FALSE(d.distributed());
}

TEST(DistEnv, Torchrun) {
    const DistEnv d = dist_env_from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                     {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29511"}});
    EXPECT_EQ(d.launcher, "torchrun");
    EXPECT_EQ(d.rank, 3);
    EXPECT_EQ(d.world_size, 4);
    EXPECT_EQ(d.local_rank, 1);
    EXPECT_EQ(d.master_addr, "node0");
    EXPECT_EQ(d.master_port, 29511);
    // Options override the environment; the port defaults to torchrun's 29500.
    DistOptions o;
    o.master_addr = "10.0.0.1";
    const DistEnv e = dist_env_from({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "node0"}}, o);
    EXPECT_EQ(e.master_addr, "10.0.0.1");
    EXPECT_EQ(e.master_port, 29500);
    EXPECT_EQ(e.local_rank, 0);  // LOCAL_RANK absent: the rank
    EXPECT_EQ(d.local_world_size, 4);  // LOCAL_WORLD_SIZE absent: all ranks on one machine
    EXPECT_EQ(dist_env_from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}})
                  .local_world_size,
              2);
}

TEST(DistEnv, ThreadsAreSharedByTheRanksOfAMachine) {
    DistEnv d;
    d.local_world_size = 3;
    EXPECT_EQ(threads_per_rank(d, 0, 16), 5);  // floor(16 / 3)
    EXPECT_EQ(threads_per_rank(d, 0, 2), 1);   // never 0
    EXPECT_EQ(threads_per_rank(d, 7, 2), 7);   // asked for: as asked
    EXPECT_EQ(threads_per_rank(DistEnv{}, 0, 8), 8);
}

TEST(DistEnv, SlurmAndPrecedence) {
    const DistEnv s = dist_env_from(
        {{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "gpu-01"}});
    EXPECT_EQ(s.launcher, "slurm");
    EXPECT_EQ(s.rank, 5);
    EXPECT_EQ(s.world_size, 8);
    EXPECT_EQ(s.local_rank, 1);
    EXPECT_EQ(s.local_world_size, 1);  // without --ntasks-per-node
    EXPECT_EQ(dist_env_from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_NTASKS_PER_NODE", "4"},
                             {"MASTER_ADDR", "gpu-01"}})
                  .local_world_size,
              4);
    // torchrun's variables win over Slurm's (torchrun inside an allocation).
    const DistEnv t = dist_env_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"RANK", "1"},
                                     {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}});
    EXPECT_EQ(t.launcher, "torchrun");
    EXPECT_EQ(t.rank, 1);
    // One Slurm task needs no master.
    EXPECT_FALSE(dist_env_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}).distributed());
}

TEST(DistEnv, InconsistentEnvironmentsAreRefused) {
    using E = std::map<std::string, std::string>;
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}); },
                                     {"RANK=2 is not below WORLD_SIZE=2"});
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "0"}, {"WORLD_SIZE", "2"}}); },
                                     {"2 processes", "no master address"}, "MASTER_ADDR");
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}); },
                                     {"SLURM_NTASKS=4", "no master address"}, "scontrol show hostnames");
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "0"}}); }, {"only RANK=0 is set"});
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "x"}, {"WORLD_SIZE", "2"}}); },
                                     {"RANK=x is not a non-negative integer"});
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "-1"}, {"WORLD_SIZE", "2"}}); },
                                     {"RANK=-1"});
    test::expect_error<InvalidInput>([] { dist_env_from(E{{"RANK", "0"}, {"WORLD_SIZE", "0"}}); },
                                     {"at least one process"});
    test::expect_error<InvalidInput>(
        [] { dist_env_from(E{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "5"}, {"MASTER_ADDR", "h"}}); },
        {"local rank 5"});
    test::expect_error<InvalidInput>(
        [] { dist_env_from(E{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}); },
        {"master port 70000"});
}

TEST(DistPartition, LongestFirstToTheLeastLoadedRank) {
    // Lengths 5, 8, 3, 8, 2, 6 over 2 ranks, by hand: order (length desc, index
    // asc) 1(8), 3(8), 5(6), 0(5), 2(3), 4(2).
    //   1 -> r0 (0,0 tie: lower rank) loads 8,0;  3 -> r1: 8,8;  5 -> r0: 14,8;
    //   0 -> r1: 14,13;  2 -> r1: 14,16;  4 -> r0: 16,16.
    EXPECT_EQ(partition_by_tokens({5, 8, 3, 8, 2, 6}, 2), (std::vector<int>{1, 0, 1, 1, 0, 0}));
    // One rank takes everything; more ranks than samples leave some empty.
    EXPECT_EQ(partition_by_tokens({4, 1}, 1), (std::vector<int>{0, 0}));
    EXPECT_EQ(partition_by_tokens({4, 1}, 3), (std::vector<int>{0, 1}));
    EXPECT_TRUE(partition_by_tokens({}, 2).empty());
    test::expect_error<InvalidInput>([] { partition_by_tokens({1}, 0); }, {"over 0 ranks"});
    test::expect_error<InvalidInput>([] { partition_by_tokens({1, -2}, 2); }, {"sample 1 has a negative token count"});
}

TEST(DistPartition, BalancedWithinTheLptBound) {
    // Graham's bound for LPT: the largest load is at most 4/3 - 1/(3 m) of the
    // optimum, and the optimum is at least max(total / m, longest sample).
    std::vector<int64_t> lengths;
    uint64_t x = 12345;
    for (int i = 0; i < 5000; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        lengths.push_back(static_cast<int64_t>(20 + (x >> 33) % 2000));
    }
    for (int m : {2, 3, 8}) {
        const auto rank = partition_by_tokens(lengths, m);
        std::vector<int64_t> load(static_cast<std::size_t>(m), 0);
        for (std::size_t i = 0; i < lengths.size(); ++i) load[static_cast<std::size_t>(rank[i])] += lengths[i];
        const double total = static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), int64_t{0}));
        const double lower = std::max(total / m, static_cast<double>(*std::max_element(lengths.begin(), lengths.end())));
        const double worst = static_cast<double>(*std::max_element(load.begin(), load.end()));
        EXPECT_LE(worst, (4.0 / 3 - 1.0 / (3 * m)) * lower) << m;
        std::printf("[dist] %d ranks: largest load %.0f tokens, %.4f of the ideal total/m\n", m, worst, worst / (total / m));
        // Deterministic.
        EXPECT_EQ(partition_by_tokens(lengths, m), rank);
    }
}

TEST(DistEnv, RankDevice) {
    DistEnv d;
    d.rank = 5;
    d.world_size = 8;
    d.local_rank = 1;
    EXPECT_EQ(rank_device(d, "cuda"), "cuda:1");  // one GPU per rank of a node
    EXPECT_EQ(rank_device(d, "cuda:3"), "cuda:3");  // as given
    EXPECT_EQ(rank_device(d, "cpu"), "cpu");
    EXPECT_EQ(rank_device(DistEnv{}, "cuda"), "cuda");  // one process: the first visible GPU
}

// The local launcher, with /bin/sh as the rank program: each rank checks the
// variables it was given and exits with a code that encodes them.
TEST(LocalLaunch, EveryRankSeesTorchrunsVariables) {
    LocalLaunchParams p;
    p.nproc = 3;
    p.program = "/bin/sh";
    p.threads = 7;  // floor(7 / 3) = 2 each
    p.env = {"EXTRA=yes"};
    // Exit code 10 * RANK + LOCAL_RANK when everything else is as expected, else 99.
    p.args = {"-c",
              "[ \"$WORLD_SIZE\" = 3 ] && [ \"$LOCAL_WORLD_SIZE\" = 3 ] && [ \"$MASTER_ADDR\" = 127.0.0.1 ] && "
              "[ -n \"$MASTER_PORT\" ] && [ \"$GLOO_SOCKET_IFNAME\" = lo ] && [ \"$MEMSKEW_RANK_THREADS\" = 2 ] && "
              "[ \"$EXTRA\" = yes ] && [ -z \"$TORCHELASTIC_RUN_ID\" ] && exit $((10 * RANK + LOCAL_RANK)); exit 99"};
    setenv("TORCHELASTIC_RUN_ID", "an enclosing job", 1);  // not inherited
    const LaunchOutcome out = launch_local(p);
    unsetenv("TORCHELASTIC_RUN_ID");
    EXPECT_EQ(out.exit_codes, (std::vector<int>{0, 11, 22}));
    EXPECT_EQ(out.first_failed, 1);
    EXPECT_EQ(out.exit_code(), 11);
}

TEST(LocalLaunch, AHangingRankIsEndedAfterTheGracePeriod) {
    LocalLaunchParams p;
    p.nproc = 2;
    p.program = "/bin/sh";
    p.grace = std::chrono::milliseconds(200);
    // Rank 0 fails at once; rank 1 would sleep for a minute (exec: the signal reaches sleep itself).
    p.args = {"-c", "[ \"$RANK\" = 0 ] && exit 5; exec sleep 60"};
    const auto t0 = std::chrono::steady_clock::now();
    const LaunchOutcome out = launch_local(p);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
    EXPECT_EQ(out.exit_codes, (std::vector<int>{5, 128 + SIGTERM}));
    EXPECT_EQ(out.exit_code(), 5);
}

TEST(LocalLaunch, ThreadsAndBadInput) {
    EXPECT_EQ(threads_each(0, 2, 2), 1);
    EXPECT_EQ(threads_each(8, 3, 2), 2);
    EXPECT_EQ(threads_each(1, 4, 16), 1);  // never 0
    LocalLaunchParams p;
    p.nproc = 0;
    EXPECT_THROW(launch_local(p), InvalidInput);
    p.nproc = 1;
    p.program = "/no/such/program";
    // glibc's posix_spawn reports a failed exec as its return value (since 2.24).
    test::expect_error<IoError>([&] { launch_local(p); }, {"cannot start rank 0", "/no/such/program"});
    const int port = free_local_port();
    EXPECT_GT(port, 0);
    EXPECT_LE(port, 65535);
}
