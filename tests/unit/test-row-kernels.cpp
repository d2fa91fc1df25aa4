// The fused inference kernels' row loops (src/util/row-kernels.h) against
// double-precision loops written here from the formulas (Hugging Face
// LlamaRMSNorm, rotate_half rotary, SiLU, softmax, log-sum-exp statistics).
// Tolerances: fp32 results within a few ulp of the double reference; bf16
// results within one bf16 rounding (at most 2^-8 relative) of the reference
// for one rounding, two for two roundings (an fp32 intermediate may round on
// the other side of a tie than the double reference does).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "util/bf16.h"
#include "util/row-kernels.h"

namespace memskew {
namespace {

std::vector<float> random_floats(size_t n, float scale, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]);
    return out;
}

// |a - b| measured in bf16 steps of b's magnitude (2^-8 relative, 2^-133 floor).
double bf16_steps(float a, double b) {
    const double step = std::max(std::abs(b) * std::ldexp(1.0, -8), std::ldexp(1.0, -133));
    return std::abs(static_cast<double>(a) - b) / step;
}

TEST(Bf16, RoundsToNearestEvenAsLibTorch) {
    EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(float_to_bf16(-2.5f), 0xC020);
    uint32_t u = 0x3F808000u;  // exactly halfway between 0x3F80 and 0x3F81: to even
    float f;
    std::memcpy(&f, &u, 4);
    EXPECT_EQ(float_to_bf16(f), 0x3F80);
    u = 0x3F818000u;  // halfway between 0x3F81 and 0x3F82: to even
    std::memcpy(&f, &u, 4);
    EXPECT_EQ(float_to_bf16(f), 0x3F82);
    EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
    EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
    EXPECT_EQ(bf16_to_float(0xC020), -2.5f);
}

TEST(RowKernels, ExpWithinTwoUlp) {
    std::vector<float> x, y;
    for (float v = -87.0f; v <= 88.0f; v += 0.01371f) x.push_back(v);
    x.push_back(100.0f);
    x.push_back(0.0f);
    x.push_back(-std::numeric_limits<float>::infinity());
    x.push_back(-100.0f);
    y.resize(x.size());
    rows::exp_of(x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i + 4 < x.size(); ++i) {
        const double ref = std::exp(static_cast<double>(x[i]));
        const double ulp = std::ldexp(1.0, std::ilogb(ref) - 23);
        ASSERT_LE(std::abs(y[i] - ref), 2.0 * ulp) << "exp(" << x[i] << ")";
    }
    EXPECT_EQ(y[x.size() - 4], std::numeric_limits<float>::infinity());  // overflow
    EXPECT_EQ(y[x.size() - 3], 1.0f);                                    // e^0
    EXPECT_EQ(y[x.size() - 2], 0.0f);  // e^-inf
    EXPECT_EQ(y[x.size() - 1], 0.0f);  // below the normal range: 0
}

TEST(RowKernels, RmsNormMatchesTheFormula) {
    const int64_t rows_n = 5, d = 96;
    const float eps = 1e-5f;
    const auto x = random_floats(rows_n * d, 3.0f, 1);
    const auto w = random_floats(d, 1.0f, 2);
    std::vector<float> y(x.size());
    rows::rms_norm_f32(x.data(), w.data(), y.data(), rows_n, d, eps);
    const auto xb = to_bf16(x), wb = to_bf16(w);
    std::vector<uint16_t> yb(x.size());
    rows::rms_norm_bf16(xb.data(), wb.data(), yb.data(), rows_n, d, eps);
    for (int64_t r = 0; r < rows_n; ++r) {
        double ss = 0, ssb = 0;
        for (int64_t i = 0; i < d; ++i) {
            ss += static_cast<double>(x[r * d + i]) * x[r * d + i];
            const double xv = bf16_to_float(xb[r * d + i]);
            ssb += xv * xv;
        }
        const double scale = 1.0 / std::sqrt(ss / d + eps), scale_b = 1.0 / std::sqrt(ssb / d + eps);
        for (int64_t i = 0; i < d; ++i) {
            const double ref = w[i] * x[r * d + i] * scale;
            EXPECT_NEAR(y[r * d + i], ref, 1e-5 * (1.0 + std::abs(ref))) << r << "," << i;
            // bf16: w * bf16(x * scale), each product rounded to bf16.
            const double inner = bf16_to_float(float_to_bf16(static_cast<float>(bf16_to_float(xb[r * d + i]) * scale_b)));
            const double ref_b = bf16_to_float(wb[i]) * inner;
            EXPECT_LE(bf16_steps(bf16_to_float(yb[r * d + i]), ref_b), 2.0) << r << "," << i;
        }
    }
}

