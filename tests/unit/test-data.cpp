// Dataset loading (METHOD M1): file kinds, record formats, ids, bad input,
// limit / subset / shard, the raw-text token split, and the real datasets.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "memskew/data.h"
#include "memskew/error.h"
#include "test-util.h"

using namespace memskew;

namespace {

std::string write_file(const std::string& name, const std::string& content) {
    static const std::string dir = memskew::test::temp_dir();
    const std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
}

// The message of the memskew::Error fn throws (fails the test if none).
template <typename E, typename Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected exception type: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception thrown";
    return {};
}

#define EXPECT_CONTAINS(haystack, needle) \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

}  // namespace

// --- file kinds and formats -------------------------------------------------

TEST(DataLoad, JsonlAlpacaWithBlankLinesAndCrlf) {
    const auto path = write_file("a.jsonl",
                                 "{\"instruction\": \"Add\", \"input\": \"1 2\", \"output\": \"3\"}\r\n"
                                 "\n   \n"
                                 "{\"instruction\": \"Greet\", \"output\": \"Hi\"}\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.file_kind, FileKind::kJsonl);
    EXPECT_EQ(ds.report.format, RecordFormat::kAlpaca);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[0].instruction, "Add");
    EXPECT_EQ(ds.samples[0].input, "1 2");
    EXPECT_EQ(ds.samples[0].reference, "3");
    EXPECT_EQ(ds.samples[0].prompt, "Add\n1 2\n");  // plain template
    EXPECT_EQ(ds.samples[0].line, 1u);
    EXPECT_EQ(ds.samples[1].line, 4u);
    EXPECT_EQ(ds.samples[1].index, 1u);
    EXPECT_EQ(ds.samples[1].input, "");
    EXPECT_EQ(ds.report.n_records, 2u);
    EXPECT_EQ(ds.samples[0].id.size(), 16u);  // content hash
    EXPECT_FALSE(ds.samples[0].id_from_field);
}

TEST(DataLoad, JsonArrayGpteacherWithLines) {
    const auto path = write_file("g.json",
                                 "[\n  {\"instruction\": \"A\", \"input\": \"\", \"response\": \"ra\"},\n"
                                 "  {\n    \"instruction\": \"B\",\n    \"input\": \"in\",\n    \"response\": \"rb\"\n  }\n]\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.file_kind, FileKind::kJson);
    EXPECT_EQ(ds.report.format, RecordFormat::kGpteacher);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[0].line, 2u);
    EXPECT_EQ(ds.samples[1].line, 3u);
    EXPECT_EQ(ds.samples[1].reference, "rb");
    EXPECT_EQ(ds.samples[1].input, "in");
}

TEST(DataLoad, JsonNamedFileHoldingJsonLines) {
    const auto path = write_file("lines.json",
                                 "{\"prompt\": \"p1\", \"completion\": \" c1\"}\n"
                                 "{\"prompt\": \"p2\", \"completion\": \" c2\"}\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.file_kind, FileKind::kJsonl);
    EXPECT_EQ(ds.report.format, RecordFormat::kPromptCompletion);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[1].prompt, "p2");  // plain: prompt verbatim
    EXPECT_EQ(ds.samples[1].reference, " c2");
}

