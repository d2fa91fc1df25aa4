// Nelder–Mead on standard test functions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "memskew/error.h"
#include "memskew/stats/optimize.h"

using namespace memskew;
using namespace memskew::stats;

TEST(StatsOptimize, Rosenbrock) {
    auto f = [](const std::vector<double>& x) {
        return 100 * std::pow(x[1] - x[0] * x[0], 2) + std::pow(1 - x[0], 2);
    };
    NelderMeadParams p;
    p.max_iterations = 10000;
    const auto r = nelder_mead(f, {-1.2, 1.0}, p);
    EXPECT_TRUE(r.converged);
    EXPECT_NEAR(r.x[0], 1.0, 1e-5);
    EXPECT_NEAR(r.x[1], 1.0, 1e-5);
    EXPECT_LT(r.f, 1e-10);
}

TEST(StatsOptimize, QuadraticIn3dWithScaledSteps) {
    auto f = [](const std::vector<double>& x) {
        return std::pow(x[0] - 3, 2) + 10 * std::pow(x[1] + 0.01, 2) + 0.5 * std::pow(x[2] - 1e-3, 2) + 7;
    };
    NelderMeadParams p;
    p.initial_step = {1.0, 0.01, 0.01};
    const auto r = nelder_mead(f, {0, 0, 0}, p);
    EXPECT_NEAR(r.x[0], 3, 1e-5);
    EXPECT_NEAR(r.x[1], -0.01, 1e-5);
    EXPECT_NEAR(r.x[2], 1e-3, 1e-5);
    EXPECT_NEAR(r.f, 7, 1e-10);
}

TEST(StatsOptimize, InfeasibleRegionAsInfinity) {
    // Minimum of (x - 2)^2 + (y - 2)^2 subject to x + y <= 1 lies at (0.5, 0.5).
    auto f = [](const std::vector<double>& x) {
        if (x[0] + x[1] > 1) return std::numeric_limits<double>::infinity();
        return std::pow(x[0] - 2, 2) + std::pow(x[1] - 2, 2);
    };
    NelderMeadParams p;
    p.max_iterations = 20000;
    auto r = nelder_mead(f, {0, 0}, p);
    r = nelder_mead(f, r.x, p);  // a restart, as the fits do
    EXPECT_NEAR(r.x[0], 0.5, 1e-4);
    EXPECT_NEAR(r.x[1], 0.5, 1e-4);
}

TEST(StatsOptimize, InvalidArguments) {
    auto f = [](const std::vector<double>& x) { return x[0]; };
    EXPECT_THROW(nelder_mead(f, {}), InvalidInput);
    NelderMeadParams p;
    p.initial_step = {1, 2};
    EXPECT_THROW(nelder_mead(f, {0}, p), InvalidInput);
    auto bad = [](const std::vector<double>&) { return std::nan(""); };
    EXPECT_THROW(nelder_mead(bad, {0}), InvalidInput);
}
