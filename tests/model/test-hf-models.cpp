// Hugging Face folders: a tiny random model of each architecture is saved with
// Model::save_hf, loaded back with Model::load, and its logits are checked
// against an independent naive forward pass written here with plain loops
// over std::vector (no LibTorch), reading the weights straight from the saved
// model.safetensors and the shapes from the saved config.json, so the saved
// layout and config are checked too. The references follow the published
// Hugging Face definitions:
//
//   Llama/Qwen2 (modeling_llama, modeling_qwen2): RMSNorm, q/k/v (+bias),
//     rotary pairs (i, i + hd/2), GQA, SwiGLU, h += attn(n1); h += mlp(n2).
//   GPT-NeoX (modeling_gpt_neox): LayerNorm, fused qkv viewed per head as
//     [q | k | v], rotary on the first rotary_ndims = int(hd * rotary_pct)
//     dims with rotate_half, gelu (erf), parallel residual
//     x + attn(ln1 x) + mlp(ln2 x) or sequential, untied embed_out.
//   GPT-2 (modeling_gpt2): learned positions, Conv1D y = x W + b with W
//     [in, out], c_attn split [q | k | v] over the hidden size, gelu_new (tanh),
//     lm_head tied to wte.
//
// Also: bad folders give typed errors naming the file / tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/hf-config.h"
#include "memskew/safetensors.h"
#include "memskew/tokenizer.h"
#include "model/model-impl.h"
#include "test-util.h"

namespace fs = std::filesystem;

