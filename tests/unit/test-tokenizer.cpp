// Tokenizers on small hand-made vocabularies whose expected ids are worked
// out by hand, the GPT-2 pre-tokenizer on hand-split strings, the built-in
// byte vocabulary, and error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "memskew/tokenizer.h"
#include "test-util.h"
#include "tokenizer/pre-tokenizer.h"
#include "tokenizer/unicode-util.h"

namespace memskew {
namespace {

using Ids = std::vector<int32_t>;
using Strings = std::vector<std::string>;

constexpr int32_t kNormal = static_cast<int32_t>(TokenType::kNormal);

// --- SentencePiece-style BPE ------------------------------------------------

Vocab tiny_spm_vocab() {
    Vocab v;
    v.model = "llama";
    auto add = [&](const char* piece, float score, TokenType type = TokenType::kNormal) {
        v.tokens.emplace_back(piece);
        v.scores.push_back(score);
        v.types.push_back(static_cast<int32_t>(type));
    };
    add("<unk>", 0, TokenType::kUnknown);  // 0
    add("<s>", 0, TokenType::kControl);    // 1
    add("</s>", 0, TokenType::kControl);   // 2
    add("<0xC3>", 0, TokenType::kByte);    // 3
    add("<0xA9>", 0, TokenType::kByte);    // 4
    add("\u2581", -1);                     // 5 "▁"
    add("a", -1);                          // 6
    add("b", -1);                          // 7
    add("c", -1);                          // 8
    add("ab", -2);                         // 9
    add("bc", -2);                         // 10  ties with "ab"
    add("\u2581a", -3);                    // 11
    add("abc", -1.5);                      // 12
    add("\u2581ab", -0.5);                 // 13
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    v.add_bos = true;
    return v;
}

TEST(SpmTokenizer, MergesByScoreWithLeftmostTie) {
    auto tok = Tokenizer::from_vocab(tiny_spm_vocab());
    // "abc" -> "▁abc": symbols ▁ a b c. Candidates ▁a (-3), ab (-2), bc (-2):
    // ab and bc tie, the leftmost (ab) wins -> ▁ ab c. Then ▁ab (-0.5) beats
    // abc (-1.5) -> ▁ab c; "▁abc" is no token. Had bc won the tie we would get
    // ▁ a bc -> ▁ abc = [5, 12].
    EXPECT_EQ(tok->encode("abc"), (Ids{13, 8}));
    EXPECT_EQ(tok->decode({13, 8}), "abc");
}

TEST(SpmTokenizer, SpacesBecomeMarkers) {
    auto tok = Tokenizer::from_vocab(tiny_spm_vocab());
    // "a b" -> "▁a▁b": only ▁a merges -> ▁a ▁ b.
    EXPECT_EQ(tok->encode("a b"), (Ids{11, 5, 7}));
    EXPECT_EQ(tok->decode({11, 5, 7}), "a b");
    // A leading space: "▁▁a" -> ▁ ▁a; decoding drops only the prefix space.
    EXPECT_EQ(tok->encode(" a"), (Ids{5, 11}));
    EXPECT_EQ(tok->decode({5, 11}), " a");
}

TEST(SpmTokenizer, ByteFallbackAndUnknown) {
    auto tok = Tokenizer::from_vocab(tiny_spm_vocab());
    // "aé" -> ▁a é; "é" (C3 A9) is no token -> <0xC3> <0xA9>.
    EXPECT_EQ(tok->encode("a\xC3\xA9"), (Ids{11, 3, 4}));
    EXPECT_EQ(tok->decode({11, 3, 4}), "a\xC3\xA9");
    // "z" has neither a token nor a byte token -> <unk>.
    EXPECT_EQ(tok->encode("z"), (Ids{5, 0}));
}

TEST(SpmTokenizer, SpecialTokens) {
    auto tok = Tokenizer::from_vocab(tiny_spm_vocab());
    EXPECT_EQ(tok->encode("", false), Ids{});
    EXPECT_EQ(tok->encode("", true), Ids{1});
    EXPECT_EQ(tok->encode("abc", true), (Ids{1, 13, 8}));
    EXPECT_EQ(tok->decode({1, 13, 8, 2}), "abc");
    // Control pieces in raw text are plain text (added-token matching is not
    // part of encode yet): "<s>" is split into characters.
    const Ids ids = tok->encode("<s>");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
    EXPECT_EQ(tok->piece(13), "\u2581ab");
    EXPECT_EQ(tok->kind(), "llama");
    EXPECT_EQ(tok->bos(), 1);
}

TEST(SpmTokenizer, ByteTokensWithoutTypes) {
    // A Vocab built in code may leave types empty: <0xNN> pieces still decode
    // to their byte.
    Vocab v = tiny_spm_vocab();
    v.types.clear();
    auto tok = Tokenizer::from_vocab(v);
    EXPECT_EQ(tok->encode("a\xC3\xA9"), (Ids{11, 3, 4}));
    EXPECT_EQ(tok->decode({11, 3, 4}), "a\xC3\xA9");
}

TEST(SpmTokenizer, NoSpacePrefix) {
    Vocab v = tiny_spm_vocab();
    v.add_space_prefix = false;
    auto tok = Tokenizer::from_vocab(v);
    // "abc": a b c -> tie ab/bc, ab wins -> ab c -> abc (-1.5) = [12].
    EXPECT_EQ(tok->encode("abc"), Ids{12});
    EXPECT_EQ(tok->decode({5, 12}), " abc");  // no prefix to remove
}

// --- byte-level BPE ---------------------------------------------------------

Vocab tiny_bpe_vocab() {
    Vocab v = make_byte_vocab();  // ids 0..255 = bytes, 256 <s>, 257 </s>
    v.add_bos = false;
    auto add = [&](const char* piece) {
        v.tokens.emplace_back(piece);
        v.types.push_back(kNormal);
    };
    add("ll");     // 258
    add("he");     // 259
    add("hell");   // 260
    add("\u0120w");  // 261 "Ġw" (Ġ = byte 0x20)
    add("el");     // 262
    add("hello");  // 263
    v.merges = {"l l", "h e", "he ll", "\u0120 w", "e l", "hell o"};  // ranks 0..5
    return v;
}

TEST(ByteBpeTokenizer, MergesByRank) {
    auto tok = Tokenizer::from_vocab(tiny_bpe_vocab());
    // "hello": h e l l o. Pairs he (1), el (4), ll (0): ll first -> h e ll o;
    // then he (1) -> he ll o; he+ll (2) -> hell o; hell+o (5) -> hello.
    // (Merging leftmost-first would have taken "e l" and never reached hello.)
    EXPECT_EQ(tok->encode("hello"), Ids{263});
    // "hel": he (1) beats el (4) -> he l.
    EXPECT_EQ(tok->encode("hel"), (Ids{259, 'l'}));
    // "lll": ll at 0 and 1 tie; leftmost -> ll l.
    EXPECT_EQ(tok->encode("lll"), (Ids{258, 'l'}));
    // "hello world" -> pieces "hello", " world"; Ġw merges (3), the rest are bytes.
    EXPECT_EQ(tok->encode("hello world"), (Ids{263, 261, 'o', 'r', 'l', 'd'}));
    EXPECT_EQ(tok->decode({263, 261, 'o', 'r', 'l', 'd'}), "hello world");
    // Repeated words come from the cache and must agree.
    EXPECT_EQ(tok->encode("hello hello hello"), (Ids{263, ' ', 263, ' ', 263}));
}

TEST(ByteBpeTokenizer, BytesOfMultibyteCharacters) {
    auto tok = Tokenizer::from_vocab(tiny_bpe_vocab());
    // "é" is two bytes, each its own token (no merges for them).
    EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{0xC3, 0xA9}));
    EXPECT_EQ(tok->decode({0xC3, 0xA9}), "\xC3\xA9");
}

