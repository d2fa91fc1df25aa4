// Quantized GGUF models (Q8_0, Q4_0, F16, BF16) load by dequantizing at load
// time. The reference values are decoded in this test straight from the
// file's bytes following the GGUF spec (ggml's block layouts), independently
// of memskew's dequantizer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "memskew/engine.h"
#include "memskew/gguf.h"
#include "model/model-impl.h"
#include "test-util.h"

using namespace memskew;

namespace {

ModelConfig tiny() {
    ModelConfig c;
    c.dim = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_dim = 96;
    c.max_ctx = 64;
    return c;
}

// IEEE half -> float, written out from the format's definition.
float half_to_float(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0) v = std::ldexp(mant, -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = std::ldexp(1024 + mant, exp - 25);
    return static_cast<float>(sign ? -v : v);
}

// Decodes one tensor's blocks: Q8_0 = {half d; int8 q[32]}, value q*d;
// Q4_0 = {half d; uint8 nibbles[16]}, element j<16 low nibble of byte j,
// element j+16 high nibble, value (nibble - 8)*d.
std::vector<float> decode(const GgufFile& g, const GgufTensorInfo& t) {
    const uint8_t* p = g.data(t);
    std::vector<float> out(t.n_elements());
    const size_t n_blocks = out.size() / 32;
    if (t.type == 8) {
        for (size_t b = 0; b < n_blocks; ++b, p += 34) {
            uint16_t h;
            std::memcpy(&h, p, 2);
            for (int j = 0; j < 32; ++j) out[b * 32 + j] = static_cast<int8_t>(p[2 + j]) * half_to_float(h);
        }
    } else if (t.type == 2) {
        for (size_t b = 0; b < n_blocks; ++b, p += 18) {
            uint16_t h;
            std::memcpy(&h, p, 2);
            for (int j = 0; j < 16; ++j) {
                out[b * 32 + j] = ((p[2 + j] & 0x0f) - 8) * half_to_float(h);
                out[b * 32 + j + 16] = ((p[2 + j] >> 4) - 8) * half_to_float(h);
            }
        }
    } else if (t.type == 0) {
        std::memcpy(out.data(), p, out.size() * 4);
    } else {
        ADD_FAILURE() << "unexpected type " << t.type;
    }
    return out;
}

double max_logit_diff(Engine& a, Engine& b, const std::vector<std::vector<int32_t>>& seqs) {
    const auto la = a.last_logits(seqs), lb = b.last_logits(seqs);
    double m = 0;
    for (size_t i = 0; i < la.size(); ++i)
        for (size_t k = 0; k < la[i].size(); ++k) m = std::max(m, static_cast<double>(std::fabs(la[i][k] - lb[i][k])));
    return m;
}

}  // namespace

TEST(Quantized, WeightsAreTheFileBlocksDequantized) {
    const std::string dir = test::temp_dir();
    auto ref = Model::random_llama(tiny(), make_byte_vocab(), 3, {}, 0.3);
    for (auto [type, name] : {std::pair{GgmlType::kQ8_0, "q8_0"}, std::pair{GgmlType::kQ4_0, "q4_0"}}) {
        const std::string path = dir + "/tiny-" + name + ".gguf";
        ref->save_gguf(path, type);
        auto g = GgufFile::open(path);
        auto model = Model::load(path);
        auto params = model_impl(*model).net->named_parameters();
        // q_proj rows are permuted in the file (GGUF rotary layout); compare
        // unpermuted tensors: v_proj, the MLP and the embeddings are stored as is.
        for (const std::string hf : {"model.embed_tokens.weight", "model.layers.0.self_attn.v_proj.weight",
                                     "model.layers.1.mlp.down_proj.weight", "lm_head.weight"}) {
            int64_t heads = 0;
            const auto& info = g->tensor(gguf_name_for(hf, model->config(), &heads));
            EXPECT_EQ(info.type, static_cast<uint32_t>(type)) << hf;
            const auto expected = decode(*g, info);
            auto got = params[hf].contiguous();
            ASSERT_EQ(got.numel(), static_cast<int64_t>(expected.size()));
            const float* q = got.data_ptr<float>();
            for (size_t k = 0; k < expected.size(); ++k) ASSERT_EQ(q[k], expected[k]) << name << " " << hf << " [" << k << "]";
        }
    }
}

