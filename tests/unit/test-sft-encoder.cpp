// The one sample encoder against ids worked out by hand. The byte-level test
// vocabulary (make_byte_vocab) maps each byte to its own id, BOS = 256,
// EOS = 257 and adds BOS, so every expected id list below is the bytes of
// the text, written out in the test.
#include <gtest/gtest.h>

#include <fstream>

#include "memskew/error.h"
#include "memskew/sft-encoder.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;

namespace {

constexpr int32_t kBos = 256, kEos = 257;

std::vector<int32_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::vector<int32_t> with_bos(const std::string& s) {
    std::vector<int32_t> v{kBos};
    for (unsigned char c : s) v.push_back(c);
    return v;
}

Sample qa(std::string prompt, std::string reference) {
    Sample s;
    s.id = "s";
    s.line = 3;
    s.prompt = std::move(prompt);
    s.reference = std::move(reference);
    return s;
}

std::unique_ptr<Tokenizer> byte_tok() { return Tokenizer::from_vocab(make_byte_vocab()); }

}  // namespace

TEST(SftEncoder, PromptGetsBosReferenceDoesNot) {
    auto tok = byte_tok();
    EncodeCounts c;
    const auto e = encode_sft_example(qa("Q?\n", "Yes."), 0, *tok, {}, c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->prompt, with_bos("Q?\n"));
    EXPECT_EQ(e->reference, bytes("Yes."));
    EXPECT_FALSE(e->eos);
    EXPECT_FALSE(e->truncated);
    EXPECT_EQ(e->n_reference_full, 4);
    EXPECT_EQ(e->n_positions(), 4 + 4 - 1);
}

TEST(SftEncoder, EosOnlyWhenItFits) {
    auto tok = byte_tok();
    EncodeParams p;
    p.append_eos = true;
    p.max_context = 8;  // [BOS] "ab" "cdef" + EOS = 8 tokens, 7 positions fed
    EncodeCounts c;
    auto e = encode_sft_example(qa("ab", "cdef"), 0, *tok, p, c);
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->eos);
    EXPECT_EQ(e->n_positions(), 7);
    // One more reference byte: the reference still fits (3 + 5 - 1 = 7 <= 7), EOS does not.
    p.max_context = 7;
    e = encode_sft_example(qa("ab", "cdefg"), 0, *tok, p, c);
    ASSERT_TRUE(e);
    EXPECT_FALSE(e->eos);
    EXPECT_EQ(e->reference, bytes("cdefg"));
    EXPECT_EQ(c.n_truncated, 0);
}

TEST(SftEncoder, TruncationKeepsThePromptAndCountsTheCut) {
    auto tok = byte_tok();
    EncodeParams p;
    p.max_context = 6;  // prompt [BOS] "abc" (4) leaves 6 - 4 + 1 = 3 reference tokens
    EncodeCounts c;
    auto e = encode_sft_example(qa("abc", "0123456789"), 0, *tok, p, c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->prompt, with_bos("abc"));
    EXPECT_EQ(e->reference, bytes("012"));
    EXPECT_TRUE(e->truncated);
    EXPECT_EQ(e->n_reference_full, 10);
    EXPECT_EQ(c.n_truncated, 1);
    p.truncate = TruncatePolicy::kSkip;
    EXPECT_FALSE(encode_sft_example(qa("abc", "0123456789"), 0, *tok, p, c));
    EXPECT_EQ(c.n_skipped_long, 1);
    // A prompt that fills the context leaves no room: skipped under either policy.
    p.truncate = TruncatePolicy::kReference;
    EXPECT_FALSE(encode_sft_example(qa("abcdefg", "x"), 0, *tok, p, c));
    EXPECT_EQ(c.n_skipped_long, 2);
}

TEST(SftEncoder, MaxReferenceTokensCapsBeforeTheContext) {
    auto tok = byte_tok();
    EncodeParams p;
    p.max_reference_tokens = 2;
    p.max_context = 100;
    EncodeCounts c;
    auto e = encode_sft_example(qa("a", "xyz"), 0, *tok, p, c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->reference, bytes("xy"));
    EXPECT_FALSE(e->truncated);  // a cap the user asked for is not a context cut
    EXPECT_EQ(c.n_truncated, 0);
}

