// Parity of the LibTorch Llama (src/model/llama.cpp) + engine against an
// independent naive forward pass written here with plain loops, from the
// published definition of the architecture (Hugging Face modeling_llama):
//
//   h_0 = embed[ids]
//   per layer: h += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))  n1 = rmsnorm(h)
//              h += down_proj(silu(gate_proj(n2)) * up_proj(n2))                    n2 = rmsnorm(h)
//   logits = lm_head(rmsnorm(h))   (tied: embed^T)
//   rmsnorm(x) = w * x * rsqrt(mean(x^2) + eps)
//   rope: pairs (i, i + hd/2), angle pos * base^(-2i/hd), x*cos + rotate_half(x)*sin
//   GQA: query head h reads KV head h / (H / Hkv); causal softmax(q.k / sqrt(hd))
//
// LibTorch is used only to read the weights out of the module's parameters;
// the computation is loops over std::vector. The reference keeps weights as
// float (what the module holds in fp32) and accumulates activations in
// double, so its own rounding error is far below the tolerances checked.
//
// Prints the max differences, llm.c test_gpt2 style.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "model/model-impl.h"
#include "test-util.h"

namespace memskew {
namespace {

// ---------------------------------------------------------------------------
// Naive reference
// ---------------------------------------------------------------------------

std::vector<float> weight_vector(const torch::nn::Module& net, const std::string& name) {
    const auto params = net.named_parameters(/*recurse=*/true);
    const torch::Tensor* t = params.find(name);
    if (!t) throw std::runtime_error("missing parameter " + name);
    auto c = t->detach().to(torch::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Rounds to the nearest bfloat16 (ties to even), as torch's float -> bf16 conversion does.
float round_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);  // finite values only
    u &= 0xffff0000u;
    float y;
    std::memcpy(&y, &u, 4);
    return y;
}

struct NaiveLlama {
    struct Layer {
        std::vector<float> attn_norm, wq, wk, wv, wo;  // w*: [out][in] row-major (torch Linear layout)
        std::vector<float> ffn_norm, w_gate, w_up, w_down;
    };
    ModelConfig cfg;
    std::vector<float> embed;    // [V][D]
    std::vector<float> norm;     // [D]
    std::vector<float> lm_head;  // [V][D]; empty when tied
    std::vector<Layer> layers;

    static NaiveLlama from(const Model& m) {
        NaiveLlama n;
        n.cfg = m.config();
        // The reference implements plain Llama: no biases, full rotary, no rope scaling.
        if (n.cfg.arch != "llama" || n.cfg.qkv_bias || n.cfg.o_bias || n.cfg.mlp_bias || n.cfg.rotary_pct != 1.0 ||
            !n.cfg.rope_scaling.empty() || n.cfg.hidden_act != "silu")
            throw std::runtime_error("naive reference: unsupported Llama variant " + n.cfg.name);
        const auto& net = *model_impl(m).net;
        n.embed = weight_vector(net, "model.embed_tokens.weight");
        n.norm = weight_vector(net, "model.norm.weight");
        if (!n.cfg.tied_output) n.lm_head = weight_vector(net, "lm_head.weight");
        for (int64_t l = 0; l < n.cfg.n_layers; ++l) {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            Layer L;
            L.attn_norm = weight_vector(net, p + "input_layernorm.weight");
            L.wq = weight_vector(net, p + "self_attn.q_proj.weight");
            L.wk = weight_vector(net, p + "self_attn.k_proj.weight");
            L.wv = weight_vector(net, p + "self_attn.v_proj.weight");
            L.wo = weight_vector(net, p + "self_attn.o_proj.weight");
            L.ffn_norm = weight_vector(net, p + "post_attention_layernorm.weight");
            L.w_gate = weight_vector(net, p + "mlp.gate_proj.weight");
            L.w_up = weight_vector(net, p + "mlp.up_proj.weight");
            L.w_down = weight_vector(net, p + "mlp.down_proj.weight");
            n.layers.push_back(std::move(L));
        }
        return n;
    }