namespace memskew {
namespace {

using Vec = std::vector<double>;
using test::expect_error;

// ---------------------------------------------------------------------------
// Naive references
// ---------------------------------------------------------------------------

struct Weights {
    std::shared_ptr<SafetensorsFile> file;
    std::vector<float> operator()(const std::string& name) const { return file->to_float(name); }
    bool has(const std::string& name) const { return file->contains(name); }
};

// y[o] = sum_i W[o][i] x[i] (+ b[o]); W row-major [out][in] (torch Linear).
Vec linear(const std::vector<float>& w, const Vec& x, int64_t n_out, const std::vector<float>* b = nullptr) {
    const int64_t n_in = static_cast<int64_t>(x.size());
    Vec y(n_out, 0.0);
    for (int64_t o = 0; o < n_out; ++o) {
        double acc = b ? (*b)[o] : 0.0;
        for (int64_t i = 0; i < n_in; ++i) acc += static_cast<double>(w[o * n_in + i]) * x[i];
        y[o] = acc;
    }
    return y;
}

// Conv1D: y[o] = sum_i x[i] W[i][o] + b[o]; W row-major [in][out].
Vec conv1d(const std::vector<float>& w, const std::vector<float>& b, const Vec& x) {
    const int64_t n_in = static_cast<int64_t>(x.size()), n_out = static_cast<int64_t>(b.size());
    Vec y(n_out);
    for (int64_t o = 0; o < n_out; ++o) {
        double acc = b[o];
        for (int64_t i = 0; i < n_in; ++i) acc += x[i] * static_cast<double>(w[i * n_out + o]);
        y[o] = acc;
    }
    return y;
}

Vec rms_norm(const Vec& x, const std::vector<float>& w, double eps) {
    double ss = 0.0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = w[i] * (x[i] * r);
    return y;
}

Vec layer_norm(const Vec& x, const std::vector<float>& w, const std::vector<float>& b, double eps) {
    double mean = 0.0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    double var = 0.0;
    for (double v : x) var += (v - mean) * (v - mean);
    var /= static_cast<double>(x.size());
    const double r = 1.0 / std::sqrt(var + eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) * r * w[i] + b[i];
    return y;
}

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
    const double k = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double silu(double x) { return x / (1.0 + std::exp(-x)); }

// rotate_half rotary on the first `rot` dims of each of `n_heads` heads of size hd.
void rotary(Vec& x, int64_t n_heads, int64_t hd, int64_t rot, double base, int64_t pos) {
    const int64_t half = rot / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        double* v = x.data() + h * hd;
        for (int64_t i = 0; i < half; ++i) {
            const double a = static_cast<double>(pos) * std::pow(base, -2.0 * static_cast<double>(i) / rot);
            const double c = std::cos(a), s = std::sin(a), x1 = v[i], x2 = v[i + half];
            v[i] = x1 * c - x2 * s;
            v[i + half] = x2 * c + x1 * s;
        }
    }
}

// Causal attention for position t over keys 0..t. q(t) [H*hd]; k(j), v(j) per
// key head; query head h reads key head h / (H / Hkv).
Vec attention(const std::vector<Vec>& q, const std::vector<Vec>& k, const std::vector<Vec>& v, int64_t t, int64_t H,
              int64_t Hkv, int64_t hd) {
    Vec out(H * hd, 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / Hkv);
        Vec s(t + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
            double dot = 0.0;
            for (int64_t i = 0; i < hd; ++i) dot += q[t][h * hd + i] * k[j][g * hd + i];
            s[j] = dot * scale;
            mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
            for (int64_t i = 0; i < hd; ++i) out[h * hd + i] += s[j] / sum * v[j][g * hd + i];
    }
    return out;
}

using Logits = std::vector<Vec>;  // [T][V]

Logits naive_llama(const HfConfig& c, const Weights& W, const std::vector<int32_t>& ids) {
    const int64_t T = static_cast<int64_t>(ids.size()), D = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads,
                  Hkv = c.num_key_value_heads, hd = c.head_dim, F = c.intermediate_size;
    const auto embed = W("model.embed_tokens.weight");
    std::vector<Vec> h(T, Vec(D));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) h[t][d] = embed[ids[t] * D + d];
    auto bias = [&](const std::string& name, bool present) {
        EXPECT_EQ(W.has(name), present) << name;
        return present ? W(name) : std::vector<float>();
    };
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        const auto n1 = W(p + "input_layernorm.weight"), n2 = W(p + "post_attention_layernorm.weight");
        const auto wq = W(p + "self_attn.q_proj.weight"), wk = W(p + "self_attn.k_proj.weight"),
                   wv = W(p + "self_attn.v_proj.weight"), wo = W(p + "self_attn.o_proj.weight");
        const auto bq = bias(p + "self_attn.q_proj.bias", c.qkv_bias), bk = bias(p + "self_attn.k_proj.bias", c.qkv_bias),
                   bv = bias(p + "self_attn.v_proj.bias", c.qkv_bias), bo = bias(p + "self_attn.o_proj.bias", c.o_bias);
        const auto wg = W(p + "mlp.gate_proj.weight"), wu = W(p + "mlp.up_proj.weight"), wd = W(p + "mlp.down_proj.weight");
        const auto bg = bias(p + "mlp.gate_proj.bias", c.mlp_bias), bu = bias(p + "mlp.up_proj.bias", c.mlp_bias),
                   bd = bias(p + "mlp.down_proj.bias", c.mlp_bias);
        auto opt = [](const std::vector<float>& b) { return b.empty() ? nullptr : &b; };
        std::vector<Vec> q(T), k(T), v(T);
        for (int64_t t = 0; t < T; ++t) {
            const auto x = rms_norm(h[t], n1, c.norm_eps);
            q[t] = linear(wq, x, H * hd, opt(bq));
            k[t] = linear(wk, x, Hkv * hd, opt(bk));
            v[t] = linear(wv, x, Hkv * hd, opt(bv));
            rotary(q[t], H, hd, hd, c.rope_theta, t);
            rotary(k[t], Hkv, hd, hd, c.rope_theta, t);
        }
        for (int64_t t = 0; t < T; ++t) {
            const auto o = linear(wo, attention(q, k, v, t, H, Hkv, hd), D, opt(bo));
            for (int64_t d = 0; d < D; ++d) h[t][d] += o[d];
        }
        for (int64_t t = 0; t < T; ++t) {
            const auto x = rms_norm(h[t], n2, c.norm_eps);
            auto g = linear(wg, x, F, opt(bg));
            const auto u = linear(wu, x, F, opt(bu));
            for (int64_t f = 0; f < F; ++f) g[f] = silu(g[f]) * u[f];
            const auto down = linear(wd, g, D, opt(bd));
            for (int64_t d = 0; d < D; ++d) h[t][d] += down[d];
        }
    }
    const auto norm = W("model.norm.weight");
    const auto head = c.tie_word_embeddings ? embed : W("lm_head.weight");
    Logits out(T);
    for (int64_t t = 0; t < T; ++t) out[t] = linear(head, rms_norm(h[t], norm, c.norm_eps), V);
    return out;
}

