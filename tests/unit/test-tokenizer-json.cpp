// Hugging Face tokenizer.json: one test program over the shared fixtures
// (gpt-2, llama-spm, falcon, mpt), each checked against llama.cpp's 46 test
// vectors (ids from transformers' AutoTokenizer, add_special_tokens=False),
// plus bad files and small hand-written tokenizers for the pipeline parts the
// fixtures do not use.
//
// Round trips (decode(encode(x)) == x) hold for all 46 inputs of every
// fixture. In general they do not when a normalizer changes the text (mpt's
// NFC turns decomposed accents into composed ones; Llama-2's Replace turns a
// literal "▁" into a space): decode gives back the normalized text, as HF does.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "memskew/error.h"
#include "memskew/tokenizer.h"
#include "test-util.h"
#include "tokenizer-vectors.h"
#include "tokenizer/hf-components.h"
#include "tokenizer/pre-tokenizer.h"

namespace memskew {
namespace {

using test::read_cases;
using test::show_ids;
using test::show_text;
using test::VectorCase;

template <typename Fn>
std::string error_message(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.message();
    }
    return "(no error)";
}

// Writes `json` as tokenizer.json into a fresh folder; returns the file path.
std::string write_tokenizer(const std::string& json) {
    const std::string path = test::temp_dir() + "/tokenizer.json";
    std::ofstream(path, std::ios::binary) << json;
    return path;
}

// ------------------------------------------------------------ fixtures

class TokenizerJsonVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerJsonVectors, MatchAndRoundTrip) {
    const std::string name = GetParam();
    MEMSKEW_REQUIRE_SHARED(json_path, "tokenizers/hf/" + name + "/tokenizer.json");
    MEMSKEW_REQUIRE_SHARED(inp_path, "tokenizers/vectors/" + name + ".inp");
    MEMSKEW_REQUIRE_SHARED(out_path, "tokenizers/vectors/" + name + ".out");
    const auto tok = load_tokenizer_json(json_path);
    const std::vector<VectorCase> cases = read_cases(inp_path, out_path);
    ASSERT_EQ(cases.size(), 46u);

    test::check_vectors(*tok, name + " json", cases);
}

INSTANTIATE_TEST_SUITE_P(Hf, TokenizerJsonVectors, ::testing::Values("gpt-2", "llama-spm", "falcon", "mpt"),
                         test::vector_param_name);

TEST(TokenizerJson, SpecialTokensAndFlags) {
    MEMSKEW_REQUIRE_SHARED(gpt2_path, "tokenizers/hf/gpt-2/tokenizer.json");
    MEMSKEW_REQUIRE_SHARED(llama_dir, "tokenizers/hf/llama-spm");
    const auto gpt2 = load_tokenizer_json(gpt2_path);
    EXPECT_EQ(gpt2->kind(), "gpt2");
    EXPECT_EQ(gpt2->n_vocab(), 50257);
    EXPECT_EQ(gpt2->eos(), 50256);
    EXPECT_FALSE(gpt2->vocab().add_bos);  // GPT-2's ByteLevel post-processor adds nothing
    // Control tokens written in the text are recognised, not spelled out.
    const auto ids = gpt2->encode("Hello<|endoftext|>world");
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_EQ(ids[1], 50256);
    EXPECT_EQ(gpt2->decode(ids), "Helloworld");  // special tokens decode to nothing

    // A folder works, and its tokenizer_config.json / TemplateProcessing add BOS.
    const auto llama = load_tokenizer_json(llama_dir);
    EXPECT_EQ(llama->kind(), "llama");
    EXPECT_EQ(llama->bos(), 1);
    EXPECT_EQ(llama->eos(), 2);
    EXPECT_TRUE(llama->vocab().add_bos);
    EXPECT_FALSE(llama->vocab().add_eos);
    const auto with_bos = llama->encode("Hello world", true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], 1);
    EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), llama->encode("Hello world", false));
    // The damaged entry (id 31353 stored as "") loads, and is never produced.
    EXPECT_EQ(llama->piece(31353), "");
    EXPECT_EQ(llama->decode({31353}), "");

    // mpt's whitespace-run added tokens (normalized=true) are matched after NFC.
    MEMSKEW_REQUIRE_SHARED(mpt_path, "tokenizers/hf/mpt/tokenizer.json");
    const auto mpt = load_tokenizer_json(mpt_path);
    EXPECT_EQ(mpt->n_vocab(), 50277);
    const auto spaces = mpt->encode("a" + std::string(8, ' ') + "b");
    EXPECT_NE(std::find(spaces.begin(), spaces.end(), 50270), spaces.end()) << show_ids(spaces);
    EXPECT_EQ(mpt->decode(spaces), "a" + std::string(8, ' ') + "b");
}

