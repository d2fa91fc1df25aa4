#include "util/row-kernels.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "util/bf16.h"

// One copy per instruction set, chosen at load time (GCC function multiversioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MEMSKEW_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MEMSKEW_CLONES
#endif

namespace memskew::rows {

namespace {

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_float(p[i]); }
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) { p[i] = float_to_bf16(v); }
// The value as the compute dtype holds it (identity for fp32).
inline float round_to(const float*, float v) { return v; }
inline float round_to(const uint16_t*, float v) { return bf16_to_float(float_to_bf16(v)); }

// e^x for vectorised loops: Cephes' expf (e^x = 2^n e^r, |r| <= ln2/2, e^r by
// a degree-7 polynomial), relative error below 2 ulp; 0 below -87.3 (so
// e^-inf = 0), +inf above 88.72 (where float overflows); NaN stays NaN.
inline float exp_approx(float x) {
    float c = x < -87.33654f ? -87.33654f : x;
    c = c > 88.0f ? 88.0f : c;
    const float fx = c * 1.44269504088896341f + 0.5f;
    int32_t n = static_cast<int32_t>(fx);
    n -= fx < static_cast<float>(n) ? 1 : 0;  // floor
    const float fn = static_cast<float>(n);
    const float r = c - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = p * r * r + r + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    // Overflow and underflow as arithmetic, not branches, so the loops using
    // this vectorise: a factor of +inf (bits 0x7F800000) above 88.72, else 1;
    // times 0 below -87.3 (and for -inf), times 1 otherwise (NaN stays NaN).
    const uint32_t factor_bits = UINT32_C(0x3F800000) + static_cast<uint32_t>(x > 88.72283f) * UINT32_C(0x40000000);
    float factor;
    std::memcpy(&factor, &factor_bits, sizeof factor);
    return er * scale * factor * static_cast<float>(!(x < -87.33654f));
}

template <class T>
inline __attribute__((always_inline)) void rms_norm_impl(const T* x, const T* w, T* y, int64_t n_rows, int64_t d,
                                                          float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const T* xr = x + r * d;
        T* yr = y + r * d;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t i = 0; i < d; ++i) {
            const float v = load(xr, i);
            ss += v * v;
        }
        const float scale = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
#pragma omp simd
        for (int64_t i = 0; i < d; ++i) store(yr, i, load(w, i) * round_to(x, load(xr, i) * scale));
    }
}

template <class T>
inline __attribute__((always_inline)) void add_rms_norm_impl(T* h, const T* delta, const T* w, T* y, int64_t n_rows,
                                                              int64_t d, float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        T* hr = h + r * d;
        const T* dr = delta + r * d;
        T* yr = y + r * d;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t i = 0; i < d; ++i) {
            const float v = round_to(h, load(hr, i) + load(dr, i));
            store(hr, i, v);
            ss += v * v;
        }
        const float scale = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
#pragma omp simd
        for (int64_t i = 0; i < d; ++i) store(yr, i, load(w, i) * round_to(h, load(hr, i) * scale));
    }
}

template <class T>
inline __attribute__((always_inline)) void rotary_impl(const T* x, const float* cos, const float* sin, T* y,
                                                        int64_t hd, int64_t rot) {
    const int64_t half = rot / 2;
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
        const float a = load(x, i), b = load(x, i + half);
        store(y, i, a * cos[i] - b * sin[i]);
        store(y, i + half, b * cos[i + half] + a * sin[i + half]);
    }
    for (int64_t i = rot; i < hd; ++i) y[i] = x[i];
}

