// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace memskew::test {

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