TEST(Quantized, QuantizationErrorWithinHalfAStep) {
    // Round-to-nearest quantization: |x - dequant(x)| <= d/2 per block
    // (Q8_0: d = amax/127; Q4_0: d = |max|/8), plus d's own fp16 rounding:
    // d is stored as a half (relative error <= 2^-11), which moves a value
    // with code q by |q| * d * 2^-11 <= levels * d * 2^-11.
    const std::string dir = test::temp_dir();
    auto ref = Model::random_llama(tiny(), make_byte_vocab(), 5, {}, 0.3);
    const auto w = model_impl(*ref).net->named_parameters()["model.layers.1.mlp.up_proj.weight"].contiguous();
    for (auto [type, levels] : {std::pair{GgmlType::kQ8_0, 127.0}, std::pair{GgmlType::kQ4_0, 8.0}}) {
        const std::string path = dir + "/t.gguf";
        ref->save_gguf(path, type);
        auto model = Model::load(path);
        const auto q = model_impl(*model).net->named_parameters()["model.layers.1.mlp.up_proj.weight"].contiguous();
        const float* a = w.data_ptr<float>();
        const float* b = q.data_ptr<float>();
        for (int64_t blk = 0; blk < w.numel() / 32; ++blk) {
            double amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(static_cast<double>(a[blk * 32 + j])));
            const double d = amax / levels;
            for (int j = 0; j < 32; ++j) {
                const int64_t k = blk * 32 + j;
                // Q4_0 clamps the top code at 15: the largest value of the sign
                // opposite to max can be one full step away.
                const double bound = (type == GgmlType::kQ4_0 ? 1.0 : 0.5) * d + levels * d * std::ldexp(1.0, -11) + 1e-7;
                ASSERT_LE(std::fabs(a[k] - b[k]), bound) << "element " << k;
            }
        }
    }
}

TEST(Quantized, LogitsCloseToFullPrecision) {
    const std::string dir = test::temp_dir();
    auto ref = Model::random_llama(tiny(), make_byte_vocab(), 9, {}, 0.1);
    ref->save_gguf(dir + "/f32.gguf", GgmlType::kF32);
    ref->save_gguf(dir + "/f16.gguf", GgmlType::kF16);
    ref->save_gguf(dir + "/bf16.gguf", GgmlType::kBF16);
    ref->save_gguf(dir + "/q8.gguf", GgmlType::kQ8_0);
    Engine e32(Model::load(dir + "/f32.gguf"));
    Engine e_ref(ref);
    Engine e16(Model::load(dir + "/f16.gguf"));
    Engine eb16(Model::load(dir + "/bf16.gguf"));
    Engine e8(Model::load(dir + "/q8.gguf"));
    const std::vector<std::vector<int32_t>> seqs = {{256, 72, 101, 108, 108, 111}, {256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
    const double d_save = max_logit_diff(e32, e_ref, seqs);
    const double d16 = max_logit_diff(e32, e16, seqs);
    const double db16 = max_logit_diff(e32, eb16, seqs);
    const double d8 = max_logit_diff(e32, e8, seqs);
    std::printf("[ info ] max |logit diff| vs F32 file: in-memory %.2e, F16 %.2e, BF16 %.2e, Q8_0 %.2e\n", d_save, d16,
                db16, d8);
    EXPECT_LE(d_save, 1e-5);  // F32 save/load is exact up to summation order
    EXPECT_GT(d16, 0.0);      // the storage type really changed the weights
    // Relative weight error ~2^-11 (F16), ~2^-8 (BF16), up to amax/254 per
    // weight (Q8_0, ~1% of the weights' spread); logits of this model are O(1)
    // and accumulate these errors over 2 layers, so the bounds scale with them.
    EXPECT_LE(d16, 5e-3);
    EXPECT_LE(db16, 5e-2);
    EXPECT_LE(d8, 1e-1);
}