TEST(DataLoad, QuestionAnswerWithNumericIds) {
    const auto path = write_file("qa.jsonl",
                                 "{\"id\": 7, \"question\": \"Why?\", \"answer\": \"Because.\"}\n"
                                 "{\"id\": \"x-2\", \"question\": \"How?\", \"answer\": \"So.\"}\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.format, RecordFormat::kQuestionAnswer);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[0].id, "7");
    EXPECT_TRUE(ds.samples[0].id_from_field);
    EXPECT_EQ(ds.samples[1].id, "x-2");
    EXPECT_EQ(ds.samples[0].prompt, "Why?\n");
    EXPECT_EQ(ds.samples[0].instruction, "Why?");
}

TEST(DataLoad, ChatMessagesLastAssistantTurnIsReference) {
    const auto path = write_file(
        "chat.jsonl",
        R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, )"
        R"({"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Name?"}, )"
        R"({"role": "assistant", "content": "Bob"}, {"role": "user", "content": "trailing"}]})"
        "\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.format, RecordFormat::kChat);
    ASSERT_EQ(ds.samples.size(), 1u);
    const Sample& s = ds.samples[0];
    EXPECT_EQ(s.reference, "Bob");
    EXPECT_EQ(s.system, "Be brief.");
    EXPECT_EQ(s.instruction, "Name?");
    ASSERT_EQ(s.turns.size(), 4u);
    EXPECT_EQ(s.turns[0].role, "system");
    EXPECT_EQ(s.turns[2].role, "assistant");
    EXPECT_EQ(s.turns[3].content, "Name?");
    EXPECT_EQ(s.prompt, "Be brief.\nHi\nHello\nName?\n");
}

TEST(DataLoad, ShareGptConversations) {
    const auto path = write_file(
        "sg.json",
        R"([{"id": "c1", "system": "S", "conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}]}])");
    DatasetParams p;
    p.prompt_template = parse_template("chatml");
    const Dataset ds = load_dataset(path, p);
    ASSERT_EQ(ds.samples.size(), 1u);
    const Sample& s = ds.samples[0];
    EXPECT_EQ(s.id, "c1");
    EXPECT_EQ(s.reference, "A1");
    EXPECT_EQ(s.system, "S");
    ASSERT_EQ(s.turns.size(), 2u);  // the system field becomes the leading turn
    EXPECT_EQ(s.turns[1].role, "user");
    EXPECT_EQ(s.prompt, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n");
}

TEST(DataLoad, RawText) {
    const auto path = write_file("t.jsonl", "{\"text\": \"The quick brown fox.\"}\n{\"text\": \"Second.\"}\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.format, RecordFormat::kText);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[0].text, "The quick brown fox.");
    EXPECT_EQ(ds.samples[0].prompt, "");
    EXPECT_EQ(ds.samples[0].reference, "");
}

TEST(DataLoad, CsvQuotedFieldsEmbeddedNewlinesCrlf) {
    const auto path = write_file("d.csv",
                                 "id,instruction,input,output\r\n"
                                 "r1,\"Say \"\"hi\"\"\",,\"line1\r\nline2\"\r\n"
                                 "\r\n"
                                 "r2,Plain,\"a,b\",out\r\n");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.file_kind, FileKind::kCsv);
    EXPECT_EQ(ds.report.format, RecordFormat::kAlpaca);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[0].id, "r1");
    EXPECT_EQ(ds.samples[0].instruction, "Say \"hi\"");
    EXPECT_EQ(ds.samples[0].reference, "line1\r\nline2");
    EXPECT_EQ(ds.samples[0].line, 2u);
    EXPECT_EQ(ds.samples[1].input, "a,b");
    EXPECT_EQ(ds.samples[1].line, 5u);
}

TEST(DataLoad, ExplicitFieldMapping) {
    const auto path = write_file("m.jsonl", "{\"key\": \"k1\", \"q\": \"Question\", \"ctx\": \"C\", \"a\": \"Answer\"}\n");
    DatasetParams p;
    p.prompt_field = "q";
    p.input_field = "ctx";
    p.response_field = "a";
    p.id_field = "key";
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.report.format, RecordFormat::kAlpaca);
    ASSERT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(ds.samples[0].id, "k1");
    EXPECT_EQ(ds.samples[0].instruction, "Question");
    EXPECT_EQ(ds.samples[0].input, "C");
    EXPECT_EQ(ds.samples[0].reference, "Answer");

    // Overriding one field of a detected format.
    const auto qa = write_file("m2.jsonl", "{\"focus\": \"F\", \"question\": \"Q\", \"answer\": \"A\"}\n");
    DatasetParams p2;
    p2.prompt_field = "focus";
    const Dataset ds2 = load_dataset(qa, p2);
    EXPECT_EQ(ds2.report.format, RecordFormat::kQuestionAnswer);
    EXPECT_EQ(ds2.samples[0].instruction, "F");
}

