#include "model/cpu-kernels.h"

#include <ATen/Parallel.h>
#ifndef _OPENMP
// LibTorch's at::parallel_for (an inline template) runs serially unless the
// calling file is compiled with OpenMP; CMakeLists.txt links OpenMP for this.
#error "build with OpenMP (-fopenmp): at::parallel_for would run on one thread"
#endif

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "util/bf16.h"
#include "util/row-kernels.h"

namespace memskew::kernels {

namespace {

bool cpu_float_or_bf16(const torch::Tensor& t) {
    return t.device().is_cpu() && (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16);
}

const uint16_t* bf16_ptr(const torch::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }
uint16_t* bf16_ptr(torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

// A dropout mask as its hash key (rows::dropout_mask_f32): element i is kept,
// as `scale`, unless its hash falls below p. p == 0, scale == 1: keep all.
struct DropoutKey {
    uint64_t seed = 0;
    float p = 0.0f, scale = 1.0f;
};

// The key of a fresh mask of drop probability p: one draw from LibTorch's
// default generator (none for p == 0, so the generator's state moves only
// when something is dropped).
DropoutKey draw_dropout(double p) {
    TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
    if (p == 0.0) return {};
    const auto seed = static_cast<uint64_t>(
        torch::randint(std::numeric_limits<int64_t>::max(), {1}, torch::TensorOptions().dtype(torch::kLong))
            .item<int64_t>());
    return {seed, static_cast<float>(p), static_cast<float>(1.0 / (1.0 - p))};
}

// Work below about this many elements runs on the calling thread: waking the
// other threads costs more than it saves (decode steps: a few rows each). The
// split never changes results (rows are independent; the dropout mask depends
// on the flat index only).
constexpr int64_t kElementGrain = 65536;
// The same threshold in rows of `row_elems` elements.
int64_t row_grain(int64_t row_elems) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, row_elems)); }

}  // namespace

namespace {
std::atomic<bool>& fused_flag() {
    // The environment is read once, on first use.
    static std::atomic<bool> flag{[] {
        const char* v = std::getenv("MEMSKEW_GENERIC_KERNELS");
        return v == nullptr || *v == '\0' || std::strcmp(v, "0") == 0;
    }()};
    return flag;
}
}  // namespace

void set_fused_enabled(bool enabled) { fused_flag().store(enabled, std::memory_order_relaxed); }
bool fused_enabled() { return fused_flag().load(std::memory_order_relaxed); }

bool supported(const torch::Tensor& x, const torch::Tensor& w) {
    if (!fused_enabled()) return false;
    return cpu_float_or_bf16(x) && (!w.defined() || (cpu_float_or_bf16(w) && w.scalar_type() == x.scalar_type()));
}

bool fused_ok(const torch::Tensor& x, const torch::Tensor& w) {
    if (!supported(x, w)) return false;
    if (!at::GradMode::is_enabled()) return true;
    return !x.requires_grad() && !(w.defined() && w.requires_grad());
}

torch::Tensor rms_norm(const torch::Tensor& x_in, const torch::Tensor& w_in, double eps) {
    const auto x = x_in.contiguous();
    const auto w = w_in.contiguous();
    const int64_t d = x.size(-1);
    TORCH_CHECK(w.numel() == d, "rms_norm: weight has ", w.numel(), " elements for rows of ", d);
    auto y = torch::empty_like(x);
    const int64_t n_rows = d == 0 ? 0 : x.numel() / d;
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const int64_t grain = row_grain(d);
    at::parallel_for(0, n_rows, grain, [&](int64_t begin, int64_t end) {
        if (bf16) {
            rows::rms_norm_bf16(bf16_ptr(x) + begin * d, bf16_ptr(w), bf16_ptr(y) + begin * d, end - begin, d,
                                static_cast<float>(eps));
        } else {
            rows::rms_norm_f32(x.data_ptr<float>() + begin * d, w.data_ptr<float>(), y.data_ptr<float>() + begin * d,
                               end - begin, d, static_cast<float>(eps));
        }
    });
    return y;
}

