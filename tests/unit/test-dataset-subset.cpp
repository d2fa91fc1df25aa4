// Filtered copies of dataset files (write_dataset_subset): the copy loads as the
// input's samples minus the removed ones, kept records are byte-identical, and
// record numbering is load_dataset's (blank lines, bad records, BOM, CRLF,
// multi-line CSV fields).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "memskew/data.h"
#include "memskew/dataset-subset.h"
#include "memskew/error.h"
#include "test-util.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

const std::string& dir() {
    static const std::string d = memskew::test::temp_dir();
    return d;
}

std::string write_file(const std::string& name, const std::string& content) {
    const std::string path = dir() + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
}

std::string concat(const std::vector<std::string>& parts) {
    std::string s;
    for (const auto& p : parts) s += p;
    return s;
}

DatasetParams lenient() {
    DatasetParams p;
    p.skip_bad = true;
    return p;
}

// The sample content that must survive the copy (index and line change).
void expect_same_samples(const std::vector<Sample>& expected, const std::vector<Sample>& got) {
    ASSERT_EQ(expected.size(), got.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        SCOPED_TRACE("sample " + std::to_string(i) + " (input index " + std::to_string(expected[i].index) + ")");
        EXPECT_EQ(expected[i].id, got[i].id);
        EXPECT_EQ(expected[i].id_from_field, got[i].id_from_field);
        EXPECT_EQ(expected[i].format, got[i].format);
        EXPECT_EQ(expected[i].prompt, got[i].prompt);
        EXPECT_EQ(expected[i].reference, got[i].reference);
        EXPECT_EQ(expected[i].instruction, got[i].instruction);
        EXPECT_EQ(expected[i].input, got[i].input);
        EXPECT_EQ(expected[i].system, got[i].system);
        EXPECT_EQ(expected[i].text, got[i].text);
        ASSERT_EQ(expected[i].turns.size(), got[i].turns.size());
        for (size_t t = 0; t < expected[i].turns.size(); ++t) {
            EXPECT_EQ(expected[i].turns[t].role, got[i].turns[t].role);
            EXPECT_EQ(expected[i].turns[t].content, got[i].turns[t].content);
        }
    }
}

// Writes the subset and checks: the report's counts, and that the copy loads
// (with the same params) as the input's samples whose index is not removed.
SubsetWriteReport check_subset(const std::string& input, const DatasetParams& params,
                               const std::unordered_set<size_t>& remove, const std::string& output) {
    const Dataset in = load_dataset(input, params);
    const SubsetWriteReport rep = write_dataset_subset(input, params, remove, output);
    EXPECT_EQ(rep.n_records, in.report.n_records);
    EXPECT_EQ(rep.n_removed, remove.size());
    EXPECT_EQ(rep.n_written, in.report.n_records - remove.size());
    EXPECT_EQ(rep.file_kind, in.report.file_kind);

    std::vector<Sample> expected;
    for (const Sample& s : in.samples)
        if (!remove.count(s.index)) expected.push_back(s);
    if (expected.empty()) return rep;  // load_dataset refuses a file without usable samples
    const Dataset out = load_dataset(output, params);
    EXPECT_EQ(out.report.file_kind, in.report.file_kind);
    EXPECT_EQ(out.report.n_records, rep.n_written);
    expect_same_samples(expected, out.samples);
    return rep;
}

// Removing each record index alone drops exactly the sample load_dataset gave
// that index (or, for a bad record, no sample): numbering is the same.
void check_each_single_removal(const std::string& input, const DatasetParams& params, const std::string& ext) {
    const Dataset in = load_dataset(input, params);
    std::set<size_t> sample_indexes;
    for (const Sample& s : in.samples) sample_indexes.insert(s.index);
    for (size_t i = 0; i < in.report.n_records; ++i) {
        SCOPED_TRACE("removing index " + std::to_string(i));
        const std::string out = dir() + "/single-" + std::to_string(i) + ext;
        check_subset(input, params, {i}, out);
        const Dataset got = load_dataset(out, params);
        // A bad record removed: one fewer skip, the same samples.
        EXPECT_EQ(got.report.n_skipped() + (sample_indexes.count(i) ? 0u : 1u), in.report.n_skipped());
    }
}

template <typename E>
std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const E& e) {
        return std::string(e.what()) + "\nhint: " + e.hint();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected exception type: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception thrown";
    return {};
}

using ::testing::HasSubstr;

}  // namespace

// --- JSON Lines ---------------------------------------------------------------