    // The same model with every weight rounded to bf16: the engine's bf16
    // weights exactly, so a comparison against it isolates the rounding of
    // activations from the rounding of weights.
    NaiveLlama rounded_to_bf16() const {
        NaiveLlama n = *this;
        auto r = [](std::vector<float>& w) {
            for (auto& x : w) x = round_bf16(x);
        };
        r(n.embed), r(n.norm), r(n.lm_head);
        for (auto& L : n.layers) {
            for (auto* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
                r(*w);
        }
        return n;
    }

    // y[o] = sum_i W[o][i] x[i]
    static std::vector<double> linear(const std::vector<float>& w, const std::vector<double>& x, int64_t n_out) {
        const int64_t n_in = static_cast<int64_t>(x.size());
        std::vector<double> y(n_out, 0.0);
        for (int64_t o = 0; o < n_out; ++o) {
            double acc = 0.0;
            const float* row = w.data() + o * n_in;
            for (int64_t i = 0; i < n_in; ++i) acc += static_cast<double>(row[i]) * x[i];
            y[o] = acc;
        }
        return y;
    }

    std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<float>& w) const {
        double ss = 0.0;
        for (double v : x) ss += v * v;
        const double r = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + cfg.norm_eps);
        std::vector<double> y(x.size());
        for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<double>(w[i]) * (x[i] * r);
        return y;
    }