Logits naive_gpt_neox(const HfConfig& c, const Weights& W, const std::vector<int32_t>& ids) {
    const int64_t T = static_cast<int64_t>(ids.size()), D = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads,
                  hd = D / H, F = c.intermediate_size;
    const int64_t rot = static_cast<int64_t>(static_cast<double>(hd) * c.partial_rotary_factor);  // rotary_ndims
    const auto embed = W("gpt_neox.embed_in.weight");
    std::vector<Vec> h(T, Vec(D));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) h[t][d] = embed[ids[t] * D + d];
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
        const auto ln1w = W(p + "input_layernorm.weight"), ln1b = W(p + "input_layernorm.bias");
        const auto ln2w = W(p + "post_attention_layernorm.weight"), ln2b = W(p + "post_attention_layernorm.bias");
        const auto wqkv = W(p + "attention.query_key_value.weight"), bqkv = W(p + "attention.query_key_value.bias");
        const auto wo = W(p + "attention.dense.weight"), bo = W(p + "attention.dense.bias");
        const auto w1 = W(p + "mlp.dense_h_to_4h.weight"), b1 = W(p + "mlp.dense_h_to_4h.bias");
        const auto w2 = W(p + "mlp.dense_4h_to_h.weight"), b2 = W(p + "mlp.dense_4h_to_h.bias");
        auto mlp = [&](const Vec& x) {
            auto a = linear(w1, layer_norm(x, ln2w, ln2b, c.norm_eps), F, &b1);
            for (auto& e : a) e = gelu_erf(e);
            return linear(w2, a, D, &b2);
        };
        std::vector<Vec> q(T, Vec(D)), k(T, Vec(D)), v(T, Vec(D));
        for (int64_t t = 0; t < T; ++t) {
            const auto qkv = linear(wqkv, layer_norm(h[t], ln1w, ln1b, c.norm_eps), 3 * D, &bqkv);
            for (int64_t head = 0; head < H; ++head)  // per head [q | k | v]
                for (int64_t i = 0; i < hd; ++i) {
                    q[t][head * hd + i] = qkv[head * 3 * hd + i];
                    k[t][head * hd + i] = qkv[head * 3 * hd + hd + i];
                    v[t][head * hd + i] = qkv[head * 3 * hd + 2 * hd + i];
                }
            rotary(q[t], H, hd, rot, c.rope_theta, t);
            rotary(k[t], H, hd, rot, c.rope_theta, t);
        }
        std::vector<Vec> next = h;
        for (int64_t t = 0; t < T; ++t) {
            const auto a = linear(wo, attention(q, k, v, t, H, H, hd), D, &bo);
            if (c.use_parallel_residual) {
                const auto m = mlp(h[t]);
                for (int64_t d = 0; d < D; ++d) next[t][d] = h[t][d] + a[d] + m[d];
            } else {
                for (int64_t d = 0; d < D; ++d) next[t][d] = h[t][d] + a[d];
                const auto m = mlp(next[t]);
                for (int64_t d = 0; d < D; ++d) next[t][d] += m[d];
            }
        }
        h = std::move(next);
    }
    const auto lnw = W("gpt_neox.final_layer_norm.weight"), lnb = W("gpt_neox.final_layer_norm.bias");
    const auto head = W("embed_out.weight");
    Logits out(T);
    for (int64_t t = 0; t < T; ++t) out[t] = linear(head, layer_norm(h[t], lnw, lnb, c.norm_eps), V);
    return out;
}