TEST(DataLoad, FormatOverride) {
    const auto path = write_file("o.jsonl", "{\"instruction\": \"I\", \"output\": \"O\", \"text\": \"T\"}\n");
    DatasetParams p;
    p.format = RecordFormat::kText;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples[0].text, "T");
}

TEST(DataLoad, ReferenceEndMarker) {
    const auto path = write_file("em.jsonl", "{\"question\": \"Q\", \"answer\": \"A\"}\n");
    DatasetParams p;
    p.prompt_template = parse_template("llama-3");
    p.prompt_template.reference_end_marker = true;
    const Dataset with = load_dataset(path, p);
    EXPECT_EQ(with.samples[0].reference, "A<|eot_id|>");
    p.prompt_template.reference_end_marker = false;
    const Dataset without = load_dataset(path, p);
    EXPECT_EQ(without.samples[0].reference, "A");
    EXPECT_EQ(with.samples[0].id, without.samples[0].id);  // ids do not depend on the marker
}

TEST(DataLoad, ContentHashIdIsTemplateIndependentAndStable) {
    const auto path = write_file("h.jsonl", "{\"instruction\": \"I\", \"input\": \"X\", \"output\": \"O\"}\n");
    DatasetParams p;
    const std::string plain = load_dataset(path, p).samples[0].id;
    p.prompt_template = parse_template("chatml");
    EXPECT_EQ(load_dataset(path, p).samples[0].id, plain);
    EXPECT_EQ(plain, content_hash_id(load_dataset(path).samples[0]));
    // Changing the content changes the hash; ("I","XO") vs ("IX","O") differ.
    const auto other = write_file("h2.jsonl", "{\"instruction\": \"IX\", \"input\": \"\", \"output\": \"O\"}\n");
    EXPECT_NE(load_dataset(other).samples[0].id, plain);
}

// --- bad input ---------------------------------------------------------------

TEST(DataBad, MalformedJsonLine) {
    std::string content;
    for (int i = 1; i <= 20; ++i) {
        content += i == 17 ? "{\"question\": \"Q\", \"answer\": }\n"
                           : "{\"question\": \"Q" + std::to_string(i) + "\", \"answer\": \"A\"}\n";
    }
    const auto path = write_file("bad.jsonl", content);
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "bad.jsonl:17: invalid JSON");

    DatasetParams p;
    p.skip_bad = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 19u);
    EXPECT_EQ(ds.report.n_malformed, 1u);
    EXPECT_EQ(ds.report.n_records, 20u);
    ASSERT_EQ(ds.report.skip_reasons.size(), 1u);
    EXPECT_CONTAINS(ds.report.skip_reasons[0], "bad.jsonl:17:");
    EXPECT_EQ(ds.samples[16].index, 17u);  // indices keep file positions
}

