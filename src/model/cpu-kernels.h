// Fused CPU kernels: each replaces a chain of LibTorch operations that would
// pass over the activations several times with one pass per row (or element
// block), parallel over rows. Without gradients the layers call the plain
// kernels (see fused_ok); in training they call the *_autograd versions (and
// lora_linear), whose backward passes are fused the same way. Other devices
// and dtypes fall back to the plain LibTorch expressions (as does everything
// after set_fused_enabled(false)). Both paths compute
// the same formula in the same precision (fp32 accumulation, one rounding to
// the compute dtype); they differ only by summation order and where a bf16
// rounding happens (tests/model/test-kernels bounds the difference).
#pragma once

#include <torch/torch.h>

namespace memskew::kernels {

// True when `x` (and the optional `w`) are CPU fp32/bf16 tensors of one
// dtype: what every kernel here takes (the *_autograd ones in training), and
// the fused kernels are enabled.
bool supported(const torch::Tensor& x, const torch::Tensor& w = torch::Tensor());

// Process-wide switch, on by default. Off, supported() (and so fused_ok() and
// lora_linear_ok()) answers false and every layer takes the plain LibTorch
// expressions a GPU takes: tests/model/test-device compares the two paths on
// the CPU. MEMSKEW_GENERIC_KERNELS=1 in the environment turns it off at
// start-up. Not meant to change while models run.
void set_fused_enabled(bool enabled);
bool fused_enabled();

// supported(), and no gradient flows through them: the inference kernels.
bool fused_ok(const torch::Tensor& x, const torch::Tensor& w = torch::Tensor());

// Hugging Face LlamaRMSNorm over the last dim: y = w * to_dtype(x * rsqrt(mean(x^2) + eps)),
// the normalisation in fp32. x [..., D] (any layout with unit last stride), w [D].
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps);

// rotary() with autograd: the backward pass is the inverse rotation, i.e.
// rotary(grad, cos, -sin), exact when the tables repeat over the two halves
// (cos[i] == cos[i + rot/2], as Rotary builds them). For training.
torch::Tensor rotary_autograd(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                              int64_t rotary_dim);

// rms_norm() with autograd (backward in fp32 LibTorch ops: with n = x r,
// r = rsqrt(mean(x^2) + eps) and gw = grad * w, dx = r (gw - n mean(gw n)),
// dw = sum of grad * round(n)). For training.
torch::Tensor rms_norm_autograd(const torch::Tensor& x, const torch::Tensor& w, double eps);

// Sum over rows of the cross-entropy log-sum-exp(z) - z[target] of logits
// [N, V] (fp32 or bf16, computed in fp32), with autograd: the gradient
// (softmax - one-hot) * grad is written straight in the logits' dtype. As
// cross_entropy(logits.float(), targets, reduction sum), without the fp32
// copy of the logits and its backward.
torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& targets);

// h += delta in place (contiguous, same shape and dtype), then rms_norm(h, w).
// One pass instead of an add and a norm.
torch::Tensor add_rms_norm_(torch::Tensor& h, const torch::Tensor& delta, const torch::Tensor& w, double eps);

// Rotary (Hugging Face layout: pairs (i, i + rot/2)) applied to the first
// rotary_dim dims of x [B, H, T, hd] (any strides with a unit last stride),
// with cos/sin [B, 1, T, rotary_dim] fp32 contiguous; the remaining dims are
// copied. Computed in fp32, rounded once. Returns a contiguous [B, H, T, hd].
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t rotary_dim);

// silu(gate) * up written into gate (contiguous, same shape and dtype as up),
// rounded as the two separate ops would be. Returns gate.
torch::Tensor silu_mul_(torch::Tensor gate, const torch::Tensor& up);

// silu(gate) * up with autograd (forward: the silu_mul_ kernel into a new
// tensor; backward: one fused pass for both gradients). For training.
torch::Tensor silu_mul_autograd(const torch::Tensor& gate, const torch::Tensor& up);

// In place over scores [B, G, T, S] (contiguous; G any number of heads):
// row (b, g, t) becomes softmax(scale * scores[b, g, t, 0..n)) with
// n = n_visible[b, t] (int64 [B, T]), and 0 beyond n.
void prefix_softmax_(torch::Tensor& scores, const torch::Tensor& n_visible, double scale);

// prefix_softmax_() out of place, with autograd (backward: one fused pass per
// row, scale * y * (g - sum(g y)) over the visible prefix). For training.
torch::Tensor prefix_softmax_autograd(const torch::Tensor& scores, const torch::Tensor& n_visible, double scale);

// A linear layer with a LoRA adapter, as PEFT's lora.Linear with fp32
// factors (autocast_adapter_dtype): y = round(base(x) + scaling *
// dropout(x) A^T B^T), base(x) = x W^T + bias (x W + bias in GPT-2's Conv1D
// layout) in x's dtype, the adapter path in fp32 with one rounding of the sum.
// A [r, in], B [out, r] fp32; dropout (0 outside training) uses
// dropout_mask's hash, so with one generator state it drops the same
// elements as `x * dropout_mask(x, p)`. Forward and backward each pass over
// the activations once for the cast-with-mask and once for the masked add
// (the plain LibTorch expression needs about seven passes each way). The
// base weight and bias get no gradient: see lora_linear_ok.
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          bool conv1d_layout, const torch::Tensor& a, const torch::Tensor& b, double scaling,
                          double dropout);

// What lora_linear takes: CPU x/weight/bias fp32 or bf16 of one dtype, fp32
// factors, and no gradient wanted for the base weight or bias.
bool lora_linear_ok(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                    const torch::Tensor& a, const torch::Tensor& b);

// A dropout mask shaped like x (fp32, contiguous, on x's device; drawn on the
// CPU, so every device drops the same elements): 1/(1-p) with probability
// 1-p, else 0, from a counter-based hash seeded by LibTorch's default
// generator (so torch::manual_seed makes it reproducible; p == 0 draws
// nothing). Multiplying by it is dropout; autograd sees a product with a
// constant. Far faster than bernoulli_ on a CPU build without MKL.
torch::Tensor dropout_mask(const torch::Tensor& x, double p);

// Attention (with the fused softmax) processes queries in chunks whose score matrices hold
// at most about this many entries (default 2^24; tests lower it to exercise
// the chunking). Not thread-safe to change while models run.
int64_t& attention_score_budget();

}  // namespace memskew::kernels
