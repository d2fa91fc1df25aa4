// One test program over llama.cpp's tokenizer test vectors (the
// test-tokenizer-0 suite): for each vocabulary, every input of
// vectors/<name>.inp must encode to the ids on the matching line of
// vectors/<name>.out (Hugging Face's encode(text, add_special_tokens=False)),
// and decode must give the input back.
//
// Round trips: byte-level BPE gives back any byte string. SentencePiece
// (llama-spm) gives back every input too: encode prepends one "▁" and decode
// removes exactly one leading space, so inputs that start with spaces survive.
// What it cannot give back is a literal U+2581 "▁" in the text (decoded as a
// space, as SentencePiece does); none of the 46 inputs has one.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "memskew/gguf.h"
#include "memskew/tokenizer.h"
#include "test-util.h"
#include "tokenizer-vectors.h"

namespace memskew {
namespace {

using test::read_cases;
using test::show_text;
using test::VectorCase;

class TokenizerVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerVectors, MatchAndRoundTrip) {
    const std::string name = GetParam();
    MEMSKEW_REQUIRE_SHARED(gguf_path, "tokenizers/gguf/ggml-vocab-" + name + ".gguf");
    MEMSKEW_REQUIRE_SHARED(inp_path, "tokenizers/vectors/" + name + ".inp");
    MEMSKEW_REQUIRE_SHARED(out_path, "tokenizers/vectors/" + name + ".out");
    const auto tok = load_tokenizer_gguf(gguf_path);
    const std::vector<VectorCase> cases = read_cases(inp_path, out_path);
    ASSERT_EQ(cases.size(), 46u);

    test::check_vectors(*tok, name, cases);
}

INSTANTIATE_TEST_SUITE_P(Gguf, TokenizerVectors, ::testing::Values("gpt-2", "llama-spm"),
                         test::vector_param_name);

std::string random_text(std::mt19937& rng, int n_parts) {
    static const std::vector<std::string> kParts = {
        "the", " cat", "s", "'s", " ", "  ", "   ", "\n", "\n\n", "\t", "Hello", "world", "1", "234", "!", "...",
        "\xC3\xA9", "\xE6\x95\xB0\xE5\xAD\x97", "\xF0\x9F\x98\x80", "\xE2\x96\x81", "\xFF", "\xC3",
        "\xE1\x9E\x80", "(", ")", "-", "ing", " un", "\xD0\xBF\xD1\x80\xD0\xB8",
    };
    std::string text;
    for (int k = 0; k < n_parts; ++k) text += kParts[rng() % kParts.size()];
    return text;
}

// The SentencePiece path merges word by word (and caches words) when no token
// spans a "▁" boundary. Adding one such token (that random text never
// contains) forces whole-text merging; both must agree everywhere.
TEST(RealVocab, SpmWordSplitMatchesWholeText) {
    MEMSKEW_REQUIRE_SHARED(gguf_path, "tokenizers/gguf/ggml-vocab-llama-spm.gguf");
    Vocab v = vocab_from_gguf(*GgufFile::open(gguf_path));
    const auto by_word = Tokenizer::from_vocab(v);
    v.tokens.push_back("QQQ\xE2\x96\x81QQQ");
    v.scores.push_back(-1e9f);
    v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
    const auto whole = Tokenizer::from_vocab(v);
    std::mt19937 rng(7);
    for (int trial = 0; trial < 500; ++trial) {
        const std::string text = random_text(rng, 1 + static_cast<int>(rng() % 40));
        ASSERT_EQ(by_word->encode(text), whole->encode(text)) << "text: '" << show_text(text) << "'";
        ASSERT_EQ(by_word->encode(text), by_word->encode(text));  // again, from the cache
    }
}

// One tokenizer used from several threads (the word caches are shared) gives
// the same ids as single-threaded use.
TEST(RealVocab, ConcurrentEncodeAgrees) {
    for (const std::string name : {"gpt-2", "llama-spm"}) {
        const std::string gguf_path = test::shared_path("tokenizers/gguf/ggml-vocab-" + name + ".gguf");
        if (gguf_path.empty()) GTEST_SKIP() << "shared tokenizers not found";
        std::mt19937 rng(99);
        std::vector<std::string> texts;
        for (int i = 0; i < 300; ++i) texts.push_back(random_text(rng, 30));
        std::vector<std::vector<int32_t>> expected;
        {
            const auto fresh = load_tokenizer_gguf(gguf_path);
            for (const auto& t : texts) expected.push_back(fresh->encode(t));
        }
        const auto shared = load_tokenizer_gguf(gguf_path);
        std::vector<int> n_wrong(4, 0);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (int rep = 0; rep < 3; ++rep) {
                    for (size_t i = 0; i < texts.size(); ++i) {
                        const size_t k = (i * 7 + static_cast<size_t>(t) * 31) % texts.size();
                        if (shared->encode(texts[k]) != expected[k]) ++n_wrong[static_cast<size_t>(t)];
                    }
                }
            });
        }
        for (auto& th : threads) th.join();
        for (int t = 0; t < 4; ++t) EXPECT_EQ(n_wrong[static_cast<size_t>(t)], 0) << name << " thread " << t;
    }
}

// Hostile input: arbitrary bytes must encode without crashing; byte-level BPE
// round-trips them exactly, and SentencePiece with byte fallback does too
// (random bytes almost never form U+2581, the one character it cannot give back).
TEST(RealVocab, RandomBytesRoundTrip) {
    for (const std::string name : {"gpt-2", "llama-spm"}) {
        const std::string gguf_path = test::shared_path("tokenizers/gguf/ggml-vocab-" + name + ".gguf");
        if (gguf_path.empty()) GTEST_SKIP() << "shared tokenizers not found";
        const auto tok = load_tokenizer_gguf(gguf_path);
        std::mt19937 rng(5);
        for (int trial = 0; trial < 300; ++trial) {
            std::string text(rng() % 200, '\0');
            for (char& c : text) c = static_cast<char>(rng() % 3 == 0 ? ' ' : rng() % 256);
            if (text.find("\xE2\x96\x81") != std::string::npos) continue;
            const auto ids = tok->encode(text, true);
            for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
            ASSERT_EQ(tok->decode(ids), text) << name << " text: '" << show_text(text) << "'";
        }
    }
}

// Encode speed (printed, not asserted: the machine is shared). The corpus is
// the first 8 MB of a real dataset when the shared data is there (a fresh
// tokenizer, so the word cache starts cold), else the vector inputs repeated.
// Encoding speed is measured by bench/bench-tokenize, not here.

}  // namespace
}  // namespace memskew