Logits naive_gpt2(const HfConfig& c, const Weights& W, const std::vector<int32_t>& ids) {
    const int64_t T = static_cast<int64_t>(ids.size()), D = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads,
                  hd = D / H;
    const auto wte = W("transformer.wte.weight"), wpe = W("transformer.wpe.weight");
    std::vector<Vec> x(T, Vec(D));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) x[t][d] = static_cast<double>(wte[ids[t] * D + d]) + wpe[t * D + d];
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string p = "transformer.h." + std::to_string(l) + ".";
        const auto ln1w = W(p + "ln_1.weight"), ln1b = W(p + "ln_1.bias"), ln2w = W(p + "ln_2.weight"),
                   ln2b = W(p + "ln_2.bias");
        const auto wa = W(p + "attn.c_attn.weight"), ba = W(p + "attn.c_attn.bias");
        const auto wp = W(p + "attn.c_proj.weight"), bp = W(p + "attn.c_proj.bias");
        const auto wf = W(p + "mlp.c_fc.weight"), bf = W(p + "mlp.c_fc.bias");
        const auto wm = W(p + "mlp.c_proj.weight"), bm = W(p + "mlp.c_proj.bias");
        std::vector<Vec> q(T), k(T), v(T);
        for (int64_t t = 0; t < T; ++t) {
            const auto y = conv1d(wa, ba, layer_norm(x[t], ln1w, ln1b, c.norm_eps));  // [q | k | v] over D
            q[t].assign(y.begin(), y.begin() + D);
            k[t].assign(y.begin() + D, y.begin() + 2 * D);
            v[t].assign(y.begin() + 2 * D, y.end());
        }
        for (int64_t t = 0; t < T; ++t) {
            const auto a = conv1d(wp, bp, attention(q, k, v, t, H, H, hd));
            for (int64_t d = 0; d < D; ++d) x[t][d] += a[d];
        }
        for (int64_t t = 0; t < T; ++t) {
            auto f = conv1d(wf, bf, layer_norm(x[t], ln2w, ln2b, c.norm_eps));
            for (auto& e : f) e = gelu_tanh(e);
            const auto m = conv1d(wm, bm, f);
            for (int64_t d = 0; d < D; ++d) x[t][d] += m[d];
        }
    }
    EXPECT_TRUE(c.tie_word_embeddings);
    const auto lnw = W("transformer.ln_f.weight"), lnb = W("transformer.ln_f.bias");
    Logits out(T);
    for (int64_t t = 0; t < T; ++t) out[t] = linear(wte, layer_norm(x[t], lnw, lnb, c.norm_eps), V);
    return out;
}

// ---------------------------------------------------------------------------

std::vector<std::vector<int32_t>> random_sequences(int64_t n_vocab, const std::vector<size_t>& lengths) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(n_vocab) - 1);
    std::vector<std::vector<int32_t>> out;
    for (size_t n : lengths) {
        std::vector<int32_t> s(n);
        for (auto& t : s) t = tok(rng);
        out.push_back(std::move(s));
    }
    return out;
}

// Max |engine - naive| over every prefix of every sequence.
double max_logit_diff(const std::shared_ptr<Model>& model, const std::vector<std::vector<int32_t>>& seqs,
                      const std::function<Logits(const std::vector<int32_t>&)>& naive, double* max_ref) {
    Engine engine(model);
    double d = 0.0;
    for (const auto& seq : seqs) {
        const Logits want = naive(seq);
        std::vector<std::vector<int32_t>> prefixes;
        for (size_t t = 1; t <= seq.size(); ++t) prefixes.emplace_back(seq.begin(), seq.begin() + t);
        const auto got = engine.last_logits(prefixes);
        EXPECT_EQ(got.size(), seq.size());
        for (size_t t = 0; t < seq.size() && t < got.size(); ++t) {
            EXPECT_EQ(got[t].size(), want[t].size());
            for (size_t v = 0; v < want[t].size() && v < got[t].size(); ++v) {
                d = std::max(d, std::abs(static_cast<double>(got[t][v]) - want[t][v]));
                *max_ref = std::max(*max_ref, std::abs(want[t][v]));
            }
        }
    }
    return d;
}

constexpr double kF32Tol = 1e-4;