TEST(TokenizerJson, LoadTokenizerDispatches) {
    MEMSKEW_REQUIRE_SHARED(json_path, "tokenizers/hf/gpt-2/tokenizer.json");
    MEMSKEW_REQUIRE_SHARED(gguf_path, "tokenizers/gguf/ggml-vocab-gpt-2.gguf");
    const auto a = load_tokenizer(json_path);
    const auto b = load_tokenizer(gguf_path);
    const auto c = load_tokenizer(json_path.substr(0, json_path.rfind('/')));
    const std::string text = "The patient's dose was 250 mg   twice\ndaily.";
    EXPECT_EQ(a->encode(text), b->encode(text));
    EXPECT_EQ(c->encode(text), b->encode(text));
    const std::string junk = write_tokenizer("");
    const std::string other = junk.substr(0, junk.rfind('/')) + "/vocab.bin";
    std::ofstream(other, std::ios::binary) << "not a tokenizer";
    EXPECT_THROW(load_tokenizer(other), FormatError);
    EXPECT_THROW(load_tokenizer(test::temp_dir()), IoError);
    EXPECT_THROW(load_tokenizer_json("/nonexistent/tokenizer.json"), IoError);
}

// load_tokenizer's errors name the path and say what it accepts (no shared assets needed).
TEST(TokenizerJsonErrors, LoadTokenizerNamesThePath) {
    const std::string hint = "pass a tokenizer.json, a GGUF file, or a model folder holding tokenizer.json";
    test::expect_error<IoError>([] { load_tokenizer("/nonexistent/tokenizer.json"); },
                                {"cannot open tokenizer '/nonexistent/tokenizer.json': no such file or folder"}, hint);
    const std::string empty = test::temp_dir();
    test::expect_error<IoError>([&] { load_tokenizer(empty); }, {"no tokenizer.json in folder '" + empty + "'"}, hint);
    test::expect_error<IoError>([&] { load_tokenizer_json(empty); }, {"no tokenizer.json in folder '" + empty + "'"});
}

// The tokenizer.json and GGUF copies of the same vocabulary agree on real text.
TEST(TokenizerJson, AgreesWithGgufOnMedquadQuestions) {
    MEMSKEW_REQUIRE_SHARED(data_path, "data/medquad.jsonl");
    std::vector<std::string> questions;
    {
        std::istringstream in(test::read_file(data_path));
        std::string line;
        const std::string key = "\"question\": \"";
        while (questions.size() < 300 && std::getline(in, line)) {
            const size_t b = line.find(key);
            if (b == std::string::npos) continue;
            const size_t e = line.find("\", \"", b + key.size());
            // The questions are plain text; JSON escapes would only make both sides see the same bytes anyway.
            questions.push_back(line.substr(b + key.size(), e - b - key.size()));
        }
    }
    ASSERT_EQ(questions.size(), 300u);
    for (const std::string name : {"llama-spm", "gpt-2"}) {
        const std::string json_path = test::shared_path("tokenizers/hf/" + name + "/tokenizer.json");
        const std::string gguf_path = test::shared_path("tokenizers/gguf/ggml-vocab-" + name + ".gguf");
        if (json_path.empty() || gguf_path.empty()) GTEST_SKIP() << "shared tokenizers not found";
        const auto hf = load_tokenizer_json(json_path);
        const auto gguf = load_tokenizer_gguf(gguf_path);
        int n_same = 0;
        for (const std::string& q : questions) {
            const auto a = hf->encode(q, true), b = gguf->encode(q, true);
            if (a == b) {
                ++n_same;
            } else {
                ADD_FAILURE() << name << ": '" << q << "'\n  json: " << show_ids(a) << "\n  gguf: " << show_ids(b);
            }
        }
        std::printf("[ %-9s ] tokenizer.json vs GGUF: %d/%zu medquad questions identical (with BOS/EOS)\n",
                    name.c_str(), n_same, questions.size());
    }
}