template <class T>
inline __attribute__((always_inline)) RowMax max_scan_impl(const T* z, float* out, int64_t n, float ref) {
    float m = -std::numeric_limits<float>::infinity();
    int64_t greater = 0, nan = 0;
#pragma omp simd reduction(max : m) reduction(+ : greater, nan)
    for (int64_t i = 0; i < n; ++i) {
        const float v = load(z, i);
        out[i] = v;
        m = v > m ? v : m;
        greater += v > ref;
        nan += v != v;
    }
    if (nan) {
        for (int64_t i = 0; i < n; ++i)
            if (out[i] != out[i]) return {std::numeric_limits<float>::quiet_NaN(), i, greater};
    }
    int64_t arg = 0;
    while (arg < n && out[arg] != m) ++arg;
    return {m, arg, greater};
}

template <class T>
inline __attribute__((always_inline)) void silu_mul_impl(T* gate, const T* up, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const float g = load(gate, i);
        // silu rounded to the compute dtype first, as silu(gate) * up in two ops.
        const float s = round_to(gate, g / (1.0f + exp_approx(-g)));
        store(gate, i, s * load(up, i));
    }
}

template <class T>
inline __attribute__((always_inline)) void softmax_impl(const T* in, T* out, int64_t n_visible, int64_t n,
                                                         float scale, float* buf) {
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n_visible; ++i) {
        const float v = load(in, i) * scale;
        buf[i] = v;
        m = v > m ? v : m;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n_visible; ++i) {
        const float e = exp_approx(buf[i] - m);
        buf[i] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t i = 0; i < n_visible; ++i) store(out, i, buf[i] * inv);
    for (int64_t i = n_visible; i < n; ++i) store(out, i, 0.0f);
}

// d(scale * s) of y = softmax: scale * y * (g - sum(g y)) over the visible
// prefix, 0 beyond it.
template <class T>
inline __attribute__((always_inline)) void softmax_backward_impl(const T* y, const T* g, T* out, int64_t n_visible,
                                                                  int64_t n, float scale) {
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n_visible; ++i) dot += load(g, i) * load(y, i);
#pragma omp simd
    for (int64_t i = 0; i < n_visible; ++i) store(out, i, scale * load(y, i) * (load(g, i) - dot));
    for (int64_t i = n_visible; i < n; ++i) store(out, i, 0.0f);
}

}  // namespace

MEMSKEW_CLONES void silu_mul_f32(float* gate, const float* up, int64_t n) { silu_mul_impl(gate, up, n); }
MEMSKEW_CLONES void silu_mul_bf16(uint16_t* gate, const uint16_t* up, int64_t n) { silu_mul_impl(gate, up, n); }

template <class T>
inline __attribute__((always_inline)) void silu_mul_backward_impl(const T* g, const T* u, const T* grad, T* dg, T* du,
                                                                   int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const float gv = load(g, i), gr = load(grad, i);
        const float s = 1.0f / (1.0f + exp_approx(-gv));
        store(du, i, gr * round_to(g, gv * s));
        store(dg, i, gr * load(u, i) * s * (1.0f + gv * (1.0f - s)));
    }
}

MEMSKEW_CLONES void silu_mul_backward_f32(const float* g, const float* u, const float* grad, float* dg, float* du,
                                          int64_t n) {
    silu_mul_backward_impl(g, u, grad, dg, du, n);
}
MEMSKEW_CLONES void silu_mul_backward_bf16(const uint16_t* g, const uint16_t* u, const uint16_t* grad, uint16_t* dg,
                                           uint16_t* du, int64_t n) {
    silu_mul_backward_impl(g, u, grad, dg, du, n);
}

MEMSKEW_CLONES void causal_softmax_f32(const float* in, float* out, int64_t n_visible, int64_t n, float scale,
                                       float* buf) {
    softmax_impl(in, out, n_visible, n, scale, buf);
}
MEMSKEW_CLONES void causal_softmax_bf16(const uint16_t* in, uint16_t* out, int64_t n_visible, int64_t n, float scale,
                                        float* buf) {
    softmax_impl(in, out, n_visible, n, scale, buf);
}
MEMSKEW_CLONES void causal_softmax_backward_f32(const float* y, const float* g, float* out, int64_t n_visible,
                                                int64_t n, float scale) {
    softmax_backward_impl(y, g, out, n_visible, n, scale);
}
MEMSKEW_CLONES void causal_softmax_backward_bf16(const uint16_t* y, const uint16_t* g, uint16_t* out,
                                                 int64_t n_visible, int64_t n, float scale) {
    softmax_backward_impl(y, g, out, n_visible, n, scale);
}

