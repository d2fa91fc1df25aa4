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

void write_file_atomic(const std::string& path, const std::function<void(const ByteSink& put)>& fill) {
    const std::string tmp = fmt::format("{}.tmp-{}", path, static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)),
                      "check that the folder exists and is writable");
    }
    const ByteSink put = [&](const void* data, size_t n) {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ssize_t k = ::write(fd, p, n);
            if (k < 0) {
                if (errno == EINTR) continue;
                throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
            }
            p += k;
            n -= static_cast<size_t>(k);
        }
    };
    bool closed = false;
    try {
        fill(put);
        // fsync before rename: after a crash the new name never points at a
        // file whose data did not reach the disk.
        if (::fsync(fd) != 0) throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
        closed = true;  // the fd is released even when close() reports an error
        if (::close(fd) != 0) throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
    } catch (...) {
        if (!closed) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw IoError(fmt::format("cannot write '{}': rename from '{}' failed: {}", path, tmp, std::strerror(err)));
    }
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
    write_file_atomic(path, [&](const ByteSink& put) { put(text.data(), text.size()); });
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