TEST(SftEncoder, EmptyIsAnErrorUnlessSkipIsAsked) {
    auto tok = byte_tok();
    EncodeCounts c;
    // An empty prompt becomes [BOS]: the tokenizer has one.
    auto e = encode_sft_example(qa("", "r"), 0, *tok, {}, c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->prompt, std::vector<int32_t>{kBos});
    // An empty reference: the error names the file, line and sample.
    expect_error<InvalidInput>([&] { encode_sft_example(qa("p", ""), 0, *tok, {}, c, "d.jsonl"); },
                               {"d.jsonl:3", "sample 's'", "no tokens"});
    EncodeParams skip;
    skip.skip_empty = true;
    EXPECT_FALSE(encode_sft_example(qa("p", ""), 0, *tok, skip, c));
    EXPECT_EQ(c.n_skipped_empty, 1);
    // Without a BOS token an empty prompt has nothing to start from.
    Vocab v = make_byte_vocab();
    v.bos = -1;
    v.add_bos = false;
    auto no_bos = Tokenizer::from_vocab(v);
    expect_error<InvalidInput>([&] { encode_sft_example(qa("", "r"), 0, *no_bos, {}, c, "d.jsonl"); },
                               {"d.jsonl:3", "empty prompt"}, "--skip-empty");
    EXPECT_FALSE(encode_sft_example(qa("", "r"), 0, *no_bos, skip, c));
    EXPECT_EQ(c.n_skipped_empty, 2);
}

TEST(SftEncoder, RawTextSplitsAtTokenOffsets) {
    auto tok = byte_tok();
    EncodeParams p;
    p.text_split = TextSplitParams{3, 2, ShortTextPolicy::kSkip, 1};
    Sample s;
    s.text = "abcdefgh";
    EncodeCounts c;
    auto e = encode_sft_example(s, 0, *tok, p, c);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->prompt, bytes("abc"));  // raw text: no BOS, the first P tokens of the text
    EXPECT_EQ(e->reference, bytes("de"));
    s.text = "abcd";
    EXPECT_FALSE(encode_sft_example(s, 0, *tok, p, c));
    EXPECT_EQ(c.n_skipped_short, 1);
}

TEST(SftEncoder, DatasetKeepsOrderAndSaysWhyNothingIsLeft) {
    auto tok = byte_tok();
    Dataset ds;
    ds.samples = {qa("a", "bb"), qa("a", "cccccccc"), qa("a", "d")};
    EncodeParams p;
    p.max_context = 4;  // [BOS] "a" leaves 3 reference tokens
    p.truncate = TruncatePolicy::kSkip;
    const EncodedDataset d = encode_sft_dataset(ds, *tok, p, "d.jsonl");
    ASSERT_EQ(d.items.size(), 2u);
    EXPECT_EQ(d.items[0].sample, 0u);
    EXPECT_EQ(d.items[1].sample, 2u);
    EXPECT_EQ(d.counts.n_skipped_long, 1);
    Dataset long_only;
    long_only.samples = {qa("a", "cccccccc")};
    expect_error<InvalidInput>([&] { encode_sft_dataset(long_only, *tok, p, "d.jsonl"); },
                               {"d.jsonl", "no sample is left", "1 too long"});
}

TEST(SftEncoder, FreeStandingPromptAndReference) {
    auto tok = byte_tok();
    EXPECT_EQ(encode_prompt(*tok, "hi"), with_bos("hi"));
    EXPECT_EQ(encode_prompt(*tok, ""), std::vector<int32_t>{kBos});
    EXPECT_EQ(encode_reference(*tok, "hi"), bytes("hi"));
    expect_error<InvalidInput>([&] { encode_reference(*tok, ""); }, {"no tokens"});
    Vocab v = make_byte_vocab();
    v.bos = -1;
    v.add_bos = false;
    auto no_bos = Tokenizer::from_vocab(v);
    expect_error<InvalidInput>([&] { encode_prompt(*no_bos, ""); }, {"no BOS"});
    EXPECT_EQ(kEos, make_byte_vocab().eos);
}

TEST(SftEncoder, ShardParsing) {
    EXPECT_EQ(parse_shard("0/4"), (std::pair<size_t, size_t>{0, 4}));
    EXPECT_EQ(parse_shard("3/4"), (std::pair<size_t, size_t>{3, 4}));
    for (const char* bad : {"4/4", "1/0", "1-4", "-1/4", "a/b", "1/4x", ""})
        expect_error<InvalidInput>([&] { parse_shard(bad); }, {"not of the form i/n"});
}