TEST(DataBad, TrailingGarbageAndNonObjectLines) {
    const auto path = write_file("tg.jsonl",
                                 "{\"question\": \"Q\", \"answer\": \"A\"} extra\n"
                                 "[1, 2]\n"
                                 "{\"question\": \"Q2\", \"answer\": \"A2\"}\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(path); }), "tg.jsonl:1:");
    DatasetParams p;
    p.skip_bad = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(ds.report.n_malformed, 2u);
    EXPECT_CONTAINS(ds.report.skip_reasons[1], "expected a JSON object, found array");
}

TEST(DataBad, MalformedJsonArrayIsFatal) {
    const auto path = write_file("bad.json", "[\n{\"question\": \"Q\", \"answer\": \"A\"},\n{\"question\": \"Q\" \"answer\": 1}\n]");
    DatasetParams p;
    p.skip_bad = true;
    const std::string msg = error_of<FormatError>([&] { load_dataset(path, p); });
    EXPECT_CONTAINS(msg, "bad.json:");
    EXPECT_CONTAINS(msg, "invalid JSON");
}

TEST(DataBad, MissingFieldNamesFieldFormatAndPresentFields) {
    const auto path = write_file("mf.jsonl",
                                 "{\"instruction\": \"I\", \"output\": \"O\"}\n"
                                 "{\"instruction\": \"I2\", \"input\": \"x\", \"result\": \"O\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "mf.jsonl:2: missing field 'output' required by format alpaca");
    EXPECT_CONTAINS(msg, "fields present: instruction, input, result");
    DatasetParams p;
    p.skip_bad = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(ds.report.n_missing_field, 1u);
}

TEST(DataBad, UndetectableFormat) {
    const auto path = write_file("u.jsonl", "{\"foo\": \"a\", \"bar\": \"b\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "cannot tell the record format");
    EXPECT_CONTAINS(msg, "foo, bar");
}

TEST(DataBad, EmptyReference) {
    const auto path = write_file("er.jsonl",
                                 "{\"question\": \"Q1\", \"answer\": \"A\"}\n"
                                 "{\"question\": \"Q2\", \"answer\": \"  \"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "er.jsonl:2: the reference (field 'answer', format question-answer) is empty");
    DatasetParams p;
    p.skip_empty_reference = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(ds.report.n_empty_reference, 1u);
    // skip_bad alone does not skip empty references.
    DatasetParams q;
    q.skip_bad = true;
    EXPECT_THROW(load_dataset(path, q), FormatError);
}

TEST(DataBad, InvalidUtf8NamesLineAndField) {
    const auto path = write_file("utf.jsonl",
                                 "{\"question\": \"Q1\", \"answer\": \"A\"}\n"
                                 "{\"question\": \"Q2\", \"answer\": \"caf\xE9 au lait\"}\n"
                                 "{\"question\": \"Q3\", \"source\": \"\xFF\", \"answer\": \"fine\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "utf.jsonl:2: field 'answer' holds invalid UTF-8");
    DatasetParams p;
    p.skip_bad = true;
    const Dataset ds = load_dataset(path, p);
    // Invalid bytes in a field memskew does not read do not cost the sample.
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(ds.samples[1].reference, "fine");
    EXPECT_EQ(ds.report.n_invalid_utf8, 1u);
}

TEST(DataBad, InvalidUtf8InJsonArrayAndCsvAndChat) {
    const auto json = write_file("utf.json", "[\n{\"instruction\": \"I\", \"output\": \"O\"},\n{\"instruction\": \"\xC3\x28\", \"output\": \"O\"}\n]");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(json); }),
                    "utf.json:3 (record 2): field 'instruction' holds invalid UTF-8");
    const auto csv = write_file("utf.csv", "prompt,completion\np,ok\np2,\"bad \xED\xA0\x80\"\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(csv); }), "utf.csv:3: field 'completion' holds invalid UTF-8");
    const auto chat = write_file("utf-chat.jsonl",
                                 "{\"messages\": [{\"role\": \"user\", \"content\": \"\xF8\"}, {\"role\": \"assistant\", \"content\": \"A\"}]}\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(chat); }), "utf-chat.jsonl:1: messages[0] holds invalid UTF-8");
}

TEST(DataBad, WrongValueType) {
    const auto path = write_file("wt.jsonl",
                                 "{\"question\": \"Q\", \"answer\": 42}\n"
                                 "{\"question\": \"Q\", \"answer\": \"A\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "wt.jsonl:1: field 'answer': expected a string, found number");
    DatasetParams p;
    p.skip_bad = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(ds.report.n_wrong_type, 1u);

    const auto id = write_file("wt-id.jsonl", "{\"id\": [1], \"question\": \"Q\", \"answer\": \"A\"}\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(id); }), "id field 'id': expected a string or a number, found array");
}

TEST(DataBad, ChatProblems) {
    const auto no_assistant = write_file("na.jsonl", R"({"messages": [{"role": "user", "content": "Hi"}]})" "\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(no_assistant); }),
                    "na.jsonl:1: no assistant turn in 'messages' to use as the reference (roles: user)");
    const auto no_role = write_file("nr.jsonl", R"({"messages": [{"content": "Hi"}, {"role": "assistant", "content": "A"}]})" "\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(no_role); }), "messages[0]: no 'role'");
    const auto bad_content = write_file("bc.jsonl", R"({"messages": [{"role": "user", "content": [1]}, {"role": "assistant", "content": "A"}]})" "\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(bad_content); }), "messages[0].content: expected a string, found array");
    const auto not_array = write_file("ns.jsonl", R"({"messages": "hello"})" "\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(not_array); }), "field 'messages': expected an array of turns, found string");
}

TEST(DataBad, EmptyFileAndNoUsableSamples) {
    const auto empty = write_file("empty.jsonl", "");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(empty); }), "empty.jsonl: the file is empty");
    const auto blank = write_file("blank.json", "  \n\n");
    EXPECT_THROW(load_dataset(blank), FormatError);
    const auto all_bad = write_file("allbad.jsonl", "{\"question\": \"Q\", \"answer\": \"\"}\nnot json\n");
    DatasetParams p;
    p.skip_bad = true;
    p.skip_empty_reference = true;
    const std::string msg = error_of<FormatError>([&] { load_dataset(all_bad, p); });
    EXPECT_CONTAINS(msg, "no usable samples: 2 record(s), all skipped (1 malformed");
    const auto header_only = write_file("h.csv", "question,answer\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(header_only); }), "no usable samples");
    const auto only_garbage = write_file("g.jsonl", "{oops\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(only_garbage); }), "g.jsonl:1: invalid JSON");
}

TEST(DataBad, UnreadableFile) {
    EXPECT_CONTAINS(error_of<IoError>([&] { load_dataset(memskew::test::temp_dir() + "/missing.jsonl"); }),
                    "cannot open");
    EXPECT_THROW(load_dataset(memskew::test::temp_dir()), IoError);
}

TEST(DataBad, CsvProblems) {
    const auto count = write_file("cnt.csv", "question,answer\nq1,a1\nq2\nq3,a3\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(count); }),
                    "cnt.csv:3: expected 2 fields (as in the header row), found 1");
    DatasetParams p;
    p.skip_bad = true;
    EXPECT_EQ(load_dataset(count, p).samples.size(), 2u);
    const auto open_quote = write_file("oq.csv", "question,answer\nq1,\"never closed\nq2,a2\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(open_quote, p); }), "oq.csv:2: quoted field is never closed");
    const auto after_quote = write_file("aq.csv", "question,answer\nq1,\"a\"b\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(after_quote); }), "aq.csv:2: unexpected 'b' after a closing quote");
}

TEST(DataBad, SingleMultilineObjectAndNonJson) {
    const auto obj = write_file("obj.json", "{\n  \"data\": []\n}\n");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(obj); }), "single JSON object");
    const auto txt = write_file("x.json", "\n\nhello");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(txt); }), "x.json:3: expected '[' or '{'");
}

TEST(DataBad, BadParams) {
    const auto path = write_file("bp.jsonl", "{\"question\": \"Q\", \"answer\": \"A\"}\n");
    DatasetParams p;
    p.n_shards = 2;
    p.shard_index = 2;
    EXPECT_THROW(load_dataset(path, p), InvalidInput);
    EXPECT_THROW(parse_record_format("yaml"), InvalidInput);
    EXPECT_THROW(parse_file_kind("xml"), InvalidInput);
    EXPECT_EQ(parse_record_format("qa"), RecordFormat::kQuestionAnswer);
    EXPECT_EQ(parse_record_format("sharegpt"), RecordFormat::kChat);
}

TEST(DataBad, HostileBytesNeverCrash) {
    // A few shapes that once broke parsers: deep nesting, NULs, lone
    // surrogate escapes, huge numbers, truncated escapes.
    const std::vector<std::string> inputs = {
        std::string(10000, '[') + "\n",
        "{\"question\": \"Q\", \"answer\": \"\\ud800\"}\n",
        "{\"question\": \"Q\", \"answer\": \"A\\\"}\n",
        std::string("{\"question\": \"Q\0\", \"answer\": \"A\"}\n", 34),
        "{\"id\": 1e999999, \"question\": \"Q\", \"answer\": \"A\"}\n",
        "{\"messages\": [1, null, {\"role\": 5}]}\n",
        "\xEF\xBB\xBF",
        "\"just a string\"\n",
    };
    DatasetParams p;
    p.skip_bad = true;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const auto path = write_file("hostile" + std::to_string(i) + ".jsonl", inputs[i]);
        try {
            load_dataset(path, p);
        } catch (const Error&) {
        }
        try {
            load_dataset(path);
        } catch (const Error&) {
        }
    }
}

// --- ids ---------------------------------------------------------------------

TEST(DataIds, DuplicateIdsAreErrorsNamingLines) {
    const auto path = write_file("dup.jsonl",
                                 "{\"id\": \"a\", \"question\": \"Q1\", \"answer\": \"A\"}\n"
                                 "{\"id\": \"b\", \"question\": \"Q2\", \"answer\": \"A\"}\n"
                                 "{\"id\": \"a\", \"question\": \"Q3\", \"answer\": \"A\"}\n"
                                 "{\"id\": \"a\", \"question\": \"Q4\", \"answer\": \"A\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "2 duplicate sample id(s): 'a' at lines 1 and 3; 'a' at lines 1 and 4");
    DatasetParams p;
    p.dedupe_ids = true;
    const Dataset ds = load_dataset(path, p);
    ASSERT_EQ(ds.samples.size(), 4u);
    EXPECT_EQ(ds.samples[0].id, "a");
    EXPECT_EQ(ds.samples[2].id, "a#2");
    EXPECT_EQ(ds.samples[3].id, "a#3");
    EXPECT_EQ(ds.report.n_renamed_ids, 2u);
}

TEST(DataIds, IdenticalRecordsCollideByContentHash) {
    const auto path = write_file("same.jsonl",
                                 "{\"question\": \"Q\", \"answer\": \"A\"}\n"
                                 "{\"question\": \"Q\", \"answer\": \"A\"}\n");
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "at lines 1 and 2");
}

// --- limit, subset, shard ------------------------------------------------------

namespace {
std::string many_records(size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += "{\"id\": \"s" + std::to_string(i) + "\", \"question\": \"Q\", \"answer\": \"A" + std::to_string(i) + "\"}\n";
    return s;
}
std::vector<std::string> ids_of(const Dataset& ds) {
    std::vector<std::string> v;
    for (const auto& s : ds.samples) v.push_back(s.id);
    return v;
}
}  // namespace

TEST(DataOptions, Limit) {
    const auto path = write_file("lim.jsonl", many_records(50));
    DatasetParams p;
    p.limit = 7;
    const Dataset ds = load_dataset(path, p);
    ASSERT_EQ(ds.samples.size(), 7u);
    EXPECT_EQ(ds.samples.back().id, "s6");
}

TEST(DataOptions, SubsetIsDeterministicAndOrdered) {
    const auto path = write_file("sub.jsonl", many_records(200));
    DatasetParams p;
    p.subset = 20;
    p.seed = 42;
    const Dataset a = load_dataset(path, p);
    const Dataset b = load_dataset(path, p);
    ASSERT_EQ(a.samples.size(), 20u);
    EXPECT_EQ(ids_of(a), ids_of(b));
    EXPECT_EQ(a.report.n_not_in_subset, 180u);
    for (size_t i = 1; i < a.samples.size(); ++i) EXPECT_LT(a.samples[i - 1].index, a.samples[i].index);
    p.seed = 43;
    EXPECT_NE(ids_of(load_dataset(path, p)), ids_of(a));
    p.subset = 500;  // larger than the set: everything
    EXPECT_EQ(load_dataset(path, p).samples.size(), 200u);
}

TEST(DataOptions, ShardsPartitionTheSet) {
    const auto path = write_file("shard.jsonl", many_records(300));
    const std::vector<std::string> all = ids_of(load_dataset(path));
    constexpr size_t kShards = 4;
    std::multiset<std::string> united;
    for (size_t i = 0; i < kShards; ++i) {
        DatasetParams p;
        p.n_shards = kShards;
        p.shard_index = i;
        const Dataset ds = load_dataset(path, p);
        EXPECT_GT(ds.samples.size(), 30u);  // roughly balanced
        EXPECT_EQ(ds.report.n_other_shards + ds.samples.size(), 300u);
        EXPECT_EQ(ids_of(ds), ids_of(load_dataset(path, p)));  // stable across runs
        for (const auto& s : ds.samples) EXPECT_EQ(shard_of(s.id, kShards), i);
        for (const auto& id : ids_of(ds)) united.insert(id);
    }
    EXPECT_EQ(united.size(), all.size());  // no overlap (multiset would count twice)
    EXPECT_EQ(std::set<std::string>(united.begin(), united.end()), std::set<std::string>(all.begin(), all.end()));
    // Pinned hash: shard assignment must never change between versions.
    EXPECT_EQ(shard_of("s0", 1), 0u);
}

TEST(DataOptions, SubsetThenShard) {
    const auto path = write_file("ss.jsonl", many_records(100));
    DatasetParams p;
    p.subset = 40;
    p.seed = 7;
    const auto subset = ids_of(load_dataset(path, p));
    std::set<std::string> united;
    size_t total = 0;
    for (size_t i = 0; i < 3; ++i) {
        p.n_shards = 3;
        p.shard_index = i;
        const auto ids = ids_of(load_dataset(path, p));
        total += ids.size();
        united.insert(ids.begin(), ids.end());
    }
    EXPECT_EQ(total, 40u);
    EXPECT_EQ(united, std::set<std::string>(subset.begin(), subset.end()));
}

// --- raw text split --------------------------------------------------------------

TEST(DataTextSplit, Protocols) {
    std::vector<int32_t> ids(100);
    for (int32_t i = 0; i < 100; ++i) ids[static_cast<size_t>(i)] = i;
    TextSplitCounts counts;
    auto s = split_text_tokens(ids, TextSplitParams::protocol_32_32(), &counts);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->prompt.size(), 32u);
    EXPECT_EQ(s->reference.size(), 32u);
    EXPECT_EQ(s->prompt.front(), 0);
    EXPECT_EQ(s->reference.front(), 32);
    EXPECT_EQ(s->reference.back(), 63);
    auto f = split_text_tokens(ids, TextSplitParams::protocol_50_50(), &counts);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->reference.back(), 99);
    EXPECT_FALSE(f->truncated);

    const std::vector<int32_t> short_ids(ids.begin(), ids.begin() + 40);
    EXPECT_FALSE(split_text_tokens(short_ids, TextSplitParams::protocol_32_32(), &counts));
    TextSplitParams tr = TextSplitParams::protocol_32_32();
    tr.short_policy = ShortTextPolicy::kTruncate;
    auto t = split_text_tokens(short_ids, tr, &counts);
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->truncated);
    EXPECT_EQ(t->reference.size(), 8u);
    const std::vector<int32_t> tiny(ids.begin(), ids.begin() + 32);
    EXPECT_FALSE(split_text_tokens(tiny, tr, &counts));  // no reference token left
    EXPECT_EQ(counts.n_full, 2u);
    EXPECT_EQ(counts.n_truncated, 1u);
    EXPECT_EQ(counts.n_skipped, 2u);
    EXPECT_THROW(split_text_tokens(ids, TextSplitParams{0, 32}), InvalidInput);
}