// One tokenizer shared by several threads (word cache, per-thread regex
// matchers and buffers) gives the single-threaded ids.
TEST(TokenizerJson, ConcurrentEncodeAgrees) {
    for (const std::string name : {"falcon", "mpt", "llama-spm"}) {
        const std::string path = test::shared_path("tokenizers/hf/" + name + "/tokenizer.json");
        if (path.empty()) GTEST_SKIP() << "shared tokenizers not found";
        static const std::vector<std::string> kParts = {"the", " cat", "'s", "  ", "\n\n", "\t", "1234567", "!?",
                                                        "\xC3\xA9", "e\xCC\x81", "\xE6\x95\xB0", "\xF0\x9F\x98\x80",
                                                        "\xFF", "<|endoftext|>", "</s>", "        "};
        std::mt19937 rng(3);
        std::vector<std::string> texts(200);
        for (auto& t : texts) {
            for (int k = 0; k < 25; ++k) t += kParts[rng() % kParts.size()];
        }
        std::vector<std::vector<int32_t>> expected;
        {
            const auto fresh = load_tokenizer_json(path);
            for (const auto& t : texts) expected.push_back(fresh->encode(t));
        }
        const auto shared = load_tokenizer_json(path);
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

// ------------------------------------------------------------ small hand-written tokenizers

// A byte-level BPE over "a", "b", "c", " " and merges given as pairs.
std::string tiny_byte_level(const std::string& pre_tokenizer, const std::string& extra_model = "",
                            const std::string& added = "[]", const std::string& normalizer = "null") {
    return R"({"version":"1.0","added_tokens":)" + added + R"(,"normalizer":)" + normalizer +
           R"(,"pre_tokenizer":)" + pre_tokenizer +
           R"(,"post_processor":null,"decoder":{"type":"ByteLevel"},
  "model":{"type":"BPE","dropout":null,"unk_token":null)" + extra_model +
           R"(,"vocab":{"a":0,"b":1,"c":2,"Ġ":3,"ab":4,"abc":5,"Ġa":6,"1":7,"2":8,"12":9,"bc":10},
  "merges":[["a","b"],["ab","c"],["Ġ","a"],["1","2"]]}})";
}

TEST(TokenizerJsonTiny, MergesAsPairsAndIgnoreMerges) {
    const auto tok = load_tokenizer_json(write_tokenizer(tiny_byte_level(R"({"type":"ByteLevel","add_prefix_space":false})")));
    EXPECT_EQ(tok->encode("abc a"), (std::vector<int32_t>{5, 6}));
    EXPECT_EQ(tok->encode("bc"), (std::vector<int32_t>{1, 2}));  // "bc" is a token but no merge makes it
    const auto ignore = load_tokenizer_json(write_tokenizer(
        tiny_byte_level(R"({"type":"ByteLevel","add_prefix_space":false})", R"(,"ignore_merges":true)")));
    EXPECT_EQ(ignore->encode("bc"), (std::vector<int32_t>{10}));  // whole piece in the vocabulary
    // add_prefix_space puts a space before every piece that lacks one.
    const auto prefix = load_tokenizer_json(write_tokenizer(tiny_byte_level(R"({"type":"ByteLevel","add_prefix_space":true})")));
    EXPECT_EQ(prefix->encode("a"), (std::vector<int32_t>{6}));
    EXPECT_EQ(prefix->decode(prefix->encode("a")), " a");
}