TEST(RowKernels, AddRmsNormUpdatesTheResidualThenNormalises) {
    const int64_t rows_n = 3, d = 64;
    const float eps = 1e-6f;
    const auto h0 = random_floats(rows_n * d, 2.0f, 21);
    const auto delta = random_floats(rows_n * d, 0.5f, 22);
    const auto w = random_floats(d, 1.0f, 23);
    auto h = h0;
    std::vector<float> y(h.size());
    rows::add_rms_norm_f32(h.data(), delta.data(), w.data(), y.data(), rows_n, d, eps);
    for (int64_t r = 0; r < rows_n; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < d; ++i) {
            const float v = h0[r * d + i] + delta[r * d + i];
            EXPECT_EQ(h[r * d + i], v);  // one fp32 addition, as h + delta
            ss += static_cast<double>(v) * v;
        }
        const double scale = 1.0 / std::sqrt(ss / d + eps);
        for (int64_t i = 0; i < d; ++i)
            EXPECT_NEAR(y[r * d + i], w[i] * h[r * d + i] * scale, 1e-5 * (1.0 + std::abs(y[r * d + i])));
    }
    // bf16: the sum rounded to bf16, then the norm of the rounded values.
    auto hb = to_bf16(h0);
    const auto db = to_bf16(delta), wb = to_bf16(w);
    const auto hb0 = hb;
    std::vector<uint16_t> yb(hb.size()), want(hb.size());
    rows::add_rms_norm_bf16(hb.data(), db.data(), wb.data(), yb.data(), rows_n, d, eps);
    std::vector<uint16_t> sum(hb.size());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = float_to_bf16(bf16_to_float(hb0[i]) + bf16_to_float(db[i]));
    EXPECT_EQ(hb, sum);
    rows::rms_norm_bf16(sum.data(), wb.data(), want.data(), rows_n, d, eps);
    EXPECT_EQ(yb, want);
}

TEST(RowKernels, RotaryRotatesPairsAndCopiesTheRest) {
    const int64_t hd = 12, rot = 8, half = rot / 2;
    const auto x = random_floats(hd, 1.0f, 3);
    std::vector<float> cos(rot), sin(rot);
    for (int64_t i = 0; i < rot; ++i) {
        const double angle = 7.0 * std::pow(10000.0, -2.0 * (i % half) / rot);  // position 7
        cos[i] = static_cast<float>(std::cos(angle));
        sin[i] = static_cast<float>(std::sin(angle));
    }
    std::vector<float> y(hd);
    rows::rotary_f32(x.data(), cos.data(), sin.data(), y.data(), hd, rot);
    for (int64_t i = 0; i < half; ++i) {
        // rotate_half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
        EXPECT_NEAR(y[i], x[i] * cos[i] - x[i + half] * sin[i], 1e-6);
        EXPECT_NEAR(y[i + half], x[i + half] * cos[i + half] + x[i] * sin[i + half], 1e-6);
    }
    for (int64_t i = rot; i < hd; ++i) EXPECT_EQ(y[i], x[i]);
    // A rotation keeps each pair's length.
    for (int64_t i = 0; i < half; ++i)
        EXPECT_NEAR(std::hypot(y[i], y[i + half]), std::hypot(x[i], x[i + half]), 1e-5);
    const auto xb = to_bf16(x);
    std::vector<uint16_t> yb(hd);
    rows::rotary_bf16(xb.data(), cos.data(), sin.data(), yb.data(), hd, rot);
    for (int64_t i = 0; i < half; ++i) {
        const double a = bf16_to_float(xb[i]), b = bf16_to_float(xb[i + half]);
        EXPECT_LE(bf16_steps(bf16_to_float(yb[i]), a * cos[i] - b * sin[i]), 1.0);
    }
    for (int64_t i = rot; i < hd; ++i) EXPECT_EQ(yb[i], xb[i]);
}

TEST(RowKernels, SiluMulMatchesTheFormula) {
    auto g = random_floats(300, 4.0f, 4);
    g.push_back(-120.0f);  // e^120 overflows to inf: silu -> -0
    g.push_back(120.0f);   // silu(x) -> x
    const auto u = random_floats(g.size(), 1.0f, 5);
    auto out = g;
    rows::silu_mul_f32(out.data(), u.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
        const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
        EXPECT_NEAR(out[i], ref, 1e-6 * (1.0 + std::abs(ref))) << "g = " << g[i];
    }
    auto gb = to_bf16(g);
    const auto ub = to_bf16(u);
    const auto g0 = gb;
    rows::silu_mul_bf16(gb.data(), ub.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
        const double gv = bf16_to_float(g0[i]);
        const double s = bf16_to_float(float_to_bf16(static_cast<float>(gv / (1.0 + std::exp(-gv)))));
        EXPECT_LE(bf16_steps(bf16_to_float(gb[i]), s * bf16_to_float(ub[i])), 2.0) << "g = " << gv;
    }
}