TEST(DatasetSubset, JsonlKeepsLinesByteForByte) {
    // BOM, CRLF and LF endings, blank lines (not records), a malformed line, a
    // non-object line, a record with a missing field and one with invalid UTF-8:
    // the bad ones are records too (indexes 2, 3, 5, 6).
    const std::vector<std::string> records = {
        "{\"id\": \"a\", \"instruction\": \"Add\", \"input\": \"1 2\", \"output\": \"3\"}\r\n",  // 0
        "{\"output\": \"Hi\",   \"instruction\": \"Greet\", \"id\": \"b\"}\n",                // 1 (key order)
        "{\"id\": \"c\", \"instruction\": \"broken\"\n",                                      // 2 malformed
        "[1, 2]\r\n",                                                                          // 3 not an object
        "{\"id\": \"d\", \"instruction\": \"Caf\\u00e9 \\\"x\\\"\", \"output\": \"1.50\"}\n",  // 4
        "{\"id\": \"e\", \"instruction\": \"no output\"}\n",                                  // 5 missing field
        "{\"id\": \"f\", \"instruction\": \"bad \xff byte\", \"output\": \"o\"}\n",           // 6 invalid UTF-8
        "{\"id\": \"g\", \"instruction\": \"last\", \"output\": \"no newline\"}",             // 7
    };
    const std::string bom = "\xEF\xBB\xBF";
    const std::string input = write_file("in.jsonl", bom + records[0] + "\n  \r\n" + records[1] + records[2] +
                                                         records[3] + "\n" + records[4] + records[5] +
                                                         records[6] + "\n\n" + records[7]);
    const DatasetParams params = lenient();
    const Dataset in = load_dataset(input, params);
    ASSERT_EQ(in.report.n_records, 8u);
    ASSERT_EQ(in.samples.size(), 4u);

    const std::string output = dir() + "/out.jsonl";
    const auto rep = check_subset(input, params, {1, 2, 4}, output);
    EXPECT_EQ(rep.n_written, 5u);
    EXPECT_EQ(memskew::test::read_file(output),
              bom + records[0] + records[3] + records[5] + records[6] + records[7]);

    // Nothing removed: the input less its blank lines.
    check_subset(input, params, {}, dir() + "/all.jsonl");
    EXPECT_EQ(memskew::test::read_file(dir() + "/all.jsonl"), bom + concat(records));

    check_each_single_removal(input, params, ".jsonl");
}

TEST(DatasetSubset, JsonlChatRecords) {
    const std::vector<std::string> records = {
        R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, )"
        R"({"role": "assistant", "content": "Hello"}]})"
        "\n",
        R"({"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}]})"
        "\n",
        R"({"messages": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}, )"
        R"({"role": "user", "content": "Q3"}, {"role": "assistant", "content": "A3"}]})"
        "\n",
        R"({"messages": [{"role": "user", "content": "no answer"}]})"
        "\n",
        R"({"system": "sys", "messages": [{"role": "user", "content": "Q4"}, {"role": "assistant", "content": "A4"}]})"
        "\n",
    };
    const std::string input = write_file("chat.jsonl", concat(records));
    const DatasetParams params = lenient();
    const Dataset in = load_dataset(input, params);
    ASSERT_EQ(in.report.format, RecordFormat::kChat);
    ASSERT_EQ(in.samples.size(), 4u);

    const std::string output = dir() + "/chat-out.jsonl";
    check_subset(input, params, {0, 3}, output);
    EXPECT_EQ(memskew::test::read_file(output), records[1] + records[2] + records[4]);
    check_each_single_removal(input, params, ".jsonl");
}

// --- JSON arrays --------------------------------------------------------------