TEST(ByteVocab, Layout) {
    const Vocab v = make_byte_vocab();
    ASSERT_EQ(v.tokens.size(), 258u);
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.tokens['A'], "A");
    EXPECT_EQ(v.tokens[' '], "\u0120");   // Ġ
    EXPECT_EQ(v.tokens['\n'], "\u010A");  // Ċ
    EXPECT_EQ(v.tokens[0], "\u0100");
    EXPECT_EQ(v.tokens[0xAD], "\u0143");  // soft hyphen, the last shifted byte
    EXPECT_EQ(v.tokens[256], "<s>");
    EXPECT_EQ(v.tokens[257], "</s>");
    EXPECT_EQ(v.bos, 256);
    EXPECT_EQ(v.eos, 257);
    EXPECT_TRUE(v.add_bos);
    EXPECT_TRUE(v.merges.empty());
}

TEST(ByteVocab, RoundTripsRandomBytes) {
    auto tok = Tokenizer::from_vocab(make_byte_vocab());
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 200; ++trial) {
        std::string text(rng() % 300, '\0');
        for (char& c : text) {
            // Mix ASCII, whitespace, UTF-8 lead/continuation bytes and junk.
            const uint32_t r = rng() % 4;
            c = static_cast<char>(r == 0 ? " \n\t'"[rng() % 4] : r == 1 ? 'a' + rng() % 26 : rng() % 256);
        }
        const Ids ids = tok->encode(text, true);
        ASSERT_EQ(ids.size(), text.size() + 1);
        EXPECT_EQ(ids[0], 256);
        for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i + 1], static_cast<uint8_t>(text[i]));
        EXPECT_EQ(tok->decode(ids), text);
    }
    EXPECT_EQ(tok->token_text(256), "");
    EXPECT_EQ(tok->token_text(' '), " ");
}

