// The decoding guard's n-gram map (memskew/ngram-guard.h) against two
// independent sources: n-grams worked out by hand, and a std::map of every
// n-gram built in this file from the definition. Exactness is checked with
// the table's hash replaced by ones that collide (all keys on one value, or
// on two), where only the stored keys can tell contexts apart.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

#include "memskew/error.h"
#include "memskew/ngram-guard.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

namespace memskew {
namespace {

using Seq = std::vector<int32_t>;
// (n-1)-gram -> the tokens that follow it, straight from the definition.
using Reference = std::map<Seq, std::set<int32_t>>;

Reference reference_map(const std::vector<Seq>& seqs, int n) {
    Reference r;
    for (const Seq& s : seqs)
        for (size_t i = 0; i + static_cast<size_t>(n) <= s.size(); ++i)
            r[Seq(s.begin() + i, s.begin() + i + n - 1)].insert(s[i + n - 1]);
    return r;
}

std::vector<Seq> random_sequences(uint32_t seed, size_t count, int32_t vocab, size_t max_len) {
    std::mt19937 rng(seed);
    std::vector<Seq> out(count);
    for (Seq& s : out) {
        s.resize(rng() % (max_len + 1));
        for (int32_t& t : s) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
    }
    return out;
}

uint64_t constant_hash(const int32_t*, size_t) { return 0; }
// Two values only, and the same tag: every lookup walks a long probe chain.
uint64_t parity_hash(const int32_t* ids, size_t) { return static_cast<uint64_t>(ids[0] & 1); }

// Every context of the reference and every token of the vocabulary: blocked
// exactly when the reference holds the n-gram; and the block lists match.
void expect_same_as_reference(const NgramGuard& g, const Reference& ref, int32_t vocab) {
    ASSERT_EQ(g.n_contexts(), ref.size());
    size_t n_ngrams = 0;
    for (const auto& [context, tokens] : ref) {
        n_ngrams += tokens.size();
        const BlockedTokens b = g.blocked(context.data());
        EXPECT_EQ(std::vector<int32_t>(b.begin(), b.end()), std::vector<int32_t>(tokens.begin(), tokens.end()));
        for (int32_t t = 0; t < vocab; ++t) EXPECT_EQ(g.blocks(context.data(), t), tokens.count(t) == 1);
    }
    EXPECT_EQ(g.n_ngrams(), n_ngrams);
}

TEST(NgramGuard, HandWorkedExample) {
    // 1 2 3 1 2 4 with n = 3: (1 2) -> {3, 4}, (2 3) -> {1}, (3 1) -> {2}; 9 9
    // is shorter than n and holds no trigram.
    const NgramGuard g = NgramGuard::build({{1, 2, 3, 1, 2, 4}, {9, 9}}, 3, {"tok:abc"});
    EXPECT_EQ(g.n(), 3);
    EXPECT_EQ(g.n_contexts(), 3u);
    EXPECT_EQ(g.n_ngrams(), 4u);
    EXPECT_EQ(g.n_sequences(), 2u);
    EXPECT_EQ(g.n_source_tokens(), 8u);
    EXPECT_EQ(g.tokenizer_fingerprint(), "tok:abc");
    const int32_t c12[] = {1, 2}, c23[] = {2, 3}, c31[] = {3, 1}, c24[] = {2, 4}, c99[] = {9, 9};
    const BlockedTokens b = g.blocked(c12);
    ASSERT_EQ(b.size(), 2u);
    EXPECT_EQ(b[0], 3);
    EXPECT_EQ(b[1], 4);
    EXPECT_TRUE(g.blocks(c23, 1));
    EXPECT_FALSE(g.blocks(c23, 4));
    EXPECT_TRUE(g.blocks(c31, 2));
    EXPECT_TRUE(g.blocked(c24).empty());  // ends a sequence: nothing follows it
    EXPECT_TRUE(g.blocked(c99).empty());
    // blocked_after: the last n-1 tokens of the history decide.
    EXPECT_EQ(g.blocked_after({7, 7, 3, 1}).size(), 1u);
    EXPECT_TRUE(g.blocked_after({7, 7, 3, 1}).contains(2));
    EXPECT_TRUE(g.blocked_after({1}).empty());  // shorter than n-1
    EXPECT_TRUE(g.blocked_after({}).empty());
}

TEST(NgramGuard, EveryTrainingNgramIsBlockedAndNothingElse) {
    // Small vocabulary so contexts repeat with several continuations.
    const int32_t vocab = 6;
    for (int n : {2, 3, 5}) {
        SCOPED_TRACE(n);
        const auto seqs = random_sequences(17 + n, 40, vocab, 30);
        const NgramGuard g = NgramGuard::build(seqs, n);
        const Reference ref = reference_map(seqs, n);
        expect_same_as_reference(g, ref, vocab);
        // Every window of every training sequence is blocked at its last token.
        for (const Seq& s : seqs)
            for (size_t i = 0; i + n <= s.size(); ++i) EXPECT_TRUE(g.blocks(s.data() + i, s[i + n - 1]));
    }
}

TEST(NgramGuard, UnseenContextsBlockNothing) {
    // Tokens 0..99 in training, contexts drawn from 100..199: none were seen.
    const auto seqs = random_sequences(5, 50, 100, 60);
    const NgramGuard g = NgramGuard::build(seqs, 4);
    std::mt19937 rng(9);
    for (int i = 0; i < 1000; ++i) {
        const int32_t c[3] = {static_cast<int32_t>(100 + rng() % 100), static_cast<int32_t>(rng() % 100),
                              static_cast<int32_t>(rng() % 100)};
        EXPECT_TRUE(g.blocked(c).empty());
    }
    // A seen context with a token that never followed it.
    const Reference ref = reference_map(seqs, 4);
    for (const auto& [context, tokens] : ref) EXPECT_FALSE(g.blocks(context.data(), 150));
}

TEST(NgramGuard, ExactUnderForcedHashCollisions) {
    const int32_t vocab = 5;
    const auto seqs = random_sequences(3, 30, vocab, 25);
    const Reference ref = reference_map(seqs, 3);
    ASSERT_GT(ref.size(), 10u);  // enough distinct contexts to collide
    for (NgramHashFn h : {&constant_hash, &parity_hash}) {
        NgramGuardParams p;
        p.hash = h;
        const NgramGuard g = NgramGuard::build(seqs, 3, p);
        expect_same_as_reference(g, ref, vocab);
        // Contexts that were never seen still miss, even with the same hash.
        const int32_t unseen[2] = {vocab, vocab + 1};
        EXPECT_TRUE(g.blocked(unseen).empty());
    }
}

TEST(NgramGuard, DuplicateSequencesShareContexts) {
    // The same sequence three times: as many contexts as once (the table is
    // resized down to them after the build).
    const Seq s = {5, 6, 7, 8, 9, 10, 11};
    const NgramGuard once = NgramGuard::build({s}, 3);
    const NgramGuard thrice = NgramGuard::build({s, s, s}, 3);
    EXPECT_EQ(once.n_contexts(), 5u);
    EXPECT_EQ(thrice.n_contexts(), 5u);
    EXPECT_EQ(thrice.n_ngrams(), 5u);
}

TEST(NgramGuard, BoundsOnN) {
    const std::vector<Seq> seqs = {{1, 2, 3, 4}};
    test::expect_error<InvalidInput>([&] { NgramGuard::build(seqs, 1); }, {"--guard-n must be at least 2", "got 1"});
    test::expect_error<InvalidInput>([&] { NgramGuard::build(seqs, 0); }, {"--guard-n must be at least 2"});
    NgramGuardParams p;
    p.max_context = 64;
    test::expect_error<InvalidInput>([&] { NgramGuard::build(seqs, 65, p); },
                                     {"--guard-n 65", "context of 64 tokens"}, "smaller n");
    EXPECT_NO_THROW(NgramGuard::build(seqs, 64, p));  // blocks nothing, but valid
    EXPECT_EQ(NgramGuard::build(seqs, 64, p).n_contexts(), 0u);
    test::expect_error<InvalidInput>([&] { NgramGuard::build({{1, -2, 3}}, 2); }, {"sequence 0", "-2"});
}

TEST(NgramGuard, EmptyGuardBlocksNothing) {
    const NgramGuard g = NgramGuard::build({}, 2);
    const int32_t c[1] = {0};
    EXPECT_EQ(g.n_contexts(), 0u);
    EXPECT_TRUE(g.blocked(c).empty());
    EXPECT_FALSE(g.blocks(c, 0));
}

TEST(NgramGuard, MemoryIsPlausible) {
    // 200 sequences of 500 tokens over a large vocabulary: nearly every 9-gram
    // is distinct, so about one context per token. The guard keeps each token
    // (4 bytes), a context's key offset and token offset (8), its one blocked
    // token (4) and at most ~2.9 slots of 8 bytes: between 16 and ~40 bytes
    // per window.
    const auto seqs = random_sequences(11, 200, 30000, 500);
    size_t tokens = 0, windows = 0;
    for (const Seq& s : seqs) {
        tokens += s.size();
        windows += s.size() >= 10 ? s.size() - 9 : 0;
    }
    const NgramGuard g = NgramGuard::build(seqs, 10);
    EXPECT_EQ(g.n_contexts(), windows);
    EXPECT_EQ(g.n_source_tokens(), tokens);
    EXPECT_GE(g.memory_bytes(), 16 * windows);
    EXPECT_LE(g.memory_bytes(), 48 * windows + 4096);
    EXPECT_GE(g.build_seconds(), 0.0);
}

TEST(TokenizerFingerprint, ChangesWithWhatIdsMean) {
    const auto fp = [](const Vocab& v) { return tokenizer_fingerprint(*Tokenizer::from_vocab(v)); };
    const std::string base = fp(make_byte_vocab());
    EXPECT_EQ(base.rfind("xxh3:", 0), 0u);
    EXPECT_EQ(base.size(), 5u + 16u);
    EXPECT_EQ(fp(make_byte_vocab()), base);  // deterministic
    Vocab piece = make_byte_vocab();
    std::swap(piece.tokens[65], piece.tokens[66]);  // ids 65 and 66 swap meanings
    EXPECT_NE(fp(piece), base);
    Vocab special = make_byte_vocab();
    special.eos = 256;  // EOS id moves
    EXPECT_NE(fp(special), base);
    Vocab extra = make_byte_vocab();
    extra.tokens.push_back("<extra>");
    extra.types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
    EXPECT_NE(fp(extra), base);
    // Scores decide how text splits, not what an id is: left out.
    Vocab scores = make_byte_vocab();
    scores.scores.assign(scores.tokens.size(), 1.0f);
    EXPECT_EQ(fp(scores), base);
}

}  // namespace
}  // namespace memskew
