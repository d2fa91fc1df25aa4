// `memskew train --nproc N`, data parallel, end to end: 2 and 3 ranks on
// this machine against one process with the same global batch. Independent
// source: the one-process run's own per-step losses (trainer_state.json) and
// final weights.
//
// Tolerance: the ranks compute the same sums as one process, split at other
// places — each rank's slice is padded to its own longest sample (other
// matrix shapes, so other blockings in the GEMMs) and the gradients are summed
// over ranks before, not after, the per-slice reduction — so fp32 rounding
// differs in the last bits and grows over the steps. Measured over 9 steps of
// full training (printed below): at most 5e-8 relative on a step's loss, and
// final weights within 1.3e-5 of the largest change the last 6 steps made.
// The bounds, 1e-6 and 1e-3, are about two orders above that and far below
// what a wrong split gives (a slice's loss divided by its own tokens, or a
// rank's gradient left out, changes the first step's update by a factor of W).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "memskew/local-launch.h"
#include "memskew/model.h"
#include "memskew/trainer-state.h"
#include "model/model-impl.h"
#include "test-util.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    std::string dir, data;
};

Fixture make_setup(const std::string& name) {
    Fixture s;
    s.dir = test::temp_dir() + "/" + name;
    fs::remove_all(s.dir);
    fs::create_directories(s.dir);
    s.data = s.dir + "/qa.jsonl";
    std::ofstream f(s.data);
    std::mt19937 rng(11);
    for (int i = 0; i < 21; ++i)  // 21 samples, batches of 4: the last micro-batch is short
        f << fmt::format(R"({{"question": "Which is {}{}?", "answer": "It is {} ({} units)."}})", i,
                         std::string(rng() % 20, 'q'), std::string(1 + rng() % 30, static_cast<char>('a' + i % 26)),
                         i * 7)
          << "\n";
    return s;
}

// memskew train from scratch (full training); returns the exit code, output in DIR/TAG.err.
int train(const Fixture& s, const std::string& out, const std::string& extra, const std::string& tag) {
    const std::string cmd = fmt::format(
        "'{}/memskew' train --init dim=48,layers=2,heads=4,kv_heads=2,ffn=96,ctx=128 -d '{}' -o '{}' -q "
        "--epochs 3 --batch-size 4 --grad-accum 2 --lr 3e-3 --warmup-steps 2 --seed 5 {} > '{}/{}.out' 2> '{}/{}.err'",
        test::binary_dir(), s.data, out, extra, s.dir, tag, s.dir, tag);
    const int code = std::system(cmd.c_str());
    return WIFEXITED(code) ? WEXITSTATUS(code) : 128;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<double> losses(const std::string& checkpoint) {
    std::vector<double> out;
    for (const auto& e : load_trainer_state(checkpoint).log_history) out.push_back(e.values.at("loss"));
    return out;
}

// Largest |a - b| over the weights, and the largest |a - init| (the scale of what training changed).
std::pair<double, double> weight_difference(const std::string& a_dir, const std::string& b_dir,
                                            const std::string& init_dir) {
    auto a = Model::load(a_dir), b = Model::load(b_dir), init = Model::load(init_dir);
    auto pb = model_impl(*b).net->named_parameters(), pi = model_impl(*init).net->named_parameters();
    double d = 0, scale = 0;
    for (const auto& item : model_impl(*a).net->named_parameters()) {
        d = std::max(d, (item.value() - pb[item.key()]).abs().max().item<double>());
        scale = std::max(scale, (item.value() - pi[item.key()]).abs().max().item<double>());
    }
    return {d, scale};
}

}  // namespace

TEST(TrainDist, TwoAndThreeRanksFollowTheOneProcessTrajectory) {
    const Fixture s = make_setup("train-dist");
    ASSERT_EQ(train(s, s.dir + "/one", "--threads 1", "one"), 0) << slurp(s.dir + "/one.err");
    // 21 samples in micro-batches of 4, 2 per step: 3 steps per epoch, 9 in all.
    const std::string last = "/checkpoint-9";
    const auto want = losses(s.dir + "/one" + last);
    ASSERT_EQ(want.size(), 9u);
    // The scale of the weights' changes: from the one-process run's first checkpoint to its last.
    for (int world : {2, 3}) {
        const std::string out = fmt::format("{}/ranks{}", s.dir, world);
        const std::string tag = fmt::format("ranks{}", world);
        ASSERT_EQ(train(s, out, fmt::format("--nproc {} --threads {}", world, world), tag), 0)
            << slurp(s.dir + "/" + tag + ".err");
        const auto got = losses(out + last);
        ASSERT_EQ(got.size(), want.size());
        double worst = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            const double rel = std::fabs(got[i] - want[i]) / std::fabs(want[i]);
            worst = std::max(worst, rel);
            EXPECT_LT(rel, 1e-6) << "step " << i + 1 << ": " << got[i] << " vs " << want[i];
        }
        const auto [d, scale] = weight_difference(out + last, s.dir + "/one" + last, s.dir + "/one/checkpoint-3");
        std::printf("%d ranks: 9 steps, largest relative loss difference %.3g (first %.6f vs %.6f, last %.6f vs "
                    "%.6f); final weights differ by %.3g where the last 6 steps moved them by up to %.3g\n",
                    world, worst, got.front(), want.front(), got.back(), want.back(), d, scale);
        EXPECT_LT(d, 1e-3 * scale);
        // Rank 0 alone wrote: one set of checkpoint folders, no leftovers.
        int folders = 0;
        for (const auto& e : fs::directory_iterator(out)) folders += e.is_directory();
        EXPECT_EQ(folders, 3);  // checkpoint-3, -6, -9
    }
}

TEST(TrainDist, ResumeAfterALostCheckpointContinuesTheTrajectory) {
    const Fixture s = make_setup("train-dist-resume");
    const std::string out = s.dir + "/run";
    ASSERT_EQ(train(s, out, "--nproc 2 --threads 2", "full"), 0) << slurp(s.dir + "/full.err");
    const auto want = losses(out + "/checkpoint-9");
    // As if the job had died during the last epoch: its checkpoint is gone.
    fs::remove_all(out + "/checkpoint-9");
    ASSERT_EQ(train(s, out, "--nproc 2 --threads 2 --resume", "resumed"), 0) << slurp(s.dir + "/resumed.err");
    const auto got = losses(out + "/checkpoint-9");
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << "step " << i + 1;
}

TEST(TrainDist, RanksWithOtherOptionsAreRefused) {
    const Fixture s = make_setup("train-dist-mismatch");
    const std::string out = s.dir + "/run";
    const std::string cmd = fmt::format(
        "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} GLOO_SOCKET_IFNAME=lo; "
        "B='{}/memskew train --init dim=32,layers=1,heads=2,ctx=64 -d {} -o {} -q --threads 1 --epochs 1'; "
        "RANK=0 $B 2> '{}/r0.err' & RANK=1 $B --lr 1e-3 2> '{}/r1.err'; c1=$?; wait $!; c0=$?; exit $((c0 * 16 + c1))",
        free_local_port(), test::binary_dir(), s.data, out, s.dir, s.dir);
    const int code = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(code));
    EXPECT_EQ(WEXITSTATUS(code), 3 * 16 + 3);
    for (const char* f : {"/r0.err", "/r1.err"}) {
        const std::string err = slurp(s.dir + f);
        EXPECT_NE(err.find("rank 1 was started on another training run than rank 0: lr"), std::string::npos) << err;
    }
    EXPECT_FALSE(fs::exists(out + "/checkpoint-1"));
}
