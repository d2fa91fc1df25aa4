// Unicode classes in pre-tokenizer regexes (\p{N}, \p{L}, \p{Lu}.., \s, \d,
// \w) mean what they mean in Oniguruma, the engine Hugging Face tokenizers
// runs tokenizer.json patterns with: \p{N} is every number category (Nd, Nl,
// No: Arabic-Indic and fullwidth digits, Roman numerals, fractions,
// superscripts, circled digits), \p{L} every letter (Lu, Ll, Lt, Lm, Lo, in
// any script), \s is White_Space (U+000B and U+0085 included), \d is Nd, \w
// is Alphabetic + M + Nd + Pc (plus, outside brackets, Oniguruma's Latin-1
// extras ¹²³¼½¾).
//
// The expected pieces and ids are not memskew's: they come from Hugging
// Face's transformers.js (see tests/fixtures/tokenizer-unicode/expected.json's
// "generator" and make-expected.mjs, run once by a developer).
//   - Splits: each pattern run alone, through the generic ICU path and, for
//     GPT-2 / Llama-3 / Qwen2, through the hand-coded splitters too. No shared
//     assets needed.
//   - Ids: the shared gpt-2, mpt, falcon and llama-spm tokenizer.json files,
//     and gpt-2's vocabulary under Llama-3's and GPT-4o's (o200k) Split
//     regexes (built here from the fixture's pre_tokenizer objects).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memskew/tokenizer.h"
#include "test-util.h"
#include "tokenizer-vectors.h"
#include "tokenizer/hf-components.h"
#include "tokenizer/pre-tokenizer.h"