void check_architecture(const std::string& name, const ModelConfig& cfg, const std::string& want_class) {
    auto model = Model::random_llama(cfg, make_byte_vocab(), 11, LoadParams{DType::kF32, 0}, 0.2);
    const std::string dir = test::temp_dir() + "/" + name;
    model->save_hf(dir);
    ASSERT_TRUE(fs::exists(dir + "/config.json"));
    ASSERT_TRUE(fs::exists(dir + "/model.safetensors"));
    ASSERT_TRUE(fs::exists(dir + "/tokenizer.json"));
    const HfConfig hc = load_hf_config(dir);
    EXPECT_EQ(hc.architecture, want_class);
    auto loaded = Model::load(dir);
    const ModelConfig& lc = loaded->config();
    EXPECT_EQ(lc.arch, cfg.arch);
    EXPECT_EQ(lc.qkv_bias, cfg.qkv_bias);
    EXPECT_EQ(lc.o_bias, cfg.o_bias);
    EXPECT_EQ(lc.mlp_bias, cfg.mlp_bias);
    EXPECT_EQ(lc.parallel_residual, cfg.parallel_residual);
    EXPECT_EQ(lc.tied_output, cfg.tied_output);
    EXPECT_EQ(lc.n_kv_heads, cfg.n_kv_heads);
    EXPECT_DOUBLE_EQ(lc.rotary_pct, cfg.rotary_pct);
    EXPECT_EQ(lc.source_dtype, "F32");
    EXPECT_EQ(loaded->tokenizer().n_vocab(), model->tokenizer().n_vocab());

    Weights w{SafetensorsFile::open(dir + "/model.safetensors")};
    EXPECT_EQ(w.file->metadata().at("format"), "pt");
    std::function<Logits(const std::vector<int32_t>&)> naive;
    if (cfg.arch == "llama") naive = [&](const std::vector<int32_t>& ids) { return naive_llama(hc, w, ids); };
    if (cfg.arch == "gptneox") naive = [&](const std::vector<int32_t>& ids) { return naive_gpt_neox(hc, w, ids); };
    if (cfg.arch == "gpt2") naive = [&](const std::vector<int32_t>& ids) { return naive_gpt2(hc, w, ids); };
    const auto seqs = random_sequences(lc.n_vocab, {17, 1, 9});
    double max_ref = 0.0;
    const double d = max_logit_diff(loaded, seqs, naive, &max_ref);
    // The reloaded model against the model that was saved: the same weights.
    double unused = 0.0;
    Engine original(model);
    const double d_orig = max_logit_diff(
        loaded, seqs,
        [&](const std::vector<int32_t>& ids) {
            std::vector<std::vector<int32_t>> prefixes;
            for (size_t t = 1; t <= ids.size(); ++t) prefixes.emplace_back(ids.begin(), ids.begin() + t);
            Logits out;
            for (const auto& row : original.last_logits(prefixes)) out.emplace_back(row.begin(), row.end());
            return out;
        },
        &unused);
    std::printf("[hf] %-26s %-20s f32 logits vs naive: max |diff| = %.3e (max |z| %.2f)  vs saved model: %.3e  "
                "tol %.0e  %s\n",
                name.c_str(), want_class.c_str(), d, max_ref, d_orig, kF32Tol, d <= kF32Tol ? "OK" : "FAIL");
    EXPECT_LE(d, kF32Tol) << name;
    EXPECT_LE(d_orig, 1e-6) << name;
    EXPECT_GT(max_ref, 0.5) << name << ": logits too small to test anything";
}

ModelConfig base_config(const std::string& arch) {
    ModelConfig c;
    c.arch = arch;
    c.dim = 48;
    c.n_layers = 2;
    c.n_heads = 6;
    c.n_kv_heads = 6;
    c.ffn_dim = 80;
    c.max_ctx = 64;
    return c;
}

TEST(HfModels, Qwen2StyleGqaQkvBias) {
    ModelConfig c = base_config("llama");
    c.name = "qwen2";
    c.n_kv_heads = 2;
    c.qkv_bias = true;
    c.tied_output = true;
    c.rope_base = 1000000.0;
    c.norm_eps = 1e-6;
    check_architecture("qwen2-gqa-qkv-bias", c, "Qwen2ForCausalLM");
}

TEST(HfModels, LlamaGqaAllBiasesUntied) {
    ModelConfig c = base_config("llama");
    c.n_kv_heads = 3;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    check_architecture("llama-gqa-biases", c, "LlamaForCausalLM");
}

TEST(HfModels, GptNeoXParallelPartialRotary) {
    ModelConfig c = base_config("gptneox");
    c.dim = 64;
    c.n_heads = c.n_kv_heads = 4;  // head dim 16, rotary_ndims 4
    c.ffn_dim = 128;
    c.rotary_pct = 0.25;
    c.parallel_residual = true;
    c.hidden_act = "gelu";
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    check_architecture("gptneox-parallel", c, "GPTNeoXForCausalLM");
}

