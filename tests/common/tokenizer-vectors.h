// Reader of llama.cpp's tokenizer test vectors (../shared/tokenizers/vectors),
// shared by the GGUF and tokenizer.json tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "memskew/tokenizer.h"
#include "test-util.h"

namespace memskew::test {

struct VectorCase {
    std::string text;
    std::vector<int32_t> ids;
};

// Inputs are joined by "\n__ggml_vocab_test__\n" (the file also ends with
// it); exactly that separator is removed, so whitespace inside an input,
// including leading/trailing newlines, is kept. Same as test-tokenizer-0.
inline std::vector<std::string> split_inputs(const std::string& raw) {
    static const std::string kSep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    size_t pos = 0;
    while (pos < raw.size()) {
        const size_t next = raw.find(kSep, pos);
        if (next == std::string::npos) {
            inputs.push_back(raw.substr(pos));
            break;
        }
        inputs.push_back(raw.substr(pos, next - pos));
        pos = next + kSep.size();
    }
    return inputs;
}

// Line i of the .out file holds the expected ids of input i.
inline std::vector<VectorCase> read_cases(const std::string& inp_path, const std::string& out_path) {
    const std::vector<std::string> inputs = split_inputs(read_file(inp_path));
    std::istringstream out(read_file(out_path));
    std::vector<VectorCase> cases;
    std::string line;
    for (const std::string& text : inputs) {
        if (!std::getline(out, line)) break;
        VectorCase c{text, {}};
        std::istringstream ids(line);
        for (int32_t id; ids >> id;) c.ids.push_back(id);
        cases.push_back(std::move(c));
    }
    EXPECT_EQ(cases.size(), inputs.size()) << out_path << " has fewer lines than " << inp_path << " has inputs";
    return cases;
}

inline std::string show_ids(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

inline std::string show_text(const std::string& text) {
    std::string s;
    for (unsigned char c : text) {
        if (c == '\n') s += "\\n";
        else if (c == '\t') s += "\\t";
        else if (c < 0x20) s += "\\x" + std::to_string(c);
        else s.push_back(static_cast<char>(c));
    }
    return s;
}

// Encodes every case (no special tokens), decodes it back, reports each
// mismatch as a test failure and prints the counts under `label`.
inline void check_vectors(const Tokenizer& tok, const std::string& label, const std::vector<VectorCase>& cases) {
    int n_match = 0, n_round_trip = 0;
    for (const VectorCase& c : cases) {
        const std::vector<int32_t> got = tok.encode(c.text, false);
        if (got == c.ids) {
            ++n_match;
        } else {
            ADD_FAILURE() << label << " mismatch\n  input:    '" << show_text(c.text) << "'\n  expected: "
                          << show_ids(c.ids) << "\n  got:      " << show_ids(got);
        }
        const std::string back = tok.decode(got);
        if (back == c.text) {
            ++n_round_trip;
        } else {
            ADD_FAILURE() << label << " round trip\n  input:   '" << show_text(c.text) << "'\n  decoded: '"
                          << show_text(back) << "'";
        }
    }
    std::printf("[ %-9s ] %d/%zu vectors match, %d/%zu round-trip\n", label.c_str(), n_match, cases.size(),
                n_round_trip, cases.size());
}

// gtest parameter names: "gpt-2" -> "gpt_2".
inline std::string vector_param_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string s = info.param;
    for (char& c : s) {
        if (c == '-') c = '_';
    }
    return s;
}

}  // namespace memskew::test
