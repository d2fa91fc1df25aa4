// METHOD M8 on generated output vs reference: exact match, ROUGE-1/2/L,
// Levenshtein (tokens, code points, bytes), longest common substring,
// approximate memorization, Pythia score, k-extractable.
#include <gtest/gtest.h>

#include <vector>

#include "memskew/error.h"
#include "memskew/metrics.h"

namespace memskew {
namespace {

// Word ids for the hand-worked sentences: the=1 cat=2 sat=3 on=4 mat=5 dog=6.
const std::vector<int32_t> kRefCat = {1, 2, 3, 4, 1, 5};  // the cat sat on the mat
const std::vector<int32_t> kGenCat = {1, 2, 4, 1, 5};     // the cat on the mat

TEST(ExactMatch, WholeSequence) {
    EXPECT_TRUE(exact_match({1, 2, 3}, {1, 2, 3}));
    EXPECT_FALSE(exact_match({1, 2, 3}, {1, 2}));
    EXPECT_FALSE(exact_match({1, 2, 3}, {1, 2, 3, 4}));
    EXPECT_FALSE(exact_match({1, 2, 3}, {1, 9, 3}));
}

TEST(RougeL, DroppedWord) {
    // LCS("the cat sat on the mat", "the cat on the mat") = "the cat on the mat" = 5.
    // P = 5/5 = 1, R = 5/6, F1 = 2 * 1 * 5/6 / (1 + 5/6) = (10/6) / (11/6) = 10/11.
    EXPECT_EQ(lcs_length(kRefCat, kGenCat), 5u);
    RougeScore s = rouge_l(kRefCat, kGenCat);
    EXPECT_DOUBLE_EQ(s.precision, 1.0);
    EXPECT_DOUBLE_EQ(s.recall, 5.0 / 6.0);
    EXPECT_DOUBLE_EQ(s.f1, 10.0 / 11.0);
}

TEST(RougeL, ReorderedWords) {
    // ref "the cat sat" (1 2 3), gen "sat the cat" (3 1 2): LCS "the cat" = 2,
    // P = R = 2/3, F1 = 2/3.
    RougeScore s = rouge_l({1, 2, 3}, {3, 1, 2});
    EXPECT_DOUBLE_EQ(s.precision, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.recall, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.f1, 2.0 / 3.0);
}

TEST(RougeL, EmptyIsZero) {
    RougeScore s = rouge_l(kRefCat, {});
    EXPECT_EQ(s.precision, 0.0);
    EXPECT_EQ(s.recall, 0.0);
    EXPECT_EQ(s.f1, 0.0);
    EXPECT_EQ(rouge_l({}, kGenCat).f1, 0.0);
}

TEST(RougeN, UnigramsAndBigramsOfDroppedWord) {
    // Unigrams: ref {the:2, cat, sat, on, mat} (6), gen {the:2, cat, on, mat} (5);
    // overlap 2 + 1 + 0 + 1 + 1 = 5: P = 1, R = 5/6, F1 = 10/11.
    RougeScore r1 = rouge_n(kRefCat, kGenCat, 1);
    EXPECT_DOUBLE_EQ(r1.precision, 1.0);
    EXPECT_DOUBLE_EQ(r1.recall, 5.0 / 6.0);
    EXPECT_DOUBLE_EQ(r1.f1, 10.0 / 11.0);
    // Bigrams: ref {the-cat, cat-sat, sat-on, on-the, the-mat} (5),
    // gen {the-cat, cat-on, on-the, the-mat} (4); overlap 3:
    // P = 3/4, R = 3/5, F1 = 2 * 0.45 / 1.35 = 2/3.
    RougeScore r2 = rouge_n(kRefCat, kGenCat, 2);
    EXPECT_DOUBLE_EQ(r2.precision, 0.75);
    EXPECT_DOUBLE_EQ(r2.recall, 0.6);
    EXPECT_DOUBLE_EQ(r2.f1, 2.0 / 3.0);
}

TEST(RougeN, RepeatedTokensAreClipped) {
    // ref "the cat" (1 2), gen "the the the" (1 1 1): "the" counts
    // min(1, 3) = 1, not 3. P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 2/5.
    RougeScore r1 = rouge_n({1, 2}, {1, 1, 1}, 1);
    EXPECT_DOUBLE_EQ(r1.precision, 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(r1.recall, 0.5);
    EXPECT_DOUBLE_EQ(r1.f1, 0.4);
    // No shared bigram: the-cat vs the-the x2.
    EXPECT_EQ(rouge_n({1, 2}, {1, 1, 1}, 2).f1, 0.0);

    // ref (1 1 2), gen (1 1 1 1). Unigrams: min(2, 4) = 2 of 4 generated and 3
    // reference: P = 1/2, R = 2/3, F1 = 2 * (1/3) / (7/6) = 4/7.
    RougeScore c1 = rouge_n({1, 1, 2}, {1, 1, 1, 1}, 1);
    EXPECT_DOUBLE_EQ(c1.precision, 0.5);
    EXPECT_DOUBLE_EQ(c1.recall, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(c1.f1, 4.0 / 7.0);
    // Bigrams: ref {1-1, 1-2}, gen {1-1 x3}: min(1, 3) = 1: P = 1/3, R = 1/2, F1 = 2/5.
    RougeScore c2 = rouge_n({1, 1, 2}, {1, 1, 1, 1}, 2);
    EXPECT_DOUBLE_EQ(c2.precision, 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(c2.recall, 0.5);
    EXPECT_DOUBLE_EQ(c2.f1, 0.4);
}

TEST(RougeN, ShortOrEmptySequences) {
    // rouge-score divides by max(count, 1): no n-grams gives 0, not NaN.
    RougeScore s = rouge_n({1, 2, 3}, {1}, 2);
    EXPECT_EQ(s.precision, 0.0);
    EXPECT_EQ(s.recall, 0.0);
    EXPECT_EQ(s.f1, 0.0);
    EXPECT_EQ(rouge_n({}, {}, 1).f1, 0.0);
    EXPECT_DOUBLE_EQ(rouge_n({7}, {7}, 1).f1, 1.0);
}

TEST(RougeN, BadN) {
    EXPECT_THROW(rouge_n({1}, {1}, 0), InvalidInput);
    EXPECT_THROW(rouge_n({1}, {1}, -2), InvalidInput);
}

TEST(Levenshtein, ClassicExamples) {
    // kitten -> sitting: k->s, e->i, +g = 3. flaw -> lawn: -f, +n = 2.
    EXPECT_EQ(levenshtein_distance_text("kitten", "sitting"), 3u);
    EXPECT_EQ(levenshtein_distance_text("sitting", "kitten"), 3u);
    EXPECT_EQ(levenshtein_distance_text("flaw", "lawn"), 2u);
    EXPECT_EQ(levenshtein_distance_text("", ""), 0u);
    EXPECT_EQ(levenshtein_distance_text("", "abc"), 3u);
    EXPECT_EQ(levenshtein_distance_text("abc", ""), 3u);
    EXPECT_EQ(levenshtein_distance_text("same", "same"), 0u);
    // Similarity 1 - d / max(len): kitten/sitting 1 - 3/7 = 4/7.
    EXPECT_DOUBLE_EQ(levenshtein_similarity_text("kitten", "sitting"), 4.0 / 7.0);
    EXPECT_DOUBLE_EQ(levenshtein_similarity_text("", ""), 1.0);
    EXPECT_DOUBLE_EQ(levenshtein_similarity_text("", "abc"), 0.0);
}

TEST(Levenshtein, CodePointsVersusBytes) {
    // "café" ends in U+00E9, two bytes C3 A9 in UTF-8. One code point differs
    // from "cafe" (substitute é -> e); in bytes it is substitute + delete = 2.
    EXPECT_EQ(levenshtein_distance_text("caf\u00e9", "cafe", TextUnit::kCodePoint), 1u);
    EXPECT_EQ(levenshtein_distance_text("caf\u00e9", "cafe", TextUnit::kByte), 2u);
    // Similarity over 4 code points vs 5 bytes.
    EXPECT_DOUBLE_EQ(levenshtein_similarity_text("caf\u00e9", "cafe"), 0.75);
    EXPECT_DOUBLE_EQ(levenshtein_similarity_text("caf\u00e9", "cafe", TextUnit::kByte), 0.6);
    // A 4-byte code point (U+1F600) is one character.
    EXPECT_EQ(levenshtein_distance_text("a\U0001F600b", "ab"), 1u);
    EXPECT_EQ(levenshtein_distance_text("a\U0001F600b", "ab", TextUnit::kByte), 4u);
}

TEST(Levenshtein, IllFormedUtf8BecomesReplacementCharacter) {
    // Lone bytes FF and FE are each ill-formed: both read as U+FFFD, so they
    // are equal as code points but differ as bytes.
    EXPECT_EQ(levenshtein_distance_text("a\xFF" "b", "a\xFE" "b"), 0u);
    EXPECT_EQ(levenshtein_distance_text("a\xFF" "b", "a\xFE" "b", TextUnit::kByte), 1u);
    // A truncated 2-byte sequence (C3 without its continuation) equals a real U+FFFD.
    EXPECT_EQ(levenshtein_distance_text("a\xC3", "a\uFFFD"), 0u);
}

TEST(Levenshtein, Tokens) {
    EXPECT_EQ(levenshtein_distance({1, 2, 3}, {1, 3}), 1u);
    EXPECT_EQ(levenshtein_distance({1, 2, 3}, {3, 2, 1}), 2u);
    EXPECT_EQ(levenshtein_distance({}, {4, 5}), 2u);
    EXPECT_EQ(levenshtein_distance(kRefCat, kGenCat), 1u);
    EXPECT_DOUBLE_EQ(levenshtein_similarity(kRefCat, kGenCat), 1.0 - 1.0 / 6.0);
    EXPECT_DOUBLE_EQ(levenshtein_similarity({}, {}), 1.0);
}

TEST(LongestCommonSubstring, ContiguousRunsOnly) {
    // "the cat sat on the mat" vs "the cat on the mat": runs "the cat" (2) and
    // "on the mat" (3); the subsequence (LCS = 5) is not a substring.
    EXPECT_EQ(longest_common_substring(kRefCat, kGenCat), 3u);
    EXPECT_EQ(longest_common_substring(kGenCat, kRefCat), 3u);  // symmetric
    // 1 2 3 vs 3 2 1: no run longer than one token.
    EXPECT_EQ(longest_common_substring({1, 2, 3}, {3, 2, 1}), 1u);
    // Containment: the whole shorter sequence.
    EXPECT_EQ(longest_common_substring({9, 9, 4, 5, 6, 9}, {4, 5, 6}), 3u);
    // One substitution (3 -> 8) splits the common run into 1 2 and 4 5 6 7.
    EXPECT_EQ(longest_common_substring({1, 2, 3, 4, 5, 6, 7}, {1, 2, 8, 4, 5, 6, 7}), 4u);
    // Repeated tokens: 1 1 1 vs 1 1 gives 2, not 3.
    EXPECT_EQ(longest_common_substring({1, 1, 1}, {1, 1}), 2u);
    EXPECT_EQ(longest_common_substring({}, {1, 2}), 0u);
    EXPECT_EQ(longest_common_substring({1, 2}, {3, 4}), 0u);
}

TEST(ApproximatelyMemorized, NormalisedEditDistance) {
    const std::vector<int32_t> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    // One substitution in ten tokens: 1 / 10 = 0.1 <= 0.1 (the boundary counts).
    std::vector<int32_t> one_sub = ten;
    one_sub[4] = 99;
    EXPECT_TRUE(approximately_memorized(ten, one_sub));
    // Two substitutions: 2 / 10 = 0.2 > 0.1, but <= 0.2.
    std::vector<int32_t> two_sub = one_sub;
    two_sub[7] = 99;
    EXPECT_FALSE(approximately_memorized(ten, two_sub));
    EXPECT_TRUE(approximately_memorized(ten, two_sub, 0.2));
    // The longer sequence normalises: ten tokens vs the first nine is 1 deletion
    // over max(10, 9) = 10 -> 0.1; vs the first eight, 2 / 10.
    EXPECT_TRUE(approximately_memorized(ten, {1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_FALSE(approximately_memorized(ten, {1, 2, 3, 4, 5, 6, 7, 8}));
    // Same in the other direction (output longer than the window): 1 insertion
    // over 11 = 0.0909 <= 0.1.
    std::vector<int32_t> longer = ten;
    longer.push_back(11);
    EXPECT_TRUE(approximately_memorized(ten, longer));
    // Exact reproduction at threshold 0; any change is not.
    EXPECT_TRUE(approximately_memorized(ten, ten, 0.0));
    EXPECT_FALSE(approximately_memorized(ten, one_sub, 0.0));
    // "the cat sat on the mat" vs "the cat on the mat": 1 / 6 = 0.167.
    EXPECT_FALSE(approximately_memorized(kRefCat, kGenCat));
    EXPECT_TRUE(approximately_memorized(kRefCat, kGenCat, 1.0 / 6.0));
    // Empty against empty is identical; empty against anything is distance 1.
    EXPECT_TRUE(approximately_memorized({}, {}));
    EXPECT_FALSE(approximately_memorized({}, {1}));
    EXPECT_TRUE(approximately_memorized({}, {1}, 1.0));
    EXPECT_THROW(approximately_memorized(ten, ten, -0.1), InvalidInput);
    EXPECT_THROW(approximately_memorized(ten, ten, 1.5), InvalidInput);
}

TEST(PythiaScore, FractionOfFirstLPositions) {
    // ref 1 2 3 4, gen 1 9 3: positions 1 and 3 equal, position 4 missing: 2/4.
    EXPECT_DOUBLE_EQ(pythia_memorization_score({1, 2, 3, 4}, {1, 9, 3}), 0.5);
    // Tokens past L are ignored.
    EXPECT_DOUBLE_EQ(pythia_memorization_score({1, 2, 3, 4}, {1, 2, 3, 4, 5, 6}), 1.0);
    // Position-wise, not prefix: a shifted output scores 0 even though it overlaps.
    EXPECT_DOUBLE_EQ(pythia_memorization_score({1, 2, 3, 4}, {0, 1, 2, 3}), 0.0);
    EXPECT_DOUBLE_EQ(pythia_memorization_score({1, 2, 3, 4}, {}), 0.0);
    EXPECT_THROW(pythia_memorization_score({}, {1}), InvalidInput);
}

TEST(KExtractable, PrefixOfLengthK) {
    const std::vector<int32_t> ref = {1, 2, 3, 4};
    EXPECT_EQ(k_extractable(ref, {1, 2, 9}, 2), std::optional<bool>(true));
    EXPECT_EQ(k_extractable(ref, {1, 2, 9}, 3), std::optional<bool>(false));
    EXPECT_EQ(k_extractable(ref, {1, 2, 3, 4}, 4), std::optional<bool>(true));
    // Generated output shorter than k: not extracted.
    EXPECT_EQ(k_extractable(ref, {1}, 2), std::optional<bool>(false));
    // Reference shorter than k: not applicable.
    EXPECT_EQ(k_extractable(ref, {1, 2, 3, 4}, 5), std::nullopt);
    EXPECT_THROW(k_extractable(ref, ref, 0), InvalidInput);
}

}  // namespace
}  // namespace memskew
