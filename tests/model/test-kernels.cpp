// The fused inference path (src/model/cpu-kernels.h: RMSNorm, rotary,
// SiLU-gate, prefix-masked softmax; the engine's per-row statistics) against
// the plain LibTorch expressions the layers fall back to when gradients flow.
// Both paths run on the same module: with GradMode on and parameters that
// require grad, the layers take the training path (LibTorch ops for the
// residual stream; RMSNorm, rotary, the SiLU gate, attention's softmax and
// LoRA as kernels with their own backward, checked against autograd of the
// written-out formulas below); in InferenceMode every layer takes the fused
// one. Attention's LibTorch fallback (keys not in position order) is checked
// against the fused attention, values and gradients, below. Architectures: Llama with grouped-query attention
// (3 query heads per KV head), GPT-NeoX with partial rotary (rotary_pct 0.25)
// and GPT-2 (no rotary, LayerNorm), fp32 and bf16, with and without a KV cache.
//
// Tolerances. fp32: both paths compute the same formulas in fp32 and differ
// only in summation order and exp's last ulp, so hidden states agree to 2e-5
// of their scale. bf16: each path rounds intermediates to bf16 (2^-8
// relative) at the same points, but a rounding may land on the other side of
// a tie, and such differences pass through the layers; 4% of the hidden
// states' scale (about ten bf16 steps of the largest value) bounds that. The
// attention scale also moves: the LibTorch path scales q, the fused one the
// scores (as Hugging Face's eager attention), exact for power-of-two head dims.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "model/cpu-kernels.h"
#include "model/layers.h"
#include "model/model-impl.h"

namespace memskew {
namespace {

ModelConfig config(const std::string& arch) {
    ModelConfig c;
    c.arch = arch;
    c.name = arch;
    c.dim = 48;
    c.n_layers = 3;
    c.n_heads = 6;
    c.n_kv_heads = arch == "llama" ? 2 : 6;
    c.ffn_dim = 96;
    c.max_ctx = 96;
    c.n_vocab = 300;
    if (arch == "gptneox") {
        c.rotary_pct = 0.25;  // head dim 8: rotary on 2 dims, 6 copied
        c.parallel_residual = true;
        c.hidden_act = "gelu";
        c.qkv_bias = c.o_bias = c.mlp_bias = true;
    }
    if (arch == "gpt2") {
        c.hidden_act = "gelu_new";
        c.qkv_bias = c.o_bias = c.mlp_bias = true;
    }
    return c;
}

std::shared_ptr<CausalLmImpl> random_net(const ModelConfig& c, torch::Dtype dt) {
    auto net = make_causal_lm(c);
    torch::manual_seed(7);
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters()) {
        const bool norm = p.key().find("norm") != std::string::npos || p.key().find("ln_") != std::string::npos;
        if (norm && p.key().find("weight") != std::string::npos) {
            p.value().uniform_(0.5, 1.5);
        } else {
            p.value().normal_(0.0, 0.2);
        }
    }
    net->to(dt);
    return net;
}

struct Inputs {
    torch::Tensor ids, pos;
};

Inputs inputs(const ModelConfig& c, int64_t B, int64_t T) {
    torch::manual_seed(11);
    return {torch::randint(0, c.n_vocab, {B, T}, torch::kLong),
            torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous()};
}

// The hidden states of `ids`: in one call, or (with a cache) a prefill of
// `prefill` tokens followed by one token per call, as generation runs.
torch::Tensor hidden(CausalLmImpl& net, const Inputs& in, bool fused, int64_t prefill = 0) {
    std::unique_ptr<c10::InferenceMode> inference;
    std::unique_ptr<torch::AutoGradMode> grad;
    if (fused) {
        inference = std::make_unique<c10::InferenceMode>();
    } else {
        grad = std::make_unique<torch::AutoGradMode>(true);
    }
    for (auto& p : net.parameters()) p.set_requires_grad(!fused);
    torch::Tensor h;
    if (prefill == 0) {
        h = net.forward_hidden(in.ids, in.pos);
    } else {
        const int64_t B = in.ids.size(0), T = in.ids.size(1);
        auto cache = KvCache::allocate(net.config(), B, T, net.dtype());
        std::vector<torch::Tensor> parts{net.forward_hidden(in.ids.narrow(1, 0, prefill), in.pos.narrow(1, 0, prefill), &cache)};
        for (int64_t t = prefill; t < T; ++t)
            parts.push_back(net.forward_hidden(in.ids.narrow(1, t, 1), in.pos.narrow(1, t, 1), &cache));
        h = torch::cat(parts, 1);
    }
    for (auto& p : net.parameters()) p.set_requires_grad(false);
    EXPECT_EQ(h.requires_grad(), !fused) << "the path taken is not the one intended";
    return h.detach().to(torch::kFloat);
}

void check_paths(const std::string& arch, torch::Dtype dt, int64_t prefill) {
    const ModelConfig c = config(arch);
    auto net = random_net(c, dt);
    const auto in = inputs(c, 3, 40);
    const auto fused = hidden(*net, in, true, prefill);
    const auto plain = hidden(*net, in, false, prefill);
    const double scale = plain.abs().max().item<double>();
    const double diff = (fused - plain).abs().max().item<double>();
    const double tol = (dt == torch::kFloat ? 2e-5 : 4e-2) * scale;
    std::printf("%-8s %-5s %-9s max|fused - libtorch| %.3e  (scale %.3f, tol %.1e)\n", arch.c_str(),
                dt == torch::kFloat ? "f32" : "bf16", prefill ? "kv-cache" : "one-pass", diff, scale, tol);
    EXPECT_LE(diff, tol) << arch;
    EXPECT_GT(scale, 0.1) << "degenerate activations";
}

TEST(FusedKernels, LlamaGqaMatchesLibTorchPath) {
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        check_paths("llama", dt, 0);
        check_paths("llama", dt, 25);
    }
}

