// Guarded greedy generation (MemFree decoding, GenerateParams::guard) on tiny
// random models, against sources independent of the engine's decode loop:
//   - the training n-grams as a std::set built in this file;
//   - greedy decoding re-derived step by step from Engine::last_logits (a
//     full forward pass per step, no KV cache): argmax, or the best token the
//     set does not block;
//   - Engine::score (teacher forcing) for the log-probabilities;
//   - the training encoder's ids written out by hand for build_training_guard.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "memskew/engine.h"
#include "memskew/ngram-guard.h"
#include "memskew/train.h"
#include "test-util.h"

using namespace memskew;

namespace {

using Seq = std::vector<int32_t>;

Seq bytes(const std::string& s) { return {s.begin(), s.end()}; }
Seq concat(const Seq& a, const Seq& b) {
    Seq out(a);
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

std::set<Seq> ngram_set(const std::vector<Seq>& seqs, size_t n) {
    std::set<Seq> out;
    for (const Seq& s : seqs)
        for (size_t i = 0; i + n <= s.size(); ++i) out.insert(Seq(s.begin() + i, s.begin() + i + n));
    return out;
}

// Peaked enough logits (init_std 0.5) that greedy choices are not near-ties
// between the cached decode and the uncached re-derivation.
std::shared_ptr<Model> tiny_model(uint64_t seed = 5) {
    return Model::random_llama(test::tiny_llama_config(128), make_byte_vocab(), seed, {}, 0.5);
}

NgramGuardParams params_for(const Model& m) {
    NgramGuardParams p;
    p.tokenizer_fingerprint = tokenizer_fingerprint(m.tokenizer());
    p.max_context = m.config().max_ctx;
    return p;
}

std::vector<GenerateRequest> requests(const Tokenizer& tok) {
    // Different prompt lengths and budgets, so rows leave the batch at different steps.
    std::vector<GenerateRequest> r;
    int32_t budget = 24;
    for (const char* p : {"Once upon", "a", "The quick brown fox", "xyz xyz", "hello world, hello"}) {
        r.push_back({concat({tok.bos()}, bytes(p)), {}, budget});
        budget += 5;
    }
    return r;
}

// Greedy decoding re-derived from full forward passes: at each step the
// argmax of the last position's logits, or, when `ngrams` holds
// (last n-1 tokens, argmax), the highest logit it does not block.
struct Derived {
    Seq tokens;
    int32_t n_blocked = 0;
};
Derived derive(Engine& engine, const Seq& prompt, int32_t max_new, const std::set<Seq>& ngrams, size_t n) {
    Derived d;
    Seq history = prompt;
    for (int32_t step = 0; step < max_new; ++step) {
        const std::vector<float> z = engine.last_logits({history}).front();
        auto blocked = [&](int32_t t) {
            if (ngrams.empty() || history.size() + 1 < n) return false;
            Seq g(history.end() - static_cast<std::ptrdiff_t>(n - 1), history.end());
            g.push_back(t);
            return ngrams.count(g) == 1;
        };
        int32_t best = static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin());
        if (blocked(best)) {
            ++d.n_blocked;
            best = -1;
            for (int32_t t = 0; t < static_cast<int32_t>(z.size()); ++t)
                if (!blocked(t) && (best < 0 || z[t] > z[best])) best = t;
        }
        d.tokens.push_back(best);
        history.push_back(best);
    }
    return d;
}

GenerateParams free_run(const NgramGuard* guard = nullptr) {
    GenerateParams p;
    p.stop_at_eos = false;
    p.guard = guard;
    return p;
}

TEST(Guard, NeverEmitsATrainingNgram) {
    auto model = tiny_model();
    Engine engine(model);
    const auto reqs = requests(model->tokenizer());
    // Training data the model reproduces: its own unguarded continuations
    // (every step of those would be blocked), plus unrelated text.
    const auto plain = engine.generate(reqs, free_run());
    for (int n : {2, 3, 6}) {
        SCOPED_TRACE(n);
        std::vector<Seq> train;
        for (size_t i = 0; i < reqs.size(); ++i) train.push_back(concat(reqs[i].prompt, plain[i].tokens));
        train.push_back(bytes("an unrelated sentence of training text"));
        const std::set<Seq> ngrams = ngram_set(train, static_cast<size_t>(n));
        const NgramGuard guard = NgramGuard::build(train, n, params_for(*model));
        const auto guarded = engine.generate(reqs, free_run(&guard));
        int32_t total_blocked = 0;
        for (size_t i = 0; i < reqs.size(); ++i) {
            SCOPED_TRACE(i);
            const auto& res = guarded[i];
            EXPECT_EQ(res.reason, StopReason::kLength);
            ASSERT_EQ(static_cast<int32_t>(res.tokens.size()), reqs[i].max_new_tokens);
            EXPECT_NE(res.tokens, plain[i].tokens);
            total_blocked += res.n_blocked;
            // Every window of prompt ‖ output that ends in the output.
            const Seq all = concat(reqs[i].prompt, res.tokens);
            const size_t P = reqs[i].prompt.size();
            for (size_t end = std::max(P + 1, static_cast<size_t>(n)); end <= all.size(); ++end) {
                const Seq window(all.begin() + static_cast<std::ptrdiff_t>(end - n), all.begin() + end);
                EXPECT_EQ(ngrams.count(window), 0u) << "window ending at output token " << end - P - 1;
            }
        }
        EXPECT_GT(total_blocked, 0);
    }
}

TEST(Guard, StepsAndBlockCountsMatchARederivation) {
    auto model = tiny_model(11);
    Engine engine(model);
    const auto reqs = requests(model->tokenizer());
    const auto plain = engine.generate(reqs, free_run());
    const size_t n = 3;
    std::vector<Seq> train;
    for (size_t i = 0; i < reqs.size(); ++i) train.push_back(concat(reqs[i].prompt, plain[i].tokens));
    const NgramGuard guard = NgramGuard::build(train, static_cast<int>(n), params_for(*model));
    const std::set<Seq> ngrams = ngram_set(train, n);
    const auto guarded = engine.generate(reqs, free_run(&guard));
    for (size_t i = 0; i < reqs.size(); ++i) {
        SCOPED_TRACE(i);
        // Unguarded generation is plain greedy decoding (as before the guard existed).
        const Derived d0 = derive(engine, reqs[i].prompt, reqs[i].max_new_tokens, {}, n);
        EXPECT_EQ(plain[i].tokens, d0.tokens);
        EXPECT_EQ(plain[i].n_blocked, 0);
        const Derived d = derive(engine, reqs[i].prompt, reqs[i].max_new_tokens, ngrams, n);
        EXPECT_EQ(guarded[i].tokens, d.tokens);
        EXPECT_EQ(guarded[i].n_blocked, d.n_blocked);
        EXPECT_GT(d.n_blocked, 0);
    }
}

TEST(Guard, BlockingNothingChangesNothing) {
    auto model = tiny_model();
    Engine engine(model);
    const auto reqs = requests(model->tokenizer());
    const auto plain = engine.generate(reqs, free_run());
    // An empty guard, and one over text the model never produces (token 300
    // is outside the vocabulary, so no context holding it is ever seen).
    const NgramGuard empty = NgramGuard::build({}, 4, params_for(*model));
    const NgramGuard unrelated = NgramGuard::build({{300, 301, 302, 303, 304}, {300, 1, 2}}, 3, params_for(*model));
    for (const NgramGuard* g : {&empty, &unrelated}) {
        const auto guarded = engine.generate(reqs, free_run(g));
        for (size_t i = 0; i < reqs.size(); ++i) {
            SCOPED_TRACE(i);
            EXPECT_EQ(guarded[i].n_blocked, 0);
            EXPECT_EQ(guarded[i].tokens, plain[i].tokens);
            EXPECT_EQ(guarded[i].reason, plain[i].reason);
            // Bit for bit: the same pass computes both.
            ASSERT_EQ(guarded[i].logprobs.size(), plain[i].logprobs.size());
            for (size_t t = 0; t < plain[i].logprobs.size(); ++t)
                EXPECT_EQ(guarded[i].logprobs[t], plain[i].logprobs[t]);
        }
    }
}

TEST(Guard, LogprobsAreTheModelsLogSoftmax) {
    auto model = tiny_model();
    Engine engine(model);
    const auto reqs = requests(model->tokenizer());
    const auto plain = engine.generate(reqs, free_run());
    std::vector<Seq> train;
    for (size_t i = 0; i < reqs.size(); ++i) train.push_back(concat(reqs[i].prompt, plain[i].tokens));
    const NgramGuard guard = NgramGuard::build(train, 2, params_for(*model));
    const auto guarded = engine.generate(reqs, free_run(&guard));
    double sum_plain = 0, sum_guarded = 0;
    size_t count_plain = 0, count_guarded = 0;
    for (const auto* results : {&plain, &guarded}) {
        for (size_t i = 0; i < reqs.size(); ++i) {
            SCOPED_TRACE(i);
            const GenerateResult& res = (*results)[i];
            ASSERT_EQ(res.logprobs.size(), res.tokens.size());
            const TokenScores ref = engine.score({{reqs[i].prompt, res.tokens}}).front();
            for (size_t t = 0; t < res.tokens.size(); ++t) {
                EXPECT_NEAR(res.logprobs[t], ref.logprob[t], 1e-4) << "step " << t;
                EXPECT_LE(res.logprobs[t], 0.0f);
                // Unguarded steps emit the argmax; guarded ones only where nothing was blocked.
                if (results == &plain) {
                    EXPECT_EQ(res.tokens[t], ref.argmax[t]);
                }
            }
            for (float v : res.logprobs) (results == &plain ? sum_plain : sum_guarded) += v;
            (results == &plain ? count_plain : count_guarded) += res.logprobs.size();
        }
    }
    // The guard's cost: emitting non-argmax tokens lowers the mean log-probability.
    EXPECT_LT(sum_guarded / count_guarded, sum_plain / count_plain);
}

TEST(Guard, AnotherTokenizersGuardIsRefused) {
    auto model = tiny_model();
    Engine engine(model);
    Vocab other = make_byte_vocab();
    other.tokens[65] = "Z";  // one piece differs: ids 65 no longer mean the same token
    other.tokens[90] = "A";
    const std::string fp_model = tokenizer_fingerprint(model->tokenizer());
    const std::string fp_other = tokenizer_fingerprint(*Tokenizer::from_vocab(other));
    ASSERT_NE(fp_model, fp_other);
    NgramGuardParams p;
    p.tokenizer_fingerprint = fp_other;
    const NgramGuard foreign = NgramGuard::build({{1, 2, 3}}, 2, p);
    const auto reqs = requests(model->tokenizer());
    test::expect_error<InvalidInput>([&] { engine.generate(reqs, free_run(&foreign)); }, {fp_other, fp_model},
                                     "model's own tokenizer");
    const NgramGuard unmarked = NgramGuard::build({{1, 2, 3}}, 2);
    test::expect_error<InvalidInput>([&] { engine.generate(reqs, free_run(&unmarked)); },
                                     {"(none recorded)", fp_model});
}

TEST(Guard, StopsWhenEveryTokenIsBlocked) {
    auto model = tiny_model();
    Engine engine(model);
    // After token 88 ('X') every token of the vocabulary completes a bigram.
    std::vector<Seq> train;
    for (int32_t t = 0; t < model->tokenizer().n_vocab(); ++t) train.push_back({88, t});
    const NgramGuard guard = NgramGuard::build(train, 2, params_for(*model));
    const GenerateResult res = engine.generate({{{256, 88}, {}, 8}}, free_run(&guard)).front();
    EXPECT_EQ(res.reason, StopReason::kGuard);
    EXPECT_TRUE(res.tokens.empty());
    EXPECT_EQ(res.n_blocked, 1);
    EXPECT_STREQ(stop_reason_name(res.reason), "guard");
}

TEST(Guard, TrainingGuardHoldsTheTrainedIds) {
    // One prompt/completion record; byte vocabulary, so the ids are the bytes.
    const std::string dir = test::temp_dir();
    const std::string data = dir + "/d.jsonl";
    {
        std::ofstream f(data);
        f << R"({"id":"a","prompt":"Q?","completion":"abcdef"})" << "\n";
    }
    auto model = tiny_model();
    const Tokenizer& tok = model->tokenizer();
    TrainParams tp;
    tp.data_path = data;
    TrainingGuardParams gp;
    gp.n = 3;
    const NgramGuard g = build_training_guard(tp, tok, 128, gp);
    EXPECT_EQ(g.tokenizer_fingerprint(), tokenizer_fingerprint(tok));
    EXPECT_EQ(g.n_sequences(), 1u);
    // Reference a b c d e f and the EOS training appends (257): 5 trigrams.
    EXPECT_EQ(g.n_contexts(), 5u);
    const Seq ef = bytes("ef"), ab = bytes("ab");
    EXPECT_TRUE(g.blocks(ef.data(), 257));
    EXPECT_TRUE(g.blocks(ab.data(), 'c'));
    // Without EOS in training, none after "ef".
    tp.append_eos = false;
    EXPECT_TRUE(build_training_guard(tp, tok, 128, gp).blocked(ef.data()).empty());
    // With the prompt: BOS Q ? a b c d e f EOS (the plain template adds nothing
    // to a prompt/completion record): 8 trigrams, "?" "a" -> "b" among them.
    tp.append_eos = true;
    gp.include_prompt = true;
    const NgramGuard gp_guard = build_training_guard(tp, tok, 128, gp);
    const EncodedDataset enc = encode_training_set(tp, tok, 128);
    ASSERT_EQ(enc.items.size(), 1u);
    EXPECT_EQ(enc.items[0].prompt, concat({256}, bytes("Q?")));
    EXPECT_EQ(gp_guard.n_contexts(), 8u);
    const Seq qa = bytes("?a");
    EXPECT_TRUE(gp_guard.blocks(qa.data(), 'b'));
    // n is checked before the data is read.
    gp.n = 1;
    tp.data_path = dir + "/missing.jsonl";
    test::expect_error<InvalidInput>([&] { build_training_guard(tp, tok, 128, gp); }, {"--guard-n"});
    gp.n = 129;
    test::expect_error<InvalidInput>([&] { build_training_guard(tp, tok, 128, gp); }, {"context of 128"});
}

}  // namespace
