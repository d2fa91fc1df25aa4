// METHOD M7 independence check: MI(C_j; state_{j-1}) with a permutation test.
// See include/memskew/stats/hazard.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>

#include <boost/random/uniform_real_distribution.hpp>

#include "memskew/error.h"
#include "memskew/stats/hazard.h"

namespace memskew::stats {

double mutual_information_bits(const std::int64_t counts[2][2]) {
    const double n = static_cast<double>(counts[0][0] + counts[0][1] + counts[1][0] + counts[1][1]);
    if (n <= 0) return 0.0;
    double row[2], col[2];
    for (int a = 0; a < 2; ++a) row[a] = static_cast<double>(counts[a][0] + counts[a][1]);
    for (int b = 0; b < 2; ++b) col[b] = static_cast<double>(counts[0][b] + counts[1][b]);
    double mi = 0;
    for (int a = 0; a < 2; ++a) {
        for (int b = 0; b < 2; ++b) {
            if (counts[a][b] <= 0) continue;  // 0 log 0 = 0
            const double nab = static_cast<double>(counts[a][b]);
            mi += nab / n * std::log2(nab * n / (row[a] * col[b]));
        }
    }
    return std::max(0.0, mi);  // rounding can give -1e-17 for independent tables
}

namespace {

struct TestResult {
    double mi = 0;
    double p_mc = 1;
    double p_exact = 1;
};

// MI of the 2x2 table with margins (rows: C = 0/1 with R ones, columns: state
// = 0/1 with K ones) and a = #(C = 1, state = 1).
double table_mi(std::int64_t N, std::int64_t R, std::int64_t K, std::int64_t a) {
    const std::int64_t t[2][2] = {{N - R - K + a, K - a}, {R - a, a}};
    return mutual_information_bits(t);
}

TestResult permutation_test(const std::int64_t counts[2][2], std::size_t n_perm, std::mt19937_64& rng) {
    TestResult r;
    r.mi = mutual_information_bits(counts);
    const std::int64_t N = counts[0][0] + counts[0][1] + counts[1][0] + counts[1][1];
    const std::int64_t R = counts[1][0] + counts[1][1];
    const std::int64_t K = counts[0][1] + counts[1][1];
    if (N == 0 || R == 0 || R == N || K == 0 || K == N) return r;  // a margin is constant: MI = 0
    // Hypergeometric weights of a over its support, relative to the mode,
    // by the ratio recurrence; tails below 1e-30 of the mode are dropped.
    const std::int64_t lo_support = std::max<std::int64_t>(0, R + K - N);
    const std::int64_t hi_support = std::min(R, K);
    const auto mode = std::clamp<std::int64_t>(
        static_cast<std::int64_t>(std::floor((static_cast<double>(R) + 1) * (static_cast<double>(K) + 1) /
                                             (static_cast<double>(N) + 2))),
        lo_support, hi_support);
    auto ratio_up = [&](std::int64_t a) {  // w(a + 1) / w(a)
        return (static_cast<double>(R - a) * static_cast<double>(K - a)) /
               (static_cast<double>(a + 1) * static_cast<double>(N - R - K + a + 1));
    };
    constexpr double kCut = 1e-30;
    std::vector<double> down{1.0};  // w(mode), w(mode - 1), ...
    for (std::int64_t a = mode; a > lo_support; --a) {
        const double w = down.back() / ratio_up(a - 1);
        if (w < kCut) break;
        down.push_back(w);
    }
    std::vector<double> up;  // w(mode + 1), ...
    double w = 1.0;
    for (std::int64_t a = mode; a < hi_support; ++a) {
        w *= ratio_up(a);
        if (w < kCut) break;
        up.push_back(w);
    }
    const std::int64_t first = mode - static_cast<std::int64_t>(down.size()) + 1;
    std::vector<double> weight(down.rbegin(), down.rend());
    weight.insert(weight.end(), up.begin(), up.end());
    std::vector<double> cumulative(weight.size());
    double total = 0;
    for (std::size_t i = 0; i < weight.size(); ++i) cumulative[i] = (total += weight[i]);
    // Tables tied with the observed one (e.g. mirror images) must count as "as
    // extreme"; allow for rounding in the MI.
    const double threshold = r.mi - 1e-12 * std::max(r.mi, 1e-300) - 1e-15;
    std::vector<char> extreme(weight.size());
    double p_exact = 0;
    for (std::size_t i = 0; i < weight.size(); ++i) {
        extreme[i] = table_mi(N, R, K, first + static_cast<std::int64_t>(i)) >= threshold;
        if (extreme[i]) p_exact += weight[i];
    }
    r.p_exact = std::min(1.0, p_exact / total);
    boost::random::uniform_real_distribution<double> unif(0.0, total);
    std::size_t hits = 0;
    for (std::size_t b = 0; b < n_perm; ++b) {
        const double u = unif(rng);
        auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
        const std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()),
                                                    weight.size() - 1);
        hits += extreme[i] ? 1 : 0;
    }
    r.p_mc = (1.0 + static_cast<double>(hits)) / (1.0 + static_cast<double>(n_perm));
    return r;
}

}  // namespace