TEST(TokenizerJsonTiny, SplitBehaviors) {
    auto split = [](const std::string& behavior, bool invert) {
        const std::string pre = R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":"b"},"behavior":")" +
                                behavior + R"(","invert":)" + (invert ? "true" : "false") +
                                R"(},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]})";
        return load_tokenizer_json(write_tokenizer(tiny_byte_level(pre)))->encode("abcab");
    };
    // Pieces: Isolated a|b|ca|b, Removed a|ca, MergedWithPrevious ab|cab, MergedWithNext a|bca|b.
    EXPECT_EQ(split("Isolated", false), (std::vector<int32_t>{0, 1, 2, 0, 1}));
    EXPECT_EQ(split("Removed", false), (std::vector<int32_t>{0, 2, 0}));
    EXPECT_EQ(split("MergedWithPrevious", false), (std::vector<int32_t>{4, 2, 4}));
    EXPECT_EQ(split("MergedWithNext", false), (std::vector<int32_t>{0, 1, 2, 0, 1}));
    EXPECT_EQ(split("Contiguous", false), (std::vector<int32_t>{0, 1, 2, 0, 1}));
    // Digits and a regex Split (Falcon's "[0-9][0-9][0-9]" idea) on "1212".
    const auto digits = load_tokenizer_json(write_tokenizer(tiny_byte_level(
        R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]})")));
    EXPECT_EQ(digits->encode("1212"), (std::vector<int32_t>{7, 8, 7, 8}));
    // Falcon's pattern runs as a byte scan; the same regex spelled differently goes through ICU.
    for (const std::string pattern : {"[0-9][0-9][0-9]", "[0-9]{3}"}) {
        const auto regex = load_tokenizer_json(write_tokenizer(tiny_byte_level(
            R"({"type":"Sequence","pretokenizers":[{"type":"ByteLevel","add_prefix_space":false,"use_regex":false},{"type":"Split","pattern":{"Regex":")" +
            pattern + R"("},"behavior":"Isolated","invert":false}]})")));
        EXPECT_EQ(regex->encode("1212"), (std::vector<int32_t>{9, 7, 8})) << pattern;  // "121" | "2": no merge makes "121"
        EXPECT_EQ(regex->encode("a12121212"), (std::vector<int32_t>{0, 9, 7, 8, 9, 9})) << pattern;  // a|121|212|12
    }
}

TEST(TokenizerJsonTiny, AddedTokenFlags) {
    const std::string added =
        R"([{"id":11,"content":"<x>","single_word":false,"lstrip":true,"rstrip":true,"normalized":false,"special":true},
            {"id":12,"content":"ab","single_word":true,"lstrip":false,"rstrip":false,"normalized":false,"special":false}])";
    const auto tok = load_tokenizer_json(write_tokenizer(tiny_byte_level(R"({"type":"ByteLevel","add_prefix_space":false})", "", added)));
    // lstrip/rstrip swallow the spaces around <x>.
    EXPECT_EQ(tok->encode("a <x> a"), (std::vector<int32_t>{0, 11, 0}));
    // single_word: "ab" alone is the added token, inside "abc" it is not.
    EXPECT_EQ(tok->encode("ab"), (std::vector<int32_t>{12}));
    EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{5}));
}

TEST(TokenizerJsonTiny, NormalizersAndMetaspace) {
    // A character-level BPE (SentencePiece style) with Metaspace and Lowercase.
    const std::string json = R"({"added_tokens":[],
      "normalizer":{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"},{"type":"Strip","strip_left":false,"strip_right":true}]},
      "pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},
      "post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[1],"tokens":["</s>"]}}},
      "decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},
      "model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":false,
        "vocab":{"<s>":0,"</s>":1,"<unk>":2,"▁":3,"a":4,"b":5,"▁a":6,"▁ab":7},
        "merges":["▁ a","▁a b"]}})";
    const auto tok = load_tokenizer_json(write_tokenizer(json));
    EXPECT_EQ(tok->encode("AB ab  "), (std::vector<int32_t>{7, 7}));
    EXPECT_EQ(tok->encode("ab", true), (std::vector<int32_t>{0, 7, 1}));
    // Unknown characters fuse into one <unk>.
    EXPECT_EQ(tok->encode("axyz"), (std::vector<int32_t>{6, 2}));
    EXPECT_EQ(tok->decode({7, 7}), "ab ab");
}