namespace memskew {
namespace {

using nlohmann::json;
using test::show_ids;
using test::show_text;

const json& reference() {
    static const json j =
        json::parse(test::read_file(test::source_dir() + "/tests/fixtures/tokenizer-unicode/expected.json"));
    return j;
}

std::string show_pieces(const std::vector<std::string>& pieces) {
    std::string s;
    for (const auto& p : pieces) s += (s.empty() ? "'" : " | '") + show_text(p) + "'";
    return s;
}

// Every pattern on every text, through ICU (any pattern) and the hand-coded
// splitter where there is one.
TEST(PreTokenizerUnicode, SplitsMatchReference) {
    const json& ref = reference();
    ASSERT_GE(ref.at("splits").size(), 10u);
    for (const json& entry : ref.at("splits")) {
        const std::string name = entry.at("name");
        const std::string pattern = entry.at("pattern");
        std::vector<std::pair<std::string, std::unique_ptr<PreTokenizer>>> splitters;
        splitters.emplace_back("icu", make_regex_pre_tokenizer(pattern));
        if (name == "gpt-2") {
            ASSERT_EQ(pattern, kGpt2Pattern);
            splitters.emplace_back("hand-coded", make_gpt2_pre_tokenizer());
        } else if (name == "llama-3") {
            ASSERT_EQ(pattern, detail::hf::kLlama3Pattern);
            splitters.emplace_back("hand-coded", detail::hf::make_llama3_pre_tokenizer(3));
        } else if (name == "qwen2") {
            ASSERT_EQ(pattern, detail::hf::kQwen2Pattern);
            splitters.emplace_back("hand-coded", detail::hf::make_llama3_pre_tokenizer(1));
        }
        for (const auto& [kind, splitter] : splitters) {
            int n_match = 0;
            for (const json& c : entry.at("cases")) {
                const std::string text = c.at("text");
                const auto want = c.at("pieces").get<std::vector<std::string>>();
                const auto got = splitter->split_to_strings(text);
                if (got == want) {
                    ++n_match;
                } else {
                    ADD_FAILURE() << name << " (" << kind << ") on '" << show_text(text) << "'\n  expected: "
                                  << show_pieces(want) << "\n  got:      " << show_pieces(got);
                }
            }
            std::printf("[ %-17s %-10s ] %d/%zu texts split as the reference\n", name.c_str(), kind.c_str(), n_match,
                        entry.at("cases").size());
        }
    }
}

class PreTokenizerUnicodeIds : public ::testing::TestWithParam<std::string> {};

TEST_P(PreTokenizerUnicodeIds, MatchReference) {
    const std::string name = GetParam();
    const json* entry = nullptr;
    for (const json& e : reference().at("encodings")) {
        if (e.at("tokenizer") == name) entry = &e;
    }
    ASSERT_NE(entry, nullptr) << name << " missing from expected.json";
    const std::string base = entry->value("base", name);
    MEMSKEW_REQUIRE_SHARED(base_dir, "tokenizers/hf/" + base);
    std::unique_ptr<Tokenizer> tok;
    if (entry->contains("pre_tokenizer")) {
        // The base tokenizer.json with the fixture's pre_tokenizer.
        json doc = json::parse(test::read_file(base_dir + "/tokenizer.json"));
        doc["pre_tokenizer"] = entry->at("pre_tokenizer");
        const std::string path = test::temp_dir() + "/tokenizer.json";
        std::ofstream(path, std::ios::binary) << doc.dump();
        tok = load_tokenizer_json(path);
    } else {
        tok = load_tokenizer_json(base_dir);
    }
    int n_match = 0;
    for (const json& c : entry->at("cases")) {
        const std::string text = c.at("text");
        const auto want = c.at("ids").get<std::vector<int32_t>>();
        const auto got = tok->encode(text, false);
        if (got == want) {
            ++n_match;
        } else {
            ADD_FAILURE() << name << " on '" << show_text(text) << "'\n  expected: " << show_ids(want)
                          << "\n  got:      " << show_ids(got);
        }
    }
    std::printf("[ %-20s ] %d/%zu texts encode as the reference\n", name.c_str(), n_match, entry->at("cases").size());
}

INSTANTIATE_TEST_SUITE_P(Hf, PreTokenizerUnicodeIds,
                         ::testing::Values("gpt-2", "mpt", "falcon", "llama-spm", "gpt-2_llama-3-split",
                                           "gpt-2_o200k-split"),
                         test::vector_param_name);

// The categories themselves, one code point each, so a failure names the
// class at fault: \p{N} takes Nd beyond ASCII, Nl and No; \d takes Nd only.
// (Expected by the Unicode general category of each code point, as in
// UnicodeData.txt.)
TEST(PreTokenizerUnicode, NumberCategories) {
    const auto n = make_regex_pre_tokenizer(R"(\p{N}+)");
    const auto d = make_regex_pre_tokenizer(R"(\d+)");
    struct Case {
        const char* text;
        const char* category;
    };
    for (const Case c : {Case{"\xD9\xA3", "Nd U+0663 ARABIC-INDIC DIGIT THREE"},
                         Case{"\xEF\xBC\x91", "Nd U+FF11 FULLWIDTH DIGIT ONE"},
                         Case{"\xF0\x9D\x9F\x99", "Nd U+1D7D9 MATHEMATICAL DOUBLE-STRUCK DIGIT ONE"},
                         Case{"\xE2\x85\xAB", "Nl U+216B ROMAN NUMERAL TWELVE"},
                         Case{"\xE3\x80\x87", "Nl U+3007 IDEOGRAPHIC NUMBER ZERO"},
                         Case{"\xC2\xBD", "No U+00BD VULGAR FRACTION ONE HALF"},
                         Case{"\xC2\xB2", "No U+00B2 SUPERSCRIPT TWO"},
                         Case{"\xE2\x91\xA0", "No U+2460 CIRCLED DIGIT ONE"}}) {
        const std::string text = std::string("a") + c.text + "b";
        EXPECT_EQ(n->split_to_strings(text), (std::vector<std::string>{"a", c.text, "b"})) << "\\p{N}: " << c.category;
        const bool decimal = std::string(c.category).rfind("Nd", 0) == 0;
        EXPECT_EQ(d->split_to_strings(text),
                  decimal ? (std::vector<std::string>{"a", c.text, "b"}) : (std::vector<std::string>{text}))
            << "\\d: " << c.category;
    }
}

// The rewrite itself: shorthand classes in and out of brackets, and what it
// must leave alone (escaped backslashes, \Q..\E, \p{..}, POSIX brackets).
TEST(PreTokenizerUnicode, OnigurumaToIcu) {
    using detail::hf::oniguruma_to_icu;
    const std::string word = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc})";
    const std::string latin1 = R"(\u00B2\u00B3\u00B9\u00BC-\u00BE)";
    EXPECT_EQ(oniguruma_to_icu(R"(\s+|\S)"), R"(\p{White_Space}+|\P{White_Space})");
    EXPECT_EQ(oniguruma_to_icu(R"(\w+|[^\w\s]+)"),
              "[" + word + latin1 + "]+|[^" + word + R"(\p{White_Space}]+)");
    EXPECT_EQ(oniguruma_to_icu(R"(\W[\W])"), "[^" + word + latin1 + "][[^" + word + "]]");
    EXPECT_EQ(oniguruma_to_icu(R"(\h\H)"), R"(\p{ASCII_Hex_Digit}\P{ASCII_Hex_Digit})");
    const std::vector<std::pair<std::string, std::string>> kept = {
        {R"(\\s\\w)", R"(\\s\\w)"},  // escaped backslashes
        {R"(\Q\s\w\E\s)", R"(\Q\s\w\E\p{White_Space})"},
        {R"(\p{N}{1,3}|\d+|[^\r\n\p{L}\p{N}]?\p{L}+)", R"(\p{N}{1,3}|\d+|[^\r\n\p{L}\p{N}]?\p{L}+)"},
        {R"([[:alpha:]\d]+)", R"([[:alpha:]\d]+)"},
        {R"((?i:'s|'t))", R"((?i:'s|'t))"},
        {"[]a]", R"([\]a])"},  // ']' first in a class is a literal
    };
    for (const auto& [in, want] : kept) EXPECT_EQ(oniguruma_to_icu(in), want) << in;
    // Every rewritten pattern compiles and keeps Oniguruma's meaning.
    const auto ws = make_regex_pre_tokenizer(R"(\w+|[^\w\s]+)");
    EXPECT_EQ(ws->split_to_strings("x\xC2\xB2+1 a\xE2\x80\x8D" "b"),
              (std::vector<std::string>{"x\xC2\xB2", "+", "1", " ", "a", "\xE2\x80\x8D", "b"}));
    EXPECT_EQ(make_regex_pre_tokenizer(R"(\h+)")->split_to_strings("0xBeef \t"),
              (std::vector<std::string>{"0", "x", "Beef", " \t"}));
    EXPECT_EQ(make_regex_pre_tokenizer(R"(\s+)")->split_to_strings("a\x0B\xC2\x85" "b"),
              (std::vector<std::string>{"a", "\x0B\xC2\x85", "b"}));
}

}  // namespace
}  // namespace memskew