torch::Tensor add_rms_norm_(torch::Tensor& h, const torch::Tensor& delta_in, const torch::Tensor& w_in, double eps) {
    TORCH_CHECK(h.is_contiguous() && h.sizes() == delta_in.sizes() && h.scalar_type() == delta_in.scalar_type(),
                "add_rms_norm_: h must be contiguous and match delta");
    const auto delta = delta_in.contiguous();
    const auto w = w_in.contiguous();
    const int64_t d = h.size(-1);
    TORCH_CHECK(w.numel() == d, "add_rms_norm_: weight has ", w.numel(), " elements for rows of ", d);
    auto y = torch::empty_like(h);
    const int64_t n_rows = d == 0 ? 0 : h.numel() / d;
    const bool bf16 = h.scalar_type() == torch::kBFloat16;
    const int64_t grain = row_grain(d);
    at::parallel_for(0, n_rows, grain, [&](int64_t begin, int64_t end) {
        if (bf16) {
            rows::add_rms_norm_bf16(bf16_ptr(h) + begin * d, bf16_ptr(delta) + begin * d, bf16_ptr(w),
                                    bf16_ptr(y) + begin * d, end - begin, d, static_cast<float>(eps));
        } else {
            rows::add_rms_norm_f32(h.data_ptr<float>() + begin * d, delta.data_ptr<float>() + begin * d,
                                   w.data_ptr<float>(), y.data_ptr<float>() + begin * d, end - begin, d,
                                   static_cast<float>(eps));
        }
    });
    return y;
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos_in, const torch::Tensor& sin_in,
                     int64_t rotary_dim) {
    TORCH_CHECK(x.dim() == 4 && x.stride(3) == 1, "rotary: x must be [B, H, T, hd] with a unit last stride");
    const int64_t B = x.size(0), H = x.size(1), T = x.size(2), hd = x.size(3);
    const auto cos = cos_in.to(torch::kFloat).contiguous(), sin = sin_in.to(torch::kFloat).contiguous();
    TORCH_CHECK(cos.dim() == 4 && cos.size(0) == B && cos.size(2) == T && cos.size(3) == rotary_dim,
                "rotary: cos/sin must be [B, 1, T, rotary_dim]");
    TORCH_CHECK(rotary_dim % 2 == 0 && rotary_dim <= hd, "rotary: bad rotary_dim ", rotary_dim);
    auto y = torch::empty({B, H, T, hd}, x.options());
    const int64_t sb = x.stride(0), sh = x.stride(1), st = x.stride(2);
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    const float* cp = cos.data_ptr<float>();
    const float* sp = sin.data_ptr<float>();
    // One task item = one (b, t) row of all heads.
    at::parallel_for(0, B * T, row_grain(H * hd), [&](int64_t begin, int64_t end) {
        for (int64_t bt = begin; bt < end; ++bt) {
            const int64_t b = bt / T, t = bt % T;
            const float* c = cp + bt * rotary_dim;
            const float* s = sp + bt * rotary_dim;
            for (int64_t h = 0; h < H; ++h) {
                const int64_t src = b * sb + h * sh + t * st;
                const int64_t dst = ((b * H + h) * T + t) * hd;
                if (bf16) {
                    rows::rotary_bf16(bf16_ptr(x) + src, c, s, bf16_ptr(y) + dst, hd, rotary_dim);
                } else {
                    rows::rotary_f32(x.data_ptr<float>() + src, c, s, y.data_ptr<float>() + dst, hd, rotary_dim);
                }
            }
        }
    });
    return y;
}

torch::Tensor silu_mul_(torch::Tensor gate, const torch::Tensor& up_in) {
    TORCH_CHECK(gate.is_contiguous() && gate.sizes() == up_in.sizes() && gate.scalar_type() == up_in.scalar_type(),
                "silu_mul_: gate must be contiguous and match up");
    const auto up = up_in.contiguous();
    const bool bf16 = gate.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, gate.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
        if (bf16) {
            rows::silu_mul_bf16(bf16_ptr(gate) + begin, bf16_ptr(up) + begin, end - begin);
        } else {
            rows::silu_mul_f32(gate.data_ptr<float>() + begin, up.data_ptr<float>() + begin, end - begin);
        }
    });
    return gate;
}