// --- real datasets (skip without ../shared) -----------------------------------------

TEST(DataReal, MedQuad) {
    MEMSKEW_REQUIRE_SHARED(path, "data/medquad.jsonl");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.file_kind, FileKind::kJsonl);
    EXPECT_EQ(ds.report.format, RecordFormat::kQuestionAnswer);
    ASSERT_EQ(ds.samples.size(), 16407u);
    EXPECT_EQ(ds.samples[0].id, "1_CancerGov_QA/0000001_1.xml#0000001_1-1");
    EXPECT_TRUE(ds.samples[0].id_from_field);
    EXPECT_EQ(ds.samples[0].instruction, "What is (are) Adult Acute Lymphoblastic Leukemia ?");
    EXPECT_EQ(ds.samples[0].reference.rfind("Key Points - Adult acute lymphoblastic leukemia", 0), 0u);
    const double mb_s = static_cast<double>(ds.report.n_bytes) / 1e6 / ds.report.seconds;
    std::printf("medquad.jsonl: %zu samples, %.1f MB in %.3f s = %.0f MB/s\n", ds.samples.size(),
                static_cast<double>(ds.report.n_bytes) / 1e6, ds.report.seconds, mb_s);
    // The rate is printed, not asserted: timings on a shared machine are noise (bench/ measures them).
}