TEST(FusedKernels, GptNeoXPartialRotaryMatchesLibTorchPath) {
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        check_paths("gptneox", dt, 0);
        check_paths("gptneox", dt, 25);
    }
}

TEST(FusedKernels, Gpt2MatchesLibTorchPath) {
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        check_paths("gpt2", dt, 0);
        check_paths("gpt2", dt, 25);
    }
}

// Inference attention in query chunks (a small score budget forces chunks of
// 1, 3 and 7 queries) equals the single-chunk result.
TEST(FusedKernels, ChunkedAttentionEqualsOneChunk) {
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const ModelConfig c = config("llama");
        auto net = random_net(c, dt);
        const auto in = inputs(c, 3, 40);
        c10::InferenceMode guard;
        const auto one = net->forward_hidden(in.ids, in.pos).to(torch::kFloat);
        auto& budget = kernels::attention_score_budget();
        const int64_t saved = budget;
        for (int64_t queries : {1, 3, 7}) {
            budget = 3 * c.n_heads * 40 * queries;  // B * H * S * queries
            const auto chunked = net->forward_hidden(in.ids, in.pos).to(torch::kFloat);
            const double diff = (chunked - one).abs().max().item<double>();
            // Other GEMM shapes sum in another order; in bf16 a rounding may flip
            // and pass through the layers (the 4% bound of the header).
            EXPECT_LE(diff, (dt == torch::kFloat ? 1e-5 : 4e-2) * one.abs().max().item<double>()) << queries;
        }
        budget = saved;
    }
}

// The rotary kernel's autograd (backward = inverse rotation) against autograd
// through the LibTorch formula written here (x cos + rotate_half(x) sin), on
// a transposed view as the layers pass it, with partial rotary.
TEST(FusedKernels, RotaryGradientMatchesAutogradOfTheFormula) {
    torch::manual_seed(3);
    const int64_t B = 2, T = 7, H = 3, hd = 8;
    for (const int64_t rot : {hd, int64_t{4}}) {
        auto base = torch::randn({B, T, H, hd}, torch::kDouble).to(torch::kFloat);
        auto angles = torch::rand({B, 1, T, rot / 2}) * 6.0;
        auto emb = torch::cat({angles, angles}, -1);
        const auto cos = emb.cos(), sin = emb.sin();
        const auto weight = torch::randn({B, H, T, hd});
        auto x1 = base.clone().requires_grad_(true);
        auto y1 = kernels::rotary_autograd(x1.transpose(1, 2), cos, sin, rot);
        (y1 * weight).sum().backward();
        auto x2 = base.clone().requires_grad_(true);
        auto xt = x2.transpose(1, 2);
        auto r = xt.narrow(-1, 0, rot);
        auto rotated = torch::cat({-r.narrow(-1, rot / 2, rot / 2), r.narrow(-1, 0, rot / 2)}, -1);
        auto y2 = torch::cat({r * cos + rotated * sin, xt.narrow(-1, rot, hd - rot)}, -1);
        (y2 * weight).sum().backward();
        EXPECT_LE((y1 - y2).abs().max().item<double>(), 1e-6) << rot;
        EXPECT_LE((x1.grad() - x2.grad()).abs().max().item<double>(), 1e-5) << rot;
    }
}

