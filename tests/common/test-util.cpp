#include "test-util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace memskew::test {

std::string shared_dir() {
    const char* env = std::getenv("MEMSKEW_SHARED_DIR");
    std::string dir = env && *env ? env : MEMSKEW_SHARED_DIR_DEFAULT;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return {};
    return fs::canonical(dir, ec).string();
}

std::string shared_path(const std::string& rel) {
    const std::string dir = shared_dir();
    if (dir.empty()) return {};
    const fs::path p = fs::path(dir) / rel;
    std::error_code ec;
    return fs::exists(p, ec) ? p.string() : std::string();
}

std::string binary_dir() { return MEMSKEW_BINARY_DIR; }
std::string source_dir() { return MEMSKEW_SOURCE_DIR; }

namespace {
struct TempDirs {
    std::vector<fs::path> dirs;
    ~TempDirs() {
        std::error_code ec;
        for (const auto& d : dirs) fs::remove_all(d, ec);
    }
};
TempDirs g_temp_dirs;
}  // namespace

std::string temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "memskew-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    g_temp_dirs.dirs.emplace_back(buf.data());
    return buf.data();
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace memskew::test