TEST(DatasetSubset, JsonArrayKeepsElementsVerbatim) {
    const std::vector<std::string> elems = {
        "{\"instruction\": \"A\", \"input\": \"\", \"response\": \"ra\"}",
        "{\n    \"response\": \"rb\",\n    \"instruction\": \"B \\u00e9\\n\",\n    \"input\": \"in\",\n"
        "    \"score\": 1.50, \"tags\": [\"x\", {\"k\": null}]\n  }",
        "42",  // not an object: a bad record, index 2
        "{\"instruction\": \"D\", \"input\": \"\", \"response\": \"rd\"}",
        "{\"instruction\": \"E\", \"input\": \"\", \"response\": \"re\"}",
    };
    const std::string bom = "\xEF\xBB\xBF";
    const std::string input = write_file(
        "in.json", bom + "\n[\n  " + elems[0] + ",\n  " + elems[1] + ",\n  " + elems[2] + " ,  " + elems[3] +
                       ",\n\n  " + elems[4] + "\n]\n");
    const DatasetParams params = lenient();
    const Dataset in = load_dataset(input, params);
    ASSERT_EQ(in.report.file_kind, FileKind::kJson);
    ASSERT_EQ(in.report.n_records, 5u);
    ASSERT_EQ(in.samples.size(), 4u);

    // Kept elements verbatim, joined by the first separator (",\n  ").
    const std::string output = dir() + "/out.json";
    check_subset(input, params, {0, 3}, output);
    EXPECT_EQ(memskew::test::read_file(output), bom + "\n[\n  " + elems[1] + ",\n  " + elems[2] + ",\n  " +
                                                    elems[4] + "\n]\n");
    check_subset(input, params, {4}, output);
    EXPECT_EQ(memskew::test::read_file(output), bom + "\n[\n  " + elems[0] + ",\n  " + elems[1] + ",\n  " +
                                                    elems[2] + ",\n  " + elems[3] + "\n]\n");
    // All removed: an empty array.
    check_subset(input, params, {0, 1, 2, 3, 4}, output);
    EXPECT_EQ(memskew::test::read_file(output), bom + "\n[\n  \n]\n");

    check_each_single_removal(input, params, ".json");
}

TEST(DatasetSubset, CompactJsonArrayAndChat) {
    const std::string input = write_file(
        "compact.json",
        R"([{"id":1,"messages":[{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"}]},)"
        R"({"id":2,"messages":[{"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}]},)"
        R"({"id":3,"messages":[{"role":"user","content":"Q3"},{"role":"assistant","content":"A3"}]}])");
    const DatasetParams params;
    const std::string output = dir() + "/compact-out.json";
    check_subset(input, params, {1}, output);
    EXPECT_EQ(memskew::test::read_file(output),
              R"([{"id":1,"messages":[{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"}]},)"
              R"({"id":3,"messages":[{"role":"user","content":"Q3"},{"role":"assistant","content":"A3"}]}])");
    check_each_single_removal(input, params, ".json");

    // One element: the default separator is never needed; the only element removed.
    const std::string one = write_file("one.json", "[ {\"text\": \"only\"} ]");
    check_subset(one, params, {}, dir() + "/one-out.json");
    EXPECT_EQ(memskew::test::read_file(dir() + "/one-out.json"), "[ {\"text\": \"only\"} ]");
    check_subset(one, params, {0}, dir() + "/one-out.json");
    EXPECT_EQ(memskew::test::read_file(dir() + "/one-out.json"), "[  ]");
}

TEST(DatasetSubset, JsonFileOfJsonLinesStaysJsonLines) {
    const std::string input = write_file("lines.json",
                                         "{\"prompt\": \"p1\", \"completion\": \" c1\"}\n"
                                         "{\"prompt\": \"p2\", \"completion\": \" c2\"}\n");
    const std::string output = dir() + "/lines-out.json";
    const auto rep = check_subset(input, {}, {0}, output);
    EXPECT_EQ(rep.file_kind, FileKind::kJsonl);
    EXPECT_EQ(memskew::test::read_file(output), "{\"prompt\": \"p2\", \"completion\": \" c2\"}\n");
}

// --- CSV ----------------------------------------------------------------------

TEST(DatasetSubset, CsvKeepsHeaderAndRowsVerbatim) {
    const std::string bom = "\xEF\xBB\xBF";
    const std::string header = "instruction,input,output\r\n";
    const std::vector<std::string> rows = {
        "\"Write, with a comma\",,\"line one\r\nline two\"\r\n",    // 0: multi-line quoted field, CRLF inside
        "plain,x,y\r\n",                                            // 1
        "\"say \"\"hi\"\"\",\"\",\"multi\nline\nanswer\"\n",        // 2: "" escapes, LF inside
        "too,many,fields,here\r\n",                                 // 3: wrong field count (bad record)
        "\"lone\",\"\",\"cr end\"\r",                               // 4: lone CR ends the row
        "last,,\"no newline at the end\"",                          // 5
    };
    const std::string input = write_file(
        "in.csv", bom + header + rows[0] + rows[1] + "\r\n" + rows[2] + rows[3] + "\n" + rows[4] + rows[5]);
    const DatasetParams params = lenient();
    const Dataset in = load_dataset(input, params);
    ASSERT_EQ(in.report.file_kind, FileKind::kCsv);
    ASSERT_EQ(in.report.n_records, 6u);
    ASSERT_EQ(in.samples.size(), 5u);
    ASSERT_EQ(in.samples[0].reference, "line one\r\nline two");

    const std::string output = dir() + "/out.csv";
    check_subset(input, params, {1, 4}, output);
    EXPECT_EQ(memskew::test::read_file(output), bom + header + rows[0] + rows[2] + rows[3] + rows[5]);
    check_subset(input, params, {}, output);
    EXPECT_EQ(memskew::test::read_file(output), bom + header + concat(rows));

    check_each_single_removal(input, params, ".csv");
}