// The hand-coded Llama-3 / Qwen2 splitters agree with ICU running the regex
// itself. (U+000B and U+0085 are White_Space, as \s is for Oniguruma, which
// HF uses; ICU's own \s leaves them out, so the ICU path runs \s as
// \p{White_Space}.)
TEST(TokenizerJsonPreTokenizer, Llama3SplitterMatchesRegex) {
    static const std::vector<std::string> kParts = {
        "the", " cat", "S", "'s", "'S", "'re", "'RE", "'ll", "'Ll", "'ve", "'d", "'m", "'x", "'", " ", "  ", "   ",
        "\n", "\n\n", "\r\n", " \n ", "\t", "\t\t", "1", "23", "4567", "!", "...", "?!", "(", "\xC3\xA9",
        "\xE6\x95\xB0\xE5\xAD\x97", "\xF0\x9F\x98\x80", "\xE2\x96\x81", "\xFF", "\xC3", "\xD9\xA3",
        "\xC2\xB2", "\xC2\xA0", "\xE3\x80\x80", "_", "-", "\xC5\xBF", "ing", " un", "\xD0\xBF\xD1\x80\xD0\xB8",
        "\x0B", "\xC2\x85", "\xE2\x85\xAB", "\xC2\xBD", "\xE2\x91\xA0"};
    for (const auto& [pattern, max_digits] :
         {std::pair<const char*, int>{detail::hf::kLlama3Pattern, 3}, {detail::hf::kQwen2Pattern, 1}}) {
        const auto fast = detail::hf::make_llama3_pre_tokenizer(max_digits);
        const auto icu = make_regex_pre_tokenizer(pattern);
        std::mt19937 rng(11 + max_digits);
        for (int trial = 0; trial < 3000; ++trial) {
            std::string text;
            const int n_parts = 1 + static_cast<int>(rng() % 12);
            for (int k = 0; k < n_parts; ++k) text += kParts[rng() % kParts.size()];
            ASSERT_EQ(fast->split_to_strings(text), icu->split_to_strings(text))
                << "max_digits " << max_digits << " text: '" << show_text(text) << "'";
        }
    }
}

// ------------------------------------------------------------ bad files

TEST(TokenizerJsonErrors, UnsupportedPartsNameTheField) {
    const std::string bpe = R"("model":{"type":"BPE","vocab":{"a":0},"merges":[]})";
    auto msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"model":{"type":"Unigram","vocab":[["a",0.0]]}})"));
    });
    EXPECT_NE(msg.find("unsupported tokenizer model 'Unigram' (tokenizer.json: model.type)"), std::string::npos) << msg;
    msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(
            R"({"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},{"type":"UnicodeScripts"}]},)" + bpe + "}"));
    });
    EXPECT_NE(msg.find("unsupported pre-tokenizer 'UnicodeScripts' (tokenizer.json: pre_tokenizer.pretokenizers[1].type)"),
              std::string::npos) << msg;
    msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"normalizer":{"type":"Precompiled","precompiled_charsmap":""},)" + bpe + "}"));
    });
    EXPECT_NE(msg.find("unsupported normalizer 'Precompiled' (tokenizer.json: normalizer.type)"), std::string::npos) << msg;
    msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"model":{"type":"BPE","dropout":0.1,"vocab":{"a":0},"merges":[]}})"));
    });
    EXPECT_NE(msg.find("model.dropout"), std::string::npos) << msg;
    msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"decoder":{"type":"CTC"},)" + bpe + "}"));
    });
    EXPECT_NE(msg.find("unsupported decoder 'CTC' (tokenizer.json: decoder.type)"), std::string::npos) << msg;
}

TEST(TokenizerJsonErrors, BadMergesAndVocab) {
    auto msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b","a zz"]}})"));
    });
    EXPECT_NE(msg.find("model.merges[1] 'a zz'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'zz'"), std::string::npos) << msg;
    msg = error_message([&] {
        load_tokenizer_json(write_tokenizer(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}})"));
    });
    EXPECT_NE(msg.find("'ab'"), std::string::npos) << msg;  // the merged token is missing
    msg = error_message([&] { load_tokenizer_json(write_tokenizer(R"({"model":{"type":"BPE","merges":[]}})")); });
    EXPECT_NE(msg.find("missing vocabulary (tokenizer.json: model.vocab)"), std::string::npos) << msg;
    msg = error_message([&] { load_tokenizer_json(write_tokenizer(R"({"normalizer":null})")); });
    EXPECT_NE(msg.find("tokenizer.json: model"), std::string::npos) << msg;
}

TEST(TokenizerJsonErrors, InvalidJsonNamesFileAndPosition) {
    const std::string path = write_tokenizer("{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 0,, }}}");
    const std::string msg = error_message([&] { load_tokenizer_json(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
    EXPECT_THROW(load_tokenizer_json(path), FormatError);
}

}  // namespace
}  // namespace memskew
