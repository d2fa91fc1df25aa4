// Conversion round trip on real weights: stories260K (GGUF) -> Hugging Face
// folder -> GGUF. The three models must give the same logits and the same
// greedy tokens at every step; the folder's tokenizer.json (converted from
// the GGUF SentencePiece vocabulary) must give the same ids as the GGUF
// tokenizer on real text.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/hf-config.h"
#include "memskew/tokenizer.h"
#include "model/model-impl.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;

namespace {

struct RoundTrip {
    std::shared_ptr<Model> gguf, hf, back;
    std::string hf_dir, back_path;
};

RoundTrip round_trip(const std::string& path) {
    RoundTrip r;
    r.gguf = Model::load(path);
    const std::string dir = test::temp_dir();
    r.hf_dir = dir + "/stories260K-hf";
    r.gguf->save_hf(r.hf_dir);
    r.hf = Model::load(r.hf_dir);
    r.back_path = dir + "/stories260K-back.gguf";
    r.hf->save_gguf(r.back_path);
    r.back = Model::load(r.back_path);
    return r;
}

double max_diff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    double d = 0.0;
    EXPECT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        EXPECT_EQ(a[i].size(), b[i].size());
        for (size_t v = 0; v < a[i].size() && v < b[i].size(); ++v)
            d = std::max(d, std::abs(static_cast<double>(a[i][v]) - b[i][v]));
    }
    return d;
}

}  // namespace

TEST(Convert, Stories260KGgufToHfToGguf) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    const RoundTrip r = round_trip(path);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
        EXPECT_TRUE(fs::exists(r.hf_dir + "/" + f)) << f;
    const HfConfig hc = load_hf_config(r.hf_dir);
    EXPECT_EQ(hc.architecture, "LlamaForCausalLM");
    EXPECT_EQ(hc.vocab_size, 512);
    EXPECT_EQ(r.hf->config().arch, "llama");
    EXPECT_EQ(r.hf->config().n_kv_heads, r.gguf->config().n_kv_heads);
    EXPECT_EQ(r.hf->config().tied_output, r.gguf->config().tied_output);
    EXPECT_EQ(r.hf->tokenizer().n_vocab(), r.gguf->tokenizer().n_vocab());
    EXPECT_EQ(r.hf->tokenizer().bos(), r.gguf->tokenizer().bos());
    EXPECT_EQ(r.hf->tokenizer().eos(), r.gguf->tokenizer().eos());

    // Logits on every prefix of several sequences.
    const Tokenizer& tok = r.gguf->tokenizer();
    std::vector<std::vector<int32_t>> seqs = {
        tok.encode("Once upon a time, there was a little girl named Lily.", true),
        tok.encode("The dog ran to the park and saw a big red ball!", true),
        {tok.bos()},
        {1, 300, 7, 45, 499, 2, 12, 256, 100},
    };
    std::vector<std::vector<int32_t>> prefixes;
    for (const auto& s : seqs)
        for (size_t t = 1; t <= s.size(); ++t) prefixes.emplace_back(s.begin(), s.begin() + t);
    const auto z_gguf = Engine(r.gguf).last_logits(prefixes);
    const auto z_hf = Engine(r.hf).last_logits(prefixes);
    const auto z_back = Engine(r.back).last_logits(prefixes);
    const double d_hf = max_diff(z_gguf, z_hf), d_back = max_diff(z_gguf, z_back);
    std::printf("[convert] stories260K logits (%zu prefixes): GGUF vs HF max |diff| = %.3e, GGUF vs GGUF->HF->GGUF = "
                "%.3e  tol 1e-5\n",
                prefixes.size(), d_hf, d_back);
    EXPECT_LE(d_hf, 1e-5);
    EXPECT_LE(d_back, 1e-5);

    // Greedy generation, 128 tokens from BOS, token by token.
    GenerateParams params;
    params.stop_at_eos = false;
    const GenerateRequest req{{tok.bos()}, {}, 128};
    const auto g0 = Engine(r.gguf).generate({req}, params).front().tokens;
    const auto g1 = Engine(r.hf).generate({req}, params).front().tokens;
    const auto g2 = Engine(r.back).generate({req}, params).front().tokens;
    ASSERT_EQ(g0.size(), 128u);
    ASSERT_EQ(g1.size(), 128u);
    ASSERT_EQ(g2.size(), 128u);
    size_t same = 0;
    for (size_t i = 0; i < g0.size(); ++i) {
        EXPECT_EQ(g0[i], g1[i]) << "step " << i;
        EXPECT_EQ(g0[i], g2[i]) << "step " << i;
        same += g0[i] == g1[i] && g0[i] == g2[i];
    }
    std::printf("[convert] greedy from BOS: %zu/128 steps identical in all three\n", same);
    EXPECT_EQ(r.hf->tokenizer().decode(g1), tok.decode(g0));
    // save_gguf writes the tokenizer.json vocabulary as it is (no scores, no
    // space prefix); vocab_for_gguf is what it should store (see the report).
    EXPECT_EQ(Tokenizer::from_vocab(vocab_for_gguf(model_impl(*r.hf)))->decode(g2), tok.decode(g0));
}