    // Rotates every head of `x` ([n_heads * hd]) in place for position `pos`.
    void rope(std::vector<double>& x, int64_t n_heads, int64_t pos) const {
        const int64_t hd = cfg.head_dim(), half = hd / 2;
        for (int64_t h = 0; h < n_heads; ++h) {
            double* v = x.data() + h * hd;
            for (int64_t i = 0; i < half; ++i) {
                const double inv_freq = std::pow(cfg.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
                const double a = static_cast<double>(pos) * inv_freq;
                const double c = std::cos(a), s = std::sin(a);
                const double x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;         // x*cos + (-x2)*sin
                v[i + half] = x2 * c + x1 * s;  // x*cos + ( x1)*sin
            }
        }
    }

    // Logits of every position: [T][V].
    std::vector<std::vector<double>> forward(const std::vector<int32_t>& ids) const {
        const int64_t T = static_cast<int64_t>(ids.size()), D = cfg.dim, V = cfg.n_vocab;
        const int64_t H = cfg.n_heads, Hkv = cfg.n_kv_heads, hd = cfg.head_dim(), R = H / Hkv, F = cfg.ffn_dim;
        std::vector<std::vector<double>> h(T, std::vector<double>(D));
        for (int64_t t = 0; t < T; ++t)
            for (int64_t d = 0; d < D; ++d) h[t][d] = embed[ids[t] * D + d];
        for (const Layer& L : layers) {
            std::vector<std::vector<double>> q(T), k(T), v(T);
            for (int64_t t = 0; t < T; ++t) {
                const auto x = rmsnorm(h[t], L.attn_norm);
                q[t] = linear(L.wq, x, H * hd);
                k[t] = linear(L.wk, x, Hkv * hd);
                v[t] = linear(L.wv, x, Hkv * hd);
                rope(q[t], H, t);
                rope(k[t], Hkv, t);
            }
            const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
            for (int64_t t = 0; t < T; ++t) {
                std::vector<double> att(H * hd, 0.0);
                for (int64_t head = 0; head < H; ++head) {
                    const int64_t g = head / R;
                    std::vector<double> s(t + 1);
                    double mx = -INFINITY;
                    for (int64_t j = 0; j <= t; ++j) {  // causal: keys 0..t
                        double dot = 0.0;
                        for (int64_t i = 0; i < hd; ++i) dot += q[t][head * hd + i] * k[j][g * hd + i];
                        s[j] = dot * scale;
                        mx = std::max(mx, s[j]);
                    }
                    double sum = 0.0;
                    for (auto& e : s) sum += (e = std::exp(e - mx));
                    for (int64_t j = 0; j <= t; ++j)
                        for (int64_t i = 0; i < hd; ++i) att[head * hd + i] += s[j] / sum * v[j][g * hd + i];
                }
                const auto o = linear(L.wo, att, D);
                for (int64_t d = 0; d < D; ++d) h[t][d] += o[d];
            }
            for (int64_t t = 0; t < T; ++t) {
                const auto x = rmsnorm(h[t], L.ffn_norm);
                auto gate = linear(L.w_gate, x, F);
                const auto up = linear(L.w_up, x, F);
                for (int64_t f = 0; f < F; ++f) gate[f] = gate[f] / (1.0 + std::exp(-gate[f])) * up[f];
                const auto down = linear(L.w_down, gate, D);
                for (int64_t d = 0; d < D; ++d) h[t][d] += down[d];
            }
        }
        std::vector<std::vector<double>> logits(T);
        for (int64_t t = 0; t < T; ++t) logits[t] = linear(cfg.tied_output ? embed : lm_head, rmsnorm(h[t], norm), V);
        return logits;
    }
};

// ---------------------------------------------------------------------------
// Models and inputs
// ---------------------------------------------------------------------------

constexpr uint64_t kSeed = 1234;

ModelConfig tiny_gqa_config(bool tied) {
    ModelConfig c;
    c.name = tied ? "tiny-gqa-tied" : "tiny-gqa-untied";
    c.dim = 48;
    c.n_layers = 3;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.ffn_dim = 80;
    c.max_ctx = 128;
    c.tied_output = tied;
    return c;
}

// init_std 0.2: with dim 48 this gives O(1) pre-softmax scores and logits of
// a few units, so attention and the norms are exercised, not bypassed.
std::shared_ptr<Model> tiny_gqa(bool tied, DType dtype) {
    return Model::random_llama(tiny_gqa_config(tied), make_byte_vocab(), kSeed, LoadParams{dtype, 0}, 0.2);
}

std::vector<std::vector<int32_t>> test_sequences(const Model& m, size_t n, const std::vector<size_t>& lengths) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(m.config().n_vocab) - 1);
    std::vector<std::vector<int32_t>> out;
    for (size_t i = 0; i < n; ++i) {
        std::vector<int32_t> s(lengths[i % lengths.size()]);
        for (auto& t : s) t = tok(rng);
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<std::vector<int32_t>> stories_sequences(const Model& m) {
    const Tokenizer& tk = m.tokenizer();
    auto seqs = test_sequences(m, 2, {23, 1});
    seqs.insert(seqs.begin(), tk.encode("Once upon a time, there was a little girl named Lily. She loved to play "
                                        "outside in the park with her dog.",
                                        /*add_special=*/true));
    return seqs;
}

struct Diff {
    double max_abs = 0.0;
    double max_ref = 0.0;  // max |reference logit|, the scale of the bf16 bound
    size_t n_argmax_mismatch = 0;
    size_t n_positions = 0;
};

// Engine logits on every prefix of every sequence (one last_logits batch per
// sequence, so the prefixes of different lengths are right-padded together)
// against the naive logits of all positions.
Diff compare_logits(const NaiveLlama& ref, const std::shared_ptr<Model>& model,
                    const std::vector<std::vector<int32_t>>& seqs) {
    Engine engine(model);
    Diff d;
    for (const auto& seq : seqs) {
        const auto want = ref.forward(seq);
        std::vector<std::vector<int32_t>> prefixes;
        for (size_t t = 1; t <= seq.size(); ++t) prefixes.emplace_back(seq.begin(), seq.begin() + t);
        const auto got = engine.last_logits(prefixes);
        EXPECT_EQ(got.size(), seq.size());
        for (size_t t = 0; t < seq.size(); ++t) {
            EXPECT_EQ(got[t].size(), want[t].size());
            size_t a_got = 0, a_want = 0;
            for (size_t v = 0; v < want[t].size(); ++v) {
                d.max_abs = std::max(d.max_abs, std::abs(static_cast<double>(got[t][v]) - want[t][v]));
                d.max_ref = std::max(d.max_ref, std::abs(want[t][v]));
                if (got[t][v] > got[t][a_got]) a_got = v;
                if (want[t][v] > want[t][a_want]) a_want = v;
            }
            d.n_argmax_mismatch += a_got != a_want;
            ++d.n_positions;
        }
    }
    return d;
}

constexpr double kF32Tol = 1e-4;

// bf16 keeps 8 significant bits: unit roundoff u = 2^-8 ~ 3.9e-3. Weights
// are rounded once, and every GEMM/elementwise output (the residual stream
// included) is rounded again, ~10 roundings per layer on the path to a logit.
// Independent roundings add like a random walk: relative error ~u*sqrt(10 L),
// 5-7u for 3-5 layers; networks with gain > 1 per layer (the init_std 0.2
// random models, whose attention is sharp) amplify it further.
// Measured, max |diff| / max |z| (and, in brackets, against a reference with
// the same bf16-rounded weights, i.e. activation rounding alone):
//   stories260K 2.9u (2.9u), tiny GQA tied 9.0u (7.5u), untied 15.1u (14.1u).
// Activation rounding dominates, as expected. Bound: 32u = 2^-3 of the logit
// scale, 2x the worst measurement. A real bug (wrong KV head mapping, wrong
// rotary pairs, missing 1/sqrt(hd), a leaking mask) gives O(1) relative
// errors - the f32 checks above catch those at 1e-4 anyway; this one guards
// the bf16 conversions.
constexpr double kBf16RelTol = 32.0 / 256.0;

void check_f32(const char* name, const std::shared_ptr<Model>& model, const std::vector<std::vector<int32_t>>& seqs) {
    const auto ref = NaiveLlama::from(*model);
    const Diff d = compare_logits(ref, model, seqs);
    std::printf("[parity] %-22s f32  logits: max |diff| = %.3e  (max |z| %.2f, %zu positions, %zu argmax "
                "mismatches)  tol %.0e  %s\n",
                name, d.max_abs, d.max_ref, d.n_positions, d.n_argmax_mismatch, kF32Tol,
                d.max_abs <= kF32Tol ? "OK" : "FAIL");
    EXPECT_LE(d.max_abs, kF32Tol) << name;
    EXPECT_EQ(d.n_argmax_mismatch, 0u) << name;
}

// `ref_model` fp32, `bf16_model` the same weights loaded/converted to bf16.
void check_bf16(const char* name, const std::shared_ptr<Model>& ref_model, const std::shared_ptr<Model>& bf16_model,
                const std::vector<std::vector<int32_t>>& seqs) {
    ASSERT_EQ(bf16_model->dtype(), DType::kBF16);
    const auto ref = NaiveLlama::from(*ref_model);  // fp32 weights: the reference is the unrounded model
    const Diff d = compare_logits(ref, bf16_model, seqs);
    const double scale = std::max(1.0, d.max_ref);
    const double rel = d.max_abs / scale;
    // Diagnostic: the part of the error left when the reference has the same bf16 weights.
    const Diff dw = compare_logits(ref.rounded_to_bf16(), bf16_model, seqs);
    std::printf("[parity] %-22s bf16 vs naive with bf16-rounded weights: max |diff| = %.3e (%.1f u of max |z|)\n",
                name, dw.max_abs, dw.max_abs / scale * 256.0);
    std::printf("[parity] %-22s bf16 logits: max |diff| = %.3e  (max |z| %.2f, rel %.4f = %.1f u, %zu/%zu "
                "argmax mismatches)  tol %.4f rel  %s\n",
                name, d.max_abs, d.max_ref, rel, rel * 256.0, d.n_argmax_mismatch, d.n_positions, kBf16RelTol,
                rel <= kBf16RelTol ? "OK" : "FAIL");
    EXPECT_LE(rel, kBf16RelTol) << name;
}

// ---------------------------------------------------------------------------
// Batching invariance: score() right-pads a batch internally; the per-token
// results of a sample must not depend on its batch mates.
// ---------------------------------------------------------------------------

struct BatchDiff {
    double logprob = 0.0, entropy = 0.0;
    double logprob_scaled = 0.0;  // max |diff| / max(1, |logprob|), the quantity checked
    double logprob_at_max = 0.0;  // the log-probability where the largest difference occurred
    size_t argmax_mismatch = 0, n_pre_mismatch = 0, n_tokens = 0;
};

BatchDiff batch_invariance(const std::shared_ptr<Model>& model) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model->config().n_vocab) - 1);
    const std::vector<std::pair<size_t, size_t>> shapes = {{1, 1}, {9, 20}, {3, 4}, {30, 7}, {1, 40}, {12, 12}};
    std::vector<ScoreRequest> batch;
    for (auto [p, r] : shapes) {
        ScoreRequest req;
        for (size_t i = 0; i < p; ++i) req.prompt.push_back(tok(rng));
        for (size_t i = 0; i < r; ++i) req.reference.push_back(tok(rng));
        batch.push_back(std::move(req));
    }
    Engine engine(model);
    const auto together = engine.score(batch);
    BatchDiff d;
    for (size_t b = 0; b < batch.size(); ++b) {
        const auto alone = engine.score({batch[b]});
        const TokenScores &x = together[b], &y = alone[0];
        EXPECT_EQ(x.size(), batch[b].reference.size());
        EXPECT_EQ(x.size(), y.size());
        for (size_t j = 0; j < x.size(); ++j) {
            const double dl = std::abs(x.logprob[j] - y.logprob[j]);
            d.logprob_scaled = std::max(d.logprob_scaled, dl / std::max(1.0, std::abs(static_cast<double>(y.logprob[j]))));
            if (dl > d.logprob) {
                d.logprob = dl;
                d.logprob_at_max = y.logprob[j];
            }
            d.entropy = std::max(d.entropy, static_cast<double>(std::abs(x.entropy[j] - y.entropy[j])));
            d.argmax_mismatch += x.argmax[j] != y.argmax[j];
            ++d.n_tokens;
        }
        d.n_pre_mismatch += x.n_pre != y.n_pre;
    }
    return d;
}