// --- GPT-2 pre-tokenizer ----------------------------------------------------

TEST(Gpt2PreTokenizer, HandSplitStrings) {
    auto pre = make_pre_tokenizer("gpt-2");
    // "  end": two spaces before a letter -> " " then " end" (\s+(?!\S)
    // leaves the last space for the word); "\n\n x" likewise -> "\n\n", " x".
    EXPECT_EQ(pre->split_to_strings("Hello world's  end\n\n x"),
              (Strings{"Hello", " world", "'s", " ", " end", "\n\n", " x"}));
    EXPECT_EQ(pre->split_to_strings("I'm 123abc!!  ?"), (Strings{"I", "'m", " 123", "abc", "!!", " ", " ?"}));
    // Trailing whitespace is one piece (nothing follows it).
    EXPECT_EQ(pre->split_to_strings("a  "), (Strings{"a", "  "}));
    // Only an ASCII space can prefix a word: tabs split off on their own.
    EXPECT_EQ(pre->split_to_strings("\t\tx"), (Strings{"\t", "\t", "x"}));
    // Contractions are case-sensitive; "'S" is punctuation then a letter.
    EXPECT_EQ(pre->split_to_strings("'S 're've'll'd"), (Strings{"'", "S", " '", "re", "'ve", "'ll", "'d"}));
    // Unicode classes: letters (Latin, CJK Lo), numbers (Arabic-Indic digit).
    EXPECT_EQ(pre->split_to_strings("h\xC3\xA9llo w\xC3\xB6rld \xE6\x95\xB0\xE5\xAD\x97\xD9\xA3"),
              (Strings{"h\xC3\xA9llo", " w\xC3\xB6rld", " \xE6\x95\xB0\xE5\xAD\x97", "\xD9\xA3"}));
    // A lone space before the end, and the empty string.
    EXPECT_EQ(pre->split_to_strings("x "), (Strings{"x", " "}));
    EXPECT_EQ(pre->split_to_strings(""), Strings{});
    // Invalid UTF-8 bytes count as "other" and stay in the pieces.
    EXPECT_EQ(pre->split_to_strings("a\xFF\xFE b"), (Strings{"a", "\xFF\xFE", " b"}));
}