namespace {
inline uint32_t mix32(uint32_t h) {  // murmur3's fmix32
    h ^= h >> 16;
    h *= UINT32_C(0x85EBCA6B);
    h ^= h >> 13;
    h *= UINT32_C(0xC2B2AE35);
    h ^= h >> 16;
    return h;
}

// The mask's two key words and threshold from (seed, p).
struct MaskKey {
    uint32_t k0, k1, threshold;
    MaskKey(uint64_t seed, float p)
        : k0(mix32(static_cast<uint32_t>(seed) ^ UINT32_C(0x9E3779B9))),
          k1(mix32(static_cast<uint32_t>(seed >> 32) + UINT32_C(0x7F4A7C15))),
          threshold(static_cast<uint32_t>(static_cast<double>(p) * 16777216.0)) {}  // p * 2^24
    // scale when element `idx` is kept, else 0.
    inline __attribute__((always_inline)) float at(int64_t index, float scale) const {
        const uint64_t idx = static_cast<uint64_t>(index);
        const uint32_t h = mix32(mix32(static_cast<uint32_t>(idx) ^ k0) + (static_cast<uint32_t>(idx >> 32) ^ k1));
        return (h >> 8) >= threshold ? scale : 0.0f;
    }
};
}  // namespace

MEMSKEW_CLONES void dropout_mask_f32(float* out, int64_t n, uint64_t seed, int64_t offset, float p, float scale) {
    const MaskKey key(seed, p);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = key.at(offset + i, scale);
}

template <class T>
inline __attribute__((always_inline)) void dropout_to_f32_impl(const T* x, float* out, int64_t n, uint64_t seed,
                                                               int64_t offset, float p, float scale) {
    if (p == 0.0f && scale == 1.0f) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) out[i] = load(x, i);
        return;
    }
    const MaskKey key(seed, p);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = key.at(offset + i, scale) * load(x, i);
}

MEMSKEW_CLONES void dropout_to_f32(const float* x, float* out, int64_t n, uint64_t seed, int64_t offset, float p,
                                   float scale) {
    dropout_to_f32_impl(x, out, n, seed, offset, p, scale);
}
MEMSKEW_CLONES void dropout_to_f32(const uint16_t* x, float* out, int64_t n, uint64_t seed, int64_t offset, float p,
                                   float scale) {
    dropout_to_f32_impl(x, out, n, seed, offset, p, scale);
}

template <class T>
inline __attribute__((always_inline)) void add_dropout_impl(T* y, const float* d, int64_t n, uint64_t seed,
                                                            int64_t offset, float p, float scale) {
    if (p == 0.0f && scale == 1.0f) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) store(y, i, load(y, i) + d[i]);
        return;
    }
    const MaskKey key(seed, p);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) store(y, i, load(y, i) + key.at(offset + i, scale) * d[i]);
}

MEMSKEW_CLONES void add_dropout_f32(float* y, const float* d, int64_t n, uint64_t seed, int64_t offset, float p,
                                    float scale) {
    add_dropout_impl(y, d, n, seed, offset, p, scale);
}
MEMSKEW_CLONES void add_dropout_f32(uint16_t* y, const float* d, int64_t n, uint64_t seed, int64_t offset, float p,
                                    float scale) {
    add_dropout_impl(y, d, n, seed, offset, p, scale);
}

template <class T>
inline __attribute__((always_inline)) void softmax_grad_impl(const T* z, T* out, int64_t n, float lse, float scale) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) store(out, i, scale * exp_approx(load(z, i) - lse));
}