// The RMSNorm kernel's autograd against autograd through the Hugging Face
// formula written here, for x and the weight, in fp32 (and bf16 within its
// rounding).
TEST(FusedKernels, RmsNormGradientMatchesAutogradOfTheFormula) {
    torch::manual_seed(4);
    const double eps = 1e-5;
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const auto base = (torch::randn({3, 5, 32}) * 3).to(dt);
        const auto wbase = (torch::rand({32}) + 0.5).to(dt);
        const auto weight = torch::randn({3, 5, 32});
        auto x1 = base.clone().requires_grad_(true);
        auto w1 = wbase.clone().requires_grad_(true);
        auto y1 = kernels::rms_norm_autograd(x1, w1, eps);
        (y1.to(torch::kFloat) * weight).sum().backward();
        auto x2 = base.clone().requires_grad_(true);
        auto w2 = wbase.clone().requires_grad_(true);
        auto xf = x2.to(torch::kFloat);
        auto y2 = w2 * (xf * torch::rsqrt(xf.square().mean(-1, true) + eps)).to(dt);
        (y2.to(torch::kFloat) * weight).sum().backward();
        const double tol = dt == torch::kFloat ? 1e-5 : 5e-2;
        auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
            return ((a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max() / b.to(torch::kFloat).abs().max()).item<double>();
        };
        EXPECT_LE(rel(y1, y2), dt == torch::kFloat ? 1e-6 : 1e-2);
        EXPECT_LE(rel(x1.grad(), x2.grad()), tol);
        EXPECT_LE(rel(w1.grad(), w2.grad()), tol);
    }
}

// The SiLU-gate kernel's autograd against autograd of silu(g) * u.
TEST(FusedKernels, SiluMulGradientMatchesAutogradOfTheFormula) {
    torch::manual_seed(6);
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const auto gb = (torch::randn({4, 33}) * 3).to(dt), ub = torch::randn({4, 33}).to(dt);
        const auto weight = torch::randn({4, 33});
        auto g1 = gb.clone().requires_grad_(true), u1 = ub.clone().requires_grad_(true);
        (kernels::silu_mul_autograd(g1, u1).to(torch::kFloat) * weight).sum().backward();
        auto g2 = gb.clone().requires_grad_(true), u2 = ub.clone().requires_grad_(true);
        (((torch::nn::functional::silu(g2)) * u2).to(torch::kFloat) * weight).sum().backward();
        auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
            return ((a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max() / b.to(torch::kFloat).abs().max()).item<double>();
        };
        // fp32: exp's last ulps; bf16: the LibTorch path rounds intermediates to bf16 more often.
        const double tol = dt == torch::kFloat ? 1e-5 : 2e-2;
        EXPECT_LE(rel(g1.grad(), g2.grad()), tol);
        EXPECT_LE(rel(u1.grad(), u2.grad()), tol);
    }
}

