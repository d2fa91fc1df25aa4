// Reader of llama.cpp's tokenizer test vectors (../shared/tokenizers/vectors),
// shared by the GGUF and tokenizer.json tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace memskew::test
