// Real weights: stories260K (Karpathy's tinyllamas, GGUF) must reproduce the
// published greedy sample exactly, and its tokenizer must round-trip it.
#include <gtest/gtest.h>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

using namespace memskew;

namespace {

std::string published_sample() {
    // tests/fixtures/README.md says where this text comes from.
    std::string text = test::read_file(test::source_dir() + "/tests/fixtures/stories260K-greedy.txt");
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

}  // namespace

TEST(Stories260K, GreedyFromBosMatchesPublishedSample) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    auto model = Model::load(path);
    const Tokenizer& tok = model->tokenizer();
    ASSERT_EQ(tok.bos(), 1);
    Engine engine(model);
    // llama2.c's run.c takes 256 steps from BOS: 256 generated tokens.
    GenerateParams params;
    params.stop_at_eos = true;
    const auto res = engine.generate({{{tok.bos()}, {}, 256}}, params).front();
    EXPECT_EQ(res.reason, StopReason::kLength);
    ASSERT_EQ(res.tokens.size(), 256u);
    const std::string text = tok.decode(res.tokens);
    EXPECT_EQ(text, published_sample());
}

TEST(Stories260K, TeacherForcingReproducesThePublishedSampleVerbatim) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    auto model = Model::load(path);
    const Tokenizer& tok = model->tokenizer();
    const std::string sample = published_sample();
    // The sample re-encoded must be the model's own greedy output, so teacher
    // forcing must give n_pre = L (the whole sample is "memorized").
    const auto ids = tok.encode(sample, false);
    ASSERT_GT(ids.size(), 200u);
    EXPECT_EQ(tok.decode(ids), sample);
    Engine engine(model);
    const auto scores = engine.score({{{tok.bos()}, ids}}).front();
    EXPECT_EQ(scores.n_pre, static_cast<int32_t>(ids.size()));
    for (size_t j = 0; j < ids.size(); ++j) {
        EXPECT_EQ(scores.rank[j], 1) << "position " << j;
        EXPECT_LE(scores.logprob[j], 0.0f);
        EXPECT_GE(scores.top1_prob[j], std::exp(scores.logprob[j]) - 1e-6f);
    }
}