namespace {

// Row (b, g, t) of [B, G, T, S] sees keys [0, n_visible[b, t]) (at least 1).
struct PrefixRows {
    int64_t B, G, T, S;
    torch::Tensor n_visible;  // int64 [B, T], contiguous
    PrefixRows(const torch::Tensor& scores, const torch::Tensor& n_visible_in, const char* what)
        : B(scores.size(0)), G(scores.size(1)), T(scores.size(2)), S(scores.size(3)),
          n_visible(n_visible_in.to(torch::kLong).contiguous()) {
        TORCH_CHECK(n_visible.numel() == B * T, what, ": n_visible must be [B, T]");
    }
    int64_t visible(int64_t row) const {
        const int64_t t = row % T, b = row / (G * T);
        return std::min<int64_t>(S, std::max<int64_t>(1, n_visible.data_ptr<int64_t>()[b * T + t]));
    }
    int64_t grain() const { return row_grain(S); }
};

// out = prefix softmax of `in` (both contiguous [B, G, T, S], one dtype; may alias).
void prefix_softmax_into(const torch::Tensor& in, torch::Tensor& out, const PrefixRows& pr, double scale) {
    const bool bf16 = in.scalar_type() == torch::kBFloat16;
    const float sc = static_cast<float>(scale);
    const int64_t S = pr.S;
    at::parallel_for(0, pr.B * pr.G * pr.T, pr.grain(), [&](int64_t begin, int64_t end) {
        std::vector<float> buf(S);
        for (int64_t row = begin; row < end; ++row) {
            const int64_t n = pr.visible(row);
            if (bf16) {
                rows::causal_softmax_bf16(bf16_ptr(in) + row * S, bf16_ptr(out) + row * S, n, S, sc, buf.data());
            } else {
                rows::causal_softmax_f32(in.data_ptr<float>() + row * S, out.data_ptr<float>() + row * S, n, S, sc,
                                         buf.data());
            }
        }
    });
}

struct PrefixSoftmaxFn : public torch::autograd::Function<PrefixSoftmaxFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& scores_in,
                                 const torch::Tensor& n_visible, double scale) {
        const auto scores = scores_in.contiguous();
        const PrefixRows pr(scores, n_visible, "prefix_softmax_autograd");
        auto y = torch::empty_like(scores);
        prefix_softmax_into(scores, y, pr, scale);
        ctx->save_for_backward({y});
        ctx->saved_data["n_visible"] = pr.n_visible;
        ctx->saved_data["scale"] = scale;
        return y;
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto y = ctx->get_saved_variables()[0];
        const PrefixRows pr(y, ctx->saved_data["n_visible"].toTensor(), "prefix_softmax_autograd");
        const float sc = static_cast<float>(ctx->saved_data["scale"].toDouble());
        const auto g = grad[0].contiguous();
        auto dx = torch::empty_like(y);
        const bool bf16 = y.scalar_type() == torch::kBFloat16;
        const int64_t S = pr.S;
        at::parallel_for(0, pr.B * pr.G * pr.T, pr.grain(), [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
                const int64_t n = pr.visible(row), o = row * S;
                if (bf16) {
                    rows::causal_softmax_backward_bf16(bf16_ptr(y) + o, bf16_ptr(g) + o, bf16_ptr(dx) + o, n, S, sc);
                } else {
                    rows::causal_softmax_backward_f32(y.data_ptr<float>() + o, g.data_ptr<float>() + o,
                                                      dx.data_ptr<float>() + o, n, S, sc);
                }
            }
        });
        return {dx, torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace

void prefix_softmax_(torch::Tensor& scores, const torch::Tensor& n_visible, double scale) {
    TORCH_CHECK(scores.is_contiguous() && scores.dim() == 4, "prefix_softmax_: scores must be contiguous [B, G, T, S]");
    const PrefixRows pr(scores, n_visible, "prefix_softmax_");
    prefix_softmax_into(scores, scores, pr, scale);
}

torch::Tensor prefix_softmax_autograd(const torch::Tensor& scores, const torch::Tensor& n_visible, double scale) {
    TORCH_CHECK(scores.dim() == 4, "prefix_softmax_autograd: scores must be [B, G, T, S]");
    return PrefixSoftmaxFn::apply(scores, n_visible, scale);
}

namespace {

struct RotaryFn : public torch::autograd::Function<RotaryFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                 const torch::Tensor& cos, const torch::Tensor& sin, int64_t rotary_dim) {
        ctx->save_for_backward({cos, sin});
        ctx->saved_data["rotary_dim"] = rotary_dim;
        torch::NoGradGuard no_grad;
        return rotary(x, cos, sin, rotary_dim);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto saved = ctx->get_saved_variables();
        const int64_t rot = ctx->saved_data["rotary_dim"].toInt();
        auto g = grad[0].contiguous();
        torch::NoGradGuard no_grad;
        return {rotary(g, saved[0], -saved[1], rot), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

struct SiluMulFn : public torch::autograd::Function<SiluMulFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate_in,
                                 const torch::Tensor& up_in) {
        const auto gate = gate_in.contiguous(), up = up_in.contiguous();
        ctx->save_for_backward({gate, up});
        torch::NoGradGuard no_grad;
        return silu_mul_(gate.clone(), up);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto saved = ctx->get_saved_variables();
        const auto& g = saved[0];
        const auto& u = saved[1];
        const auto gr = grad[0].contiguous();
        auto dg = torch::empty_like(g), du = torch::empty_like(u);
        const bool bf16 = g.scalar_type() == torch::kBFloat16;
        at::parallel_for(0, g.numel(), kElementGrain, [&](int64_t b, int64_t e) {
            if (bf16) {
                rows::silu_mul_backward_bf16(bf16_ptr(g) + b, bf16_ptr(u) + b, bf16_ptr(gr) + b, bf16_ptr(dg) + b,
                                             bf16_ptr(du) + b, e - b);
            } else {
                rows::silu_mul_backward_f32(g.data_ptr<float>() + b, u.data_ptr<float>() + b,
                                            gr.data_ptr<float>() + b, dg.data_ptr<float>() + b,
                                            du.data_ptr<float>() + b, e - b);
            }
        });
        return {dg, du};
    }
};

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                                 double eps) {
        ctx->save_for_backward({x, w});
        ctx->saved_data["eps"] = eps;
        torch::NoGradGuard no_grad;
        return rms_norm(x, w, eps);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto saved = ctx->get_saved_variables();
        const auto& x = saved[0];
        const auto& w = saved[1];
        const double eps = ctx->saved_data["eps"].toDouble();
        torch::NoGradGuard no_grad;
        const auto xf = x.to(torch::kFloat);
        const auto g = grad[0].to(torch::kFloat);
        const auto r = torch::rsqrt(xf.square().mean(-1, /*keepdim=*/true) + eps);
        const auto n = xf * r;
        const auto gw = g * w.to(torch::kFloat);
        const auto dx = r * (gw - n * (gw * n).mean(-1, /*keepdim=*/true));
        torch::Tensor dw;
        if (ctx->needs_input_grad(1))
            dw = (g * n.to(x.scalar_type()).to(torch::kFloat)).reshape({-1, x.size(-1)}).sum(0).to(w.scalar_type());
        return {dx.to(x.scalar_type()), dw, torch::Tensor()};
    }
};

