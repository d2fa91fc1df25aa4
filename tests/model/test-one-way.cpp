// The rules that have one home (issue: one way through the code), checked
// where their callers meet:
//   - train and probe feed/score the same ids, sample by sample;
//   - the engine's sampling log-probs (METHOD M4) against a brute-force
//     calculation written in this test from the definition;
//   - batch planning against batches worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "memskew/engine.h"
#include "memskew/probe.h"
#include "memskew/train.h"
#include "model/model-impl.h"
#include "test-util.h"

using namespace memskew;

namespace {

std::vector<int32_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST(OneWay, TrainFeedsTheIdsProbeScores) {
    // Alpaca records through the chatml template with its end marker; one
    // empty input field, one reference longer than the context, one prompt
    // that leaves room for exactly one reference token.
    const std::string dir = test::temp_dir();
    const std::string data = dir + "/d.jsonl";
    {
        std::ofstream f(data);
        f << R"({"id":"a","instruction":"Add","input":"1 2","output":"3"})" << "\n";
        f << R"({"id":"b","instruction":"Name a colour","input":"","output":"Blue."})" << "\n";
        f << R"({"id":"c","instruction":"Long","input":"","output":")" << std::string(300, 'x') << "\"}\n";
        f << R"({"id":"d","instruction":")" << std::string(77, 'p') << R"(","input":"","output":"yz"})" << "\n";
    }
    const int64_t ctx = 128;
    auto model = Model::random_llama(test::tiny_llama_config(ctx), make_byte_vocab(), 3);
    DatasetParams dp;
    dp.prompt_template = parse_template("chatml");
    dp.prompt_template.reference_end_marker = true;

    TrainParams tp;
    tp.data_path = data;
    tp.data = dp;
    ProbeParams pp;
    pp.data_path = data;
    pp.data = dp;
    const EncodedDataset train = encode_training_set(tp, model->tokenizer(), ctx);
    const EncodedDataset probe = encode_probe_set(pp, model->tokenizer(), ctx);
    ASSERT_EQ(train.items.size(), 4u);
    ASSERT_EQ(probe.items.size(), train.items.size());
    for (size_t i = 0; i < train.items.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(train.items[i].sample, probe.items[i].sample);
        EXPECT_EQ(train.items[i].prompt, probe.items[i].prompt);
        EXPECT_EQ(train.items[i].reference, probe.items[i].reference);
        EXPECT_EQ(train.items[i].truncated, probe.items[i].truncated);
        EXPECT_FALSE(probe.items[i].eos);  // the probe scores the reference alone
    }
    // Sample a by hand: BOS, the chatml prompt's bytes; the reference with the end marker.
    std::vector<int32_t> prompt_a{256};
    for (int32_t b : bytes("<|im_start|>user\nAdd\n1 2<|im_end|>\n<|im_start|>assistant\n")) prompt_a.push_back(b);
    EXPECT_EQ(train.items[0].prompt, prompt_a);
    EXPECT_EQ(train.items[0].reference, bytes("3<|im_end|>"));
    EXPECT_TRUE(train.items[0].eos);
    // Sample c: cut to the context, counted once by each; no room for EOS.
    const size_t room_c = ctx - train.items[2].prompt.size() + 1;
    EXPECT_EQ(train.items[2].reference.size(), room_c);
    EXPECT_TRUE(train.items[2].truncated);
    EXPECT_FALSE(train.items[2].eos);
    // Sample d: BOS + 50 template bytes + 77 = 128 prompt tokens fill the
    // context but for one predicted reference token.
    EXPECT_EQ(train.items[3].prompt.size(), 128u);
    EXPECT_EQ(train.items[3].reference, bytes("y"));
    EXPECT_EQ(train.counts.n_truncated, 2);
    EXPECT_EQ(probe.counts.n_truncated, 2);
}