std::vector<PositionDependence> independence_check(const std::vector<std::vector<std::uint8_t>>& flags,
                                                   const IndependenceParams& params) {
    if (flags.empty()) throw InvalidInput("independence_check: flags is empty");
    if (params.n_permutations < 1) throw InvalidInput("independence_check: n_permutations must be >= 1");
    std::size_t max_len = 0;
    std::vector<std::size_t> run(flags.size());  // n_pre of each sample
    for (std::size_t i = 0; i < flags.size(); ++i) {
        max_len = std::max(max_len, flags[i].size());
        const auto zero = std::find(flags[i].begin(), flags[i].end(), 0);
        run[i] = static_cast<std::size_t>(zero - flags[i].begin());
    }
    // Tables for every position in one pass over the flags: O(sum L_i).
    // state[j][c][s], j = 0-based index of C_j's position.
    std::vector<std::array<std::array<std::int64_t, 2>, 2>> by_state(max_len), by_prev(max_len);
    for (auto& t : by_state) t = {};
    for (auto& t : by_prev) t = {};
    for (std::size_t i = 0; i < flags.size(); ++i) {
        for (std::size_t j = 1; j < flags[i].size(); ++j) {
            const int c = flags[i][j] ? 1 : 0;
            const int survived = run[i] >= j ? 1 : 0;  // c_1..c_{j} (1-based) all 1
            const int prev = flags[i][j - 1] ? 1 : 0;
            ++by_state[j][c][survived];
            ++by_prev[j][c][prev];
        }
    }
    std::mt19937_64 rng(params.seed);
    std::vector<PositionDependence> out;
    for (std::size_t j = 1; j < max_len; ++j) {
        PositionDependence d;
        d.position = static_cast<std::int64_t>(j + 1);
        const std::int64_t s[2][2] = {{by_state[j][0][0], by_state[j][0][1]},
                                      {by_state[j][1][0], by_state[j][1][1]}};
        const std::int64_t p[2][2] = {{by_prev[j][0][0], by_prev[j][0][1]},
                                      {by_prev[j][1][0], by_prev[j][1][1]}};
        d.n_samples = s[0][0] + s[0][1] + s[1][0] + s[1][1];
        const TestResult ts = permutation_test(s, params.n_permutations, rng);
        const TestResult tp = permutation_test(p, params.n_permutations, rng);
        d.mi_state_bits = ts.mi;
        d.p_value_state = ts.p_mc;
        d.p_value_state_exact = ts.p_exact;
        d.mi_previous_bits = tp.mi;
        d.p_value_previous = tp.p_mc;
        d.p_value_previous_exact = tp.p_exact;
        out.push_back(d);
    }
    return out;
}

}  // namespace memskew::stats