struct CrossEntropyFn : public torch::autograd::Function<CrossEntropyFn> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits_in,
                                 const torch::Tensor& targets_in) {
        const auto logits = logits_in.contiguous();
        const auto targets = targets_in.to(torch::kLong).contiguous();
        const int64_t N = logits.size(0), V = logits.size(1);
        TORCH_CHECK(targets.numel() == N, "cross_entropy_sum: ", targets.numel(), " targets for ", N, " rows");
        const bool bf16 = logits.scalar_type() == torch::kBFloat16;
        const int64_t* tp = targets.data_ptr<int64_t>();
        for (int64_t r = 0; r < N; ++r) TORCH_CHECK(tp[r] >= 0 && tp[r] < V, "cross_entropy_sum: target out of range");
        auto lse = torch::empty({N}, torch::kFloat);
        std::vector<double> row_loss(static_cast<size_t>(N));
        float* lp = lse.data_ptr<float>();
        at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
            std::vector<float> d(V), e(V);
            for (int64_t r = begin; r < end; ++r) {
                const rows::RowSoftmax row =
                    bf16 ? rows::softmax_row_bf16(bf16_ptr(logits) + r * V, V, tp[r], d.data(), e.data())
                         : rows::softmax_row_f32(logits.data_ptr<float>() + r * V, V, tp[r], d.data(), e.data());
                const double l = row.log_sum_exp();
                lp[r] = static_cast<float>(l);
                row_loss[static_cast<size_t>(r)] = l - row.target_logit;
            }
        });
        double total = 0;
        for (double l : row_loss) total += l;
        ctx->save_for_backward({logits, targets, lse});
        return torch::tensor(static_cast<float>(total));
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto saved = ctx->get_saved_variables();
        const auto& logits = saved[0];
        const int64_t* tp = saved[1].data_ptr<int64_t>();
        const float* lp = saved[2].data_ptr<float>();
        const int64_t N = logits.size(0), V = logits.size(1);
        const float g = grad[0].item<float>();
        const bool bf16 = logits.scalar_type() == torch::kBFloat16;
        auto out = torch::empty_like(logits);
        at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                if (bf16) {
                    const uint16_t* z = bf16_ptr(logits) + r * V;
                    uint16_t* o = bf16_ptr(out) + r * V;
                    rows::softmax_grad_bf16(z, o, V, lp[r], g);
                    o[tp[r]] = float_to_bf16(g * (std::exp(bf16_to_float(z[tp[r]]) - lp[r]) - 1.0f));
                } else {
                    const float* z = logits.data_ptr<float>() + r * V;
                    float* o = out.data_ptr<float>() + r * V;
                    rows::softmax_grad_f32(z, o, V, lp[r], g);
                    o[tp[r]] = g * (std::exp(z[tp[r]] - lp[r]) - 1.0f);
                }
            }
        });
        return {out, torch::Tensor()};
    }
};


