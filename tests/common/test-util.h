// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/model.h"

namespace memskew::test {

// A tiny Llama shape for tests that run a model built in memory (with
// make_byte_vocab(): 258 tokens): 2 layers, dim 32, 4 heads over 2 KV heads.
inline ModelConfig tiny_llama_config(int64_t max_ctx = 64) {
    ModelConfig c;
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_dim = 64;
    c.max_ctx = max_ctx;
    return c;
}

// Runs fn and checks it throws exactly E (a memskew::Error) whose message
// holds every fragment (and whose hint holds hint_fragment, when given).
template <typename E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& fragments,
                  const std::string& hint_fragment = {}) {
    try {
        fn();
        ADD_FAILURE() << "no exception; expected one containing '" << (fragments.empty() ? "" : fragments[0]) << "'";
    } catch (const E& e) {
        for (const std::string& f : fragments) {
            EXPECT_NE(e.message().find(f), std::string::npos) << "message: " << e.message() << "\nmissing: " << f;
        }
        if (!hint_fragment.empty()) {
            EXPECT_NE(e.hint().find(hint_fragment), std::string::npos) << "hint: " << e.hint();
        }
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
    }
}

// Folder with the shared assets (data/, models/, tokenizers/): the
// MEMSKEW_SHARED_DIR environment variable, else ../shared next to the source
// tree. Empty when it does not exist.
std::string shared_dir();
// Full path of `rel` inside the shared folder, or "" when missing.
std::string shared_path(const std::string& rel);
// The build folder (where the memskew binary lives) and the source folder.
std::string binary_dir();
std::string source_dir();
// A fresh empty temporary folder, removed at process exit.
std::string temp_dir();
// Reads a whole file; throws on failure.
std::string read_file(const std::string& path);

}  // namespace memskew::test

// Declares `var` as the path of a shared asset or skips the test with a clear message.
#define MEMSKEW_REQUIRE_SHARED(var, rel)                                                   \
    const std::string var = ::memskew::test::shared_path(rel);                             \
    if (var.empty()) {                                                                     \
        GTEST_SKIP() << "shared asset '" << (rel) << "' not found (set MEMSKEW_SHARED_DIR " \
                     << "or place the shared/ folder next to the repository)";             \
    }
