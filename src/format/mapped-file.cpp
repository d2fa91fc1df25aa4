#include "format/mapped-file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "memskew/error.h"

namespace memskew {

void throw_errno(const std::string& path, const char* action, int err) {
    throw IoError(fmt::format("cannot {} '{}': {}", action, path, std::strerror(err)));
}

FileMapping map_file_readonly(const std::string& path, const MappedFileKind& kind) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_errno(path, "open", errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw_errno(path, "stat", err);
    }
    if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        throw IoError(fmt::format("cannot open '{}': is a directory, expected a {} file", path, kind.extension),
                      kind.dir_hint);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw IoError(fmt::format("cannot open '{}': not a regular file", path));
    }
    if (st.st_size == 0) {
        ::close(fd);
        throw FormatError(fmt::format("error loading {}: file is empty (0 bytes), expected {}", path, kind.name),
                          "the download or copy may have failed");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    // MAP_PRIVATE + PROT_READ: tensor data is paged in on demand, never copied.
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_err = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED) throw_errno(path, "map", map_err);
    return {static_cast<const uint8_t*>(map), size};
}

void unmap_file(const FileMapping& mapping) {
    if (mapping.data != nullptr) ::munmap(const_cast<uint8_t*>(mapping.data), mapping.size);
}

}  // namespace memskew