// LoRA linear, forward and backward written out (see lora_linear in the header).

// out (fp32, [N, in]) = mask * x, x contiguous fp32/bf16 [N, in].
torch::Tensor masked_f32(const torch::Tensor& x, const DropoutKey& m) {
    if (x.scalar_type() == torch::kFloat && m.p == 0.0f) return x;
    auto out = torch::empty(x.sizes(), x.options().dtype(torch::kFloat));
    float* o = out.data_ptr<float>();
    const bool bf16 = x.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, x.numel(), kElementGrain, [&](int64_t b, int64_t e) {
        if (bf16) rows::dropout_to_f32(bf16_ptr(x) + b, o + b, e - b, m.seed, b, m.p, m.scale);
        else rows::dropout_to_f32(x.data_ptr<float>() + b, o + b, e - b, m.seed, b, m.p, m.scale);
    });
    return out;
}

// y += mask * d in place, rounded once; y contiguous fp32/bf16, d fp32, same shape.
void add_masked_(torch::Tensor& y, const torch::Tensor& d, const DropoutKey& m) {
    const float* dp = d.data_ptr<float>();
    const bool bf16 = y.scalar_type() == torch::kBFloat16;
    at::parallel_for(0, y.numel(), kElementGrain, [&](int64_t b, int64_t e) {
        if (bf16) rows::add_dropout_f32(bf16_ptr(y) + b, dp + b, e - b, m.seed, b, m.p, m.scale);
        else rows::add_dropout_f32(y.data_ptr<float>() + b, dp + b, e - b, m.seed, b, m.p, m.scale);
    });
}

struct LoraForward {
    torch::Tensor y;   // [N, out], x's dtype
    torch::Tensor xm;  // [N, in] fp32: mask * x
    torch::Tensor h;   // [N, r] fp32: scaling * xm A^T
};

LoraForward lora_forward(const torch::Tensor& x2, const torch::Tensor& weight, const torch::Tensor& bias, bool conv1d,
                         const torch::Tensor& a, const torch::Tensor& b, double scaling, const DropoutKey& m) {
    LoraForward f;
    const auto w = conv1d ? weight : weight.t();  // [in, out]
    f.y = bias.defined() ? torch::addmm(bias, x2, w) : torch::mm(x2, w);
    f.xm = masked_f32(x2, m);
    f.h = torch::mm(f.xm, a.t());
    f.h.mul_(scaling);
    const auto delta = torch::mm(f.h, b.t());  // [N, out] fp32
    add_masked_(f.y, delta, DropoutKey{});
    return f;
}