TEST(Gpt2PreTokenizer, MatchesIcuRegexOnRandomText) {
    // The hand-coded splitter must agree with a real regex engine running the
    // same pattern. Alphabet: ASCII classes, contractions, Unicode spaces
    // (NBSP, ideographic, NEL, VT), letters, numbers, marks, emoji.
    auto fast = make_gpt2_pre_tokenizer();
    auto slow = make_regex_pre_tokenizer(kGpt2Pattern);
    const std::vector<std::string> alphabet = {
        "a", "Z", "7", " ", " ", "  ", "\n", "\t", "\r\n", "'", "'s", "'re", "'ll", "!", ".", "-",
        "\xC2\xA0", "\xE3\x80\x80", "\xC2\x85", "\x0B", "\xC3\xA9", "\xE6\x95\xB0", "\xD9\xA3", "\xC2\xBD",
        "\xE2\x85\xA2", "\xCC\x81", "\xF0\x9F\x98\x80", "\xE2\x80\x8D", "_",
    };
    std::mt19937 rng(42);
    for (int trial = 0; trial < 2000; ++trial) {
        std::string text;
        const int n = 1 + static_cast<int>(rng() % 12);
        for (int k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
        ASSERT_EQ(fast->split_to_strings(text), slow->split_to_strings(text)) << "text: '" << text << "'";
    }
}

TEST(PreTokenizer, RegexKeepsGapsAndSequenceChains) {
    auto digits = make_regex_pre_tokenizer(R"(\p{N})");
    EXPECT_EQ(digits->split_to_strings("ab12c"), (Strings{"ab", "1", "2", "c"}));
    // Lookahead works on the generic path.
    auto la = make_regex_pre_tokenizer(R"(\s+(?!\S))");
    EXPECT_EQ(la->split_to_strings("a   b"), (Strings{"a", "  ", " b"}));
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    stages.push_back(make_gpt2_pre_tokenizer());
    stages.push_back(make_regex_pre_tokenizer(R"(\p{N})"));
    auto seq = make_sequence_pre_tokenizer(std::move(stages));
    EXPECT_EQ(seq->split_to_strings("hi 42x"), (Strings{"hi", " ", "4", "2", "x"}));
    EXPECT_THROW(make_regex_pre_tokenizer("(unclosed"), FormatError);
}

// --- errors -----------------------------------------------------------------

template <typename Fn>
std::string error_message(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.message();
    }
    return "(no error)";
}

TEST(TokenizerErrors, UnknownModel) {
    Vocab v = make_byte_vocab();
    v.model = "wordpiece";
    EXPECT_THROW(Tokenizer::from_vocab(v), FormatError);
    EXPECT_NE(error_message([&] { Tokenizer::from_vocab(v); }).find("unsupported tokenizer model 'wordpiece'"),
              std::string::npos);
}

TEST(TokenizerErrors, MergeNamingMissingToken) {
    Vocab v = tiny_bpe_vocab();
    v.merges.push_back("hello xyz");
    const std::string msg = error_message([&] { Tokenizer::from_vocab(v); });
    EXPECT_NE(msg.find("tokenizer.ggml.merges[6] 'hello xyz'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'xyz'"), std::string::npos) << msg;
    v.merges.back() = "hello";  // no separator
    EXPECT_THROW(Tokenizer::from_vocab(v), FormatError);
    v.merges.back() = "hello ";  // empty second part
    EXPECT_THROW(Tokenizer::from_vocab(v), FormatError);
    v.merges.back() = "e l l";  // "l l" is no token
    EXPECT_THROW(Tokenizer::from_vocab(v), FormatError);
}