// The prefix softmax's autograd against autograd of the formula it stands
// for: softmax(scale * s + additive mask) in fp32, keys [0, max(1, n)) visible.
TEST(FusedKernels, PrefixSoftmaxGradientMatchesAutogradOfTheFormula) {
    torch::manual_seed(12);
    const int64_t B = 2, G = 3, T = 5, S = 7;
    const auto n_visible = torch::tensor({0, 1, 3, 7, 9, 2, 5, 6, 7, 4}, torch::kLong).view({B, T});
    auto visible = torch::zeros({B, 1, T, S}, torch::kBool);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            visible[b][0][t].narrow(0, 0, std::min<int64_t>(S, std::max<int64_t>(1, n_visible[b][t].item<int64_t>())))
                .fill_(true);
    const auto additive = torch::zeros({B, 1, T, S}).masked_fill(visible.logical_not(), -INFINITY);
    const double scale = 0.35;
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const auto base = (torch::randn({B, G, T, S}) * 3).to(dt);
        const auto weight = torch::randn({B, G, T, S});
        auto s1 = base.clone().requires_grad_(true);
        const auto y1 = kernels::prefix_softmax_autograd(s1, n_visible, scale);
        (y1.to(torch::kFloat) * weight).sum().backward();
        auto s2 = base.clone().requires_grad_(true);
        const auto y2 = torch::softmax(s2.to(torch::kFloat) * scale + additive, -1);
        (y2 * weight).sum().backward();
        auto maxdiff = [](const torch::Tensor& u, const torch::Tensor& v) {
            return (u.to(torch::kFloat) - v.to(torch::kFloat)).abs().max().item<double>();
        };
        // Probabilities are <= 1: fp32 differs by exp's last ulps, bf16 by one
        // rounding of y (2^-9) and of the gradient (its scale is about 1).
        EXPECT_LE(maxdiff(y1, y2), dt == torch::kFloat ? 1e-6 : 4e-3);
        EXPECT_LE(maxdiff(s1.grad(), s2.grad()), dt == torch::kFloat ? 1e-5 : 2e-2);
        EXPECT_EQ(s1.grad().scalar_type(), dt);
        // Hidden keys get exactly zero probability and gradient.
        EXPECT_EQ(y1.masked_select(visible.logical_not().expand_as(y1)).abs().max().item<double>(), 0.0);
        EXPECT_EQ(s1.grad().masked_select(visible.logical_not().expand_as(y1)).abs().max().item<double>(), 0.0);
    }
}

// attend() with gradients: the fused path (prefix softmax, in one chunk and
// in several) against the LibTorch fallback it takes when the mask has no
// visible prefix, values and the gradients of q, k and v; grouped-query.
TEST(FusedKernels, AttentionGradientsMatchTheLibTorchPath) {
    torch::manual_seed(13);
    const int64_t B = 2, H = 6, Hkv = 2, T = 9, hd = 8;
    const auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
    const AttentionMask mask = make_attention_mask(pos, nullptr);
    ASSERT_TRUE(mask.n_visible.defined());
    const AttentionMask fallback{mask.mask, mask.n_slots, torch::Tensor()};
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const auto q0 = torch::randn({B, H, T, hd}).to(dt), k0 = torch::randn({B, Hkv, T, hd}).to(dt),
                   v0 = torch::randn({B, Hkv, T, hd}).to(dt);
        const auto weight = torch::randn({B, T, H * hd});
        auto run = [&](const AttentionMask& m) {
            auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
                 v = v0.clone().requires_grad_(true);
            const auto out = attend(q, k, v, m, pos, nullptr, 0);
            (out.to(torch::kFloat) * weight).sum().backward();
            return std::vector<torch::Tensor>{out, q.grad(), k.grad(), v.grad()};
        };
        const auto ref = run(fallback);
        auto& budget = kernels::attention_score_budget();
        const int64_t saved = budget;
        for (int64_t queries : {T, int64_t{4}, int64_t{1}}) {
            budget = B * H * T * queries;
            const auto got = run(mask);
            budget = saved;
            const char* names[] = {"out", "dq", "dk", "dv"};
            for (size_t i = 0; i < got.size(); ++i) {
                const double scale = ref[i].to(torch::kFloat).abs().max().item<double>();
                const double diff = (got[i].to(torch::kFloat) - ref[i].to(torch::kFloat)).abs().max().item<double>();
                // fp32: summation order; bf16: a few roundings (2^-8 each) that
                // the paths place differently (scale on q vs on the scores).
                EXPECT_LE(diff, (dt == torch::kFloat ? 1e-5 : 3e-2) * scale) << names[i] << " queries " << queries;
            }
        }
    }
}

