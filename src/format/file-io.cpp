// Whole-file reads, atomic writes and streamed content hashes.
#include "memskew/file-io.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "memskew/error.h"

namespace memskew {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        throw IoError(fmt::format("cannot open '{}': is a directory, expected a file", path));
    }
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw IoError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
    std::string text;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw IoError(fmt::format("cannot read '{}'", path));
    return text;
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = fmt::format("{}.tmp-{}", path, static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)),
                      "check that the folder exists and is writable");
    }
    const char* p = text.data();
    size_t left = text.size();
    int err = 0;
    while (left > 0 && err == 0) {
        const ssize_t k = ::write(fd, p, left);
        if (k < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        p += k;
        left -= static_cast<size_t>(k);
    }
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        ::unlink(tmp.c_str());
        throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
    }
}

std::string file_content_hash(const std::vector<std::string>& paths) {
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
    XXH3_64bits_reset(state.get());
    std::vector<char> buf(1 << 20);
    for (size_t i = 0; i < paths.size(); ++i) {
        if (i > 0) XXH3_64bits_update(state.get(), "\0", 1);
        std::ifstream in(paths[i], std::ios::binary);
        if (!in) throw IoError(fmt::format("cannot read '{}'", paths[i]));
        while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            XXH3_64bits_update(state.get(), buf.data(), static_cast<size_t>(in.gcount()));
        }
    }
    return fmt::format("{:016x}", XXH3_64bits_digest(state.get()));
}

}  // namespace memskew