TEST(OneWay, EngineSamplingLogProbsMatchTheDefinition) {
    auto model = Model::random_llama(test::tiny_llama_config(64), make_byte_vocab(), 11, {}, /*init_std=*/0.5);
    Engine engine(model);
    const std::vector<int32_t> prompt{256, 72, 105};
    const std::vector<int32_t> reference{32, 116, 104, 101, 114, 101};
    int64_t n_checked = 0;
    double max_diff = 0.0;
    for (const SamplingParams sp : {SamplingParams{0.7, 0, 1.0}, SamplingParams{1.3, 20, 1.0},
                                    SamplingParams{1.0, 0, 0.6}, SamplingParams{0.8, 30, 0.9}}) {
        ScoreParams params;
        params.sampling = sp;
        const TokenScores s = engine.score({{prompt, reference}}, params).front();
        ASSERT_EQ(s.logprob_sampling.size(), reference.size());
        for (size_t j = 0; j < reference.size(); ++j) {
            std::vector<int32_t> ctx(prompt);
            ctx.insert(ctx.end(), reference.begin(), reference.begin() + static_cast<long>(j));
            const std::vector<float> z = engine.last_logits({ctx}).front();
            // The definition, by brute force: scale by 1/T; drop tokens below
            // the k-th largest; sort the rest by probability (ties by id),
            // keep the shortest prefix whose mass reaches top_p (the first
            // token always); renormalise over what is kept.
            const size_t V = z.size();
            std::vector<double> x(V);
            for (size_t i = 0; i < V; ++i) x[i] = z[i] / sp.temperature;
            std::vector<size_t> order(V);
            std::iota(order.begin(), order.end(), 0);
            std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
            std::vector<bool> keep(V, true);
            if (sp.top_k > 0)
                for (size_t i = 0; i < V; ++i) keep[i] = x[i] >= x[order[static_cast<size_t>(sp.top_k) - 1]];
            double mx = x[order[0]], sum = 0;
            for (size_t i = 0; i < V; ++i)
                if (keep[i]) sum += std::exp(x[i] - mx);
            if (sp.top_p < 1.0) {
                double above = 0;
                for (size_t r = 0; r < V; ++r) {
                    const size_t i = order[r];
                    if (!keep[i]) continue;
                    const double p = std::exp(x[i] - mx) / sum;
                    if (r > 0 && above >= sp.top_p) keep[i] = false;
                    above += p;
                }
                sum = 0;
                for (size_t i = 0; i < V; ++i)
                    if (keep[i]) sum += std::exp(x[i] - mx);
            }
            const size_t t = static_cast<size_t>(reference[j]);
            const double expected = keep[t] ? x[t] - mx - std::log(sum) : -INFINITY;
            const double got = s.logprob_sampling[j];
            if (std::isinf(expected)) {
                EXPECT_TRUE(std::isinf(got) && got < 0) << "position " << j << ": expected -inf, got " << got;
            } else {
                ASSERT_TRUE(std::isfinite(got)) << "position " << j;
                max_diff = std::max(max_diff, std::fabs(got - expected));
                EXPECT_NEAR(got, expected, 2e-4) << "position " << j << " T=" << sp.temperature;
            }
            ++n_checked;
        }
    }
    std::printf("[sampling parity] %lld positions, max |engine - definition| = %.3g\n",
                static_cast<long long>(n_checked), max_diff);
    // The identity transform is the plain log-probability.
    ScoreParams identity;
    identity.sampling = SamplingParams{};
    const TokenScores s = engine.score({{prompt, reference}}, identity).front();
    EXPECT_EQ(s.logprob_sampling, s.logprob);
    // Out-of-range parameters are refused by the one check.
    ScoreParams bad;
    bad.sampling = SamplingParams{1.0, -1, 1.0};
    test::expect_error<InvalidInput>([&] { engine.score({{prompt, reference}}, bad); }, {"top_k"});
}