// fp32: the batch shape changes GEMM blocking and hence the summation order,
// a few ulps of the logits (~2.4e-6 at |z| ~ 20). log q = z_ref - logsumexp(z)
// inherits that absolute error, so the bound is 1e-5 absolute for |log q| <= 1
// and 1e-5 relative beyond (stories260K: 1.14e-5 at log q = -21.0, i.e. 5e-7
// relative). A padding leak or a wrong row gather gives errors of O(0.1-10).
constexpr double kBatchF32Tol = 1e-5;
// bf16: a different accumulation order flips single bf16 roundings (2^-8
// relative) of activations, which then propagate. Measured up to 3.6e-2 at
// |log q| ~ 9 (4e-3 scaled); the bound is 2.5x that.
constexpr double kBatchBf16Tol = 1e-2;
// Entropy (nats, <= log V): measured up to 1.6e-2 in bf16.
constexpr double kBatchBf16EntropyTol = 5e-2;

void check_batch_invariance(const char* name, const std::shared_ptr<Model>& model) {
    const bool f32 = model->dtype() == DType::kF32;
    const double tol = f32 ? kBatchF32Tol : kBatchBf16Tol;
    const double tol_entropy = f32 ? kBatchF32Tol : kBatchBf16EntropyTol;
    const BatchDiff d = batch_invariance(model);
    std::printf("[batch ] %-22s %-4s logprob: max |diff| = %.3e (at logprob %.2f), max |diff|/max(1,|logprob|) = "
                "%.3e, entropy %.3e (%zu tokens, %zu argmax / %zu n_pre mismatches)  tol %.0e  %s\n",
                name, dtype_name(model->dtype()), d.logprob, d.logprob_at_max, d.logprob_scaled, d.entropy,
                d.n_tokens, d.argmax_mismatch, d.n_pre_mismatch, tol, d.logprob_scaled <= tol ? "OK" : "FAIL");
    EXPECT_LE(d.logprob_scaled, tol) << name;
    EXPECT_LE(d.entropy, tol_entropy) << name;
    if (f32) {
        EXPECT_EQ(d.argmax_mismatch, 0u) << name;
        EXPECT_EQ(d.n_pre_mismatch, 0u) << name;
    }
}

