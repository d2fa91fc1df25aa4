// METHOD M3: n_pre from one teacher-forced pass equals n_pre from real greedy
// generation. References are built so n_pre spans 0..L: the model's own greedy
// continuation of a medquad question with one token changed at a random
// position (or none, for exact matches).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

using namespace memskew;

namespace {

struct Pair {
    std::vector<int32_t> prompt, reference;
    int32_t changed_at;  // index of the changed token, or L when unchanged
};

void check_agreement(DType dtype, size_t n_pairs, int32_t L) {
    MEMSKEW_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(data_path, "data/medquad.jsonl");
    auto model = Model::load(model_path, {dtype, 0});
    const Tokenizer& tok = model->tokenizer();
    Engine engine(model);

    std::ifstream in(data_path);
    std::string line;
    std::vector<std::vector<int32_t>> prompts;
    while (prompts.size() < n_pairs && std::getline(in, line)) {
        auto ids = tok.encode(nlohmann::json::parse(line).at("question").get<std::string>(), true);
        if (ids.size() > 48) ids.resize(48);  // varied prompt lengths up to 48 tokens
        prompts.push_back(std::move(ids));
    }
    ASSERT_EQ(prompts.size(), n_pairs);

    // The model's own greedy continuations, in batches of 16.
    std::vector<Pair> pairs;
    std::mt19937 rng(1234);
    GenerateParams free_run;
    free_run.stop_at_eos = false;
    for (size_t start = 0; start < prompts.size(); start += 16) {
        std::vector<GenerateRequest> batch;
        for (size_t i = start; i < std::min(prompts.size(), start + 16); ++i) batch.push_back({prompts[i], {}, L});
        const auto outs = engine.generate(batch, free_run);
        for (size_t k = 0; k < outs.size(); ++k) {
            Pair p{batch[k].prompt, outs[k].tokens, L};
            ASSERT_EQ(static_cast<int32_t>(p.reference.size()), L);
            const size_t idx = start + k;
            // Cover both ends explicitly, the rest uniformly.
            p.changed_at = idx % 10 == 0 ? 0 : idx % 10 == 1 ? L : static_cast<int32_t>(rng() % (L + 1));
            if (p.changed_at < L) {
                const int32_t old = p.reference[p.changed_at];
                p.reference[p.changed_at] = (old + 1 + static_cast<int32_t>(rng() % (tok.n_vocab() - 1))) % tok.n_vocab();
            }
            pairs.push_back(std::move(p));
        }
    }

    // Teacher-forced n_pre (batched, right-padded) vs generation that stops at
    // the first mismatch (batched, KV cache).
    size_t agree = 0, expected_hits = 0;
    std::vector<int> seen(L + 1, 0);
    GenerateParams check;
    check.stop_on_mismatch = true;
    check.stop_at_eos = false;
    for (size_t start = 0; start < pairs.size(); start += 16) {
        std::vector<ScoreRequest> sreq;
        std::vector<GenerateRequest> greq;
        for (size_t i = start; i < std::min(pairs.size(), start + 16); ++i) {
            sreq.push_back({pairs[i].prompt, pairs[i].reference});
            greq.push_back({pairs[i].prompt, pairs[i].reference, L});
        }
        const auto scored = engine.score(sreq);
        const auto generated = engine.generate(greq, check);
        for (size_t k = 0; k < scored.size(); ++k) {
            const Pair& p = pairs[start + k];
            const int32_t tf = scored[k].n_pre;
            const int32_t gen = generated[k].n_pre(p.reference);
            EXPECT_EQ(tf, gen) << "pair " << start + k << " (changed at " << p.changed_at << ")";
            agree += tf == gen;
            expected_hits += tf == p.changed_at;
            seen[tf]++;
        }
    }
    std::printf("[ info ] %s: %zu/%zu pairs agree; n_pre == change position in %zu; n_pre=0: %d, n_pre=L: %d\n",
                dtype_name(dtype), agree, pairs.size(), expected_hits, seen[0], seen[L]);
    EXPECT_EQ(agree, pairs.size());
    EXPECT_GT(seen[0], 0);
    EXPECT_GT(seen[L], 0);
}

}  // namespace

TEST(NpreAgreement, TeacherForcedEqualsGreedyGenerationFp32) { check_agreement(DType::kF32, 240, 32); }

TEST(NpreAgreement, TeacherForcedEqualsGreedyGenerationBf16) { check_agreement(DType::kBF16, 240, 32); }