TEST(RowKernels, PrefixSoftmaxNormalisesTheVisibleKeys) {
    const int64_t n = 40;
    const float scale = 0.125f;
    for (int64_t visible : {1, 7, 40}) {
        auto row = random_floats(n, 20.0f, 6 + static_cast<uint32_t>(visible));
        const auto in = row;
        std::vector<float> buf(n);
        rows::causal_softmax_f32(row.data(), row.data(), visible, n, scale, buf.data());  // in place
        double m = -1e300, sum = 0;
        for (int64_t i = 0; i < visible; ++i) m = std::max(m, static_cast<double>(in[i]) * scale);
        for (int64_t i = 0; i < visible; ++i) sum += std::exp(in[i] * scale - m);
        double total = 0;
        for (int64_t i = 0; i < visible; ++i) {
            const double ref = std::exp(in[i] * scale - m) / sum;
            EXPECT_NEAR(row[i], ref, 1e-6 * (1.0 + ref)) << visible << "," << i;
            total += row[i];
        }
        EXPECT_NEAR(total, 1.0, 1e-5);
        for (int64_t i = visible; i < n; ++i) EXPECT_EQ(row[i], 0.0f);
        auto rb = to_bf16(in);
        rows::causal_softmax_bf16(rb.data(), rb.data(), visible, n, scale, buf.data());
        for (int64_t i = visible; i < n; ++i) EXPECT_EQ(rb[i], 0);
    }
}

TEST(RowKernels, MaxScanTakesTheFirstMaximumAndCountsAboveTheReference) {
    const std::vector<float> z = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f, 2.0f};
    std::vector<float> out(z.size());
    const auto m = rows::max_scan_f32(z.data(), out.data(), 6, 1.0f);
    EXPECT_EQ(m.max, 3.0f);
    EXPECT_EQ(m.argmax, 1);     // first of the tied maxima, as torch::argmax
    EXPECT_EQ(m.n_greater, 3);  // 3, 3, 2 exceed 1 (ties do not count)
    EXPECT_EQ(out, z);
    const auto zb = to_bf16(z);
    const auto mb = rows::max_scan_bf16(zb.data(), out.data(), 6, 1.0f);
    EXPECT_EQ(mb.argmax, 1);
    EXPECT_EQ(mb.n_greater, 3);
    EXPECT_EQ(out, z);  // all exactly representable in bf16

    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> zn = {1.0f, nan, 5.0f, nan};
    const auto mn = rows::max_scan_f32(zn.data(), out.data(), 4, 0.0f);
    EXPECT_TRUE(std::isnan(mn.max));
    EXPECT_EQ(mn.argmax, 1);  // the first NaN, as torch::max

    const float ninf = -std::numeric_limits<float>::infinity();
    const std::vector<float> zi = {ninf, -1.0f, ninf};
    const auto mi = rows::max_scan_f32(zi.data(), out.data(), 3, ninf);
    EXPECT_EQ(mi.max, -1.0f);
    EXPECT_EQ(mi.argmax, 1);
    EXPECT_EQ(mi.n_greater, 1);
}

// The statistics a caller builds from softmax_row (max_scan, subtract, exp_of,
// exp_sums), against a
// double-precision log-softmax written out here, on a row with a -inf entry.
TEST(RowKernels, ExpSumsGiveEntropyAndVarianceOfLogP) {
    auto z = random_floats(1000, 3.0f, 9);
    z[17] = -std::numeric_limits<float>::infinity();
    std::vector<float> d(z.size()), e(z.size());
    const int64_t n = static_cast<int64_t>(z.size());
    const auto row = rows::softmax_row_f32(z.data(), n, /*target=*/0, d.data(), e.data());
    const auto& m = row.max;
    const auto& s = row.sums;
    EXPECT_EQ(row.target_logit, z[0]);
    const double log_s = std::log(s.s), mean_d = s.a / s.s;
    const double entropy = log_s - mean_d, var = s.b / s.s - mean_d * mean_d;

    double zmax = -1e300;
    for (float v : z) zmax = std::max(zmax, static_cast<double>(v));
    double sum = 0;
    for (float v : z) sum += std::exp(v - zmax);
    const double lse = zmax + std::log(sum);
    double h = 0, e1 = 0, e2 = 0;
    for (float v : z) {
        const double lp = v - lse, p = std::exp(lp);
        if (p == 0) continue;
        h -= p * lp;
        e1 += p * lp;
        e2 += p * lp * lp;
    }
    EXPECT_NEAR(entropy, h, 1e-5 * h);
    EXPECT_NEAR(var, e2 - e1 * e1, 1e-5 * (e2 - e1 * e1));
    EXPECT_NEAR(1.0 / s.s, std::exp(zmax - lse), 1e-6);
    EXPECT_NEAR(z[0] - m.max - log_s, z[0] - lse, 1e-5);
    EXPECT_NEAR(row.log_sum_exp(), lse, 1e-5);
}

}  // namespace
}  // namespace memskew