// ---------------------------------------------------------------------------

TEST(LlamaParity, Stories260KF32) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    auto model = Model::load(path, LoadParams{DType::kF32, 0});
    check_f32("stories260K", model, stories_sequences(*model));
}

TEST(LlamaParity, Stories260KBF16) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    auto f32 = Model::load(path, LoadParams{DType::kF32, 0});
    auto bf16 = Model::load(path, LoadParams{DType::kBF16, 0});
    check_bf16("stories260K", f32, bf16, stories_sequences(*f32));
}

TEST(LlamaParity, RandomGqaF32) {
    for (bool tied : {true, false}) {
        auto model = tiny_gqa(tied, DType::kF32);
        ASSERT_EQ(model->config().tied_output, tied);
        ASSERT_EQ(model_impl(*model).net->named_parameters().contains("lm_head.weight"), !tied);
        check_f32(tied ? "tiny-gqa tied" : "tiny-gqa untied", model, test_sequences(*model, 3, {37, 1, 12}));
    }
}

TEST(LlamaParity, RandomGqaBF16) {
    for (bool tied : {true, false}) {
        auto f32 = tiny_gqa(tied, DType::kF32);
        auto bf16 = tiny_gqa(tied, DType::kBF16);  // same seed: the same weights, rounded
        check_bf16(tied ? "tiny-gqa tied" : "tiny-gqa untied", f32, bf16, test_sequences(*f32, 3, {37, 1, 12}));
    }
}

TEST(LlamaParity, BatchInvariance) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
        check_batch_invariance("tiny-gqa tied", tiny_gqa(true, dt));
        check_batch_invariance("tiny-gqa untied", tiny_gqa(false, dt));
    }
}

TEST(LlamaParity, BatchInvarianceStories260K) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    for (DType dt : {DType::kF32, DType::kBF16})
        check_batch_invariance("stories260K", Model::load(path, LoadParams{dt, 0}));
}

}  // namespace
}  // namespace memskew