TEST(OneWay, BatchPlanningByHand) {
    // Longest first: 100(1), 100(5), 99(3), 7(2), 5(0), 3(4). Budget 210:
    // [1,5] pads to 2 x 100 = 200; adding 3 would make 3 x 100 = 300 > 210.
    // [3,2] pads to 2 x 99 = 198; adding 0 would make 297. [0,4]: 2 x 5.
    const std::vector<int64_t> lengths{5, 100, 7, 99, 3, 100};
    EXPECT_EQ(plan_batches(lengths, 210, 3), (std::vector<std::vector<size_t>>{{1, 5}, {3, 2}, {0, 4}}));
    // At most one per batch.
    EXPECT_EQ(plan_batches(lengths, 10000, 1),
              (std::vector<std::vector<size_t>>{{1}, {5}, {3}, {2}, {0}, {4}}));
    // A large budget: batches of max_batch_size, longest first.
    EXPECT_EQ(plan_batches(lengths, 10000, 4), (std::vector<std::vector<size_t>>{{1, 5, 3, 2}, {0, 4}}));
    // One sample over the budget still gets a batch of its own.
    EXPECT_EQ(plan_batches({500, 2}, 100, 8), (std::vector<std::vector<size_t>>{{0}, {1}}));
    EXPECT_TRUE(plan_batches({}, 100, 8).empty());
    test::expect_error<InvalidInput>([] { plan_batches({1}, 0, 8); }, {"must be positive"});
    test::expect_error<InvalidInput>([] { plan_batches({1}, 8, 0); }, {"must be positive"});
}

TEST(OneWay, EmbeddingsComeFromTheScoringPass) {
    // The reference: each sample alone (no padding), the module's own
    // final-normed hidden states over its fed tokens, averaged and scaled to
    // unit length here.
    auto model = Model::random_llama(test::tiny_llama_config(64), make_byte_vocab(), 5, {}, /*init_std=*/0.3);
    Engine engine(model);
    const std::vector<ScoreRequest> batch = {{{256, 10, 11, 12}, {20, 21, 22}},
                                             {{256, 40}, {41, 42, 43, 44, 45, 46, 47}},
                                             {{256, 70, 71, 72, 73, 74, 75}, {80}}};
    ScoreParams with;
    with.embeddings = true;
    const auto got = engine.score(batch, with);
    const auto plain = engine.score(batch);
    auto& net = *model_impl(*model).net;
    c10::InferenceMode guard;
    double max_diff = 0, max_score_diff = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
        std::vector<int64_t> fed(batch[b].prompt.begin(), batch[b].prompt.end());
        fed.insert(fed.end(), batch[b].reference.begin(), batch[b].reference.end() - 1);
        const int64_t F = static_cast<int64_t>(fed.size()), P = static_cast<int64_t>(batch[b].prompt.size());
        auto ids = torch::tensor(fed, torch::kLong).unsqueeze(0);
        auto pos = torch::arange(F, torch::kLong).unsqueeze(0);
        auto h = net.forward_hidden(ids, pos)[0].to(torch::kFloat);  // [F, D]
        for (const auto& [n, emb] : {std::pair<int64_t, const std::vector<float>*>{P, &got[b].prompt_embedding},
                                     {F, &got[b].full_embedding}}) {
            auto e = h.narrow(0, 0, n).mean(0);
            e = e / e.norm();
            ASSERT_EQ(emb->size(), static_cast<size_t>(e.size(0)));
            for (int64_t k = 0; k < e.size(0); ++k)
                max_diff = std::max(max_diff, std::fabs(static_cast<double>((*emb)[k]) - e[k].item<double>()));
        }
        // Asking for embeddings leaves the scores as they were (up to the
        // rounding of running the last layer at more positions).
        EXPECT_EQ(got[b].argmax, plain[b].argmax);
        for (size_t j = 0; j < got[b].logprob.size(); ++j)
            max_score_diff = std::max(max_score_diff, std::fabs(static_cast<double>(got[b].logprob[j] - plain[b].logprob[j])));
        EXPECT_TRUE(plain[b].prompt_embedding.empty());
    }
    std::printf("[embeddings] max |engine - per-sample forward| = %.3g, max logprob change = %.3g\n", max_diff,
                max_score_diff);
    EXPECT_LT(max_diff, 1e-5);
    EXPECT_LT(max_score_diff, 1e-5);
}