// reference_rows by hand. Prompts 3, 1, 2 with references 2, 3, 1: T = 4,
// first = min(2, 0, 1) = 0, kept = 4; sample b's token j sits at row
// 4b + (P_b - 1) + j: {2, 3}, {4, 5, 6}, {9}. Prompts 3, 4 with references
// 2, 1: first = 2, kept = 2: {0 + 0, 1}, {2 + 1}.
TEST(FusedKernels, ReferenceRowsByHand) {
    const auto a = reference_rows({3, 1, 2}, {2, 3, 1}, 4);
    EXPECT_EQ(a.first, 0);
    EXPECT_EQ(a.kept, 4);
    EXPECT_EQ(a.rows, (std::vector<int64_t>{2, 3, 4, 5, 6, 9}));
    const auto b = reference_rows({3, 4}, {2, 1}, 4);
    EXPECT_EQ(b.first, 2);
    EXPECT_EQ(b.kept, 2);
    EXPECT_EQ(b.rows, (std::vector<int64_t>{0, 1, 3}));
    EXPECT_THROW(reference_rows({0}, {1}, 4), c10::Error);     // empty prompt
    EXPECT_THROW(reference_rows({3}, {3}, 4), c10::Error);     // 3 + 3 - 1 > 4 positions
}

// lora_linear (forward and backward written out) against autograd of PEFT's
// formula written with LibTorch ops: base(x) + linear(linear(dropout(x.float()), A) * s, B),
// cast back. Both draw the dropout seed from the generator at the same point,
// so with one manual_seed they drop the same elements. Covers both weight
// layouts, bias or none, dropout or none, fp32 and bf16, and the no-grad path.
TEST(FusedKernels, LoraLinearMatchesAutogradOfTheFormula) {
    namespace F = torch::nn::functional;
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        for (bool conv1d : {false, true}) {
            for (double p : {0.0, 0.3}) {
                const bool with_bias = conv1d || p == 0.0;
                torch::manual_seed(21);
                const int64_t in = 24, out = 16, r = 4;
                const auto xb = torch::randn({2, 5, in}).to(dt);
                const auto w = (conv1d ? torch::randn({in, out}) : torch::randn({out, in})).mul(0.2).to(dt);
                const auto bias = with_bias ? torch::randn({out}).to(dt) : torch::Tensor();
                const auto a0 = torch::randn({r, in}) * 0.3, b0 = torch::randn({out, r}) * 0.3;
                const auto weight = torch::randn({2, 5, out});
                const double s = 16.0 / r;
                const std::string what = std::string(dt == torch::kFloat ? "f32" : "bf16") +
                                         (conv1d ? " conv1d" : " linear") + " p=" + std::to_string(p);

                auto x1 = xb.clone().requires_grad_(true);
                auto a1 = a0.clone().requires_grad_(true), b1 = b0.clone().requires_grad_(true);
                torch::manual_seed(77);
                const auto y1 = kernels::lora_linear(x1, w, bias, conv1d, a1, b1, s, p);
                (y1.to(torch::kFloat) * weight).sum().backward();

                auto x2 = xb.clone().requires_grad_(true);
                auto a2 = a0.clone().requires_grad_(true), b2 = b0.clone().requires_grad_(true);
                torch::manual_seed(77);
                const auto base = conv1d ? (torch::matmul(x2, w) + bias) : F::linear(x2, w, bias);
                auto xa = x2.to(torch::kFloat);
                if (p > 0.0) xa = xa * kernels::dropout_mask(xa, p);
                const auto y2 = (base + F::linear(F::linear(xa, a2) * s, b2)).to(dt);
                (y2.to(torch::kFloat) * weight).sum().backward();

                auto rel = [](const torch::Tensor& u, const torch::Tensor& v) {
                    return ((u.to(torch::kFloat) - v.to(torch::kFloat)).abs().max() / v.to(torch::kFloat).abs().max())
                        .item<double>();
                };
                // fp32: summation order only. bf16: the formula rounds the
                // base and adapter gradients of x separately before adding
                // them, lora_linear once (a bf16 step is 2^-8 relative).
                const double tol = dt == torch::kFloat ? 1e-5 : 1e-2;
                EXPECT_EQ(y1.scalar_type(), dt) << what;
                EXPECT_EQ(y1.sizes(), y2.sizes()) << what;
                EXPECT_LE(rel(y1, y2), tol) << what;
                EXPECT_LE(rel(x1.grad(), x2.grad()), tol) << what;
                EXPECT_LE(rel(a1.grad(), a2.grad()), dt == torch::kFloat ? 1e-5 : 2e-2) << what;
                EXPECT_LE(rel(b1.grad(), b2.grad()), dt == torch::kFloat ? 1e-5 : 2e-2) << what;
                EXPECT_FALSE(w.grad().defined());

                // Without gradients: the same values, no graph.
                torch::manual_seed(77);
                torch::Tensor y3;
                {
                    torch::NoGradGuard no_grad;
                    y3 = kernels::lora_linear(xb, w, bias, conv1d, a0, b0, s, p);
                }
                EXPECT_FALSE(y3.requires_grad());
                EXPECT_TRUE(torch::equal(y3, y1.detach())) << what;
            }
        }
    }
}

