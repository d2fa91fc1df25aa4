// Row loops behind the fused inference kernels (src/model/cpu-kernels.cpp,
// src/engine/engine.cpp): plain C++ over raw pointers, free of LibTorch, built
// with -O3 -fopenmp-simd and cloned for AVX-512 / AVX2 / baseline x86-64 (the
// best one is picked at load time), so they vectorize on every machine.
// Callers own threading (one call per row or block of rows).
//
// bf16 data is passed as uint16_t bit patterns (see util/bf16.h).
#pragma once

#include <cstdint>

namespace memskew::rows {

// Hugging Face LlamaRMSNorm on `n_rows` contiguous rows of length d:
// y = w * round(x * rsqrt(mean(x^2) + eps)), the normalisation in fp32 and,
// for bf16, rounded to bf16 before the (bf16) product with w.
void rms_norm_f32(const float* x, const float* w, float* y, int64_t n_rows, int64_t d, float eps);
void rms_norm_bf16(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t n_rows, int64_t d, float eps);

// The residual update h += delta (rounded to the dtype) followed by the
// RMSNorm of the updated rows into y, as rms_norm_* above.
void add_rms_norm_f32(float* h, const float* delta, const float* w, float* y, int64_t n_rows, int64_t d, float eps);
void add_rms_norm_bf16(uint16_t* h, const uint16_t* delta, const uint16_t* w, uint16_t* y, int64_t n_rows, int64_t d,
                       float eps);

// Rotary on one head vector x[0..hd) into y: for i < rot/2,
//   y[i]         = x[i] cos[i] - x[i + rot/2] sin[i]
//   y[i + rot/2] = x[i + rot/2] cos[i + rot/2] + x[i] sin[i + rot/2]
// in fp32; y[rot..hd) = x[rot..hd).
void rotary_f32(const float* x, const float* cos, const float* sin, float* y, int64_t hd, int64_t rot);
void rotary_bf16(const uint16_t* x, const float* cos, const float* sin, uint16_t* y, int64_t hd, int64_t rot);

// gate[i] = round(silu(gate[i])) * up[i], silu(g) = g / (1 + e^-g), in fp32,
// rounded to the dtype after the silu and after the product (as two ops).
void silu_mul_f32(float* gate, const float* up, int64_t n);
void silu_mul_bf16(uint16_t* gate, const uint16_t* up, int64_t n);

// Backward of gate_out = round(silu(g)) * u: du = grad * silu(g),
// dg = grad * u * silu'(g), silu'(g) = s (1 + g (1 - s)), s = sigmoid(g); in
// fp32, each stored in the dtype.
void silu_mul_backward_f32(const float* g, const float* u, const float* grad, float* dg, float* du, int64_t n);
void silu_mul_backward_bf16(const uint16_t* g, const uint16_t* u, const uint16_t* grad, uint16_t* dg, uint16_t* du,
                            int64_t n);

// out[0..n_visible) = softmax of scale * in[0..n_visible) (fp32 arithmetic),
// out[n_visible..n) = 0 (keys the query may not see). `in` and `out` may be
// the same row (in place). buf: n floats of scratch. n_visible >= 1.
void causal_softmax_f32(const float* in, float* out, int64_t n_visible, int64_t n, float scale, float* buf);
void causal_softmax_bf16(const uint16_t* in, uint16_t* out, int64_t n_visible, int64_t n, float scale, float* buf);
// Its gradient: given y (the softmax row) and g (the gradient of y), out =
// scale * y * (g - sum(g y)) over [0, n_visible), 0 beyond (fp32 arithmetic).
void causal_softmax_backward_f32(const float* y, const float* g, float* out, int64_t n_visible, int64_t n,
                                 float scale);
void causal_softmax_backward_bf16(const uint16_t* y, const uint16_t* g, uint16_t* out, int64_t n_visible, int64_t n,
                                  float scale);

// y[i] = e^x[i] (relative error below 2 ulp; e^x = 0 for x < -87.3).
void exp_of(const float* x, float* y, int64_t n);

// Dropout mask: out[i] = scale where a counter-based hash of (seed, offset + i)
// gives u >= p (u uniform in [0, 1) on 24 bits), else 0; so the mask of an
// element depends only on the seed and its index (any split into calls gives
// the same mask). A murmur3-style mix of 32-bit words, vectorisable.
void dropout_mask_f32(float* out, int64_t n, uint64_t seed, int64_t offset, float p, float scale);

// The same mask applied in passing, for LoRA's fp32 adapter path:
// out[i] = mask(seed, offset + i) * x[i] as fp32 (x fp32 or bf16). With
// p == 0 and scale == 1 it is a plain cast.
void dropout_to_f32(const float* x, float* out, int64_t n, uint64_t seed, int64_t offset, float p, float scale);
void dropout_to_f32(const uint16_t* x, float* out, int64_t n, uint64_t seed, int64_t offset, float p, float scale);

// y[i] = round(y[i] + mask(seed, offset + i) * d[i]) in place, the sum in
// fp32 and rounded once to y's dtype. p == 0, scale == 1: y += d.
void add_dropout_f32(float* y, const float* d, int64_t n, uint64_t seed, int64_t offset, float p, float scale);
void add_dropout_f32(uint16_t* y, const float* d, int64_t n, uint64_t seed, int64_t offset, float p, float scale);

// out[i] = scale * e^(z[i] - lse) for one row: the gradient of a row's
// cross-entropy (before subtracting scale at the target), in fp32, stored in
// the row's dtype.
void softmax_grad_f32(const float* z, float* out, int64_t n, float lse, float scale);
void softmax_grad_bf16(const uint16_t* z, uint16_t* out, int64_t n, float lse, float scale);

// Pass 1 of the per-token statistics over one row of logits z[0..n): copies
// z to `out` as fp32 and returns its maximum, the first index holding it, and
// how many entries exceed `ref`. A NaN anywhere makes the maximum NaN and the
// index that of the first NaN (as torch::max). n >= 1.
struct RowMax {
    float max;
    int64_t argmax;
    int64_t n_greater;
};
RowMax max_scan_f32(const float* z, float* out, int64_t n, float ref);
RowMax max_scan_bf16(const uint16_t* z, float* out, int64_t n, float ref);

// d[i] -= m, in place.
void subtract(float* d, int64_t n, float m);

// Pass 3, with e = exp(d): S = sum e, A = sum e d, B = sum e d^2 (double
// accumulation; terms with e == 0 are skipped, so d = -inf adds nothing).
struct ExpSums {
    double s, a, b;
};
ExpSums exp_sums(const float* d, const float* e, int64_t n);

// The three passes above for one row of logits z[0..n) against a target
// index: RowMax (against z[target]), then d = z - max into `d`, e = e^d into
// `e`, and their sums. d and e: n floats of scratch each. The log-sum-exp of
// the row is max + log(sums.s).
struct RowSoftmax {
    RowMax max;
    ExpSums sums;
    float target_logit;
    double log_sum_exp() const;
};
RowSoftmax softmax_row_f32(const float* z, int64_t n, int64_t target, float* d, float* e);
RowSoftmax softmax_row_bf16(const uint16_t* z, int64_t n, int64_t target, float* d, float* e);

}  // namespace memskew::rows