struct LoraLinearFn : public torch::autograd::Function<LoraLinearFn> {
    // bias comes after the factors as an optional, so the edges of x,
    // weight, A and B keep their indices (0-3) with or without it.
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x2,
                                 const torch::Tensor& weight, const torch::Tensor& a, const torch::Tensor& b,
                                 const c10::optional<torch::Tensor>& bias, bool conv1d, double scaling,
                                 double dropout) {
        const DropoutKey m = draw_dropout(dropout);
        torch::NoGradGuard no_grad;
        auto f = lora_forward(x2, weight, bias.value_or(torch::Tensor()), conv1d, a, b, scaling, m);
        ctx->save_for_backward({f.xm, f.h, weight, a, b});
        ctx->saved_data["conv1d"] = conv1d;
        ctx->saved_data["scaling"] = scaling;
        ctx->saved_data["seed"] = static_cast<int64_t>(m.seed);
        ctx->saved_data["p"] = static_cast<double>(m.p);
        ctx->saved_data["mask_scale"] = static_cast<double>(m.scale);
        return f.y;
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad) {
        const auto saved = ctx->get_saved_variables();
        const auto& xm = saved[0];
        const auto& h = saved[1];
        const auto& weight = saved[2];
        const auto& a = saved[3];
        const auto& b = saved[4];
        const bool conv1d = ctx->saved_data["conv1d"].toBool();
        const double scaling = ctx->saved_data["scaling"].toDouble();
        const DropoutKey m{static_cast<uint64_t>(ctx->saved_data["seed"].toInt()),
                         static_cast<float>(ctx->saved_data["p"].toDouble()),
                         static_cast<float>(ctx->saved_data["mask_scale"].toDouble())};
        torch::NoGradGuard no_grad;
        const auto g = grad[0].contiguous();  // [N, out], x's dtype
        const auto gf = g.to(torch::kFloat);
        torch::Tensor grad_a, grad_b, grad_x;
        if (ctx->needs_input_grad(3)) grad_b = torch::mm(gf.t(), h);  // [out, r]
        auto gh = torch::mm(gf, b);                                     // [N, r]
        gh.mul_(scaling);
        if (ctx->needs_input_grad(2)) grad_a = torch::mm(gh.t(), xm);  // [r, in]
        if (ctx->needs_input_grad(0)) {
            grad_x = torch::mm(g, conv1d ? weight.t() : weight);  // [N, in]
            add_masked_(grad_x, torch::mm(gh, a), m);
        }
        return {grad_x, torch::Tensor(), grad_a, grad_b, torch::Tensor(), torch::Tensor(), torch::Tensor(),
                torch::Tensor()};
    }
};
}  // namespace

torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
    TORCH_CHECK(logits.dim() == 2 && cpu_float_or_bf16(logits), "cross_entropy_sum: logits must be CPU fp32/bf16 [N, V]");
    return CrossEntropyFn::apply(logits, targets);
}

bool lora_linear_ok(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                    const torch::Tensor& a, const torch::Tensor& b) {
    const auto f32_cpu = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat; };
    if (!supported(x, weight) || (bias.defined() && !supported(x, bias)) || !f32_cpu(a) || !f32_cpu(b)) return false;
    return !(at::GradMode::is_enabled() && (weight.requires_grad() || (bias.defined() && bias.requires_grad())));
}

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          bool conv1d_layout, const torch::Tensor& a, const torch::Tensor& b, double scaling,
                          double dropout) {
    const int64_t in = x.size(-1), out = b.size(0);
    auto out_shape = x.sizes().vec();
    out_shape.back() = out;
    const auto x2 = x.reshape({-1, in}).contiguous();
    const bool grad = at::GradMode::is_enabled() && (x.requires_grad() || a.requires_grad() || b.requires_grad());
    if (!grad) {
        // No graph to record: the same forward without the autograd node
        // (and without keeping the fp32 activations alive).
        const DropoutKey m = draw_dropout(dropout);
        torch::NoGradGuard no_grad;
        return lora_forward(x2, weight, bias, conv1d_layout, a, b, scaling, m).y.view(out_shape);
    }
    const c10::optional<torch::Tensor> bias_opt = bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
    return LoraLinearFn::apply(x2, weight, a, b, bias_opt, conv1d_layout, scaling, dropout).view(out_shape);
}

torch::Tensor silu_mul_autograd(const torch::Tensor& gate, const torch::Tensor& up) {
    TORCH_CHECK(gate.sizes() == up.sizes() && supported(gate, up),
                "silu_mul_autograd: gate and up must be CPU fp32/bf16 tensors of one shape");
    return SiluMulFn::apply(gate, up);
}

torch::Tensor rms_norm_autograd(const torch::Tensor& x, const torch::Tensor& w, double eps) {
    return RmsNormFn::apply(x, w, eps);
}

torch::Tensor rotary_autograd(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                              int64_t rotary_dim) {
    return RotaryFn::apply(x, cos, sin, rotary_dim);
}

torch::Tensor dropout_mask(const torch::Tensor& x, double p) {
    const DropoutKey key = draw_dropout(p);
    auto mask = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat));
    float* out = mask.data_ptr<float>();
    at::parallel_for(0, mask.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
        rows::dropout_mask_f32(out + begin, end - begin, key.seed, begin, key.p, key.scale);
    });
    return mask.to(x.device());
}

int64_t& attention_score_budget() {
    static int64_t budget = int64_t{1} << 24;
    return budget;
}

}  // namespace memskew::kernels