// The fused cross-entropy against LibTorch's cross_entropy on fp32 logits
// (what training computed before): the summed loss and the gradient.
TEST(FusedKernels, CrossEntropyMatchesLibTorch) {
    torch::manual_seed(5);
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        const auto base = (torch::randn({37, 1000}) * 4).to(dt);
        const auto targets = torch::randint(0, 1000, {37}, torch::kLong);
        auto z1 = base.clone().requires_grad_(true);
        auto l1 = kernels::cross_entropy_sum(z1, targets);
        (l1 * 0.5).backward();
        auto z2 = base.clone().requires_grad_(true);
        auto l2 = torch::nn::functional::cross_entropy(
            z2.to(torch::kFloat), targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        (l2 * 0.5).backward();
        EXPECT_NEAR(l1.item<double>(), l2.item<double>(), 1e-5 * l2.item<double>());
        const double gdiff = (z1.grad().to(torch::kFloat) - z2.grad().to(torch::kFloat)).abs().max().item<double>();
        // fp32: exp's last ulp; bf16: both round the fp32 gradient once (half a step of 0.5).
        EXPECT_LE(gdiff, dt == torch::kFloat ? 1e-6 : 2e-3) << (dt == torch::kFloat ? "f32" : "bf16");
        EXPECT_EQ(z1.grad().scalar_type(), dt);
    }
}

// The dropout mask: values 0 or 1/(1-p), the kept fraction within 5 standard
// deviations of 1-p, reproducible under torch::manual_seed, fresh per draw.
TEST(FusedKernels, DropoutMaskKeepsOneMinusPAndIsSeeded) {
    const auto x = torch::zeros({300, 1000});
    for (double p : {0.05, 0.5}) {
        torch::manual_seed(9);
        const auto m1 = kernels::dropout_mask(x, p);
        const auto m2 = kernels::dropout_mask(x, p);
        torch::manual_seed(9);
        const auto m3 = kernels::dropout_mask(x, p);
        EXPECT_TRUE(torch::equal(m1, m3));
        EXPECT_FALSE(torch::equal(m1, m2));
        const double n = static_cast<double>(m1.numel());
        const double kept = (m1 > 0).sum().item<double>();
        EXPECT_NEAR(kept / n, 1.0 - p, 5.0 * std::sqrt(p * (1 - p) / n)) << p;
        const float scale = static_cast<float>(1.0 / (1.0 - p));
        EXPECT_TRUE(((m1 == 0) | (m1 == scale)).all().item<bool>());
        // No pattern along rows or columns: every row and column keeps about 1-p.
        const auto rows = (m1 > 0).to(torch::kDouble).mean(1), cols = (m1 > 0).to(torch::kDouble).mean(0);
        EXPECT_LE((rows - (1 - p)).abs().max().item<double>(), 6.0 * std::sqrt(p * (1 - p) / 1000)) << p;
        EXPECT_LE((cols - (1 - p)).abs().max().item<double>(), 6.0 * std::sqrt(p * (1 - p) / 300)) << p;
    }
}