TEST(HfModels, GptNeoXSequentialResidual) {
    ModelConfig c = base_config("gptneox");
    c.dim = 64;
    c.n_heads = c.n_kv_heads = 4;
    c.ffn_dim = 128;
    c.rotary_pct = 0.25;
    c.parallel_residual = false;
    c.hidden_act = "gelu";
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    check_architecture("gptneox-sequential", c, "GPTNeoXForCausalLM");
}

TEST(HfModels, Gpt2) {
    ModelConfig c = base_config("gpt2");
    c.n_heads = c.n_kv_heads = 4;
    c.ffn_dim = 4 * c.dim;
    c.hidden_act = "gelu_new";
    c.tied_output = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    check_architecture("gpt2", c, "GPT2LMHeadModel");
}

// Older GPT-2 uploads (GPT2Model) have no "transformer." prefix and carry the
// attention mask buffers; tied checkpoints may also store lm_head.weight.
TEST(HfModels, Gpt2WithoutPrefixAndWithBuffers) {
    ModelConfig c = base_config("gpt2");
    c.n_heads = c.n_kv_heads = 4;
    c.ffn_dim = 4 * c.dim;
    c.hidden_act = "gelu_new";
    c.tied_output = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    auto model = Model::random_llama(c, make_byte_vocab(), 5, {}, 0.2);
    const std::string dir = test::temp_dir() + "/gpt2-old";
    model->save_hf(dir);
    auto st = SafetensorsFile::open(dir + "/model.safetensors");
    SafetensorsWriter w;
    for (const auto& t : st->tensors()) {
        const auto data = st->to_float(t);
        w.add_tensor(t.name.substr(std::string("transformer.").size()), t.shape, data.data());
        if (t.name == "transformer.wte.weight") w.add_tensor("lm_head.weight", t.shape, data.data());
    }
    std::vector<float> mask(64 * 64, 1.0f);
    w.add_tensor("h.0.attn.bias", {1, 1, 64, 64}, mask.data());
    fs::remove(dir + "/model.safetensors");
    w.write(dir + "/model.safetensors");
    auto loaded = Model::load(dir + "/config.json");
    const auto seqs = random_sequences(c.n_vocab > 0 ? c.n_vocab : 258, {12});
    const auto a = Engine(model).last_logits(seqs), b = Engine(loaded).last_logits(seqs);
    double d = 0.0;
    for (size_t v = 0; v < a[0].size(); ++v) d = std::max(d, std::abs(static_cast<double>(a[0][v]) - b[0][v]));
    std::printf("[hf] gpt2 without prefix: max |diff| = %.3e\n", d);
    EXPECT_LE(d, 1e-6);
}

// F16 / BF16 storage: weights are rounded on saving and converted back to fp32 on loading.
TEST(HfModels, HalfPrecisionStorage) {
    ModelConfig c = base_config("llama");
    auto model = Model::random_llama(c, make_byte_vocab(), 3, {}, 0.2);
    for (GgmlType t : {GgmlType::kF16, GgmlType::kBF16}) {
        const std::string dir = test::temp_dir() + (t == GgmlType::kF16 ? "/f16" : "/bf16");
        model->save_hf(dir, t);
        auto loaded = Model::load(dir);
        EXPECT_EQ(loaded->config().source_dtype, t == GgmlType::kF16 ? "F16" : "BF16");
        EXPECT_EQ(load_hf_config(dir).torch_dtype, t == GgmlType::kF16 ? "float16" : "bfloat16");
        const auto seqs = random_sequences(258, {10});
        const auto a = Engine(model).last_logits(seqs), b = Engine(loaded).last_logits(seqs);
        double d = 0.0;
        for (size_t v = 0; v < a[0].size(); ++v) d = std::max(d, std::abs(static_cast<double>(a[0][v]) - b[0][v]));
        std::printf("[hf] %s storage: max |logit diff| vs fp32 = %.3e\n", t == GgmlType::kF16 ? "F16" : "BF16", d);
        EXPECT_LE(d, t == GgmlType::kF16 ? 0.05 : 0.5);
        EXPECT_GT(d, 0.0);
    }
}

TEST(HfModels, SaveRefusesNonEmptyFolder) {
    auto model = Model::random_llama(base_config("llama"), make_byte_vocab(), 3);
    const std::string dir = test::temp_dir() + "/busy";
    fs::create_directories(dir);
    std::ofstream(dir + "/keep.txt") << "x";
    EXPECT_THROW(model->save_hf(dir), IoError);
    EXPECT_TRUE(fs::exists(dir + "/keep.txt"));
    EXPECT_FALSE(fs::exists(dir + "/config.json"));
}