TEST(DatasetSubset, ForcedFileKind) {
    // A CSV under a name that says nothing, read as CSV by the caller's choice.
    const std::string input = write_file("table.txt", "question,answer\nq1,a1\nq2,a2\nq3,a3\n");
    DatasetParams params;
    params.file_kind = FileKind::kCsv;
    const std::string output = dir() + "/table-out.txt";
    check_subset(input, params, {0, 2}, output);
    EXPECT_EQ(memskew::test::read_file(output), "question,answer\nq2,a2\n");
}

// --- refusals -------------------------------------------------------------------

TEST(DatasetSubsetBad, OutputIsTheInput) {
    const std::string content = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n";
    const std::string input = write_file("self.jsonl", content);
    const std::string hard = dir() + "/self-hardlink.jsonl";
    const std::string sym = dir() + "/self-symlink.jsonl";
    fs::remove(hard);
    fs::remove(sym);
    fs::create_hard_link(input, hard);
    fs::create_symlink(input, sym);
    const std::string dotted = dir() + "/./sub/../self.jsonl";
    fs::create_directories(dir() + "/sub");
    for (const std::string& out : {input, hard, sym, dotted}) {
        SCOPED_TRACE(out);
        const std::string msg = error_of<InvalidInput>([&] { write_dataset_subset(input, {}, {0}, out); });
        EXPECT_THAT(msg, HasSubstr("'" + input + "'"));
        EXPECT_THAT(msg, HasSubstr("'" + out + "'"));
        EXPECT_THAT(msg, HasSubstr("the output is the input file"));
        EXPECT_THAT(msg, HasSubstr("another path"));
    }
    EXPECT_EQ(memskew::test::read_file(input), content);
}

TEST(DatasetSubsetBad, IndexOutOfRange) {
    const std::string input = write_file("range.jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n");
    const std::string output = dir() + "/range-out.jsonl";
    const std::string msg = error_of<InvalidInput>([&] { write_dataset_subset(input, {}, {0, 2, 7}, output); });
    EXPECT_THAT(msg, HasSubstr("'" + input + "'"));
    EXPECT_THAT(msg, HasSubstr("'" + output + "'"));
    EXPECT_THAT(msg, HasSubstr("2 record index(es) to remove are not in the input (2, 7)"));
    EXPECT_THAT(msg, HasSubstr("holds 2 record(s), indexes 0..1"));
    EXPECT_FALSE(fs::exists(output));
}

TEST(DatasetSubsetBad, MissingInputAndUnwritableOutput) {
    const std::string missing = dir() + "/no-such-file.jsonl";
    const std::string out = dir() + "/missing-out.jsonl";
    std::string msg = error_of<IoError>([&] { write_dataset_subset(missing, {}, {}, out); });
    EXPECT_THAT(msg, HasSubstr("'" + missing + "'"));
    EXPECT_FALSE(fs::exists(out));

    const std::string input = write_file("ok.jsonl", "{\"text\": \"one\"}\n");
    // A folder that does not exist, and a "folder" that is a file (the tests may
    // run as root, for whom permission bits do not stop a write).
    for (const std::string& bad : {dir() + "/no-such-dir/out.jsonl", input + "/out.jsonl"}) {
        SCOPED_TRACE(bad);
        msg = error_of<IoError>([&] { write_dataset_subset(input, {}, {}, bad); });
        EXPECT_THAT(msg, HasSubstr("'" + bad + "'"));
    }
}