// forward_hidden_tail (the last layer only for the kept positions) equals
// forward_hidden's states of those positions, on every architecture (Llama
// overrides it; the others narrow the full pass).
TEST(FusedKernels, HiddenTailEqualsTheFullPassNarrowed) {
    for (const std::string arch : {"llama", "gptneox", "gpt2"}) {
        for (auto dt : {torch::kFloat, torch::kBFloat16}) {
            const ModelConfig c = config(arch);
            auto net = random_net(c, dt);
            const auto in = inputs(c, 3, 40);
            c10::InferenceMode guard;
            const auto full = net->forward_hidden(in.ids, in.pos).to(torch::kFloat);
            for (int64_t first : {1, 17, 39}) {
                const auto tail = net->forward_hidden_tail(in.ids, in.pos, first).to(torch::kFloat);
                ASSERT_EQ(tail.size(1), 40 - first);
                const auto want = full.narrow(1, first, 40 - first);
                const double scale = want.abs().max().item<double>();
                const double diff = (tail - want).abs().max().item<double>();
                // The same operations on fewer rows: equal up to GEMM blocking (fp32),
                // or a bf16 rounding of the last layer (2^-8 of the scale).
                EXPECT_LE(diff, (dt == torch::kFloat ? 1e-5 : 8e-3) * scale) << arch << " first " << first;
            }
        }
    }
}

// Engine::score's per-token statistics (fused per-row kernel) against the same
// quantities computed here in double from the model's own logits
// (Engine::last_logits): a one-token reference r after prompt p is scored at
// the prompt's last position, whose logits last_logits(p) returns.
TEST(FusedKernels, ScoreStatisticsMatchLogits) {
    const ModelConfig c = config("llama");  // n_vocab comes from the byte vocabulary
    for (DType dt : {DType::kF32, DType::kBF16}) {
        auto model = Model::random_llama(c, make_byte_vocab(), 5, LoadParams{dt, 0}, 0.3);
        Engine engine(model);
        std::mt19937 rng(3);
        std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model->config().n_vocab) - 1);
        std::vector<ScoreRequest> reqs;
        std::vector<std::vector<int32_t>> prompts;
        for (int i = 0; i < 12; ++i) {
            ScoreRequest r;
            r.prompt.resize(3 + i);
            for (auto& t : r.prompt) t = tok(rng);
            r.reference = {tok(rng)};
            prompts.push_back(r.prompt);
            reqs.push_back(r);
        }
        // One request's target is the argmax itself (rank 1, n_pre 1).
        const auto logits = engine.last_logits(prompts);
        const auto& z0 = logits[0];
        reqs[0].reference = {static_cast<int32_t>(std::max_element(z0.begin(), z0.end()) - z0.begin())};
        const auto scores = engine.score(reqs);
        for (size_t i = 0; i < reqs.size(); ++i) {
            const auto& z = logits[i];
            const int32_t target = reqs[i].reference[0];
            double zmax = -1e300;
            size_t arg = 0;
            for (size_t v = 0; v < z.size(); ++v)
                if (z[v] > zmax) zmax = z[v], arg = v;  // first maximum
            double sum = 0;
            for (float v : z) sum += std::exp(v - zmax);
            const double lse = zmax + std::log(sum);
            double h = 0, e2 = 0;
            int rank = 1;
            for (float v : z) {
                const double lp = v - lse, p = std::exp(lp);
                h -= p * lp;
                e2 += p * lp * lp;
                rank += v > z[target];
            }
            const auto& s = scores[i];
            const double tol = 1e-4;
            EXPECT_EQ(s.argmax[0], static_cast<int32_t>(arg)) << i;
            EXPECT_EQ(s.rank[0], rank) << i;
            EXPECT_NEAR(s.logprob[0], z[target] - lse, tol) << i;
            EXPECT_NEAR(s.entropy[0], h, tol) << i;
            EXPECT_NEAR(s.mean_logp[0], -h, tol) << i;
            EXPECT_NEAR(s.var_logp[0], e2 - h * h, tol * (1 + e2)) << i;
            EXPECT_NEAR(s.top1_prob[0], std::exp(zmax - lse), tol) << i;
            EXPECT_EQ(s.n_pre, s.argmax[0] == target ? 1 : 0) << i;
        }
        EXPECT_EQ(scores[0].rank[0], 1);
        EXPECT_EQ(scores[0].n_pre, 1);
    }
}

}  // namespace
}  // namespace memskew
