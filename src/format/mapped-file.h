// Read-only memory mapping of a whole file, shared by the GGUF and
// safetensors readers: tensor data is paged in on demand, never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace memskew {

struct FileMapping {
    const uint8_t* data = nullptr;
    size_t size = 0;
};

// Words for the errors of one file kind.
struct MappedFileKind {
    const char* extension;  // ".gguf": "is a directory, expected a .gguf file"
    const char* name;       // "a GGUF file": "file is empty (0 bytes), expected a GGUF file"
    const char* dir_hint;   // hint when a directory is given
};

// Maps `path` read-only. IoError: cannot open/stat/map, a directory, not a
// regular file; FormatError: an empty file. The file descriptor is closed
// before returning (the mapping keeps the file alive).
FileMapping map_file_readonly(const std::string& path, const MappedFileKind& kind);
void unmap_file(const FileMapping& mapping);

// IoError "cannot <action> '<path>': <strerror(err)>".
[[noreturn]] void throw_errno(const std::string& path, const char* action, int err);

}  // namespace memskew