TEST(DatasetSubsetBad, ExtensionOfAnotherKind) {
    const std::string jsonl = write_file("kind.jsonl", "{\"text\": \"one\"}\n");
    const std::string array = write_file("kind.json", "[{\"text\": \"one\"}]\n");
    const std::string csv = write_file("kind.csv", "text\none\n");
    const struct {
        std::string input, output, says;
    } cases[] = {
        {jsonl, dir() + "/k1.csv", "the input is JSON Lines, the output's extension '.csv' says CSV"},
        {array, dir() + "/k2.JSONL", "the input is a JSON array, the output's extension '.JSONL' says JSON Lines"},
        {array, dir() + "/k3.ndjson", "says JSON Lines"},
        {csv, dir() + "/k4.json", "the input is CSV, the output's extension '.json' says a JSON array"},
        {csv, dir() + "/k5.jsonl", "the input is CSV"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.output);
        const std::string msg = error_of<InvalidInput>([&] { write_dataset_subset(c.input, {}, {}, c.output); });
        EXPECT_THAT(msg, HasSubstr("'" + c.input + "'"));
        EXPECT_THAT(msg, HasSubstr("'" + c.output + "'"));
        EXPECT_THAT(msg, HasSubstr(c.says));
        EXPECT_THAT(msg, HasSubstr("extension"));
        EXPECT_FALSE(fs::exists(c.output));
    }
    // Extensions that say nothing are read by content, as the input was.
    check_subset(jsonl, {}, {}, dir() + "/k6.txt");
    check_subset(csv, {}, {}, dir() + "/k7");
}

TEST(DatasetSubsetBad, GzipRefused) {
    const std::string gz = write_file("data.jsonl.gz", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00", 8));
    std::string msg = error_of<FormatError>([&] { write_dataset_subset(gz, {}, {}, dir() + "/gz-out.jsonl"); });
    EXPECT_THAT(msg, HasSubstr("'" + gz + "'"));
    EXPECT_THAT(msg, HasSubstr("gzip"));
    const std::string input = write_file("plain.jsonl", "{\"text\": \"one\"}\n");
    msg = error_of<InvalidInput>([&] { write_dataset_subset(input, {}, {}, dir() + "/out.jsonl.gz"); });
    EXPECT_THAT(msg, HasSubstr("gzip"));
    EXPECT_THAT(msg, HasSubstr("out.jsonl.gz"));
}

TEST(DatasetSubsetBad, UnsplittableInputIsFatalAsInLoadDataset) {
    const std::string broken = write_file("broken.json", "[{\"text\": \"a\"}, {\"text\": ]");
    const std::string output = dir() + "/broken-out.json";
    std::string msg = error_of<FormatError>([&] { write_dataset_subset(broken, lenient(), {}, output); });
    EXPECT_THAT(msg, HasSubstr(broken));
    EXPECT_FALSE(fs::exists(output));

    const std::string quote = write_file("quote.csv", "text\n\"never closed\n");
    msg = error_of<FormatError>([&] { write_dataset_subset(quote, lenient(), {}, dir() + "/quote-out.csv"); });
    EXPECT_THAT(msg, HasSubstr("never closed"));

    const std::string empty = write_file("empty.jsonl", "\n \n");
    msg = error_of<FormatError>([&] { write_dataset_subset(empty, {}, {}, dir() + "/empty-out.jsonl"); });
    EXPECT_THAT(msg, HasSubstr("empty"));
}

TEST(DatasetSubsetBad, HostileBytesNeverCrash) {
    // Each either copies (and then keeps every byte when nothing is removed,
    // blank lines aside) or throws a memskew::Error.
    const std::vector<std::pair<std::string, std::string>> inputs = {
        {"h0.jsonl", std::string(10000, '[') + "\n"},
        {"h1.jsonl", std::string("{\"question\": \"Q\0\", \"answer\": \"A\"}\n", 34)},
        {"h2.jsonl", "\xEF\xBB\xBF"},
        {"h3.json", "[\xff, \xfe]"},
        {"h4.json", "[1,2,3]   \n\n"},
        {"h5.json", "[[],{},\"\",null]"},
        {"h6.json", "[ {\"a\": \"]\"} , {\"b\": \",\"} ]"},
        {"h7.csv", "a,b\n\"x\"y,z\n"},
        {"h8.csv", "a\n"},
        {"h9.json", "[]"},
    };
    for (const auto& [name, content] : inputs) {
        SCOPED_TRACE(name);
        const std::string path = write_file(name, content);
        const std::string out = dir() + "/hostile-out-" + name;
        for (const std::unordered_set<size_t>& remove : {std::unordered_set<size_t>{}, {0}}) {
            try {
                write_dataset_subset(path, lenient(), remove, out);
                if (remove.empty()) {
                    EXPECT_EQ(memskew::test::read_file(out), content);
                }
            } catch (const Error&) {
            }
        }
    }
    // A JSON array whose strings hold ']' and ',': ends come from the parser.
    const std::string tricky = dir() + "/hostile-out-h6.json";
    write_dataset_subset(dir() + "/h6.json", {}, {0}, tricky);
    EXPECT_EQ(memskew::test::read_file(tricky), "[ {\"b\": \",\"} ]");
}