TEST(TokenizerErrors, BadVocabularies) {
    Vocab empty;
    empty.model = "llama";
    EXPECT_NE(error_message([&] { Tokenizer::from_vocab(empty); }).find("empty vocabulary"), std::string::npos);
    empty.model = "gpt2";
    EXPECT_THROW(Tokenizer::from_vocab(empty), FormatError);

    Vocab v = tiny_spm_vocab();
    v.scores.pop_back();
    EXPECT_THROW(Tokenizer::from_vocab(v), FormatError);
    v = tiny_spm_vocab();
    v.scores[7] = std::nanf("");
    EXPECT_NE(error_message([&] { Tokenizer::from_vocab(v); }).find("tokenizer.ggml.scores[7] (token 'b') is NaN"),
              std::string::npos);
    v = tiny_spm_vocab();
    v.bos = 99;
    EXPECT_NE(error_message([&] { Tokenizer::from_vocab(v); }).find("tokenizer.ggml.bos_token_id"),
              std::string::npos);

    Vocab p = make_byte_vocab();
    p.pre = "qwen9";
    EXPECT_EQ(error_message([&] { Tokenizer::from_vocab(p); }),
              "unsupported pre-tokenizer 'qwen9' (tokenizer.ggml.pre)");
}

TEST(TokenizerErrors, BadIds) {
    auto tok = Tokenizer::from_vocab(make_byte_vocab());
    EXPECT_THROW(tok->decode({0, 258}), InvalidInput);
    EXPECT_THROW(tok->decode({-1}), InvalidInput);
    EXPECT_THROW(tok->piece(1000), InvalidInput);
    auto spm = Tokenizer::from_vocab(tiny_spm_vocab());
    EXPECT_THROW(spm->decode({14}), InvalidInput);
}

// --- GGUF -------------------------------------------------------------------

TEST(TokenizerGguf, RoundTripsThroughWriter) {
    const Vocab v = tiny_spm_vocab();
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::from_string("llama"));
    w.set("tokenizer.ggml.tokens", GgufValue::from_strings(v.tokens));
    w.set("tokenizer.ggml.scores", GgufValue::from_floats(v.scores));
    w.set("tokenizer.ggml.token_type", GgufValue::from_int32s(v.types));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::from_uint32(1));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::from_uint32(2));
    w.set("tokenizer.ggml.unknown_token_id", GgufValue::from_uint32(0));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::from_bool(true));
    const std::string path = test::temp_dir() + "/spm.gguf";
    w.write(path);
    auto tok = load_tokenizer_gguf(path);
    EXPECT_EQ(tok->vocab().tokens, v.tokens);
    EXPECT_EQ(tok->vocab().scores, v.scores);
    EXPECT_EQ(tok->vocab().types, v.types);
    EXPECT_TRUE(tok->vocab().add_space_prefix);  // llama default
    EXPECT_EQ(tok->encode("abc", true), (Ids{1, 13, 8}));
}

TEST(TokenizerGguf, ErrorsNameTheKey) {
    const std::string dir = test::temp_dir();
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::from_string("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::from_strings({"a", "b", "ab"}));
    w.write(dir + "/no-merges.gguf");
    std::string msg = error_message([&] { load_tokenizer_gguf(dir + "/no-merges.gguf"); });
    EXPECT_NE(msg.find("tokenizer.ggml.merges"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no-merges.gguf"), std::string::npos) << msg;

    w.set("tokenizer.ggml.merges", GgufValue::from_strings({"a b"}));
    w.set("tokenizer.ggml.pre", GgufValue::from_string("nonesuch"));
    w.write(dir + "/bad-pre.gguf");
    msg = error_message([&] { load_tokenizer_gguf(dir + "/bad-pre.gguf"); });
    EXPECT_NE(msg.find("unsupported pre-tokenizer 'nonesuch' (tokenizer.ggml.pre)"), std::string::npos) << msg;

    GgufWriter w2;
    w2.set("tokenizer.ggml.model", GgufValue::from_string("llama"));
    w2.write(dir + "/no-tokens.gguf");
    msg = error_message([&] { load_tokenizer_gguf(dir + "/no-tokens.gguf"); });
    EXPECT_NE(msg.find("tokenizer.ggml.tokens"), std::string::npos) << msg;

    EXPECT_THROW(load_tokenizer_gguf(dir + "/missing.gguf"), IoError);
}

}  // namespace
}  // namespace memskew