MEMSKEW_CLONES void softmax_grad_f32(const float* z, float* out, int64_t n, float lse, float scale) {
    softmax_grad_impl(z, out, n, lse, scale);
}
MEMSKEW_CLONES void softmax_grad_bf16(const uint16_t* z, uint16_t* out, int64_t n, float lse, float scale) {
    softmax_grad_impl(z, out, n, lse, scale);
}

MEMSKEW_CLONES void exp_of(const float* x, float* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = exp_approx(x[i]);
}

MEMSKEW_CLONES void rms_norm_f32(const float* x, const float* w, float* y, int64_t n_rows, int64_t d, float eps) {
    rms_norm_impl(x, w, y, n_rows, d, eps);
}
MEMSKEW_CLONES void rms_norm_bf16(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t n_rows, int64_t d,
                                  float eps) {
    rms_norm_impl(x, w, y, n_rows, d, eps);
}

MEMSKEW_CLONES void add_rms_norm_f32(float* h, const float* delta, const float* w, float* y, int64_t n_rows, int64_t d,
                                     float eps) {
    add_rms_norm_impl(h, delta, w, y, n_rows, d, eps);
}
MEMSKEW_CLONES void add_rms_norm_bf16(uint16_t* h, const uint16_t* delta, const uint16_t* w, uint16_t* y, int64_t n_rows,
                                      int64_t d, float eps) {
    add_rms_norm_impl(h, delta, w, y, n_rows, d, eps);
}

MEMSKEW_CLONES void rotary_f32(const float* x, const float* cos, const float* sin, float* y, int64_t hd, int64_t rot) {
    rotary_impl(x, cos, sin, y, hd, rot);
}
MEMSKEW_CLONES void rotary_bf16(const uint16_t* x, const float* cos, const float* sin, uint16_t* y, int64_t hd,
                                int64_t rot) {
    rotary_impl(x, cos, sin, y, hd, rot);
}

MEMSKEW_CLONES RowMax max_scan_f32(const float* z, float* out, int64_t n, float ref) {
    return max_scan_impl(z, out, n, ref);
}
MEMSKEW_CLONES RowMax max_scan_bf16(const uint16_t* z, float* out, int64_t n, float ref) {
    return max_scan_impl(z, out, n, ref);
}

MEMSKEW_CLONES void subtract(float* d, int64_t n, float m) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] -= m;
}

MEMSKEW_CLONES ExpSums exp_sums(const float* d, const float* e, int64_t n) {
    double s = 0, a = 0, b = 0;
#pragma omp simd reduction(+ : s, a, b)
    for (int64_t i = 0; i < n; ++i) {
        const double ei = e[i];
        const double di = ei > 0 ? static_cast<double>(d[i]) : 0.0;
        s += ei;
        a += ei * di;
        b += ei * di * di;
    }
    return {s, a, b};
}

double RowSoftmax::log_sum_exp() const { return static_cast<double>(max.max) + std::log(sums.s); }

namespace {
// Passes 2 and 3 after max_scan has filled d with the row.
RowSoftmax finish_row(RowMax m, float target_logit, int64_t n, float* d, float* e) {
    subtract(d, n, m.max);
    exp_of(d, e, n);
    return {m, exp_sums(d, e, n), target_logit};
}
}  // namespace

RowSoftmax softmax_row_f32(const float* z, int64_t n, int64_t target, float* d, float* e) {
    const float ref = z[target];
    return finish_row(max_scan_f32(z, d, n, ref), ref, n, d, e);
}
RowSoftmax softmax_row_bf16(const uint16_t* z, int64_t n, int64_t target, float* d, float* e) {
    const float ref = bf16_to_float(z[target]);
    return finish_row(max_scan_bf16(z, d, n, ref), ref, n, d, e);
}

}  // namespace memskew::rows