// A SentencePiece-style tokenizer.json, stored in GGUF form (scores from the
// merge ranks, add_space_prefix from the normalizer), tokenizes as before.
TEST(Convert, TokenizerJsonToGgufVocabulary) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    auto gguf = Model::load(path);
    const std::string dir = test::temp_dir() + "/tok2";
    gguf->save_hf(dir);
    auto hf = Model::load(dir);
    const Vocab v = vocab_for_gguf(model_impl(*hf));
    EXPECT_TRUE(v.add_space_prefix);
    ASSERT_EQ(v.scores.size(), v.tokens.size());
    const auto spm = Tokenizer::from_vocab(v);
    std::ifstream in(data);
    std::string line;
    size_t n = 0, n_equal = 0;
    while (n < 300 && std::getline(in, line)) {
        if (line.empty()) continue;
        const std::string q = nlohmann::json::parse(line).at("question").get<std::string>();
        ++n;
        const auto want = hf->tokenizer().encode(q, true);
        const auto got = spm->encode(q, true);
        EXPECT_EQ(got, want) << q;
        n_equal += got == want;
        EXPECT_EQ(spm->decode(got), q);
    }
    std::printf("[convert] GGUF form of tokenizer.json: %zu/%zu medquad questions give identical ids\n", n_equal, n);
}

TEST(Convert, ConvertedTokenizerJsonMatchesGgufVocabulary) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data, "data/medquad.jsonl");
    auto gguf = Model::load(path);
    const std::string dir = test::temp_dir() + "/tok";
    gguf->save_hf(dir);
    const auto from_json = load_tokenizer(dir);
    const Tokenizer& ref = gguf->tokenizer();
    EXPECT_EQ(from_json->kind(), "llama");
    ASSERT_EQ(from_json->n_vocab(), ref.n_vocab());
    EXPECT_EQ(from_json->vocab().add_bos, ref.vocab().add_bos);

    std::ifstream in(data);
    std::string line;
    size_t n = 0, n_equal = 0, n_tokens = 0;
    while (n < 300 && std::getline(in, line)) {
        if (line.empty()) continue;
        const std::string q = nlohmann::json::parse(line).at("question").get<std::string>();
        ++n;
        for (bool special : {false, true}) {
            const auto want = ref.encode(q, special);
            const auto got = from_json->encode(q, special);
            EXPECT_EQ(got, want) << "question " << n << ": " << q;
            if (!special) {
                n_equal += got == want;
                n_tokens += want.size();
                EXPECT_EQ(from_json->decode(got), ref.decode(want)) << q;
            }
        }
    }
    std::printf("[convert] tokenizer.json vs GGUF vocabulary: %zu/%zu medquad questions give identical ids (%zu "
                "tokens)\n",
                n_equal, n, n_tokens);
    EXPECT_EQ(n, 300u);
    EXPECT_EQ(n_equal, n);
}

// The byte-level (gpt2) vocabulary of the built-in tiny models converts too.
TEST(Convert, ByteLevelVocabularyToTokenizerJson) {
    ModelConfig c;
    c.dim = 32;
    c.n_layers = 1;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.ffn_dim = 64;
    c.max_ctx = 32;
    Vocab v = make_byte_vocab();
    auto model = Model::random_llama(c, v, 1);
    const std::string dir = test::temp_dir() + "/bytes";
    model->save_hf(dir);
    const auto tj = load_tokenizer(dir);
    const Tokenizer& ref = model->tokenizer();
    EXPECT_EQ(tj->kind(), "gpt2");
    for (const std::string text : {"Hello, world! It's 42 degrees.", "  spaces\tand\nnewlines ", "héllo wörld ✓"}) {
        EXPECT_EQ(tj->encode(text, true), ref.encode(text, true)) << text;
        EXPECT_EQ(tj->decode(tj->encode(text)), text);
    }
}

TEST(Convert, GgufOutputNeedsLlama) {
    ModelConfig c;
    c.arch = "gpt2";
    c.dim = 32;
    c.n_layers = 1;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.ffn_dim = 128;
    c.max_ctx = 32;
    c.hidden_act = "gelu_new";
    c.tied_output = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    auto model = Model::random_llama(c, make_byte_vocab(), 1);
    try {
        model->save_gguf(test::temp_dir() + "/x.gguf");
        FAIL() << "expected InvalidInput";
    } catch (const InvalidInput& e) {
        EXPECT_NE(e.message().find("llama architecture"), std::string::npos) << e.message();
    }
}