TEST(DataReal, Alpaca5000) {
    MEMSKEW_REQUIRE_SHARED(path, "data/alpaca_5000.json");
    // Records 2336 and 4659 have an empty output (the file is one line).
    const std::string msg = error_of<FormatError>([&] { load_dataset(path); });
    EXPECT_CONTAINS(msg, "alpaca_5000.json:1 (record 2336): the reference (field 'output', format alpaca) is empty");
    DatasetParams p;
    p.skip_empty_reference = true;
    p.prompt_template = parse_template("alpaca");
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.report.file_kind, FileKind::kJson);
    EXPECT_EQ(ds.report.format, RecordFormat::kAlpaca);
    EXPECT_EQ(ds.report.n_records, 5000u);
    EXPECT_EQ(ds.report.n_empty_reference, 2u);
    ASSERT_EQ(ds.report.skip_reasons.size(), 2u);
    EXPECT_CONTAINS(ds.report.skip_reasons[1], "(record 4659)");
    ASSERT_EQ(ds.samples.size(), 4998u);
    EXPECT_EQ(ds.samples[0].prompt,
              "Below is an instruction that describes a task, paired with an input that provides further context. "
              "Write a response that appropriately completes the request.\n\n### Instruction:\nAre the two sentences "
              "below grammatically correct? Output yes or no.\n\n### Input:\nSentence 1: I am going to the store.\n"
              "Sentence 2: I goes to the store.\n\n### Response:\n");
    EXPECT_EQ(ds.samples[0].reference, "No");
}

TEST(DataReal, GpteacherCodegen) {
    MEMSKEW_REQUIRE_SHARED(path, "data/GPTeacher/codegen-instruct.json");
    const Dataset ds = load_dataset(path);
    EXPECT_EQ(ds.report.format, RecordFormat::kGpteacher);
    ASSERT_EQ(ds.samples.size(), 4535u);
    EXPECT_EQ(ds.samples[0].instruction,
              "Write a C++ program that calculates the area of a rectangle, given its width and height.");
    EXPECT_EQ(ds.samples[0].input, "width: 5, height: 8");
    EXPECT_EQ(ds.samples[0].line, 2u);
}

TEST(DataReal, LlamaFactoryDemoHasDuplicates) {
    MEMSKEW_REQUIRE_SHARED(path, "data/LLaMA-Factory/alpaca_en_demo.json");
    EXPECT_CONTAINS(error_of<FormatError>([&] { load_dataset(path); }), "duplicate sample id(s): '427ed55ab007d1f0' at records");
    DatasetParams p;
    p.dedupe_ids = true;
    const Dataset ds = load_dataset(path, p);
    EXPECT_EQ(ds.samples.size(), 999u);
    EXPECT_EQ(ds.report.n_renamed_ids, 14u);
}