// ---------------------------------------------------------------------------
// Bad folders
// ---------------------------------------------------------------------------

ModelConfig small_llama() {
    ModelConfig c;
    c.dim = 32;
    c.n_layers = 1;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_dim = 64;
    c.max_ctx = 32;
    return c;
}

std::string saved_small(const std::string& name) {
    const std::string dir = test::temp_dir() + "/" + name;
    Model::random_llama(small_llama(), make_byte_vocab(), 1)->save_hf(dir);
    return dir;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
    std::string s = test::read_file(path);
    const size_t at = s.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    write_text(path, s);
}

TEST(HfModelErrors, UnknownArchitecture) {
    const std::string dir = saved_small("arch");
    replace_in_file(dir + "/config.json", "LlamaForCausalLM", "MambaForCausalLM");
    expect_error<FormatError>([&] { Model::load(dir); }, {"config.json", "unsupported architecture 'MambaForCausalLM'"});
}

TEST(HfModelErrors, ShapeContradictsConfig) {
    const std::string dir = saved_small("shape");
    replace_in_file(dir + "/config.json", "\"intermediate_size\": 64", "\"intermediate_size\": 96");
    expect_error<FormatError>([&] { Model::load(dir); },
                              {"tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 32] but config.json "
                               "(hidden_size=32, intermediate_size=96) implies [96, 32]"});
}

TEST(HfModelErrors, DtypeNotFloat) {
    const std::string dir = saved_small("dtype");
    auto st = SafetensorsFile::open(dir + "/model.safetensors");
    SafetensorsWriter w;
    for (const auto& t : st->tensors()) {
        const auto data = st->to_float(t);
        if (t.name == "model.norm.weight") {
            std::vector<int32_t> ints(data.size(), 1);
            w.add_raw(t.name, SafetensorsDtype::kI32, t.shape, ints.data(), ints.size() * 4);
        } else {
            w.add_tensor(t.name, t.shape, data.data());
        }
    }
    st.reset();
    fs::remove(dir + "/model.safetensors");
    w.write(dir + "/model.safetensors");
    expect_error<FormatError>([&] { Model::load(dir); }, {"tensor 'model.norm.weight' has dtype I32"});
}

TEST(HfModelErrors, IndexNamesMissingShard) {
    const std::string dir = saved_small("shard");
    fs::rename(dir + "/model.safetensors", dir + "/model-00001-of-00002.safetensors");
    write_text(dir + "/model.safetensors.index.json",
               R"({"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                   "model.norm.weight": "model-00002-of-00002.safetensors"}})");
    expect_error<IoError>([&] { Model::load(dir); }, {"model-00002-of-00002.safetensors", "does not exist"});
}

TEST(HfModelErrors, HeaderLengthPastEndOfFile) {
    const std::string dir = saved_small("header");
    std::string bytes(8, '\0');
    const uint64_t n = 1000000;
    std::memcpy(&bytes[0], &n, 8);
    bytes += "{\"a\": 1}";
    write_text(dir + "/model.safetensors", bytes);
    expect_error<FormatError>([&] { Model::load(dir); }, {"model.safetensors", "header length 1000000 exceeds file size"});
}

TEST(HfModelErrors, FolderWithoutConfig) {
    const std::string dir = saved_small("noconfig");
    fs::remove(dir + "/config.json");
    expect_error<IoError>([&] { Model::load(dir); }, {"config.json", "no such file"});
}

TEST(HfModelErrors, ConfigWithoutWeights) {
    const std::string dir = saved_small("noweights");
    fs::remove(dir + "/model.safetensors");
    expect_error<IoError>([&] { Model::load(dir); }, {"no model.safetensors or model.safetensors.index.json"});
}

TEST(HfModelErrors, TokenizerLargerThanEmbeddings) {
    const std::string dir = saved_small("vocab");
    replace_in_file(dir + "/config.json", "\"vocab_size\": 258", "\"vocab_size\": 200");
    expect_error<FormatError>([&] { Model::load(dir); }, {"model.embed_tokens.weight", "vocab_size=200"});
}

}  // namespace
}  // namespace memskew
